"""Ratings: buyers rate what they bought, once per order line, checked with the real orders."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func, select

from services import kit
from services.ratings.store import ratings
from tests.asserts import ok, problem
from tests.conftest import build_app, closed_port, service_settings
from tests.contract import ContractClient

ALICE = {"X-User-Id": "u_alice"}
BOB = {"X-User-Id": "u_bob"}
MUG, JAR = "speckled-mug", "bamboo-glass-jar"


@pytest.fixture
async def api(service: Any) -> ContractClient:
    return await service("ratings", peers=["orders"])


async def order(api: ContractClient, user: dict[str, str], paid: bool = True) -> str:
    """An order of a mug and a jar for ``user``, made (and paid) at the real orders service."""
    base = api.app[kit.SETTINGS].peer_urls["orders"]
    items = [
        {"product_id": p, "name": p, "quantity": 1, "unit_price_cents": 100} for p in (MUG, JAR)
    ]
    async with aiohttp.ClientSession() as http:
        headers = {**user, "Idempotency-Key": f"key-{uuid.uuid4()}"}
        async with http.post(
            f"{base}/orders", json={"items": items, "currency": "USD"}, headers=headers
        ) as resp:
            assert resp.status == 201, await resp.text()
            order_id = (await resp.json())["id"]
        if paid:
            pay = {"charge_id": "ch_test"}
            async with http.post(f"{base}/orders/{order_id}/pay", json=pay, headers=user) as resp:
                assert resp.status == 200, await resp.text()
    return order_id


async def rate(
    api: ContractClient, order_id: str, rating: Any, user: dict[str, str] = ALICE, pid: str = MUG
) -> aiohttp.ClientResponse:
    body = {"order_id": order_id, "product_id": pid, "rating": rating}
    return await api.post("/ratings", json=body, headers=user)


async def stored(api: ContractClient) -> int:
    async with api.app[kit.DB].connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(ratings)) or 0)


async def summary(api: ContractClient, pid: str = MUG) -> dict[str, Any]:
    return await ok(await api.get(f"/ratings/{pid}"))


async def test_buyers_rate_and_the_product_s_summary_counts_and_averages(
    api: ContractClient,
) -> None:
    assert await summary(api) == {"product_id": MUG, "count": 0, "average": None}
    first = await ok(await rate(api, await order(api, ALICE), 5), 201)
    assert first["rating"] == 5 and first["summary"] == {
        "product_id": MUG,
        "count": 1,
        "average": 5,
    }
    await ok(await rate(api, await order(api, BOB), 2, BOB), 201)
    assert await summary(api) == {"product_id": MUG, "count": 2, "average": 3.5}
    assert (await summary(api, JAR))["count"] == 0  # per product


async def test_each_line_of_an_order_is_rated_once_and_a_second_try_is_a_409(
    api: ContractClient,
) -> None:
    order_id = await order(api, ALICE)
    await ok(await rate(api, order_id, 4), 201)
    again = await problem(await rate(api, order_id, 1), 409, "already_rated")
    assert "(4 of 5)" in again["detail"] and again["order_id"] == order_id
    assert await summary(api) == {"product_id": MUG, "count": 1, "average": 4}
    await ok(await rate(api, order_id, 3, pid=JAR), 201)  # the order's other line
    mine = await ok(await api.get(f"/ratings?order_id={order_id}", headers=ALICE))
    assert [(r["product_id"], r["rating"]) for r in mine["ratings"]] == [(JAR, 3), (MUG, 4)]
    theirs = await ok(await api.get(f"/ratings?order_id={order_id}", headers=BOB))
    assert theirs["ratings"] == []


@pytest.mark.parametrize("rating", [0, 6, -1, "5", 4.5, None, True])
async def test_a_rating_outside_1_to_5_is_a_422_and_stores_nothing(
    api: ContractClient, rating: Any
) -> None:
    order_id = await order(api, ALICE)
    await problem(await rate(api, order_id, rating), 422, "validation_failed")
    assert await stored(api) == 0


async def test_only_a_buyer_of_the_product_may_rate_it(api: ContractClient) -> None:
    alices = await order(api, ALICE)
    pending = await order(api, ALICE, paid=False)
    cases = [
        (await rate(api, alices, 5, pid="city-bike"), "does not include city-bike"),
        (await rate(api, pending, 5), "is pending, not paid"),
        (await rate(api, alices, 5, BOB), "no order"),  # someone else's order
        (await rate(api, "ord_" + "0" * 24, 5), "no order"),
    ]
    for resp, why in cases:
        body = await problem(resp, 403, "not_purchased")
        assert why in body["detail"]
    assert await stored(api) == 0
    await ok(await rate(api, alices, 5), 201)  # Alice's own still rates
    await problem(await rate(api, alices, 1, BOB), 403, "not_purchased")  # never Bob's 409


async def test_malformed_calls_get_a_clear_4xx(api: ContractClient) -> None:
    order_id = await order(api, ALICE)
    await problem(await api.post("/ratings", json={"order_id": order_id}), 401, "unauthenticated")
    bad_order = {"order_id": "42", "product_id": MUG, "rating": 3}
    await problem(await api.post("/ratings", json=bad_order, headers=ALICE), 422)
    extra = {"order_id": order_id, "product_id": MUG, "rating": 3, "stars": 3}
    await problem(await api.post("/ratings", json=extra, headers=ALICE), 422)
    resp = await api.post(
        "/ratings", data="{", headers={**ALICE, "Content-Type": "application/json"}
    )
    await problem(resp, 400, "malformed_json")
    await problem(await api.get("/ratings?order_id=nope", headers=ALICE), 400, "bad_query")
    await problem(await api.get("/ratings/NOT_AN_ID"), 404, "unknown_product")
    assert await stored(api) == 0


async def test_orders_unreachable_is_a_503_and_nothing_is_rated(
    aiohttp_client: Any, tmp_path: Path, clean_redis: str
) -> None:
    closed = f"orders=http://127.0.0.1:{closed_port()}"
    app = build_app("ratings", service_settings("ratings", tmp_path, clean_redis, PEER_URLS=closed))
    api = ContractClient(await aiohttp_client(app), app[kit.OPENAPI])
    body = await problem(await rate(api, "ord_" + "1" * 24, 5), 503, "dependency_unavailable")
    assert body["dependency"] == "orders"
    assert await stored(api) == 0
