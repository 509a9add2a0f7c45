"""HTTP handlers for ratings: parse, verify the purchase with orders, store, answer."""

from __future__ import annotations

import re
from typing import Annotated, Any

from aiohttp import web
from pydantic import Field

from services import kit

from . import store

ORDER_ID = r"^ord_[0-9a-f]{24}$"
PRODUCT_ID = r"^[a-z0-9][a-z0-9-]{0,63}$"


class NewRating(kit.Body):
    order_id: Annotated[str, Field(pattern=ORDER_ID)]
    product_id: Annotated[str, Field(pattern=PRODUCT_ID)]
    rating: Annotated[int, Field(ge=1, le=5)]


def public(row: store.Rating) -> dict[str, Any]:
    return {k: row[k] for k in ("order_id", "product_id", "rating", "created_at")}


def summary(product_id: str, count: int, total: int) -> dict[str, Any]:
    average = round(total / count, 2) if count else None
    return {"product_id": product_id, "count": count, "average": average}


def _not_purchased(detail: str) -> kit.Problem:
    return kit.Problem(403, detail, code="not_purchased")


async def _bought(request: web.Request, user: str, body: NewRating) -> None:
    """Ask orders (for this user only) whether the order is paid and holds the product."""
    reply = await kit.peers(request).get("orders", f"/orders/{body.order_id}", user=user)
    if reply.status == 404:
        raise _not_purchased(f"You have no order {body.order_id}")
    order = reply.expect(200)
    if order["status"] != "paid":
        raise _not_purchased(f"Order {body.order_id} is {order['status']}, not paid")
    if not any(line["product_id"] == body.product_id for line in order["items"]):
        raise _not_purchased(f"Order {body.order_id} does not include {body.product_id}")


async def rate(request: web.Request) -> web.Response:
    """201 with the rating and the product's new summary; 409 when the order line was rated."""
    user = kit.user_id(request)
    body = await kit.read_json(request, NewRating)
    engine = request.app[kit.DB]
    earlier = await store.get(engine, body.order_id, body.product_id)
    if earlier is None or earlier["user_id"] != user:
        await _bought(request, user, body)  # someone else's order: orders says 404, so 403
    if earlier is None:
        row, created = await store.add(engine, user, body.order_id, body.product_id, body.rating)
        if created:
            count, total = await store.summary(engine, body.product_id)
            answer = {**public(row), "summary": summary(body.product_id, count, total)}
            return web.json_response(answer, status=201)
        earlier = row  # a concurrent request rated it first
    raise kit.Problem(
        409,
        f"You rated {body.product_id} of order {body.order_id} already "
        f"({earlier['rating']} of 5); a rating is given once",
        code="already_rated",
        order_id=body.order_id,
        product_id=body.product_id,
    )


async def product_summary(request: web.Request) -> web.Response:
    product_id = request.match_info["product_id"]
    if not re.match(PRODUCT_ID, product_id):
        raise kit.Problem(404, f"No product {product_id!r}", code="unknown_product")
    count, total = await store.summary(request.app[kit.DB], product_id)
    return web.json_response(summary(product_id, count, total))


async def order_ratings(request: web.Request) -> web.Response:
    user = kit.user_id(request)
    order_id = request.query.get("order_id", "")
    if not re.match(ORDER_ID, order_id):
        raise kit.Problem(400, "order_id must be an order id (ord_...)", code="bad_query")
    rows = await store.of_order(request.app[kit.DB], user, order_id)
    return web.json_response({"order_id": order_id, "ratings": [public(r) for r in rows]})


routes = [
    web.post("/ratings", rate),
    web.get("/ratings", order_ratings),
    web.get("/ratings/{product_id}", product_summary),
]
