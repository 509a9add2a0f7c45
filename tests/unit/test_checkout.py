"""Checkout: the saga over the REAL cart, products, orders and payment services.

The checkout under test is the one the ``service`` fixture builds, with its real peers. The tests
fill carts the way the cart stores them (the Redis hash ``cart:{user}``), and look at what the
saga did in the peers' own stores: stock counters, reservations, orders and charges in the SQLite
files of the test's data dir. Where a test needs a peer's API, it starts a contract-checked
replica of that peer on the same files (replicas sharing a store is how the services run).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from services.checkout.saga import saga_id
from services.kit import OPENAPI, SETTINGS, make_engine
from services.products import store as products_store
from tests.conftest import ServiceFactory, build_app, closed_port, service_settings
from tests.contract import ContractClient

USER = "u_alice"
OTHER = "u_bob"
KEY = "checkout-0001"
MUG, WATCH = "speckled-mug", "meridian-watch"
PEERS = ["cart", "products", "orders", "payment"]

GOOD = {"number": "4242 4242 4242 4242", "exp_month": 12, "exp_year": 2099, "cvc": "123"}
DECLINED = {**GOOD, "number": "4000000000000002"}
NO_FUNDS = {**GOOD, "number": "4000-0000-0000-9995"}

Replica = Callable[[str], Awaitable[ContractClient]]


@dataclass
class Shop:
    checkout: ContractClient
    redis: aioredis.Redis
    data: Path
    replica: Replica

    async def pay(
        self, card: dict[str, Any] = GOOD, key: str = KEY, user: str = USER
    ) -> tuple[int, dict[str, Any]]:
        resp = await self.checkout.post("/checkout", json={"card": card}, headers=_h(user, key))
        return resp.status, await resp.json()

    async def add(self, product_id: str, quantity: int, user: str = USER) -> None:
        """Put a line into the cart as the cart service stores it (no stock check on the way)."""
        await self.redis.hset(f"cart:{user}", product_id, quantity)

    async def cart_of(self, user: str = USER) -> dict[str, int]:
        return {pid: int(q) for pid, q in (await self.redis.hgetall(f"cart:{user}")).items()}

    def stock(self, *product_ids: str) -> dict[str, tuple[int, int, int]]:
        """``{id: (available, reserved, sold)}`` in the order asked for."""
        rows = self._query(
            "products",
            f"SELECT id, available, reserved, sold FROM products WHERE id IN "
            f"({','.join('?' * len(product_ids))})",
            *product_ids,
        )
        found = {pid: tuple(counters) for pid, *counters in rows}
        return {pid: found[pid] for pid in product_ids}

    def history(self, user: str = USER) -> list[dict[str, Any]]:
        rows = self._query(
            "orders",
            "SELECT id, status, cancel_reason, charge_id FROM orders WHERE user_id = ? "
            "ORDER BY seq DESC",
            user,
        )
        return [
            dict(zip(("id", "status", "cancel_reason", "charge_id"), r, strict=True)) for r in rows
        ]

    def rows(self, service: str, table: str) -> int:
        return self._query(service, f"SELECT count(*) FROM {table}")[0][0]

    def untouched(self) -> bool:
        """No stock held, no order, no charge."""
        return (
            self.rows("products", "reservations") == 0
            and self.rows("orders", "orders") == 0
            and self.rows("payment", "charges") == 0
        )

    def _query(self, service: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        with closing(sqlite3.connect(self.data / f"{service}.db")) as db:
            return db.execute(sql, args).fetchall()


def _h(user: str | None = USER, key: str | None = None) -> dict[str, str]:
    headers = {}
    if user is not None:
        headers["X-User-Id"] = user
    if key is not None:
        headers["Idempotency-Key"] = key
    return headers


@pytest.fixture
async def open_shop(  # type: ignore[no-untyped-def]
    service: ServiceFactory, aiohttp_client, tmp_path: Path, clean_redis: str
) -> AsyncIterator[Callable[..., Awaitable[Shop]]]:
    """``await open_shop(**env)``: checkout with its real peers; or around a given checkout."""
    redis = aioredis.from_url(clean_redis, decode_responses=True)

    async def replica(name: str, **env: str) -> ContractClient:
        app = build_app(name, service_settings(name, tmp_path, clean_redis, **env))
        return ContractClient(await aiohttp_client(app), app[OPENAPI])

    async def factory(checkout: ContractClient | None = None, **env: str) -> Shop:
        api = checkout or await service("checkout", peers=PEERS, **env)
        return Shop(checkout=api, redis=redis, data=tmp_path, replica=replica)

    yield factory
    await redis.aclose()


@pytest.fixture
async def shop(open_shop) -> Shop:  # type: ignore[no-untyped-def]
    return await open_shop()


# --- success -----------------------------------------------------------------------------------


async def test_checkout_pays_for_the_cart_and_sells_the_stock(shop: Shop) -> None:
    await shop.add(MUG, 3)
    await shop.add(WATCH, 1)
    (mug_free, _, mug_sold), (watch_free, _, watch_sold) = shop.stock(MUG, WATCH).values()

    status, order = await shop.pay()

    assert status == 201
    assert order["status"] == "paid" and order["user_id"] == USER
    assert order["charge_id"].startswith("ch_") and order["cancel_reason"] is None
    snapshots = {i["product_id"]: (i["quantity"], i["unit_price_cents"]) for i in order["items"]}
    assert snapshots == {MUG: (3, 899), WATCH: (1, 13900)}
    assert all(
        i["line_total_cents"] == i["quantity"] * i["unit_price_cents"] for i in order["items"]
    )
    assert order["total_cents"] == 3 * 899 + 13900 and order["currency"] == "USD"
    assert shop.stock(MUG, WATCH) == {
        MUG: (mug_free - 3, 0, mug_sold + 3),
        WATCH: (watch_free - 1, 0, watch_sold + 1),
    }
    assert await shop.cart_of() == {}
    assert shop.history() == [
        {
            "id": order["id"],
            "status": "paid",
            "cancel_reason": None,
            "charge_id": order["charge_id"],
        }
    ]


async def test_a_key_of_128_characters_still_checks_out(shop: Shop) -> None:
    await shop.add(MUG, 1)
    status, order = await shop.pay(key="k" * 128)
    assert status == 201 and order["status"] == "paid"


# --- idempotency -------------------------------------------------------------------------------


async def test_same_key_twice_is_one_order_and_one_charge(shop: Shop) -> None:
    await shop.add(MUG, 2)
    await shop.add(WATCH, 1)
    (mug_free, _, mug_sold), (watch_free, _, watch_sold) = shop.stock(MUG, WATCH).values()

    first = await shop.pay()
    await shop.add(MUG, 5)  # the cart changes; the repeat still answers the first checkout
    second = await shop.pay()

    assert first[0] == second[0] == 201
    assert first[1] == second[1]
    assert shop.rows("orders", "orders") == 1
    assert shop.rows("payment", "charges") == 1
    assert shop.stock(MUG, WATCH) == {
        MUG: (mug_free - 2, 0, mug_sold + 2),
        WATCH: (watch_free - 1, 0, watch_sold + 1),
    }
    assert await shop.cart_of() == {MUG: 5}


async def test_same_key_concurrently_is_one_order_and_one_charge(shop: Shop) -> None:
    await shop.add(MUG, 2)
    await shop.add(WATCH, 1)
    (mug_free, _, mug_sold), (watch_free, _, watch_sold) = shop.stock(MUG, WATCH).values()

    (s1, b1), (s2, b2) = await asyncio.gather(shop.pay(), shop.pay())

    assert s1 == s2 == 201, (b1, b2)
    assert b1 == b2
    assert shop.rows("orders", "orders") == 1
    assert shop.rows("payment", "charges") == 1
    assert shop.stock(MUG, WATCH) == {
        MUG: (mug_free - 2, 0, mug_sold + 2),
        WATCH: (watch_free - 1, 0, watch_sold + 1),
    }


async def test_different_keys_are_different_checkouts(shop: Shop) -> None:
    await shop.add(MUG, 1)
    s1, first = await shop.pay(key="checkout-a1")
    await shop.add(MUG, 1)
    s2, second = await shop.pay(key="checkout-b2")
    assert s1 == s2 == 201 and first["id"] != second["id"]
    assert shop.rows("payment", "charges") == 2


async def test_two_users_cannot_oversell_the_last_items(open_shop) -> None:  # type: ignore[no-untyped-def]
    shop = await open_shop(PRODUCTS_STOCK="3")
    await shop.add(WATCH, 2, user=USER)
    await shop.add(WATCH, 2, user=OTHER)

    results = await asyncio.gather(shop.pay(user=USER), shop.pay(user=OTHER))

    assert sorted(status for status, _ in results) == [201, 409]
    conflict = next(body for status, body in results if status == 409)
    assert conflict["code"] == "out_of_stock" and conflict["product_id"] == WATCH
    assert shop.stock(WATCH) == {WATCH: (1, 0, 2)}


# --- payment fails: compensation ---------------------------------------------------------------


async def test_declined_card_is_402_and_undoes_everything(shop: Shop) -> None:
    await shop.add(MUG, 2)
    await shop.add(WATCH, 1)
    stock_before = shop.stock(MUG, WATCH)

    status, problem = await shop.pay(DECLINED)

    assert status == 402
    assert problem["code"] == "card_declined" and problem["decline_code"] == "generic_decline"
    assert shop.stock(MUG, WATCH) == stock_before
    assert await shop.cart_of() == {MUG: 2, WATCH: 1}
    [order] = shop.history()
    assert order["status"] == "cancelled" and order["cancel_reason"] == "payment_declined"
    assert order["charge_id"] is None
    assert shop.rows("payment", "charges") == 1

    again = await shop.pay(DECLINED)

    assert again == (402, problem)
    assert shop.rows("payment", "charges") == 1 and shop.rows("orders", "orders") == 1
    assert shop.stock(MUG, WATCH) == stock_before
    assert await shop.cart_of() == {MUG: 2, WATCH: 1}


async def test_insufficient_funds_is_402_with_its_decline_code(shop: Shop) -> None:
    await shop.add(MUG, 1)
    before = shop.stock(MUG)
    status, problem = await shop.pay(NO_FUNDS)
    assert status == 402
    assert problem["code"] == "card_declined" and problem["decline_code"] == "insufficient_funds"
    assert shop.stock(MUG) == before
    assert [o["cancel_reason"] for o in shop.history()] == ["payment_declined"]


@pytest.mark.parametrize(
    ("card", "code"),
    [
        ({**GOOD, "number": "4242424242424241"}, "invalid_card"),  # fails Luhn
        ({**GOOD, "exp_year": 2001}, "card_expired"),
    ],
)
async def test_card_refused_by_payment_is_422_and_undone(
    shop: Shop, card: dict[str, Any], code: str
) -> None:
    await shop.add(MUG, 1)
    before = shop.stock(MUG)
    status, problem = await shop.pay(card)
    assert status == 422 and problem["code"] == code
    assert shop.stock(MUG) == before
    [order] = shop.history()
    assert order["status"] == "cancelled" and order["cancel_reason"] == "invalid_card"
    # The same key answers the stored failure; nothing new happens.
    status, again = await shop.pay(card)
    assert status == 409 and again["code"] == "checkout_failed"
    assert again["reason"] == "invalid_card" and again["order_id"] == order["id"]
    assert shop.rows("orders", "orders") == 1 and shop.stock(MUG) == before


async def test_payment_unreachable_is_503_and_undone(  # type: ignore[no-untyped-def]
    open_shop, service: ServiceFactory
) -> None:
    shop = await _closed_peer(open_shop, service, "payment")
    await shop.add(MUG, 2)
    before = shop.stock(MUG)

    status, problem = await shop.pay()

    assert status == 503
    assert problem["code"] == "payment_unavailable" and "not charged" in problem["detail"]
    assert shop.stock(MUG) == before
    assert await shop.cart_of() == {MUG: 2}
    [order] = shop.history()
    assert order["status"] == "cancelled" and order["cancel_reason"] == "payment_unavailable"

    # A repeat (a mesh retry of this very request, say) answers what the first one answered.
    status, again = await shop.pay()
    assert status == 503 and again == problem
    assert shop.stock(MUG) == before and shop.rows("orders", "orders") == 1


async def _closed_peer(open_shop, service: ServiceFactory, peer: str) -> Shop:  # type: ignore[no-untyped-def]
    """The shop, but its checkout's ``peer`` is a closed port (its other peers run)."""
    peers = await service("checkout", peers=[p for p in PEERS if p != peer])
    urls = dict(peers.app[SETTINGS].peer_urls, **{peer: f"http://127.0.0.1:{closed_port()}"})
    shop = await open_shop(peers)
    shop.checkout = await shop.replica(
        "checkout", PEER_URLS=",".join(f"{k}={v}" for k, v in urls.items())
    )
    return shop


async def test_an_order_that_cannot_be_opened_gives_the_held_stock_back(shop: Shop) -> None:
    await shop.add(MUG, 2)
    before = shop.stock(MUG)
    await shop.checkout.get("/healthz")  # (the peers have created their tables by now)
    with closing(sqlite3.connect(shop.data / "orders.db")) as db:  # orders breaks on writes
        db.execute(
            "CREATE TRIGGER broken BEFORE INSERT ON orders BEGIN SELECT RAISE(ABORT, 'disk'); END"
        )
        db.commit()

    status, problem = await shop.pay()

    assert status == 503 and problem["code"] == "orders_unavailable"
    assert shop.stock(MUG) == before  # the hold was released before the client heard
    assert shop.rows("products", "reservations") == 1  # (released, not held)
    assert shop.rows("payment", "charges") == 0


async def test_a_repeat_finishes_an_undo_left_half_done(shop: Shop) -> None:
    before = shop.stock(MUG)
    pending = await _half_done(shop)  # stock held, order pending...
    orders = await shop.replica("orders")
    resp = await orders.post(  # ...then cancelled, but the stock never given back
        f"/orders/{pending['id']}/cancel",
        json={"reason": "payment_unavailable"},
        headers=_h(USER),
    )
    assert resp.status == 200
    assert shop.stock(MUG) != before

    status, problem = await shop.pay()

    assert status == 503 and problem["code"] == "payment_unavailable"
    assert shop.stock(MUG) == before
    assert shop.rows("payment", "charges") == 0 and shop.rows("orders", "orders") == 1


# --- a checkout that stopped half-way is carried on -------------------------------------------


async def _half_done(shop: Shop) -> dict[str, Any]:
    """Steps 1-4 as a crashed checkout left them: the stock held, the order pending."""
    saga = saga_id(USER, KEY)
    line = {"product_id": MUG, "quantity": 2}
    products, orders = await shop.replica("products"), await shop.replica("orders")
    resp = await products.put(f"/reservations/{saga}", json={"items": [line]})
    assert resp.status == 201
    resp = await orders.post(
        "/orders",
        json={"items": [{**line, "name": "Mug", "unit_price_cents": 899}], "currency": "USD"},
        headers=_h(USER, saga),
    )
    assert resp.status == 201
    return await resp.json()


async def test_a_pending_checkout_is_carried_on_to_payment(shop: Shop) -> None:
    [(free, _, sold)] = shop.stock(MUG).values()
    pending = await _half_done(shop)

    status, order = await shop.pay()

    assert status == 201 and order["id"] == pending["id"] and order["status"] == "paid"
    assert order["total_cents"] == 2 * 899
    assert shop.stock(MUG) == {MUG: (free - 2, 0, sold + 2)}


async def test_a_pending_checkout_whose_hold_expired_is_cancelled(shop: Shop) -> None:
    before = shop.stock(MUG)
    pending = await _half_done(shop)
    engine = make_engine(f"sqlite+aiosqlite:///{shop.data / 'products.db'}")
    try:  # the products sweeper's own pass, 15 minutes on
        assert await products_store.expire_due(engine, now=time.time() + 3600)
    finally:
        await engine.dispose()

    status, problem = await shop.pay()

    assert status == 409 and problem["code"] == "checkout_failed"
    assert problem["reason"] == "reservation_expired"
    [order] = shop.history()
    assert order["id"] == pending["id"] and order["status"] == "cancelled"
    assert shop.rows("payment", "charges") == 0 and shop.stock(MUG) == before


async def test_a_pending_order_whose_hold_was_given_back_is_answered_as_not_opened(
    shop: Shop,
) -> None:
    # An earlier try opened the order but never heard so, and gave the stock back.
    before = shop.stock(MUG)
    pending = await _half_done(shop)
    products = await shop.replica("products")
    assert (await products.post(f"/reservations/{saga_id(USER, KEY)}/release")).status == 200

    status, problem = await shop.pay()

    assert status == 503 and problem["code"] == "orders_unavailable"
    assert "not charged" in problem["detail"]
    [order] = shop.history()
    assert order["id"] == pending["id"] and order["status"] == "cancelled"
    assert shop.rows("payment", "charges") == 0 and shop.stock(MUG) == before
    assert await shop.pay() == (status, problem)  # and so is every repeat


# --- nothing to buy ----------------------------------------------------------------------------


async def test_empty_cart_is_422_and_nothing_happens(shop: Shop) -> None:
    status, problem = await shop.pay()
    assert status == 422 and problem["code"] == "empty_cart"
    assert shop.untouched()


async def test_more_than_in_stock_is_409_and_nothing_happens(open_shop) -> None:  # type: ignore[no-untyped-def]
    shop = await open_shop(PRODUCTS_STOCK="3")
    await shop.add(MUG, 2)
    await shop.add(WATCH, 5)
    before = shop.stock(MUG, WATCH)

    status, problem = await shop.pay()

    assert status == 409
    assert problem["code"] == "out_of_stock"
    assert (problem["product_id"], problem["available"]) == (WATCH, 3)
    assert shop.stock(MUG, WATCH) == before == {MUG: (3, 0, 0), WATCH: (3, 0, 0)}
    assert shop.untouched()
    assert await shop.cart_of() == {MUG: 2, WATCH: 5}


async def test_a_product_gone_from_the_catalog_is_not_bought(shop: Shop) -> None:
    await shop.add("no-such-thing", 1)
    status, problem = await shop.pay()
    # the cart drops lines the catalog no longer has, so nothing is left to buy
    assert status == 422 and problem["code"] == "empty_cart"
    assert shop.untouched()


# --- bad requests: a 4xx problem, and nothing held, ordered or charged -------------------------

BAD_CARDS = [
    {"card": {**GOOD, "number": "4242abcd42424242"}},
    {"card": {**GOOD, "number": "42424242424"}},  # 11 digits
    {"card": {**GOOD, "number": "4" * 20}},  # 20 digits
    {"card": {**GOOD, "number": ""}},
    {"card": {**GOOD, "number": "4242\n4242 4242 4242"}},
    {"card": {**GOOD, "number": 4242424242424242}},
    {"card": {**GOOD, "exp_month": 13}},
    {"card": {**GOOD, "exp_month": 0}},
    {"card": {**GOOD, "exp_month": "12"}},
    {"card": {**GOOD, "exp_month": True}},
    {"card": {**GOOD, "exp_month": 12.5}},
    {"card": {**GOOD, "exp_year": 1999}},
    {"card": {**GOOD, "exp_year": 10**30}},
    {"card": {**GOOD, "cvc": "12345"}},
    {"card": {**GOOD, "cvc": "12"}},
    {"card": {**GOOD, "cvc": "12a"}},
    {"card": {**GOOD, "cvc": 123}},
    {"card": {k: v for k, v in GOOD.items() if k != "cvc"}},
    {"card": {**GOOD, "extra": 1}},
    {"card": None},
    {"card": [GOOD]},
    {"card": "4242424242424242"},
    {},
    {"card": GOOD, "amount_cents": 1},
    [],
    None,
]


async def test_bad_card_shapes_are_422_and_nothing_happens(shop: Shop) -> None:
    await shop.add(MUG, 1)
    before = shop.stock(MUG)
    for body in BAD_CARDS:
        resp = await shop.checkout.post(
            "/checkout",
            data=json.dumps(body),
            headers={**_h(USER, KEY), "Content-Type": "application/json"},
        )
        problem = await resp.json()
        assert resp.status == 422, body
        assert problem["code"] == "validation_failed" and problem["errors"], body
        assert "4242" not in json.dumps(problem), "the card number is never echoed"
    assert shop.stock(MUG) == before and shop.untouched()


@pytest.mark.parametrize(
    ("headers", "data", "status", "code"),
    [
        (_h(USER, None), json.dumps({"card": GOOD}), 428, "idempotency_key_missing"),
        (_h(USER, "short"), json.dumps({"card": GOOD}), 400, "idempotency_key_invalid"),
        (_h(USER, "bad key with spaces"), json.dumps({"card": GOOD}), 400, None),
        (_h(None, KEY), json.dumps({"card": GOOD}), 401, "unauthenticated"),
        (_h(USER, KEY), '{"card": {', 400, "malformed_json"),
        (_h(USER, KEY), "", 422, "validation_failed"),
        (_h(USER, KEY), json.dumps({"card": GOOD, "pad": "x" * 70_000}), 413, None),
    ],
)
async def test_bad_requests_are_problems_and_nothing_happens(
    shop: Shop, headers: dict[str, str], data: str, status: int, code: str | None
) -> None:
    await shop.add(MUG, 1)
    before = shop.stock(MUG)
    resp = await shop.checkout.post(
        "/checkout", data=data, headers={**headers, "Content-Type": "application/json"}
    )
    assert resp.status == status
    assert resp.content_type == "application/problem+json"
    if code:
        assert (await resp.json())["code"] == code
    assert shop.stock(MUG) == before and shop.untouched()


async def test_a_body_that_is_not_json_is_415(shop: Shop) -> None:
    resp = await shop.checkout.post(
        "/checkout", data="card=4242", headers={**_h(USER, KEY), "Content-Type": "text/plain"}
    )
    assert resp.status == 415 and (await resp.json())["code"] == "unsupported_media_type"


# --- the saga id ------------------------------------------------------------------------------


def test_saga_id_is_user_dot_key_when_that_is_a_valid_key() -> None:
    assert saga_id("u_3f2a", "abcdefgh") == "u_3f2a.abcdefgh"


@pytest.mark.parametrize(
    ("user", "key"),
    [("u_1", "k" * 128), ("a.b", "cdefghij"), ("alice@example.com", "abcdefgh")],
)
def test_saga_id_is_a_digest_when_the_plain_form_would_not_do(user: str, key: str) -> None:
    sid = saga_id(user, key)
    assert sid.startswith("saga:") and len(sid) <= 128 and "." not in sid
    assert sid == saga_id(user, key) and sid != saga_id("a", "b.cdefghij")


# --- health and contract -----------------------------------------------------------------------


async def test_health_readiness_and_openapi(service: ServiceFactory) -> None:
    api = await service("checkout")
    assert (await (await api.get("/healthz")).json()) == {"status": "ok", "service": "checkout"}
    assert (await api.get("/readyz")).status == 200
    doc = await (await api.get("/openapi.json")).json()
    assert "/checkout" in doc["paths"]
    assert (await api.get("/openapi.yaml")).status == 200
