"""Redis for services that keep state there (sessions, carts, caches).

The client's pool is bounded and blocking: at most ``REDIS_MAX_CONNECTIONS`` connections (64);
a request that finds none free waits up to ``REDIS_POOL_WAIT_S`` (2 s) for one, and a command
gets ``REDIS_TIMEOUT_S`` (2 s) to answer. Past either, the error is answered ``503 overloaded``
(``kit.exhaustion``): a burst queues briefly, then is told to come back, and never opens
connections without end.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import redis.asyncio as aioredis
from aiohttp import web

from .keys import READINESS, REDIS, SETTINGS
from .settings import Settings

MAX_CONNECTIONS = 64
POOL_WAIT_S = 2.0
COMMAND_TIMEOUT_S = 2.0


def make_client(settings: Settings) -> aioredis.Redis:
    timeout = float(settings.get("REDIS_TIMEOUT_S", str(COMMAND_TIMEOUT_S)))
    pool = aioredis.BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=int(settings.get("REDIS_MAX_CONNECTIONS", str(MAX_CONNECTIONS))),
        timeout=float(settings.get("REDIS_POOL_WAIT_S", str(POOL_WAIT_S))),
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        decode_responses=True,
    )
    return aioredis.Redis(connection_pool=pool)


async def redis_context(app: web.Application) -> AsyncIterator[None]:
    """``cleanup_ctx``: ``app[REDIS]`` is a client with decoded strings; closed at shutdown."""
    client = make_client(app[SETTINGS])
    app[REDIS] = client
    app[READINESS].append(("redis", client.ping))
    yield
    await client.aclose(close_connection_pool=True)  # the pool is ours, not the client's
