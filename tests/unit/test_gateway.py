"""The gateway: accounts, sessions and the public API, over the real shop services."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from services import kit
from services.gateway import store
from services.gateway.relay import LISTING, PRODUCT_PAGES
from tests.asserts import ok, problem
from tests.conftest import build_app, closed_port, service_settings
from tests.contract import ContractClient
from tests.polling import eventually

PEERS = ["products", "cart", "checkout", "orders", "payment"]
PASSWORD = "correct-horse-battery"
GOOD_CARD = {"number": "4242 4242 4242 4242", "exp_month": 12, "exp_year": 2040, "cvc": "123"}
DECLINED_CARD = {**GOOD_CARD, "number": "4000000000000002"}
MUG, WATCH = "speckled-mug", "meridian-watch"


# --- helpers -----------------------------------------------------------------------------------


async def register(api: ContractClient, email: str = "ada@example.com") -> dict[str, Any]:
    return await ok(
        await api.post("/api/auth/register", json={"email": email, "password": PASSWORD}), 201
    )


async def login(api: ContractClient, email: str = "ada@example.com") -> dict[str, Any]:
    return await ok(await api.post("/api/auth/login", json={"email": email, "password": PASSWORD}))


async def signed_in(api: ContractClient, email: str = "ada@example.com") -> dict[str, str]:
    """Register ``email`` and sign in: the headers of that user's requests."""
    await register(api, email)
    session = await login(api, email)
    return {"Authorization": f"Bearer {session['token']}"}


async def user_rows(api: ContractClient) -> list[dict[str, Any]]:
    async with api.app[kit.DB].connect() as conn:
        rows = (await conn.execute(select(store.users).order_by(store.users.c.email))).all()
    return [dict(r._mapping) for r in rows]


async def user_count(api: ContractClient) -> int:
    async with api.app[kit.DB].connect() as conn:
        return (await conn.execute(select(func.count()).select_from(store.users))).scalar_one()


def parse_time(value: str) -> datetime:
    assert value.endswith("Z"), value
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@pytest.fixture
async def api(service) -> ContractClient:  # type: ignore[no-untyped-def]
    """The gateway alone: enough for everything about accounts and sessions."""
    return await service("gateway")


@pytest.fixture
async def shop(service) -> ContractClient:  # type: ignore[no-untyped-def]
    """The gateway in front of the real shop services."""
    return await service("gateway", peers=PEERS, PAYMENT_LATENCY_MS="0")


# --- registration ------------------------------------------------------------------------------


async def test_register_creates_a_user_with_a_lower_case_email(api: ContractClient) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    user = await register(api, "Ada.Lovelace@Example.COM")
    assert set(user) == {"id", "email", "created_at"}
    assert user["email"] == "ada.lovelace@example.com"
    assert user["id"].startswith("u_")
    assert before <= parse_time(user["created_at"]) <= datetime.now(UTC)
    [row] = await user_rows(api)
    assert (row["id"], row["email"]) == (user["id"], "ada.lovelace@example.com")


async def test_registering_an_email_twice_in_any_case_is_409(api: ContractClient) -> None:
    await register(api, "ada@example.com")
    resp = await api.post(
        "/api/auth/register", json={"email": "ADA@Example.com", "password": "another-password"}
    )
    await problem(resp, 409, "email_taken")
    assert await user_count(api) == 1


async def test_password_length_bounds_are_inclusive(api: ContractClient) -> None:
    for n, email in ((8, "eight@example.com"), (128, "long@example.com")):
        resp = await api.post("/api/auth/register", json={"email": email, "password": "p" * n})
        await ok(resp, 201)
    assert await user_count(api) == 2


@pytest.mark.parametrize(
    "body",
    [
        {"email": "not-an-email", "password": PASSWORD},
        {"email": "ada@example", "password": PASSWORD},
        {"email": "ada lovelace@example.com", "password": PASSWORD},
        {"email": "", "password": PASSWORD},
        {"email": "a" * 250 + "@example.com", "password": PASSWORD},
        {"email": "ada@example.com", "password": "short12"},
        {"email": "ada@example.com", "password": "p" * 129},
        {"email": 42, "password": PASSWORD},
        {"email": "ada@example.com", "password": 12345678},
        {"email": "ada@example.com", "password": None},
        {"email": "ada@example.com"},
        {"email": "ada@example.com", "password": PASSWORD, "is_admin": True},
        ["ada@example.com", PASSWORD],
        "ada@example.com",
    ],
    ids=lambda b: str(b)[:40],
)
async def test_register_rejects_bad_bodies_with_422(api: ContractClient, body: Any) -> None:
    body = await problem(await api.post("/api/auth/register", json=body), 422, "validation_failed")
    assert body["errors"] and all({"field", "message"} <= set(e) for e in body["errors"])
    assert await user_count(api) == 0


async def test_register_rejects_malformed_json_other_types_and_oversized_bodies(
    api: ContractClient,
) -> None:
    json_type = {"Content-Type": "application/json"}
    resp = await api.post("/api/auth/register", data=b'{"email": "a@b.co",', headers=json_type)
    await problem(resp, 400, "malformed_json")
    resp = await api.post(
        "/api/auth/register",
        data=b'{"email": "a@b.co", "password": "12345678"}',
        headers={"Content-Type": "text/plain"},
    )
    await problem(resp, 415, "unsupported_media_type")
    huge = b'{"email": "a@b.co", "password": "' + b"x" * (65 * 1024) + b'"}'
    await problem(await api.post("/api/auth/register", data=huge, headers=json_type), 413)
    assert await user_count(api) == 0


async def test_passwords_are_stored_only_as_salted_hashes(api: ContractClient) -> None:
    await register(api, "ada@example.com")
    await register(api, "grace@example.com")
    rows = await user_rows(api)
    assert len(rows) == 2
    for row in rows:
        assert row["password_hash"] != PASSWORD
        assert PASSWORD not in row["password_hash"]
        assert row["password_hash"].startswith("scrypt$16384$8$1$")
    assert rows[0]["password_hash"] != rows[1]["password_hash"], "same password, same hash"


# --- login, sessions, logout -------------------------------------------------------------------


async def test_login_gives_a_bearer_token_that_expires_in_the_future(api: ContractClient) -> None:
    user = await register(api)
    session = await login(api, "ADA@example.com")  # any letter case signs in
    assert set(session) == {"token", "token_type", "expires_at"}
    assert session["token_type"] == "Bearer" and len(session["token"]) >= 40
    left = (parse_time(session["expires_at"]) - datetime.now(UTC)).total_seconds()
    assert 86400 - 5 < left <= 86400
    me = await ok(await api.get("/api/me", headers={"Authorization": f"Bearer {session['token']}"}))
    assert me == user


async def test_sessions_are_kept_under_a_hash_of_the_token(api: ContractClient) -> None:
    await register(api)
    token = (await login(api))["token"]
    redis = api.app[kit.REDIS]
    keys = await redis.keys("*")
    assert keys == ["session:" + hashlib.sha256(token.encode()).hexdigest()]
    assert token not in keys[0]
    assert 86300 < await redis.ttl(keys[0]) <= 86400


async def test_wrong_password_and_unknown_email_get_the_same_401(api: ContractClient) -> None:
    await register(api)
    wrong = await api.post(
        "/api/auth/login", json={"email": "ada@example.com", "password": "wrong-password"}
    )
    unknown = await api.post(
        "/api/auth/login", json={"email": "nobody@example.com", "password": PASSWORD}
    )
    wrong_body = await problem(wrong, 401, "invalid_credentials")
    assert wrong_body == await problem(unknown, 401, "invalid_credentials")
    assert await api.app[kit.REDIS].keys("session:*") == []


async def test_login_rejects_bad_bodies(api: ContractClient) -> None:
    await problem(await api.post("/api/auth/login", json={"email": "a@b.co"}), 422)
    await problem(await api.post("/api/auth/login", json={"email": 1, "password": "x"}), 422)
    resp = await api.post(
        "/api/auth/login", data=b"{", headers={"Content-Type": "application/json"}
    )
    await problem(resp, 400, "malformed_json")


async def test_me_without_a_valid_token_is_401(api: ContractClient) -> None:
    await signed_in(api)  # a real session exists; none of these headers may reach it
    for headers in (
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer not-a-real-token-but-long-enough-to-look-like-one"},
        {"Authorization": "Bearer <script>alert(1)</script>"},
        {"Authorization": "Basic YWRhOnBhc3N3b3Jk"},
    ):
        resp = await api.get("/api/me", headers=headers)
        await problem(resp, 401, "unauthenticated")
        assert resp.headers["WWW-Authenticate"].startswith("Bearer"), headers


async def test_logout_revokes_the_token_once(api: ContractClient) -> None:
    alice = await signed_in(api, "alice@example.com")
    bob = await signed_in(api, "bob@example.com")
    resp = await api.post("/api/auth/logout", headers=alice)
    assert resp.status == 204 and await resp.read() == b""
    resp = await api.get("/api/me", headers=alice)
    await problem(resp, 401, "unauthenticated")
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    await problem(await api.post("/api/auth/logout", headers=alice), 401, "unauthenticated")
    await problem(await api.post("/api/auth/logout"), 401, "unauthenticated")
    # Bob's session is untouched.
    assert (await ok(await api.get("/api/me", headers=bob)))["email"] == "bob@example.com"


async def test_each_login_is_its_own_session(api: ContractClient) -> None:
    first = await signed_in(api)
    second = {"Authorization": f"Bearer {(await login(api))['token']}"}
    assert first != second
    assert (await api.post("/api/auth/logout", headers=first)).status == 204
    await ok(await api.get("/api/me", headers=second))


async def test_a_token_stops_working_after_the_session_ttl(service) -> None:  # type: ignore[no-untyped-def]
    api = await service("gateway", SESSION_TTL_SECONDS="1")
    await register(api)
    session = await login(api)
    left = (parse_time(session["expires_at"]) - datetime.now(UTC)).total_seconds()
    assert -1 < left <= 1
    headers = {"Authorization": f"Bearer {session['token']}"}
    await ok(await api.get("/api/me", headers=headers))
    expired = await eventually(
        lambda: api.get("/api/me", headers=headers), lambda r: r.status != 200, what="expiry"
    )
    await problem(expired, 401, "unauthenticated")


# --- the API's own edges -----------------------------------------------------------------------


async def test_unknown_routes_and_methods_are_problems(api: ContractClient) -> None:
    # Undocumented on purpose, so through the raw client (the contract client would refuse).
    resp = await api.client.get("/api/nope")
    await problem(resp, 404)
    resp = await api.client.delete("/api/me")
    await problem(resp, 405)


async def test_private_routes_need_a_token_before_anything_else(api: ContractClient) -> None:
    # No peer is running here: a 401 proves nothing was called.
    for method, path in [
        ("GET", "/api/cart"),
        ("DELETE", "/api/cart"),
        ("PUT", f"/api/cart/items/{MUG}"),
        ("DELETE", f"/api/cart/items/{MUG}"),
        ("POST", "/api/checkout"),
        ("GET", "/api/orders"),
        ("GET", "/api/orders/ord_000000000000000000000000"),
    ]:
        resp = await api.request(method, path, json={"quantity": 1})
        await problem(resp, 401, "unauthenticated")


async def test_public_openapi_is_served_under_api(api: ContractClient) -> None:
    doc = await ok(await api.get("/api/openapi.json"))
    assert doc["openapi"].startswith("3.1") and "/api/checkout" in doc["paths"]
    resp = await api.get("/api/openapi.yaml")
    assert resp.status == 200 and "Mesh Boutique public API" in await resp.text()


async def test_a_dependency_down_is_a_503_naming_it(
    aiohttp_client, tmp_path: Path, clean_redis
) -> None:  # type: ignore[no-untyped-def]
    closed = f"products=http://127.0.0.1:{closed_port()}"
    app = build_app("gateway", service_settings("gateway", tmp_path, clean_redis, PEER_URLS=closed))
    api = ContractClient(await aiohttp_client(app), app[kit.OPENAPI])
    resp = await api.get("/api/products")
    body = await problem(resp, 503, "dependency_unavailable")
    assert body["dependency"] == "products" and "products" in body["detail"]
    text = await resp.text()
    assert "Traceback" not in text and "File " not in text


# --- the shop through the gateway (real services) ----------------------------------------------


async def test_catalog_lists_products_with_their_images(shop: ContractClient) -> None:
    products = (await ok(await shop.get("/api/products")))["products"]
    assert len(products) >= 12
    assert [p["name"] for p in products] == sorted(p["name"] for p in products)
    for p in products:
        assert p["image_url"] == f"/api/products/{p['id']}/image.svg"
        resp = await shop.get(p["image_url"])
        assert resp.status == 200 and resp.content_type == "image/svg+xml", p["id"]
        assert "<svg" in await resp.text() and "max-age" in resp.headers["Cache-Control"]
    one = await ok(await shop.get(f"/api/products/{MUG}"))
    assert one == next(p for p in products if p["id"] == MUG)


async def test_catalogue_answers_follow_stock_at_once_and_are_reused_while_it_stands(
    shop: ContractClient,
) -> None:
    listing, page = shop.app[LISTING], shop.app[PRODUCT_PAGES]
    first = await ok(await shop.get("/api/products"))
    mug = await ok(await shop.get(f"/api/products/{MUG}"))
    kept_listing, kept_page = listing.kept(""), page.kept(MUG)
    assert kept_listing is not None and kept_page is not None
    # Nothing changed: products answers the same bytes, and the gateway's answer is reused.
    assert await ok(await shop.get("/api/products")) == first
    assert await ok(await shop.get(f"/api/products/{MUG}")) == mug
    assert listing.kept("") is kept_listing and page.kept(MUG) is kept_page

    ada = await signed_in(shop)
    await ok(await shop.put(f"/api/cart/items/{MUG}", json={"quantity": 2}, headers=ada))
    paying = {**ada, "Idempotency-Key": "reuse-check-0001"}
    await ok(await shop.post("/api/checkout", json={"card": GOOD_CARD}, headers=paying), 201)
    # Two sold: both answers show it at once, never the kept ones.
    after = await ok(await shop.get("/api/products"))
    sold = next(p for p in after["products"] if p["id"] == MUG)
    assert sold["available"] == mug["available"] - 2
    assert (await ok(await shop.get(f"/api/products/{MUG}")))["available"] == sold["available"]
    assert listing.kept("") is not kept_listing and page.kept(MUG) is not kept_page
    others = [p for p in after["products"] if p["id"] != MUG]
    assert others == [p for p in first["products"] if p["id"] != MUG]


async def test_unknown_products_are_404s_passed_through(shop: ContractClient) -> None:
    body = await problem(await shop.get("/api/products/no-such-thing"), 404, "unknown_product")
    products_url = shop.app[kit.SETTINGS].peer_urls["products"]
    async with shop.client.session.get(f"{products_url}/products/no-such-thing") as direct:
        assert body == await direct.json(), "the products service's problem, unchanged"
    await problem(await shop.get("/api/products/no-such-thing/image.svg"), 404, "unknown_image")
    await problem(await shop.get("/api/products/-not-an-id-/image.svg"), 404, "unknown_image")
    await problem(await shop.get("/api/products/-not-an-id-"), 404, "unknown_product")


async def test_cart_rejects_bad_quantities_and_unknown_products(shop: ContractClient) -> None:
    ada = await signed_in(shop)
    await ok(await shop.put(f"/api/cart/items/{MUG}", json={"quantity": 2}, headers=ada))
    for quantity in (-1, 100, "2", 1.5, None, True):
        resp = await shop.put(f"/api/cart/items/{MUG}", json={"quantity": quantity}, headers=ada)
        await problem(resp, 422, "validation_failed")
    resp = await shop.put(f"/api/cart/items/{MUG}", json={"qty": 1}, headers=ada)
    await problem(resp, 422, "validation_failed")
    resp = await shop.put("/api/cart/items/no-such-thing", json={"quantity": 1}, headers=ada)
    await problem(resp, 404, "unknown_product")
    await problem(await shop.put(f"/api/cart/items/{MUG}", headers=ada, data=b"{"), 415)
    cart = await ok(await shop.get("/api/cart", headers=ada))
    assert [(i["product_id"], i["quantity"]) for i in cart["items"]] == [(MUG, 2)]


async def test_cart_lines_carry_image_urls_and_totals(shop: ContractClient) -> None:
    ada = await signed_in(shop)
    await ok(await shop.put(f"/api/cart/items/{MUG}", json={"quantity": 2}, headers=ada))
    cart = await ok(await shop.put(f"/api/cart/items/{WATCH}", json={"quantity": 1}, headers=ada))
    prices = {
        p["id"]: p["price_cents"] for p in (await ok(await shop.get("/api/products")))["products"]
    }
    assert [(i["product_id"], i["quantity"]) for i in cart["items"]] == [(WATCH, 1), (MUG, 2)]
    for line in cart["items"]:
        assert line["image_url"] == f"/api/products/{line['product_id']}/image.svg"
        assert line["line_total_cents"] == line["quantity"] * prices[line["product_id"]]
    assert cart["total_cents"] == 2 * prices[MUG] + prices[WATCH]
    assert cart["item_count"] == 3
    cart = await ok(await shop.delete(f"/api/cart/items/{WATCH}", headers=ada))
    assert [i["product_id"] for i in cart["items"]] == [MUG]
    resp = await shop.delete("/api/cart", headers=ada)
    assert resp.status == 204
    assert (await ok(await shop.get("/api/cart", headers=ada)))["items"] == []


async def test_full_purchase_through_the_gateway(shop: ContractClient) -> None:
    ada = await signed_in(shop, "ada@example.com")
    await ok(await shop.put(f"/api/cart/items/{MUG}", json={"quantity": 2}, headers=ada))
    cart = await ok(await shop.put(f"/api/cart/items/{WATCH}", json={"quantity": 1}, headers=ada))

    # Without an Idempotency-Key nothing happens at all.
    resp = await shop.post("/api/checkout", json={"card": GOOD_CARD}, headers=ada)
    await problem(resp, 428, "idempotency_key_missing")
    bad_key = {**ada, "Idempotency-Key": "short"}
    resp = await shop.post("/api/checkout", json={"card": GOOD_CARD}, headers=bad_key)
    await problem(resp, 400, "idempotency_key_invalid")
    assert await ok(await shop.get("/api/cart", headers=ada)) == cart
    assert (await ok(await shop.get("/api/orders", headers=ada)))["total"] == 0

    paying = {**ada, "Idempotency-Key": "purchase-0001"}
    order = await ok(
        await shop.post("/api/checkout", json={"card": GOOD_CARD}, headers=paying), 201
    )
    assert order["status"] == "paid" and order["charge_id"]
    assert order["total_cents"] == cart["total_cents"]
    lines = sorted((i["product_id"], i["quantity"]) for i in order["items"])
    assert lines == sorted([(MUG, 2), (WATCH, 1)])

    # The same key again: the same order, no second charge.
    again = await ok(
        await shop.post("/api/checkout", json={"card": GOOD_CARD}, headers=paying), 201
    )
    assert again == order

    page = await ok(await shop.get("/api/orders", headers=ada))
    assert page["total"] == 1 and [o["id"] for o in page["orders"]] == [order["id"]]
    assert page["orders"][0]["status"] == "paid"
    assert await ok(await shop.get(f"/api/orders/{order['id']}", headers=ada)) == page["orders"][0]
    assert (await ok(await shop.get("/api/cart", headers=ada)))["items"] == []

    # Someone else sees none of it.
    bob = await signed_in(shop, "bob@example.com")
    await problem(await shop.get(f"/api/orders/{order['id']}", headers=bob), 404, "unknown_order")
    assert (await ok(await shop.get("/api/orders", headers=bob)))["orders"] == []
    assert (await ok(await shop.get("/api/cart", headers=bob)))["items"] == []


async def test_a_declined_card_is_a_402_and_nothing_is_bought(shop: ContractClient) -> None:
    ada = await signed_in(shop)
    before = await ok(await shop.get(f"/api/products/{MUG}"))
    await ok(await shop.put(f"/api/cart/items/{MUG}", json={"quantity": 2}, headers=ada))
    headers = {**ada, "Idempotency-Key": "declined-0001"}
    resp = await shop.post("/api/checkout", json={"card": DECLINED_CARD}, headers=headers)
    body = await problem(resp, 402, "card_declined")
    assert body["decline_code"] == "generic_decline"
    after = await ok(await shop.get(f"/api/products/{MUG}"))
    assert after["available"] == before["available"], "the held stock was released"
    cart = await ok(await shop.get("/api/cart", headers=ada))
    assert [(i["product_id"], i["quantity"]) for i in cart["items"]] == [(MUG, 2)]
    assert all(
        o["status"] != "paid"
        for o in (await ok(await shop.get("/api/orders", headers=ada)))["orders"]
    )


async def test_checkout_rejects_bad_bodies_before_calling_anyone(shop: ContractClient) -> None:
    ada = await signed_in(shop)
    await ok(await shop.put(f"/api/cart/items/{MUG}", json={"quantity": 1}, headers=ada))
    headers = {**ada, "Idempotency-Key": "bad-body-0001"}
    for card in (
        {**GOOD_CARD, "number": "1234"},
        {**GOOD_CARD, "exp_month": 13},
        {**GOOD_CARD, "cvc": 123},
        {**GOOD_CARD, "extra": "x"},
    ):
        resp = await shop.post("/api/checkout", json={"card": card}, headers=headers)
        await problem(resp, 422, "validation_failed")
    resp = await shop.post(
        "/api/checkout", data=b"{", headers={**headers, "Content-Type": "application/json"}
    )
    await problem(resp, 400, "malformed_json")
    assert (await ok(await shop.get("/api/orders", headers=ada)))["total"] == 0
    assert len((await ok(await shop.get("/api/cart", headers=ada)))["items"]) == 1


async def test_orders_paging_is_checked(shop: ContractClient) -> None:
    ada = await signed_in(shop)
    page = await ok(await shop.get("/api/orders?limit=5&offset=0", headers=ada))
    assert (page["limit"], page["offset"], page["orders"]) == (5, 0, [])
    for query in ("limit=0", "limit=101", "limit=x", "offset=-1"):
        await problem(await shop.get(f"/api/orders?{query}", headers=ada), 400, "bad_query")
    await problem(await shop.get("/api/orders/no-such-order", headers=ada), 404, "unknown_order")


def test_relay_passes_our_services_problems_on_and_names_a_failing_peer() -> None:
    from services.gateway.relay import PeerProblem, relay

    not_charged = {
        "type": "https://boutique.local/problems/payment_unavailable",
        "title": "Service Unavailable",
        "status": 503,
        "detail": "Payment is unavailable right now; you were not charged",
        "code": "payment_unavailable",
    }
    with pytest.raises(PeerProblem) as passed:
        relay(kit.PeerReply("checkout", 503, not_charged), 201)
    assert passed.value.status == 503 and passed.value.details == not_charged
    # the mesh's own 503 (plain text) and a crash without a code name the peer instead
    for body in ("upstream connect error", {"status": 500, "title": "Internal Server Error"}):
        status = 503 if isinstance(body, str) else 500
        with pytest.raises(kit.Problem) as named:
            relay(kit.PeerReply("checkout", status, body), 201)
        assert not isinstance(named.value, PeerProblem)
        assert named.value.details["dependency"] == "checkout"
