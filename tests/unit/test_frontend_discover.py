"""The shop's optional sections: related products and an ad, over the real services."""

from __future__ import annotations

import re

from aiohttp.test_utils import TestClient

from tests.unit.test_frontend import (
    GOOD_CARD,
    MUG,
    Shop,
    add,
    csrf_of,
    key_of,
    page,
    shop,
    sign_up,
)

__all__ = ["shop"]  # the fixture

JAR, SALT = "bamboo-glass-jar", "salt-pepper-set"


def recommended(html: str) -> list[str]:
    section = re.search(r'data-testid="recommendations".*?</section>', html, re.S)
    return (
        re.findall(r'<li class="card" data-product="([^"]+)"', section.group(0)) if section else []
    )


async def test_a_product_page_shows_related_products_and_an_ad_for_its_category(
    shop: Shop,
) -> None:
    client = await shop()
    html = await page(client, f"/products/{MUG}")
    assert recommended(html) == [JAR, SALT]  # kitchen, like the mug; never the mug itself
    assert re.search(r'data-testid="ad" data-ad="ad-kitchen-[^"]+"', html)
    assert 'href="/?category=kitchen"' in html


async def test_related_products_leave_out_the_cart_s_on_product_and_cart_pages(
    shop: Shop,
) -> None:
    client = await shop()
    await sign_up(client)
    await add(client, JAR)
    product = await page(client, f"/products/{MUG}")
    shown = recommended(product)  # related to the mug (kitchen) and the jar (kitchen, home)
    assert SALT in shown and "brass-candlestick" in shown
    assert JAR not in shown and MUG not in shown  # the jar is in the cart, the mug on the page
    cart = await page(client, "/cart")
    shown = recommended(cart)
    assert shown and JAR not in shown and SALT in shown


async def test_with_recommendations_and_ads_down_the_pages_render_without_them(
    shop: Shop,
) -> None:
    client = await shop()
    await sign_up(client)
    await add(client, JAR)
    for name in ("recommendations", "ads"):
        await shop.servers[name].close()
    product = await page(client, f"/products/{MUG}")
    assert "Speckled Ceramic Mug" in product and "Add to cart" in product
    assert 'data-testid="recommendations"' not in product and 'data-testid="ad"' not in product
    cart = await page(client, "/cart")
    assert "Bamboo-Lid Glass Jar" in cart and 'data-testid="recommendations"' not in cart


async def buy_mug(client: TestClient) -> tuple[str, str]:
    """Sign up, buy a mug; the order's id and its page."""
    await sign_up(client)
    await add(client, MUG)
    form = await page(client, "/checkout")
    fields = {"number": GOOD_CARD, "expiry": "12/34", "cvc": "123", "key": key_of(form)}
    resp = await client.post("/checkout", data={"csrf": csrf_of(form), **fields})
    html = await resp.text()
    assert resp.status == 200, html
    return re.search(r'data-testid="order-id">(ord_[0-9a-f]+)<', html).group(1), html


async def test_a_buyer_rates_from_the_order_page_and_the_product_page_shows_it(
    shop: Shop,
) -> None:
    client = await shop()
    assert "No ratings yet" in await page(client, f"/products/{MUG}")
    order_id, html = await buy_mug(client)
    assert f'data-testid="rate-{MUG}"' in html  # the form, on the confirmation already
    fields = {"order_id": order_id, "product_id": MUG, "rating": "4"}
    resp = await client.post("/ratings", data={"csrf": csrf_of(html), **fields})
    rated = await resp.text()
    assert resp.status == 200 and resp.url.path == f"/orders/{order_id}", rated
    assert "Thank you for rating Speckled Ceramic Mug" in rated
    assert f'data-testid="rated-{MUG}"' in rated and "You rated it 4/5" in rated
    product = await page(client, f"/products/{MUG}")
    assert re.search(r'data-testid="rating-average">4\.0<', product)
    assert re.search(r'data-testid="rating-count">1<', product)
    # a second rating of the same line: said plainly, nothing changes
    again = await client.post("/ratings", data={"csrf": csrf_of(html), **fields, "rating": "1"})
    text = await again.text()
    assert again.status == 409 and "You have rated this product of this order already" in text
    bad = await client.post("/ratings", data={"csrf": csrf_of(html), **fields, "rating": "9"})
    assert bad.status == 422 and "Choose 1 to 5 stars" in await bad.text()
    product = await page(client, f"/products/{MUG}")
    assert re.search(r'data-testid="rating-count">1<', product)


async def test_a_product_not_in_the_order_cannot_be_rated(shop: Shop) -> None:
    client = await shop()
    order_id, html = await buy_mug(client)
    fields = {"order_id": order_id, "product_id": "city-bike", "rating": "5"}
    resp = await client.post("/ratings", data={"csrf": csrf_of(html), **fields})
    assert resp.status == 403 and "products can be rated" in await resp.text()
