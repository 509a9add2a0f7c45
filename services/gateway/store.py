"""Users in SQL: id, e-mail (unique, lower case), password hash, creation time."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, MetaData, String, Table, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

metadata = MetaData()

users = Table(
    "users",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("email", String(254), nullable=False, unique=True),
    Column("password_hash", String(256), nullable=False),
    Column("created_at", String(32), nullable=False),
)


class EmailTaken(Exception):
    """An account with this e-mail already exists."""


async def add_user(engine: AsyncEngine, user: dict[str, str], password_hash: str) -> None:
    """Insert ``user`` (id, email, created_at); the UNIQUE e-mail settles racing sign-ups."""
    try:
        async with engine.begin() as conn:
            await conn.execute(insert(users).values(**user, password_hash=password_hash))
    except IntegrityError:
        raise EmailTaken(user["email"]) from None


async def user_by_email(engine: AsyncEngine, email: str) -> dict[str, Any] | None:
    async with engine.connect() as conn:
        row = (await conn.execute(select(users).where(users.c.email == email))).first()
    return dict(row._mapping) if row else None


async def user_by_id(engine: AsyncEngine, user_id: str) -> dict[str, Any] | None:
    async with engine.connect() as conn:
        row = (await conn.execute(select(users).where(users.c.id == user_id))).first()
    return dict(row._mapping) if row else None
