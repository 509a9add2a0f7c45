"""The email service: a SQLite queue of confirmations, a background sender, an outbox folder."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from services import kit

from .api import routes
from .sender import OUTBOX, sender_context
from .store import metadata


def outbox_dir(settings: kit.Settings) -> Path:
    """``EMAIL_OUTBOX_DIR``, else ``outbox/`` beside the service's data (BOUTIQUE_DATA_DIR)."""
    raw = settings.get("EMAIL_OUTBOX_DIR")
    return Path(raw) if raw else Path(settings.get("BOUTIQUE_DATA_DIR", "var")) / "outbox"


def create_app(settings: kit.Settings | None = None) -> web.Application:
    settings = settings or kit.Settings.from_env("email")
    app = kit.create_app(
        settings,
        routes=routes,
        contexts=[kit.database_context(metadata), sender_context],
        openapi=Path(__file__).with_name("openapi.yaml"),
    )
    app[OUTBOX] = outbox_dir(settings)
    return app


if __name__ == "__main__":
    kit.run(create_app())
