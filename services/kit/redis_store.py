"""Redis for services that keep state there (sessions, carts, caches)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import redis.asyncio as aioredis
from aiohttp import web

from .keys import READINESS, REDIS, SETTINGS


async def redis_context(app: web.Application) -> AsyncIterator[None]:
    """``cleanup_ctx``: ``app[REDIS]`` is a client with decoded strings; closed at shutdown."""
    client = aioredis.from_url(app[SETTINGS].redis_url, decode_responses=True)
    app[REDIS] = client
    app[READINESS].append(("redis", client.ping))
    yield
    await client.aclose()
