"""The sweeper: every ``PRODUCTS_SWEEP_SECONDS`` held reservations past their expiry expire."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from services import kit

from . import store

log = logging.getLogger("boutique.products.sweeper")
DEFAULT_INTERVAL = "5"


async def sweep(engine: AsyncEngine, now: float) -> list[str]:
    """One pass: expire what is due at ``now`` and give its stock back; the keys expired."""
    expired = await store.expire_due(engine, now)
    if expired:
        log.info("expired %d reservation(s): %s", len(expired), ", ".join(expired))
    return expired


async def run_forever(engine: AsyncEngine, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await sweep(engine, time.time())
        except Exception:  # the next pass tries again; the task must not die
            log.exception("sweep failed")


def interval_from(settings: kit.Settings) -> float:
    raw = settings.get("PRODUCTS_SWEEP_SECONDS", DEFAULT_INTERVAL)
    try:
        interval = float(raw)
    except ValueError:
        interval = 0.0
    if not interval > 0:
        raise ValueError(f"PRODUCTS_SWEEP_SECONDS must be a number > 0, not {raw!r}")
    return interval


async def sweeper_context(app: web.Application) -> AsyncIterator[None]:
    """``cleanup_ctx`` (after the database's): the sweep task, cancelled at shutdown."""
    task = asyncio.create_task(run_forever(app[kit.DB], interval_from(app[kit.SETTINGS])))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
