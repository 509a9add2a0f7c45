"""Ratings in the shop (issue 16): a product page's stars, and a buyer's rating form on the order.

The rating is sent through the gateway (it knows the signed-in shopper); ratings checks the
purchase with orders. A product page's summary is one of its optional sections
(``discover.for_product``); an order page shows which lines were rated, and a form for the rest.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from aiohttp import web

from . import forms, gateway, security
from .gateway import GatewayProblem
from .pages import SignInRequired, redirect, render

PROBLEMS = {
    "already_rated": "You have rated this product of this order already.",
    "not_purchased": "Only a paid order's products can be rated.",
}


def order_path(order_id: str) -> str:
    return f"/orders/{quote(order_id, safe='')}"


async def rated(request: web.Request, token: str, order: dict[str, Any]) -> dict[str, int]:
    """The order's rated lines: product id -> stars ({} when not paid, or ratings is away)."""
    if order.get("status") != "paid":
        return {}
    path = f"/api/orders/{quote(order['id'], safe='')}/ratings"
    try:
        answer = await gateway.call(request, "GET", path, token=token)
    except GatewayProblem as problem:
        if problem.status == 401:
            raise
        return {}
    return {r["product_id"]: r["rating"] for r in answer["ratings"]}


async def for_order(request: web.Request, token: str, order: dict[str, Any]) -> dict[str, Any]:
    """What the order page adds: the rated lines, and a thank-you after a rating."""
    product = request.query.get("rated", "")
    names = {line["product_id"]: line["name"] for line in order["items"]}
    notice = f"Thank you for rating {names[product]}." if product in names else None
    return {"rated": await rated(request, token, order), **({"notice": notice} if notice else {})}


async def rate(request: web.Request) -> web.Response:
    """The order page's form: POST order_id, product_id and rating (1-5)."""
    form = await request.post()
    order_id = forms.field(form, "order_id", 64)
    product_id = forms.field(form, "product_id", 64)
    if not forms.PATH_ID.match(order_id) or not forms.PATH_ID.match(product_id):
        raise web.HTTPNotFound()
    token = security.session_token(request)
    if token is None:
        raise SignInRequired(order_path(order_id))
    stars = forms.quantity(forms.field(form, "rating", 2), 1, 5)
    if stars is None:
        return await order_with_message(request, token, order_id, "Choose 1 to 5 stars.", 422)
    path = f"/api/products/{quote(product_id, safe='')}/ratings"
    body = {"order_id": order_id, "rating": stars}
    try:
        await gateway.call(request, "POST", path, token=token, body=body, ok=(201,))
    except GatewayProblem as problem:
        if problem.status == 401 or problem.status >= 500:
            raise
        text = PROBLEMS.get(problem.code) or gateway.message(problem)
        return await order_with_message(request, token, order_id, text, problem.status)
    return redirect(f"{order_path(order_id)}?rated={quote(product_id, safe='')}")


async def order_with_message(
    request: web.Request, token: str, order_id: str, message: str, status: int
) -> web.Response:
    order = await gateway.order(request, token, order_id)
    context = {"order": order, "placed": False, "message": message}
    context["rated"] = await rated(request, token, order)
    return await render(request, "order.html", context, status=status)


routes = [web.post("/ratings", rate)]
