"""The optional sections on the real mesh: related products and an ad, asked in parallel, and a
product page that still renders, at once, when both services fail; a buyer's rating."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import aiohttp
import pytest

from mesh.local import LocalRun
from tests.integration.test_mesh_policies import admin, switched
from tests.integration.test_purchase import CARD, sign_in
from tests.integration.test_traces import buy, fetch_trace, is_network, trace_id_of
from tests.polling import eventually

pytestmark = pytest.mark.integration
MUG_PAGE = "/products/speckled-mug"
SECTIONS = ('data-testid="recommendations"', 'data-testid="ad"')


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def product_page(http: aiohttp.ClientSession, shop: LocalRun) -> tuple[int, str, str]:
    async with http.get(shop.public_url + MUG_PAGE) as resp:
        return resp.status, await resp.text(), trace_id_of(resp)


async def full_page(http: aiohttp.ClientSession, shop: LocalRun) -> tuple[int, str, str]:
    """A product page with both sections (the first ones may miss them while the mesh warms)."""

    def whole(answer: tuple[int, str, str]) -> bool:
        return answer[0] == 200 and all(s in answer[1] for s in SECTIONS)

    return await eventually(
        lambda: product_page(http, shop), whole, within=30, interval=0.2, what="both sections"
    )


async def test_one_trace_of_a_product_page_shows_recommendations_and_ads_in_parallel(
    shop: LocalRun, http: aiohttp.ClientSession
) -> None:
    _, html, tid = await full_page(http, shop)
    assert 'data-product="bamboo-glass-jar"' in html  # a kitchen product, like the mug
    services = ["ingress", "frontend", "gateway", "recommendations", "ads", "ratings"]
    t = await fetch_trace(http, shop, tid, services)
    calls = {}
    for peer in ("recommendations", "ads", "ratings"):
        egress = [s for s in t.find("frontend", f"egress {peer}") if is_network(s)]
        assert len(egress) == 1, f"one call from the frontend to {peer}"
        calls[peer] = egress[0]
        inbound = t.children(egress[0])
        assert [s["operationName"] for s in inbound] == [f"ingress {peer}"]
    recs, ads = calls["recommendations"], calls["ads"]
    # Parallel: each call started before the other had ended.
    assert recs["startTime"] < ads["startTime"] + ads["duration"]
    assert ads["startTime"] < recs["startTime"] + recs["duration"]
    # All three asked by the same product page request of the frontend app.
    clients = [t.parent(c) for c in calls.values()]  # the app's client span of each call
    assert all(c is not None for c in clients)
    pages = [t.parent(c) for c in clients if c is not None]
    assert pages[0] is not None and all(p is pages[0] for p in pages)


async def test_with_recommendations_and_ads_aborted_the_product_page_renders_without_them(
    shop: LocalRun, http: aiohttp.ClientSession
) -> None:
    await full_page(http, shop)
    front = admin(shop, "frontend-0", http)
    targets = {peer: admin(shop, f"{peer}-0", http) for peer in ("recommendations", "ads")}
    aborts = {p: await a.stat("http.inbound.fault.aborts_injected") for p, a in targets.items()}
    before = await front.stats("cluster.recommendations.upstream_rq|cluster.ads.upstream_rq")
    async with AsyncExitStack() as faults:
        for envoy in targets.values():
            await faults.enter_async_context(switched(envoy, fault__http__abort__abort_percent=100))
        for _ in range(3):
            status, html, _ = await product_page(http, shop)
            assert status == 200 and "Speckled Ceramic Mug" in html and "Add to cart" in html
            assert not any(s in html for s in SECTIONS), "an aborted section was shown"
    for peer, envoy in targets.items():  # the sidecars did refuse them: 3 each, no retry
        assert await envoy.stat("http.inbound.fault.aborts_injected") == aborts[peer] + 3
    after = await front.stats("cluster.recommendations.upstream_rq|cluster.ads.upstream_rq")
    for peer in ("recommendations", "ads"):
        grew = {
            k: v - before.get(k, 0) for k, v in after.items() if k.startswith(f"cluster.{peer}.")
        }
        # answered by the 503 at once: no timeout waited for, no retry made
        assert grew.get(f"cluster.{peer}.upstream_rq_503") == 3, grew
        assert grew.get(f"cluster.{peer}.upstream_rq_timeout", 0) == 0, grew
        assert grew.get(f"cluster.{peer}.upstream_rq_retry", 0) == 0, grew
    _, html, _ = await full_page(http, shop)  # and back once the faults are off


async def rating_count(http: aiohttp.ClientSession, shop: LocalRun, product: str) -> int:
    async with http.get(f"{shop.public_url}/products/{product}") as resp:
        html = await resp.text()
        assert resp.status == 200, html
    found = re.search(r'data-testid="rating-count">(\d+)<', html)
    return int(found.group(1)) if found else 0


async def test_a_buyer_s_rating_shows_on_the_product_page_and_only_buyers_may_rate(
    shop: LocalRun, http: aiohttp.ClientSession
) -> None:
    api = shop.public_url + "/api"
    before = await rating_count(http, shop, "salt-pepper-set")
    resp, buyer = await buy(http, shop, CARD)  # one salt and pepper set
    assert resp.status == 201
    order_id = (await resp.json())["id"]
    url = f"{api}/products/salt-pepper-set/ratings"
    stranger = await sign_in(http, api)  # the user token travels: orders answers its owner only
    async with http.post(url, json={"order_id": order_id, "rating": 5}, headers=stranger) as r:
        assert r.status == 403 and (await r.json())["code"] == "not_purchased"
    async with http.post(url, json={"order_id": order_id, "rating": 5}, headers=buyer) as r:
        assert r.status == 201, await r.text()
    async with http.post(url, json={"order_id": order_id, "rating": 1}, headers=buyer) as r:
        assert r.status == 409 and (await r.json())["code"] == "already_rated"
    assert await rating_count(http, shop, "salt-pepper-set") == before + 1
