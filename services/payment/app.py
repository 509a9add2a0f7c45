"""The payment service: a simulated card gateway in front of orders and cart."""

from __future__ import annotations

import re
from pathlib import Path

from aiohttp import web

from services import kit

from .api import LATENCY, routes
from .store import metadata

DEFAULT_LATENCY_MS = "20-80"
_LATENCY = re.compile(r"^\s*(\d{1,6})\s*(?:-\s*(\d{1,6})\s*)?$")


def parse_latency(raw: str) -> tuple[int, int]:
    """``PAYMENT_LATENCY_MS``: ``"n"`` or ``"min-max"`` milliseconds, as ``(min, max)``."""
    match = _LATENCY.match(raw)
    if match is None:
        raise ValueError(f"PAYMENT_LATENCY_MS must be 'n' or 'min-max' milliseconds, not {raw!r}")
    low = int(match[1])
    high = int(match[2]) if match[2] is not None else low
    if low > high:
        raise ValueError(f"PAYMENT_LATENCY_MS {raw!r}: the minimum is above the maximum")
    return low, high


def create_app(settings: kit.Settings | None = None) -> web.Application:
    settings = settings or kit.Settings.from_env("payment")
    latency = parse_latency(settings.get("PAYMENT_LATENCY_MS") or DEFAULT_LATENCY_MS)
    app = kit.create_app(
        settings,
        routes=routes,
        contexts=[kit.database_context(metadata), kit.peers_context],
        openapi=Path(__file__).with_name("openapi.yaml"),
    )
    app[LATENCY] = latency
    return app


if __name__ == "__main__":
    kit.run(create_app())
