"""Email: confirmations queued at once, rendered (HTML and text), sent to the outbox, retried."""

from __future__ import annotations

import email
from pathlib import Path
from typing import Any

import pytest

from services.email import render, sender
from tests.asserts import ok, problem
from tests.conftest import ServiceFactory
from tests.contract import ContractClient
from tests.polling import eventually

ALICE = {"X-User-Id": "u_alice"}
BOB = {"X-User-Id": "u_bob"}
ORDER = {
    "id": "ord_5d41402abc4b2a76b9719d91",
    "created_at": "2026-12-04T20:00:00Z",
    "currency": "EUR",
    "items": [
        {"name": "Speckled Mug", "quantity": 2, "unit_price_cents": 1152, "line_total_cents": 2304},
        {"name": "<b>Bold</b> & co", "quantity": 1, "unit_price_cents": 5, "line_total_cents": 5},
    ],
    "shipping_cents": 1564,
    "total_cents": 3873,
    "tracking_id": "BP0123456789ABCDEF01",
}


def keyed(user: dict[str, str], key: str = "u_alice.checkout-0001") -> dict[str, str]:
    return {**user, "Idempotency-Key": key}


async def queue(client: ContractClient, order: dict[str, Any] = ORDER, **kw: Any) -> dict[str, Any]:
    headers = kw.pop("headers", keyed(ALICE))
    return await ok(await client.post("/emails", json={"order": order}, headers=headers), 202)


async def sent(
    client: ContractClient, email_id: str, user: dict[str, str] = ALICE
) -> dict[str, Any]:
    async def probe() -> dict[str, Any]:
        return await ok(await client.get(f"/emails/{email_id}", headers=user))

    return await eventually(probe, lambda e: e["status"] == "sent", what=f"{email_id} sent")


def test_money_is_formatted_with_integer_arithmetic() -> None:
    assert render.money(4599, "EUR") == "45.99 EUR"
    assert render.money(123456789, "USD") == "1,234,567.89 USD"
    assert render.money(5, "GBP") == "0.05 GBP"


def test_backoff_doubles_up_to_a_minute() -> None:
    assert [sender.backoff(n) for n in (1, 2, 3, 4, 7, 8, 20)] == [1, 2, 4, 8, 60, 60, 60]


def test_the_html_is_escaped_and_the_text_is_not() -> None:
    text, html = render.confirmation(ORDER)
    assert "&lt;b&gt;Bold&lt;/b&gt; &amp; co" in html and "<b>Bold</b>" not in html
    assert "1 x <b>Bold</b> & co @ 0.05 EUR" in text
    for body in (text, html):
        assert "15.64 EUR" in body and "38.73 EUR" in body and "BP0123456789ABCDEF01" in body


async def test_a_confirmation_is_queued_at_once_then_sent(
    service: ServiceFactory, tmp_path: Path
) -> None:
    client = await service("email", EMAIL_OUTBOX_DIR=str(tmp_path / "outbox"))
    queued = await queue(client)
    assert queued["status"] in ("queued", "sent") and queued["order_id"] == ORDER["id"]
    mail = await sent(client, queued["id"])
    assert "Speckled Mug" in mail["text"] and "23.04 EUR" in mail["text"]
    assert "<h1>Thank you for your order!</h1>" in mail["html"]
    assert mail["subject"] == f"Your Mesh Boutique order {ORDER['id']} is confirmed"
    drop = tmp_path / "outbox" / "u_alice" / f"{queued['id']}.eml"
    message = email.message_from_bytes(drop.read_bytes())
    assert message["Subject"] == mail["subject"] and message.is_multipart()
    listed = await ok(await client.get("/emails", headers=ALICE))
    assert [e["id"] for e in listed["emails"]] == [queued["id"]] and listed["total"] == 1


async def test_a_repeat_with_the_key_queues_nothing_more(service: ServiceFactory) -> None:
    client = await service("email")
    first = await queue(client)
    again = await queue(client)
    assert again["id"] == first["id"]
    listed = await ok(await client.get("/emails", headers=ALICE))
    assert listed["total"] == 1


async def test_another_users_emails_are_unknown(service: ServiceFactory) -> None:
    client = await service("email")
    queued = await queue(client)
    await problem(await client.get(f"/emails/{queued['id']}", headers=BOB), 404, "unknown_email")
    await problem(await client.get("/emails/em_nope", headers=ALICE), 404, "unknown_email")
    assert (await ok(await client.get("/emails", headers=BOB)))["emails"] == []


async def test_a_failed_send_stays_queued_and_is_retried_later(
    service: ServiceFactory, tmp_path: Path
) -> None:
    outbox = tmp_path / "outbox"
    outbox.write_text("a file where the outbox folder should be: every send fails")
    client = await service("email", EMAIL_OUTBOX_DIR=str(outbox))
    queued = await queue(client)

    async def probe() -> dict[str, Any]:
        return await ok(await client.get(f"/emails/{queued['id']}", headers=ALICE))

    failing = await eventually(probe, lambda e: e["attempts"] >= 1, what="a failed attempt")
    assert failing["status"] == "queued" and failing["text"] is None
    outbox.unlink()  # the outbox is back: the sender's next try delivers it
    mail = await sent(client, queued["id"])
    assert mail["attempts"] >= 1 and (outbox / "u_alice" / f"{queued['id']}.eml").exists()


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"order": {**ORDER, "items": []}},
        {"order": {**ORDER, "total_cents": -1}},
        {"order": {**ORDER, "currency": "euro"}},
        {"order": {k: v for k, v in ORDER.items() if k != "id"}},
        {"order": ORDER, "to": "someone@example.com"},
    ],
)
async def test_a_bad_confirmation_is_a_422_and_queues_nothing(
    service: ServiceFactory, body: dict[str, Any]
) -> None:
    client = await service("email")
    await problem(await client.post("/emails", json=body, headers=keyed(ALICE)), 422)
    assert (await ok(await client.get("/emails", headers=ALICE)))["total"] == 0


async def test_a_confirmation_needs_a_user_and_a_key(service: ServiceFactory) -> None:
    client = await service("email")
    body = {"order": ORDER}
    await problem(await client.post("/emails", json=body, headers=ALICE), 428)
    await problem(
        await client.post("/emails", json=body, headers={"Idempotency-Key": "k-00000001"}), 401
    )
    await problem(await client.get("/emails?limit=0", headers=ALICE), 400, "bad_query")
    assert (await ok(await client.get("/emails", headers=ALICE)))["total"] == 0


async def test_e_mails_queued_together_go_out_together_and_one_failure_holds_back_no_other(
    service: ServiceFactory, tmp_path: Path
) -> None:
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    (outbox / "u_bob").write_text("a file where bob's folder should be: his sends fail")
    client = await service("email", EMAIL_OUTBOX_DIR=str(outbox))
    alices = [
        await queue(client, headers=keyed(ALICE, f"u_alice.checkout-{n:04d}")) for n in (1, 2)
    ]
    bobs = await queue(client, headers=keyed(BOB, "u_bob.checkout-0001"))
    for queued in alices:
        mail = await sent(client, queued["id"])
        assert (outbox / "u_alice" / f"{queued['id']}.eml").exists() and mail["attempts"] == 0

    async def bob() -> dict[str, Any]:
        return await ok(await client.get(f"/emails/{bobs['id']}", headers=BOB))

    failing = await eventually(bob, lambda e: e["attempts"] >= 1, what="bob's failed attempt")
    assert failing["status"] == "queued"
    (outbox / "u_bob").unlink()  # his folder can be made now: the retry delivers it
    assert (await sent(client, bobs["id"], BOB))["attempts"] >= 1
