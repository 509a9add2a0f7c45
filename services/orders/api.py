"""HTTP handlers for orders: parse, call the store, answer."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from aiohttp import web
from pydantic import Field, field_validator

from services import kit
from services.kit.jsonio import json_response

from . import store

ORDER_ID = re.compile(r"^ord_[0-9a-f]{24}$")
MAX_OFFSET = 1_000_000
# The currencies an order may be charged in: the currency service's table (prices are in USD;
# the checkout converts an order's lines before it opens it).
Currency = Literal["USD", "EUR", "GBP", "CAD", "CHF"]


class Item(kit.Body):
    product_id: Annotated[str, Field(min_length=1, max_length=100)]
    name: Annotated[str, Field(min_length=1, max_length=200)]
    quantity: Annotated[int, Field(ge=1, le=1000)]
    unit_price_cents: Annotated[int, Field(ge=0, le=10_000_000)]


class NewOrder(kit.Body):
    items: Annotated[list[Item], Field(min_length=1, max_length=100)]
    currency: Currency
    shipping_cents: Annotated[int, Field(ge=0, le=10_000_000)] | None = None

    @field_validator("items")
    @classmethod
    def unique_products(cls, items: list[Item]) -> list[Item]:
        ids = [item.product_id for item in items]
        if len(set(ids)) != len(ids):
            raise ValueError("each product may appear only once")
        return items


class Payment(kit.Body):
    charge_id: Annotated[str, Field(min_length=1, max_length=64)]


class Shipment(kit.Body):
    tracking_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


class Cancellation(kit.Body):
    reason: Annotated[str, Field(min_length=1, max_length=200)]


async def create_order(request: web.Request) -> web.Response:
    user = kit.user_id(request)
    key = kit.idempotency_key(request)
    body = await kit.read_json(request, NewOrder)
    order, created = await store.create(
        request.app[kit.DB],
        user,
        key,
        [item.model_dump() for item in body.items],
        body.currency,
        body.shipping_cents,
    )
    return json_response(order, status=201 if created else 200)


async def list_orders(request: web.Request) -> web.Response:
    user = kit.user_id(request)
    limit = kit.int_query(request, "limit", 20, 1, 100)
    offset = kit.int_query(request, "offset", 0, 0, MAX_OFFSET)
    key = request.query.get("key")
    if key is not None:  # the order created with this Idempotency-Key, if any (checkout's replay)
        order = await store.by_key(request.app[kit.DB], user, key)
        found, total = ([order] if order and offset == 0 else []), (1 if order else 0)
    else:
        found, total = await store.page(request.app[kit.DB], user, limit, offset)
    return json_response({"orders": found, "total": total, "limit": limit, "offset": offset})


async def get_order(request: web.Request) -> web.Response:
    user = kit.user_id(request)
    order_id = request.match_info["order_id"]
    order = await store.get(request.app[kit.DB], user, order_id) if _is_id(order_id) else None
    if order is None:
        raise _unknown(order_id)
    return json_response(order)


async def pay_order(request: web.Request) -> web.Response:
    user = kit.user_id(request)
    order_id = request.match_info["order_id"]
    body = await kit.read_json(request, Payment)
    order, moved = await _transition(request, user, order_id, "paid", charge_id=body.charge_id)
    if not moved and not (order["status"] == "paid" and order["charge_id"] == body.charge_id):
        raise kit.Problem(
            409,
            f"Order {order_id} is {order['status']} and cannot be paid by this charge",
            code="order_not_payable",
        )
    return json_response(order)


async def cancel_order(request: web.Request) -> web.Response:
    user = kit.user_id(request)
    order_id = request.match_info["order_id"]
    body = await kit.read_json(request, Cancellation)
    order, moved = await _transition(
        request, user, order_id, "cancelled", cancel_reason=body.reason
    )
    if not moved and order["status"] != "cancelled":
        raise kit.Problem(
            409,
            f"Order {order_id} is {order['status']} and cannot be cancelled",
            code="order_not_cancellable",
        )
    return json_response(order)


async def ship_order(request: web.Request) -> web.Response:
    """Record a paid order's tracking id (a repeat with the same id changes nothing)."""
    user = kit.user_id(request)
    order_id = request.match_info["order_id"]
    body = await kit.read_json(request, Shipment)
    order = await store.ship(request.app[kit.DB], user, order_id, body.tracking_id)
    if order is None or not _is_id(order_id):
        raise _unknown(order_id)
    if order["tracking_id"] != body.tracking_id:
        raise kit.Problem(
            409,
            f"Order {order_id} cannot be shipped as {body.tracking_id}: it is {order['status']}"
            + (f", shipped as {order['tracking_id']}" if order["tracking_id"] else ""),
            code="order_not_shippable",
        )
    return json_response(order)


async def _transition(
    request: web.Request, user: str, order_id: str, status: str, **values: str
) -> tuple[store.Order, bool]:
    if not _is_id(order_id):
        raise _unknown(order_id)
    order, moved = await store.transition(request.app[kit.DB], user, order_id, status, **values)
    if order is None:
        raise _unknown(order_id)
    return order, moved


def _is_id(order_id: str) -> bool:
    return ORDER_ID.match(order_id) is not None


def _unknown(order_id: str) -> kit.Problem:
    # Someone else's order is "unknown" too: its existence is not the caller's business.
    return kit.Problem(404, f"No order {order_id!r}", code="unknown_order")


routes = [
    web.post("/orders", create_order),
    web.get("/orders", list_orders),
    web.get("/orders/{order_id}", get_order),
    web.post("/orders/{order_id}/pay", pay_order),
    web.post("/orders/{order_id}/cancel", cancel_order),
    web.post("/orders/{order_id}/ship", ship_order),
]
