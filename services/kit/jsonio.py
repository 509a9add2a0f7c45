"""JSON in and out with orjson: several times faster than the standard library, and it encodes
straight to the UTF-8 bytes a response body is (no ``str`` in between)."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

JSON_TYPE = "application/json"
loads = orjson.loads


def dumps(data: Any) -> bytes:
    """``data`` as compact UTF-8 JSON."""
    return orjson.dumps(data)


def json_body(body: bytes, *, status: int = 200) -> web.Response:
    """A JSON response from an already encoded body (a cached one, or a peer's, passed on)."""
    return web.Response(body=body, status=status, content_type=JSON_TYPE, charset="utf-8")


def json_response(data: Any, *, status: int = 200) -> web.Response:
    """``web.json_response``, encoded by orjson."""
    return json_body(orjson.dumps(data), status=status)
