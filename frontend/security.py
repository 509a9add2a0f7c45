"""The session cookie (the gateway's token) and CSRF protection for every form.

- The token lives in an HttpOnly, SameSite=Lax cookie; Secure when the request came over https.
- CSRF: the double-submit pattern. A random ``csrf`` cookie (HttpOnly, SameSite=Strict) and the
  same value in a hidden field of every form; a POST without a matching pair is refused (403)
  before its handler runs, so nothing changes.
"""

from __future__ import annotations

import hmac
import re
import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from aiohttp import web

from services import kit

SESSION_COOKIE = "session"
CSRF_COOKIE = "csrf"
CSRF_FIELD = "csrf"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,256}$")

_CSRF: web.RequestKey[str] = web.RequestKey("csrf", str)
_NEW_CSRF: web.RequestKey[bool] = web.RequestKey("new_csrf", bool)
_FORGET: web.RequestKey[bool] = web.RequestKey("forget_session", bool)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# What a browser may do with our pages: our own styles and images (and the API's, where it has
# an origin of its own, as without a mesh), forms posted only to us.
CSP = (
    "default-src 'self'; img-src 'self'{api}; style-src 'self'; script-src 'none'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


class CsrfRejected(web.HTTPForbidden):
    """A POST without the matching CSRF pair."""


def is_https(request: web.Request) -> bool:
    """True when the browser talks https to us, directly or through the ingress."""
    if request.secure:
        return True
    proto = request.headers.get("X-Forwarded-Proto", "")
    return proto.split(",")[0].strip().lower() == "https"


# --- the session ------------------------------------------------------------------------------


def session_token(request: web.Request) -> str | None:
    """The signed-in shopper's gateway token, or None."""
    if request.get(_FORGET):
        return None
    token = request.cookies.get(SESSION_COOKIE, "")
    return token if _TOKEN.match(token) else None


def remember_session(
    response: web.StreamResponse, request: web.Request, token: str, expires_at: str | None
) -> None:
    request[_FORGET] = False
    response.set_cookie(
        SESSION_COOKIE,
        token,
        path="/",
        max_age=_seconds_until(expires_at),
        httponly=True,
        samesite="Lax",
        secure=is_https(request),
    )


def forget_session(request: web.Request) -> None:
    """Sign out in this browser: the cookie is deleted with this request's response."""
    request[_FORGET] = True


def _seconds_until(expires_at: str | None) -> int | None:
    try:
        when = datetime.fromisoformat(str(expires_at))
    except ValueError:
        return None  # a browser-session cookie then; the gateway still ends the session
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0, int((when - datetime.now(UTC)).total_seconds()))


# --- CSRF -------------------------------------------------------------------------------------


def csrf_token(request: web.Request) -> str:
    """The value every form of this page carries; a new one when the browser has none yet."""
    token = request.get(_CSRF)
    if token is None:
        cookie = request.cookies.get(CSRF_COOKIE, "")
        if _TOKEN.match(cookie):
            token = cookie
        else:
            token = secrets.token_urlsafe(32)
            request[_NEW_CSRF] = True
        request[_CSRF] = token
    return token


@web.middleware
async def csrf_check(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse any state-changing request whose form field does not match the csrf cookie."""
    if request.method not in SAFE_METHODS:
        form = await request.post()
        sent = form.get(CSRF_FIELD)
        cookie = request.cookies.get(CSRF_COOKIE, "")
        if not (
            isinstance(sent, str)
            and _TOKEN.match(cookie)
            and hmac.compare_digest(sent.encode(), cookie.encode())
        ):
            raise CsrfRejected()
    return await handler(request)


@web.middleware
async def cookies_and_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Set the cookies this request decided on, and the security headers of every page.

    Outside ``pages.error_pages``, so error pages and redirects get them too."""
    response = await handler(request)
    if request.get(_NEW_CSRF):
        response.set_cookie(
            CSRF_COOKIE,
            request[_CSRF],
            path="/",
            httponly=True,
            samesite="Strict",
            secure=is_https(request),
        )
    if request.get(_FORGET):
        response.del_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="Lax")
    if response.content_type == "text/html":
        api = request.app[kit.SETTINGS].get("PUBLIC_API_URL", "").rstrip("/")
        response.headers.setdefault(
            "Content-Security-Policy", CSP.format(api=f" {api}" * bool(api))
        )
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
    return response
