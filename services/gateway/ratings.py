"""The public ratings API (issue 16): a product's summary, and a buyer's rating of it.

``POST /api/products/{id}/ratings`` passes the signed-in user on to ratings, which checks the
purchase with orders for that user; ratings' problems (403 not bought, 409 rated already, 422)
reach the client as they are.
"""

from __future__ import annotations

import re
from typing import Annotated

from aiohttp import web
from pydantic import Field

from services import kit

from . import auth
from .relay import relay

ORDER_ID = re.compile(r"^ord_[0-9a-f]{24}$")
PRODUCT_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")


class RatingBody(kit.Body):
    order_id: Annotated[str, Field(pattern=ORDER_ID.pattern)]
    rating: Annotated[int, Field(ge=1, le=5)]


def _path(request: web.Request, pattern: re.Pattern[str], what: str) -> str:
    value = request.match_info["id"]
    if not pattern.match(value):
        raise kit.Problem(404, f"No {what} {value!r}", code=f"unknown_{what}")
    return value


async def product_ratings(request: web.Request) -> web.Response:
    pid = _path(request, PRODUCT_ID, "product")
    return web.json_response(relay(await kit.peers(request).get("ratings", f"/ratings/{pid}"), 200))


async def rate_product(request: web.Request) -> web.Response:
    uid = await auth.require_user(request)
    pid = _path(request, PRODUCT_ID, "product")
    body = await kit.read_json(request, RatingBody)
    rating = {**body.model_dump(), "product_id": pid}
    reply = await kit.peers(request).post("ratings", "/ratings", json_body=rating, user=uid)
    return web.json_response(relay(reply, 201), status=201)


async def order_ratings(request: web.Request) -> web.Response:
    uid = await auth.require_user(request)
    oid = _path(request, ORDER_ID, "order")
    reply = await kit.peers(request).get("ratings", f"/ratings?order_id={oid}", user=uid)
    return web.json_response(relay(reply, 200))


routes = [
    web.get("/api/products/{id}/ratings", product_ratings),
    web.post("/api/products/{id}/ratings", rate_product),
    web.get("/api/orders/{id}/ratings", order_ratings),
]
