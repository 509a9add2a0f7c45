"""A store made by an older version of a service still opens: missing columns are added."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table

from services.kit import db, schema
from services.orders import store

# The orders tables as they were before issue 16 (no shipping line, no tracking id).
OLD_ORDERS = """
CREATE TABLE orders (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, id VARCHAR(32) NOT NULL UNIQUE,
  user_id VARCHAR(64) NOT NULL, idempotency_key VARCHAR(128) NOT NULL,
  status VARCHAR(16) NOT NULL, total_cents INTEGER NOT NULL, currency VARCHAR(3) NOT NULL,
  created_at VARCHAR(32) NOT NULL, updated_at VARCHAR(32) NOT NULL,
  charge_id VARCHAR(64), cancel_reason VARCHAR(200));
CREATE TABLE order_items (
  order_id VARCHAR(32) NOT NULL REFERENCES orders (id), position INTEGER NOT NULL,
  product_id VARCHAR(100) NOT NULL, name VARCHAR(200) NOT NULL, quantity INTEGER NOT NULL,
  unit_price_cents INTEGER NOT NULL, line_total_cents INTEGER NOT NULL,
  PRIMARY KEY (order_id, position));
INSERT INTO orders VALUES (1, 'ord_old', 'alice', 'key-old', 'paid', 2500, 'USD',
  '2026-11-01T00:00:00Z', '2026-11-01T00:00:00Z', 'ch_1', NULL);
INSERT INTO order_items VALUES ('ord_old', 0, 'mug', 'Mug', 1, 2500, 2500);
"""


async def test_an_order_made_before_shipping_existed_still_reads_and_ships(tmp_path: Path) -> None:
    path = tmp_path / "orders.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(OLD_ORDERS)
    engine = db.make_engine(f"sqlite+aiosqlite:///{path}")
    try:
        async with engine.begin() as conn:
            await conn.run_sync(store.metadata.create_all)
            added = await conn.run_sync(schema.add_missing_columns, store.metadata)
        assert sorted(added) == ["orders.shipping_cents", "orders.tracking_id"]
        old = await store.get(engine, "alice", "ord_old")
        assert old is not None
        assert (old["total_cents"], old["status"], old["items"][0]["product_id"]) == (
            2500,
            "paid",
            "mug",
        )
        assert old["shipping_cents"] is None and old["tracking_id"] is None
        shipped = await store.ship(engine, "alice", "ord_old", "BP123")
        assert shipped is not None and shipped["tracking_id"] == "BP123"
        async with engine.begin() as conn:  # a second start adds nothing
            assert await conn.run_sync(schema.add_missing_columns, store.metadata) == []
    finally:
        await engine.dispose()


async def test_a_missing_required_column_stops_the_start_with_a_clear_error(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE things (id INTEGER PRIMARY KEY)")
        conn.execute("INSERT INTO things VALUES (1)")
    metadata = MetaData()
    Table("things", metadata, Column("id", Integer, primary_key=True))
    Table("things", metadata, Column("kind", String(8), nullable=False), extend_existing=True)
    engine = db.make_engine(f"sqlite+aiosqlite:///{path}")
    try:
        async with engine.begin() as conn:
            with pytest.raises(schema.OutdatedStore, match=r"things\.kind.*--fresh"):
                await conn.run_sync(schema.add_missing_columns, metadata)
    finally:
        await engine.dispose()
    with sqlite3.connect(path) as conn:  # nothing was lost or half-changed
        assert conn.execute("SELECT id FROM things").fetchall() == [(1,)]
