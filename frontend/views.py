"""The shop's pages: catalog, product, cart, checkout, orders, sign up, sign in, sign out.

Pages are GETs; every change is a POST form (CSRF-checked by ``security.csrf_check``) that
answers with a redirect, or re-renders its form with a message when something is wrong.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any
from urllib.parse import quote

from aiohttp import web

from . import commerce_forms, discover, forms, gateway, prices, ratings, security
from .gateway import GatewayProblem
from .pages import CART, SignInRequired, redirect, render

PAGE_SIZE = 10
# 5xx answers after which the checkout is over and nothing was charged: the next try is a new one
KNOWN_ENDS = ("payment_unavailable", "orders_unavailable")
log = logging.getLogger("boutique.frontend")


def need_token(request: web.Request, next_path: str | None = None) -> str:
    token = security.session_token(request)
    if token is None:
        raise SignInRequired(next_path or request.path_qs)
    return token


def product_path(product_id: str) -> str:
    return f"/products/{quote(product_id, safe='')}"


async def load_cart(request: web.Request, token: str) -> dict[str, Any]:
    """The cart, kept for this request so the header's count needs no second call."""
    request[CART] = await gateway.cart(request, token)
    return await prices.cart(request, request[CART])


# --- catalog ----------------------------------------------------------------------------------


async def catalog(request: web.Request) -> web.Response:
    products = await prices.products(request, await gateway.products(request))
    categories = sorted({c for p in products for c in p.get("categories", [])})
    category = request.query.get("category", "")
    shown = [p for p in products if category in p.get("categories", [])] if category else products
    context = {
        "products": shown,
        "categories": categories,
        "category": category if category in categories else "",
        "notice": "You are signed out. See you soon!" if "bye" in request.query else None,
    }
    return await render(request, "catalog.html", context)


async def product_page(request: web.Request) -> web.Response:
    product_id = request.match_info["id"]
    if not forms.PATH_ID.match(product_id):
        raise web.HTTPNotFound()
    found = await gateway.product(request, product_id)
    product, extras = await asyncio.gather(
        prices.product(request, found), discover.for_product(request, found)
    )
    return await render(request, "product.html", {"product": product, "quantity": 1, **extras})


# --- cart -------------------------------------------------------------------------------------


async def cart_page(request: web.Request) -> web.Response:
    cart = await load_cart(request, need_token(request))
    added = request.query.get("added")
    name = next((i["name"] for i in cart["items"] if i["product_id"] == added), None)
    notice = f"{name} is in your cart." if name else None
    extras = await discover.for_cart(request, cart)
    return await render(request, "cart.html", {"cart": cart, "notice": notice, **extras})


async def cart_with_message(
    request: web.Request, token: str, why: GatewayProblem | str, status: int
) -> web.Response:
    """The cart page again, saying why the change was not made."""
    cart = await load_cart(request, token)
    names = {i["product_id"]: i["name"] for i in cart["items"]}
    message = why if isinstance(why, str) else gateway.message(why, names)
    return await render(request, "cart.html", {"cart": cart, "message": message}, status=status)


async def add_to_cart(request: web.Request) -> web.Response:
    form = await request.post()
    product_id = forms.field(form, "product_id", 64)
    if not forms.PATH_ID.match(product_id):
        raise web.HTTPNotFound()
    token = need_token(request, product_path(product_id))
    wanted = forms.quantity(forms.field(form, "quantity") or "1")
    product = await gateway.product(request, product_id)
    if wanted is None:
        return await product_with_message(request, product, "Choose a quantity from 1 to 99.")
    cart = await load_cart(request, token)
    have = next((i["quantity"] for i in cart["items"] if i["product_id"] == product_id), 0)
    if have + wanted > 99:
        text = f"You can have at most 99 of {product['name']} in your cart (you have {have})."
        return await product_with_message(request, product, text, wanted)
    try:
        await gateway.set_quantity(request, token, product_id, have + wanted)
    except GatewayProblem as problem:
        if problem.status not in (404, 409, 422):
            raise
        text = gateway.message(problem, {product_id: product["name"]})
        if have and problem.code == "out_of_stock":
            text += f" You already have {have} in your cart."
        return await product_with_message(request, product, text, wanted, problem.status)
    return redirect(f"/cart?added={quote(product_id, safe='')}")


async def product_with_message(
    request: web.Request,
    product: dict[str, Any],
    message: str,
    quantity: int = 1,
    status: int = 422,
) -> web.Response:
    context = {"product": product, "quantity": quantity, "message": message}
    return await render(request, "product.html", context, status=status)


async def update_cart(request: web.Request) -> web.Response:
    token = need_token(request, "/cart")
    form = await request.post()
    product_id = forms.field(form, "product_id", 64)
    wanted = forms.quantity(forms.field(form, "quantity"), low=0)
    if not forms.PATH_ID.match(product_id) or wanted is None:
        return await cart_with_message(request, token, "Choose a quantity from 0 to 99.", 422)
    try:
        await gateway.set_quantity(request, token, product_id, wanted)
    except GatewayProblem as problem:
        if problem.status not in (404, 409, 422):
            raise
        return await cart_with_message(request, token, problem, problem.status)
    return redirect("/cart")


async def remove_from_cart(request: web.Request) -> web.Response:
    token = need_token(request, "/cart")
    form = await request.post()
    product_id = forms.field(form, "product_id", 64)
    if forms.PATH_ID.match(product_id):
        await gateway.remove(request, token, product_id)
    return redirect("/cart")


# --- checkout ---------------------------------------------------------------------------------


async def checkout_form(
    request: web.Request,
    token: str,
    *,
    cart: dict[str, Any] | None = None,
    key: str | None = None,
    expiry: str = "",
    message: str | None = None,
    status: int = 200,
) -> web.Response:
    """The checkout page. Each rendering carries a fresh Idempotency-Key for the next attempt,
    unless ``key`` is given (an attempt whose outcome is unknown, to be retried safely)."""
    cart = cart or await load_cart(request, token)
    if not cart["items"]:
        return redirect("/cart")
    context = {
        "cart": cart,
        "key": key or uuid.uuid4().hex,
        "expiry": expiry,
        "message": message,
        "address": await commerce_forms.address_fields(request),
    }
    return await render(request, "checkout.html", context, status=status)


async def checkout_page(request: web.Request) -> web.Response:
    return await checkout_form(request, need_token(request))


async def place_order(request: web.Request) -> web.Response:
    token = need_token(request, "/checkout")
    form = await request.post()
    key = forms.field(form, "key", 128)
    expiry = forms.field(form, "expiry", 16)
    card = forms.card(forms.field(form, "number", 40), expiry, forms.field(form, "cvc", 8))
    if not forms.KEY.match(key):
        text = "Your checkout expired. Please enter your card again."
        return await checkout_form(request, token, expiry=expiry, message=text, status=400)
    address = commerce_forms.address(form)
    if isinstance(card, str) or isinstance(address, str):
        text = card if isinstance(card, str) else str(address)
        return await checkout_form(request, token, expiry=expiry, message=text, status=422)
    extra = {"currency": prices.chosen(request), **({"address": address} if address else {})}
    try:
        order = await gateway.checkout(request, token, key, card.as_json(), extra)
    except GatewayProblem as problem:
        if problem.status == 401:
            raise
        cart = await load_cart(request, token)
        names = {i["product_id"]: i["name"] for i in cart["items"]}
        text = gateway.message(problem, names)
        # A failure the shop knows the end of gets a new key for the next attempt; when the
        # outcome is unknown (a 5xx), the same key again learns it and never charges twice.
        unknown = problem.status >= 500 and problem.code not in KNOWN_ENDS
        if unknown and not cart["items"]:
            return redirect("/orders")  # the cart was paid for after all: the order is there
        if unknown:
            text += " Press Pay again to retry safely: you will never be charged twice."
        status = 503 if problem.status >= 500 else problem.status
        return await checkout_form(
            request,
            token,
            cart=cart,
            key=key if unknown else None,
            expiry=expiry,
            message=text,
            status=status,
        )
    return redirect(f"/orders/{quote(order['id'], safe='')}?placed=1")


# --- orders -----------------------------------------------------------------------------------


async def orders_page(request: web.Request) -> web.Response:
    token = need_token(request)
    page = forms.quantity(request.query.get("page", "1"), 1, 10_000) or 1
    listing, account = await asyncio.gather(
        gateway.orders(request, token, PAGE_SIZE, (page - 1) * PAGE_SIZE),
        gateway.me(request, token),
    )
    context = {
        "orders": listing["orders"],
        "page": page,
        "has_more": page * PAGE_SIZE < listing["total"],
        "email": account["email"],
    }
    return await render(request, "orders.html", context)


async def order_page(request: web.Request) -> web.Response:
    token = need_token(request)
    order_id = request.match_info["id"]
    if not forms.PATH_ID.match(order_id):
        raise web.HTTPNotFound()
    order = await gateway.order(request, token, order_id)
    placed = "placed" in request.query
    extras = await ratings.for_order(request, token, order)
    return await render(request, "order.html", {"order": order, "placed": placed, **extras})


# --- accounts ---------------------------------------------------------------------------------


async def signin_page(request: web.Request) -> web.Response:
    context = {"next": forms.safe_next(request.query.get("next")), "email": ""}
    if "expired" in request.query:
        context["notice"] = "Please sign in again to continue."
    return await render(request, "signin.html", context)


async def signup_page(request: web.Request) -> web.Response:
    context = {"next": forms.safe_next(request.query.get("next")), "email": ""}
    return await render(request, "signup.html", context)


async def sign_in_and_go(
    request: web.Request, email: str, password: str, next_path: str
) -> web.Response:
    """Open a session and send the shopper on; the token goes into the session cookie."""
    session = await gateway.login(request, email, password)
    response = redirect(next_path)
    security.remember_session(response, request, session["token"], session.get("expires_at"))
    return response


async def signin(request: web.Request) -> web.Response:
    form = await request.post()
    email = forms.field(form, "email", 254)
    password = forms.secret(form, "password")
    next_path = forms.safe_next(forms.field(form, "next", 2000))
    context = {"next": next_path, "email": email, "message": "Enter your e-mail and password."}
    if email and password:
        try:
            return await sign_in_and_go(request, email, password, next_path)
        except GatewayProblem as problem:
            if problem.status not in (401, 422):
                raise
            context["message"] = gateway.PLAIN["invalid_credentials"]
    return await render(request, "signin.html", context, status=400)


async def signup(request: web.Request) -> web.Response:
    form = await request.post()
    email = forms.field(form, "email", 1000)
    password = forms.secret(form, "password")
    next_path = forms.safe_next(forms.field(form, "next", 2000))
    problem_text = forms.email_problem(email) or forms.password_problem(password)
    status = 422
    if problem_text is None:
        try:
            await gateway.register(request, email, password)
            return await sign_in_and_go(request, email, password, next_path)
        except GatewayProblem as problem:
            if problem.status not in (409, 422):
                raise
            problem_text, status = gateway.message(problem), problem.status
    context = {"next": next_path, "email": email, "message": problem_text}
    return await render(request, "signup.html", context, status=status)


async def signout(request: web.Request) -> web.Response:
    """End the session at the gateway and forget it here; even when the gateway cannot be
    reached, this browser is signed out (the token then ends with its time to live)."""
    token = security.session_token(request)
    if token is not None:
        try:
            await gateway.logout(request, token)
        except GatewayProblem as problem:
            if problem.status != 401:  # 401: it had already ended
                log.warning("sign-out: the gateway answered %s", problem)
    security.forget_session(request)
    return redirect("/?bye=1")


routes = [
    web.get("/", catalog),
    web.get("/products/{id}", product_page),
    web.get("/cart", cart_page),
    web.post("/cart/add", add_to_cart),
    web.post("/cart/update", update_cart),
    web.post("/cart/remove", remove_from_cart),
    web.get("/checkout", checkout_page),
    web.post("/checkout", place_order),
    web.get("/orders", orders_page),
    web.get("/orders/{id}", order_page),
    web.get("/signin", signin_page),
    web.post("/signin", signin),
    web.get("/signup", signup_page),
    web.post("/signup", signup),
    web.post("/signout", signout),
]
