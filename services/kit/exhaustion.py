"""Exhaustion is an answer, not a crash: a store that is full, busy, slow or down is a 503.

A connection pool with nothing free, Redis down or too slow, an SQL pool that timed out, SQLite
busy past its wait: none of these is a bug in the request, and each passes. So the client gets
``503 overloaded`` (problem+json) with ``Retry-After``, never a 500 and a stack trace; the mesh
may retry it elsewhere, and a keyed write is safe to repeat.
"""

from __future__ import annotations

from redis import exceptions as redis_errors
from sqlalchemy import exc as sql_errors

from .problems import Problem

RETRY_AFTER_S = 1

# Redis down (refused, reset), too slow (a command past its timeout), its pool empty past the
# wait (a ConnectionError too), or still loading its data.
_REDIS = (redis_errors.ConnectionError, redis_errors.TimeoutError, redis_errors.BusyLoadingError)
_SQL_BUSY = ("database is locked", "database table is locked")


def store_of(exc: BaseException) -> str | None:
    """The store that ran out (``redis`` or ``database``), or None for any other error."""
    if isinstance(exc, _REDIS):
        return "redis"
    if isinstance(exc, sql_errors.TimeoutError):  # the SQL pool had no connection in time
        return "database"
    if isinstance(exc, sql_errors.OperationalError):  # SQLite busy past its wait; server down
        return "database"
    if isinstance(exc, sql_errors.DBAPIError) and exc.connection_invalidated:
        return "database"
    return None


def as_problem(exc: BaseException) -> Problem | None:
    """``503 overloaded`` with ``Retry-After`` for a store's exhaustion; None otherwise."""
    store = store_of(exc)
    if store is None:
        return None
    busy = isinstance(exc, sql_errors.OperationalError) and any(
        word in str(exc.orig).lower() for word in _SQL_BUSY
    )
    what = "busy" if busy else "unavailable or at its limit"
    return Problem(
        503,
        f"This service's {store} is {what} right now; try again in a moment",
        code="overloaded",
        store=store,
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )
