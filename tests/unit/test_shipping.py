"""Shipping: quotes by zone and item count, and keyed shipments with stable tracking ids."""

from __future__ import annotations

from typing import Any

import pytest

from services.shipping import rates
from tests.asserts import ok, problem
from tests.conftest import ServiceFactory

HOME = {
    "name": "Ada Lovelace",
    "street": "12 St James's Square",
    "city": "London",
    "postal_code": "SW1Y 4JH",
    "country": "GB",
}
ITEMS = [
    {"product_id": "speckled-mug", "quantity": 2},
    {"product_id": "meridian-watch", "quantity": 1},
]
KEY = {"Idempotency-Key": "u_alice.checkout-0001"}


@pytest.mark.parametrize(
    ("country", "items", "cents"),
    [("US", 1, 499), ("US", 3, 697), ("CA", 2, 1048), ("GB", 3, 1697), ("JP", 1, 1999)],
)
def test_a_quote_is_the_zones_base_and_a_price_per_further_item(
    country: str, items: int, cents: int
) -> None:
    assert rates.cost_cents(country, items) == cents


def test_a_tracking_id_is_stable_per_key_and_order() -> None:
    first = rates.tracking_id("key-0001", "ord_1")
    assert first == rates.tracking_id("key-0001", "ord_1")
    assert first != rates.tracking_id("key-0002", "ord_1")
    assert first.startswith("BP") and len(first) == 20


async def test_a_quote_for_a_cart_to_an_address(service: ServiceFactory) -> None:
    client = await service("shipping")
    quote = await ok(await client.post("/quotes", json={"address": HOME, "items": ITEMS}))
    assert quote == {
        "cost_cents": 1697,
        "currency": "USD",
        "carrier": "Boutique Post",
        "zone": "europe",
        "days": 8,
        "items": 3,
    }


async def test_a_shipment_repeated_with_its_key_is_the_same(service: ServiceFactory) -> None:
    client = await service("shipping")
    body = {"order_id": "ord_5d41402abc4b2a76b9719d91", "address": HOME, "items": ITEMS}
    first = await ok(await client.post("/shipments", json=body, headers=KEY), 201)
    again = await ok(await client.post("/shipments", json=body, headers=KEY), 201)
    assert first == again and first["tracking_id"].startswith("BP")
    other = {"Idempotency-Key": "u_alice.checkout-0002"}
    assert (await ok(await client.post("/shipments", json=body, headers=other), 201))[
        "tracking_id"
    ] != first["tracking_id"]


@pytest.mark.parametrize(
    "body",
    [
        {"address": HOME, "items": []},
        {"address": {**HOME, "country": "gb"}, "items": ITEMS},
        {"address": {**HOME, "city": ""}, "items": ITEMS},
        {"address": HOME, "items": [{"product_id": "x", "quantity": 0}]},
        {"address": HOME, "items": [{"product_id": "x", "quantity": "2"}]},
        {"address": HOME, "items": ITEMS, "coupon": "FREE"},
        {"items": ITEMS},
    ],
)
async def test_a_bad_quote_is_a_422(service: ServiceFactory, body: dict[str, Any]) -> None:
    client = await service("shipping")
    await problem(await client.post("/quotes", json=body), 422, "validation_failed")


async def test_a_shipment_needs_a_key_and_json(service: ServiceFactory) -> None:
    client = await service("shipping")
    body = {"order_id": "ord_1", "address": HOME, "items": ITEMS}
    await problem(await client.post("/shipments", json=body), 428, "idempotency_key_missing")
    bad_key = {"Idempotency-Key": "short"}
    await problem(await client.post("/shipments", json=body, headers=bad_key), 400)
    await problem(
        await client.post(
            "/shipments", data="{", headers={**KEY, "Content-Type": "application/json"}
        ),
        400,
        "malformed_json",
    )
    await problem(await client.post("/quotes", data="x"), 415, "unsupported_media_type")
