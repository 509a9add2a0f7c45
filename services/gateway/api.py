"""The public API under ``/api``: accounts and sessions here, the shop proxied to its services."""

from __future__ import annotations

import re
import secrets
from typing import Any, Literal
from urllib.parse import quote, urlencode

from aiohttp import web
from pydantic import Field, field_validator

from services import kit
from services.kit.app import openapi_json, openapi_yaml
from services.kit.jsonio import json_body, json_response

from . import auth, store
from .relay import LISTING, PRODUCT_PAGES, relay, with_image_url

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
PATH_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
CARD_DIGITS = re.compile(r"^[0-9]{12,19}$")
IMAGE_CACHE = "public, max-age=86400"


# --- request bodies ----------------------------------------------------------------------------


class Registration(kit.Body):
    email: str = Field(max_length=254)
    password: str = Field(min_length=8, max_length=128)

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        if not EMAIL.match(value):
            raise ValueError("must be an e-mail address such as ada@example.com")
        return value.lower()


class Login(kit.Body):
    # Deliberately loose: a login that cannot match is a 401, like any other wrong password.
    email: str = Field(min_length=1, max_length=254)
    password: str = Field(min_length=1, max_length=1024)


class Quantity(kit.Body):
    quantity: int = Field(ge=0, le=99)


class Card(kit.Body):
    number: str = Field(max_length=40)
    exp_month: int = Field(ge=1, le=12)
    exp_year: int = Field(ge=2000, le=2100)
    cvc: str = Field(pattern=r"^[0-9]{3,4}$")

    @field_validator("number")
    @classmethod
    def _number(cls, value: str) -> str:
        if not CARD_DIGITS.match(value.replace(" ", "").replace("-", "")):
            raise ValueError("must be 12-19 digits (spaces and dashes allowed)")
        return value


class Address(kit.Body):
    name: str = Field(min_length=1, max_length=100)
    street: str = Field(min_length=1, max_length=200)
    city: str = Field(min_length=1, max_length=100)
    postal_code: str = Field(min_length=1, max_length=20)
    country: str = Field(pattern=r"^[A-Z]{2}$")


class CheckoutBody(kit.Body):
    card: Card
    currency: Literal["USD", "EUR", "GBP", "CAD", "CHF"] = "USD"
    address: Address | None = None


# --- helpers -----------------------------------------------------------------------------------


def _path_id(request: web.Request, what: str, name: str = "id") -> str:
    """The path's id, URL-quoted for the peer call; 404 when it cannot be an id."""
    value = request.match_info[name]
    if not PATH_ID.match(value):
        raise kit.Problem(404, f"No {what} {value!r}", code=f"unknown_{what}")
    return quote(value, safe="")


def _user(row: dict[str, Any]) -> dict[str, str]:
    return {"id": row["id"], "email": row["email"], "created_at": row["created_at"]}


def _cart(cart: dict[str, Any]) -> dict[str, Any]:
    return {**cart, "items": [with_image_url(i, "product_id") for i in cart["items"]]}


# --- accounts and sessions ---------------------------------------------------------------------


async def register(request: web.Request) -> web.Response:
    body = await kit.read_json(request, Registration)
    user = {
        "id": "u_" + secrets.token_hex(12),
        "email": body.email,
        "created_at": auth.rfc3339(auth.utc_now()),
    }
    password_hash = await auth.hash_password(body.password)
    try:
        await store.add_user(request.app[kit.DB], user, password_hash)
    except store.EmailTaken:
        raise kit.Problem(
            409, "An account with this e-mail already exists", code="email_taken"
        ) from None
    return json_response(user, status=201)


async def login(request: web.Request) -> web.Response:
    body = await kit.read_json(request, Login)
    user = await store.user_by_email(request.app[kit.DB], body.email.lower())
    # Unknown e-mail and wrong password: the same work, the same answer.
    ok = await auth.verify_password(body.password, user["password_hash"] if user else None)
    if not ok or user is None:
        raise kit.Problem(401, "Wrong e-mail or password", code="invalid_credentials")
    token, expires_at = await auth.open_session(request.app, user["id"])
    return json_response({"token": token, "token_type": "Bearer", "expires_at": expires_at})


async def logout(request: web.Request) -> web.Response:
    token = auth.bearer_token(request)
    if not await auth.close_session(request.app, token):
        raise auth.unauthorized("The token is unknown, expired or signed out", invalid=True)
    return web.Response(status=204)


async def me(request: web.Request) -> web.Response:
    uid = await auth.require_user(request)
    user = await store.user_by_id(request.app[kit.DB], uid)
    if user is None:
        raise auth.unauthorized("This account no longer exists", invalid=True)
    return json_response(_user(user))


# --- catalog (public) --------------------------------------------------------------------------


async def list_products(request: web.Request) -> web.Response:
    reply = await kit.peers(request).get("products", "/products")
    return json_body(request.app[LISTING].answer("", reply))


async def get_product(request: web.Request) -> web.Response:
    pid = _path_id(request, "product")
    reply = await kit.peers(request).get("products", f"/products/{pid}")
    return json_body(request.app[PRODUCT_PAGES].answer(pid, reply))


async def product_image(request: web.Request) -> web.Response:
    pid = _path_id(request, "image")
    svg = relay(await kit.peers(request).get("products", f"/products/{pid}/image.svg"), 200)
    if not isinstance(svg, str) or not svg:
        raise kit.Problem(
            502,
            "The products service sent no image",
            code="dependency_failed",
            dependency="products",
        )
    return web.Response(
        text=svg, content_type="image/svg+xml", headers={"Cache-Control": IMAGE_CACHE}
    )


# --- cart (signed in) --------------------------------------------------------------------------


async def get_cart(request: web.Request) -> web.Response:
    uid = await auth.require_user(request)
    data = relay(await kit.peers(request).get("cart", "/cart", user=uid), 200)
    return json_response(_cart(data))


async def put_cart_item(request: web.Request) -> web.Response:
    uid = await auth.require_user(request)
    pid = _path_id(request, "product", "product_id")
    body = await kit.read_json(request, Quantity)
    reply = await kit.peers(request).put(
        "cart", f"/cart/items/{pid}", json_body=body.model_dump(), user=uid
    )
    return json_response(_cart(relay(reply, 200)))


async def delete_cart_item(request: web.Request) -> web.Response:
    uid = await auth.require_user(request)
    pid = _path_id(request, "product", "product_id")
    data = relay(await kit.peers(request).delete("cart", f"/cart/items/{pid}", user=uid), 200)
    return json_response(_cart(data))


async def clear_cart(request: web.Request) -> web.Response:
    uid = await auth.require_user(request)
    relay(await kit.peers(request).delete("cart", "/cart", user=uid), 204)
    return web.Response(status=204)


# --- checkout and orders (signed in) -----------------------------------------------------------


async def checkout(request: web.Request) -> web.Response:
    uid = await auth.require_user(request)
    key = kit.idempotency_key(request)
    body = await kit.read_json(request, CheckoutBody)
    reply = await kit.peers(request).post(
        "checkout",
        "/checkout",
        json_body=body.model_dump(exclude_none=True),
        user=uid,
        headers={kit.IDEMPOTENCY_HEADER: key},
    )
    # A replay (same key) is 201 again, with the same order.
    return json_response(relay(reply, 200, 201), status=201)


async def list_orders(request: web.Request) -> web.Response:
    uid = await auth.require_user(request)
    limit = kit.int_query(request, "limit", 20, 1, 100)
    offset = kit.int_query(request, "offset", 0, 0, 1_000_000)
    path = f"/orders?limit={limit}&offset={offset}"
    return json_response(relay(await kit.peers(request).get("orders", path, user=uid), 200))


async def get_order(request: web.Request) -> web.Response:
    uid = await auth.require_user(request)
    oid = _path_id(request, "order")
    return json_response(
        relay(await kit.peers(request).get("orders", f"/orders/{oid}", user=uid), 200)
    )


# --- currencies (public) -----------------------------------------------------------------------


async def list_currencies(request: web.Request) -> web.Response:
    data = relay(await kit.peers(request).get("currency", "/currencies"), 200)
    return web.json_response(data)


async def convert(request: web.Request) -> web.Response:
    """The shop's prices in another currency: the query is checked by currency itself."""
    query = urlencode({k: request.query.get(k, "") for k in ("from", "to", "amounts")})
    return web.json_response(
        relay(await kit.peers(request).get("currency", f"/convert?{query}"), 200)
    )


# --- e-mails (signed in) -----------------------------------------------------------------------


async def list_emails(request: web.Request) -> web.Response:
    uid = await auth.require_user(request)
    limit = kit.int_query(request, "limit", 20, 1, 100)
    offset = kit.int_query(request, "offset", 0, 0, 1_000_000)
    path = f"/emails?limit={limit}&offset={offset}"
    return web.json_response(relay(await kit.peers(request).get("email", path, user=uid), 200))


async def get_email(request: web.Request) -> web.Response:
    uid = await auth.require_user(request)
    eid = _path_id(request, "email")
    return web.json_response(
        relay(await kit.peers(request).get("email", f"/emails/{eid}", user=uid), 200)
    )


routes = [
    web.post("/api/auth/register", register),
    web.post("/api/auth/login", login),
    web.post("/api/auth/logout", logout),
    web.get("/api/me", me),
    web.get("/api/products", list_products),
    web.get("/api/products/{id}", get_product),
    web.get("/api/products/{id}/image.svg", product_image),
    web.get("/api/cart", get_cart),
    web.delete("/api/cart", clear_cart),
    web.put("/api/cart/items/{product_id}", put_cart_item),
    web.delete("/api/cart/items/{product_id}", delete_cart_item),
    web.post("/api/checkout", checkout),
    web.get("/api/orders", list_orders),
    web.get("/api/orders/{id}", get_order),
    web.get("/api/emails", list_emails),
    web.get("/api/emails/{id}", get_email),
    web.get("/api/currencies", list_currencies),
    web.get("/api/currencies/convert", convert),
    web.get("/api/openapi.yaml", openapi_yaml),
    web.get("/api/openapi.json", openapi_json),
]
