"""The products store (SQL): catalog, stock counters and reservations.

Stock moves only through conditional UPDATEs checked by ``rowcount``, never read-modify-write:
``available -> reserved`` when a reservation is held, ``reserved -> sold`` when it is committed,
``reserved -> available`` when it is released or expires. A reservation changes state only from
``held`` (``UPDATE ... WHERE status = 'held'``), so commit, release and the sweeper can race
without counting twice. ``stocked`` is set once, at seeding; the CHECK constraints keep
``stocked = available + reserved + sold`` and every counter >= 0 in the database itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Column,
    Connection,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from services.kit import transactions

metadata = MetaData()

products = Table(
    "products",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("description", Text, nullable=False),
    Column("price_cents", Integer, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("categories", JSON, nullable=False),
    Column("stocked", Integer, nullable=False),
    Column("available", Integer, nullable=False),
    Column("reserved", Integer, nullable=False),
    Column("sold", Integer, nullable=False),
    CheckConstraint("available >= 0 AND reserved >= 0 AND sold >= 0", name="stock_not_negative"),
    CheckConstraint("stocked = available + reserved + sold", name="stock_balanced"),
)

reservations = Table(
    "reservations",
    metadata,
    Column("key", String(256), primary_key=True),
    Column("status", String(16), nullable=False),
    Column("created_at", Integer, nullable=False),  # Unix seconds, UTC
    Column("expires_at", Integer, nullable=False),
    Index("ix_reservations_status_expires_at", "status", "expires_at"),
)

reservation_items = Table(
    "reservation_items",
    metadata,
    Column("reservation_key", ForeignKey("reservations.key"), primary_key=True),
    Column("product_id", ForeignKey("products.id"), primary_key=True),
    Column("line", Integer, nullable=False),
    Column("quantity", Integer, nullable=False),
)

HELD, COMMITTED, RELEASED, EXPIRED = "held", "committed", "released", "expired"
SWEEP_BATCH = 500


@dataclass(frozen=True)
class Product:
    id: str
    name: str
    description: str
    price_cents: int
    currency: str
    categories: list[str]
    stocked: int
    available: int
    reserved: int
    sold: int


@dataclass(frozen=True)
class Reservation:
    key: str
    status: str
    items: list[tuple[str, int]]  # (product_id, quantity) in the order they were asked for
    created_at: int
    expires_at: int
    # product id -> (name, unit price in cents) now: filled by ``reserve`` only, so the checkout
    # prices its order from the same answer that holds the stock (no catalogue read of its own)
    prices: dict[str, tuple[str, int]] = field(default_factory=dict)


class UnknownProducts(Exception):
    def __init__(self, product_ids: list[str]) -> None:
        super().__init__(product_ids)
        self.product_ids = product_ids


class OutOfStock(Exception):
    def __init__(self, product_id: str, available: int) -> None:
        super().__init__(product_id, available)
        self.product_id = product_id
        self.available = available


# --- catalog ---------------------------------------------------------------------------------


async def seed(engine: AsyncEngine, rows: Iterable[dict[str, Any]]) -> None:
    """Insert the catalog's products that are not there yet (replicas may race: INSERT OR IGNORE).

    Each row has the ``products`` columns except the counters, plus ``stock``.
    """
    values = [
        {k: v for k, v in row.items() if k != "stock"}
        | {"stocked": row["stock"], "available": row["stock"], "reserved": 0, "sold": 0}
        for row in rows
    ]
    if not values:
        return
    dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(products).values(values).on_conflict_do_nothing(index_elements=["id"])
    async with engine.begin() as conn:
        await conn.execute(stmt)


async def all_products(engine: AsyncEngine) -> list[Product]:
    """Every product, sorted by name."""

    def work(conn: Connection) -> list[Product]:
        rows = conn.execute(select(products).order_by(products.c.name, products.c.id))
        return [Product(**row._mapping) for row in rows]

    return await transactions.read(engine, work)


async def products_by_id(engine: AsyncEngine, ids: Sequence[str]) -> dict[str, Product]:
    """The products among ``ids`` that exist, by id."""

    def work(conn: Connection) -> dict[str, Product]:
        rows = conn.execute(select(products).where(products.c.id.in_(ids)))
        return {row.id: Product(**row._mapping) for row in rows}

    return await transactions.read(engine, work)


# --- reservations ----------------------------------------------------------------------------


async def reserve(
    engine: AsyncEngine, key: str, items: Sequence[tuple[str, int]], *, now: float, ttl: int
) -> tuple[Reservation, bool]:
    """Hold every item's stock under ``key``, all or nothing, in one transaction.

    Returns ``(reservation, created)``; when ``key`` exists, the stored reservation and False
    (nothing changes). Raises :class:`UnknownProducts` or :class:`OutOfStock`; either rolls back
    the whole transaction, so nothing is held.
    """
    created_at = int(now)

    def find(conn: Connection) -> Reservation | None:
        found = _load(conn, key)
        if found is None:
            return None
        return replace(found, prices=_prices(conn, [pid for pid, _ in found.items]))

    def make(conn: Connection) -> Reservation | None:
        prices = _hold(conn, key, items, created_at, created_at + ttl)
        if prices is None:
            return None  # held before: ``find`` answers it
        return Reservation(key, HELD, list(items), created_at, created_at + ttl, prices)

    return await transactions.once(engine, find, make)


def _hold(
    conn: Connection,
    key: str,
    items: Sequence[tuple[str, int]],
    created_at: int,
    expires_at: int,
) -> dict[str, tuple[str, int]] | None:
    """Hold the items' stock; their names and prices, as each hold's UPDATE answered them (None
    when ``key`` was held before: nothing changes)."""
    # The reservation row first: a concurrent insert of the same key waits on it
    # (PostgreSQL) and then does nothing, instead of holding stock twice.
    row = {"key": key, "status": HELD, "created_at": created_at, "expires_at": expires_at}
    if not transactions.insert_new(conn, reservations, row, ["key"]):
        return None
    prices: dict[str, tuple[str, int]] = {}
    for pid, quantity in sorted(items):  # one lock order for every writer
        held = conn.execute(
            update(products)
            .where(products.c.id == pid, products.c.available >= quantity)
            .values(
                available=products.c.available - quantity,
                reserved=products.c.reserved + quantity,
            )
            .returning(products.c.name, products.c.price_cents)
        ).first()
        if held is None:
            raise _why_not_held(conn, [p for p, _ in items], pid)
        prices[pid] = (held.name, held.price_cents)
    conn.execute(
        reservation_items.insert(),
        [
            {"reservation_key": key, "product_id": pid, "line": n, "quantity": quantity}
            for n, (pid, quantity) in enumerate(items)
        ],
    )
    return prices


def _why_not_held(conn: Connection, ids: list[str], short: str) -> Exception:
    """Why a hold failed: the items' products that do not exist, else ``short``'s stock."""
    if unknown := [pid for pid in ids if pid not in _prices(conn, ids)]:
        return UnknownProducts(unknown)
    available = conn.execute(select(products.c.available).where(products.c.id == short))
    return OutOfStock(short, available.scalar_one())


def _prices(conn: Connection, ids: Sequence[str]) -> dict[str, tuple[str, int]]:
    rows = conn.execute(
        select(products.c.id, products.c.name, products.c.price_cents).where(products.c.id.in_(ids))
    )
    return {pid: (name, price) for pid, name, price in rows}


async def get_reservation(engine: AsyncEngine, key: str) -> Reservation | None:
    return await transactions.read(engine, lambda conn: _load(conn, key))


async def commit(engine: AsyncEngine, key: str) -> Reservation | None:
    """``held -> committed``, moving its items' stock from reserved to sold.

    Returns the reservation as it is afterwards (any status; the caller judges), or None.
    """
    return await transactions.write(engine, lambda conn: _leave_held(conn, key, COMMITTED))


async def release(engine: AsyncEngine, key: str) -> Reservation | None:
    """``held -> released``, giving its items' stock back. Same answer as :func:`commit`."""
    return await transactions.write(engine, lambda conn: _leave_held(conn, key, RELEASED))


async def expire_due(engine: AsyncEngine, now: float) -> list[str]:
    """``held -> expired`` for reservations whose ``expires_at`` is before ``now``; stock back.

    Returns the keys it expired (at most ``SWEEP_BATCH`` per call, to keep the lock short).
    """

    def work(conn: Connection) -> list[str]:
        due = conn.execute(
            select(reservations.c.key)
            .where(reservations.c.status == HELD, reservations.c.expires_at < now)
            .order_by(reservations.c.expires_at)
            .limit(SWEEP_BATCH)
        )
        expired = [_leave_held(conn, key, EXPIRED) for key in due.scalars().all()]
        return [r.key for r in expired if r is not None and r.status == EXPIRED]

    return await transactions.write(engine, work)


def _leave_held(conn: Connection, key: str, status: str) -> Reservation | None:
    """``held -> status`` with its stock moved (to sold when committed, else back to available);
    the reservation as it is afterwards, or None when there is no such reservation."""
    left = conn.execute(
        update(reservations)
        .where(reservations.c.key == key, reservations.c.status == HELD)
        .values(status=status)
        .returning(reservations.c.created_at, reservations.c.expires_at)
    ).first()
    if left is None:  # not held (any more): as it is
        return _load(conn, key)
    items = _items(conn, key)
    target = products.c.sold if status == COMMITTED else products.c.available
    for pid, quantity in sorted(items):  # one lock order for every writer
        conn.execute(
            update(products)
            .where(products.c.id == pid)
            .values({"reserved": products.c.reserved - quantity, target.key: target + quantity})
        )
    return Reservation(key, status, items, left.created_at, left.expires_at)


def _items(conn: Connection, key: str) -> list[tuple[str, int]]:
    items = conn.execute(
        select(reservation_items.c.product_id, reservation_items.c.quantity)
        .where(reservation_items.c.reservation_key == key)
        .order_by(reservation_items.c.line)
    )
    return [(p, q) for p, q in items.all()]


def _load(conn: Connection, key: str) -> Reservation | None:
    row = (conn.execute(select(reservations).where(reservations.c.key == key))).first()
    if row is None:
        return None
    return Reservation(row.key, row.status, _items(conn, key), row.created_at, row.expires_at)
