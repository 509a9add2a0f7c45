"""Product data for the cart, cache-aside: Redis first, misses in one batch call to products."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from aiohttp import web
from pydantic import BaseModel, ConfigDict, ValidationError

from services import kit

from . import store

PRODUCT_TTL: web.AppKey[int] = web.AppKey("product_ttl", int)


class Product(BaseModel):
    """The part of products' Product that a cart line shows."""

    model_config = ConfigDict(extra="ignore")

    id: str
    name: str
    price_cents: int
    currency: str
    available: int
    in_stock: bool


class UnknownProducts(Exception):
    """Products says these ids are not (or no longer) in the catalog."""

    def __init__(self, product_ids: list[str]) -> None:
        super().__init__(", ".join(product_ids))
        self.product_ids = product_ids


def product_ttl(settings: kit.Settings) -> int:
    """``CART_PRODUCT_TTL_SECONDS`` (default 5): how long a cached product stays fresh."""
    ttl = int(settings.get("CART_PRODUCT_TTL_SECONDS", "5"))
    if ttl < 1:
        raise ValueError("CART_PRODUCT_TTL_SECONDS must be at least 1")
    return ttl


async def lookup(request: web.Request, user: str, product_ids: list[str]) -> dict[str, Product]:
    """Each product by id; raises ``UnknownProducts`` when products does not know some of them."""
    redis = request.app[kit.REDIS]
    found: dict[str, Product] = {}
    misses: list[str] = []
    for product_id, raw in zip(
        product_ids, await store.cached_products(redis, product_ids), strict=True
    ):
        product = _parse(raw)
        if product is None:
            misses.append(product_id)
        else:
            found[product_id] = product
    if misses:
        fetched = await _fetch(request, user, misses)
        await store.cache_products(
            redis,
            {pid: json.dumps(data) for pid, (_, data) in fetched.items()},
            request.app[PRODUCT_TTL],
        )
        found.update({pid: product for pid, (product, _) in fetched.items()})
    return found


def _parse(raw: str | None) -> Product | None:
    if raw is None:
        return None
    try:
        return Product.model_validate_json(raw)
    except ValidationError:  # an unreadable entry is a miss
        return None


async def _fetch(
    request: web.Request, user: str, product_ids: list[str]
) -> dict[str, tuple[Product, dict[str, Any]]]:
    ids = ",".join(quote(pid, safe="") for pid in product_ids)
    reply = await kit.peers(request).get("products", f"/products?ids={ids}", user=user)
    if reply.status == 404 and isinstance(reply.data, dict):
        unknown = reply.data.get("product_ids")
        gone = [pid for pid in product_ids if isinstance(unknown, list) and pid in unknown]
        if reply.data.get("code") == "unknown_product" and gone:
            raise UnknownProducts(gone)
    data = reply.expect(200)
    try:
        items = data["products"]
        products = {item["id"]: (Product.model_validate(item), item) for item in items}
    except (TypeError, KeyError, ValidationError):
        products = {}
    if not set(product_ids) <= products.keys():
        raise kit.Problem(
            502,
            "The products service answered a product list this service cannot read",
            code="dependency_failed",
            dependency="products",
        )
    return {pid: products[pid] for pid in product_ids}
