"""products: catalog, stock counters, reservations (all-or-nothing, idempotent, expiring).

Every test runs the real app on a real SQLite file; after each one the ``api`` fixture checks the
store's books: for every product ``stocked = available + reserved + sold``, ``reserved`` is what
held reservations hold and ``sold`` what committed ones hold.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import func, select, update
from yarl import URL

from services import kit
from services.products import store, sweeper
from services.products.app import create_app
from services.products.catalog import IMAGES_DIR, load_catalog, load_images
from tests.asserts import problem
from tests.conftest import ServiceFactory, build_app, service_settings
from tests.contract import ContractClient

CATALOG = load_catalog()
A, B = sorted(entry.id for entry in CATALOG)[:2]  # A sorts before B
WITH_IMAGE = next(e.id for e in CATALOG if (IMAGES_DIR / f"{e.id}.svg").is_file())
STOCK = 10
JSON_TYPE = {"Content-Type": "application/json"}


# --- helpers -----------------------------------------------------------------------------------


async def books(app: web.Application) -> dict[str, Any]:
    """Everything the store holds, for "nothing changed" comparisons."""
    async with app[kit.DB].connect() as conn:
        products = (await conn.execute(select(store.products).order_by("id"))).all()
        reservations = (await conn.execute(select(store.reservations).order_by("key"))).all()
        items = (await conn.execute(select(store.reservation_items).order_by("product_id"))).all()
    return {"products": products, "reservations": reservations, "items": items}


async def assert_consistent(app: web.Application) -> None:
    """The stock counters agree with each other and with the reservations."""
    r, i = store.reservations, store.reservation_items
    async with app[kit.DB].connect() as conn:
        rows = (await conn.execute(select(store.products))).all()
        held = await conn.execute(
            select(i.c.product_id, r.c.status, func.sum(i.c.quantity))
            .join(r, r.c.key == i.c.reservation_key)
            .group_by(i.c.product_id, r.c.status)
        )
        by_status = {(pid, status): total for pid, status, total in held}
    for p in rows:
        assert p.stocked == p.available + p.reserved + p.sold, p
        assert min(p.available, p.reserved, p.sold) >= 0, p
        assert p.reserved == by_status.get((p.id, "held"), 0), p
        assert p.sold == by_status.get((p.id, "committed"), 0), p


async def stock(api: ContractClient, pid: str) -> dict[str, int]:
    resp = await api.get(f"/products/{pid}/stock")
    assert resp.status == 200
    counters = await resp.json()
    assert counters["stocked"] == counters["available"] + counters["reserved"] + counters["sold"]
    return counters


def counters(available: int, reserved: int = 0, sold: int = 0, pid: str = A) -> dict[str, Any]:
    return {
        "product_id": pid,
        "stocked": available + reserved + sold,
        "available": available,
        "reserved": reserved,
        "sold": sold,
    }


async def reserve(api: ContractClient, key: str, *items: tuple[str, int], **extra: Any) -> Any:
    body = {"items": [{"product_id": p, "quantity": q} for p, q in items], **extra}
    return await api.put(f"/reservations/{key}", json=body)


def parse_time(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


async def set_expires_at(app: web.Application, key: str, when: float) -> None:
    async with app[kit.DB].begin() as conn:
        await conn.execute(
            update(store.reservations)
            .where(store.reservations.c.key == key)
            .values(expires_at=int(when))
        )


@pytest.fixture
async def api(service: ServiceFactory) -> AsyncIterator[ContractClient]:
    client = await service("products", PRODUCTS_STOCK=str(STOCK))
    yield client
    await assert_consistent(client.app)


# --- catalog -----------------------------------------------------------------------------------


async def test_list_products_sorted_by_name(api: ContractClient) -> None:
    resp = await api.get("/products")
    assert resp.status == 200
    products = (await resp.json())["products"]
    assert [p["name"] for p in products] == sorted(e.name for e in CATALOG)
    by_id = {e.id: e for e in CATALOG}
    assert set(p["id"] for p in products) == set(by_id) and len(products) == len(CATALOG)
    for p in products:
        entry = by_id[p["id"]]
        assert (p["price_cents"], p["currency"], p["categories"]) == (
            entry.price_cents,
            entry.currency,
            entry.categories,
        )
        assert p["available"] == STOCK and p["in_stock"] is True


async def test_list_by_ids_keeps_their_order(api: ContractClient) -> None:
    resp = await api.get("/products", params={"ids": f"{B},{A}"})
    assert resp.status == 200
    assert [p["id"] for p in (await resp.json())["products"]] == [B, A]
    resp = await api.get("/products", params={"ids": f" {A} ,{A},"})
    assert [p["id"] for p in (await resp.json())["products"]] == [A]


async def test_list_by_ids_names_the_unknown_ones(api: ContractClient) -> None:
    resp = await api.get("/products", params={"ids": f"{A},nope,{B},zilch"})
    body = await problem(resp, 404, "unknown_product")
    assert body["product_ids"] == ["nope", "zilch"]


async def test_list_by_ids_rejects_empty_or_too_many(api: ContractClient, subtests: Any) -> None:
    for ids in ("", ",", " , ", ",".join(f"p{n}" for n in range(101))):
        with subtests.test(ids=ids[:20]):
            await problem(await api.get("/products", params={"ids": ids}), 400, "bad_query")


async def test_list_by_ids_accepts_a_hundred(api: ContractClient) -> None:
    ids = [A] + [f"p{n}" for n in range(99)]
    resp = await api.get("/products", params={"ids": ",".join(ids)})
    assert (await problem(resp, 404, "unknown_product"))["product_ids"] == ids[1:]


async def test_get_product(api: ContractClient) -> None:
    resp = await api.get(f"/products/{A}")
    assert resp.status == 200
    body = await resp.json()
    entry = next(e for e in CATALOG if e.id == A)
    assert body == {
        "id": A,
        "name": entry.name,
        "description": entry.description,
        "price_cents": entry.price_cents,
        "currency": entry.currency,
        "categories": entry.categories,
        "available": STOCK,
        "in_stock": True,
    }


@pytest.mark.parametrize("suffix", ["", "/stock"])
async def test_unknown_product_is_404(api: ContractClient, suffix: str) -> None:
    body = await problem(await api.get(f"/products/no-such-thing{suffix}"), 404, "unknown_product")
    assert body["product_ids"] == ["no-such-thing"]


async def test_stock_counters(api: ContractClient) -> None:
    assert await stock(api, A) == counters(STOCK)


async def test_stock_comes_from_the_catalog_without_override(service: ServiceFactory) -> None:
    api = await service("products")
    for entry in CATALOG[:3]:
        assert await stock(api, entry.id) == counters(entry.stock, pid=entry.id)


async def test_image_is_served_with_long_cache(api: ContractClient) -> None:
    resp = await api.get(f"/products/{WITH_IMAGE}/image.svg")
    assert resp.status == 200
    assert resp.content_type == "image/svg+xml"
    assert "max-age=86400" in resp.headers["Cache-Control"]
    assert await resp.read() == (IMAGES_DIR / f"{WITH_IMAGE}.svg").read_bytes()


async def test_image_of_unknown_product_is_404(api: ContractClient) -> None:
    await problem(await api.get("/products/no-such-thing/image.svg"), 404, "unknown_image")


TRAVERSALS = [
    f"/products/..%2Fimages%2F{WITH_IMAGE}/image.svg",
    "/products/..%2F..%2Fapp.py%00/image.svg",
    "/products/..%2Fcatalog.yaml%23/image.svg",
    "/products/%2E%2E/image.svg",
    "/products/../image.svg",
    "/products/..%5C..%5Cstore.py/image.svg",
]


async def test_image_path_traversal_is_404(api: ContractClient, subtests: Any) -> None:
    # Sent byte for byte (no client-side normalisation), past the contract client: the id the
    # handler sees contains "..", and it is refused like any id that is not in the catalog.
    base = str(api.client.make_url("/")).rstrip("/")
    for path in TRAVERSALS:
        with subtests.test(path=path):
            async with api.client.session.get(URL(base + path, encoded=True)) as resp:
                body = await problem(resp, 404, "unknown_image")
            assert ".." in body["detail"]


def test_only_catalog_ids_name_image_files(tmp_path: Path) -> None:
    for name in ("listed", "stray"):
        (tmp_path / f"{name}.svg").write_text(f"<svg>{name}</svg>")
    assert load_images(["listed", "missing"], tmp_path) == {"listed": b"<svg>listed</svg>"}


# --- health and contract -------------------------------------------------------------------


async def test_health_ready_and_openapi(api: ContractClient) -> None:
    assert await (await api.get("/healthz")).json() == {"status": "ok", "service": "products"}
    ready = await api.get("/readyz")
    assert ready.status == 200 and (await ready.json())["checks"] == {"database": "ok"}
    doc = await (await api.get("/openapi.json")).json()
    assert doc["openapi"] == "3.1.0"
    assert (await api.get("/openapi.yaml")).status == 200
    routes = {r.resource.canonical for r in api.app.router.routes() if r.resource is not None}
    assert routes == set(doc["paths"])


# --- reservations: the happy paths ---------------------------------------------------------


async def test_reserve_holds_stock(api: ContractClient) -> None:
    before = time.time()
    resp = await reserve(api, "saga-0001", (B, 3), (A, 2))
    assert resp.status == 201
    body = await resp.json()
    assert body["key"] == "saga-0001" and body["status"] == "held"
    # the hold's answer prices its items (the checkout opens its order from it)
    catalog = {p["id"]: p for p in (await (await api.get("/products")).json())["products"]}
    assert body["items"] == [
        {"product_id": pid, "quantity": q, "name": catalog[pid]["name"]}
        | {"unit_price_cents": catalog[pid]["price_cents"]}
        for pid, q in ((B, 3), (A, 2))
    ]
    created, expires = parse_time(body["created_at"]), parse_time(body["expires_at"])
    assert int(before) - 1 <= created.timestamp() <= time.time()
    assert (expires - created).total_seconds() == 900  # the default ttl
    assert await stock(api, A) == counters(8, reserved=2)
    assert await stock(api, B) == counters(7, reserved=3, pid=B)
    resp = await api.get("/reservations/saga-0001")
    held = [{"product_id": B, "quantity": 3}, {"product_id": A, "quantity": 2}]
    assert resp.status == 200 and await resp.json() == body | {"items": held}


async def test_reserve_uses_the_ttl(api: ContractClient) -> None:
    body = await (await reserve(api, "saga-ttl-1", (A, 1), ttl_seconds=10)).json()
    assert (parse_time(body["expires_at"]) - parse_time(body["created_at"])).total_seconds() == 10


async def test_reserving_all_stock_leaves_the_product_out_of_stock(api: ContractClient) -> None:
    assert (await reserve(api, "saga-all-1", (A, STOCK))).status == 201
    product = await (await api.get(f"/products/{A}")).json()
    assert product["available"] == 0 and product["in_stock"] is False
    listed = await (await api.get("/products", params={"ids": A})).json()
    assert listed["products"][0]["in_stock"] is False


async def test_repeated_reserve_returns_the_stored_reservation(api: ContractClient) -> None:
    first = await (await reserve(api, "saga-rep-1", (A, 2))).json()
    before = await books(api.app)
    # Same key, other body: the stored reservation, nothing held twice.
    for items in ([(A, 2)], [(A, 5), (B, 1)]):
        resp = await reserve(api, "saga-rep-1", *items)
        assert resp.status == 200 and await resp.json() == first
    assert await books(api.app) == before
    assert await stock(api, A) == counters(8, reserved=2)


async def test_commit_sells_and_repeats_unchanged(api: ContractClient) -> None:
    await reserve(api, "saga-commit", (A, 2), (B, 1))
    resp = await api.post("/reservations/saga-commit/commit")
    assert resp.status == 200
    committed = await resp.json()
    assert committed["status"] == "committed"
    assert await stock(api, A) == counters(8, sold=2)
    assert await stock(api, B) == counters(9, sold=1, pid=B)
    before = await books(api.app)
    again = await api.post("/reservations/saga-commit/commit")
    assert again.status == 200 and await again.json() == committed
    put_again = await reserve(api, "saga-commit", (A, 2), (B, 1))
    repeated = await put_again.json()
    assert put_again.status == 200 and repeated | {"items": committed["items"]} == committed
    assert [(i["product_id"], i["quantity"]) for i in repeated["items"]] == [(A, 2), (B, 1)]
    assert all(i["unit_price_cents"] > 0 for i in repeated["items"])  # priced again
    assert await books(api.app) == before


async def test_release_returns_stock_and_repeats_unchanged(api: ContractClient) -> None:
    await reserve(api, "saga-release", (A, 4))
    resp = await api.post("/reservations/saga-release/release")
    assert resp.status == 200
    released = await resp.json()
    assert released["status"] == "released"
    assert await stock(api, A) == counters(STOCK)
    before = await books(api.app)
    again = await api.post("/reservations/saga-release/release")
    assert again.status == 200 and await again.json() == released
    assert (await api.get("/reservations/saga-release")).status == 200
    assert await books(api.app) == before


async def test_commit_after_release_is_409(api: ContractClient) -> None:
    await reserve(api, "saga-rel-com", (A, 1))
    await api.post("/reservations/saga-rel-com/release")
    before = await books(api.app)
    body = await problem(
        await api.post("/reservations/saga-rel-com/commit"), 409, "reservation_not_held"
    )
    assert body["reservation_status"] == "released"
    assert await books(api.app) == before
    assert await stock(api, A) == counters(STOCK)


async def test_release_after_commit_is_409(api: ContractClient) -> None:
    await reserve(api, "saga-com-rel", (A, 1))
    await api.post("/reservations/saga-com-rel/commit")
    before = await books(api.app)
    body = await problem(
        await api.post("/reservations/saga-com-rel/release"), 409, "reservation_committed"
    )
    assert body["reservation_status"] == "committed"
    assert await books(api.app) == before
    assert await stock(api, A) == counters(9, sold=1)


# --- reservations: all or nothing ------------------------------------------------------------


@pytest.mark.parametrize("short", [B, A], ids=["second-short", "first-short"])
async def test_reservation_is_all_or_nothing(api: ContractClient, short: str) -> None:
    plenty = A if short == B else B
    before = await books(api.app)
    resp = await reserve(api, "saga-aon-1", (plenty, 1), (short, STOCK + 1))
    body = await problem(resp, 409, "out_of_stock")
    assert body["product_id"] == short and body["available"] == STOCK
    assert await books(api.app) == before
    assert await stock(api, plenty) == counters(STOCK, pid=plenty)
    await problem(await api.get("/reservations/saga-aon-1"), 404, "unknown_reservation")
    # Nothing was stored under the key: it can still hold stock later.
    assert (await reserve(api, "saga-aon-1", (plenty, 1), (short, 1))).status == 201


async def test_out_of_stock_reports_what_is_left(api: ContractClient) -> None:
    assert (await reserve(api, "saga-left-1", (A, 8))).status == 201
    before = await books(api.app)
    body = await problem(await reserve(api, "saga-left-2", (A, 3)), 409, "out_of_stock")
    assert body["product_id"] == A and body["available"] == 2
    # The largest quantity accepted is 1000: a shape that fits, so a 409, not a 422.
    body = await problem(await reserve(api, "saga-left-3", (A, 1000)), 409, "out_of_stock")
    assert body["available"] == 2
    assert await books(api.app) == before
    assert await stock(api, A) == counters(2, reserved=8)


# --- reservations: every bad request is a 4xx that changes nothing ---------------------------


def item(pid: Any = A, quantity: Any = 1) -> dict[str, Any]:
    return {"product_id": pid, "quantity": quantity}


BAD = "validation_failed"
BAD_BODIES: list[tuple[Any, dict[str, str] | None, int, str | None]] = [
    (b"{not json", JSON_TYPE, 400, "malformed_json"),
    (b"", JSON_TYPE, 422, BAD),
    ({"items": [item()]}, {"Content-Type": "text/plain"}, 415, "unsupported_media_type"),
    ([], None, 422, BAD),
    ({}, None, 422, BAD),
    ({"items": []}, None, 422, BAD),
    ({"items": item()}, None, 422, BAD),
    ({"items": [item(quantity=0)]}, None, 422, BAD),
    ({"items": [item(quantity=-1)]}, None, 422, BAD),
    ({"items": [item(quantity=1001)]}, None, 422, BAD),
    ({"items": [item(quantity=10**30)]}, None, 422, BAD),
    ({"items": [item(quantity="1")]}, None, 422, BAD),
    ({"items": [item(quantity=1.5)]}, None, 422, BAD),
    ({"items": [item(quantity=True)]}, None, 422, BAD),
    ({"items": [item(quantity=None)]}, None, 422, BAD),
    ({"items": [{"product_id": A}]}, None, 422, BAD),
    ({"items": [item(pid=7)]}, None, 422, BAD),
    ({"items": [item(pid="")]}, None, 422, BAD),
    ({"items": [item(), item(quantity=2)]}, None, 422, BAD),  # the same product twice
    ({"items": [item(pid=f"p{n}") for n in range(101)]}, None, 422, BAD),
    ({"items": [{**item(), "price": 1}]}, None, 422, BAD),
    ({"items": [item()], "x": 1}, None, 422, BAD),
    ({"items": [item()], "ttl_seconds": 9}, None, 422, BAD),
    ({"items": [item()], "ttl_seconds": 3601}, None, 422, BAD),
    ({"items": [item()], "ttl_seconds": "900"}, None, 422, BAD),
    ({"items": [item(), item(pid="no-such-thing")]}, None, 404, "unknown_product"),
    ({"items": [item(pid="x" * 64)]}, None, 404, "unknown_product"),
    (b'{"items": [], "pad": "' + b"x" * (64 * 1024) + b'"}', JSON_TYPE, 413, None),
]


async def test_bad_reservations_change_nothing(api: ContractClient, subtests: Any) -> None:
    before = await books(api.app)
    for body, headers, status, code in BAD_BODIES:
        with subtests.test(body=repr(body)[:60], status=status):
            if isinstance(body, bytes) or headers is not None:
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                resp = await api.put("/reservations/saga-bad-1", data=data, headers=headers)
            else:
                resp = await api.put("/reservations/saga-bad-1", json=body)
            answer = await problem(resp, status, code)
            if status == 422:
                assert answer["errors"]
                assert all(e["field"] and e["message"] for e in answer["errors"])
            if code == "unknown_product":
                assert answer["product_ids"] == [body["items"][-1]["product_id"]]
            assert await books(api.app) == before
    assert await stock(api, A) == counters(STOCK)


async def test_unknown_reservation_is_404(api: ContractClient) -> None:
    before = await books(api.app)
    await problem(await api.get("/reservations/saga-unknown"), 404, "unknown_reservation")
    for action in ("commit", "release"):
        resp = await api.post(f"/reservations/saga-unknown/{action}")
        await problem(resp, 404, "unknown_reservation")
    assert await books(api.app) == before


async def test_malformed_reservation_key_is_400(api: ContractClient, subtests: Any) -> None:
    before = await books(api.app)
    for key in ("k" * 257, "bad%01key", "bad%7Fkey"):
        for action in ("PUT", "GET", "commit", "release"):
            with subtests.test(key=key[:10], action=action):
                if action == "PUT":
                    resp = await api.put(f"/reservations/{key}", json={"items": [item()]})
                elif action == "GET":
                    resp = await api.get(f"/reservations/{key}")
                else:
                    resp = await api.post(f"/reservations/{key}/{action}")
                await problem(resp, 400, "invalid_reservation_key")
    assert await books(api.app) == before


async def test_longest_key_and_saga_style_key_are_accepted(api: ContractClient) -> None:
    for key in ("k" * 256, "u_3f2a9c.checkout-2026-11-21:01"):
        resp = await reserve(api, key, (A, 1))
        assert resp.status == 201 and (await resp.json())["key"] == key
        assert (await api.get(f"/reservations/{key}")).status == 200


# --- expiry ----------------------------------------------------------------------------------


async def test_sweep_expires_only_what_is_due(api: ContractClient) -> None:
    body = await (await reserve(api, "saga-exp-1", (A, 3), (B, 2), ttl_seconds=10)).json()
    created = parse_time(body["created_at"]).timestamp()
    engine = api.app[kit.DB]

    assert await sweeper.sweep(engine, now=created + 5) == []
    assert await sweeper.sweep(engine, now=created + 10) == []  # expires *after* expires_at
    assert await stock(api, A) == counters(7, reserved=3)

    assert await sweeper.sweep(engine, now=created + 11) == ["saga-exp-1"]
    assert (await (await api.get("/reservations/saga-exp-1")).json())["status"] == "expired"
    assert await stock(api, A) == counters(STOCK)
    assert await stock(api, B) == counters(STOCK, pid=B)

    # A second pass, a release or a commit never count it again.
    before = await books(api.app)
    assert await sweeper.sweep(engine, now=created + 100) == []
    resp = await api.post("/reservations/saga-exp-1/release")
    assert resp.status == 200 and (await resp.json())["status"] == "expired"
    body = await problem(
        await api.post("/reservations/saga-exp-1/commit"), 409, "reservation_not_held"
    )
    assert body["reservation_status"] == "expired"
    assert await books(api.app) == before


async def test_sweep_leaves_committed_released_and_fresh_ones(api: ContractClient) -> None:
    await reserve(api, "saga-sw-com", (A, 1), ttl_seconds=10)
    await reserve(api, "saga-sw-rel", (A, 2), ttl_seconds=10)
    fresh = await (await reserve(api, "saga-sw-new", (A, 3), ttl_seconds=3600)).json()
    await api.post("/reservations/saga-sw-com/commit")
    await api.post("/reservations/saga-sw-rel/release")
    now = parse_time(fresh["created_at"]).timestamp() + 60
    before = await books(api.app)
    assert await sweeper.sweep(api.app[kit.DB], now=now) == []
    assert await books(api.app) == before
    assert await stock(api, A) == counters(6, reserved=3, sold=1)


async def test_commit_past_expiry_before_the_sweep_is_allowed(api: ContractClient) -> None:
    await reserve(api, "saga-late-1", (A, 2), ttl_seconds=10)
    await set_expires_at(api.app, "saga-late-1", time.time() - 60)
    resp = await api.post("/reservations/saga-late-1/commit")
    assert resp.status == 200 and (await resp.json())["status"] == "committed"
    assert await sweeper.sweep(api.app[kit.DB], now=time.time()) == []
    assert await stock(api, A) == counters(8, sold=2)


async def test_background_sweeper_expires_reservations(service: ServiceFactory) -> None:
    api = await service("products", PRODUCTS_STOCK=str(STOCK), PRODUCTS_SWEEP_SECONDS="0.05")
    await reserve(api, "saga-bg-1", (A, 4), ttl_seconds=10)
    await reserve(api, "saga-bg-2", (A, 1), ttl_seconds=3600)
    await set_expires_at(api.app, "saga-bg-1", time.time() - 1)
    deadline = time.monotonic() + 5
    while (await (await api.get("/reservations/saga-bg-1")).json())["status"] == "held":
        assert time.monotonic() < deadline, "the sweeper did not run"
        await asyncio.sleep(0.02)
    assert (await (await api.get("/reservations/saga-bg-2")).json())["status"] == "held"
    assert await stock(api, A) == counters(9, reserved=1)
    await assert_consistent(api.app)


@pytest.mark.parametrize("raw", ["0", "-1", "soon", "nan"])
def test_sweep_interval_must_be_positive(raw: str) -> None:
    settings = kit.Settings.from_env("products", {"PRODUCTS_SWEEP_SECONDS": raw})
    with pytest.raises(ValueError, match="PRODUCTS_SWEEP_SECONDS"):
        sweeper.interval_from(settings)


def test_sweep_interval_defaults_to_five_seconds() -> None:
    assert sweeper.interval_from(kit.Settings.from_env("products", {})) == 5.0


@pytest.mark.parametrize("raw", ["-1", "ten", "1.5"])
def test_bad_products_stock_stops_start_up(raw: str) -> None:
    with pytest.raises(ValueError, match="PRODUCTS_STOCK"):
        create_app(kit.Settings.from_env("products", {"PRODUCTS_STOCK": raw}))


# --- seeding ---------------------------------------------------------------------------------


async def test_restart_keeps_the_counters(
    api: ContractClient, aiohttp_client: Any, tmp_path: Path, clean_redis: str
) -> None:
    await reserve(api, "saga-restart", (A, 3))
    await api.post("/reservations/saga-restart/commit")
    # Another process on the same file, with another PRODUCTS_STOCK: seeding only fills gaps.
    settings = service_settings("products", tmp_path, clean_redis, PRODUCTS_STOCK="99")
    app = build_app("products", settings)
    other = ContractClient(await aiohttp_client(app), app[kit.OPENAPI])
    assert await stock(other, A) == counters(7, sold=3)
    assert len((await (await other.get("/products")).json())["products"]) == len(CATALOG)


# --- concurrency -----------------------------------------------------------------------------


async def race(clients: list[ContractClient], n: int) -> list[int]:
    calls = [reserve(clients[i % len(clients)], f"saga-race-{i:03d}", (A, 1)) for i in range(n)]
    responses = await asyncio.gather(*calls)
    for resp in responses:
        if resp.status == 409:
            body = await resp.json()
            assert body["code"] == "out_of_stock" and body["available"] == 0
    return sorted(resp.status for resp in responses)


async def test_fifty_concurrent_reservations_never_oversell(api: ContractClient) -> None:
    assert await race([api], 50) == [201] * 10 + [409] * 40
    assert await stock(api, A) == counters(0, reserved=10)


async def two_replicas(aiohttp_client: Any, tmp_path: Path, redis_url: str) -> list[ContractClient]:
    """Two apps (two engines, two pools) on one SQLite file, started at the same time."""
    settings = service_settings("products", tmp_path, redis_url, PRODUCTS_STOCK=str(STOCK))
    apps = [build_app("products", settings), build_app("products", settings)]
    clients = await asyncio.gather(*(aiohttp_client(app) for app in apps))
    assert clients[0].app[kit.DB] is not clients[1].app[kit.DB]
    return [ContractClient(c, c.app[kit.OPENAPI]) for c in clients]


async def test_two_replicas_on_one_file_never_oversell(
    aiohttp_client: Any, tmp_path: Path, clean_redis: str
) -> None:
    replicas = await two_replicas(aiohttp_client, tmp_path, clean_redis)
    listed = await (await replicas[1].get("/products")).json()
    assert len(listed["products"]) == len(CATALOG)  # both seeded, no product twice
    assert await race(replicas, 50) == [201] * 10 + [409] * 40
    for replica in replicas:
        assert await stock(replica, A) == counters(0, reserved=10)
    await assert_consistent(replicas[0].app)


async def test_concurrent_puts_of_one_key_hold_once(
    aiohttp_client: Any, tmp_path: Path, clean_redis: str
) -> None:
    replicas = await two_replicas(aiohttp_client, tmp_path, clean_redis)
    responses = await asyncio.gather(
        *(reserve(replicas[i % 2], "saga-same-key", (A, 2), (B, 1)) for i in range(20))
    )
    assert sorted(r.status for r in responses) == [200] * 19 + [201]
    bodies = [await r.json() for r in responses]
    assert all(b == bodies[0] for b in bodies)
    assert await stock(replicas[0], A) == counters(8, reserved=2)
    await assert_consistent(replicas[0].app)


async def test_concurrent_commit_and_release_count_once(
    aiohttp_client: Any, tmp_path: Path, clean_redis: str
) -> None:
    replicas = await two_replicas(aiohttp_client, tmp_path, clean_redis)
    for n in range(5):
        await reserve(replicas[0], f"saga-cr-{n}", (A, 1))
    engine = replicas[0].app[kit.DB]
    results = await asyncio.gather(
        *(replicas[0].post(f"/reservations/saga-cr-{n}/commit") for n in range(5)),
        *(replicas[1].post(f"/reservations/saga-cr-{n}/release") for n in range(5)),
        *(sweeper.sweep(engine, now=time.time() + 10_000) for _ in range(3)),
    )
    commits, releases = results[:5], results[5:10]
    for commit, release in zip(commits, releases, strict=True):
        assert sorted((commit.status, release.status)) == [200, 409]  # one wins per key
    swept = [key for keys in results[10:] for key in keys]
    assert len(swept) == len(set(swept))  # none expired twice
    sold = sum(r.status == 200 for r in commits)
    assert await stock(replicas[0], A) == counters(STOCK - sold, sold=sold)
    await assert_consistent(replicas[0].app)
