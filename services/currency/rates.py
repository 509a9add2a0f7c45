"""The rates table and the one conversion rule: exact fractions, banker's rounding to the cent.

``convert(cents, from, to) = round_half_even(cents * per_usd[to] / per_usd[from])``, computed on
:class:`fractions.Fraction` (no float anywhere): a rate is its decimal string read exactly, the
product is exact, and Python's ``round`` of a Fraction rounds a tie to the even cent. Converting
to the same currency gives the amount back unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import yaml

TABLE = Path(__file__).with_name("rates.yaml")


@dataclass(frozen=True)
class Currency:
    code: str
    name: str
    symbol: str
    per_usd: Fraction  # units of this currency one base unit buys
    text: str  # the rate as written in the table


@dataclass(frozen=True)
class Rates:
    base: str
    as_of: str
    currencies: dict[str, Currency]

    def rate(self, source: str, target: str) -> Fraction:
        return self.currencies[target].per_usd / self.currencies[source].per_usd

    def convert(self, cents: int, source: str, target: str) -> int:
        if source == target:
            return cents
        return round(cents * self.rate(source, target))

    def public(self) -> dict[str, Any]:
        return {
            "base": self.base,
            "as_of": self.as_of,
            "currencies": [
                {"code": c.code, "name": c.name, "symbol": c.symbol, "per_base": c.text}
                for c in self.currencies.values()
            ],
        }


def load(path: Path = TABLE) -> Rates:
    """Read and check the table: every rate a positive decimal, the base's rate exactly 1."""
    raw = yaml.safe_load(path.read_text())
    currencies = {}
    for code, entry in raw["currencies"].items():
        per_usd = Fraction(str(entry["per_usd"]))
        if per_usd <= 0 or len(code) != 3 or not code.isupper():
            raise ValueError(f"{path}: currency {code!r} needs a 3-letter code and a positive rate")
        currencies[code] = Currency(
            code, entry["name"], entry["symbol"], per_usd, str(entry["per_usd"])
        )
    if currencies.get(raw["base"]) is None or currencies[raw["base"]].per_usd != 1:
        raise ValueError(f"{path}: the base currency {raw['base']} must be listed at rate 1")
    return Rates(raw["base"], str(raw["as_of"]), currencies)
