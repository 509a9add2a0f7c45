"""HTTP handlers for e-mails: queue a confirmation (202, at once), list and read the user's."""

from __future__ import annotations

import re
from typing import Annotated

from aiohttp import web
from pydantic import Field

from services import kit
from services.kit.jsonio import json_response

from . import render, store
from .sender import WAKE

EMAIL_ID = re.compile(r"^em_[0-9a-f]{24}$")
Cents = Annotated[int, Field(ge=0, le=10**12)]


class Line(kit.Body):
    name: Annotated[str, Field(min_length=1, max_length=200)]
    quantity: Annotated[int, Field(ge=1, le=1000)]
    unit_price_cents: Cents
    line_total_cents: Cents


class ConfirmedOrder(kit.Body):
    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
    created_at: Annotated[str, Field(min_length=1, max_length=32)]
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
    items: Annotated[list[Line], Field(min_length=1, max_length=100)]
    shipping_cents: Cents | None = None
    total_cents: Cents
    tracking_id: Annotated[str, Field(max_length=64)] | None = None


class Confirmation(kit.Body):
    order: ConfirmedOrder


async def queue_confirmation(request: web.Request) -> web.Response:
    """Queue the order's confirmation and answer at once; the sender delivers it."""
    user = kit.user_id(request)
    key = kit.idempotency_key(request)
    body = await kit.read_json(request, Confirmation)
    order = body.order.model_dump()
    email, _ = await store.enqueue(
        request.app[kit.DB],
        user,
        key,
        order_id=body.order.id,
        subject=render.subject(order),
        payload=order,
    )
    request.app[WAKE].set()
    return json_response(store.summary(email), status=202)


async def list_emails(request: web.Request) -> web.Response:
    user = kit.user_id(request)
    limit = kit.int_query(request, "limit", 20, 1, 100)
    offset = kit.int_query(request, "offset", 0, 0, 1_000_000)
    found, total = await store.page(request.app[kit.DB], user, limit, offset)
    return json_response(
        {
            "emails": [store.summary(e) for e in found],
            "total": total,
            "limit": limit,
            "offset": offset,
        }
    )


async def get_email(request: web.Request) -> web.Response:
    user = kit.user_id(request)
    email_id = request.match_info["email_id"]
    found = None
    if EMAIL_ID.match(email_id):
        found = await store.get(request.app[kit.DB], user, email_id)
    if found is None:  # someone else's is unknown too
        raise kit.Problem(404, f"No e-mail {email_id!r}", code="unknown_email")
    return json_response(store.public(found))


routes = [
    web.post("/emails", queue_confirmation),
    web.get("/emails", list_emails),
    web.get("/emails/{email_id}", get_email),
]
