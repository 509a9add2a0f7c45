"""The checkout saga: cart -> stock held (and priced) -> pending order -> charge -> commit or undo.

Checkout keeps no state of its own. Everything it does is keyed by the saga id, derived from the
user and the client's Idempotency-Key: the stock reservation, the order and the charge. So a
repeat of the same checkout (a client retry, a mesh retry, a concurrent duplicate) finds what
the first one did and carries it on or answers it again; it never charges twice.

Once stock is held, the saga owes its end: the sale committed, or the order cancelled and the
stock given back. Those steps are keyed (so the mesh retries them) and insisted on (``owed``);
if they still cannot be done the client hears ``503 compensation_pending``, and a repeat with the
same key finishes them before answering what the first try answered.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from services import kit

from . import answers, commerce
from .owed import insist, owe

Order = dict[str, Any]
Line = dict[str, Any]

HELD = ("held", "committed")  # a reservation that still stands for this checkout
RELEASED = "released"
log = logging.getLogger("boutique.checkout")

_PLAIN_USER = re.compile(r"^[A-Za-z0-9_-]+$")
_KEY = re.compile(r"^[A-Za-z0-9_.:-]{8,128}$")
# Why the order is cancelled, by the payment service's answer.
_FAILURE_REASONS = {402: "payment_declined", 422: "invalid_card", 409: "order_not_payable"}


def saga_id(user: str, key: str) -> str:
    """``<user>.<key>``, or a digest of both when that would not be a valid key for our peers.

    The plain form is used when the user id has no ``.`` (so the split is unambiguous) and the
    whole fits an Idempotency-Key (8-128 characters); the digest form has no ``.`` at all.
    """
    plain = f"{user}.{key}"
    if _PLAIN_USER.match(user) and _KEY.match(plain):
        return plain
    return "saga:" + hashlib.sha256(f"{user}\n{key}".encode()).hexdigest()


@dataclass(frozen=True)
class Saga:
    peers: kit.PeerClient
    user: str
    id: str
    card: dict[str, Any]
    currency: str = "USD"  # the currency charged (prices are kept in USD)
    address: dict[str, Any] | None = None  # where to ship; None: no shipping

    @property
    def keyed(self) -> dict[str, str]:
        return {kit.IDEMPOTENCY_HEADER: self.id}


@dataclass(frozen=True)
class Hold:
    """This saga's stock reservation, as products answered the (keyed) request to hold it."""

    status: str
    created: bool  # held by this request: no earlier try of this saga got this far
    lines: list[Line]  # the held items, priced by products in the same answer


@kit.telemetry.step("checkout.saga")
async def checkout(saga: Saga) -> Order:
    """The paid order, or a :class:`kit.Problem` for what went wrong (after undoing it).

    A first try is cart -> hold (which prices the lines) -> order -> charge. Reservations are
    never deleted and an order is only opened once its stock is held, so a hold made now means
    no earlier try has an order: only a repeat (the hold was there) looks for one.
    """
    hold = await hold_cart(saga)
    if hold is not None and hold.created:
        return await settle(saga, await place_order(saga, hold))
    order = await find_order(saga)
    if order is None:
        if hold is None:  # a twin of this request may have finished already and emptied the cart
            raise kit.Problem(422, "Your cart is empty", code="empty_cart")
        order = await place_order(saga, hold)
    elif order["status"] == "pending":
        if hold is None:
            hold = await reserve(saga, _quantities(order["items"]))
        if hold.status == RELEASED:  # given back when the order seemed not to open: the same again
            return await compensate(saga, order, "orders_unavailable", answers.orders_unavailable())
        if hold.status not in HELD:
            return await compensate(saga, order, "reservation_expired", answers.stale_hold())
    return await settle(saga, order)


async def place_order(saga: Saga, hold: Hold) -> Order:
    """Open a pending order for the held stock, at the prices the hold was answered with (in the
    shopper's currency, with shipping, when asked for)."""
    if hold.status not in HELD:  # released: an earlier try could not open the order
        raise answers.orders_unavailable() if hold.status == RELEASED else answers.stale_hold()
    try:
        lines, shipping = await commerce.prepare(saga, hold.lines)
    except kit.Problem:  # no price to open the order at: the hold goes back first
        await owe("give the held stock back", lambda: release(saga))
        raise
    try:
        return await insist(lambda: open_order(saga, lines, shipping))
    except kit.Problem:  # no order to pay for: the hold goes back before the client hears
        await owe("give the held stock back", lambda: release(saga))
        raise answers.orders_unavailable() from None


async def settle(saga: Saga, order: Order) -> Order:
    """Finish an order: paid -> done, cancelled -> its failure again, pending -> charge it."""
    if order["status"] == "paid":
        await owe("sell the held stock", lambda: commit(saga))
        return await commerce.fulfil(saga, order)
    if order["status"] == "cancelled":
        raise await stored_failure(saga, order)
    return await charge(saga, order)


# --- the steps ---------------------------------------------------------------------------------


@kit.telemetry.step("checkout.find_earlier_order")
async def find_order(saga: Saga) -> Order | None:
    reply = await saga.peers.get("orders", f"/orders?key={quote(saga.id)}", user=saga.user)
    found = reply.expect(200)["orders"]
    return found[0] if found else None


async def hold_cart(saga: Saga) -> Hold | None:
    """The cart's stock held (None: the cart is empty). The cart's lines are read without
    pricing (the hold prices them); should the catalogue no longer have one of its products,
    the cart is read priced, which drops such lines, and the rest is held."""
    cart = await load_cart(saga, priced=False)
    try:
        return await reserve(saga, cart) if cart else None
    except kit.Problem as problem:
        if problem.details.get("code") != "unknown_product":
            raise
    cart = await load_cart(saga, priced=True)
    return await reserve(saga, cart) if cart else None


@kit.telemetry.step("checkout.load_cart")
async def load_cart(saga: Saga, priced: bool) -> dict[str, int]:
    """The cart's lines: product id -> quantity."""
    path = "/cart" if priced else "/cart?priced=false"
    cart = (await saga.peers.get("cart", path, user=saga.user)).expect(200)
    return {item["product_id"]: item["quantity"] for item in cart["items"]}


@kit.telemetry.step("checkout.reserve_stock")
async def reserve(saga: Saga, quantities: dict[str, int]) -> Hold:
    """Hold the stock under the saga id (409 when a product is short of stock or gone)."""
    items = [{"product_id": pid, "quantity": quantity} for pid, quantity in quantities.items()]
    reply = await saga.peers.put(
        "products", f"/reservations/{saga.id}", json_body={"items": items}, user=saga.user
    )
    problem = answers.body(reply)
    if reply.status == 409 and problem.get("code") == "out_of_stock":
        raise answers.out_of_stock(problem.get("product_id", ""), problem.get("available", 0))
    if reply.status == 404:
        raise answers.unknown_products(problem.get("product_ids", []))
    held = reply.expect(200, 201)
    return Hold(held["status"], reply.status == 201, [_line(item) for item in held["items"]])


def _line(item: dict[str, Any]) -> Line:
    if "unit_price_cents" not in item or "name" not in item:
        raise kit.Problem(
            502, "The products service held stock without pricing it", code="dependency_failed"
        )
    return {
        "product_id": item["product_id"],
        "name": item["name"],
        "quantity": item["quantity"],
        "unit_price_cents": item["unit_price_cents"],
    }


def _quantities(lines: list[Line]) -> dict[str, int]:
    return {line["product_id"]: line["quantity"] for line in lines}


@kit.telemetry.step("checkout.open_order")
async def open_order(saga: Saga, lines: list[Line], shipping: int | None = None) -> Order:
    body = {"items": lines, "currency": saga.currency, "shipping_cents": shipping}
    reply = await saga.peers.post(
        "orders",
        "/orders",
        json_body=body,
        user=saga.user,
        headers=saga.keyed,
    )
    order = reply.expect(200, 201)
    kit.telemetry.annotate(
        app__order__id=order["id"],
        app__order__total_cents=order["total_cents"],
        app__order__items=len(order["items"]),
    )
    return order


@kit.telemetry.step("checkout.charge")
async def charge(saga: Saga, order: Order) -> Order:
    """Charge the card for the order; commit on success, compensate on any failure."""
    try:
        reply = await _ask_payment(saga, order)
    except kit.Problem:  # payment unreachable: whether it charged is for it to say
        return await after_payment_outage(saga, order)
    if reply.status in (200, 201):
        return await succeed(saga, order, answers.body(reply).get("order"))
    if reply.status >= 500:
        return await after_payment_outage(saga, order)
    reason = _FAILURE_REASONS.get(reply.status, "payment_failed")
    failure = answers.relayed(reply) if reply.status in _FAILURE_REASONS else reply.problem()
    return await compensate(saga, order, reason, failure)


async def after_payment_outage(saga: Saga, order: Order) -> Order:
    """Payment failed to answer: ask it whether the charge happened, then finish accordingly."""
    found = await _charge_by_key(saga)
    status = found["status"] if found else None
    if status == "succeeded":
        return await succeed(saga, order)
    if status == "declined":
        return await compensate(saga, order, "payment_declined", answers.declined(found))
    return await compensate(saga, order, "payment_unavailable", answers.payment_unavailable())


async def succeed(saga: Saga, order: Order, confirmed: Order | None = None) -> Order:
    """The charge went through: the held stock is sold; answer the order as it is now.

    ``confirmed`` is the paid order when payment's answer carried it (it confirmed the order
    just now). Otherwise the order is read, and one payment has not confirmed yet is confirmed
    by asking payment again with the same key (it finishes a recorded charge, never charges
    twice).
    """
    await owe("sell the held stock", lambda: commit(saga))
    if confirmed is not None and confirmed.get("status") == "paid":
        return await commerce.fulfil(saga, confirmed)
    paid = await insist(lambda: _paid_order(saga, order))
    if paid is None:
        raise kit.Problem(
            503,
            "The payment went through but the order is not confirmed yet; retry with the same "
            "Idempotency-Key to finish it (you will not be charged again)",
            code="payment_unconfirmed",
            dependency="payment",
            headers={"Retry-After": "2"},
        )
    return await commerce.fulfil(saga, paid)


async def _paid_order(saga: Saga, order: Order) -> Order | None:
    """The order once paid; while it is not, payment is asked to finish its charge (5xx: again)."""
    reply = await saga.peers.get("orders", f"/orders/{order['id']}", user=saga.user)
    current = reply.expect(200)
    if current["status"] == "paid":
        return current
    reply = await _ask_payment(saga, order)
    if reply.status >= 500:
        raise reply.problem()
    if reply.status not in (200, 201):  # e.g. refunded: a twin of this checkout cancelled it
        raise answers.relayed(reply)
    current = (await saga.peers.get("orders", f"/orders/{order['id']}", user=saga.user)).expect(200)
    return current if current["status"] == "paid" else None


@kit.telemetry.step("checkout.commit_stock")
async def commit(saga: Saga) -> None:
    reply = await saga.peers.post(
        "products", f"/reservations/{saga.id}/commit", user=saga.user, headers=saga.keyed
    )
    if reply.status == 409:  # paid for, but the hold was gone: the books need a look
        log.error("saga %s: paid, but its stock reservation could not be committed", saga.id)
        return
    reply.expect(200)


@kit.telemetry.step("checkout.compensate")
async def compensate(saga: Saga, order: Order, reason: str, failure: kit.Problem) -> Order:
    """Undo: cancel the order, then give the stock back, then answer ``failure``.

    The order goes first: were it paid meanwhile (payment confirmed it after all), it cannot be
    cancelled, and the checkout is a success instead. Both steps are owed: the client hears
    ``failure`` only once the stock is back.
    """
    if not await owe("cancel the order", lambda: cancel(saga, order, reason)):
        return await succeed(saga, order)
    await owe("give the held stock back", lambda: release(saga))
    if reason == "payment_unavailable":
        await _no_stray_charge(saga, order)
    raise failure


async def cancel(saga: Saga, order: Order, reason: str) -> bool:
    """Cancel the order; False when it cannot be, because it is paid."""
    reply = await saga.peers.post(
        "orders",
        f"/orders/{order['id']}/cancel",
        json_body={"reason": reason},
        user=saga.user,
        headers=saga.keyed,
    )
    if reply.status == 409:
        return False
    reply.expect(200)
    return True


@kit.telemetry.step("checkout.release_stock")
async def release(saga: Saga) -> None:
    reply = await saga.peers.post(
        "products", f"/reservations/{saga.id}/release", user=saga.user, headers=saga.keyed
    )
    reply.expect(200, 404)


async def stored_failure(saga: Saga, order: Order) -> kit.Problem:
    """The answer a cancelled checkout gave, given again, once its undoing is finished."""
    await owe("give the held stock back", lambda: release(saga))
    reason = order["cancel_reason"]
    if reason == "payment_declined":
        reply = await saga.peers.get("payment", f"/charges/by-key/{saga.id}", user=saga.user)
        return answers.declined(reply.expect(200))
    if reason == "payment_unavailable":
        await _no_stray_charge(saga, order)
        return answers.payment_unavailable()
    if reason == "orders_unavailable":
        return answers.orders_unavailable()
    return kit.Problem(
        409,
        f"This checkout failed before ({reason}); start a new one with a new Idempotency-Key",
        code="checkout_failed",
        reason=reason,
        order_id=order["id"],
    )


# --- helpers -----------------------------------------------------------------------------------


async def _ask_payment(saga: Saga, order: Order) -> kit.PeerReply:
    """Charge the order's total under the saga's key; a repeat finishes the recorded charge."""
    body = {
        "order_id": order["id"],
        "amount_cents": order["total_cents"],
        "currency": order["currency"],
        "card": saga.card,
    }
    return await saga.peers.post(
        "payment", "/charges", json_body=body, user=saga.user, headers=saga.keyed
    )


async def _no_stray_charge(saga: Saga, order: Order) -> None:
    """After cancelling because payment did not answer: a charge it recorded all the same is
    finished by payment, which refunds it (its order is cancelled). Best effort: a repeat of
    the checkout looks again."""
    found = await _charge_by_key(saga)
    if found and found["status"] == "succeeded":
        try:
            await _ask_payment(saga, order)
        except kit.Problem:
            log.warning("saga %s: a charge to refund could not be finished yet", saga.id)


async def _charge_by_key(saga: Saga) -> dict[str, Any] | None:
    try:
        reply = await saga.peers.get("payment", f"/charges/by-key/{saga.id}", user=saga.user)
    except kit.Problem:
        return None
    return answers.body(reply) if reply.status == 200 else None
