"""HTTP handlers for charges: check the card, decide, record, then confirm the order and clear
the cart. A recorded success is never lost: a repeat with the same key finishes the job."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import Field

from services import kit
from services.kit.jsonio import json_response

from . import cards, store

# PAYMENT_LATENCY_MS as (min, max) milliseconds: how long the simulated card network thinks.
LATENCY: web.AppKey[tuple[int, int]] = web.AppKey("payment_latency_ms", tuple)


class Card(kit.Body):
    number: str
    exp_month: Annotated[int, Field(ge=1, le=12)]
    exp_year: Annotated[int, Field(ge=2000, le=2100)]
    cvc: str


class NewCharge(kit.Body):
    order_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
    amount_cents: Annotated[int, Field(ge=1, le=100_000_000)]
    currency: Literal["USD", "EUR", "GBP", "CAD", "CHF"]  # the currency service's table
    card: Card


async def create_charge(request: web.Request) -> web.Response:
    user = kit.user_id(request)
    key = kit.idempotency_key(request)
    body = await kit.read_json(request, NewCharge)
    db = request.app[kit.DB]
    try:
        facts = cards.check(
            body.card.number,
            body.card.exp_month,
            body.card.exp_year,
            body.card.cvc,
            datetime.now(UTC).date(),
        )
    except cards.CardRejected as exc:
        # A repeat is answered its recorded charge whatever card it carries now (say one that
        # expired since); only a key with no charge hears that the card is unusable.
        charge = await store.by_key(db, user, key)
        if charge is None:
            raise kit.Problem(422, exc.detail, code=exc.code) from None
        created = False
    else:  # decided now; a repeat finds the charge recorded before (one write either way)
        await _card_network(request.app[LATENCY])
        charge, created = await store.record(
            db,
            user,
            key,
            order_id=body.order_id,
            amount_cents=body.amount_cents,
            currency=body.currency,
            card=facts,
        )
    answer = store.public(charge)
    if paid := await _settle(request, user, charge):
        answer["order"] = paid
    return json_response(answer, status=201 if created else 200)


async def get_charge_by_key(request: web.Request) -> web.Response:
    user = kit.user_id(request)
    charge = await store.by_key(request.app[kit.DB], user, request.match_info["key"])
    if charge is None:
        raise kit.Problem(404, "No charge was made with this key", code="unknown_charge")
    return json_response(store.public(charge))


@kit.telemetry.step("payment.settle")
async def _settle(request: web.Request, user: str, charge: store.Charge) -> dict[str, Any] | None:
    """Answer a recorded charge: a decline or refund as its problem; a success by making sure
    the order is paid and the cart cleared (both idempotent, so a repeat may run them again).
    The paid order as orders answered, when this call confirmed it (None if done before)."""
    if charge["status"] == "declined":
        raise kit.Problem(
            402,
            "The card was declined",
            code="card_declined",
            decline_code=charge["decline_code"],
        )
    if charge["status"] == "refunded":
        raise _not_payable(charge["order_id"])
    if charge["settled"]:
        return None
    db, calls = request.app[kit.DB], kit.peers(request)
    paid = await calls.post(
        "orders",
        f"/orders/{charge['order_id']}/pay",
        json_body={"charge_id": charge["id"]},
        user=user,
        headers={kit.IDEMPOTENCY_HEADER: charge["id"]},  # paying twice is harmless: retry it
    )
    if paid.status in (404, 409):
        await store.refund(db, charge["id"])
        raise _not_payable(charge["order_id"])
    paid.expect(200)
    (await calls.delete("cart", "/cart", user=user)).expect(204)
    await store.mark_settled(db, charge["id"])
    return paid.data if isinstance(paid.data, dict) else None


@kit.telemetry.step("payment.card_network")
async def _card_network(latency_ms: tuple[int, int]) -> None:
    low, high = latency_ms
    if high > 0:
        await asyncio.sleep(random.uniform(low, high) / 1000)


def _not_payable(order_id: str) -> kit.Problem:
    return kit.Problem(
        409,
        f"Order {order_id} cannot be paid (unknown, cancelled or paid already); "
        "the charge was refunded",
        code="order_not_payable",
    )


routes = [
    web.post("/charges", create_charge),
    web.get("/charges/by-key/{key}", get_charge_by_key),
]
