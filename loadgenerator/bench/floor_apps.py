"""The floor's bare apps (``boutique bench --floor``): aiohttp on uvloop and nothing else.

- ``leaf`` answers the bytes products answers (``GET /products``, ``GET /products/{id}``, the
  catalogue with every product's stock at ``PRODUCTS_STOCK``), from memory; with the ``/api``
  prefix too, so that it can stand where the gateway stands (the floor's ``edge`` shape).
- ``relay`` answers ``GET /api/products[/{id}]`` by calling products through its sidecar's
  egress socket (``PEER_SOCKET``, the peer named in the Host header, as ``kit.peers`` calls), and
  passes the answer on; it forwards ``traceparent`` so the Envoys' spans stitch.

No telemetry, no store, no validation, no access log: what any app on this stack costs at least.
Both listen on ``UNIX_SOCKET``, as the shop's apps do, and answer ``/readyz``.

    python -m loadgenerator.bench.floor_apps relay|leaf
"""

from __future__ import annotations

import os
import sys
from typing import Any

import aiohttp
import orjson
import uvloop
from aiohttp import web

from services.products.catalog import load_catalog

ROLES = ("relay", "leaf")
JSON = "application/json"
PEER = "products"
PASSED = ("traceparent", "tracestate")


def catalogue(stock: str = "") -> tuple[bytes, dict[str, bytes]]:
    """The listing and each product's page, encoded as products encodes them (sorted by name)."""
    shown = []
    for e in sorted(load_catalog(stock=stock), key=lambda e: (e.name, e.id)):
        shown.append(
            {
                "id": e.id,
                "name": e.name,
                "description": e.description,
                "price_cents": e.price_cents,
                "currency": e.currency,
                "categories": e.categories,
                "available": e.stock,
                "in_stock": e.stock > 0,
            }
        )
    pages = {p["id"]: orjson.dumps(p) for p in shown}
    return orjson.dumps({"products": shown}), pages


def _json(body: bytes, status: int = 200) -> web.Response:
    return web.Response(body=body, status=status, content_type=JSON, charset="utf-8")


async def readyz(request: web.Request) -> web.Response:
    return web.Response(text="ready")


def leaf_app(stock: str = "") -> web.Application:
    listing, pages = catalogue(stock)
    missing = orjson.dumps({"title": "Not Found", "status": 404})

    async def products(request: web.Request) -> web.Response:
        return _json(listing)

    async def product(request: web.Request) -> web.Response:
        body = pages.get(request.match_info["id"])
        return _json(body) if body is not None else _json(missing, 404)

    app = web.Application()
    for prefix in ("", "/api"):
        app.router.add_get(f"{prefix}/products", products)
        app.router.add_get(f"{prefix}/products/{{id}}", product)
    app.router.add_get("/readyz", readyz)
    return app


def relay_app(peer_socket: str) -> web.Application:
    peer = web.AppKey("peer", aiohttp.ClientSession)

    async def session(app: web.Application) -> Any:
        app[peer] = aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=peer_socket))
        yield
        await app[peer].close()

    async def relay(request: web.Request) -> web.Response:
        headers = {k: v for k in PASSED if (v := request.headers.get(k)) is not None}
        url = f"http://{PEER}{request.path.removeprefix('/api')}"
        async with request.app[peer].get(url, headers=headers) as resp:
            return _json(await resp.read(), resp.status)

    app = web.Application()
    app.cleanup_ctx.append(session)
    app.router.add_get("/api/products", relay)
    app.router.add_get("/api/products/{id}", relay)
    app.router.add_get("/readyz", readyz)
    return app


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in ROLES:
        print(f"usage: floor_apps {'|'.join(ROLES)}", file=sys.stderr)
        return 2
    env = os.environ
    if argv[0] == "leaf":
        app = leaf_app(env.get("PRODUCTS_STOCK", ""))
    else:
        app = relay_app(env["PEER_SOCKET"])
    web.run_app(
        app, path=env["UNIX_SOCKET"], print=None, access_log=None, loop=uvloop.new_event_loop()
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
