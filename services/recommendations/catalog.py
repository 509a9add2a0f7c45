"""The catalog as recommendations sees it: read from products, kept in memory for a short while.

Every recommendation needs the whole (small) catalog; asking products each time would double the
cost of a product page. One in-process copy is refreshed at most every
``RECOMMENDATIONS_CATALOG_TTL_SECONDS`` (default 30), by one request at a time; when products
cannot answer, the last copy serves on (stale stock is harmless in a suggestion).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp import web

from services import kit

Product = dict[str, Any]
FIELDS = ("id", "name", "price_cents", "currency", "categories", "in_stock")


class Cache:
    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self.products: list[Product] | None = None
        self.fetched_at = 0.0
        self.lock = asyncio.Lock()

    def fresh(self) -> bool:
        return self.products is not None and time.monotonic() - self.fetched_at < self.ttl_s


CACHE: web.AppKey[Cache] = web.AppKey("recommendations_catalog", Cache)


def ttl(settings: kit.Settings) -> float:
    value = float(settings.get("RECOMMENDATIONS_CATALOG_TTL_SECONDS", "30"))
    if value < 0:
        raise ValueError("RECOMMENDATIONS_CATALOG_TTL_SECONDS must be 0 or more")
    return value


async def products(request: web.Request) -> list[Product]:
    """The catalog: the cached copy while fresh, else one call to products for everyone."""
    cache = request.app[CACHE]
    if cache.fresh():
        assert cache.products is not None
        return cache.products
    async with cache.lock:
        if cache.fresh():  # another request refreshed it while this one waited
            assert cache.products is not None
            return cache.products
        try:
            reply = await kit.peers(request).get("products", "/products")
            data = reply.expect(200)
        except kit.Problem:
            if cache.products is None:
                raise
            return cache.products  # products is away: the last copy serves on
        cache.products = [{k: p[k] for k in FIELDS} for p in data["products"]]
        cache.fetched_at = time.monotonic()
        return cache.products
