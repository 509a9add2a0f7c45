"""HTTP handlers for shipping: quote a cart to an address; ship a paid order (keyed)."""

from __future__ import annotations

from typing import Annotated

from aiohttp import web
from pydantic import Field

from services import kit

from . import rates

COUNTRY = r"^[A-Z]{2}$"


class Address(kit.Body):
    name: Annotated[str, Field(min_length=1, max_length=100)]
    street: Annotated[str, Field(min_length=1, max_length=200)]
    city: Annotated[str, Field(min_length=1, max_length=100)]
    postal_code: Annotated[str, Field(min_length=1, max_length=20)]
    country: Annotated[str, Field(pattern=COUNTRY)]


class Item(kit.Body):
    product_id: Annotated[str, Field(min_length=1, max_length=100)]
    quantity: Annotated[int, Field(ge=1, le=1000)]


class QuoteRequest(kit.Body):
    address: Address
    items: Annotated[list[Item], Field(min_length=1, max_length=100)]


class ShipmentRequest(QuoteRequest):
    order_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


def _quote(body: QuoteRequest) -> dict[str, object]:
    count = sum(item.quantity for item in body.items)
    zone = rates.zone(body.address.country)
    return {
        "cost_cents": rates.cost_cents(body.address.country, count),
        "currency": rates.CURRENCY,
        "carrier": rates.CARRIER,
        "zone": zone.name,
        "days": zone.days,
        "items": count,
    }


async def quote(request: web.Request) -> web.Response:
    body = await kit.read_json(request, QuoteRequest)
    return web.json_response(_quote(body))


async def ship(request: web.Request) -> web.Response:
    """A paid order handed to the carrier: its tracking id (a repeat with the key: the same)."""
    key = kit.idempotency_key(request)
    body = await kit.read_json(request, ShipmentRequest)
    shipment = {
        "tracking_id": rates.tracking_id(key, body.order_id),
        "order_id": body.order_id,
        **_quote(body),
    }
    return web.json_response(shipment, status=201)


routes = [
    web.post("/quotes", quote),
    web.post("/shipments", ship),
]
