"""products: the catalogue is read from SQL once per change and served encoded (``snapshot``).

What a shopper must never see is stale stock: every test warms the catalogue first, then moves
stock some way (this replica, the other replica on the same file, the sweeper, a restock straight
in SQL) and asks again at once.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sqlalchemy import update

from services import kit
from services.products import store, sweeper
from services.products.catalog import load_catalog
from services.products.snapshot import CATALOGUE
from tests.conftest import ServiceFactory, build_app, service_settings
from tests.contract import ContractClient

A, B = sorted(entry.id for entry in load_catalog())[:2]
STOCK = 10


async def shown(api: ContractClient, pid: str = A) -> tuple[int, int, int]:
    """``available`` as the product page, the listing and the stock counters show it."""
    page = await api.get(f"/products/{pid}")
    listing = await api.get("/products")
    counters = await api.get(f"/products/{pid}/stock")
    assert page.status == listing.status == counters.status == 200
    (listed,) = [p for p in (await listing.json())["products"] if p["id"] == pid]
    return (
        (await page.json())["available"],
        listed["available"],
        (await counters.json())["available"],
    )


async def reserve(api: ContractClient, key: str, pid: str, quantity: int, **extra: Any) -> Any:
    body = {"items": [{"product_id": pid, "quantity": quantity}], **extra}
    resp = await api.put(f"/reservations/{key}", json=body)
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def two_replicas(
    aiohttp_client: Any, tmp_path: Path, redis_url: str
) -> tuple[ContractClient, ContractClient]:
    settings = service_settings("products", tmp_path, redis_url, PRODUCTS_STOCK=str(STOCK))
    one, other = build_app("products", settings), build_app("products", settings)
    clients = [ContractClient(await aiohttp_client(app), app[kit.OPENAPI]) for app in (one, other)]
    return clients[0], clients[1]


async def test_reserve_commit_and_release_show_at_once(service: ServiceFactory) -> None:
    api = await service("products", PRODUCTS_STOCK=str(STOCK))
    assert await shown(api) == (STOCK,) * 3
    await reserve(api, "saga-show-1", A, 3)
    assert await shown(api) == (7,) * 3
    await api.post("/reservations/saga-show-1/commit")
    await reserve(api, "saga-show-2", A, 7)
    assert await shown(api) == (0,) * 3
    page = await (await api.get(f"/products/{A}")).json()
    assert page["in_stock"] is False
    await api.post("/reservations/saga-show-2/release")
    assert await shown(api) == (7,) * 3


async def test_the_other_replicas_changes_show_at_once(
    aiohttp_client: Any, tmp_path: Path, clean_redis: str
) -> None:
    one, other = await two_replicas(aiohttp_client, tmp_path, clean_redis)
    assert await shown(one) == (STOCK,) * 3
    await reserve(other, "saga-other-1", A, 4)
    assert await shown(one) == (6,) * 3  # held through the other replica: not for sale here
    await other.post("/reservations/saga-other-1/release")
    assert await shown(one) == (STOCK,) * 3
    await reserve(one, "saga-other-2", A, STOCK)
    assert await shown(other) == (0,) * 3
    # ...and the catalogue never decides a hold: the other replica refuses what is gone.
    resp = await other.put(
        "/reservations/saga-other-3", json={"items": [{"product_id": A, "quantity": 1}]}
    )
    assert resp.status == 409 and (await resp.json())["available"] == 0


async def test_no_stale_stock_after_a_sweep_or_a_restock(service: ServiceFactory) -> None:
    api = await service("products", PRODUCTS_STOCK=str(STOCK))
    body = await reserve(api, "saga-sweep-1", B, 5, ttl_seconds=10)
    assert await shown(api, B) == (5,) * 3
    assert await sweeper.sweep(api.app[kit.DB], now=time.time() + 3600) == [body["key"]]
    assert await shown(api, B) == (STOCK,) * 3
    async with api.app[kit.DB].begin() as conn:  # a restock, straight in SQL
        products = store.products
        await conn.execute(
            update(products)
            .where(products.c.id == B)
            .values(stocked=products.c.stocked + 5, available=products.c.available + 5)
        )
    assert await shown(api, B) == (STOCK + 5,) * 3


async def test_the_catalogue_is_read_once_while_nothing_changes(service: ServiceFactory) -> None:
    api = await service("products", PRODUCTS_STOCK=str(STOCK))
    catalogue = api.app[CATALOGUE]
    first = await catalogue.current()
    await shown(api)
    await shown(api, B)
    assert await catalogue.current() is first  # no SQL read for any of those answers
    await reserve(api, "saga-once-1", B, 1)
    assert await catalogue.current() is not first
