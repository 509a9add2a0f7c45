"""SQL access for charges: brand and last four digits only, never a card number or cvc."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from services.kit import transactions

from .cards import CardFacts

metadata = MetaData()

charges = Table(
    "charges",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("user_id", String(64), nullable=False),
    Column("idempotency_key", String(128), nullable=False),
    Column("order_id", String(64), nullable=False),
    Column("amount_cents", Integer, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("status", String(16), nullable=False),
    Column("brand", String(16), nullable=False),
    Column("last4", String(4), nullable=False),
    Column("exp_month", Integer, nullable=False),
    Column("exp_year", Integer, nullable=False),
    Column("decline_code", String(32), nullable=True),
    # True once the order is confirmed paid and the cart cleared: a repeat then changes nothing.
    Column("settled", Boolean, nullable=False, default=False),
    Column("created_at", String(32), nullable=False),
    Column("updated_at", String(32), nullable=False),
    UniqueConstraint("user_id", "idempotency_key", name="uq_charges_user_key"),
)

Charge = dict[str, Any]


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def by_key(engine: AsyncEngine, user: str, key: str) -> Charge | None:
    return await transactions.read(
        engine,
        lambda conn: _one(conn, charges.c.user_id == user, charges.c.idempotency_key == key),
    )


async def record(
    engine: AsyncEngine,
    user: str,
    key: str,
    *,
    order_id: str,
    amount_cents: int,
    currency: str,
    card: CardFacts,
) -> tuple[Charge, bool]:
    """Record the decided charge (committed): ``(charge, True)``; or ``(the charge recorded
    before, False)`` when the key already had one (nothing is written then)."""

    def find(conn: Connection) -> Charge | None:
        return _one(conn, charges.c.user_id == user, charges.c.idempotency_key == key)

    def make(conn: Connection) -> Charge | None:
        stamp = now()
        row = {
            "id": "ch_" + secrets.token_hex(12),
            "user_id": user,
            "idempotency_key": key,
            "order_id": order_id,
            "amount_cents": amount_cents,
            "currency": currency,
            "status": "declined" if card.decline_code else "succeeded",
            "brand": card.brand,
            "last4": card.last4,
            "exp_month": card.exp_month,
            "exp_year": card.exp_year,
            "decline_code": card.decline_code,
            "settled": card.decline_code is not None,
            "created_at": stamp,
            "updated_at": stamp,
        }
        keys = ["user_id", "idempotency_key"]
        return row if transactions.insert_new(conn, charges, row, keys) else None

    return await transactions.once(engine, find, make)


async def refund(engine: AsyncEngine, charge_id: str) -> None:
    """A succeeded charge whose order cannot be paid gives the money back."""
    await transactions.write(
        engine,
        lambda conn: conn.execute(
            update(charges)
            .where(charges.c.id == charge_id, charges.c.status == "succeeded")
            .values(status="refunded", settled=True, updated_at=now())
        ),
    )


async def mark_settled(engine: AsyncEngine, charge_id: str) -> None:
    await transactions.write(
        engine,
        lambda conn: conn.execute(
            update(charges).where(charges.c.id == charge_id).values(settled=True, updated_at=now())
        ),
    )


def _one(conn: Connection, *where: Any) -> Charge | None:
    row = conn.execute(select(charges).where(*where)).mappings().first()
    return dict(row) if row is not None else None


def public(row: Charge) -> dict[str, Any]:
    """The Charge as the API shows it."""
    return {
        "id": row["id"],
        "order_id": row["order_id"],
        "amount_cents": row["amount_cents"],
        "currency": row["currency"],
        "status": row["status"],
        "card": {
            "brand": row["brand"],
            "last4": row["last4"],
            "exp_month": row["exp_month"],
            "exp_year": row["exp_year"],
        },
        "decline_code": row["decline_code"],
        "created_at": row["created_at"],
    }
