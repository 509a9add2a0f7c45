"""Steps the saga owes once it has started: they are tried a few times before the client hears.

Giving stock back, cancelling an order, selling held stock and confirming a paid order are not
optional: a saga that stopped half-way would leave stock held or money without an order. Each
call already carries an Idempotency-Key, so the mesh retries it (a few quick tries); this is the
saga's own, slower persistence on top, long enough to ride out a peer that is being restarted
(a few seconds). Only then is the client told: ``503 compensation_pending``, retry with the same
key, and the repeat finishes what is left.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from services import kit

T = TypeVar("T")

# The pauses between tries (about 4 s in all). Pauses, not timeouts: each try's time limit
# is the mesh's.
PAUSES_S = (0.25, 0.5, 1.0, 2.0)
RETRY_AFTER_S = 2


async def insist(step: Callable[[], Awaitable[T]], pauses: tuple[float, ...] = PAUSES_S) -> T:
    """``step()``, tried again after each pause while it fails with a 5xx; the last failure
    (or any 4xx at once) is raised as it is."""
    for pause in pauses:
        try:
            return await step()
        except kit.Problem as problem:
            if problem.status < 500:
                raise
        await asyncio.sleep(pause)
    return await step()


async def owe(what: str, step: Callable[[], Awaitable[T]]) -> T:
    """:func:`insist`, then ``503 compensation_pending`` when the step still cannot be done."""
    try:
        return await insist(step)
    except kit.Problem as problem:
        if problem.status < 500:
            raise
        raise pending(what) from None


def pending(what: str) -> kit.Problem:
    return kit.Problem(
        503,
        f"This checkout could not {what} yet; retry with the same Idempotency-Key to finish it "
        "(you will not be charged twice)",
        code="compensation_pending",
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )
