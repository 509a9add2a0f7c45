"""The background sender: delivers queued e-mails to the outbox, retrying failures with back-off.

The caller (the checkout) never waits for this and never retries: ``POST /emails`` only queues
(one INSERT) and answers 202. Here each due e-mail is rendered and written to the outbox, a
folder of ``.eml`` files (``EMAIL_OUTBOX_DIR``, like a mail drop a relay would pick up); a failure
leaves it queued with its next attempt 1 s, 2 s, 4 s ... (at most 60 s) later. Nothing queued is
lost: the queue is the SQLite table, so a restart picks up where the last run stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from services import kit

from . import render, store

log = logging.getLogger("boutique.email")
WAKE: web.AppKey[asyncio.Event] = web.AppKey("email_wake", asyncio.Event)
OUTBOX: web.AppKey[Path] = web.AppKey("email_outbox", Path)
FROM = "Mesh Boutique <orders@boutique.local>"
IDLE_S = 5.0  # with nothing due, look again at least this often
MAX_BACKOFF_S = 60.0


def backoff(attempts: int) -> float:
    """Seconds before the next try after ``attempts`` failed ones: 1, 2, 4, ... 60."""
    return min(MAX_BACKOFF_S, 2.0 ** (attempts - 1))


def deliver(outbox: Path, row: store.Email, text: str, html: str) -> None:
    """Write the e-mail to the outbox as a MIME message (text and HTML alternatives)."""
    message = EmailMessage()
    message["From"] = FROM
    message["To"] = f"{row['user_id']}@users.boutique.local"
    message["Subject"] = row["subject"]
    message["Message-ID"] = f"<{row['id']}@boutique.local>"
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    folder = outbox / row["user_id"]
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f".{row['id']}.eml.tmp"
    partial.write_bytes(bytes(message))
    partial.replace(folder / f"{row['id']}.eml")  # whole or not at all


async def send_due(engine: AsyncEngine, outbox: Path) -> int:
    """Try every due e-mail once; how many were sent."""
    sent = 0
    for row in await store.due(engine):
        try:
            text, html = render.confirmation(_payload(row))
            await asyncio.to_thread(deliver, outbox, row, text, html)
        except Exception as exc:  # noqa: BLE001 - any failure: keep it queued, try later
            attempts = row["attempts"] + 1
            why = f"{type(exc).__name__}: {exc}"
            log.warning("email %s: attempt %d failed (%s)", row["id"], attempts, why)
            await store.mark_failed(
                engine, row["id"], attempts, time.time() + backoff(attempts), why
            )
            continue
        await store.mark_sent(engine, row["id"], text, html)
        sent += 1
    return sent


async def run(app: web.Application) -> None:
    engine, wake = app[kit.DB], app[WAKE]
    while True:
        try:
            await send_due(engine, app[OUTBOX])
            upcoming = await store.next_due(engine)
        except Exception:  # a store hiccup (busy, locked): the queue is still there, look again
            log.exception("email sender: a round failed")
            upcoming = None
        wait = IDLE_S if upcoming is None else max(0.0, min(IDLE_S, upcoming - time.time()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), timeout=wait)
        wake.clear()


async def sender_context(app: web.Application) -> AsyncIterator[None]:
    """``cleanup_ctx`` (after the database's): the sender runs as long as the app."""
    app[WAKE] = asyncio.Event()
    task = asyncio.create_task(run(app), name="email-sender")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _payload(row: store.Email) -> dict[str, Any]:
    return json.loads(row["payload"])
