"""A shopper buys through the public port, through the mesh and with services talking directly."""

from __future__ import annotations

import uuid

import aiohttp
import pytest

from mesh.local import LocalRun

pytestmark = pytest.mark.integration
CARD = {"number": "4242 4242 4242 4242", "exp_month": 12, "exp_year": 2035, "cvc": "123"}


async def sign_in(http: aiohttp.ClientSession, api: str) -> dict[str, str]:
    creds = {"email": f"shopper-{uuid.uuid4().hex[:8]}@example.com", "password": "s3cret-pw"}
    resp = await http.post(f"{api}/auth/register", json=creds)
    assert resp.status == 201, await resp.text()
    resp = await http.post(f"{api}/auth/login", json=creds)
    assert resp.status == 200, await resp.text()
    return {"Authorization": f"Bearer {(await resp.json())['token']}"}


@pytest.fixture(params=["mesh", "no-mesh"])
def any_shop(request: pytest.FixtureRequest) -> LocalRun:
    return request.getfixturevalue("shop" if request.param == "mesh" else "direct_shop")


async def test_register_login_browse_buy_and_see_the_order(any_shop: LocalRun) -> None:
    api = any_shop.public_url + "/api"
    async with aiohttp.ClientSession() as http:
        auth = await sign_in(http, api)
        resp = await http.get(f"{api}/products")
        assert resp.status == 200
        products = (await resp.json())["products"]
        assert len(products) >= 12
        first, second = [p for p in products if p["available"] >= 3][:2]

        for product, qty in ((first, 2), (second, 1)):
            resp = await http.put(
                f"{api}/cart/items/{product['id']}", json={"quantity": qty}, headers=auth
            )
            assert resp.status == 200, await resp.text()
        cart = await (await http.get(f"{api}/cart", headers=auth)).json()
        expected_total = 2 * first["price_cents"] + second["price_cents"]
        assert cart["total_cents"] == expected_total

        resp = await http.post(
            f"{api}/checkout",
            json={"card": CARD},
            headers={**auth, "Idempotency-Key": uuid.uuid4().hex},
        )
        assert resp.status == 201, await resp.text()
        order = await resp.json()
        assert order["status"] == "paid"
        assert order["total_cents"] == expected_total

        history = await (await http.get(f"{api}/orders", headers=auth)).json()
        assert [o["id"] for o in history["orders"]] == [order["id"]]
        assert history["orders"][0]["status"] == "paid"

        for product, qty in ((first, 2), (second, 1)):
            now = await (await http.get(f"{api}/products/{product['id']}")).json()
            assert now["available"] == product["available"] - qty

        cart = await (await http.get(f"{api}/cart", headers=auth)).json()
        assert cart["items"] == [] and cart["total_cents"] == 0
