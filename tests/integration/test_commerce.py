"""A purchase through the real mesh in the shopper's currency: converted prices on the shop's
pages, a shipping line, a tracking id, and the confirmation e-mail in "your emails"."""

from __future__ import annotations

import uuid
from typing import Any

import aiohttp
import pytest

from frontend.pages import money
from frontend.security import SESSION_COOKIE
from mesh.local import LocalRun
from tests.integration.test_purchase import CARD, sign_in
from tests.polling import eventually
from tests.unit.test_frontend_commerce import ADDRESS

pytestmark = pytest.mark.integration


async def get(http: aiohttp.ClientSession, url: str, **kw: Any) -> Any:
    resp = await http.get(url, **kw)
    assert resp.status == 200, await resp.text()
    return await resp.json() if resp.content_type == "application/json" else await resp.text()


async def test_a_purchase_in_euros_is_shipped_and_confirmed(shop: LocalRun) -> None:
    api = shop.public_url + "/api"
    async with aiohttp.ClientSession() as http:
        auth = await sign_in(http, api)
        products = (await get(http, f"{api}/products"))["products"]
        first, second = [p for p in products if p["available"] >= 3][:2]
        prices = f"{first['price_cents']},{second['price_cents']}"
        euros = (await get(http, f"{api}/currencies/convert?from=USD&to=EUR&amounts={prices}"))[
            "amounts"
        ]
        assert euros != [first["price_cents"], second["price_cents"]]

        # the shop's pages, in the currency of the shopper's choice (its cookie)
        catalog = await get(http, shop.public_url + "/", cookies={"currency": "EUR"})
        assert money(euros[0], "EUR") in catalog and money(euros[1], "EUR") in catalog

        for product, qty in ((first, 2), (second, 1)):
            resp = await http.put(
                f"{api}/cart/items/{product['id']}", json={"quantity": qty}, headers=auth
            )
            assert resp.status == 200, await resp.text()
        resp = await http.post(
            f"{api}/checkout",
            json={"card": CARD, "currency": "EUR", "address": ADDRESS},
            headers={**auth, "Idempotency-Key": uuid.uuid4().hex},
        )
        assert resp.status == 201, await resp.text()
        order = await resp.json()
        assert order["status"] == "paid" and order["currency"] == "EUR"
        paid = {i["product_id"]: i["unit_price_cents"] for i in order["items"]}
        assert paid == {first["id"]: euros[0], second["id"]: euros[1]}
        assert order["shipping_cents"] > 0 and order["tracking_id"].startswith("BP")
        assert order["total_cents"] == 2 * euros[0] + euros[1] + order["shipping_cents"]

        page = await get(
            http,
            f"{shop.public_url}/orders/{order['id']}",
            cookies={SESSION_COOKIE: auth_token(auth)},
        )
        assert order["tracking_id"] in page and money(order["shipping_cents"], "EUR") in page

        async def confirmations() -> list[dict[str, Any]]:
            listed = (await get(http, f"{api}/emails", headers=auth))["emails"]
            return [e for e in listed if e["order_id"] == order["id"] and e["status"] == "sent"]

        sent = await eventually(confirmations, within=20, what="the confirmation e-mail sent")
        mail = await get(http, f"{api}/emails/{sent[0]['id']}", headers=auth)
        assert order["tracking_id"] in mail["text"] and order["id"] in mail["subject"]
        total = order["total_cents"]
        assert f"{total // 100}.{total % 100:02d} EUR" in mail["text"].replace(",", "")
        inbox = await get(
            http, f"{shop.public_url}/emails", cookies={SESSION_COOKIE: auth_token(auth)}
        )
        assert mail["subject"] in inbox


def auth_token(auth: dict[str, str]) -> str:
    return auth["Authorization"].removeprefix("Bearer ")
