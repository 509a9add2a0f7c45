"""RFC 9457 problem details: every error a client sees is ``application/problem+json``."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

PROBLEM_TYPE = "application/problem+json"
RETRY_AFTER_S = 1
log = logging.getLogger("boutique.problems")

_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    428: "Precondition Required",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


class Problem(web.HTTPException):
    """Raise anywhere in a handler: ``raise Problem(404, "No product 'x'")``.

    ``code`` is a stable machine-readable slug (``out_of_stock``, ``card_declined``);
    ``extra`` adds members to the body (RFC 9457 extension members). A 503 always says when to
    come back (``Retry-After``, 1 s unless given).
    """

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        code: str | None = None,
        title: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        self.status_code = status
        body: dict[str, Any] = {
            "type": f"https://boutique.local/problems/{code}" if code else "about:blank",
            "title": title or _TITLES.get(status, "Error"),
            "status": status,
            "detail": detail,
        }
        if code:
            body["code"] = code
        body.update(extra)
        self.details = body
        headers = _with_retry_after(status, headers)
        super().__init__(text=json.dumps(body), content_type=PROBLEM_TYPE, headers=headers)


def problem_response(status: int, detail: str, **kwargs: Any) -> web.Response:
    """The same body as :class:`Problem`, as a response to return instead of raise."""
    p = Problem(status, detail, **kwargs)
    headers = _with_retry_after(status, kwargs.get("headers"))
    return web.Response(status=status, text=p.text, content_type=PROBLEM_TYPE, headers=headers)


def _with_retry_after(status: int, headers: dict[str, str] | None) -> dict[str, str] | None:
    if status != 503 or any(k.lower() == "retry-after" for k in headers or {}):
        return headers
    return {**(headers or {}), "Retry-After": str(RETRY_AFTER_S)}


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every error into problem+json: aiohttp's own (404, 405, 413), ours, a store's
    exhaustion (503 ``overloaded``, see ``exhaustion``), and crashes (500)."""
    try:
        return await handler(request)
    except Problem:
        raise
    except web.HTTPException as exc:
        if exc.status_code < 400:
            raise
        detail = (
            exc.text
            if exc.text and not exc.text.startswith(f"{exc.status_code}:")
            else (exc.reason)
        )
        if exc.status_code == 413:
            detail = "The request body is larger than this service accepts"
        raise Problem(exc.status_code, detail, headers=_keep_headers(exc)) from None
    except Exception as exc:
        from .exhaustion import as_problem  # (it builds on Problem, so it is imported late)

        if (overloaded := as_problem(exc)) is not None:
            log.warning("%s %s: %s: %s", request.method, request.path, type(exc).__name__, exc)
            raise overloaded from None
        log.exception("unhandled error in %s %s", request.method, request.path)
        raise Problem(500, "Something went wrong on our side; it has been logged") from None


def _keep_headers(exc: web.HTTPException) -> dict[str, str]:
    return {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "www-authenticate")}
