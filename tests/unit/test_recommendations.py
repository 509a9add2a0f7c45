"""Recommendations: products related by category, over the real products service."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from services import kit
from services.recommendations.api import related
from tests.asserts import ok, problem
from tests.conftest import build_app, closed_port, held_socket, port_of, server_on, service_settings
from tests.contract import ContractClient

MUG, JAR, SALT = "speckled-mug", "bamboo-glass-jar", "salt-pepper-set"


@pytest.fixture
async def api(service: Any) -> ContractClient:
    return await service("recommendations", peers=["products"])


async def recommend(api: ContractClient, query: str) -> list[str]:
    body = await ok(await api.get(f"/recommendations?{query}"))
    return [p["id"] for p in body["products"]]


async def test_a_product_page_gets_the_products_of_its_category_but_never_itself(
    api: ContractClient,
) -> None:
    body = await ok(await api.get(f"/recommendations?product_ids={MUG}"))
    assert [p["id"] for p in body["products"]] == [JAR, SALT]  # both kitchen, by name
    assert all("kitchen" in p["categories"] and p["in_stock"] for p in body["products"])
    assert body["context"] == [MUG]


async def test_a_cart_context_never_recommends_what_is_in_the_cart(api: ContractClient) -> None:
    found = await recommend(api, f"product_ids={MUG},{JAR}&limit=20")
    assert MUG not in found and JAR not in found
    # kitchen (the mug's, the jar's) and home (the jar's): the salt set, the candlestick...
    assert set(found) == {SALT, "brass-candlestick", "vintage-typewriter"}


async def test_more_shared_categories_rank_first_and_limit_cuts(api: ContractClient) -> None:
    # the sun hat is accessories and clothing: the tank top shares clothing, others accessories
    found = await recommend(api, "product_ids=straw-sun-hat,riviera-sunglasses&limit=2")
    assert len(found) == 2 and "straw-sun-hat" not in found


async def test_unknown_or_unrelated_products_get_an_empty_list(api: ContractClient) -> None:
    assert await recommend(api, "product_ids=no-such-thing") == []
    assert await recommend(api, "product_ids=penny-loafers") == []  # the only footwear


async def test_sold_out_products_are_never_recommended(service: Any) -> None:
    api = await service("recommendations", peers=["products"], PRODUCTS_STOCK="0")
    assert await recommend(api, f"product_ids={MUG}") == []


@pytest.mark.parametrize(
    "query",
    [
        "",
        "product_ids=",
        "product_ids=Not_An_Id",
        "product_ids=" + ",".join(f"p{i}" for i in range(101)),
        f"product_ids={MUG}&limit=0",
        f"product_ids={MUG}&limit=21",
        f"product_ids={MUG}&limit=many",
    ],
)
async def test_a_bad_context_is_a_400(api: ContractClient, query: str) -> None:
    await problem(await api.get(f"/recommendations?{query}"), 400, "bad_query")


async def test_products_down_with_no_copy_yet_is_a_503_naming_it(
    aiohttp_client: Any, tmp_path: Path, clean_redis: str
) -> None:
    closed = f"products=http://127.0.0.1:{closed_port()}"
    settings = service_settings("recommendations", tmp_path, clean_redis, PEER_URLS=closed)
    app = build_app("recommendations", settings)
    api = ContractClient(await aiohttp_client(app), app[kit.OPENAPI])
    body = await problem(await api.get(f"/recommendations?product_ids={MUG}"), 503)
    assert body["code"] == "dependency_unavailable" and body["dependency"] == "products"


async def test_the_last_copy_of_the_catalog_serves_while_products_is_away(
    aiohttp_client: Any, tmp_path: Path, clean_redis: str
) -> None:
    sock = held_socket()
    port = port_of(sock)
    products = server_on(
        build_app("products", service_settings("products", tmp_path, clean_redis)), sock
    )
    await products.start_server()
    env = {"PEER_URLS": f"products=http://127.0.0.1:{port}"}
    settings = service_settings(
        "recommendations", tmp_path, clean_redis, RECOMMENDATIONS_CATALOG_TTL_SECONDS="0", **env
    )
    app = build_app("recommendations", settings)
    api = ContractClient(await aiohttp_client(app), app[kit.OPENAPI])
    assert await recommend(api, f"product_ids={MUG}") == [JAR, SALT]
    await products.close()
    assert await recommend(api, f"product_ids={MUG}") == [JAR, SALT]  # stale, but there


def test_ranking_counts_shared_categories() -> None:
    products = [
        {"id": "a", "name": "A", "categories": ["x", "y"], "in_stock": True},
        {"id": "b", "name": "B", "categories": ["x"], "in_stock": True},
        {"id": "c", "name": "C", "categories": ["x", "y"], "in_stock": True},
        {"id": "d", "name": "D", "categories": ["x", "y"], "in_stock": False},
        {"id": "e", "name": "E", "categories": ["z"], "in_stock": True},
    ]
    assert [p["id"] for p in related(products, ["c"], 10)] == ["a", "b"]
    assert [p["id"] for p in related(products, ["c"], 1)] == ["a"]
