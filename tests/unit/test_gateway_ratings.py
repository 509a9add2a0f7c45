"""The gateway's ratings routes (issue 16): a buyer rates through the public API, over the real
ratings, orders and shop services."""

from __future__ import annotations

import uuid

import pytest

from tests.asserts import ok, problem
from tests.conftest import ServiceFactory
from tests.contract import ContractClient
from tests.unit.test_gateway import GOOD_CARD, PEERS, signed_in

MUG, JAR = "speckled-mug", "bamboo-glass-jar"


@pytest.fixture
async def shop(service: ServiceFactory) -> ContractClient:
    return await service("gateway", peers=[*PEERS, "ratings"], PAYMENT_LATENCY_MS="0")


async def buy(shop: ContractClient, auth: dict[str, str], product: str = MUG) -> str:
    await ok(await shop.put(f"/api/cart/items/{product}", json={"quantity": 1}, headers=auth))
    paying = {**auth, "Idempotency-Key": uuid.uuid4().hex}
    order = await ok(
        await shop.post("/api/checkout", json={"card": GOOD_CARD}, headers=paying), 201
    )
    return order["id"]


async def rate(shop: ContractClient, auth: dict[str, str], order_id: str, rating: object) -> object:
    body = {"order_id": order_id, "rating": rating}
    return await shop.post(f"/api/products/{MUG}/ratings", json=body, headers=auth)


async def test_a_buyer_rates_once_and_the_product_shows_the_average(shop: ContractClient) -> None:
    ada = await signed_in(shop, "ada@example.com")
    order_id = await buy(shop, ada)
    assert await ok(await shop.get(f"/api/products/{MUG}/ratings")) == {
        "product_id": MUG,
        "count": 0,
        "average": None,
    }
    rated = await ok(await rate(shop, ada, order_id, 4), 201)
    assert rated["summary"] == {"product_id": MUG, "count": 1, "average": 4}
    assert (await ok(await shop.get(f"/api/products/{MUG}/ratings")))["average"] == 4
    mine = await ok(await shop.get(f"/api/orders/{order_id}/ratings", headers=ada))
    assert [(r["product_id"], r["rating"]) for r in mine["ratings"]] == [(MUG, 4)]
    await problem(await rate(shop, ada, order_id, 1), 409, "already_rated")
    assert (await ok(await shop.get(f"/api/products/{MUG}/ratings")))["count"] == 1


async def test_bad_ratings_and_non_buyers_get_a_clear_4xx_and_change_nothing(
    shop: ContractClient,
) -> None:
    ada = await signed_in(shop, "ada@example.com")
    bob = await signed_in(shop, "bob@example.com")
    order_id = await buy(shop, ada, JAR)  # Ada bought the jar, not the mug
    for bad in (0, 6, "5", None):
        await problem(await rate(shop, ada, order_id, bad), 422, "validation_failed")
    await problem(await rate(shop, ada, "ord_nope", 5), 422, "validation_failed")
    await problem(await rate(shop, ada, order_id, 5), 403, "not_purchased")  # not the mug
    await problem(await rate(shop, bob, order_id, 5), 403, "not_purchased")  # not Bob's order
    await problem(await rate(shop, {}, order_id, 5), 401, "unauthenticated")
    body = {"order_id": order_id, "rating": 5}
    resp = await shop.post("/api/products/NO_SUCH/ratings", json=body, headers=ada)
    await problem(resp, 404, "unknown_product")
    assert (await ok(await shop.get(f"/api/products/{MUG}/ratings")))["count"] == 0
    await problem(await shop.get(f"/api/orders/{order_id}/ratings"), 401, "unauthenticated")
