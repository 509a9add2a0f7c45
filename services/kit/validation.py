"""Request parsing: JSON bodies into pydantic models, headers and ids, each failure a clear 4xx."""

from __future__ import annotations

import json
import re
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, ValidationError

from .problems import Problem

M = TypeVar("M", bound=BaseModel)

USER_HEADER = "X-User-Id"
IDEMPOTENCY_HEADER = "Idempotency-Key"
_KEY = re.compile(r"^[A-Za-z0-9_.:-]{8,128}$")


class Body(BaseModel):
    """Base for request bodies: strict types (``"3"`` is not a number) and no unknown fields."""

    model_config = ConfigDict(strict=True, extra="forbid")


async def read_json(request: web.Request, model: type[M]) -> M:
    """Parse the body as ``model``: 415 if not JSON, 400 if malformed, 422 if it does not fit."""
    if request.content_type != "application/json":
        raise Problem(415, "Send the body as application/json", code="unsupported_media_type")
    raw = await request.read()
    try:
        data = json.loads(raw) if raw else None
    except (ValueError, UnicodeDecodeError) as exc:
        raise Problem(400, f"The body is not valid JSON: {exc}", code="malformed_json") from None
    return validate(data, model)


def validate(data: Any, model: type[M]) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [
            {"field": ".".join(str(p) for p in err["loc"]) or "(body)", "message": err["msg"]}
            for err in exc.errors(include_url=False, include_input=False)
        ]
        summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        raise Problem(
            422, f"The request does not fit: {summary}", code="validation_failed", errors=errors
        ) from None


def user_id(request: web.Request) -> str:
    """The caller's user id, set by the gateway for every signed-in request (401 without it)."""
    value = request.headers.get(USER_HEADER, "")
    if not value or len(value) > 64 or not value.isprintable():
        raise Problem(401, f"This call needs the {USER_HEADER} header", code="unauthenticated")
    return value


def idempotency_key(request: web.Request) -> str:
    """The ``Idempotency-Key`` header: 428 when missing, 400 when malformed."""
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is None:
        raise Problem(
            428,
            f"This write needs an {IDEMPOTENCY_HEADER} header so that a retry cannot repeat it",
            code="idempotency_key_missing",
        )
    if not _KEY.match(key):
        raise Problem(
            400,
            f"{IDEMPOTENCY_HEADER} must be 8-128 characters of letters, digits and _ . : -",
            code="idempotency_key_invalid",
        )
    return key


def int_query(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise Problem(
            400, f"Query parameter {name!r} must be an integer", code="bad_query"
        ) from None
    if not lo <= value <= hi:
        raise Problem(
            400, f"Query parameter {name!r} must be between {lo} and {hi}", code="bad_query"
        )
    return value
