"""The recommendations service: products related by category to a page's or a cart's products."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from services import kit

from . import catalog
from .api import routes


def create_app(settings: kit.Settings | None = None) -> web.Application:
    settings = settings or kit.Settings.from_env("recommendations")
    app = kit.create_app(
        settings,
        routes=routes,
        contexts=[kit.peers_context],
        openapi=Path(__file__).with_name("openapi.yaml"),
    )
    app[catalog.CACHE] = catalog.Cache(catalog.ttl(settings))
    return app


if __name__ == "__main__":
    kit.run(create_app())
