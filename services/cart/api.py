"""Cart handlers: read the request, change the Redis hash, answer the cart priced live."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web
from pydantic import Field

from services import kit
from services.kit.jsonio import json_response

from . import catalog, store

CURRENCY = "USD"
_PRODUCT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class LineQuantity(kit.Body):
    quantity: int = Field(ge=0, le=99)


def product_id(request: web.Request) -> str:
    """The path's product id; a malformed one names no product (404)."""
    value = request.match_info["product_id"]
    if not _PRODUCT_ID.match(value):
        raise _unknown(value)
    return value


async def get_cart(request: web.Request) -> web.Response:
    """The cart priced live; with ``?priced=false`` only its lines' quantities (what the checkout
    needs: it prices from the stock hold), without a look at the catalogue."""
    user = kit.user_id(request)
    priced = request.query.get("priced", "true")
    if priced not in ("true", "false"):
        raise kit.Problem(400, "priced is true or false", code="bad_query")
    if priced == "false":
        return json_response(quantities(await store.lines(request.app[kit.REDIS], user), user))
    return json_response(await priced_cart(request, user))


def quantities(lines: dict[str, int], user: str) -> dict[str, Any]:
    items = [{"product_id": pid, "quantity": lines[pid]} for pid in sorted(lines)]
    return {"user_id": user, "items": items, "item_count": sum(lines.values())}


async def put_item(request: web.Request) -> web.Response:
    user = kit.user_id(request)
    pid = product_id(request)
    body = await kit.read_json(request, LineQuantity)
    redis = request.app[kit.REDIS]
    if body.quantity == 0:
        await store.remove_lines(redis, user, [pid])
        return json_response(await priced_cart(request, user))
    try:
        product = (await catalog.lookup(request, user, [pid]))[pid]
    except catalog.UnknownProducts:
        await store.remove_lines(redis, user, [pid])  # gone from the catalog: gone from the cart
        raise _unknown(pid) from None
    if body.quantity > product.available:
        raise kit.Problem(
            409,
            f"Only {product.available} of {product.name!r} available",
            code="out_of_stock",
            product_id=pid,
            available=product.available,
        )
    lines = await store.set_line(redis, user, pid, body.quantity)
    if lines is None:
        raise kit.Problem(
            409,
            f"A cart holds at most {store.MAX_LINES} different products",
            code="cart_full",
            max_lines=store.MAX_LINES,
        )
    return json_response(await priced_cart(request, user, lines, {pid: product}))


async def delete_item(request: web.Request) -> web.Response:
    user = kit.user_id(request)
    pid = product_id(request)
    await store.remove_lines(request.app[kit.REDIS], user, [pid])
    return json_response(await priced_cart(request, user))


async def delete_cart(request: web.Request) -> web.Response:
    user = kit.user_id(request)
    await store.clear(request.app[kit.REDIS], user)
    return web.Response(status=204)


async def priced_cart(
    request: web.Request,
    user: str,
    lines: dict[str, int] | None = None,
    known: dict[str, catalog.Product] | None = None,
) -> dict[str, Any]:
    """The cart with live names, prices and stock; products gone from the catalog are dropped.
    ``lines``: the cart's lines when the caller has just read them; ``known``: products the
    caller has just looked up (not looked up again)."""
    if lines is None:
        lines = await store.lines(request.app[kit.REDIS], user)
    known = {pid: p for pid, p in (known or {}).items() if pid in lines}
    rest = sorted(pid for pid in lines if pid not in known)
    products = {**known, **await _live_products(request, user, rest)}
    items = [
        {
            "product_id": pid,
            "name": product.name,
            "quantity": lines[pid],
            "unit_price_cents": product.price_cents,
            "line_total_cents": product.price_cents * lines[pid],
            "currency": product.currency,
            "available": product.available,
            "in_stock": product.in_stock,
        }
        for pid, product in sorted(products.items())
    ]
    return {
        "user_id": user,
        "items": items,
        "item_count": sum(item["quantity"] for item in items),
        "total_cents": sum(item["line_total_cents"] for item in items),
        "currency": CURRENCY,
    }


async def _live_products(
    request: web.Request, user: str, product_ids: list[str]
) -> dict[str, catalog.Product]:
    """The cart's products; drop those products no longer knows, look the rest up once."""
    if not product_ids:
        return {}
    redis = request.app[kit.REDIS]
    try:
        return await catalog.lookup(request, user, product_ids)
    except catalog.UnknownProducts as gone:
        await store.remove_lines(redis, user, gone.product_ids)
        rest = [pid for pid in product_ids if pid not in gone.product_ids]
    if not rest:
        return {}
    try:
        return await catalog.lookup(request, user, rest)
    except catalog.UnknownProducts as gone:
        await store.remove_lines(redis, user, gone.product_ids)
        raise kit.Problem(
            503,
            "The catalog changed while your cart was being read; try again",
            code="catalog_changed",
            dependency="products",
        ) from None


def _unknown(pid: str) -> kit.Problem:
    return kit.Problem(404, f"No product {pid!r}", code="unknown_product", product_id=pid)


routes = [
    web.get("/cart", get_cart),
    web.delete("/cart", delete_cart),
    web.put("/cart/items/{product_id}", put_item),
    web.delete("/cart/items/{product_id}", delete_item),
]
