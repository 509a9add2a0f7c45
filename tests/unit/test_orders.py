"""Orders: the register of pending, paid and cancelled orders, as a caller sees it."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import pytest
from sqlalchemy import func, select

from services import kit
from services.orders.store import order_items, orders
from tests.asserts import problem
from tests.contract import ContractClient

ALICE = {"X-User-Id": "u_alice"}
BOB = {"X-User-Id": "u_bob"}
MUG = {
    "product_id": "speckled-mug",
    "name": "Speckled Mug",
    "quantity": 2,
    "unit_price_cents": 1250,
}
JAR = {"product_id": "bamboo-glass-jar", "name": "Jar", "quantity": 1, "unit_price_cents": 999}
BODY = {"items": [MUG, JAR], "currency": "USD"}
UNKNOWN_ID = "ord_" + "0" * 24


@pytest.fixture
async def api(service: Any) -> ContractClient:
    return await service("orders")


def headers(user: dict[str, str] = ALICE, key: str | None = "key-00000001") -> dict[str, str]:
    return {**user, **({"Idempotency-Key": key} if key is not None else {})}


async def create(api: ContractClient, key: str = "key-00000001", user=ALICE, body=BODY) -> dict:  # type: ignore[no-untyped-def]
    resp = await api.post("/orders", json=body, headers=headers(user, key))
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def rows(api: ContractClient) -> tuple[int, int]:
    async with api.app[kit.DB].connect() as conn:
        n_orders = await conn.scalar(select(func.count()).select_from(orders))
        n_items = await conn.scalar(select(func.count()).select_from(order_items))
    return n_orders, n_items


# --- happy paths ---------------------------------------------------------------------------


async def test_create_snapshots_items_and_computes_totals(api: ContractClient) -> None:
    order = await create(api)
    assert re.fullmatch(r"ord_[0-9a-f]{24}", order["id"])
    assert order["user_id"] == "u_alice" and order["status"] == "pending"
    assert order["items"] == [
        {**MUG, "line_total_cents": 2500},
        {**JAR, "line_total_cents": 999},
    ]
    assert order["total_cents"] == 3499 and order["currency"] == "USD"
    assert order["charge_id"] is None and order["cancel_reason"] is None
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", order["created_at"])
    assert order["updated_at"] == order["created_at"]


async def test_repeat_key_answers_200_with_the_same_order_and_writes_once(
    api: ContractClient,
) -> None:
    first = await create(api)
    other_body = {"items": [{**JAR, "quantity": 7}], "currency": "USD"}
    resp = await api.post("/orders", json=other_body, headers=headers())
    assert resp.status == 200
    assert await resp.json() == first
    assert await rows(api) == (1, 2)
    # Keys are scoped per user: Bob's same key is his own, new order.
    bobs = await create(api, user=BOB)
    assert bobs["id"] != first["id"] and bobs["user_id"] == "u_bob"
    assert await rows(api) == (2, 4)


async def test_concurrent_creates_with_one_key_make_one_order(api: ContractClient) -> None:
    replies = await asyncio.gather(
        *(api.post("/orders", json=BODY, headers=headers()) for _ in range(6))
    )
    assert sorted(r.status for r in replies) == [200] * 5 + [201]
    assert len({(await r.json())["id"] for r in replies}) == 1
    assert await rows(api) == (1, 2)


async def test_get_and_find_by_key(api: ContractClient) -> None:
    order = await create(api, key="checkout-key:1")
    await create(api, key="checkout-key:2")
    resp = await api.get(f"/orders/{order['id']}", headers=ALICE)
    assert resp.status == 200 and await resp.json() == order
    resp = await api.get("/orders", params={"key": "checkout-key:1"}, headers=ALICE)
    assert resp.status == 200
    assert (await resp.json())["orders"] == [order] and (await resp.json())["total"] == 1
    resp = await api.get("/orders", params={"key": "never-used-key"}, headers=ALICE)
    assert resp.status == 200  # not a 404: "none yet" is a normal answer
    assert (await resp.json())["orders"] == [] and (await resp.json())["total"] == 0


async def test_another_users_order_is_unknown_not_forbidden(api: ContractClient) -> None:
    order = await create(api, key="alice-key-1")
    oid = order["id"]
    await problem(await api.get(f"/orders/{oid}", headers=BOB), 404, "unknown_order")
    resp = await api.get("/orders", params={"key": "alice-key-1"}, headers=BOB)
    assert (await resp.json())["orders"] == []
    resp = await api.post(f"/orders/{oid}/pay", json={"charge_id": "ch_x"}, headers=BOB)
    await problem(resp, 404, "unknown_order")
    resp = await api.post(f"/orders/{oid}/cancel", json={"reason": "mine now"}, headers=BOB)
    await problem(resp, 404, "unknown_order")
    page = await (await api.get("/orders", headers=BOB)).json()
    assert page == {"orders": [], "total": 0, "limit": 20, "offset": 0}
    assert await (await api.get(f"/orders/{oid}", headers=ALICE)).json() == order


async def test_list_pages_newest_first_with_total(api: ContractClient) -> None:
    made = [await create(api, key=f"key-{i:08d}") for i in range(5)]
    await create(api, key="bobs-key-1", user=BOB)
    newest_first = [o["id"] for o in reversed(made)]

    resp = await api.get("/orders", headers=ALICE)
    page = await resp.json()
    assert resp.status == 200
    assert [o["id"] for o in page["orders"]] == newest_first
    assert (page["total"], page["limit"], page["offset"]) == (5, 20, 0)

    page = await (await api.get("/orders?limit=2&offset=0", headers=ALICE)).json()
    assert [o["id"] for o in page["orders"]] == newest_first[:2]
    assert (page["total"], page["limit"], page["offset"]) == (5, 2, 0)
    page = await (await api.get("/orders?limit=2&offset=2", headers=ALICE)).json()
    assert [o["id"] for o in page["orders"]] == newest_first[2:4]
    page = await (await api.get("/orders?limit=2&offset=4", headers=ALICE)).json()
    assert [o["id"] for o in page["orders"]] == newest_first[4:]
    page = await (await api.get("/orders?offset=50", headers=ALICE)).json()
    assert page["orders"] == [] and page["total"] == 5


async def test_list_orders_carry_their_items(api: ContractClient) -> None:
    order = await create(api)
    page = await (await api.get("/orders?limit=1", headers=ALICE)).json()
    assert page["orders"] == [order]


# --- state transitions ---------------------------------------------------------------------


async def test_pay_is_forward_only_and_idempotent_per_charge(api: ContractClient) -> None:
    order = await create(api)
    resp = await api.post(f"/orders/{order['id']}/pay", json={"charge_id": "ch_1"}, headers=ALICE)
    paid = await resp.json()
    assert resp.status == 200
    assert paid["status"] == "paid" and paid["charge_id"] == "ch_1"
    assert paid["items"] == order["items"] and paid["total_cents"] == order["total_cents"]

    again = await api.post(f"/orders/{order['id']}/pay", json={"charge_id": "ch_1"}, headers=ALICE)
    assert again.status == 200 and await again.json() == paid

    other = await api.post(f"/orders/{order['id']}/pay", json={"charge_id": "ch_2"}, headers=ALICE)
    await problem(other, 409, "order_not_payable")
    cancel = await api.post(f"/orders/{order['id']}/cancel", json={"reason": "x"}, headers=ALICE)
    await problem(cancel, 409, "order_not_cancellable")
    assert await (await api.get(f"/orders/{order['id']}", headers=ALICE)).json() == paid


async def test_cancel_is_forward_only_and_idempotent(api: ContractClient) -> None:
    order = await create(api)
    path = f"/orders/{order['id']}"
    resp = await api.post(f"{path}/cancel", json={"reason": "payment_declined"}, headers=ALICE)
    cancelled = await resp.json()
    assert resp.status == 200
    assert cancelled["status"] == "cancelled"
    assert cancelled["cancel_reason"] == "payment_declined" and cancelled["charge_id"] is None

    again = await api.post(f"{path}/cancel", json={"reason": "another"}, headers=ALICE)
    assert again.status == 200 and await again.json() == cancelled

    pay = await api.post(f"{path}/pay", json={"charge_id": "ch_1"}, headers=ALICE)
    await problem(pay, 409, "order_not_payable")
    assert await (await api.get(path, headers=ALICE)).json() == cancelled


async def test_racing_pay_and_cancel_one_wins(api: ContractClient) -> None:
    order = await create(api)
    path = f"/orders/{order['id']}"
    pay, cancel = await asyncio.gather(
        api.post(f"{path}/pay", json={"charge_id": "ch_1"}, headers=ALICE),
        api.post(f"{path}/cancel", json={"reason": "too slow"}, headers=ALICE),
    )
    assert sorted([pay.status, cancel.status]) == [200, 409]
    final = await (await api.get(path, headers=ALICE)).json()
    assert final["status"] == ("paid" if pay.status == 200 else "cancelled")


@pytest.mark.parametrize("order_id", [UNKNOWN_ID, "nope", "ord_XYZ", "ord_" + "a" * 25])
async def test_unknown_or_malformed_order_ids_are_404(api: ContractClient, order_id: str) -> None:
    await create(api)
    await problem(await api.get(f"/orders/{order_id}", headers=ALICE), 404, "unknown_order")
    pay = await api.post(f"/orders/{order_id}/pay", json={"charge_id": "c"}, headers=ALICE)
    await problem(pay, 404, "unknown_order")
    cancel = await api.post(f"/orders/{order_id}/cancel", json={"reason": "r"}, headers=ALICE)
    await problem(cancel, 404, "unknown_order")


# --- bad input: a 4xx problem, and nothing written ----------------------------------------


def _items(n: int) -> list[dict]:
    return [{**MUG, "product_id": f"p{i}"} for i in range(n)]


BAD_BODIES = [
    pytest.param(b'{"items": [', 400, "malformed_json", id="malformed-json"),
    pytest.param(b"", 422, "validation_failed", id="empty-body"),
    pytest.param(b"[]", 422, "validation_failed", id="array-body"),
    pytest.param({"items": [{**MUG, "quantity": "2"}], "currency": "USD"}, 422, None, id="qty-str"),
    pytest.param(
        {"items": [{**MUG, "quantity": 2.0}], "currency": "USD"}, 422, None, id="qty-float"
    ),
    pytest.param(
        {"items": [{**MUG, "quantity": True}], "currency": "USD"}, 422, None, id="qty-bool"
    ),
    pytest.param({"items": [{**MUG, "quantity": 0}], "currency": "USD"}, 422, None, id="qty-0"),
    pytest.param({"items": [{**MUG, "quantity": -1}], "currency": "USD"}, 422, None, id="qty-neg"),
    pytest.param(
        {"items": [{**MUG, "quantity": 1001}], "currency": "USD"}, 422, None, id="qty-big"
    ),
    pytest.param({"items": [{**MUG, "quantity": 10**40}], "currency": "USD"}, 422, None, id="huge"),
    pytest.param(
        {"items": [{**MUG, "unit_price_cents": -1}], "currency": "USD"}, 422, None, id="price-neg"
    ),
    pytest.param(
        {"items": [{**MUG, "unit_price_cents": 10_000_001}], "currency": "USD"},
        422,
        None,
        id="price-big",
    ),
    pytest.param({"items": [{**MUG, "name": ""}], "currency": "USD"}, 422, None, id="empty-name"),
    pytest.param({"items": [{**MUG, "product_id": 7}], "currency": "USD"}, 422, None, id="id-int"),
    pytest.param({"items": [], "currency": "USD"}, 422, None, id="no-items"),
    pytest.param({"items": _items(101), "currency": "USD"}, 422, None, id="101-items"),
    pytest.param({"items": [MUG, {**MUG, "quantity": 1}], "currency": "USD"}, 422, None, id="dup"),
    pytest.param({"items": [MUG], "currency": "JPY"}, 422, None, id="currency"),
    pytest.param({"items": [MUG]}, 422, None, id="no-currency"),
    pytest.param({"items": [MUG], "currency": "USD", "total": 1}, 422, None, id="extra-field"),
    pytest.param({"items": [{**MUG, "line_total_cents": 1}], "currency": "USD"}, 422, None, id="x"),
    pytest.param({"items": "mug", "currency": "USD"}, 422, None, id="items-str"),
]


@pytest.mark.parametrize(("body", "status", "code"), BAD_BODIES)
async def test_bad_order_bodies_are_problems_and_write_nothing(
    api: ContractClient, body: Any, status: int, code: str | None
) -> None:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    resp = await api.post(
        "/orders", data=data, headers={**headers(), "Content-Type": "application/json"}
    )
    err = await problem(resp, status, code or "validation_failed")
    if status == 422:
        assert err["errors"]
    assert await rows(api) == (0, 0)


async def test_a_full_order_of_100_items_is_fine(api: ContractClient) -> None:
    order = await create(api, body={"items": _items(100), "currency": "USD"})
    assert len(order["items"]) == 100 and order["total_cents"] == 100 * 2500


@pytest.mark.parametrize(
    ("hdrs", "status", "code"),
    [
        ({"Idempotency-Key": "key-00000001"}, 401, "unauthenticated"),
        ({**ALICE}, 428, "idempotency_key_missing"),
        ({**ALICE, "Idempotency-Key": "short"}, 400, "idempotency_key_invalid"),
        ({**ALICE, "Idempotency-Key": "has spaces in it"}, 400, "idempotency_key_invalid"),
        ({**ALICE, "Idempotency-Key": "k" * 129}, 400, "idempotency_key_invalid"),
    ],
)
async def test_create_needs_user_and_a_good_key(
    api: ContractClient, hdrs: dict[str, str], status: int, code: str
) -> None:
    await problem(await api.post("/orders", json=BODY, headers=hdrs), status, code)
    assert await rows(api) == (0, 0)


async def test_wrong_content_type_is_415(api: ContractClient) -> None:
    resp = await api.post(
        "/orders", data=json.dumps(BODY), headers={**headers(), "Content-Type": "text/plain"}
    )
    await problem(resp, 415, "unsupported_media_type")
    assert await rows(api) == (0, 0)


async def test_oversized_body_is_413(api: ContractClient) -> None:
    big = {"items": [{**MUG, "name": "x" * (70 * 1024)}], "currency": "USD"}
    await problem(await api.post("/orders", json=big, headers=headers()), 413)
    assert await rows(api) == (0, 0)


async def test_reads_need_a_user(api: ContractClient) -> None:
    order = await create(api)
    await problem(await api.get("/orders"), 401, "unauthenticated")
    await problem(await api.get(f"/orders/{order['id']}"), 401, "unauthenticated")
    await problem(await api.get("/orders?key=key-00000001"), 401, "unauthenticated")


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=101",
        "limit=-5",
        "limit=ten",
        "limit=",
        "offset=-1",
        "offset=1.5",
        "offset=99999999999999999999",
    ],
)
async def test_bad_paging_params_are_400(api: ContractClient, query: str) -> None:
    await problem(await api.get(f"/orders?{query}", headers=ALICE), 400, "bad_query")


@pytest.mark.parametrize(
    ("action", "body", "status"),
    [
        ("pay", b"{", 400),
        ("pay", {}, 422),
        ("pay", {"charge_id": ""}, 422),
        ("pay", {"charge_id": 12}, 422),
        ("pay", {"charge_id": "ch_1", "status": "paid"}, 422),
        ("cancel", b"not json", 400),
        ("cancel", {}, 422),
        ("cancel", {"reason": ""}, 422),
        ("cancel", {"reason": "r" * 201}, 422),
        ("cancel", {"reason": None}, 422),
    ],
)
async def test_bad_transition_bodies_leave_the_order_pending(
    api: ContractClient, action: str, body: Any, status: int
) -> None:
    order = await create(api)
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    resp = await api.post(
        f"/orders/{order['id']}/{action}",
        data=data,
        headers={**ALICE, "Content-Type": "application/json"},
    )
    await problem(resp, status)
    assert await (await api.get(f"/orders/{order['id']}", headers=ALICE)).json() == order


async def test_transitions_need_a_user(api: ContractClient) -> None:
    order = await create(api)
    await problem(await api.post(f"/orders/{order['id']}/pay", json={"charge_id": "c"}), 401)
    await problem(await api.post(f"/orders/{order['id']}/cancel", json={"reason": "r"}), 401)
    assert await (await api.get(f"/orders/{order['id']}", headers=ALICE)).json() == order


async def test_health_readiness_and_contract(api: ContractClient) -> None:
    assert await (await api.get("/healthz")).json() == {"status": "ok", "service": "orders"}
    ready = await api.get("/readyz")
    assert ready.status == 200 and (await ready.json())["checks"] == {"database": "ok"}
    doc = await (await api.get("/openapi.json")).json()
    assert set(doc["paths"]) == {
        r.resource.canonical for r in api.app.router.routes() if r.resource is not None
    }
    assert (await api.get("/openapi.yaml")).status == 200
