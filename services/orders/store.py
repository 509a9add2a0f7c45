"""SQL access for orders: tables, and each write as one short transaction."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    func,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from services.kit import transactions

metadata = MetaData()

orders = Table(
    "orders",
    metadata,
    # seq gives "newest first" a total order, even within one second.
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("id", String(32), nullable=False, unique=True),
    Column("user_id", String(64), nullable=False),
    Column("idempotency_key", String(128), nullable=False),
    Column("status", String(16), nullable=False),
    Column("total_cents", Integer, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("created_at", String(32), nullable=False),
    Column("updated_at", String(32), nullable=False),
    Column("charge_id", String(64), nullable=True),
    Column("cancel_reason", String(200), nullable=True),
    # shipping, in the order's currency (null: no shipping), and its tracking id once shipped
    Column("shipping_cents", Integer, nullable=True),
    Column("tracking_id", String(64), nullable=True),
    UniqueConstraint("user_id", "idempotency_key", name="uq_orders_user_key"),
    sqlite_autoincrement=True,
)

order_items = Table(
    "order_items",
    metadata,
    Column("order_id", String(32), ForeignKey("orders.id"), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("product_id", String(100), nullable=False),
    Column("name", String(200), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("unit_price_cents", Integer, nullable=False),
    Column("line_total_cents", Integer, nullable=False),
)

Order = dict[str, Any]


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_order_id() -> str:
    return "ord_" + secrets.token_hex(12)


async def create(
    engine: AsyncEngine,
    user: str,
    key: str,
    items: list[dict[str, Any]],
    currency: str,
    shipping_cents: int | None = None,
) -> tuple[Order, bool]:
    """The order for ``(user, key)``: created now (``True``) or the one made before (``False``)."""

    def find(conn: Connection) -> Order | None:
        return _one(conn, orders.c.user_id == user, orders.c.idempotency_key == key)

    def make(conn: Connection) -> Order | None:
        order_id, stamp = new_order_id(), now()
        lines = [
            {**item, "line_total_cents": item["quantity"] * item["unit_price_cents"]}
            for item in items
        ]
        row = {
            "id": order_id,
            "user_id": user,
            "status": "pending",
            "total_cents": sum(line["line_total_cents"] for line in lines) + (shipping_cents or 0),
            "currency": currency,
            "created_at": stamp,
            "updated_at": stamp,
            "charge_id": None,
            "cancel_reason": None,
            "shipping_cents": shipping_cents,
            "tracking_id": None,
        }
        keyed = {**row, "idempotency_key": key}
        if not transactions.insert_new(conn, orders, keyed, ["user_id", "idempotency_key"]):
            return None  # made before: ``find`` answers it
        conn.execute(
            order_items.insert(),
            [{"order_id": order_id, "position": i, **line} for i, line in enumerate(lines)],
        )
        return _public({**row, "items": [_item(line) for line in lines]})

    return await transactions.once(engine, find, make)


async def get(engine: AsyncEngine, user: str, order_id: str) -> Order | None:
    return await transactions.read(
        engine, lambda conn: _one(conn, orders.c.id == order_id, orders.c.user_id == user)
    )


async def by_key(engine: AsyncEngine, user: str, key: str) -> Order | None:
    return await transactions.read(
        engine,
        lambda conn: _one(conn, orders.c.user_id == user, orders.c.idempotency_key == key),
    )


async def page(engine: AsyncEngine, user: str, limit: int, offset: int) -> tuple[list[Order], int]:
    """The user's orders, newest first, and how many there are in all."""

    def work(conn: Connection) -> tuple[list[Order], int]:
        total = conn.scalar(
            select(func.count()).select_from(orders).where(orders.c.user_id == user)
        )
        rows = conn.execute(
            select(orders)
            .where(orders.c.user_id == user)
            .order_by(orders.c.seq.desc())
            .limit(limit)
            .offset(offset)
        ).mappings()
        found = [dict(row) for row in rows]
        _attach_items(conn, found)
        return [_public(row) for row in found], int(total or 0)

    return await transactions.read(engine, work)


async def transition(
    engine: AsyncEngine, user: str, order_id: str, status: str, **values: str
) -> tuple[Order | None, bool]:
    """Move a pending order to ``status``; ``(order, moved)``, ``(None, False)`` if unknown.

    One conditional UPDATE: only a pending order moves, so concurrent pay and cancel cannot both
    win; it answers the moved row (RETURNING), so only the items are read. When nothing moved,
    the caller judges the current state.
    """

    def work(conn: Connection) -> tuple[Order | None, bool]:
        moved = (
            conn.execute(
                update(orders)
                .where(
                    orders.c.id == order_id,
                    orders.c.user_id == user,
                    orders.c.status == "pending",
                )
                .values(status=status, updated_at=now(), **values)
                .returning(*orders.c)
            )
            .mappings()
            .first()
        )
        if moved is None:  # unknown, or not pending: the caller judges the order as it is
            return _one(conn, orders.c.id == order_id, orders.c.user_id == user), False
        return _with_items(conn, dict(moved)), True

    return await transactions.write(engine, work)


async def ship(engine: AsyncEngine, user: str, order_id: str, tracking_id: str) -> Order | None:
    """Set a paid order's tracking id once (one conditional UPDATE); the order as it is now."""

    def work(conn: Connection) -> Order | None:
        shipped = (
            conn.execute(
                update(orders)
                .where(
                    orders.c.id == order_id,
                    orders.c.user_id == user,
                    orders.c.status == "paid",
                    orders.c.tracking_id.is_(None),
                )
                .values(tracking_id=tracking_id, updated_at=now())
                .returning(*orders.c)
            )
            .mappings()
            .first()
        )
        if shipped is not None:
            return _with_items(conn, dict(shipped))
        return _one(conn, orders.c.id == order_id, orders.c.user_id == user)

    return await transactions.write(engine, work)


def _one(conn: Connection, *where: Any) -> Order | None:
    row = conn.execute(select(orders).where(*where)).mappings().first()
    return None if row is None else _with_items(conn, dict(row))


def _with_items(conn: Connection, found: dict[str, Any]) -> Order:
    items = conn.execute(
        select(order_items)
        .where(order_items.c.order_id == found["id"])
        .order_by(order_items.c.position)
    )
    found["items"] = [_item(item) for item in items.mappings()]
    return _public(found)


def _attach_items(conn: Connection, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    by_id = {row["id"]: row for row in rows}
    for row in rows:
        row["items"] = []
    result = conn.execute(
        select(order_items)
        .where(order_items.c.order_id.in_(by_id))
        .order_by(order_items.c.order_id, order_items.c.position)
    )
    for item in result.mappings():
        by_id[item["order_id"]]["items"].append(_item(item))


def _item(item: Any) -> dict[str, Any]:
    return {
        "product_id": item["product_id"],
        "name": item["name"],
        "quantity": item["quantity"],
        "unit_price_cents": item["unit_price_cents"],
        "line_total_cents": item["line_total_cents"],
    }


def _public(row: dict[str, Any]) -> Order:
    return {
        "id": row["id"],
        "user_id": row["user_id"],
        "status": row["status"],
        "items": row["items"],
        "total_cents": row["total_cents"],
        "currency": row["currency"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "charge_id": row["charge_id"],
        "cancel_reason": row["cancel_reason"],
        "shipping_cents": row["shipping_cents"],
        "tracking_id": row["tracking_id"],
    }
