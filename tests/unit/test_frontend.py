"""The web shop, used as a shopper would: pages, forms and cookies, over the real services."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from frontend.app import create_app
from services import kit
from tests.conftest import build_app, closed_port, held_socket, port_of, server_on, service_settings

BACKEND = ["gateway", "products", "cart", "checkout", "orders", "payment"]
OPTIONAL = ["recommendations", "ads", "ratings"]  # the frontend calls these itself (discover.py)
PASSWORD = "correct-horse-battery"
GOOD_CARD = "4242 4242 4242 4242"
DECLINED_CARD = "4000000000000002"
NO_FUNDS_CARD = "4000 0000 0000 9995"
MUG, WATCH = "speckled-mug", "meridian-watch"  # $8.99 and $139.00 in the seed catalog
TRACES = "http://traces.test:16686"


class Shop:
    """``await shop(**env)``: a browser-like client (it keeps cookies, follows redirects) of the
    real frontend, whose gateway is the real gateway over the real services, in-process.
    ``gateway=False`` points the frontend at a closed port instead. ``servers`` are the
    services, by name (a test may stop one)."""

    def __init__(self, aiohttp_client: Any, data_dir: Path, redis_url: str) -> None:
        self.aiohttp_client = aiohttp_client
        self.data_dir = data_dir
        self.redis_url = redis_url
        self.servers: dict[str, TestServer] = {}

    async def __call__(self, gateway: bool = True, **env: str) -> TestClient:
        socks = {name: held_socket() for name in [*BACKEND, *OPTIONAL]}
        ports = {name: port_of(sock) for name, sock in socks.items()}
        urls = ",".join(f"{name}=http://127.0.0.1:{port}" for name, port in ports.items())
        if gateway:
            for name, sock in socks.items():
                settings = service_settings(
                    name, self.data_dir, self.redis_url, PEER_URLS=urls, **env
                )
                server = server_on(build_app(name, settings), sock)
                await server.start_server()
                self.servers[name] = server
        else:
            for sock in socks.values():
                sock.close()
        gateway_port = ports["gateway"] if gateway else closed_port()
        direct = ",".join(f"{name}=http://127.0.0.1:{ports[name]}" for name in OPTIONAL)
        settings = kit.Settings.from_env(
            "frontend",
            {
                "PEER_URLS": f"gateway=http://127.0.0.1:{gateway_port},{direct}",
                "TRACES_URL": TRACES,
            },
        )
        return await self.aiohttp_client(create_app(settings))

    async def close(self) -> None:
        for server in self.servers.values():
            await server.close()


@pytest.fixture
async def shop(aiohttp_client: Any, tmp_path: Path, clean_redis: str) -> AsyncIterator[Shop]:
    factory = Shop(aiohttp_client, tmp_path, clean_redis)
    yield factory
    await factory.close()


# --- helpers: what a browser does -------------------------------------------------------------


async def page(client: TestClient, path: str, status: int = 200) -> str:
    resp = await client.get(path)
    html = await resp.text()
    assert resp.status == status, html
    assert resp.content_type == "text/html"
    assert "Traceback" not in html
    return html


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "the page has no form with a CSRF field"
    return found.group(1)


async def submit(
    client: TestClient, form_page: str, action: str, status: int = 200, **fields: str
) -> tuple[ClientResponse, str]:
    """Open ``form_page``, fill in ``fields`` and post them to ``action`` (with the page's
    CSRF token); the answer after redirects, and its HTML."""
    html = await page(client, form_page)
    resp = await client.post(action, data={"csrf": csrf_of(html), **fields})
    text = await resp.text()
    assert resp.status == status, text
    assert "Traceback" not in text
    return resp, text


async def sign_up(client: TestClient, email: str = "ada@example.com") -> str:
    resp, html = await submit(client, "/signup", "/signup", email=email, password=PASSWORD)
    assert resp.url.path == "/"
    return html


async def add(client: TestClient, product: str, quantity: int = 1, status: int = 200) -> str:
    _, html = await submit(
        client,
        f"/products/{product}",
        "/cart/add",
        status,
        product_id=product,
        quantity=str(quantity),
    )
    return html


def cart_count(html: str) -> int | None:
    found = re.search(r'data-testid="cart-count"[^>]*>(\d+)<', html)
    return int(found.group(1)) if found else None


def key_of(html: str) -> str:
    found = re.search(r'name="key" value="([^"]+)"', html)
    assert found, "the checkout form has no Idempotency-Key field"
    return found.group(1)


async def pay(client: TestClient, number: str, status: int = 200, **extra: str) -> str:
    """Fill in the checkout form (with its own key) and press Pay."""
    form = await page(client, "/checkout")
    fields = {"number": number, "expiry": "12/34", "cvc": "123", **extra}
    resp = await client.post(
        "/checkout", data={"csrf": csrf_of(form), "key": key_of(form), **fields}
    )
    html = await resp.text()
    assert resp.status == status, html
    assert "Traceback" not in html
    return html


def text_of(html: str) -> str:
    """The page's words, without tags and with entities as characters (enough for asserts)."""
    words = re.sub(r"<[^>]+>", " ", html).replace("&#39;", "'").replace("&amp;", "&")
    return re.sub(r"\s+", " ", words)


# --- browsing ---------------------------------------------------------------------------------


async def test_the_catalog_lists_every_product_with_its_picture_and_price(shop: Shop) -> None:
    client = await shop()
    html = await page(client, "/")
    images = re.findall(r'<img src="(/api/products/[^"]+/image\.svg)"', html)
    assert len(images) >= 12
    assert "/api/products/riviera-sunglasses/image.svg" in images
    assert "$45.99" in html  # Riviera Sunglasses, 4599 cents
    assert "$139.00" in html  # the watch, 13900 cents
    assert 'href="/products/riviera-sunglasses"' in html
    assert ">Sign in<" in html and "Sign out" not in html
    # Nothing from the internet: every asset is ours (the trace link is the one exception).
    assert not re.search(r'(src|href)="(https?:)?//(?!traces\.test)', html)
    css = await client.get("/static/shop.css")
    assert css.status == 200 and css.content_type == "text/css"


async def test_a_category_narrows_the_catalog(shop: Shop) -> None:
    client = await shop()
    html = await page(client, "/?category=kitchen")
    assert "Speckled Ceramic Mug" in html
    assert "Riviera Sunglasses" not in html


async def test_a_product_page_shows_the_product_and_an_add_to_cart_form(shop: Shop) -> None:
    client = await shop()
    html = await page(client, f"/products/{MUG}")
    assert "Speckled" in html and f"/api/products/{MUG}/image.svg" in html
    assert 'action="/cart/add"' in html and f'name="product_id" value="{MUG}"' in html
    missing = await page(client, "/products/no-such-thing", 404)
    assert "Page not found" in missing


# --- accounts ---------------------------------------------------------------------------------


async def test_signing_up_signs_in_with_an_httponly_samesite_cookie(shop: Shop) -> None:
    client = await shop()
    html = await page(client, "/signup")
    resp = await client.post(
        "/signup",
        data={"csrf": csrf_of(html), "email": "Ada@Example.com", "password": PASSWORD},
        allow_redirects=False,
    )
    assert resp.status == 303 and resp.headers["Location"] == "/"
    cookie = resp.cookies["session"]
    assert cookie.value and cookie["httponly"] and cookie["path"] == "/"
    assert cookie["samesite"] == "Lax" and not cookie["secure"]  # plain http here
    csrf_cookie = client.session.cookie_jar.filter_cookies(client.make_url("/"))["csrf"]
    assert csrf_cookie.value == csrf_of(html)
    home = await page(client, "/")
    assert "Sign out" in home and cart_count(home) == 0


async def test_cookies_are_secure_when_the_shop_is_served_over_https(shop: Shop) -> None:
    client = await shop()
    https = {"X-Forwarded-Proto": "https"}
    resp = await client.get("/signup", headers=https)
    assert resp.cookies["csrf"]["secure"] and resp.cookies["csrf"]["samesite"] == "Strict"
    assert resp.cookies["csrf"]["httponly"]
    html = await resp.text()
    resp = await client.post(
        "/signup",
        data={"csrf": csrf_of(html), "email": "ada@example.com", "password": PASSWORD},
        headers=https,
        cookies={"csrf": csrf_of(html)},  # the jar keeps a Secure cookie for https only
        allow_redirects=False,
    )
    assert resp.status == 303 and resp.cookies["session"]["secure"]


async def test_sign_up_explains_what_is_wrong_and_never_echoes_the_password(shop: Shop) -> None:
    client = await shop()
    _, html = await submit(
        client, "/signup", "/signup", 422, email="not-an-email", password="hunter2-hunter2"
    )
    assert "Enter an e-mail address" in html
    assert 'value="not-an-email"' in html and "hunter2-hunter2" not in html
    _, html = await submit(
        client, "/signup", "/signup", 422, email="ada@example.com", password="short"
    )
    assert "8 to 128 characters" in html and 'value="short"' not in html
    await sign_up(client)
    other = await shop()
    _, html = await submit(
        other, "/signup", "/signup", 409, email="ADA@example.com", password=PASSWORD
    )
    assert "already exists" in html and "Sign out" not in html


async def test_sign_in_with_a_wrong_password_says_so(shop: Shop) -> None:
    client = await shop()
    await sign_up(client)
    await submit(client, "/", "/signout")
    _, html = await submit(
        client, "/signin", "/signin", 400, email="ada@example.com", password="wrong-password"
    )
    assert "Wrong e-mail or password" in html
    assert 'value="ada@example.com"' in html and "wrong-password" not in html
    resp, html = await submit(
        client, "/signin", "/signin", email="ada@example.com", password=PASSWORD
    )
    assert resp.url.path == "/" and "Sign out" in html


async def test_pages_for_shoppers_send_you_to_sign_in_and_back(shop: Shop) -> None:
    client = await shop()
    for path in ("/cart", "/checkout", "/orders", "/orders/ord_0123"):
        resp = await client.get(path, allow_redirects=False)
        assert resp.status == 303, path
        assert resp.headers["Location"].startswith("/signin?next=%2F"), resp.headers["Location"]
    await page(client, "/signup")
    html = await page(client, "/signin?next=/cart")
    assert 'name="next" value="/cart"' in html
    resp, html = await submit(
        client,
        "/signup?next=/cart",
        "/signup",
        email="b@example.com",
        password=PASSWORD,
        next="/cart",
    )
    assert resp.url.path == "/cart" and "Your cart is empty" in html


async def test_signing_in_never_sends_you_to_another_site(shop: Shop) -> None:
    client = await shop()
    await sign_up(client)
    await submit(client, "/", "/signout")
    html = await page(client, "/signin")
    for target in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        resp = await client.post(
            "/signin",
            data={
                "csrf": csrf_of(html),
                "email": "ada@example.com",
                "password": PASSWORD,
                "next": target,
            },
            allow_redirects=False,
        )
        assert resp.status == 303 and resp.headers["Location"] == "/", target


async def test_signing_out_clears_the_cookie_and_ends_the_session(shop: Shop) -> None:
    client = await shop()
    await sign_up(client)
    token = client.session.cookie_jar.filter_cookies(client.make_url("/"))["session"].value
    html = await page(client, "/")
    resp = await client.post("/signout", data={"csrf": csrf_of(html)}, allow_redirects=False)
    assert resp.status == 303
    assert resp.cookies["session"].value == "" and resp.cookies["session"]["max-age"] == "0"
    home = await page(client, "/?bye=1")
    assert "signed out" in home and ">Sign in<" in home
    # The old token is of no use any more, even if someone kept it.
    client.session.cookie_jar.update_cookies({"session": token})
    resp = await client.get("/cart", allow_redirects=False)
    assert resp.status == 303 and "expired=1" in resp.headers["Location"]
    assert resp.cookies["session"].value == ""  # a dead session is forgotten


async def test_sign_out_is_a_post_form_only(shop: Shop) -> None:
    client = await shop()
    await sign_up(client)
    resp = await client.get("/signout")
    assert resp.status == 405 and "Traceback" not in await resp.text()
    assert "Sign out" in await page(client, "/")


# --- cart -------------------------------------------------------------------------------------


async def test_add_change_and_remove_cart_items(shop: Shop) -> None:
    client = await shop()
    await sign_up(client)
    html = await add(client, MUG, 2)
    assert "is in your cart" in html and cart_count(html) == 2
    html = await add(client, WATCH)
    assert cart_count(html) == 3 and "$139.00" in html
    html = await add(client, MUG)  # adds to what is there
    assert cart_count(html) == 4
    _, html = await submit(client, "/cart", "/cart/update", product_id=MUG, quantity="1")
    assert cart_count(html) == 2
    assert re.search(rf'data-product="{MUG}".*?value="1"', html, re.S)
    _, html = await submit(client, "/cart", "/cart/remove", product_id=WATCH)
    assert cart_count(html) == 1 and "Meridian" not in html
    _, html = await submit(client, "/cart", "/cart/update", product_id=MUG, quantity="0")
    assert "Your cart is empty" in html and cart_count(html) == 0


async def test_a_bad_quantity_is_explained_and_changes_nothing(shop: Shop) -> None:
    client = await shop()
    await sign_up(client)
    await add(client, MUG, 2)
    _, html = await submit(client, "/cart", "/cart/update", 422, product_id=MUG, quantity="lots")
    assert "Choose a quantity" in html and cart_count(html) == 2
    html = await add(client, MUG, 120, status=422)
    assert "Choose a quantity" in html and cart_count(html) == 2


async def test_more_than_in_stock_says_how_many_are_left(shop: Shop) -> None:
    client = await shop(PRODUCTS_STOCK="2")
    await sign_up(client)
    html = await add(client, MUG, 3, status=409)
    assert "Only 2 left of Speckled" in text_of(html) and cart_count(html) == 0
    await add(client, MUG, 2)
    _, html = await submit(client, "/cart", "/cart/update", 409, product_id=MUG, quantity="5")
    assert "Only 2 left of Speckled" in text_of(html) and cart_count(html) == 2


async def test_adding_to_the_cart_signed_out_asks_to_sign_in_first(shop: Shop) -> None:
    client = await shop()
    resp, html = await submit(client, f"/products/{MUG}", "/cart/add", product_id=MUG, quantity="1")
    assert resp.url.path == "/signin" and resp.url.query["next"] == f"/products/{MUG}"


# --- checkout ---------------------------------------------------------------------------------


async def test_checkout_confirms_the_order_and_lists_it_in_the_history(shop: Shop) -> None:
    client = await shop()
    await sign_up(client)
    await add(client, MUG, 2)
    html = await add(client, WATCH)
    total = re.search(r'data-testid="cart-total">([^<]+)<', html).group(1)
    form = await page(client, "/checkout")
    key = key_of(form)
    assert f"Pay {total}" in form
    resp = await client.post(
        "/checkout",
        data={
            "csrf": csrf_of(form),
            "key": key,
            "number": GOOD_CARD,
            "expiry": "12/34",
            "cvc": "123",
        },
    )
    html = await resp.text()
    assert resp.status == 200, html
    order_id = re.search(r'data-testid="order-id">(ord_[0-9a-f]+)<', html).group(1)
    assert resp.url.path == f"/orders/{order_id}"
    assert "Thank you for your order" in html and total in html and cart_count(html) == 0
    assert GOOD_CARD not in html and "4242424242424242" not in html
    # The same form sent twice (a double click) is the same order, charged once.
    again = await client.post(
        "/checkout",
        data={
            "csrf": csrf_of(form),
            "key": key,
            "number": GOOD_CARD,
            "expiry": "12/34",
            "cvc": "123",
        },
    )
    assert again.status == 200 and again.url.path == f"/orders/{order_id}"
    history = await page(client, "/orders")
    assert history.count('class="panel order-row"') == 1
    assert order_id in history and total in history and "Paid" in history
    assert "Signed in as ada@example.com" in history
    detail = await page(client, f"/orders/{order_id}")
    assert "Order details" in detail and "Thank you" not in detail


async def test_each_checkout_form_carries_a_fresh_idempotency_key(shop: Shop) -> None:
    client = await shop()
    await sign_up(client)
    await add(client, MUG)
    keys = {
        re.search(r'name="key" value="([^"]+)"', await page(client, "/checkout")).group(1)
        for _ in range(3)
    }
    assert len(keys) == 3


async def test_a_declined_card_says_so_and_keeps_the_cart(shop: Shop) -> None:
    client = await shop()
    await sign_up(client)
    await add(client, MUG, 2)
    html = await pay(client, DECLINED_CARD, 402)
    assert "Your card was declined" in html
    assert DECLINED_CARD not in html and 'value="12/34"' in html  # expiry kept, number not
    assert cart_count(html) == 2
    assert "Speckled" in await page(client, "/cart")
    history = await page(client, "/orders")  # the attempt is on record, unpaid
    assert "Cancelled" in history and "card was declined" in history and ">Paid<" not in history


async def test_insufficient_funds_is_said_in_plain_words(shop: Shop) -> None:
    client = await shop()
    await sign_up(client)
    await add(client, WATCH)
    html = await pay(client, NO_FUNDS_CARD, 402)
    assert "Your card has insufficient funds" in html and cart_count(html) == 1
    html = await pay(client, GOOD_CARD)  # a new attempt (new key) with another card works
    assert "Thank you for your order" in html


async def test_a_mistyped_card_is_caught_before_anything_is_sent(shop: Shop) -> None:
    client = await shop()
    await sign_up(client)
    await add(client, MUG)
    html = await pay(client, "4242 4242 4242 4241", 422)
    assert "card number is not valid" in html and "4241" not in html
    html = await pay(client, GOOD_CARD, 422, expiry="01/20")
    assert "expired" in html and 'value="01/20"' in html
    html = await pay(client, GOOD_CARD, 422, cvc="12")
    assert "security code" in html
    assert 'class="panel order-row"' not in await page(client, "/orders")


async def test_stock_sold_out_after_it_was_put_in_the_cart(shop: Shop) -> None:
    client = await shop(PRODUCTS_STOCK="2")
    await sign_up(client)
    await add(client, MUG, 2)
    # Another shopper, in another browser, buys one of the two mugs first.
    other = TestClient(client.server)  # the same shop, its own cookies
    try:
        await sign_up(other, "grace@example.com")
        await add(other, MUG)
        assert "Thank you for your order" in await pay(other, GOOD_CARD)
    finally:
        await other.session.close()
    html = await pay(client, GOOD_CARD, 409)
    assert "Only 1 left of Speckled" in text_of(html) and cart_count(html) == 2


async def test_a_checkout_whose_end_is_unknown_keeps_its_key_for_a_safe_retry(shop: Shop) -> None:
    client = await shop()
    await sign_up(client)
    await add(client, MUG)
    form = await page(client, "/checkout")
    await shop.servers["checkout"].close()  # the checkout service goes away mid-purchase
    fields = {"number": GOOD_CARD, "expiry": "12/34", "cvc": "123"}
    resp = await client.post(
        "/checkout", data={"csrf": csrf_of(form), "key": key_of(form), **fields}
    )
    html = await resp.text()
    assert resp.status == 503, html
    assert "not answering right now" in html and "retry safely" in html
    assert key_of(html) == key_of(form)  # the same attempt, so a retry can never charge twice
    assert cart_count(html) == 1 and "Traceback" not in html


async def test_checking_out_an_empty_cart_goes_back_to_the_cart(shop: Shop) -> None:
    client = await shop()
    await sign_up(client)
    resp = await client.get("/checkout")
    assert resp.url.path == "/cart" and "Your cart is empty" in await resp.text()


# --- CSRF -------------------------------------------------------------------------------------


async def test_a_form_without_the_csrf_pair_is_refused_and_changes_nothing(shop: Shop) -> None:
    client = await shop()
    await sign_up(client)
    await add(client, MUG)
    html = await page(client, "/cart")
    token = csrf_of(html)
    attempts = [
        ("/cart/add", {"product_id": WATCH, "quantity": "1"}),  # no token at all
        ("/cart/add", {"product_id": WATCH, "quantity": "1", "csrf": "x" * 43}),  # a wrong one
        ("/cart/remove", {"product_id": MUG, "csrf": ""}),
        ("/signout", {}),
    ]
    for action, data in attempts:
        resp = await client.post(action, data=data)
        text = await resp.text()
        assert resp.status == 403, (action, text)
        assert "This form has expired" in text and "Traceback" not in text
    # A page of another site cannot send the cookie's value: with no csrf cookie, no pair.
    client.session.cookie_jar.clear(lambda c: c.key == "csrf")
    resp = await client.post("/cart/remove", data={"product_id": MUG, "csrf": token})
    assert resp.status == 403
    html = await page(client, "/cart")
    assert cart_count(html) == 1 and "Speckled" in html and "Meridian" not in html


# --- failures, health, traces -----------------------------------------------------------------


async def test_an_unreachable_gateway_is_a_friendly_503_page(shop: Shop) -> None:
    client = await shop(gateway=False)
    resp = await client.get("/")
    html = await resp.text()
    assert resp.status == 503 and resp.content_type == "text/html"
    assert "having a little trouble" in html and "try again" in html
    assert "Traceback" not in html and "ClientConnectorError" not in html
    resp = await client.get("/healthz")
    assert resp.status == 200 and (await resp.json())["service"] == "frontend"
    assert (await client.get("/readyz")).status == 200


async def test_the_footer_links_the_trace_of_the_page(shop: Shop) -> None:
    client = await shop()
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    resp = await client.get("/", headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"})
    html = await resp.text()
    assert f'href="{TRACES}/trace/{trace_id}"' in html and f"<code>{trace_id}</code>" in html
    html = await page(client, "/")
    if isinstance(trace.get_tracer_provider(), TracerProvider):  # another module traces
        assert re.search(rf'href="{TRACES}/trace/[0-9a-f]{{32}}"', html)
    else:
        assert "Tracing is off for this page." in html
