"""Shipping costs and tracking ids: pure functions, no store, no SQL.

A quote is a zone's base price plus a price per extra item (in USD cents; the checkout converts
it with the rest of the order). A tracking id is derived from the shipment's Idempotency-Key and
order id (a digest), so a repeat of the same shipment gets the same id without anything stored.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

CURRENCY = "USD"
CARRIER = "Boutique Post"
NORTH_AMERICA = {"CA", "MX"}
EUROPE = {
    "AT", "BE", "CH", "DE", "DK", "ES", "FI", "FR", "GB", "IE", "IT", "NL", "NO", "PL", "PT", "SE",
}  # fmt: skip


@dataclass(frozen=True)
class Zone:
    name: str
    base_cents: int  # the first item
    per_item_cents: int  # each further item
    days: int  # business days to deliver


DOMESTIC = Zone("domestic", 499, 99, 3)
CONTINENTAL = Zone("north-america", 899, 149, 6)
EU = Zone("europe", 1299, 199, 8)
WORLD = Zone("world", 1999, 299, 12)


def zone(country: str) -> Zone:
    if country == "US":
        return DOMESTIC
    if country in NORTH_AMERICA:
        return CONTINENTAL
    if country in EUROPE:
        return EU
    return WORLD


def cost_cents(country: str, items: int) -> int:
    """What shipping ``items`` (at least 1) to ``country`` costs, in USD cents."""
    where = zone(country)
    return where.base_cents + where.per_item_cents * (items - 1)


def tracking_id(key: str, order_id: str) -> str:
    """``BP`` and 18 characters: the same key and order always give the same id."""
    digest = hashlib.sha256(f"{key}\n{order_id}".encode()).hexdigest().upper()
    return "BP" + digest[:18]
