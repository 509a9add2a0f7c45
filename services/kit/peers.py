"""The one way a service calls another: ``await peers(request).get("cart", "/cart")``.

Service code names a peer; how the name is reached is configuration (see ``Settings``):
through the sidecar's egress (its private Unix socket, or as an HTTP proxy), straight to a URL,
or by DNS. A call made for a user carries that user's token along (``identity``). No retries,
timeouts or TLS here: those are the mesh's job.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from aiohttp import web

from . import telemetry
from .identity import USER_TOKEN_HEADER, current_user_token
from .jsonio import dumps, loads
from .keys import PEERS, SETTINGS
from .problems import Problem
from .settings import Settings
from .validation import USER_HEADER

_UNREAD: Any = object()


class PeerReply:
    """A peer's answer: its status, its body as sent (``raw``), and the body decoded (``data``:
    JSON, else text; decoded on first use, so an answer passed on as bytes is never decoded)."""

    __slots__ = ("peer", "status", "raw", "content_type", "_data")

    def __init__(
        self,
        peer: str,
        status: int,
        data: Any = _UNREAD,
        *,
        raw: bytes = b"",
        content_type: str = "",
    ) -> None:
        self.peer = peer
        self.status = status
        self.raw = raw
        self.content_type = content_type
        self._data = data

    @property
    def data(self) -> Any:
        if self._data is _UNREAD:
            self._data = _decode(self.raw, self.content_type)
        return self._data

    def __repr__(self) -> str:
        return f"PeerReply({self.peer!r}, {self.status}, {self.data!r})"

    def expect(self, *statuses: int) -> Any:
        """The body when the status is one of ``statuses``; otherwise a problem for our caller.

        A peer's 5xx (or a mesh answer such as 503/504) becomes a 502/503/504 here, naming the
        peer, so a failure deep in the call graph reads clearly at the top.
        """
        if self.status in statuses:
            return self.data
        raise self.problem()

    @property
    def own_problem(self) -> dict[str, Any] | None:
        """The body, when it is a problem one of our services wrote (RFC 9457, its ``status``
        the answer's); None for anything else, such as the mesh's own 503 or 504."""
        body = self.data
        if isinstance(body, dict) and body.get("status") == self.status and self.status >= 400:
            return body
        return None

    def problem(self) -> Problem:
        detail = self.data.get("detail") if isinstance(self.data, dict) else None
        if self.status in (503, 504):
            return Problem(
                self.status,
                f"The {self.peer} service is unavailable right now ({self.status})",
                code="dependency_unavailable",
                dependency=self.peer,
            )
        return Problem(
            502,
            f"The {self.peer} service answered {self.status}" + (f": {detail}" if detail else ""),
            code="dependency_failed",
            dependency=self.peer,
        )


class PeerClient:
    def __init__(self, settings: Settings, session: aiohttp.ClientSession) -> None:
        self._settings = settings
        self._session = session

    def url(self, peer: str, path: str) -> str:
        base = self._settings.peer_urls.get(peer, f"http://{peer}")
        return base + path

    async def call(
        self,
        method: str,
        peer: str,
        path: str,
        *,
        json_body: Any = None,
        headers: dict[str, str] | None = None,
        user: str | None = None,
    ) -> PeerReply:
        hdrs = dict(headers or {})
        if user is not None:
            hdrs[USER_HEADER] = user
            token = current_user_token()
            if token:
                hdrs[USER_TOKEN_HEADER] = token
        try:
            async with self._session.request(
                method,
                self.url(peer, path),
                json=json_body,
                headers=hdrs,
                proxy=self._settings.peer_proxy,
            ) as resp:
                raw = await resp.read()
                return PeerReply(peer, resp.status, raw=raw, content_type=resp.content_type)
        except aiohttp.ClientError as exc:
            raise Problem(
                503,
                f"The {peer} service could not be reached ({type(exc).__name__})",
                code="dependency_unavailable",
                dependency=peer,
            ) from None

    async def get(self, peer: str, path: str, **kw: Any) -> PeerReply:
        return await self.call("GET", peer, path, **kw)

    async def post(self, peer: str, path: str, **kw: Any) -> PeerReply:
        return await self.call("POST", peer, path, **kw)

    async def put(self, peer: str, path: str, **kw: Any) -> PeerReply:
        return await self.call("PUT", peer, path, **kw)

    async def delete(self, peer: str, path: str, **kw: Any) -> PeerReply:
        return await self.call("DELETE", peer, path, **kw)


def _decode(raw: bytes, content_type: str) -> Any:
    if not raw:
        return None
    if content_type.endswith("json"):
        try:
            return loads(raw)
        except ValueError:
            return None
    return raw.decode("utf-8", "replace")


async def peers_context(app: web.Application) -> AsyncIterator[None]:
    """``cleanup_ctx``: one pooled client session for all peer calls, as ``app[PEERS]``."""
    settings = app[SETTINGS]
    tracing = telemetry.client_trace_config(settings.peer_urls)
    # the sidecar's egress on a Unix socket: `http://cart/...` goes there, Envoy routes by host
    connector = aiohttp.UnixConnector(path=settings.peer_socket) if settings.peer_socket else None
    session = aiohttp.ClientSession(
        trace_configs=[tracing], connector=connector, json_serialize=_json_text
    )
    app[PEERS] = PeerClient(app[SETTINGS], session)
    yield
    await session.close()


def _json_text(data: Any) -> str:
    return dumps(data).decode()


def peers(request: web.Request) -> PeerClient:
    return request.app[PEERS]
