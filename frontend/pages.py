"""Rendering a page: what every page shows (header, trace footer), filters, and error pages."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import aiohttp_jinja2
from aiohttp import web
from opentelemetry import trace

from services import kit

from . import gateway, prices, security

log = logging.getLogger("boutique.frontend")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

DEFAULT_TRACES_URL = "http://127.0.0.1:16686"
CART: web.RequestKey[dict[str, Any]] = web.RequestKey("cart", dict)
SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£"}


class SignInRequired(Exception):
    """The page needs a signed-in shopper: go to the sign-in page, then come back to ``next``."""

    def __init__(self, next_path: str, expired: bool = False) -> None:
        super().__init__(next_path)
        self.next_path = next_path
        self.expired = expired


def redirect(location: str) -> web.Response:
    """303 See Other: after a form, the browser GETs ``location``."""
    return web.Response(status=303, headers={"Location": location})


def signin_url(next_path: str = "/", expired: bool = False) -> str:
    query = {"next": next_path} if next_path != "/" else {}
    if expired:
        query["expired"] = "1"
    return "/signin" + (f"?{urlencode(query)}" if query else "")


# --- filters ----------------------------------------------------------------------------------


def money(cents: int, currency: str = "USD") -> str:
    """4599 -> $45.99; 123456 -> $1,234.56."""
    amount = f"{cents / 100:,.2f}"
    symbol = SYMBOLS.get(currency)
    return f"{symbol}{amount}" if symbol else f"{amount} {currency}"


def date(stamp: str) -> str:
    """2026-11-21T08:30:00Z -> Nov 21, 2026, 08:30 UTC."""
    try:
        when = datetime.fromisoformat(stamp)
    except (TypeError, ValueError):
        return str(stamp)
    return f"{when:%b} {when.day}, {when.year}, {when:%H:%M} UTC"


FILTERS = {"money": money, "date": date}


# --- the page ---------------------------------------------------------------------------------


def trace_id() -> str | None:
    """The current request's trace id (hex), or None when tracing is off."""
    ctx = trace.get_current_span().get_span_context()
    return trace.format_trace_id(ctx.trace_id) if ctx.is_valid else None


async def cart_count(request: web.Request, token: str) -> int | None:
    """How many items the header shows; None when the cart cannot be read just now."""
    cart = request.get(CART)
    if cart is None:
        try:
            cart = await gateway.cart(request, token)
        except gateway.GatewayProblem as problem:
            if problem.status == 401:  # the session ended: this browser is signed out now
                security.forget_session(request)
            return None
    return int(cart.get("item_count", 0))


async def render(
    request: web.Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status: int = 200,
    header: bool = True,
) -> web.Response:
    """``template`` with what every page needs. ``header=False`` makes no gateway call (for
    error pages: the gateway may be what failed)."""
    token = security.session_token(request)
    count = await cart_count(request, token) if token and header else None
    tid = trace_id()
    traces = request.app[kit.SETTINGS].get("TRACES_URL", DEFAULT_TRACES_URL).rstrip("/")
    page = {
        "signed_in": security.session_token(request) is not None,
        "cart_count": count,
        "csrf": security.csrf_token(request),
        "trace_id": tid,
        "trace_url": f"{traces}/trace/{tid}" if tid else None,
        "path": request.path,
        "currencies": await prices.codes(request) if header else [],
        "currency": prices.chosen(request),
        "message": None,
        "notice": None,
        **(context or {}),
    }
    return aiohttp_jinja2.render_template(template, request, page, status=status)


# --- error pages ------------------------------------------------------------------------------

HTTP_ERRORS = {
    403: (
        "This form has expired",
        "For your safety we did not act on it. Go back, reload the page and try again.",
    ),
    404: ("Page not found", "We could not find that page. It may have moved or never existed."),
    405: ("Not allowed", "That page cannot be used this way."),
    413: ("Too much data", "That form sent more than we accept."),
}


async def error_page(
    request: web.Request, status: int, title: str, text: str
) -> web.StreamResponse:
    retry = request.path_qs if request.method == "GET" else None
    context = {"title": title, "text": text, "status": status, "retry": retry}
    return await render(request, "error.html", context, status=status, header=False)


@web.middleware
async def error_pages(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure is a friendly page: a sign-in redirect, a not-found page, or a 'please
    try again' page for a failing dependency (502/503). Never a traceback."""
    try:
        return await handler(request)
    except SignInRequired as need:
        if need.expired:
            security.forget_session(request)
        return redirect(signin_url(need.next_path, need.expired))
    except gateway.GatewayProblem as problem:
        if problem.status == 401:
            security.forget_session(request)
            return redirect(signin_url(request.path_qs if request.method == "GET" else "/", True))
        if problem.status == 404:
            return await error_page(request, 404, *HTTP_ERRORS[404])
        if problem.status >= 500:
            log.warning("%s %s: the gateway answered %s", request.method, request.path, problem)
            status = 502 if problem.status == 502 else 503
            text = gateway.unavailable(problem)
            return await error_page(request, status, "We're having a little trouble", text)
        return await error_page(request, problem.status, "Sorry", gateway.message(problem))
    except web.HTTPException as exc:
        if exc.status < 400:
            return web.Response(status=exc.status, headers=exc.headers)
        title, text = HTTP_ERRORS.get(exc.status, ("Sorry", "That did not work."))
        return await error_page(request, exc.status, title, text)
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        text = "Something went wrong on our side. It has been logged; please try again."
        return await error_page(request, 500, "Sorry, something broke", text)
