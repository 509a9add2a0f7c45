"""Mesh Boutique's shoppers for Locust. They use only the public API (``/api`` on the ingress).

The mix follows Google Online Boutique's load generator: people look far more than they buy.

- ``Browser``: anonymous; opens the catalog and looks at products and their pictures.
- ``Buyer``: signs up once (a unique e-mail) and logs in, then browses, fills the cart (1-3
  products, 1-3 of each), looks at the cart, checks out with the 4242 4242 4242 4242 test card,
  and looks at their orders.
- ``DeclinedBuyer`` (5% of shoppers): a buyer whose card, 4000 0000 0000 0002, is always
  declined; the 402 is what they expect, counted as ``/api/checkout [declined card]``.

Every response is checked. The expected status is a success. A known business outcome is a
success too, counted under a name of its own: under a long load the stock runs out, and a 409
``out_of_stock`` when filling the cart or checking out is ``... [out of stock]``. Anything else
is a failure whose message names the status, the problem's ``code`` and its ``detail``. So the
plain ``/api/checkout`` row counts paid checkouts only (and failed ones as failures).

- ``PageProber`` (only when ``SHOPPER_PAGE_PROBERS`` > 0, that many): signs up through the
  shop's pages and opens them (catalog, product, cart) as a browser would; counted as
  ``[page] ...``, so the fault experiments can judge what the pages feel.

Think times are ``SHOPPER_THINK_MIN`` to ``SHOPPER_THINK_MAX`` seconds (default 1 to 5). With
``SHOPPER_REQUEST_LOG`` set, every request is also appended to that file as a CSV row (start
time, method, name, milliseconds, 1 for a success or 0): the experiments' per-phase numbers.
Run it with ``boutique load``, or by hand: ``locust -f loadgenerator/locustfile.py -H URL``.
"""

from __future__ import annotations

import os
import random
import re
import secrets
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import gevent
from locust import HttpUser, between, events, task
from locust.env import Environment
from locust.stats import CSV_STATS_INTERVAL_SEC

THINK_MIN = float(os.environ.get("SHOPPER_THINK_MIN", "1"))
PAGE_PROBERS = int(os.environ.get("SHOPPER_PAGE_PROBERS", "0"))
REQUEST_LOG = os.environ.get("SHOPPER_REQUEST_LOG", "")
THINK_MAX = float(os.environ.get("SHOPPER_THINK_MAX", "5"))

GOOD_CARD = "4242 4242 4242 4242"
DECLINED_CARD = "4000 0000 0000 0002"

# Request names: URLs with ids are grouped; business outcomes get names of their own.
REGISTER = "/api/auth/register"
LOGIN = "/api/auth/login"
PRODUCTS = "/api/products"
PRODUCT = "/api/products/[id]"
PRODUCT_IMAGE = "/api/products/[id]/image.svg"
CART = "/api/cart"
CART_ITEM = "/api/cart/items/[id]"
CART_ITEM_OUT_OF_STOCK = "/api/cart/items/[id] [out of stock]"
CHECKOUT = "/api/checkout"
CHECKOUT_OUT_OF_STOCK = "/api/checkout [out of stock]"
CHECKOUT_DECLINED = "/api/checkout [declined card]"
ORDERS = "/api/orders"
ORDER = "/api/orders/[id]"
SIGN_IN_TRIES = 30  # a rate-limited sign-up or sign-in is tried again this often

Outcomes = Mapping[tuple[int, str], str]  # (status, problem code) -> the name it is counted as


@dataclass
class Reply:
    """What a request answered. ``ok``: the expected status; ``outcome``: the problem ``code``
    of a known business outcome; neither: a failure. ``data``: the JSON body (or problem)."""

    status: int
    data: dict[str, Any] = field(default_factory=dict)
    ok: bool = False
    outcome: str | None = None
    retry_after: float = 1.0  # seconds, from a 429's Retry-After


def card(number: str) -> dict[str, Any]:
    return {"number": number, "exp_month": 12, "exp_year": date.today().year + 3, "cvc": "123"}


def json_of(resp: Any) -> dict[str, Any] | None:
    """The body as a JSON object: {} when the body is not JSON, None when it claims to be JSON
    but does not parse."""
    if "json" not in resp.headers.get("Content-Type", ""):
        return {}
    try:
        data = resp.json()
    except ValueError:
        return None
    return data if isinstance(data, dict) else {}


def _retry_after(resp: Any) -> float:
    raw = resp.headers.get("Retry-After", "1")
    return min(float(raw), 10.0) if raw.isdigit() else 1.0


def describe(resp: Any, data: dict[str, Any] | None, expect: int) -> str:
    """A failure message: the status, the problem's code and detail (or why there was none)."""
    if resp.status_code == 0:  # no HTTP answer at all
        return f"no answer: {type(resp.error).__name__}: {str(resp.error)[:200]}"
    if data is None:
        return f"{resp.status_code}: the body is not valid JSON"
    status = f"{resp.status_code} {data['code']}" if data.get("code") else str(resp.status_code)
    detail = str(data.get("detail", ""))[:200] or f"expected {expect}"
    return f"{status}: {detail}"


class Shopper(HttpUser):
    """What every shopper shares: think times, checked requests, the catalog they last saw."""

    abstract = True
    wait_time = between(THINK_MIN, THINK_MAX)

    def on_start(self) -> None:
        self.catalog: list[dict[str, Any]] = []

    def call(
        self,
        method: str,
        path: str,
        name: str,
        *,
        expect: int = 200,
        outcomes: Outcomes | None = None,
        **kwargs: Any,
    ) -> Reply:
        """One request: the ``expect``-ed status is a success; a business outcome in ``outcomes``
        is a success counted under its own name; anything else is a failure."""
        with self.client.request(method, path, name=name, catch_response=True, **kwargs) as resp:
            data = json_of(resp)
            reply = Reply(resp.status_code, data or {}, retry_after=_retry_after(resp))
            code = reply.data.get("code")
            renamed = (outcomes or {}).get((resp.status_code, code)) if code else None
            if resp.status_code == expect and data is not None:
                reply.ok = True
                resp.success()
            elif renamed:
                reply.outcome = code
                resp.request_meta["name"] = renamed  # type: ignore[index]  # a dict in fact
                resp.success()
            else:
                resp.failure(describe(resp, data, expect))
        return reply

    def any_product(self) -> dict[str, Any] | None:
        if not self.catalog:
            browse(self)
        return random.choice(self.catalog) if self.catalog else None


class Customer(Shopper):
    """A shopper with an account: signs up once, logs in, keeps a cart and sees their orders."""

    abstract = True
    card_number = GOOD_CARD
    checkout_expect = 201
    checkout_name = CHECKOUT

    def on_start(self) -> None:
        super().on_start()
        self.credentials: dict[str, str] | None = None
        self.token: str | None = None
        self.cart_lines: list[dict[str, Any]] = []
        self.sign_in()

    def sign_in(self) -> bool:
        """Sign up (once) and log in; True when signed in. Retried by the next task if it failed."""
        if self.token:
            return True
        if self.credentials is None:
            creds = {
                "email": f"shopper-{uuid.uuid4().hex[:16]}@example.com",
                "password": secrets.token_urlsafe(12),
            }
            reply = self.signing(REGISTER, 201, creds)
            if not reply.ok:
                return False
            self.credentials = creds
        reply = self.signing(LOGIN, 200, self.credentials)
        if reply.ok:
            self.token = reply.data["token"]
            self.client.headers["Authorization"] = f"Bearer {self.token}"
        return reply.ok

    def signing(self, path: str, expect: int, creds: dict[str, str]) -> Reply:
        """Sign up or in; the edge rate-limits both (429 + Retry-After): wait it out and retry."""
        limited = {(429, "rate_limited"): f"{path} [rate limited, retried]"}
        for _ in range(SIGN_IN_TRIES):
            reply = self.call("POST", path, path, expect=expect, outcomes=limited, json=creds)
            if reply.outcome != "rate_limited":
                break
            gevent.sleep(reply.retry_after)
        return reply

    def remember_cart(self, reply: Reply) -> None:
        if reply.ok:
            self.cart_lines = reply.data.get("items", [])


# -- tasks: each is one thing a person does on the shop --------------------------------------------


def browse(user: Shopper) -> None:
    """Open the shop's front page: the whole catalog, with live stock."""
    reply = user.call("GET", "/api/products", PRODUCTS)
    if reply.ok:
        user.catalog = reply.data.get("products", [])


def view_product(user: Shopper) -> None:
    """Look at one product and its picture."""
    product = user.any_product()
    if product is None:
        return
    user.call("GET", f"/api/products/{product['id']}", PRODUCT)
    user.call("GET", product["image_url"], PRODUCT_IMAGE)


def fill_cart(user: Customer) -> None:
    """Put 1-3 products in the cart, 1-3 of each (no more than the catalog said were left)."""
    if not user.sign_in():
        return
    if not user.catalog:
        browse(user)
    in_stock = [p for p in user.catalog if p["available"] > 0]
    for product in random.sample(in_stock, k=min(len(in_stock), random.randint(1, 3))):
        quantity = random.randint(1, min(3, product["available"]))
        reply = user.call(
            "PUT",
            f"/api/cart/items/{product['id']}",
            CART_ITEM,
            json={"quantity": quantity},
            outcomes={(409, "out_of_stock"): CART_ITEM_OUT_OF_STOCK},
        )
        user.remember_cart(reply)


def view_cart(user: Customer) -> None:
    """Look at the cart, with live prices and the total."""
    if user.sign_in():
        user.remember_cart(user.call("GET", "/api/cart", CART))


def checkout(user: Customer) -> None:
    """Pay for the cart (filling it first when empty), with a fresh Idempotency-Key.

    When a product ran out meanwhile, take it out of the cart, as a person would."""
    if not user.sign_in():
        return
    if not user.cart_lines:
        fill_cart(user)
    view_cart(user)
    if not user.cart_lines:
        return  # nothing left in stock to buy
    reply = user.call(
        "POST",
        "/api/checkout",
        user.checkout_name,
        expect=user.checkout_expect,
        outcomes={(409, "out_of_stock"): CHECKOUT_OUT_OF_STOCK},
        json={"card": card(user.card_number)},
        headers={"Idempotency-Key": str(uuid.uuid4())},
    )
    if reply.ok and reply.status == 201:
        user.cart_lines = []  # paid: payment empties the cart
    elif reply.outcome == "out_of_stock" and "product_id" in reply.data:
        path = f"/api/cart/items/{reply.data['product_id']}"
        user.remember_cart(user.call("DELETE", path, CART_ITEM))


def look_at_orders(user: Customer) -> None:
    """Look at the order history, and then at one of the orders."""
    if not user.sign_in():
        return
    reply = user.call("GET", "/api/orders", ORDERS)
    orders = reply.data.get("orders", []) if reply.ok else []
    if orders:
        user.call("GET", f"/api/orders/{random.choice(orders)['id']}", ORDER)


# -- the shoppers ----------------------------------------------------------------------------------


class Browser(Shopper):
    """Anonymous: opens the catalog and looks at products; never signs in."""

    weight = 10
    tasks = {browse: 2, view_product: 8}


class Buyer(Customer):
    """Signs up and logs in, browses, fills the cart, looks at it, checks out with the 4242 card
    and looks at the orders; browsing still dominates."""

    weight = 9
    tasks = {browse: 2, view_product: 8, fill_cart: 2, view_cart: 3, checkout: 1, look_at_orders: 1}


class DeclinedBuyer(Buyer):
    """A buyer whose card (4000 0000 0000 0002) is declined: the 402 is the expected answer."""

    weight = 1
    card_number = DECLINED_CARD
    checkout_expect = 402
    checkout_name = CHECKOUT_DECLINED


class PageProber(HttpUser):
    """Opens the shop's pages as a signed-in browser: catalog, a product, the cart. Every page
    shows the cart's item count in its header, so each page asks the gateway for the cart."""

    abstract = PAGE_PROBERS == 0
    fixed_count = PAGE_PROBERS
    wait_time = between(THINK_MIN, THINK_MAX)

    def on_start(self) -> None:
        self.signed_in = False
        self.product_paths: list[str] = []

    def page(self, method: str, path: str, name: str, **kwargs: Any) -> str:
        with self.client.request(
            method, path, name=f"[page] {name}", catch_response=True, **kwargs
        ) as resp:
            if resp.status_code == 200 and "text/html" in resp.headers.get("Content-Type", ""):
                resp.success()
                return resp.text or ""
            resp.failure(f"{resp.status_code}: not the page")
        return ""

    def sign_up(self) -> None:
        form = self.page("GET", "/signup", "/signup")
        csrf = re.search(r'name="csrf" value="([^"]+)"', form)
        if not csrf:
            return
        data = {
            "csrf": csrf.group(1),
            "email": f"prober-{uuid.uuid4().hex[:16]}@example.com",
            "password": secrets.token_urlsafe(12),
            "next": "/",
        }
        catalog = self.page("POST", "/signup", "/signup [form]", data=data)
        self.signed_in = bool(catalog)

    @task(3)
    def catalog(self) -> None:
        if not self.signed_in:
            self.sign_up()
        html = self.page("GET", "/", "/")
        self.product_paths = re.findall(r'href="(/products/[^"?#]+)"', html) or self.product_paths

    @task(3)
    def product(self) -> None:
        if self.product_paths:
            self.page("GET", random.choice(self.product_paths), "/products/[id]")

    @task(2)
    def cart(self) -> None:
        if self.signed_in:
            self.page("GET", "/cart", "/cart")


# -- the request log (the fault experiments' per-phase numbers) -----------------------------------


_log_rows: list[str] = []


@events.request.add_listener
def _log_request(
    request_type: str,
    name: str,
    response_time: float,
    exception: BaseException | None = None,
    start_time: float | None = None,
    **_: Any,
) -> None:
    if REQUEST_LOG:
        started = start_time if start_time is not None else time.time() - response_time / 1000
        ok = 0 if exception else 1
        _log_rows.append(f'{started:.3f},{request_type},"{name}",{response_time:.1f},{ok}\n')
        if len(_log_rows) >= 50:
            _flush_log()


def _flush_log() -> None:
    if REQUEST_LOG and _log_rows:
        with open(REQUEST_LOG, "a", encoding="utf-8") as f:
            f.writelines(_log_rows)
        _log_rows.clear()


@events.init.add_listener
def _flush_every_second(environment: Environment, **_: Any) -> None:
    if REQUEST_LOG:

        def flush_forever() -> None:
            while True:
                gevent.sleep(1)
                _flush_log()

        gevent.spawn(flush_forever)


# -- Locust's CSV stats ----------------------------------------------------------------------------


@events.quitting.add_listener
def _final_csv_stats(environment: Environment, **_: Any) -> None:
    """Locust rewrites its CSV stats once a second, so their last second would be missing: stop
    the shoppers and wait for one more write, so that the CSV files hold the final numbers."""
    _flush_log()
    options = environment.parsed_options
    if environment.runner is not None and options is not None and options.csv_prefix:
        environment.runner.stop()
        gevent.sleep(CSV_STATS_INTERVAL_SEC + 0.5)
    _flush_log()
