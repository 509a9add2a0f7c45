"""The optional sections of a page: related products, an ad, a product's stars (issue 16).

The shop asks recommendations, ads and ratings itself (declared calls of its sidecar), at once.
How long it waits is the mesh's business: the topology gives these calls a short timeout and no
retry. A section that fails, is refused or times out is left out: the page never fails because
of it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import quote

from aiohttp import web

from services import kit

from . import gateway, prices, security
from .pages import CART

log = logging.getLogger("boutique.frontend")
SHOWN = 4


def _ids(values: list[str]) -> str:
    return ",".join(quote(v, safe="") for v in values)


async def _optional(request: web.Request, peer: str, path: str) -> Any:
    """The peer's 200 body, or None: any failure (refused, aborted, late) leaves the section out."""
    try:
        reply = await kit.peers(request).get(peer, path)
    except kit.Problem:
        return None
    if reply.status != 200:
        log.info("%s answered %s: the page goes without it", peer, reply.status)
        return None
    return reply.data


async def recommended(request: web.Request, context: list[str]) -> list[dict[str, Any]]:
    if not context:
        return []
    path = f"/recommendations?product_ids={_ids(context)}&limit={SHOWN}"
    data = await _optional(request, "recommendations", path)
    if not isinstance(data, dict) or not data["products"]:
        return []
    try:  # in the shopper's currency, like the rest of the page (no call in USD)
        return await prices.products(request, data["products"])
    except gateway.GatewayProblem:
        return []


async def advert(request: web.Request, categories: list[str]) -> dict[str, Any] | None:
    path = f"/ads?categories={_ids(categories)}"
    data = await _optional(request, "ads", path)
    return data["ad"] if isinstance(data, dict) else None


async def stars(request: web.Request, product_id: str) -> dict[str, Any] | None:
    """The product's ratings summary (count, average), or None."""
    path = f"/ratings/{quote(product_id, safe='')}"
    data = await _optional(request, "ratings", path)
    return data if isinstance(data, dict) else None


async def cart_ids(request: web.Request) -> list[str]:
    """The signed-in shopper's cart products (kept for the header); none when it cannot be read."""
    token = security.session_token(request)
    if token is None:
        return []
    try:
        request[CART] = await gateway.cart(request, token)
    except gateway.GatewayProblem:
        return []  # the header says what it can; recommendations just know less
    return [line["product_id"] for line in request[CART]["items"]]


async def for_product(request: web.Request, product: dict[str, Any]) -> dict[str, Any]:
    """A product page's sections: related products (not this one, nor the cart's), an ad and
    the ratings summary, asked in parallel."""
    context = [product["id"], *(await cart_ids(request))]
    categories = list(product.get("categories", []))
    related, ad, rating = await asyncio.gather(
        recommended(request, context), advert(request, categories), stars(request, product["id"])
    )
    return {"recommended": related, "ad": ad, "rating": rating}


async def for_cart(request: web.Request, cart: dict[str, Any]) -> dict[str, Any]:
    """The cart page's related products (none of the cart's)."""
    return {"recommended": await recommended(request, [i["product_id"] for i in cart["items"]])}
