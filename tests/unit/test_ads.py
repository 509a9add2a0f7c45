"""Ads: one contextual ad for a page's categories, from the shipped table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from services.ads import table
from tests.asserts import ok, problem
from tests.contract import ContractClient


@pytest.fixture
async def api(service: Any) -> ContractClient:
    return await service("ads")


async def ad_for(api: ContractClient, categories: str | None) -> dict[str, Any]:
    query = "" if categories is None else f"?categories={categories}"
    return (await ok(await api.get(f"/ads{query}")))["ad"]


async def test_a_kitchen_page_gets_a_kitchen_ad_that_links_into_the_shop(
    api: ContractClient,
) -> None:
    ad = await ad_for(api, "kitchen")
    assert ad["category"] == "kitchen" and ad["url"].startswith("/") and ad["text"]


async def test_the_first_category_with_ads_wins_and_the_house_ad_is_the_fallback(
    api: ContractClient,
) -> None:
    assert (await ad_for(api, "no-such,home,kitchen"))["category"] == "home"
    assert (await ad_for(api, "no-such"))["category"] == "house"
    assert (await ad_for(api, None))["category"] == "house"
    assert (await ad_for(api, ""))["category"] == "house"


async def test_the_same_page_gets_the_same_ad(api: ContractClient) -> None:
    assert await ad_for(api, "garden,outdoor") == await ad_for(api, "garden,outdoor")


@pytest.mark.parametrize(
    "categories", ["Kitchen", "kit chen", "a/b", ",".join(f"c{i}" for i in range(21))]
)
async def test_a_malformed_category_is_a_400(api: ContractClient, categories: str) -> None:
    await problem(await api.get(f"/ads?categories={categories}"), 400, "bad_query")


def test_the_shipped_table_covers_every_catalog_category() -> None:
    import yaml

    catalog = Path(__file__).parents[2] / "services/products/catalog.yaml"
    categories = {c for p in yaml.safe_load(catalog.read_text()) for c in p["categories"]}
    assert categories <= set(table.load())


def test_a_table_without_a_house_ad_or_with_a_bad_url_is_refused(tmp_path: Path) -> None:
    bare = tmp_path / "bare.yaml"
    bare.write_text("kitchen:\n  - {id: k, text: Cook, url: /}\n")
    with pytest.raises(ValueError, match="house"):
        table.load(bare)
    away = tmp_path / "away.yaml"
    away.write_text("house:\n  - {id: h, text: Elsewhere, url: 'https://evil.example'}\n")
    with pytest.raises(ValidationError):
        table.load(away)
