"""The shopper's e-mails ("your emails"): the outbox of the email service, through the gateway."""

from __future__ import annotations

import re
from urllib.parse import quote

from aiohttp import web

from . import gateway, prices
from .pages import render
from .views import need_token

EMAIL_ID = re.compile(r"^em_[0-9a-f]{24}$")
# The e-mail's own HTML, shown as it would be in a mail client: nothing runs, nothing loads.
HTML_CSP = "sandbox; default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'self'"


async def emails_page(request: web.Request) -> web.Response:
    token = need_token(request)
    listing = await gateway.call(request, "GET", "/api/emails?limit=50", token=token)
    return await render(request, "emails.html", {"emails": listing["emails"]})


async def _email(request: web.Request) -> dict[str, object]:
    token = need_token(request)
    email_id = request.match_info["id"]
    if not EMAIL_ID.match(email_id):
        raise web.HTTPNotFound()
    return await gateway.call(request, "GET", f"/api/emails/{quote(email_id)}", token=token)


async def email_page(request: web.Request) -> web.Response:
    return await render(request, "email.html", {"email": await _email(request)})


async def email_html(request: web.Request) -> web.Response:
    email = await _email(request)
    if not isinstance(email.get("html"), str):
        raise web.HTTPNotFound()  # still queued: not sent yet
    return web.Response(
        text=str(email["html"]),
        content_type="text/html",
        headers={"Content-Security-Policy": HTML_CSP},
    )


routes = [
    web.get("/emails", emails_page),
    web.get("/emails/{id}", email_page),
    web.get("/emails/{id}/html", email_html),
    web.post("/currency", prices.choose),
]
