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
from email.charset import QP, Charset
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from functools import partial
from pathlib import Path
from typing import Any

from aiohttp import web
from opentelemetry.instrumentation.utils import suppress_instrumentation
from sqlalchemy.engine import Connection

from services import kit
from services.kit import transactions

from . import render, store

log = logging.getLogger("boutique.email")
WAKE: web.AppKey[asyncio.Event] = web.AppKey("email_wake", asyncio.Event)
OUTBOX: web.AppKey[Path] = web.AppKey("email_outbox", Path)
FROM = "Mesh Boutique <orders@boutique.local>"
IDLE_S = 5.0  # with nothing due, look again at least this often
MAX_BACKOFF_S = 60.0
# After a wake-up, e-mails queued meanwhile join the same round: a confirmation goes out about a
# second after it is queued. Each round has a fixed cost (a transaction with its commit, timers,
# a hand-over); at 10 checkouts a second a 1 s pause instead of 0.2 s made an e-mail about 0.9
# CPU-ms cheaper (3.3-3.45 -> 2.4-2.45, the email app alone), for 0.8 s more before it is sent.
GATHER_S = 1.0
_UTF8 = Charset("utf-8")
_UTF8.body_encoding = QP  # readable where it is ASCII (base64 is the default for UTF-8)


def backoff(attempts: int) -> float:
    """Seconds before the next try after ``attempts`` failed ones: 1, 2, 4, ... 60."""
    return min(MAX_BACKOFF_S, 2.0 ** (attempts - 1))


def mime(row: store.Email, text: str, html: str) -> bytes:
    """The e-mail as a MIME message: text and HTML alternatives, UTF-8, quoted-printable.

    Built with the standard library's ``email.mime`` classes (the ``compat32`` policy): a
    quarter of the CPU of ``EmailMessage``, whose header registry parses every header it is
    given (about 1 CPU-ms an e-mail here); it still encodes a non-ASCII header (RFC 2047)."""
    message = MIMEMultipart("alternative")
    message["From"] = FROM
    message["To"] = f"{row['user_id']}@users.boutique.local"
    message["Subject"] = row["subject"]
    message["Message-ID"] = f"<{row['id']}@boutique.local>"
    message.attach(MIMEText(text, "plain", _UTF8))
    message.attach(MIMEText(html, "html", _UTF8))
    return message.as_bytes()


def deliver(outbox: Path, row: store.Email, text: str, html: str) -> None:
    """Write the e-mail to the outbox as a MIME message (text and HTML alternatives)."""
    folder = outbox / row["user_id"]
    folder.mkdir(parents=True, exist_ok=True)
    part = folder / f".{row['id']}.eml.tmp"
    part.write_bytes(mime(row, text, html))
    part.replace(folder / f"{row['id']}.eml")  # whole or not at all


def send_due(conn: Connection, outbox: Path) -> float | None:
    """One round, whole in one write transaction (so one hand-over to the store's thread): every
    due e-mail rendered and written to the outbox once, the outcomes recorded; when the next
    queued one is due. A delivered e-mail whose record is lost (a crash before the commit) is
    delivered again later under the same file name, so the outbox never holds it twice."""
    rows, upcoming = store.due(conn)
    sent: list[store.Sent] = []
    failed: list[store.Failed] = []
    for row in rows:
        try:
            text, html = render.confirmation(_payload(row))
            deliver(outbox, row, text, html)
        except Exception as exc:  # noqa: BLE001 - a template or disk error: keep it queued
            failed.append(_failure(row, f"{type(exc).__name__}: {exc}"))
        else:
            sent.append((row["id"], text, html))
    store.settle(conn, sent, failed)
    if failed:
        soonest = min(at for _, _, at, _ in failed)
        upcoming = soonest if upcoming is None else min(upcoming, soonest)
    return upcoming


def _failure(row: store.Email, why: str) -> store.Failed:
    attempts = row["attempts"] + 1
    log.warning("email %s: attempt %d failed (%s)", row["id"], attempts, why)
    return row["id"], attempts, time.time() + backoff(attempts), why


async def run(app: web.Application) -> None:
    """Rounds: when woken by a new e-mail (after a short pause, so e-mails queued together go
    out in one round), when the next retry is due, and at least every ``IDLE_S``. The rounds'
    own SQL is not traced: it belongs to no request, and would be a trace of its own each."""
    engine, wake, outbox = app[kit.DB], app[WAKE], app[OUTBOX]
    while True:
        try:
            with suppress_instrumentation():
                upcoming = await transactions.write(engine, partial(send_due, outbox=outbox))
        except Exception:  # a store hiccup (busy, locked): the queue is still there, look again
            log.exception("email sender: a round failed")
            upcoming = None
        wait = IDLE_S if upcoming is None else max(0.0, min(IDLE_S, upcoming - time.time()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), timeout=wait)
            await asyncio.sleep(GATHER_S)
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
