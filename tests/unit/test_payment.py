"""Payment: card rules, the simulated card network, and charges against the real orders and cart."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sqlite3
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp import ClientResponse
from sqlalchemy import select

from services import kit
from services.payment import cards
from services.payment.api import LATENCY
from services.payment.app import create_app, parse_latency
from services.payment.store import charges
from tests.asserts import problem
from tests.conftest import build_app, closed_port, service_settings
from tests.contract import ContractClient

ALICE = {"X-User-Id": "u_alice"}
BOB = {"X-User-Id": "u_bob"}
KEY = "u_alice.checkout-0001"
VISA = "4242424242424242"
GENERIC_DECLINE = "4000000000000002"
INSUFFICIENT_FUNDS = "4000000000009995"
CVC = "9371"
# cart's DELETE /cart (all payment asks of it) does not call products, so products is not started.
PEERS = ["orders", "cart"]
TODAY = datetime.now(UTC).date()
ITEMS = [
    {"product_id": "speckled-mug", "name": "Speckled Mug", "quantity": 2, "unit_price_cents": 1250}
]


# --- cards.py: pure rules --------------------------------------------------------------------


@pytest.mark.parametrize(
    "number",
    [
        VISA,
        GENERIC_DECLINE,
        INSUFFICIENT_FUNDS,
        "5555555555554444",
        "378282246310005",
        "6011111111111117",
        "2223003122003222",
        "000000000000",
    ],
)
def test_luhn_accepts_valid_numbers(number: str) -> None:
    assert cards.luhn_valid(number)


@pytest.mark.parametrize(
    "number", ["4242424242424241", "4242424242424252", "1234567812345678", "378282246310006"]
)
def test_luhn_rejects_invalid_numbers(number: str) -> None:
    assert not cards.luhn_valid(number)


@pytest.mark.parametrize(
    ("number", "brand"),
    [
        (VISA, "visa"),
        ("4000056655665556", "visa"),
        ("5555555555554444", "mastercard"),
        ("5105105105105100", "mastercard"),
        ("2223003122003222", "mastercard"),
        ("378282246310005", "amex"),
        ("371449635398431", "amex"),
        ("6011111111111117", "other"),
        ("3530111333300000", "other"),
        ("5610591081018250", "other"),
    ],
)
def test_brand_detection(number: str, brand: str) -> None:
    assert cards.brand_of(number) == brand


@pytest.mark.parametrize(
    ("raw", "digits"),
    [
        ("4242 4242 4242 4242", VISA),
        ("4242-4242-4242-4242", VISA),
        (VISA, VISA),
        ("123456789012", "123456789012"),
        ("1" * 19, "1" * 19),
        ("1" * 11, None),
        ("1" * 20, None),
        ("4242424242424242a", None),
        ("４２４２４２４２４２４２４２４２", None),  # fullwidth digits are not card digits
        ("4242_4242_4242_4242", None),
        ("", None),
    ],
)
def test_number_shape(raw: str, digits: str | None) -> None:
    assert cards.digits_of(raw) == digits


@pytest.mark.parametrize(
    ("month", "year", "expired"),
    [
        (11, 2026, False),  # expires this month: still good
        (12, 2026, False),
        (1, 2027, False),
        (10, 2026, True),
        (12, 2025, True),
        (11, 2025, True),
    ],
)
def test_expiry_is_by_month(month: int, year: int, expired: bool) -> None:
    for today in (date(2026, 11, 1), date(2026, 11, 30)):
        assert cards.is_expired(month, year, today) is expired


def test_check_keeps_only_brand_last4_expiry_and_decline() -> None:
    facts = cards.check("4242 4242 4242 4242", 11, 2026, "123", date(2026, 11, 30))
    assert facts == cards.CardFacts("visa", "4242", 11, 2026, None)
    assert cards.check(GENERIC_DECLINE, 1, 2030, "123", TODAY).decline_code == "generic_decline"
    assert cards.check(INSUFFICIENT_FUNDS, 1, 2030, "1234", TODAY).decline_code == (
        "insufficient_funds"
    )


@pytest.mark.parametrize(
    ("number", "month", "year", "cvc", "code"),
    [
        ("4242424242424241", 1, 2030, "123", "invalid_card"),
        ("42424242", 1, 2030, "123", "invalid_card"),
        ("4242 4242 4242 4242 4242", 1, 2030, "123", "invalid_card"),
        (VISA, 1, 2030, "12", "invalid_card"),
        (VISA, 1, 2030, "12345", "invalid_card"),
        (VISA, 1, 2030, "12a", "invalid_card"),
        (VISA, 10, 2026, "123", "card_expired"),
    ],
)
def test_check_rejects(number: str, month: int, year: int, cvc: str, code: str) -> None:
    with pytest.raises(cards.CardRejected) as caught:
        cards.check(number, month, year, cvc, date(2026, 11, 21))
    assert caught.value.code == code
    assert number not in caught.value.detail


# --- PAYMENT_LATENCY_MS ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "parsed"), [("0", (0, 0)), ("5", (5, 5)), ("5-10", (5, 10)), (" 20 - 80 ", (20, 80))]
)
def test_latency_parsing(raw: str, parsed: tuple[int, int]) -> None:
    assert parse_latency(raw) == parsed


@pytest.mark.parametrize("raw", ["fast", "10-5", "-5", "5-", "1.5", "5-10-20", "5ms", "1234567"])
def test_bad_latency_is_a_clear_start_up_error(raw: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="PAYMENT_LATENCY_MS"):
        parse_latency(raw)
    settings = kit.Settings.from_env(
        "payment", {"BOUTIQUE_DATA_DIR": str(tmp_path), "PAYMENT_LATENCY_MS": raw}
    )
    with pytest.raises(ValueError, match="PAYMENT_LATENCY_MS"):
        create_app(settings)


def test_latency_defaults_to_20_80(tmp_path: Path) -> None:
    env = {"BOUTIQUE_DATA_DIR": str(tmp_path)}
    assert create_app(kit.Settings.from_env("payment", env))[LATENCY] == (20, 80)
    env["PAYMENT_LATENCY_MS"] = "5-10"
    assert create_app(kit.Settings.from_env("payment", env))[LATENCY] == (5, 10)


# --- charges against the real orders and cart ------------------------------------------------


class Shop:
    """The payment API plus the other stores a charge touches: orders, the cart hash, charges."""

    def __init__(self, api: ContractClient, orders: ContractClient, redis: aioredis.Redis) -> None:
        self.api, self.orders, self.redis = api, orders, redis

    async def order(self, user: dict[str, str] = ALICE, key: str = KEY) -> dict[str, Any]:
        resp = await self.orders.post(
            "/orders",
            json={"items": ITEMS, "currency": "USD"},
            headers={**user, "Idempotency-Key": key},
        )
        assert resp.status == 201
        return await resp.json()

    async def get_order(self, order_id: str, user: dict[str, str] = ALICE) -> dict[str, Any]:
        resp = await self.orders.get(f"/orders/{order_id}", headers=user)
        assert resp.status == 200
        return await resp.json()

    async def fill_cart(self, user: str = "u_alice") -> None:
        await self.redis.hset(f"cart:{user}", mapping={"speckled-mug": 2, "meridian-watch": 1})

    async def cart(self, user: str = "u_alice") -> dict[str, str]:
        return await self.redis.hgetall(f"cart:{user}")

    async def rows(self) -> list[dict[str, Any]]:
        async with self.api.app[kit.DB].connect() as conn:
            return [dict(r) for r in (await conn.execute(select(charges))).mappings()]

    async def charge(
        self, order: dict[str, Any], number: str = VISA, key: str = KEY, user=ALICE, **card: Any
    ) -> ClientResponse:  # type: ignore[no-untyped-def]
        return await self.api.post(
            "/charges",
            json=charge_body(order["id"], order["total_cents"], number, **card),
            headers={**user, "Idempotency-Key": key},
        )


def charge_body(
    order_id: str,
    amount: int,
    number: str = VISA,
    exp_month: int = 12,
    exp_year: int = 2030,
    cvc: str = CVC,
) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "amount_cents": amount,
        "currency": "USD",
        "card": {"number": number, "exp_month": exp_month, "exp_year": exp_year, "cvc": cvc},
    }


@pytest.fixture
async def shop(service: Any, clean_redis: str) -> Any:
    api = await service("payment", peers=PEERS)
    orders = await service("orders")  # a second replica over the same orders database
    client = aioredis.from_url(clean_redis, decode_responses=True)
    yield Shop(api, orders, client)
    await client.aclose()


async def test_success_pays_the_order_and_empties_the_cart(shop: Shop) -> None:
    await shop.fill_cart()
    await shop.fill_cart("u_bob")
    order = await shop.order()
    resp = await shop.charge(order, "4242 4242 4242 4242")
    charge = await resp.json()
    assert resp.status == 201
    assert re.fullmatch(r"ch_[0-9a-f]{24}", charge["id"])
    assert charge == {
        "id": charge["id"],
        "order_id": order["id"],
        "amount_cents": 2500,
        "currency": "USD",
        "status": "succeeded",
        "card": {"brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2030},
        "decline_code": None,
        "created_at": charge["created_at"],
        "order": charge["order"],  # the order as this request confirmed it: the caller reads none
    }
    paid = await shop.get_order(order["id"])
    assert paid["status"] == "paid" and paid["charge_id"] == charge["id"]
    assert charge["order"] == paid
    assert await shop.cart() == {}
    assert await shop.cart("u_bob") != {}  # only the payer's cart
    by_key = await shop.api.get(f"/charges/by-key/{KEY}", headers=ALICE)
    assert by_key.status == 200 and await by_key.json() | {"order": paid} == charge
    # Keys are the user's own: Bob cannot see Alice's charge; the lookup needs a user.
    await problem(await shop.api.get(f"/charges/by-key/{KEY}", headers=BOB), 404, "unknown_charge")
    await problem(await shop.api.get("/charges/by-key/never-used", headers=ALICE), 404)
    await problem(await shop.api.get(f"/charges/by-key/{KEY}"), 401, "unauthenticated")


async def test_repeat_returns_the_same_charge_and_changes_nothing(shop: Shop) -> None:
    order = await shop.order()
    first = await (await shop.charge(order)).json()
    await shop.fill_cart()  # the shopper starts a new cart after paying
    again = await shop.charge(order)
    # the same charge; the order was confirmed by the first request, so it comes without it
    assert again.status == 200 and await again.json() == {
        k: first[k] for k in first if k != "order"
    }
    assert len(await shop.rows()) == 1
    assert await shop.cart() != {}  # a finished charge repeated does not clear the new cart
    assert (await shop.get_order(order["id"]))["charge_id"] == first["id"]


@pytest.mark.parametrize(
    ("number", "status", "decline_code"),
    [
        (VISA, 201, None),
        (GENERIC_DECLINE, 402, "generic_decline"),
        (INSUFFICIENT_FUNDS, 402, "insufficient_funds"),
    ],
)
async def test_stripe_test_cards_and_their_repeats(
    shop: Shop, number: str, status: int, decline_code: str | None
) -> None:
    await shop.fill_cart()
    order = await shop.order()
    first = await shop.charge(order, number)
    assert first.status == status
    first_body = await first.json()
    repeat = await shop.charge(order, number)
    assert repeat.status == (200 if status == 201 else status)
    repeat_body = await repeat.json()
    assert repeat_body == {k: v for k, v in first_body.items() if k != "order"}
    rows = await shop.rows()
    assert len(rows) == 1
    stored = await (await shop.api.get(f"/charges/by-key/{KEY}", headers=ALICE)).json()
    assert stored["decline_code"] == decline_code
    if status == 402:
        await problem(first, 402, "card_declined")
        assert first_body["decline_code"] == decline_code
        assert rows[0]["status"] == "declined" and stored["status"] == "declined"
        assert (await shop.get_order(order["id"]))["status"] == "pending"
        assert await shop.cart() == {"speckled-mug": "2", "meridian-watch": "1"}
    else:
        assert rows[0]["status"] == "succeeded" and stored == repeat_body
        assert first_body["order"]["status"] == "paid"
        assert (await shop.get_order(order["id"]))["status"] == "paid"
        assert await shop.cart() == {}


async def test_other_valid_cards_and_this_months_expiry_succeed(shop: Shop) -> None:
    first, second = await shop.order(key="order-key-1"), await shop.order(key="order-key-2")
    resp = await shop.charge(first, "5555-5555-5555-4444", key="charge-key-1", cvc="123")
    assert resp.status == 201
    assert (await resp.json())["card"] == {
        "brand": "mastercard",
        "last4": "4444",
        "exp_month": 12,
        "exp_year": 2030,
    }
    # A card is good through the end of its expiry month.
    resp = await shop.charge(second, key="charge-key-2", exp_month=TODAY.month, exp_year=TODAY.year)
    assert resp.status == 201


UNUSABLE_CARDS = [
    ({"number": "4242424242424241"}, "invalid_card"),
    ({"number": "4242 4242"}, "invalid_card"),
    ({"number": "4242x4242x4242x4242"}, "invalid_card"),
    ({"number": ""}, "invalid_card"),
    ({"cvc": "12"}, "invalid_card"),
    ({"cvc": "12345"}, "invalid_card"),
    ({"cvc": "abc"}, "invalid_card"),
    (
        {
            "exp_month": 12 if TODAY.month == 1 else TODAY.month - 1,
            "exp_year": TODAY.year - 1 if TODAY.month == 1 else TODAY.year,
        },
        "card_expired",
    ),
    ({"exp_month": 12, "exp_year": 2001}, "card_expired"),
]


async def test_unusable_cards_are_422_and_leave_everything_alone(
    shop: Shop, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await shop.fill_cart()
    order = await shop.order()
    for card, code in UNUSABLE_CARDS:
        body = charge_body(order["id"], order["total_cents"])
        body["card"].update(card)
        resp = await shop.api.post("/charges", json=body, headers={**ALICE, "Idempotency-Key": KEY})
        await problem(resp, 422, code)
        if body["card"]["number"]:
            assert body["card"]["number"] not in await resp.text()
    assert await shop.rows() == []
    assert (await shop.get_order(order["id"]))["status"] == "pending"
    assert await shop.cart() != {}
    await problem(await shop.api.get(f"/charges/by-key/{KEY}", headers=ALICE), 404)
    assert "4242424242424241"[:12] not in caplog.text
    # The same key still works for a good card afterwards: nothing was stored for it.
    assert (await shop.charge(order)).status == 201


async def test_a_cancelled_order_is_409_and_the_charge_refunded(shop: Shop) -> None:
    await shop.fill_cart()
    order = await shop.order()
    cancel = await shop.orders.post(
        f"/orders/{order['id']}/cancel", json={"reason": "reservation_expired"}, headers=ALICE
    )
    assert cancel.status == 200
    await problem(await shop.charge(order), 409, "order_not_payable")
    rows = await shop.rows()
    assert [r["status"] for r in rows] == ["refunded"]
    await problem(await shop.charge(order), 409, "order_not_payable")  # the repeat: same answer
    assert len(await shop.rows()) == 1
    stored = await (await shop.api.get(f"/charges/by-key/{KEY}", headers=ALICE)).json()
    assert stored["status"] == "refunded"
    assert (await shop.get_order(order["id"]))["status"] == "cancelled"
    assert await shop.cart() != {}


async def test_an_order_paid_by_another_charge_refunds_the_second(shop: Shop) -> None:
    order = await shop.order()
    first = await (await shop.charge(order, key="first-key-1")).json()
    await problem(await shop.charge(order, key="second-key-2"), 409, "order_not_payable")
    statuses = {r["idempotency_key"]: r["status"] for r in await shop.rows()}
    assert statuses == {"first-key-1": "succeeded", "second-key-2": "refunded"}
    assert (await shop.get_order(order["id"]))["charge_id"] == first["id"]


async def test_unknown_or_someone_elses_order_is_409_refunded(shop: Shop) -> None:
    bobs = await shop.order(user=BOB)
    await problem(await shop.charge(bobs), 409, "order_not_payable")
    unknown = {"id": "ord_" + "0" * 24, "total_cents": 100}
    await problem(await shop.charge(unknown, key="another-key"), 409, "order_not_payable")
    assert [r["status"] for r in await shop.rows()] == ["refunded", "refunded"]
    assert (await shop.get_order(bobs["id"], BOB))["status"] == "pending"


async def test_no_card_number_or_cvc_is_ever_stored(
    shop: Shop, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for i, number in enumerate([VISA, GENERIC_DECLINE, INSUFFICIENT_FUNDS]):
        order = await shop.order(key=f"order-key-{i}")
        await shop.charge(order, number, key=f"charge-key-{i}")
    assert len(await shop.rows()) == 3
    columns, rows, raw = _stored(tmp_path)
    assert not {"number", "card_number", "cvc", "pan"} & set(columns)
    for row in rows:
        values = [str(v) for v in row]
        assert CVC not in values
        for number in (VISA, GENERIC_DECLINE, INSUFFICIENT_FUNDS):
            assert not any(number[:12] in v for v in values)
    for number in (VISA, GENERIC_DECLINE, INSUFFICIENT_FUNDS):
        assert number.encode() not in raw
        assert number[:12] not in caplog.text


def _stored(data_dir: Path) -> tuple[list[str], list[tuple[Any, ...]], bytes]:
    """The charges table as SQLite holds it: column names, rows, and the raw file bytes."""
    db = sqlite3.connect(data_dir / "payment.db")
    try:
        columns = [c[1] for c in db.execute("PRAGMA table_info(charges)")]
        rows = list(db.execute("SELECT * FROM charges"))
    finally:
        db.close()
    raw = b"".join(p.read_bytes() for p in sorted(data_dir.glob("payment.db*")))
    return columns, rows, raw


def _bad(**change: Any) -> dict[str, Any]:
    body = charge_body("ord_" + "a" * 24, 2500)
    card = change.pop("card", {})
    body.update(change)
    body["card"].update(card)
    return body


BAD_BODIES = [
    pytest.param(b'{"order_id": ', 400, "malformed_json", id="malformed"),
    pytest.param(b"", 422, "validation_failed", id="empty"),
    pytest.param(b"[1]", 422, "validation_failed", id="array"),
    pytest.param(_bad(amount_cents="2500"), 422, "validation_failed", id="amount-str"),
    pytest.param(_bad(amount_cents=25.0), 422, "validation_failed", id="amount-float"),
    pytest.param(_bad(amount_cents=0), 422, "validation_failed", id="amount-0"),
    pytest.param(_bad(amount_cents=-100), 422, "validation_failed", id="amount-neg"),
    pytest.param(_bad(amount_cents=100_000_001), 422, "validation_failed", id="amount-big"),
    pytest.param(_bad(amount_cents=10**30), 422, "validation_failed", id="amount-huge"),
    pytest.param(_bad(currency="JPY"), 422, "validation_failed", id="currency"),
    pytest.param(_bad(order_id="../cart"), 422, "validation_failed", id="order-id-path"),
    pytest.param(_bad(order_id=""), 422, "validation_failed", id="order-id-empty"),
    pytest.param(_bad(card={"exp_month": 13}), 422, "validation_failed", id="month-13"),
    pytest.param(_bad(card={"exp_month": 0}), 422, "validation_failed", id="month-0"),
    pytest.param(_bad(card={"exp_year": "2030"}), 422, "validation_failed", id="year-str"),
    pytest.param(_bad(card={"exp_year": 99999}), 422, "validation_failed", id="year-big"),
    pytest.param(_bad(card={"number": int(VISA)}), 422, "validation_failed", id="number-int"),
    pytest.param(_bad(card={"cvc": 123}), 422, "validation_failed", id="cvc-int"),
    pytest.param(_bad(card={"name": "A"}), 422, "validation_failed", id="card-extra"),
    pytest.param(_bad(status="succeeded"), 422, "validation_failed", id="body-extra"),
    pytest.param(
        {"order_id": "ord_1", "amount_cents": 1, "currency": "USD"}, 422, None, id="nocard"
    ),
]


async def test_bad_charge_bodies_are_problems_and_write_nothing(shop: Shop) -> None:
    await shop.fill_cart()
    order = await shop.order()
    for case in BAD_BODIES:
        body, status, code = case.values
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        resp = await shop.api.post(
            "/charges",
            data=data,
            headers={**ALICE, "Idempotency-Key": KEY, "Content-Type": "application/json"},
        )
        assert resp.status == status, case.id
        await problem(resp, status, code or "validation_failed")
        assert VISA not in await resp.text(), case.id
    assert await shop.rows() == []
    assert await shop.cart() != {}
    assert (await shop.get_order(order["id"]))["status"] == "pending"


async def test_charges_need_a_user_and_a_good_key(shop: Shop) -> None:
    order = await shop.order()
    cases = [
        ({"Idempotency-Key": KEY}, 401, "unauthenticated"),
        (ALICE, 428, "idempotency_key_missing"),
        ({**ALICE, "Idempotency-Key": "short"}, 400, "idempotency_key_invalid"),
        ({**ALICE, "Idempotency-Key": "bad key with spaces"}, 400, "idempotency_key_invalid"),
        ({**ALICE, "Idempotency-Key": "k" * 129}, 400, "idempotency_key_invalid"),
    ]
    for hdrs, status, code in cases:
        resp = await shop.api.post("/charges", json=charge_body(order["id"], 2500), headers=hdrs)
        await problem(resp, status, code)
    assert await shop.rows() == []
    assert (await shop.get_order(order["id"]))["status"] == "pending"


async def test_wrong_content_type_and_oversized_bodies(shop: Shop) -> None:
    order = await shop.order()
    headers = {**ALICE, "Idempotency-Key": KEY}
    body = charge_body(order["id"], 2500)
    resp = await shop.api.post(
        "/charges", data=json.dumps(body), headers={**headers, "Content-Type": "text/plain"}
    )
    await problem(resp, 415, "unsupported_media_type")
    body["card"]["number"] = VISA + " " * (70 * 1024)
    await problem(await shop.api.post("/charges", json=body, headers=headers), 413)
    assert await shop.rows() == []
    assert (await shop.get_order(order["id"]))["status"] == "pending"


async def test_concurrent_repeats_charge_once(shop: Shop) -> None:
    order = await shop.order()
    replies = await asyncio.gather(*(shop.charge(order) for _ in range(5)))
    assert sorted(r.status for r in replies) == [200, 200, 200, 200, 201]
    assert len({(await r.json())["id"] for r in replies}) == 1
    assert len(await shop.rows()) == 1


async def test_the_card_network_takes_its_time(service: Any) -> None:
    api = await service("payment", peers=PEERS, PAYMENT_LATENCY_MS="60-80")
    assert api.app[LATENCY] == (60, 80)
    order_id = "ord_" + "b" * 24
    started = time.monotonic()
    resp = await api.post(
        "/charges",
        json=charge_body(order_id, 100, GENERIC_DECLINE),
        headers={**ALICE, "Idempotency-Key": KEY},
    )
    assert resp.status == 402
    assert time.monotonic() - started >= 0.06


# --- crash safety: a recorded success is finished by the repeat -------------------------------


@pytest.mark.parametrize("down", ["orders", "cart"])
async def test_a_success_survives_a_failing_peer_and_the_repeat_finishes_it(
    shop: Shop, service: Any, aiohttp_client: Any, tmp_path: Path, clean_redis: str, down: str
) -> None:
    await shop.fill_cart()
    order = await shop.order()
    # A payment replica whose `down` peer is a closed port; the other peer is the real one
    # (orders as the shop's orders replica, cart as a fresh cart app over the same Redis).
    cart = await service("cart")
    live = {"orders": str(shop.orders.client.make_url("")), "cart": str(cart.client.make_url(""))}
    live[down] = f"http://127.0.0.1:{closed_port()}"
    urls = ",".join(f"{peer}={url.rstrip('/')}" for peer, url in live.items())
    broken_app = build_app(
        "payment", service_settings("payment", tmp_path, clean_redis, PEER_URLS=urls)
    )
    broken = ContractClient(await aiohttp_client(broken_app), broken_app[kit.OPENAPI])

    resp = await broken.post(
        "/charges",
        json=charge_body(order["id"], order["total_cents"]),
        headers={**ALICE, "Idempotency-Key": KEY},
    )
    failed = await problem(resp, 503, "dependency_unavailable")
    assert failed["dependency"] == down
    rows = await shop.rows()
    assert [r["status"] for r in rows] == ["succeeded"]
    stored = await (await shop.api.get(f"/charges/by-key/{KEY}", headers=ALICE)).json()
    assert stored["status"] == "succeeded"  # what checkout asks after a 5xx
    assert (await shop.get_order(order["id"]))["status"] == (
        "pending" if down == "orders" else "paid"
    )
    assert await shop.cart() != {}

    # The repeat, on a healthy replica over the same data: finishes the job, charges nothing new.
    again = await shop.charge(order)
    assert again.status == 200
    assert (await again.json())["id"] == rows[0]["id"]
    assert len(await shop.rows()) == 1
    paid = await shop.get_order(order["id"])
    assert paid["status"] == "paid" and paid["charge_id"] == rows[0]["id"]
    assert await shop.cart() == {}


async def test_health_readiness_and_contract(service: Any) -> None:
    api = await service("payment")
    assert await (await api.get("/healthz")).json() == {"status": "ok", "service": "payment"}
    assert (await api.get("/readyz")).status == 200
    doc = await (await api.get("/openapi.json")).json()
    assert set(doc["paths"]) == {
        r.resource.canonical for r in api.app.router.routes() if r.resource is not None
    }
    assert "4000 0000 0000 9995" in doc["info"]["description"]
