"""HTTP handlers for ads: parse the page's categories, choose an ad, answer."""

from __future__ import annotations

import re

from aiohttp import web

from services import kit

from . import table

CATEGORY = re.compile(r"^[a-z0-9-]{1,40}$")
MAX_CATEGORIES = 20


async def get_ad(request: web.Request) -> web.Response:
    raw = request.query.get("categories", "")
    categories = list(dict.fromkeys(filter(None, (c.strip() for c in raw.split(",")))))
    if len(categories) > MAX_CATEGORIES or not all(CATEGORY.match(c) for c in categories):
        raise kit.Problem(
            400,
            f"categories must be up to {MAX_CATEGORIES} category names "
            "(lower-case letters, digits and -), comma-separated",
            code="bad_query",
        )
    ad, category = table.choose(request.app[table.TABLE], categories, raw)
    return web.json_response({"ad": {**ad.model_dump(), "category": category}})


routes = [web.get("/ads", get_ad)]
