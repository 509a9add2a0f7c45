"""SQL access for e-mails: the queue and the record of what was sent, one row per e-mail."""

from __future__ import annotations

import json
import secrets
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.kit.idempotency import once

metadata = MetaData()

emails = Table(
    "emails",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("id", String(32), nullable=False, unique=True),
    Column("user_id", String(64), nullable=False),
    Column("idempotency_key", String(128), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("order_id", String(64), nullable=False),
    Column("subject", String(200), nullable=False),
    Column("payload", Text, nullable=False),  # what the templates are rendered with (JSON)
    Column("status", String(16), nullable=False),  # queued, then sent
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", Float, nullable=False),  # epoch seconds: when the sender tries
    Column("last_error", String(200), nullable=True),
    Column("text_body", Text, nullable=True),
    Column("html_body", Text, nullable=True),
    Column("created_at", String(32), nullable=False),
    Column("sent_at", String(32), nullable=True),
    UniqueConstraint("user_id", "idempotency_key", name="uq_emails_user_key"),
    sqlite_autoincrement=True,
)

Email = dict[str, Any]


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def enqueue(
    engine: AsyncEngine, user: str, key: str, *, order_id: str, subject: str, payload: Any
) -> tuple[Email, bool]:
    """The e-mail for ``(user, key)``: queued now (``True``) or the one queued before."""

    async def find(conn: AsyncConnection) -> Email | None:
        return await _one(conn, emails.c.user_id == user, emails.c.idempotency_key == key)

    async def make(conn: AsyncConnection) -> Email:
        email_id = "em_" + secrets.token_hex(12)
        await conn.execute(
            emails.insert().values(
                id=email_id,
                user_id=user,
                idempotency_key=key,
                kind="order_confirmation",
                order_id=order_id,
                subject=subject,
                payload=json.dumps(payload),
                status="queued",
                attempts=0,
                next_attempt_at=time.time(),
                created_at=now(),
            )
        )
        made = await _one(conn, emails.c.id == email_id)
        assert made is not None
        return made

    return await once(engine, find, make)


async def due(engine: AsyncEngine, limit: int = 20) -> list[Email]:
    """Queued e-mails whose next attempt is due, oldest first."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(emails)
            .where(emails.c.status == "queued", emails.c.next_attempt_at <= time.time())
            .order_by(emails.c.seq)
            .limit(limit)
        )
        return [dict(row) for row in rows.mappings()]


async def next_due(engine: AsyncEngine) -> float | None:
    """When the earliest queued e-mail is due (epoch seconds), None when none is queued."""
    async with engine.connect() as conn:
        return await conn.scalar(
            select(func.min(emails.c.next_attempt_at)).where(emails.c.status == "queued")
        )


async def mark_sent(engine: AsyncEngine, email_id: str, text: str, html: str) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            update(emails)
            .where(emails.c.id == email_id, emails.c.status == "queued")
            .values(status="sent", text_body=text, html_body=html, sent_at=now(), last_error=None)
        )


async def mark_failed(
    engine: AsyncEngine, email_id: str, attempts: int, at: float, why: str
) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            update(emails)
            .where(emails.c.id == email_id, emails.c.status == "queued")
            .values(attempts=attempts, next_attempt_at=at, last_error=why[:200])
        )


async def get(engine: AsyncEngine, user: str, email_id: str) -> Email | None:
    async with engine.connect() as conn:
        return await _one(conn, emails.c.id == email_id, emails.c.user_id == user)


async def page(engine: AsyncEngine, user: str, limit: int, offset: int) -> tuple[list[Email], int]:
    async with engine.connect() as conn:
        total = await conn.scalar(
            select(func.count()).select_from(emails).where(emails.c.user_id == user)
        )
        rows = await conn.execute(
            select(emails)
            .where(emails.c.user_id == user)
            .order_by(emails.c.seq.desc())
            .limit(limit)
            .offset(offset)
        )
        return [dict(row) for row in rows.mappings()], int(total or 0)


async def _one(conn: AsyncConnection, *where: Any) -> Email | None:
    row = (await conn.execute(select(emails).where(*where))).mappings().first()
    return dict(row) if row is not None else None


def summary(row: Email) -> dict[str, Any]:
    """An e-mail as a list shows it."""
    return {
        "id": row["id"],
        "kind": row["kind"],
        "order_id": row["order_id"],
        "subject": row["subject"],
        "status": row["status"],
        "attempts": row["attempts"],
        "created_at": row["created_at"],
        "sent_at": row["sent_at"],
    }


def public(row: Email) -> dict[str, Any]:
    """An e-mail with its bodies (null while it is queued)."""
    return {**summary(row), "text": row["text_body"], "html": row["html_body"]}
