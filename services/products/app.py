"""The products service: catalog, live stock, and keyed stock reservations that expire."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from services import kit

from . import api, store
from .catalog import CATALOG, IMAGES, load_catalog, load_images, seed_context
from .snapshot import catalogue_context
from .sweeper import sweeper_context


def create_app(settings: kit.Settings | None = None) -> web.Application:
    settings = settings or kit.Settings.from_env("products")
    catalog = load_catalog(stock=settings.get("PRODUCTS_STOCK"))
    app = kit.create_app(
        settings,
        routes=api.routes,
        contexts=[
            kit.database_context(store.metadata),
            seed_context,
            catalogue_context,
            sweeper_context,
        ],
        openapi=Path(__file__).with_name("openapi.yaml"),
    )
    app[CATALOG] = catalog
    app[IMAGES] = load_images([entry.id for entry in catalog])
    return app


if __name__ == "__main__":
    kit.run(create_app())
