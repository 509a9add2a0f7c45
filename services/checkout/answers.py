"""The checkout's answers: each failure the saga can end in, as the problem the client gets."""

from __future__ import annotations

from typing import Any

from services import kit

_RELAYED_EXTRAS = ("errors", "decline_code")


def body(reply: kit.PeerReply) -> dict[str, Any]:
    return reply.data if isinstance(reply.data, dict) else {}


def payment_unavailable() -> kit.Problem:
    return kit.Problem(
        503,
        "The payment service could not be reached; you were not charged. Try again with a new "
        "Idempotency-Key",
        code="payment_unavailable",
        dependency="payment",
        headers={"Retry-After": "2"},
    )


def orders_unavailable() -> kit.Problem:
    return kit.Problem(
        503,
        "The order could not be opened (the orders service did not answer); you were not "
        "charged and nothing is held. Try again with a new Idempotency-Key",
        code="orders_unavailable",
        dependency="orders",
        headers={"Retry-After": "2"},
    )


def declined(charge: dict[str, Any]) -> kit.Problem:
    return kit.Problem(
        402,
        "The card was declined; you were not charged",
        code="card_declined",
        decline_code=charge.get("decline_code") or "generic_decline",
    )


def relayed(reply: kit.PeerReply) -> kit.Problem:
    """The payment service's problem, answered as ours (status, code, detail, known extras)."""
    data = body(reply)
    if reply.status == 402:
        return declined(data)
    extras = {k: data[k] for k in _RELAYED_EXTRAS if k in data}
    detail = data.get("detail") or f"The payment service answered {reply.status}"
    return kit.Problem(reply.status, detail, code=data.get("code", "payment_failed"), **extras)


def out_of_stock(product_id: str, available: int) -> kit.Problem:
    return kit.Problem(
        409,
        f"Not enough stock of {product_id!r}: {available} available",
        code="out_of_stock",
        product_id=product_id,
        available=available,
    )


def unknown_products(product_ids: list[str]) -> kit.Problem:
    return kit.Problem(
        409,
        "A product in your cart is no longer sold",
        code="unknown_product",
        product_ids=product_ids,
    )


def stale_hold() -> kit.Problem:
    return kit.Problem(
        409,
        "This checkout's stock hold is over; start a new one with a new Idempotency-Key",
        code="checkout_failed",
        reason="reservation_expired",
    )
