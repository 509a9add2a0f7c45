"""SQL transactions run whole in one worker thread: one hand-over each, not one per statement.

Through aiosqlite every statement is a round trip to the driver's thread (a future, a wake-up of
the event loop, a greenlet switch), and so are BEGIN, COMMIT and the pool's reset: a write of five
statements makes eight, and they cost more CPU than SQLite's own work. Here a store hands its
whole transaction, plain synchronous SQLAlchemy Core (``work(conn)``), to one thread per engine
that runs it start to end on the standard library's sqlite3 driver, with the engine's connection
settings (WAL, busy timeout, foreign keys) and ``BEGIN IMMEDIATE`` for writes (a plain ``BEGIN``
for reads, which in WAL wait for no one). One thread per process also means this process's
writers queue in order instead of sleeping in SQLite's busy handler; other processes (replicas)
on the same file still wait on the lock as before. The request's trace context goes along, so
SQL spans stay under the request's span.

Engines without a file (in-memory SQLite) and other databases (PostgreSQL) run the same ``work``
through the async engine's ``run_sync``.
"""

from __future__ import annotations

import asyncio
import contextvars
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, Table, bindparam, create_engine, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

T = TypeVar("T")
Work = Callable[[Connection], T]

READ = "boutique_read"  # execution option: a read-only transaction (plain BEGIN)
_TWINS: weakref.WeakKeyDictionary[AsyncEngine, _Twin] = weakref.WeakKeyDictionary()


class _Twin:
    """A synchronous engine on the same SQLite file and the one thread that uses it."""

    def __init__(self, url: Any, on_connect: Callable[[Any, Any], None]) -> None:
        self.engine: Engine = create_engine(url.set(drivername="sqlite"))
        self.thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sql")
        event.listen(self.engine, "connect", on_connect)
        event.listen(self.engine, "begin", _begin)

    def run(self, work: Work[T], write: bool) -> T:
        if write:
            with self.engine.begin() as conn:
                return work(conn)
        with self.engine.connect() as conn:
            conn.execution_options(**{READ: True})
            return work(conn)

    def close(self) -> None:
        self.thread.shutdown(wait=True)
        self.engine.dispose()


def _begin(conn: Connection) -> None:
    # Straight to the driver: a BEGIN is no statement worth a span of its own.
    begin = "BEGIN" if conn.get_execution_options().get(READ) else "BEGIN IMMEDIATE"
    conn.connection.dbapi_connection.execute(begin)  # type: ignore[union-attr]


def attach(engine: AsyncEngine, on_connect: Callable[[Any, Any], None]) -> None:
    """Give a file-backed SQLite ``engine`` its twin (``make_engine`` does)."""
    _TWINS[engine] = _Twin(engine.url, on_connect)


def twin_engine(engine: AsyncEngine) -> Engine | None:
    """The synchronous engine that runs ``engine``'s transactions, if it has one (for tracing)."""
    twin = _TWINS.get(engine)
    return twin.engine if twin else None


async def write(engine: AsyncEngine, work: Work[T]) -> T:
    """``work(conn)`` in one write transaction (committed, or rolled back if it raises)."""
    return await _run(engine, work, True)


async def read(engine: AsyncEngine, work: Work[T]) -> T:
    """``work(conn)`` in one read transaction: one consistent snapshot."""
    return await _run(engine, work, False)


async def once(engine: AsyncEngine, find: Work[T | None], make: Work[T | None]) -> tuple[T, bool]:
    """A keyed write done once: ``(result, True)`` when ``make`` wrote it now, ``(earlier
    result, False)`` on a repeat. Every store whose writes a retry could repeat (orders, charges,
    stock reservations, e-mails) keeps the key in a column under a unique constraint and writes
    through this. ``make`` inserts the keyed row first with :func:`insert_new` and answers None
    when the key was there already; ``find`` then reads the earlier result, in the same
    transaction. So a first try is one statement less than find-then-insert, and concurrent
    twins never break the unique key, whether BEGIN serialises writers (SQLite) or not
    (PostgreSQL: the loser's insert waits for the winner's commit and then does nothing)."""

    def work(conn: Connection) -> tuple[T, bool]:
        made = make(conn)
        if made is not None:
            return made, True
        existing = find(conn)
        if existing is None:  # the key was there but its row is not: cannot happen in one txn
            raise LookupError("a keyed row conflicted but could not be read")
        return existing, False

    try:
        return await write(engine, work)
    except IntegrityError:  # a ``make`` that inserts without insert_new, beaten by a twin
        existing = await read(engine, find)
        if existing is None:
            raise
        return existing, False


def insert_new(conn: Connection, table: Table, row: dict[str, Any], keys: Sequence[str]) -> bool:
    """``INSERT ... ON CONFLICT (keys) DO NOTHING``: True when ``row`` was inserted, False when a
    row with the same ``keys`` (a unique constraint) was there; then nothing changed.

    SQLAlchemy's own ``insert().on_conflict_do_nothing()`` has no cache key, so it was compiled
    anew for every row (about 0.3 CPU-ms for a 15-column table, ten times the insert); this is the
    same statement as a typed ``text()``, built once per table, columns and keys and cached by
    SQLAlchemy like any other. Columns left out get their scalar defaults, as ``insert()`` does."""
    shape = (conn.dialect.name, table, tuple(row), tuple(keys))
    if shape not in _INSERTS:
        _INSERTS[shape] = _insert_new_statement(conn, table, row, keys)
    built = _INSERTS[shape]
    if built is None:  # a column with a callable default: SQLAlchemy's own statement
        dialect: Any = postgresql if conn.dialect.name == "postgresql" else sqlite
        stmt = dialect.insert(table).values(row).on_conflict_do_nothing(index_elements=keys)
        return conn.execute(stmt).rowcount == 1
    statement, defaults = built
    return conn.execute(statement, {**defaults, **row} if defaults else row).rowcount == 1


_INSERTS: dict[tuple[Any, ...], tuple[Any, dict[str, Any]] | None] = {}


def _insert_new_statement(
    conn: Connection, table: Table, row: dict[str, Any], keys: Sequence[str]
) -> tuple[Any, dict[str, Any]] | None:
    defaults: dict[str, Any] = {}
    for column in table.columns:
        default = column.default
        if column.key in row or default is None:
            continue
        if not getattr(default, "is_scalar", False):
            return None
        defaults[column.key] = default.arg  # type: ignore[union-attr]
    names = [*row, *defaults]
    quote = conn.dialect.identifier_preparer.quote
    sql = (
        f"INSERT INTO {conn.dialect.identifier_preparer.format_table(table)} "
        f"({', '.join(quote(table.c[n].name) for n in names)}) "
        f"VALUES ({', '.join(':' + n for n in names)}) "
        f"ON CONFLICT ({', '.join(quote(table.c[k].name) for k in keys)}) DO NOTHING"
    )
    binds = [bindparam(n, type_=table.c[n].type) for n in names]
    return text(sql).bindparams(*binds), defaults


async def close(engine: AsyncEngine) -> None:
    twin = _TWINS.pop(engine, None)
    if twin is not None:
        await asyncio.get_running_loop().run_in_executor(None, twin.close)


async def _run(engine: AsyncEngine, work: Work[T], write: bool) -> T:
    twin = _TWINS.get(engine)
    if twin is None:
        if write:
            async with engine.begin() as conn:
                return await conn.run_sync(work)
        async with engine.connect() as conn:
            await conn.execution_options(**{READ: True})
            return await conn.run_sync(work)
    context = contextvars.copy_context()  # the request's span, for SQL spans under it
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(twin.thread, context.run, twin.run, work, write)
