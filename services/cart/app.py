"""The cart service's app factory."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from services import kit

from .api import routes
from .catalog import PRODUCT_TTL, product_ttl


def create_app(settings: kit.Settings | None = None) -> web.Application:
    settings = settings or kit.Settings.from_env("cart")
    app = kit.create_app(
        settings,
        routes=routes,
        contexts=[kit.redis_context, kit.peers_context],
        openapi=Path(__file__).with_name("openapi.yaml"),
    )
    app[PRODUCT_TTL] = product_ttl(settings)
    return app


if __name__ == "__main__":
    kit.run(create_app())
