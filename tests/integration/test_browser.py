"""A real browser (headless Chromium, driven by Playwright) shops on the real local mesh.

Screenshots are saved under ``test-artifacts/``: the catalog (desktop and phone) and an order's
confirmation page.
"""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from mesh.local import LocalRun

pytestmark = pytest.mark.integration

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
PASSWORD = "correct-horse-battery"


@pytest.fixture
def chromium() -> str:
    """Chromium's path; the test fails (not skips) when it or Playwright is missing."""
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        pytest.fail("Playwright for Python is not installed: run `make setup`")
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"Chromium is not installed ({CHROMIUM} is missing): run `make setup`")
    ARTIFACTS.mkdir(exist_ok=True)
    return CHROMIUM


@pytest.fixture
async def browser(chromium: str) -> AsyncIterator[Any]:
    """Headless Chromium."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


async def new_page(browser: Any, viewport: dict[str, int]) -> tuple[Any, list[str]]:
    """A page in a fresh browser context (its own cookies), and the errors it logs."""
    context = await browser.new_context(viewport=viewport)
    page = await context.new_page()
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return page, errors


async def sign_up(page: Any, shop: LocalRun) -> str:
    email = f"browser-{uuid.uuid4().hex[:8]}@example.com"
    await page.goto(shop.public_url + "/")
    await page.click("text=Sign in")
    await page.click("text=Create an account")
    await page.fill("#email", email)
    await page.fill("#password", PASSWORD)
    await page.click("button:has-text('Create account')")
    await page.wait_for_url(shop.public_url + "/")
    assert await page.locator("button:has-text('Sign out')").is_visible()
    return email


async def cart_count(page: Any) -> int:
    return int(await page.locator("[data-testid=cart-count]").inner_text())


async def check_out(page: Any, number: str) -> None:
    await page.click("text=Check out")
    await page.fill("#number", number)
    await page.fill("#expiry", "12/34")
    await page.fill("#cvc", "123")
    await page.click("button.btn-pay")


async def broken_images(page: Any) -> list[str]:
    return await page.eval_on_selector_all(
        "img", "imgs => imgs.filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src)"
    )


async def trace_services(shop: LocalRun, trace_id: str, wanted: set[str]) -> set[str]:
    """The services in trace ``trace_id`` once ``wanted`` have all arrived (or what came)."""
    seen: set[str] = set()
    async with aiohttp.ClientSession() as http:
        for _ in range(60):
            async with http.get(f"{shop.traces_url}/api/traces/{trace_id}") as resp:
                if resp.status == 200:
                    trace = (await resp.json())["data"][0]
                    seen = {p["serviceName"] for p in trace["processes"].values()}
                    if wanted <= seen:
                        return seen
            await asyncio.sleep(0.25)
    return seen


async def test_a_shopper_signs_up_buys_two_products_and_sees_the_order(
    shop: LocalRun, browser: Any
) -> None:
    phone, phone_errors = await new_page(browser, PHONE)
    await phone.goto(shop.public_url + "/")
    assert await phone.locator(".product-card").count() >= 12
    overflow = await phone.evaluate("document.documentElement.scrollWidth")
    assert overflow <= PHONE["width"], "the catalog is wider than a phone's screen"
    await phone.screenshot(path=str(ARTIFACTS / "catalog-phone.png"))
    assert not phone_errors, phone_errors

    page, errors = await new_page(browser, DESKTOP)
    await page.goto(shop.public_url + "/")
    cards = page.locator(".product-card")
    assert await cards.count() >= 12
    assert re.fullmatch(r"\$\d+\.\d\d", await cards.first.locator(".price").inner_text())
    assert await broken_images(page) == []  # the pictures come through the ingress from /api
    await page.screenshot(path=str(ARTIFACTS / "catalog.png"), full_page=True)

    await sign_up(page, shop)
    first = cards.nth(0)
    first_name = await first.locator(".card-name").inner_text()
    await first.locator("button:has-text('Add to cart')").click()
    await page.wait_for_url(re.compile(r"/cart\?added="))
    assert await cart_count(page) == 1
    await page.goto(shop.public_url + "/")
    second = cards.nth(1)
    second_name = await second.locator(".card-name").inner_text()
    await second.locator(".card-link").click()
    await page.fill("#quantity", "2")
    await page.click(".buy-form button")
    await page.wait_for_url(re.compile(r"/cart"))
    assert await cart_count(page) == 3
    total = await page.locator("[data-testid=cart-total]").inner_text()

    await check_out(page, "4242 4242 4242 4242")
    await page.wait_for_url(re.compile(r"/orders/ord_[0-9a-f]+\?placed=1$"))
    confirmation = page.locator("[data-testid=confirmation]")
    assert "Thank you for your order" in await confirmation.inner_text()
    order_id = await page.locator("[data-testid=order-id]").inner_text()
    assert await page.locator("[data-testid=order-total]").inner_text() == total
    assert await cart_count(page) == 0
    await page.screenshot(path=str(ARTIFACTS / "confirmation.png"), full_page=True)

    # The footer links this page's trace: it is in the trace store, from the ingress down.
    link = await page.locator("[data-testid=trace] a").get_attribute("href")
    trace_id = re.fullmatch(r".*/trace/([0-9a-f]{32})", link or "")
    assert trace_id, link
    wanted = {"frontend", "gateway", "orders"}
    assert wanted <= await trace_services(shop, trace_id.group(1), wanted)

    await page.click("text=All orders")
    history = page.locator("[data-testid=orders]")
    text = await history.inner_text()
    assert order_id in text and "Paid" in text and total in text
    assert first_name in text and second_name in text
    assert not errors, errors


async def test_a_declined_card_is_explained_and_the_cart_kept(shop: LocalRun, browser: Any) -> None:
    page, errors = await new_page(browser, DESKTOP)
    await sign_up(page, shop)
    await page.locator(".product-card button:has-text('Add to cart')").first.click()
    await page.wait_for_url(re.compile(r"/cart\?added="))
    await check_out(page, "4000 0000 0000 0002")
    alert = page.locator(".alert-error")
    await alert.wait_for()
    assert "Your card was declined" in await alert.inner_text()
    assert await page.locator("#number").input_value() == ""  # the number is never sent back
    assert await cart_count(page) == 1
    # The page itself answers 402 Payment Required, which Chromium logs; nothing else may fail.
    assert [e for e in errors if "status of 402" not in e] == [], errors
