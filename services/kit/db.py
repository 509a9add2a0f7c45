"""The SQL store: one async engine per service from ``DATABASE_URL``.

SQLite is the default. Writers take the lock at ``BEGIN`` (``BEGIN IMMEDIATE``) and wait for it
(``busy_timeout``), so several processes (replicas) can share one file safely, and WAL lets
readers run beside a writer; reads (``kit.transactions.read``) begin with a plain ``BEGIN`` and
take no lock. Waits are bounded: past ``SQLITE_BUSY_MS`` for the lock, or
``DB_POOL_TIMEOUT_S`` for a pooled connection, the request is answered ``503 overloaded``
(``kit.exhaustion``) instead of queueing longer than any caller waits.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiohttp import web
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.schema import MetaData

from . import schema, telemetry, transactions
from .keys import DB, READINESS, SETTINGS, CleanupCtx

SQLITE_BUSY_MS = 5_000
POOL_TIMEOUT_S = 5.0


def make_engine(
    url: str, *, busy_ms: int = SQLITE_BUSY_MS, pool_timeout_s: float = POOL_TIMEOUT_S
) -> AsyncEngine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_async_engine(url, pool_pre_ping=True, pool_timeout=pool_timeout_s)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(url, pool_timeout=pool_timeout_s)
    sync = engine.sync_engine

    @event.listens_for(sync, "connect")
    def _on_connect(dbapi_conn, _record):  # type: ignore[no-untyped-def]
        # Let SQLAlchemy, not the driver, say when a transaction begins.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {int(busy_ms)}")
        _switch_to_wal(cur)
        cur.execute("PRAGMA foreign_keys = ON")
        cur.close()

    @event.listens_for(sync, "begin")
    def _on_begin(conn):  # type: ignore[no-untyped-def]
        # A read (kit.transactions.read) takes no write lock: a plain BEGIN, which in WAL
        # waits for no one; everything else may write, so it takes the lock up front.
        read = conn.get_execution_options().get(transactions.READ)
        conn.exec_driver_sql("BEGIN" if read else "BEGIN IMMEDIATE")

    if parsed.database and parsed.database != ":memory:":
        transactions.attach(engine, _on_connect)  # whole transactions in one thread
    return engine


def _switch_to_wal(cur: Any, attempts: int = 40) -> None:
    """``PRAGMA journal_mode = WAL``, retried: on a new file the switch needs a lock that SQLite
    does not wait for (``busy_timeout`` does not apply), so two replicas opening the same new
    database at once could fail with "database is locked". Runs in the driver's thread."""
    for attempt in range(attempts):
        try:
            cur.execute("PRAGMA journal_mode = WAL")
            return
        except Exception as exc:  # the driver's OperationalError, however it is wrapped
            if "locked" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(0.01 * (attempt + 1))


def database_context(metadata: MetaData) -> CleanupCtx:
    """A ``cleanup_ctx``: opens ``app[DB]``, creates the tables, disposes the engine at shutdown."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        settings = app[SETTINGS]
        engine = make_engine(
            settings.database_url,
            busy_ms=int(settings.get("SQLITE_BUSY_MS", str(SQLITE_BUSY_MS))),
            pool_timeout_s=float(settings.get("DB_POOL_TIMEOUT_S", str(POOL_TIMEOUT_S))),
        )
        telemetry.instrument_engine(engine)
        if (twin := transactions.twin_engine(engine)) is not None:
            SQLAlchemyInstrumentor().instrument(engine=twin, enable_commenter=False)
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
            await conn.run_sync(schema.add_missing_columns, metadata)
        app[DB] = engine
        app[READINESS].append(("database", lambda: _ping(engine)))
        yield
        await transactions.close(engine)
        await engine.dispose()

    return ctx


class ChangeCounter:
    """Tells whether anyone committed to the engine's SQLite file since the last look.

    It holds a connection of its own that never writes, and asks SQLite's ``PRAGMA
    data_version``, which changes whenever another connection commits: this process's pool or
    another process (a replica) on the same file. A read of the WAL index, some microseconds:
    cheap enough to ask on every request, in the event loop. :meth:`for_engine` gives None where
    there is no such counter (PostgreSQL, an in-memory SQLite); callers then read every time.
    """

    def __init__(self, path: str, busy_ms: int = SQLITE_BUSY_MS) -> None:
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._conn.execute(f"PRAGMA busy_timeout = {int(busy_ms)}")

    @classmethod
    def for_engine(cls, engine: AsyncEngine) -> ChangeCounter | None:
        url = engine.url
        if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
            return None
        return cls(url.database)

    def value(self) -> int:
        """A number that differs from the previous one if someone committed in between."""
        return self._conn.execute("PRAGMA data_version").fetchone()[0]

    def close(self) -> None:
        self._conn.close()


async def _ping(engine: AsyncEngine) -> None:
    # A read: no write lock taken (a replica's writers never wait for a probe), and one thread
    # hand-over where the engine has a twin.
    await transactions.read(engine, lambda conn: conn.execute(text("SELECT 1")))
