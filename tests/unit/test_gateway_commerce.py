"""The gateway's commerce routes (issue 16): currencies, through the real currency service."""

from __future__ import annotations

from tests.asserts import ok, problem
from tests.conftest import ServiceFactory


async def test_the_currency_table_and_conversions_are_public(service: ServiceFactory) -> None:
    api = await service("gateway", peers=["currency"])
    table = await ok(await api.get("/api/currencies"))
    assert "EUR" in [c["code"] for c in table["currencies"]]
    body = await ok(await api.get("/api/currencies/convert?from=USD&to=EUR&amounts=4599,1250"))
    assert body["amounts"] == [4238, 1152]


async def test_a_bad_conversion_is_the_currency_services_400(service: ServiceFactory) -> None:
    api = await service("gateway", peers=["currency"])
    await problem(
        await api.get("/api/currencies/convert?from=USD&to=XYZ&amounts=1"), 400, "unknown_currency"
    )
    await problem(await api.get("/api/currencies/convert?from=USD&to=EUR"), 400, "bad_query")
    # a query smuggling another parameter is passed on as data, not as a parameter
    await problem(
        await api.get("/api/currencies/convert?from=USD&to=EUR%26amounts%3D1&amounts=x"),
        400,
        "unknown_currency",
    )
