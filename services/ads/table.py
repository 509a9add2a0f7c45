"""The shipped ad table (``ads.yaml``), checked when the service starts, and the choice of an ad."""

from __future__ import annotations

from pathlib import Path

import yaml
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

TABLE_FILE = Path(__file__).with_name("ads.yaml")
HOUSE = "house"


class Ad(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9-]{1,64}$")
    text: str = Field(min_length=1, max_length=200)
    url: str = Field(pattern=r"^/[^\s]*$", max_length=200)


Table = dict[str, list[Ad]]
TABLE: web.AppKey[Table] = web.AppKey("ads_table", dict)


def load(path: Path = TABLE_FILE) -> Table:
    """The table by category; a bad file stops start-up (so does a missing house ad)."""
    raw = yaml.safe_load(path.read_text())
    table = TypeAdapter(dict[str, list[Ad]]).validate_python(raw)
    if not table.get(HOUSE):
        raise ValueError(f"{path}: the table needs at least one '{HOUSE}' ad")
    return table


def choose(table: Table, categories: list[str], seed: str) -> tuple[Ad, str]:
    """One ad for ``categories``: from the first that has ads (``seed`` picks among them, so a
    page shows the same ad each time); the house ad when none has. ``(ad, its category)``."""
    category = next((c for c in categories if table.get(c)), HOUSE)
    ads = table[category]
    return ads[sum(map(ord, seed)) % len(ads)], category
