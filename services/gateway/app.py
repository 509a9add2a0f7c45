"""The gateway's app: users in SQL, sessions in Redis, the shop's services as peers."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from services import kit

from . import api, auth, ratings, store, tokens
from .relay import LISTING, PRODUCT_PAGES, Rewrites, public_listing, public_product


def create_app(settings: kit.Settings | None = None) -> web.Application:
    settings = settings or kit.Settings.from_env("gateway")
    app = kit.create_app(
        settings,
        routes=[*api.routes, *ratings.routes],
        contexts=[kit.database_context(store.metadata), kit.redis_context, kit.peers_context],
        openapi=Path(__file__).with_name("openapi.yaml"),
    )
    app[auth.SESSION_TTL] = auth.session_ttl(settings)
    app[tokens.TOKENS] = tokens.user_tokens(settings)
    app[LISTING] = Rewrites(public_listing)
    app[PRODUCT_PAGES] = Rewrites(public_product)
    return app


if __name__ == "__main__":
    kit.run(create_app())
