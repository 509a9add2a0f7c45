"""The ratings service: buyers rate what they bought (1-5, once per order line)."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from services import kit

from .api import routes
from .store import metadata


def create_app(settings: kit.Settings | None = None) -> web.Application:
    return kit.create_app(
        settings or kit.Settings.from_env("ratings"),
        routes=routes,
        contexts=[kit.database_context(metadata), kit.peers_context],
        openapi=Path(__file__).with_name("openapi.yaml"),
    )


if __name__ == "__main__":
    kit.run(create_app())
