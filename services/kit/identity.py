"""The signed-in user's token, passed on with every call made for that user (like trace context).

The mesh proves who the user is: the gateway signs a short-lived token, each service hands it on
(``X-User-Token``) when it calls a peer for the user, and each sidecar verifies it and sets the
verified subject as ``X-User-Id``. The app only carries the token along; it never checks it.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from aiohttp import web

USER_TOKEN_HEADER = "X-User-Token"
_current: ContextVar[str | None] = ContextVar("user_token", default=None)


def current_user_token() -> str | None:
    return _current.get()


def set_user_token(token: str | None) -> None:
    """For the rest of this request (and tasks it starts) calls for the user carry ``token``."""
    _current.set(token)


@web.middleware
async def user_token_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Remember the incoming request's user token for the calls its handler makes."""
    reset = _current.set(request.headers.get(USER_TOKEN_HEADER) or None)
    try:
        return await handler(request)
    finally:
        _current.reset(reset)
