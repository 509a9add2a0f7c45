"""Whole transactions in the store's thread (``kit.transactions``): all or nothing, seen at once by
the async engine (and a replica) on the same file, and a keyed write done once under a crowd."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    event,
    select,
    text,
)
from sqlalchemy.engine.default import CacheStats

from services.kit import db, make_engine, transactions

metadata = MetaData()
rows = Table("rows", metadata, Column("key", String(32), primary_key=True), Column("n", Integer))


@pytest.fixture
async def engines(tmp_path: Path):  # type: ignore[no-untyped-def]
    url = f"sqlite+aiosqlite:///{tmp_path / 'shop.db'}"
    first, replica = make_engine(url), make_engine(url)
    async with first.begin() as conn:
        await conn.run_sync(metadata.create_all)
    yield first, replica
    for engine in (first, replica):
        await transactions.close(engine)
        await engine.dispose()


def _count(conn: Connection) -> int:
    return int(conn.scalar(select(rows.c.n).where(rows.c.key == "k")) or 0)


async def test_a_failed_write_leaves_nothing_and_a_commit_shows_everywhere(engines) -> None:  # type: ignore[no-untyped-def]
    first, replica = engines

    def half_then_fail(conn: Connection) -> None:
        conn.execute(rows.insert().values(key="k", n=1))
        raise RuntimeError("the second half failed")

    with pytest.raises(RuntimeError):
        await transactions.write(first, half_then_fail)
    assert await transactions.read(replica, _count) == 0
    await transactions.write(first, lambda conn: conn.execute(rows.insert().values(key="k", n=7)))
    assert await transactions.read(replica, _count) == 7
    async with first.connect() as conn:  # the async engine reads the same file
        assert (await conn.execute(text("SELECT n FROM rows"))).scalar() == 7


async def test_a_keyed_write_is_done_once_however_many_ask_at_once(engines) -> None:  # type: ignore[no-untyped-def]
    first, replica = engines

    def find(conn: Connection) -> int | None:
        return conn.scalar(select(rows.c.n).where(rows.c.key == "k"))

    def make(n: int):  # type: ignore[no-untyped-def]
        def insert(conn: Connection) -> int | None:
            return n if transactions.insert_new(conn, rows, {"key": "k", "n": n}, ["key"]) else None

        return insert

    answers = await asyncio.gather(
        *(transactions.once((first, replica)[n % 2], find, make(n)) for n in range(1, 21))
    )
    made = [n for n, created in answers if created]
    assert len(made) == 1 and {n for n, _ in answers} == set(made)
    assert await transactions.read(first, _count) == made[0]


def test_a_keyed_insert_fills_defaults_and_is_compiled_once() -> None:
    """insert_new gives left-out columns their defaults, as insert() does, and its statement
    is SQLAlchemy-cached (the dialect's ON CONFLICT construct was compiled for every row)."""
    table = Table(
        "flags",
        MetaData(),
        Column("key", String(32), primary_key=True),
        Column("label", String(32)),
        Column("done", Boolean, nullable=False, default=False),
        Column("tries", Integer, nullable=False, default=3),
    )
    engine = create_engine("sqlite://")
    table.metadata.create_all(engine)
    hits = []
    event.listen(engine, "after_execute", lambda *a: hits.append(a[-1].context.cache_hit))
    with engine.begin() as conn:
        assert transactions.insert_new(conn, table, {"key": "a", "label": "x"}, ["key"])
        assert transactions.insert_new(conn, table, {"key": "b", "label": "y"}, ["key"])
        assert not transactions.insert_new(conn, table, {"key": "a", "label": "z"}, ["key"])
        found = conn.execute(select(table).order_by(table.c.key)).all()
    assert [tuple(r) for r in found] == [("a", "x", False, 3), ("b", "y", False, 3)]
    assert hits[1:3] == [CacheStats.CACHE_HIT, CacheStats.CACHE_HIT]


async def test_reads_and_the_readiness_ping_wait_for_no_writer(tmp_path: Path) -> None:
    """A read begins with a plain BEGIN: while another process holds the write lock (a replica
    committing), reads and the readiness ping answer at once instead of waiting for it."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'shop.db'}"
    engine = make_engine(url, busy_ms=50)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    writer = sqlite3.connect(tmp_path / "shop.db", isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO rows (key, n) VALUES ('k', 1)")
    try:
        await db._ping(engine)
        assert await transactions.read(engine, _count) == 0  # the writer's row is not committed
    finally:
        writer.execute("ROLLBACK")
        writer.close()
        await transactions.close(engine)
        await engine.dispose()
