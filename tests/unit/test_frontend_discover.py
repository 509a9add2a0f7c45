"""The shop's optional sections: related products and an ad, over the real services."""

from __future__ import annotations

import re

from tests.unit.test_frontend import MUG, Shop, add, page, shop, sign_up

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
