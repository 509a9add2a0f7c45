"""The shop in the shopper's currency, with a shipping address, and "your emails": as a shopper
uses it, over the real gateway, checkout, currency, shipping and email services."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.polling import eventually
from tests.unit import test_frontend as shop_tests
from tests.unit.test_frontend import GOOD_CARD, MUG, WATCH, add, page, pay, sign_up, submit

COMMERCE = ["currency", "shipping", "email"]
ADDRESS = {
    "name": "Ada Lovelace",
    "street": "12 St James's Square",
    "city": "London",
    "postal_code": "SW1Y 4JH",
    "country": "GB",
}


@pytest.fixture
async def client(
    aiohttp_client: Any, tmp_path: Path, clean_redis: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[TestClient]:
    monkeypatch.setattr(shop_tests, "BACKEND", [*shop_tests.BACKEND, *COMMERCE])
    shop = shop_tests.Shop(aiohttp_client, tmp_path, clean_redis)
    yield await shop()
    await shop.close()


async def choose(client: TestClient, currency: str, on: str = "/") -> str:
    _, html = await submit(client, on, "/currency", currency=currency, next=on)
    return html


async def test_the_shop_shows_prices_in_the_chosen_currency(client: TestClient) -> None:
    assert "$8.99" in await page(client, "/")
    html = await choose(client, "EUR")
    assert "€8.28" in html and "$8.99" not in html  # 899 * 0.9215 = 828.43 -> 828
    assert "€128.09" in await page(client, f"/products/{WATCH}")  # 12808.85 -> 12809
    html = await choose(client, "GBP", f"/products/{MUG}")
    assert "£7.10" in html  # 899 * 0.7893 = 709.58 -> 710


async def test_an_unknown_currency_changes_nothing(client: TestClient) -> None:
    html = await choose(client, "XYZ")
    assert "$8.99" in html and 'value="USD" selected' in html


async def test_a_purchase_in_euros_shows_its_shipping_tracking_and_email(
    client: TestClient,
) -> None:
    await sign_up(client)
    await choose(client, "EUR")
    await add(client, MUG, 2)
    cart = await page(client, "/cart")
    assert "€8.28 each" in cart and "€16.56" in cart
    html = await pay(client, GOOD_CARD, **ADDRESS)
    assert "Thank you for your order" in html
    # shipping to GB, 2 items: 12.99 + 1.99 USD = 14.98 -> 13.80 EUR; 16.56 + 13.80 = 30.36
    assert re.search(r'data-testid="order-shipping">€13.80<', html)
    assert re.search(r'data-testid="order-total"><strong>€30.36<', html)
    tracking = re.search(r'data-testid="tracking-id">(BP[0-9A-F]{18})<', html)
    assert tracking, "the order shows its tracking id"

    async def inbox() -> str:
        return await page(client, "/emails")

    emails = await eventually(inbox, lambda h: "Sent" in h, what="the confirmation sent")
    link = re.search(r'href="(/emails/em_[0-9a-f]{24})"', emails)
    assert link and "is confirmed" in emails
    mail = await page(client, link.group(1))
    assert "30.36 EUR" in mail and tracking.group(1) in mail
    resp = await client.get(link.group(1) + "/html")
    assert resp.status == 200 and "sandbox" in resp.headers["Content-Security-Policy"]
    assert "Thank you for your order!" in await resp.text()


async def test_a_half_filled_address_is_asked_for_again(client: TestClient) -> None:
    await sign_up(client)
    await add(client, MUG, 1)
    html = await pay(client, GOOD_CARD, 422, **{**ADDRESS, "city": ""})
    assert "Enter the city" in html and 'value="Ada Lovelace"' in html
    assert "You have no orders yet" in await page(client, "/orders")


async def test_emails_need_a_signed_in_shopper(client: TestClient) -> None:
    resp = await client.get("/emails", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"].startswith("/signin")


async def test_related_products_show_the_chosen_currency_too(client: TestClient) -> None:
    html = await choose(client, "EUR", f"/products/{MUG}")
    related = re.search(r'data-testid="recommendations".*?</section>', html, re.S)
    assert related is not None, "the product page shows related products"
    shown = re.findall(r'class="price">([^<]+)<', related.group(0))
    assert shown and all(p.startswith("€") for p in shown), shown
