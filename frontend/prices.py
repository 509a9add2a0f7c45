"""Prices in the shopper's currency: the choice (a cookie), and conversions through the gateway.

Prices are kept in USD. When the shopper chose another currency, a page converts the prices it
shows in one call (``GET /api/currencies/convert``, the currency service's exact rule); in USD
it makes no call at all. A line total is the converted unit price times the quantity, and a
cart's total the sum of its lines, which is how the checkout prices the order it charges.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from . import forms, gateway

BASE = "USD"
COOKIE = "currency"
TABLE_TTL_S = 300.0  # the rates table is shipped with the currency service: it rarely changes
RETRY_S = 10.0  # after the table could not be read


@dataclass
class Table:
    """The currencies on offer, as last read (per app)."""

    at: float = -TABLE_TTL_S
    codes: list[str] = field(default_factory=lambda: [BASE])


TABLE: web.AppKey[Table] = web.AppKey("currency_table", Table)


async def codes(request: web.Request) -> list[str]:
    """The currencies the shop offers (cached a few minutes); just USD when it cannot be read."""
    known = request.app[TABLE]
    if time.monotonic() - known.at > TABLE_TTL_S:
        try:
            table = await gateway.call(request, "GET", "/api/currencies")
        except gateway.GatewayProblem:  # USD only for now; asked again in a few seconds
            known.at, known.codes = time.monotonic() - TABLE_TTL_S + RETRY_S, [BASE]
            return [BASE]
        known.at, known.codes = time.monotonic(), [c["code"] for c in table["currencies"]]
    return list(known.codes)


def chosen(request: web.Request) -> str:
    """The shopper's currency: the cookie's, when it is a known one."""
    code = request.cookies.get(COOKIE, BASE)
    return code if code in request.app[TABLE].codes else BASE


async def convert(request: web.Request, amounts: list[int]) -> tuple[str, list[int]]:
    """``amounts`` (USD cents) in the chosen currency, and its code."""
    await codes(request)
    target = chosen(request)
    if target == BASE or not amounts:
        return BASE, amounts
    query = f"from={BASE}&to={target}&amounts={','.join(map(str, amounts))}"
    body = await gateway.call(request, "GET", f"/api/currencies/convert?{query}")
    return target, body["amounts"]


async def products(request: web.Request, found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    currency, prices = await convert(request, [p["price_cents"] for p in found])
    return [
        {**p, "price_cents": c, "currency": currency} for p, c in zip(found, prices, strict=True)
    ]


async def product(request: web.Request, found: dict[str, Any]) -> dict[str, Any]:
    return (await products(request, [found]))[0]


async def cart(request: web.Request, found: dict[str, Any]) -> dict[str, Any]:
    """The cart in the chosen currency: unit prices converted, totals summed from them."""
    items = found["items"]
    currency, prices = await convert(request, [i["unit_price_cents"] for i in items])
    if currency == BASE:
        return found
    lines = [
        {**i, "unit_price_cents": c, "line_total_cents": c * i["quantity"], "currency": currency}
        for i, c in zip(items, prices, strict=True)
    ]
    total = sum(line["line_total_cents"] for line in lines)
    return {**found, "items": lines, "total_cents": total, "currency": currency}


async def choose(request: web.Request) -> web.Response:
    """POST /currency: remember the choice (a year), then back to the page it was made on."""
    form = await request.post()
    code = str(form.get("currency", ""))
    back = forms.safe_next(str(form.get("next", "/")))
    response = web.Response(status=303, headers={"Location": back})
    if code in await codes(request):
        response.set_cookie(COOKIE, code, path="/", max_age=365 * 86400, samesite="Lax")
    return response
