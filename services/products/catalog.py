"""The seed catalog (``catalog.yaml``) and the product images (``images/<id>.svg``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from services import kit

from . import store

HERE = Path(__file__).parent
CATALOG_FILE = HERE / "catalog.yaml"
IMAGES_DIR = HERE / "images"
PRODUCT_ID = r"^[a-z0-9][a-z0-9-]{0,63}$"


class CatalogEntry(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    id: str = Field(pattern=PRODUCT_ID)
    name: str = Field(min_length=1, max_length=200)
    description: str
    price_cents: int = Field(ge=0)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    categories: list[str]
    stock: int = Field(ge=0)


CATALOG: web.AppKey[list[CatalogEntry]] = web.AppKey("products_catalog")
IMAGES: web.AppKey[dict[str, bytes]] = web.AppKey("products_images")


def load_catalog(path: Path = CATALOG_FILE, stock: str = "") -> list[CatalogEntry]:
    """The catalog, checked (a bad file stops start-up); ``stock`` overrides every product's."""
    raw = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    entries = TypeAdapter(list[CatalogEntry]).validate_python(raw)
    ids = [e.id for e in entries]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{path}: product ids are not unique")
    if stock:
        if not stock.isdigit():
            raise ValueError(f"PRODUCTS_STOCK must be a whole number >= 0, not {stock!r}")
        entries = [e.model_copy(update={"stock": int(stock)}) for e in entries]
    return entries


def load_images(ids: list[str], directory: Path = IMAGES_DIR) -> dict[str, bytes]:
    """Each catalog product's SVG, by id; only catalog ids ever name a file."""
    return {pid: path.read_bytes() for pid in ids if (path := directory / f"{pid}.svg").is_file()}


async def seed_context(app: web.Application) -> AsyncIterator[None]:
    """``cleanup_ctx`` (after the database's): insert the catalog's products that are absent."""
    rows: list[dict[str, Any]] = [entry.model_dump() for entry in app[CATALOG]]
    await store.seed(app[kit.DB], rows)
    yield
