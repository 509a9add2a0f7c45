"""Typed keys for what the kit keeps on the ``web.Application``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

if TYPE_CHECKING:
    from .peers import PeerClient
    from .settings import Settings

CleanupCtx = Callable[[web.Application], AsyncIterator[None]]
Check = Callable[[], Awaitable[Any]]

SETTINGS: web.AppKey[Settings] = web.AppKey("settings")
READINESS: web.AppKey[list[tuple[str, Check]]] = web.AppKey("readiness")
OPENAPI: web.AppKey[dict[str, Any]] = web.AppKey("openapi")
OPENAPI_TEXT: web.AppKey[str] = web.AppKey("openapi_text")
DB: web.AppKey[AsyncEngine] = web.AppKey("db")
REDIS: web.AppKey[aioredis.Redis] = web.AppKey("redis")
PEERS: web.AppKey[PeerClient] = web.AppKey("peers")
