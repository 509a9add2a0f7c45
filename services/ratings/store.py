"""SQL access for ratings: one row per rated order line, and each product's summary."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, Index, Integer, MetaData, String, Table, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

metadata = MetaData()

ratings = Table(
    "ratings",
    metadata,
    # One rating per order line: the order and the product are the key.
    Column("order_id", String(32), primary_key=True),
    Column("product_id", String(64), primary_key=True),
    Column("user_id", String(64), nullable=False),
    Column("rating", Integer, nullable=False),
    Column("created_at", String(32), nullable=False),
    Index("ix_ratings_product", "product_id"),
)

Rating = dict[str, Any]


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def get(engine: AsyncEngine, order_id: str, product_id: str) -> Rating | None:
    async with engine.connect() as conn:
        row = (
            (
                await conn.execute(
                    select(ratings).where(
                        ratings.c.order_id == order_id, ratings.c.product_id == product_id
                    )
                )
            )
            .mappings()
            .first()
        )
    return dict(row) if row else None


async def add(
    engine: AsyncEngine, user: str, order_id: str, product_id: str, rating: int
) -> tuple[Rating, bool]:
    """``(the rating, True)`` when written now; ``(the earlier one, False)`` when the order line
    was rated before (also by a concurrent request that won the race)."""
    row = {
        "order_id": order_id,
        "product_id": product_id,
        "user_id": user,
        "rating": rating,
        "created_at": now(),
    }
    try:
        async with engine.begin() as conn:
            await conn.execute(ratings.insert().values(**row))
    except IntegrityError:
        earlier = await get(engine, order_id, product_id)
        if earlier is None:
            raise
        return earlier, False
    return row, True


async def summary(engine: AsyncEngine, product_id: str) -> tuple[int, int]:
    """``(how many ratings, their sum)`` for the product."""
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(func.count(), func.coalesce(func.sum(ratings.c.rating), 0)).where(
                    ratings.c.product_id == product_id
                )
            )
        ).one()
    return int(row[0]), int(row[1])


async def of_order(engine: AsyncEngine, user: str, order_id: str) -> list[Rating]:
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(ratings)
                .where(ratings.c.order_id == order_id, ratings.c.user_id == user)
                .order_by(ratings.c.product_id)
            )
        ).mappings()
        return [dict(r) for r in rows]
