"""The cart: per-user lines in a Redis hash, priced live from the real products service."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import ClientResponse
from sqlalchemy import update

from services import kit
from services.products import store as products_store
from tests.asserts import ok, problem
from tests.conftest import build_app, closed_port, service_settings
from tests.contract import ContractClient
from tests.polling import eventually

CATALOG = {
    entry["id"]: entry
    for entry in yaml.safe_load(
        (Path(__file__).parents[2] / "services/products/catalog.yaml").read_text()
    )
}
MUG, WATCH, JAR = "speckled-mug", "meridian-watch", "bamboo-glass-jar"
ALICE = {"X-User-Id": "u_alice"}
BOB = {"X-User-Id": "u_bob"}


def price(product_id: str) -> int:
    return CATALOG[product_id]["price_cents"]


async def cart_of(api: ContractClient, user: str = "u_alice") -> dict[str, str]:
    """The stored cart hash, straight from Redis."""
    return await api.app[kit.REDIS].hgetall(f"cart:{user}")


async def priced_cart(api: ContractClient) -> dict[str, Any]:
    """The cart as ``GET /cart`` answers it (prices from products or the cache)."""
    return await ok(await api.get("/cart", headers=ALICE))


async def put(
    api: ContractClient, product_id: str, quantity: Any, headers: dict[str, str] = ALICE
) -> ClientResponse:
    return await api.put(f"/cart/items/{product_id}", json={"quantity": quantity}, headers=headers)


async def offline_cart(aiohttp_client: Any, tmp_path: Path, redis_url: str) -> ContractClient:
    """A second cart app on the same Redis whose products peer is a closed port."""
    closed = f"products=http://127.0.0.1:{closed_port()}"
    app = build_app("cart", service_settings("cart", tmp_path, redis_url, PEER_URLS=closed))
    return ContractClient(await aiohttp_client(app), app[kit.OPENAPI])


@pytest.fixture
async def api(service) -> ContractClient:  # type: ignore[no-untyped-def]
    return await service("cart", peers=["products"])


async def test_empty_cart_has_the_full_shape(api: ContractClient) -> None:
    cart = await ok(await api.get("/cart", headers=ALICE))
    assert cart == {
        "user_id": "u_alice",
        "items": [],
        "item_count": 0,
        "total_cents": 0,
        "currency": "USD",
    }
    assert await api.app[kit.REDIS].exists("cart:u_alice") == 0


async def test_add_and_change_quantity_price_lines_sorted_with_totals(api: ContractClient) -> None:
    cart = await ok(await put(api, MUG, 2))
    assert [line["product_id"] for line in cart["items"]] == [MUG]
    cart = await ok(await put(api, WATCH, 1))
    assert [line["product_id"] for line in cart["items"]] == [WATCH, MUG]  # sorted by id
    mug = cart["items"][1]
    assert mug == {
        "product_id": MUG,
        "name": CATALOG[MUG]["name"],
        "quantity": 2,
        "unit_price_cents": price(MUG),
        "line_total_cents": 2 * price(MUG),
        "currency": "USD",
        "available": CATALOG[MUG]["stock"],
        "in_stock": True,
    }
    assert cart["item_count"] == 3
    assert cart["total_cents"] == 2 * price(MUG) + price(WATCH)

    cart = await ok(await put(api, MUG, 5))
    assert cart["item_count"] == 6
    assert cart["total_cents"] == 5 * price(MUG) + price(WATCH)
    assert await cart_of(api) == {MUG: "5", WATCH: "1"}
    assert 29 * 86400 < await api.app[kit.REDIS].ttl("cart:u_alice") <= 30 * 86400
    assert await ok(await api.get("/cart", headers=ALICE)) == cart


async def test_zero_removes_and_delete_item_is_idempotent(api: ContractClient) -> None:
    await ok(await put(api, MUG, 2))
    await ok(await put(api, WATCH, 1))
    cart = await ok(await put(api, MUG, 0))
    assert [line["product_id"] for line in cart["items"]] == [WATCH]
    assert await cart_of(api) == {WATCH: "1"}
    # Setting 0 on a line that is not there (even an id the catalog lacks) changes nothing.
    assert await ok(await put(api, "not-in-catalog", 0)) == cart
    assert await cart_of(api) == {WATCH: "1"}

    cart = await ok(await api.delete(f"/cart/items/{WATCH}", headers=ALICE))
    assert cart["items"] == [] and cart["item_count"] == 0 and cart["total_cents"] == 0
    assert await cart_of(api) == {}
    again = await ok(await api.delete(f"/cart/items/{WATCH}", headers=ALICE))
    assert again == cart


async def test_delete_cart_answers_204_and_empties_it(api: ContractClient) -> None:
    await ok(await put(api, MUG, 2))
    await ok(await put(api, JAR, 3))
    resp = await api.delete("/cart", headers=ALICE)
    assert resp.status == 204 and await resp.read() == b""
    assert await api.app[kit.REDIS].exists("cart:u_alice") == 0
    assert (await ok(await api.get("/cart", headers=ALICE)))["items"] == []
    assert (await api.delete("/cart", headers=ALICE)).status == 204  # idempotent


async def test_two_users_have_separate_carts(api: ContractClient) -> None:
    await ok(await put(api, MUG, 2, ALICE))
    await ok(await put(api, WATCH, 1, BOB))
    alice = await ok(await api.get("/cart", headers=ALICE))
    bob = await ok(await api.get("/cart", headers=BOB))
    assert alice["user_id"] == "u_alice" and [i["product_id"] for i in alice["items"]] == [MUG]
    assert bob["user_id"] == "u_bob" and [i["product_id"] for i in bob["items"]] == [WATCH]
    assert (await api.delete("/cart", headers=BOB)).status == 204
    assert await cart_of(api, "u_alice") == {MUG: "2"}
    assert await cart_of(api, "u_bob") == {}


async def test_first_read_caches_each_product_with_the_configured_ttl(service) -> None:  # type: ignore[no-untyped-def]
    api = await service("cart", peers=["products"], CART_PRODUCT_TTL_SECONDS="3")
    redis = api.app[kit.REDIS]
    await ok(await put(api, MUG, 1))
    await ok(await put(api, WATCH, 1))
    await redis.delete(f"product:{WATCH}")  # the mug is cached, the watch is not

    cart = await ok(await api.get("/cart", headers=ALICE))
    assert [line["product_id"] for line in cart["items"]] == [WATCH, MUG]
    for product_id in (MUG, WATCH):
        assert 0 < await redis.ttl(f"product:{product_id}") <= 3
        cached = json.loads(await redis.get(f"product:{product_id}"))
        assert cached["id"] == product_id and cached["price_cents"] == price(product_id)


async def test_the_cart_shows_the_cached_price_until_the_entry_expires(api: ContractClient) -> None:
    redis = api.app[kit.REDIS]
    await ok(await put(api, MUG, 2))
    cached = json.loads(await redis.get(f"product:{MUG}"))
    await redis.set(f"product:{MUG}", json.dumps({**cached, "price_cents": 1234}), px=300)

    cart = await ok(await api.get("/cart", headers=ALICE))
    assert cart["items"][0]["unit_price_cents"] == 1234
    assert cart["total_cents"] == 2468

    # once the entry expires, the next read asks products again
    cart = await eventually(
        lambda: priced_cart(api), lambda c: c["items"][0]["unit_price_cents"] != 1234, what="expiry"
    )
    assert cart["items"][0]["unit_price_cents"] == price(MUG)
    assert cart["total_cents"] == 2 * price(MUG)


async def test_a_price_change_in_products_shows_once_the_cache_expires(
    service,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    api = await service("cart", peers=["products"], CART_PRODUCT_TTL_SECONDS="1")
    await ok(await put(api, MUG, 3))
    engine = kit.make_engine(f"sqlite+aiosqlite:///{tmp_path / 'products.db'}")
    try:
        async with engine.begin() as conn:
            table = products_store.products
            result = await conn.execute(
                update(table).where(table.c.id == MUG).values(price_cents=777)
            )
            assert result.rowcount == 1
    finally:
        await engine.dispose()

    cart = await ok(await api.get("/cart", headers=ALICE))
    assert cart["items"][0]["unit_price_cents"] == price(MUG)  # still cached
    cart = await eventually(
        lambda: priced_cart(api), lambda c: c["items"][0]["unit_price_cents"] != price(MUG)
    )
    assert cart["items"][0]["unit_price_cents"] == 777
    assert cart["total_cents"] == 3 * 777


async def test_a_warm_cache_answers_without_products(
    api: ContractClient,
    aiohttp_client,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    clean_redis: str,
) -> None:
    await ok(await put(api, MUG, 2))
    await ok(await put(api, WATCH, 1))
    cart = await ok(await api.get("/cart", headers=ALICE))

    offline = await offline_cart(aiohttp_client, tmp_path, clean_redis)
    assert await ok(await offline.get("/cart", headers=ALICE)) == cart
    changed = await ok(await put(offline, MUG, 4))
    assert changed["total_cents"] == 4 * price(MUG) + price(WATCH)
    assert await cart_of(api) == {MUG: "4", WATCH: "1"}


async def test_a_cold_cache_with_products_down_is_503_naming_products(
    api: ContractClient,
    aiohttp_client,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    clean_redis: str,
) -> None:
    await ok(await put(api, MUG, 2))
    await api.app[kit.REDIS].delete(f"product:{MUG}")
    offline = await offline_cart(aiohttp_client, tmp_path, clean_redis)

    body = await problem(await offline.get("/cart", headers=ALICE), 503, "dependency_unavailable")
    assert body["dependency"] == "products" and "products" in body["detail"]
    body = await problem(await put(offline, WATCH, 1), 503, "dependency_unavailable")
    assert body["dependency"] == "products"
    assert await cart_of(api) == {MUG: "2"}


async def test_the_lines_alone_are_read_without_the_catalogue(
    api: ContractClient,
    aiohttp_client,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    clean_redis: str,
) -> None:
    await ok(await put(api, MUG, 2))
    await ok(await put(api, WATCH, 1))
    await api.app[kit.REDIS].delete(f"product:{MUG}", f"product:{WATCH}")  # a cold cache
    offline = await offline_cart(aiohttp_client, tmp_path, clean_redis)  # and products down

    lines = await ok(await offline.get("/cart?priced=false", headers=ALICE))
    assert lines == {
        "user_id": "u_alice",
        "items": [{"product_id": WATCH, "quantity": 1}, {"product_id": MUG, "quantity": 2}],
        "item_count": 3,
    }
    empty = await ok(await offline.get("/cart?priced=false", headers=BOB))
    assert empty == {"user_id": "u_bob", "items": [], "item_count": 0}
    await problem(await api.get("/cart?priced=no", headers=ALICE), 400, "bad_query")
    assert await cart_of(api) == {MUG: "2", WATCH: "1"}


async def test_more_than_available_is_409_with_available(service) -> None:  # type: ignore[no-untyped-def]
    api = await service("cart", peers=["products"], PRODUCTS_STOCK="5")
    await ok(await put(api, MUG, 1))
    body = await problem(await put(api, MUG, 6), 409, "out_of_stock")
    assert body["available"] == 5 and body["product_id"] == MUG
    assert await cart_of(api) == {MUG: "1"}
    cart = await ok(await put(api, MUG, 5))
    assert cart["items"][0]["quantity"] == 5 and cart["items"][0]["available"] == 5


@pytest.mark.parametrize("product_id", ["no-such-product", "-leading-dash", "x" * 65, "bad%20id"])
async def test_unknown_or_malformed_product_is_404(api: ContractClient, product_id: str) -> None:
    await ok(await put(api, MUG, 2))
    body = await problem(await put(api, product_id, 1), 404, "unknown_product")
    assert "product_id" in body
    assert await cart_of(api) == {MUG: "2"}


async def test_deleting_a_malformed_id_is_404_and_an_absent_line_is_fine(
    api: ContractClient,
) -> None:
    await ok(await put(api, MUG, 2))
    await problem(await api.delete("/cart/items/bad%20id", headers=ALICE), 404, "unknown_product")
    cart = await ok(await api.delete("/cart/items/no-such-product", headers=ALICE))
    assert [line["product_id"] for line in cart["items"]] == [MUG]
    assert await cart_of(api) == {MUG: "2"}


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b'{"quantity": -1}', "application/json", 422),
        (b'{"quantity": 100}', "application/json", 422),
        (b'{"quantity": "2"}', "application/json", 422),
        (b'{"quantity": 2.5}', "application/json", 422),
        (b'{"quantity": 2.0}', "application/json", 422),
        (b'{"quantity": true}', "application/json", 422),
        (b'{"quantity": null}', "application/json", 422),
        (b'{"quantity": 99999999999999999999999}', "application/json", 422),
        (b"{}", "application/json", 422),
        (b'{"quantity": 1, "note": "x"}', "application/json", 422),
        (b"[1]", "application/json", 422),
        (b"", "application/json", 422),
        (b'{"quantity": 1', "application/json", 400),
        (b"not json", "application/json", 400),
        (b'{"quantity": 1}', "text/plain", 415),
    ],
)
async def test_bad_bodies_are_problems_and_change_nothing(
    api: ContractClient, body: bytes, content_type: str, status: int
) -> None:
    await ok(await put(api, MUG, 2))
    resp = await api.put(
        f"/cart/items/{MUG}", data=body, headers={**ALICE, "Content-Type": content_type}
    )
    await problem(resp, status)
    assert await cart_of(api) == {MUG: "2"}


async def test_oversized_body_is_413_and_changes_nothing(api: ContractClient) -> None:
    await ok(await put(api, MUG, 2))
    big = b'{"quantity": 1, "pad": "' + b"x" * (64 * 1024) + b'"}'
    resp = await api.put(
        f"/cart/items/{MUG}", data=big, headers={**ALICE, "Content-Type": "application/json"}
    )
    await problem(resp, 413)
    assert await cart_of(api) == {MUG: "2"}


async def test_every_call_needs_the_user_header(api: ContractClient) -> None:
    await ok(await put(api, MUG, 2))
    for resp in [
        await api.get("/cart"),
        await api.put(f"/cart/items/{MUG}", json={"quantity": 5}),
        await api.put(f"/cart/items/{MUG}", json={"quantity": 5}, headers={"X-User-Id": ""}),
        await api.delete(f"/cart/items/{MUG}"),
        await api.delete("/cart"),
    ]:
        await problem(resp, 401, "unauthenticated")
    assert await cart_of(api) == {MUG: "2"}


async def test_products_gone_from_the_catalog_are_dropped(api: ContractClient) -> None:
    redis = api.app[kit.REDIS]
    await ok(await put(api, MUG, 2))
    await redis.hset("cart:u_alice", mapping={"discontinued-lamp": "1", "retired-vase": "4"})

    cart = await ok(await api.get("/cart", headers=ALICE))
    assert [line["product_id"] for line in cart["items"]] == [MUG]
    assert cart["item_count"] == 2 and cart["total_cents"] == 2 * price(MUG)
    assert await cart_of(api) == {MUG: "2"}

    await redis.hset("cart:u_bob", "discontinued-lamp", "1")
    assert (await ok(await api.get("/cart", headers=BOB)))["items"] == []
    assert await redis.exists("cart:u_bob") == 0


async def test_a_cart_holds_at_most_100_products(api: ContractClient) -> None:
    redis = api.app[kit.REDIS]
    ghosts = {f"retired-{n:03d}": "1" for n in range(99)}
    await redis.hset("cart:u_alice", mapping={**ghosts, MUG: "1"})
    # Changing a line of a full cart is fine (and the 99 retired products are dropped).
    cart = await ok(await put(api, MUG, 3))
    assert [(i["product_id"], i["quantity"]) for i in cart["items"]] == [(MUG, 3)]

    await redis.hset("cart:u_alice", mapping={**ghosts, "retired-100": "1"})
    body = await problem(await put(api, WATCH, 1), 409, "cart_full")
    assert body["max_lines"] == 100
    assert await cart_of(api) == {**ghosts, "retired-100": "1", MUG: "3"}


async def test_health_and_contract_are_served(api: ContractClient) -> None:
    assert (await ok(await api.get("/healthz"))) == {"status": "ok", "service": "cart"}
    assert (await ok(await api.get("/readyz")))["checks"] == {"redis": "ok"}
    doc = await ok(await api.get("/openapi.json"))
    assert set(doc["paths"]) >= {"/cart", "/cart/items/{product_id}"}
