"""A write keyed by an idempotency key, done once: a repeat answers with the first result.

Every store whose writes a retry could repeat (orders, charges, stock reservations) keeps the
key in a column under a unique constraint and writes through :func:`once`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

T = TypeVar("T")


async def once(
    engine: AsyncEngine,
    find: Callable[[AsyncConnection], Awaitable[T | None]],
    make: Callable[[AsyncConnection], Awaitable[T]],
) -> tuple[T, bool]:
    """``(result, True)`` when ``make`` wrote it now, ``(earlier result, False)`` on a repeat.

    ``find`` reads what the key made before (or None), ``make`` writes it; both run in one
    transaction, so a failure in ``make`` leaves nothing behind. Where writers do not serialise
    at BEGIN (PostgreSQL), a concurrent request with the same key can win the race: its insert
    makes ours break the unique constraint, and its result is the answer.
    """
    try:
        async with engine.begin() as conn:
            existing = await find(conn)
            if existing is not None:
                return existing, False
            return await make(conn), True
    except IntegrityError:
        async with engine.connect() as conn:
            existing = await find(conn)
        if existing is None:
            raise
        return existing, False
