"""The saga's commerce steps: shipping quoted and prices converted before the charge; after it,
the order shipped and its confirmation e-mailed.

Each costs a call only when the checkout needs it: no quote without an address, no conversion
when the shopper pays in USD (prices are kept in USD). The confirmation never holds the checkout
up: it is sent in the background (the mesh gives that call a short timeout and no retry), and a
failure is only logged; the email service itself queues and retries a send that fails.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from services import kit

BASE = "USD"
log = logging.getLogger("boutique.checkout")
_sending: set[asyncio.Task[None]] = set()  # held until done, so none is garbage-collected early


def _items(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"product_id": line["product_id"], "quantity": line["quantity"]} for line in lines]


async def prepare(
    saga: Any, lines: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], int | None]:
    """The order's lines in the currency charged, and its shipping cost (None: no shipping)."""
    shipping = await quote(saga, lines) if saga.address else None
    if saga.currency == BASE:
        return lines, shipping
    return await convert(saga, lines, shipping)


@kit.telemetry.step("checkout.quote_shipping")
async def quote(saga: Any, lines: list[dict[str, Any]]) -> int:
    body = {"address": saga.address, "items": _items(lines)}
    return (await saga.peers.post("shipping", "/quotes", json_body=body)).expect(200)["cost_cents"]


@kit.telemetry.step("checkout.convert_prices")
async def convert(
    saga: Any, lines: list[dict[str, Any]], shipping: int | None
) -> tuple[list[dict[str, Any]], int | None]:
    """Unit prices (and shipping) in the shopper's currency, in one call."""
    amounts = [line["unit_price_cents"] for line in lines]
    amounts += [shipping] if shipping is not None else []
    query = f"from={BASE}&to={saga.currency}&amounts={','.join(map(str, amounts))}"
    converted = (await saga.peers.get("currency", f"/convert?{query}")).expect(200)["amounts"]
    priced = [{**line, "unit_price_cents": c} for line, c in zip(lines, converted, strict=False)]
    return priced, (converted[-1] if shipping is not None else None)


async def fulfil(saga: Any, order: dict[str, Any]) -> dict[str, Any]:
    """A paid order: shipped (when it has shipping and no tracking id yet), then confirmed."""
    if order.get("shipping_cents") is not None and not order.get("tracking_id") and saga.address:
        order = await ship(saga, order)
    confirm(saga, order)
    return order


@kit.telemetry.step("checkout.ship")
async def ship(saga: Any, order: dict[str, Any]) -> dict[str, Any]:
    """Hand the order to shipping and record its tracking id (both keyed: the mesh retries them).
    A failure leaves the order paid without a tracking id; a repeat of the checkout ships it."""
    body = {"order_id": order["id"], "address": saga.address, "items": _items(order["items"])}
    try:
        reply = await saga.peers.post("shipping", "/shipments", json_body=body, headers=saga.keyed)
        tracking = reply.expect(201)["tracking_id"]
        reply = await saga.peers.post(
            "orders",
            f"/orders/{order['id']}/ship",
            json_body={"tracking_id": tracking},
            user=saga.user,
            headers=saga.keyed,
        )
        return reply.expect(200)
    except kit.Problem as problem:
        log.warning("saga %s: paid, not shipped yet (%s)", saga.id, problem.details.get("code"))
        return order


def confirm(saga: Any, order: dict[str, Any]) -> None:
    """Send the confirmation in the background: the checkout answers without waiting."""
    task = asyncio.create_task(_confirm(saga, order))
    _sending.add(task)
    task.add_done_callback(_sending.discard)


@kit.telemetry.step("checkout.send_confirmation")
async def _confirm(saga: Any, order: dict[str, Any]) -> None:
    fields = ("id", "created_at", "currency", "shipping_cents", "total_cents", "tracking_id")
    payload = {k: order.get(k) for k in fields}
    payload["items"] = [
        {k: line[k] for k in ("name", "quantity", "unit_price_cents", "line_total_cents")}
        for line in order["items"]
    ]
    try:
        reply = await saga.peers.post(
            "email", "/emails", json_body={"order": payload}, user=saga.user, headers=saga.keyed
        )
    except kit.Problem as problem:  # unreachable: this confirmation is not sent (see docs)
        log.warning("saga %s: confirmation not sent (%s)", saga.id, problem.details.get("code"))
        return
    if reply.status != 202:
        log.warning("saga %s: confirmation not sent (email answered %s)", saga.id, reply.status)
