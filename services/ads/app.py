"""The ads service: a contextual ad for a page's categories, from a table shipped with it."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from services import kit

from . import table
from .api import routes


def create_app(settings: kit.Settings | None = None) -> web.Application:
    app = kit.create_app(
        settings or kit.Settings.from_env("ads"),
        routes=routes,
        openapi=Path(__file__).with_name("openapi.yaml"),
    )
    app[table.TABLE] = table.load()
    return app


if __name__ == "__main__":
    kit.run(create_app())
