"""The shop's few calls to the gateway's public API, and the gateway's problems in plain words.

The gateway is the only service the shop calls, as the peer ``gateway`` (the mesh routes it).
Every answer that is not the expected one becomes a :class:`GatewayProblem` carrying the
problem's status and body; :func:`message` says what it means to a shopper.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from aiohttp import web

from services import kit

PEER = "gateway"


class GatewayProblem(Exception):
    """The gateway answered a problem, or could not be reached: its status and problem body."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(f"{status} {body.get('code') or body.get('title', '')}")
        self.status = status
        self.body = body

    @property
    def code(self) -> str:
        return str(self.body.get("code") or "")


async def call(
    request: web.Request,
    method: str,
    path: str,
    *,
    token: str | None = None,
    body: Any = None,
    headers: dict[str, str] | None = None,
    ok: tuple[int, ...] = (200,),
) -> Any:
    """One call to the gateway: the body of an ``ok`` answer, otherwise a GatewayProblem."""
    hdrs = dict(headers or {})
    if token is not None:
        hdrs["Authorization"] = f"Bearer {token}"
    try:
        reply = await kit.peers(request).call(method, PEER, path, json_body=body, headers=hdrs)
    except kit.Problem as unreachable:
        raise GatewayProblem(unreachable.status, unreachable.details) from None
    if reply.status in ok:
        return reply.data
    if (body := reply.own_problem) is not None:
        raise GatewayProblem(reply.status, body)
    # Not a problem the gateway wrote (the mesh's own 503, say): name the gateway.
    failed = reply.problem()
    raise GatewayProblem(failed.status, failed.details)


def _id(value: str) -> str:
    return quote(value, safe="")


# --- catalog ----------------------------------------------------------------------------------


async def products(request: web.Request) -> list[dict[str, Any]]:
    return (await call(request, "GET", "/api/products"))["products"]


async def product(request: web.Request, product_id: str) -> dict[str, Any]:
    return await call(request, "GET", f"/api/products/{_id(product_id)}")


# --- accounts ---------------------------------------------------------------------------------


async def register(request: web.Request, email: str, password: str) -> dict[str, Any]:
    creds = {"email": email, "password": password}
    return await call(request, "POST", "/api/auth/register", body=creds, ok=(201,))


async def login(request: web.Request, email: str, password: str) -> dict[str, Any]:
    creds = {"email": email, "password": password}
    return await call(request, "POST", "/api/auth/login", body=creds)


async def logout(request: web.Request, token: str) -> None:
    await call(request, "POST", "/api/auth/logout", token=token, ok=(204,))


async def me(request: web.Request, token: str) -> dict[str, Any]:
    return await call(request, "GET", "/api/me", token=token)


# --- cart, checkout, orders -------------------------------------------------------------------


async def cart(request: web.Request, token: str) -> dict[str, Any]:
    return await call(request, "GET", "/api/cart", token=token)


async def set_quantity(
    request: web.Request, token: str, product_id: str, quantity: int
) -> dict[str, Any]:
    path = f"/api/cart/items/{_id(product_id)}"
    return await call(request, "PUT", path, token=token, body={"quantity": quantity})


async def remove(request: web.Request, token: str, product_id: str) -> dict[str, Any]:
    return await call(request, "DELETE", f"/api/cart/items/{_id(product_id)}", token=token)


async def checkout(
    request: web.Request,
    token: str,
    key: str,
    card: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Pay for the cart (``extra``: the address, the currency). The same ``key`` again returns
    the first result, never a 2nd charge."""
    return await call(
        request,
        "POST",
        "/api/checkout",
        token=token,
        body={"card": card, **(extra or {})},
        headers={kit.IDEMPOTENCY_HEADER: key},
        ok=(201,),
    )


async def orders(request: web.Request, token: str, limit: int, offset: int) -> dict[str, Any]:
    path = f"/api/orders?limit={limit}&offset={offset}"
    return await call(request, "GET", path, token=token)


async def order(request: web.Request, token: str, order_id: str) -> dict[str, Any]:
    return await call(request, "GET", f"/api/orders/{_id(order_id)}", token=token)


# --- problems in plain words ------------------------------------------------------------------

DECLINES = {
    "generic_decline": "Your card was declined. Please try another card.",
    "insufficient_funds": "Your card has insufficient funds. Please try another card.",
    "lost_card": "Your card was reported lost. Please try another card.",
    "stolen_card": "Your card was reported stolen. Please try another card.",
    "expired_card": "Your card has expired. Please try another card.",
    "incorrect_cvc": "The security code (CVC) is not right. Please check it.",
}

PLAIN = {
    "invalid_card": "That card number is not valid. Please check it and try again.",
    "card_expired": "That card has expired. Please use another card.",
    "empty_cart": "Your cart is empty.",
    "email_taken": "An account with this e-mail already exists. Sign in instead?",
    "invalid_credentials": "Wrong e-mail or password.",
    "cart_full": "Your cart is full. Remove a product before adding another one.",
    "checkout_failed": "That payment attempt did not go through. Please try again.",
    "order_not_payable": "Your order could not take the payment; you were not charged.",
    "payment_unavailable": (
        "We could not reach the card network, so you were not charged. "
        "Please try again in a moment."
    ),
    "orders_unavailable": (
        "We could not place your order just now, so you were not charged. "
        "Please try again in a moment."
    ),
    "unauthenticated": "Please sign in again.",
}

FIELDS = {
    "email": "Enter an e-mail address such as ada@example.com.",
    "password": "Your password needs 8 to 128 characters.",
    "card.number": "Enter the 12 to 19 digits of your card number.",
    "card.exp_month": "Enter the card's expiry date as MM/YY.",
    "card.exp_year": "Enter the card's expiry date as MM/YY.",
    "card.cvc": "Enter the 3 or 4 digit security code from the back of your card.",
    "quantity": "Choose a quantity from 1 to 99.",
}


def message(problem: GatewayProblem, names: Mapping[str, str] | None = None) -> str:
    """What ``problem`` means to a shopper; ``names`` maps product ids to their names."""
    body, code = problem.body, problem.code
    names = names or {}
    if code == "card_declined":
        reason = str(body.get("decline_code") or "generic_decline")
        return DECLINES.get(
            reason, f"Your card was declined ({reason.replace('_', ' ')}). Try another card."
        )
    if code == "out_of_stock":
        name = names.get(str(body.get("product_id")), "this product")
        available = body.get("available")
        if isinstance(available, int) and available > 0:
            return f"Only {available} left of {name}."
        return f"Sorry, {name} is sold out."
    if code == "unknown_product":
        return "That product is no longer sold."
    if code in PLAIN:
        return PLAIN[code]
    if code == "validation_failed":
        fields = [str(e.get("field")) for e in body.get("errors", []) if isinstance(e, dict)]
        found = list(dict.fromkeys(FIELDS[f] for f in fields if f in FIELDS))
        if found:
            return " ".join(found)
    if problem.status >= 500:
        return unavailable(problem)
    return "Something went wrong with that request. Please try again."


def unavailable(problem: GatewayProblem) -> str:
    dependency = problem.body.get("dependency")
    which = f" (the {dependency} service)" if isinstance(dependency, str) else ""
    return (
        f"Part of the shop is not answering right now{which}. "
        "Nothing was lost; please try again in a moment."
    )
