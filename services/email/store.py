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
    bindparam,
    func,
    select,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from services.kit import transactions

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
Sent = tuple[str, str, str]  # id, text, html
Failed = tuple[str, int, float, str]  # id, attempts so far, next attempt (epoch s), why


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def enqueue(
    engine: AsyncEngine, user: str, key: str, *, order_id: str, subject: str, payload: Any
) -> tuple[Email, bool]:
    """The e-mail for ``(user, key)``: queued now (``True``) or the one queued before. One
    transaction, one INSERT on a first try: the row is answered as written, not read back."""

    def find(conn: Connection) -> Email | None:
        return _one(conn, emails.c.user_id == user, emails.c.idempotency_key == key)

    def make(conn: Connection) -> Email | None:
        row: Email = {
            "id": "em_" + secrets.token_hex(12),
            "user_id": user,
            "idempotency_key": key,
            "kind": "order_confirmation",
            "order_id": order_id,
            "subject": subject,
            "payload": json.dumps(payload),
            "status": "queued",
            "attempts": 0,
            "next_attempt_at": time.time(),
            "last_error": None,
            "text_body": None,
            "html_body": None,
            "created_at": now(),
            "sent_at": None,
        }
        keys = ["user_id", "idempotency_key"]
        return row if transactions.insert_new(conn, emails, row, keys) else None

    return await transactions.once(engine, find, make)


def due(conn: Connection, limit: int = 50) -> tuple[list[Email], float | None]:
    """Queued e-mails whose next attempt is due, oldest first, and when the earliest of the
    others is due (epoch seconds; None when no other is queued)."""
    at = time.time()
    queued = emails.c.status == "queued"
    rows = conn.execute(
        select(emails)
        .where(queued, emails.c.next_attempt_at <= at)
        .order_by(emails.c.seq)
        .limit(limit)
    )
    ready = [dict(row) for row in rows.mappings()]
    later = conn.scalar(
        select(func.min(emails.c.next_attempt_at)).where(queued, emails.c.next_attempt_at > at)
    )
    return ready, (at if len(ready) == limit else later)


def settle(conn: Connection, sent: list[Sent], failed: list[Failed]) -> None:
    """Record a round's outcomes (only e-mails still queued change)."""
    still = (emails.c.id == bindparam("e_id"), emails.c.status == "queued")
    if sent:
        conn.execute(
            update(emails)
            .where(*still)
            .values(
                status="sent",
                text_body=bindparam("text"),
                html_body=bindparam("html"),
                sent_at=now(),
                last_error=None,
            ),
            [{"e_id": i, "text": t, "html": h} for i, t, h in sent],
        )
    if failed:
        conn.execute(
            update(emails)
            .where(*still)
            .values(
                attempts=bindparam("tries"),
                next_attempt_at=bindparam("at"),
                last_error=bindparam("why"),
            ),
            [{"e_id": i, "tries": n, "at": at, "why": why[:200]} for i, n, at, why in failed],
        )


async def get(engine: AsyncEngine, user: str, email_id: str) -> Email | None:
    return await transactions.read(
        engine, lambda conn: _one(conn, emails.c.id == email_id, emails.c.user_id == user)
    )


async def page(engine: AsyncEngine, user: str, limit: int, offset: int) -> tuple[list[Email], int]:
    def work(conn: Connection) -> tuple[list[Email], int]:
        total = conn.scalar(
            select(func.count()).select_from(emails).where(emails.c.user_id == user)
        )
        rows = conn.execute(
            select(emails)
            .where(emails.c.user_id == user)
            .order_by(emails.c.seq.desc())
            .limit(limit)
            .offset(offset)
        )
        return [dict(row) for row in rows.mappings()], int(total or 0)

    return await transactions.read(engine, work)


def _one(conn: Connection, *where: Any) -> Email | None:
    row = conn.execute(select(emails).where(*where)).mappings().first()
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
