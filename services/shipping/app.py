"""The shipping service: no store; quotes and tracking ids are computed (rates.py)."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from services import kit

from .api import routes


def create_app(settings: kit.Settings | None = None) -> web.Application:
    return kit.create_app(
        settings or kit.Settings.from_env("shipping"),
        routes=routes,
        openapi=Path(__file__).with_name("openapi.yaml"),
    )


if __name__ == "__main__":
    kit.run(create_app())
