"""Currency: the shipped table, exact conversions with banker's rounding, and clear 400s."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from services.currency import rates
from tests.asserts import ok, problem
from tests.conftest import ServiceFactory

TABLE = rates.load()


def test_the_shipped_table_has_the_base_at_one_and_exact_rates() -> None:
    assert TABLE.base == "USD"
    assert set(TABLE.currencies) == {"USD", "EUR", "GBP", "CAD", "CHF"}
    assert TABLE.currencies["EUR"].per_usd == Fraction(9215, 10000)  # read exactly, no float


@pytest.mark.parametrize(
    ("cents", "rate", "expected"),
    [
        (1, Fraction(1, 2), 0),  # 0.5 -> 0 (even)
        (3, Fraction(1, 2), 2),  # 1.5 -> 2 (even)
        (5, Fraction(1, 2), 2),  # 2.5 -> 2 (even), not 3
        (7, Fraction(1, 2), 4),  # 3.5 -> 4
        (10, Fraction(1, 3), 3),  # 3.33 -> 3
        (20, Fraction(1, 3), 7),  # 6.67 -> 7
    ],
)
def test_halfway_rounds_to_the_even_cent(cents: int, rate: Fraction, expected: int) -> None:
    table = rates.Rates(
        "USD",
        "today",
        {
            "USD": rates.Currency("USD", "US dollar", "$", Fraction(1), "1"),
            "XXX": rates.Currency("XXX", "Test", "X", rate, str(rate)),
        },
    )
    assert table.convert(cents, "USD", "XXX") == expected


def test_conversion_is_exact_integer_arithmetic() -> None:
    # 4599 * 0.9215 = 4237.9785 -> 4238; via floats the same digits could land either side.
    assert TABLE.convert(4599, "USD", "EUR") == 4238
    assert TABLE.convert(10**12, "USD", "GBP") == 789_300_000_000
    # cross rate through the base, as one fraction: 1000 EUR cents in GBP
    assert TABLE.convert(1000, "EUR", "GBP") == round(Fraction(1000 * 7893, 9215))
    assert TABLE.convert(1234, "CHF", "CHF") == 1234


def test_a_bad_table_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "rates.yaml"
    bad.write_text("base: USD\nas_of: x\ncurrencies:\n  USD: {name: D, symbol: $, per_usd: '2'}\n")
    with pytest.raises(ValueError, match="base currency"):
        rates.load(bad)
    bad.write_text(
        "base: USD\nas_of: x\ncurrencies:\n  USD: {name: D, symbol: $, per_usd: '1'}\n"
        "  EUR: {name: E, symbol: E, per_usd: '0'}\n"
    )
    with pytest.raises(ValueError, match="positive rate"):
        rates.load(bad)


async def test_the_table_is_served(service: ServiceFactory) -> None:
    client = await service("currency")
    table = await ok(await client.get("/currencies"))
    codes = [c["code"] for c in table["currencies"]]
    assert table["base"] == "USD" and codes[0] == "USD" and "EUR" in codes
    assert {"code": "GBP", "name": "Pound sterling", "symbol": "£", "per_base": "0.7893"} in (
        table["currencies"]
    )


async def test_many_amounts_are_converted_in_one_call(service: ServiceFactory) -> None:
    client = await service("currency")
    body = await ok(await client.get("/convert?from=USD&to=EUR&amounts=4599,0,1250,1"))
    assert body["from"] == "USD" and body["to"] == "EUR"
    assert body["amounts"] == [4238, 0, 1152, 1]
    assert Fraction(body["rate"]) == Fraction("0.9215")
    same = await ok(await client.get("/convert?from=GBP&to=GBP&amounts=77"))
    assert same["amounts"] == [77]


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("from=USD&to=XYZ&amounts=1", "unknown_currency"),
        ("from=usd&to=EUR&amounts=1", "unknown_currency"),
        ("to=EUR&amounts=1", "unknown_currency"),
        ("from=USD&to=EUR", "bad_query"),
        ("from=USD&to=EUR&amounts=", "bad_query"),
        ("from=USD&to=EUR&amounts=-5", "bad_query"),
        ("from=USD&to=EUR&amounts=1.5", "bad_query"),
        ("from=USD&to=EUR&amounts=1,,2", "bad_query"),
        ("from=USD&to=EUR&amounts=99999999999999", "bad_query"),
        ("from=USD&to=EUR&amounts=" + ",".join(["1"] * 201), "bad_query"),
    ],
)
async def test_bad_queries_get_a_clear_400(service: ServiceFactory, query: str, code: str) -> None:
    client = await service("currency")
    await problem(await client.get(f"/convert?{query}"), 400, code)
