"""The checkout's commerce steps over the REAL services: prices converted to the shopper's
currency, shipping quoted and charged, the paid order shipped, its confirmation e-mailed; and
the orders register's shipping line and tracking id."""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from services.kit import OPENAPI, SETTINGS
from tests.asserts import ok, problem
from tests.conftest import ServiceFactory, build_app, service_settings
from tests.contract import ContractClient
from tests.polling import eventually

USER = "u_alice"
MUG, WATCH = "speckled-mug", "meridian-watch"  # 8.99 and 139.00 USD
CARD = {"number": "4242 4242 4242 4242", "exp_month": 12, "exp_year": 2099, "cvc": "123"}
HOME = {
    "name": "Ada Lovelace",
    "street": "12 St James's Square",
    "city": "London",
    "postal_code": "SW1Y 4JH",
    "country": "GB",
}
ALL = ["cart", "products", "orders", "payment", "currency", "shipping", "email"]


def keyed(key: str = "checkout-0001") -> dict[str, str]:
    return {"X-User-Id": USER, "Idempotency-Key": key}


def query(data: Path, service: str, sql: str) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(data / f"{service}.db")) as db:
        return db.execute(sql).fetchall()


async def fill(redis_url: str, cart: dict[str, int]) -> None:
    redis = aioredis.from_url(redis_url, decode_responses=True)
    for product_id, quantity in cart.items():
        await redis.hset(f"cart:{USER}", product_id, quantity)
    await redis.aclose()


async def test_paying_in_euros_converts_ships_charges_and_confirms(
    service: ServiceFactory, clean_redis: str, tmp_path: Path
) -> None:
    checkout = await service("checkout", peers=ALL)
    await fill(clean_redis, {MUG: 2, WATCH: 1})
    body = {"card": CARD, "currency": "EUR", "address": HOME}
    order = await ok(await checkout.post("/checkout", json=body, headers=keyed()), 201)
    # 899 * 0.9215 = 828.43 -> 828; 13900 * 0.9215 = 12808.85 -> 12809;
    # shipping to GB, 3 items: 12.99 + 2 * 1.99 = 16.97 USD -> 1563.79 -> 1564
    assert order["currency"] == "EUR"
    assert {i["product_id"]: i["unit_price_cents"] for i in order["items"]} == {
        MUG: 828,
        WATCH: 12809,
    }
    assert order["shipping_cents"] == 1564
    assert order["total_cents"] == 2 * 828 + 12809 + 1564 == 16029
    assert order["status"] == "paid" and order["tracking_id"].startswith("BP")
    charged = query(tmp_path, "payment", "SELECT amount_cents, currency FROM charges")
    assert charged == [(16029, "EUR")]

    async def confirmation() -> list[tuple[Any, ...]]:
        return query(tmp_path, "email", "SELECT status, order_id, text_body FROM emails")

    sent = await eventually(confirmation, lambda r: bool(r) and r[0][0] == "sent")
    assert sent[0][1] == order["id"]
    assert "160.29 EUR" in sent[0][2] and order["tracking_id"] in sent[0][2]

    again = await ok(await checkout.post("/checkout", json=body, headers=keyed()), 201)
    assert again == order  # the same order, shipped once, charged once
    assert len(query(tmp_path, "payment", "SELECT id FROM charges")) == 1
    await eventually(confirmation, lambda r: len(r) == 1 and r[0][0] == "sent")


async def test_in_dollars_without_an_address_neither_currency_nor_shipping_is_needed(
    service: ServiceFactory, clean_redis: str, tmp_path: Path
) -> None:
    # currency, shipping and email are not even running: none is on this checkout's way
    checkout = await service("checkout", peers=["cart", "products", "orders", "payment"])
    await fill(clean_redis, {MUG: 1})
    order = await ok(await checkout.post("/checkout", json={"card": CARD}, headers=keyed()), 201)
    assert order["currency"] == "USD" and order["total_cents"] == 899
    assert order["shipping_cents"] is None and order["tracking_id"] is None


async def test_a_checkout_succeeds_while_email_is_down(
    service: ServiceFactory, clean_redis: str, tmp_path: Path
) -> None:
    peers = ["cart", "products", "orders", "payment", "shipping"]
    checkout = await service("checkout", peers=peers)
    await fill(clean_redis, {WATCH: 1})
    body = {"card": CARD, "address": {**HOME, "country": "US"}}
    order = await ok(await checkout.post("/checkout", json=body, headers=keyed()), 201)
    assert order["status"] == "paid" and order["shipping_cents"] == 499
    assert order["total_cents"] == 13900 + 499 and order["tracking_id"]


@pytest.mark.parametrize(
    "body",
    [
        {"card": CARD, "currency": "JPY"},
        {"card": CARD, "currency": "eur"},
        {"card": CARD, "address": {**HOME, "country": "United Kingdom"}},
        {"card": CARD, "address": {**HOME, "postal_code": ""}},
        {"card": CARD, "address": {k: v for k, v in HOME.items() if k != "city"}},
    ],
)
async def test_a_bad_currency_or_address_is_a_422_and_nothing_happens(
    service: ServiceFactory, clean_redis: str, tmp_path: Path, body: dict[str, Any]
) -> None:
    checkout = await service("checkout", peers=ALL)
    await fill(clean_redis, {MUG: 1})
    await problem(await checkout.post("/checkout", json=body, headers=keyed()), 422)
    assert query(tmp_path, "orders", "SELECT count(*) FROM orders") == [(0,)]
    assert query(tmp_path, "products", "SELECT count(*) FROM reservations") == [(0,)]


# --- orders: the shipping line and the tracking id ---------------------------------------------

LINE = {"product_id": MUG, "name": "Speckled Mug", "quantity": 2, "unit_price_cents": 828}


async def paid_order(orders: ContractClient, shipping: int | None = 1564) -> dict[str, Any]:
    body = {"items": [LINE], "currency": "EUR", "shipping_cents": shipping}
    order = await ok(await orders.post("/orders", json=body, headers=keyed()), 201)
    assert order["total_cents"] == 2 * 828 + (shipping or 0)
    pay = {"charge_id": "ch_1"}
    return await ok(await orders.post(f"/orders/{order['id']}/pay", json=pay, headers=keyed()))


async def test_a_paid_order_records_its_tracking_id_once(service: ServiceFactory) -> None:
    orders = await service("orders")
    order = await paid_order(orders)
    path, user = f"/orders/{order['id']}/ship", {"X-User-Id": USER}
    shipped = await ok(await orders.post(path, json={"tracking_id": "BP1"}, headers=user))
    assert shipped["tracking_id"] == "BP1" and shipped["shipping_cents"] == 1564
    again = await ok(await orders.post(path, json={"tracking_id": "BP1"}, headers=user))
    assert again == shipped
    await problem(
        await orders.post(path, json={"tracking_id": "BP2"}, headers=user),
        409,
        "order_not_shippable",
    )
    assert (await ok(await orders.get(f"/orders/{order['id']}", headers=user)))[
        "tracking_id"
    ] == "BP1"


async def test_only_a_paid_order_of_ones_own_ships(service: ServiceFactory) -> None:
    orders = await service("orders")
    body = {"items": [LINE], "currency": "USD"}
    pending = await ok(await orders.post("/orders", json=body, headers=keyed()), 201)
    user = {"X-User-Id": USER}
    ship = {"tracking_id": "BP1"}
    await problem(
        await orders.post(f"/orders/{pending['id']}/ship", json=ship, headers=user),
        409,
        "order_not_shippable",
    )
    await problem(
        await orders.post(f"/orders/{pending['id']}/ship", json=ship, headers={"X-User-Id": "u_b"}),
        404,
        "unknown_order",
    )
    await problem(
        await orders.post(
            f"/orders/{pending['id']}/ship", json={"tracking_id": "a b"}, headers=user
        ),
        422,
    )
    current = await ok(await orders.get(f"/orders/{pending['id']}", headers=user))
    assert current["tracking_id"] is None and current["status"] == "pending"


async def test_a_checkout_answers_while_its_confirmation_is_still_unanswered(
    service: ServiceFactory, aiohttp_client: Any, clean_redis: str, tmp_path: Path
) -> None:
    """The e-mail call is off the checkout's path: with an email address that takes the request
    and never answers, the checkout has answered (paid) while that request is still open."""
    held: list[asyncio.StreamWriter] = []

    async def never_answer(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    silent = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    peers = ["cart", "products", "orders", "payment"]
    first = await service("checkout", peers=peers)  # the real peers, running
    urls = {**first.app[SETTINGS].peer_urls, "email": f"http://127.0.0.1:{port}"}
    env = {"PEER_URLS": ",".join(f"{name}={url}" for name, url in urls.items())}
    app = build_app("checkout", service_settings("checkout", tmp_path, clean_redis, **env))
    checkout = ContractClient(await aiohttp_client(app), app[OPENAPI])
    await fill(clean_redis, {MUG: 1})
    order = await ok(await checkout.post("/checkout", json={"card": CARD}, headers=keyed()), 201)
    assert order["status"] == "paid"
    await eventually(lambda: asyncio.sleep(0, held), what="the confirmation asked for")
    assert held, "the confirmation was asked for, and is still unanswered"
    for writer in held:
        writer.close()
    silent.close()
