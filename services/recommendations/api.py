"""HTTP handlers for recommendations: parse the context, rank related products, answer."""

from __future__ import annotations

import re

from aiohttp import web

from services import kit

from . import catalog

PRODUCT_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
MAX_CONTEXT = 100


def related(
    products: list[catalog.Product], context: list[str], limit: int
) -> list[catalog.Product]:
    """Products sharing a category with the context's, most shared categories first (then by
    name), never one of the context's own, never a sold-out one."""
    by_id = {p["id"]: p for p in products}
    wanted = {c for pid in context if pid in by_id for c in by_id[pid]["categories"]}
    seen = set(context)
    scored = [
        (len(wanted.intersection(p["categories"])), p)
        for p in products
        if p["id"] not in seen and p["in_stock"]
    ]
    ranked = sorted((s for s in scored if s[0] > 0), key=lambda s: (-s[0], s[1]["name"]))
    return [p for _, p in ranked[:limit]]


def _context(request: web.Request) -> list[str]:
    raw = request.query.get("product_ids", "")
    ids = list(dict.fromkeys(filter(None, (i.strip() for i in raw.split(",")))))
    if not 1 <= len(ids) <= MAX_CONTEXT or not all(PRODUCT_ID.match(i) for i in ids):
        raise kit.Problem(
            400,
            f"product_ids must name 1 to {MAX_CONTEXT} product ids, comma-separated",
            code="bad_query",
        )
    return ids


async def recommend(request: web.Request) -> web.Response:
    context = _context(request)
    limit = kit.int_query(request, "limit", 4, 1, 20)
    products = await catalog.products(request)
    found = related(products, context, limit)
    return web.json_response({"products": found, "context": context})


routes = [web.get("/recommendations", recommend)]
