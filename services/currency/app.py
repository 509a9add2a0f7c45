"""The currency service: no store, only the shipped rates table (read once at start)."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from services import kit

from . import rates
from .api import RATES, routes


def create_app(settings: kit.Settings | None = None) -> web.Application:
    app = kit.create_app(
        settings or kit.Settings.from_env("currency"),
        routes=routes,
        openapi=Path(__file__).with_name("openapi.yaml"),
    )
    app[RATES] = rates.load()
    return app


if __name__ == "__main__":
    kit.run(create_app())
