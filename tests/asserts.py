"""Assertions the service tests share: an answer's status, and a problem+json's shape."""

from __future__ import annotations

from typing import Any

from aiohttp import ClientResponse


async def ok(resp: ClientResponse, status: int = 200) -> Any:
    """The JSON body of an answer that must have ``status``."""
    assert resp.status == status, await resp.text()
    return await resp.json()


async def problem(resp: ClientResponse, status: int, code: str | None = None) -> dict[str, Any]:
    """An RFC 9457 problem with ``status`` (and ``code``), with a detail a person can read."""
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/problem+json"
    body = await resp.json()
    assert body["status"] == status and body["detail"]
    if code is not None:
        assert body["code"] == code
    return body
