"""The app factory every service uses: errors, health, OpenAPI, size limits, graceful shutdown."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from pathlib import Path

import uvloop
from aiohttp import web
from opentelemetry.instrumentation.utils import suppress_instrumentation

from . import openapi as contract
from . import telemetry
from .identity import user_token_middleware
from .keys import OPENAPI, OPENAPI_TEXT, READINESS, SETTINGS, CleanupCtx
from .problems import problem_middleware, problem_response
from .settings import Settings


def create_app(
    settings: Settings,
    *,
    routes: Iterable[web.AbstractRouteDef],
    contexts: Iterable[CleanupCtx] = (),
    openapi: Path | None = None,
) -> web.Application:
    """A service's ``web.Application``.

    ``contexts`` open and close the service's resources (database, Redis, peer client); each may
    register a readiness check by appending ``(name, async_fn)`` to ``app[READINESS]``.
    ``openapi`` is the service's contract, served at ``/openapi.yaml`` and ``/openapi.json`` as one
    document, with the kit's shared components bundled in (see :mod:`services.kit.openapi`).
    """
    app = web.Application(
        middlewares=[
            telemetry.server_middleware,  # first: its span sees every answer's final status
            telemetry.traceresponse_middleware,
            user_token_middleware,
            problem_middleware,
        ],
        client_max_size=settings.max_body_bytes,
    )
    app[SETTINGS] = settings
    app[READINESS] = []
    if openapi is not None:
        app[OPENAPI] = contract.load(openapi)
        app[OPENAPI_TEXT] = contract.dump(app[OPENAPI])
    app.cleanup_ctx.extend(contexts)
    app.router.add_routes(routes)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    if openapi is not None:
        app.router.add_get("/openapi.yaml", openapi_yaml)
        app.router.add_get("/openapi.json", openapi_json)
    return app


async def healthz(request: web.Request) -> web.Response:
    """Alive: the process answers."""
    return web.json_response({"status": "ok", "service": request.app[SETTINGS].service})


async def readyz(request: web.Request) -> web.Response:
    """Ready: every store the service depends on answers."""
    checks: dict[str, str] = {}
    # A probe is not traffic: its server span is left out (telemetry), and so are its pings'
    # SQL and Redis spans, which would otherwise be a trace of their own every second.
    with suppress_instrumentation():
        for name, check in request.app[READINESS]:
            try:
                await check()
                checks[name] = "ok"
            except Exception as exc:  # a store that fails its ping, for whatever reason
                checks[name] = f"failing: {type(exc).__name__}"
    if all(v == "ok" for v in checks.values()):
        return web.json_response({"status": "ready", "checks": checks})
    return problem_response(
        503, "A store this service needs is not reachable", code="not_ready", checks=checks
    )


async def openapi_yaml(request: web.Request) -> web.Response:
    return web.Response(text=request.app[OPENAPI_TEXT], content_type="application/yaml")


async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(request.app[OPENAPI])


def configure_logging(service: str) -> None:
    logging.basicConfig(
        level=logging.INFO,
        format=f"%(asctime)s {service} %(levelname)s %(name)s: %(message)s",
    )


def run(app: web.Application) -> None:
    """Serve until SIGINT/SIGTERM, then finish in-flight requests and close every resource."""
    settings = app[SETTINGS]
    configure_logging(settings.service)
    provider = telemetry.setup(settings.service, settings.environ)
    if provider is not None:
        telemetry.flush_on_cleanup(app, provider)
    where = (
        {"path": settings.unix_socket}
        if settings.unix_socket
        else {"host": settings.host, "port": settings.port}
    )
    logging.getLogger("boutique").info("%s listening on %s", settings.service, where)
    web.run_app(
        app,
        **where,
        print=None,
        access_log=access_logger(settings),
        access_log_format='%a "%r" %s %b %Tfs',
        loop=event_loop(settings),
    )


def access_logger(settings: Settings) -> logging.Logger | None:
    """aiohttp's line per request, only with ``ACCESS_LOG=true``: in the mesh each sidecar
    already writes one per request, and formatting and writing a second one took about a tenth
    of a millisecond of the app's CPU per request."""
    on = settings.get("ACCESS_LOG", "false").strip().lower() in ("1", "true", "yes", "on")
    return logging.getLogger("aiohttp.access") if on else None


def event_loop(settings: Settings) -> asyncio.AbstractEventLoop:
    """uvloop's event loop (libuv; its sockets and scheduling cost less CPU per request than
    asyncio's pure-Python loop), or asyncio's own with ``EVENT_LOOP=asyncio``."""
    kind = settings.get("EVENT_LOOP", "uvloop").strip().lower()
    if kind == "asyncio":
        return asyncio.new_event_loop()
    if kind != "uvloop":
        raise ValueError(f"EVENT_LOOP={kind!r} is not supported: use uvloop or asyncio")
    return uvloop.new_event_loop()
