"""The trace store's two servers: OTLP/HTTP in (4318), Jaeger's query API and the view (16686).

``start(...)`` runs both in the current event loop (tests); ``run(...)`` blocks until SIGTERM
or SIGINT; ``main(argv)`` is ``boutique tracestore`` (``python -m tracestore``).
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from . import jaeger, otlp
from .store import DEFAULT_MAX_SPANS, Store

VIEW = Path(__file__).parent / "view"
DEFAULT_DB = ".run/traces.db"


class PortInUse(RuntimeError):
    """A port the store needs is taken; the message names it."""


# -- the apps -------------------------------------------------------------------------------


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def create_otlp_app(store: Store) -> web.Application:
    app = web.Application(client_max_size=otlp.MAX_BODY)
    app.add_routes([*otlp.routes(store), web.get("/healthz", healthz)])
    return app


async def _index(request: web.Request) -> web.FileResponse:
    """The trace view is one page; it reads the path (``/`` or ``/trace/{id}``) itself."""
    return web.FileResponse(VIEW / "index.html", headers={"Cache-Control": "no-cache"})


@web.middleware
async def _no_cache(request: web.Request, handler: Callable) -> web.StreamResponse:
    response = await handler(request)
    if request.path.startswith("/static/"):
        response.headers["Cache-Control"] = "no-cache"
    return response


def create_query_app(store: Store) -> web.Application:
    app = web.Application(middlewares=[_no_cache])
    app.add_routes(jaeger.routes(store))
    app.add_routes(
        [
            web.get("/healthz", healthz),
            web.get("/", _index),
            web.get("/search", _index),
            web.get("/trace/{trace_id}", _index),
            web.static("/static", VIEW),
        ]
    )
    return app


# -- running --------------------------------------------------------------------------------


@dataclass
class TraceStoreServer:
    """Both servers, running; ``await close()`` stops them and closes the store."""

    store: Store
    runners: list[web.AppRunner]
    otlp_url: str  # e.g. http://127.0.0.1:4318 (POST /v1/traces)
    query_url: str  # e.g. http://127.0.0.1:16686 (the Jaeger API and the view)

    async def close(self) -> None:
        for runner in self.runners:
            await runner.cleanup()
        await self.store.close()


async def start(
    db_path: str | Path,
    host: str = "127.0.0.1",
    otlp_port: int = 4318,
    query_port: int = 16686,
    max_spans: int = DEFAULT_MAX_SPANS,
) -> TraceStoreServer:
    """Open the store and serve it; port 0 picks a free port (see the returned URLs)."""
    store = await Store.open(db_path, max_spans)
    runners: list[web.AppRunner] = []
    urls = []
    try:
        for app, port, what in (
            (create_otlp_app(store), otlp_port, "OTLP/HTTP receiver"),
            (create_query_app(store), query_port, "Jaeger query API and trace view"),
        ):
            runner = web.AppRunner(app, access_log=None, shutdown_timeout=5)
            await runner.setup()
            runners.append(runner)
            try:
                await web.TCPSite(runner, host, port).start()
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise PortInUse(
                        f"port {port} on {host} is already in use (the trace store's {what});"
                        " is another trace store, Jaeger or a collector running?"
                    ) from None
                raise
            bound = runner.addresses[0][1]
            urls.append(f"http://{host}:{bound}")
    except BaseException:
        for runner in runners:
            await runner.cleanup()
        await store.close()
        raise
    return TraceStoreServer(store, runners, urls[0], urls[1])


def run(
    db_path: str | Path = DEFAULT_DB,
    host: str = "127.0.0.1",
    otlp_port: int = 4318,
    query_port: int = 16686,
    max_spans: int = DEFAULT_MAX_SPANS,
    say: Callable[[str], None] | None = None,
) -> None:
    """Serve until SIGTERM or SIGINT, then stop taking requests and close the store."""

    say = say or (lambda line: print(line, flush=True))

    async def serve() -> None:
        server = await start(db_path, host, otlp_port, query_port, max_spans)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        say(
            f"trace store: {server.store.span_count} spans in {db_path} (cap {max_spans})\n"
            f"  OTLP/HTTP in:  {server.otlp_url}/v1/traces\n"
            f"  trace view:    {server.query_url}/  (Jaeger API under /api)"
        )
        try:
            await stop.wait()
        finally:
            await server.close()
            say("trace store: stopped")

    asyncio.run(serve())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", default=DEFAULT_DB, help=f"the SQLite file (default {DEFAULT_DB})")
    parser.add_argument("--host", default="127.0.0.1", help="listen address (127.0.0.1)")
    parser.add_argument("--otlp-port", type=int, default=4318, help="OTLP/HTTP port (4318)")
    parser.add_argument(
        "--query-port", type=int, default=16686, help="Jaeger API and trace view port (16686)"
    )
    parser.add_argument(
        "--max-spans",
        type=int,
        default=DEFAULT_MAX_SPANS,
        help=f"keep at most this many spans; the oldest traces go first ({DEFAULT_MAX_SPANS})",
    )


def serve(args: argparse.Namespace) -> int:
    if args.max_spans < 1:
        print("boutique tracestore: --max-spans must be at least 1", file=sys.stderr)
        return 2
    try:
        run(args.db, args.host, args.otlp_port, args.query_port, args.max_spans)
    except PortInUse as exc:
        print(f"boutique tracestore: {exc}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="boutique tracestore",
        description="The local trace store: OTLP/HTTP in, Jaeger's query API and a trace view out.",
    )
    add_arguments(parser)
    return serve(parser.parse_args(argv))
