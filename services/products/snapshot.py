"""The catalogue as the shop shows it, read from SQL once per change and kept encoded.

Browsing asks for the same few rows over and over, and they change only when stock moves
(reservations, commits, releases, sweeps) or the catalogue is seeded. So the products and
their encoded answers are kept as one :class:`Snapshot`, stamped with the database's change
counter (:class:`services.kit.db.ChangeCounter`), which moves on every commit, this replica's or
another's on the same file. Each request looks at the counter first (microseconds) and reads
SQL again only when it moved, so an answer never shows stock older than the last commit before
it was asked. Only what is shown is cached: holding stock stays a conditional UPDATE in SQL.
Without a counter (PostgreSQL) every request reads SQL, as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from services import kit
from services.kit.db import ChangeCounter
from services.kit.jsonio import dumps

from . import store


def public(p: store.Product) -> dict[str, Any]:
    """A product as the API shows it."""
    return {
        "id": p.id,
        "name": p.name,
        "description": p.description,
        "price_cents": p.price_cents,
        "currency": p.currency,
        "categories": p.categories,
        "available": p.available,
        "in_stock": p.available > 0,
    }


class Snapshot:
    """Every product at one moment, by name and by id, and their answers encoded on demand."""

    def __init__(self, version: int | None, products: list[store.Product]) -> None:
        self.version = version
        self.products = products  # sorted by name, as the listing shows them
        self.by_id = {p.id: p for p in products}
        self._listing: bytes | None = None
        self._pages: dict[str, bytes] = {}

    def listing(self) -> bytes:
        """``{"products": [...]}``, the whole catalogue."""
        if self._listing is None:
            self._listing = dumps({"products": [public(p) for p in self.products]})
        return self._listing

    def page(self, pid: str) -> bytes | None:
        """One product's answer; None for an unknown id."""
        body = self._pages.get(pid)
        if body is None and (product := self.by_id.get(pid)) is not None:
            body = self._pages[pid] = dumps(public(product))
        return body


class Catalogue:
    """The current :class:`Snapshot`, read again from SQL whenever the database changed."""

    def __init__(self, engine: AsyncEngine, counter: ChangeCounter | None) -> None:
        self._engine = engine
        self._counter = counter
        self._snapshot: Snapshot | None = None
        self._lock = asyncio.Lock()

    async def current(self) -> Snapshot:
        if self._counter is None:
            return Snapshot(None, await store.all_products(self._engine))
        snap = self._snapshot
        if snap is not None and snap.version == self._counter.value():
            return snap
        async with self._lock:  # one reader refreshes; the others take its snapshot
            # The counter is read before the rows: a commit after this read moves it again,
            # so rows newer than the stamp are read again next time, never older ones kept.
            version = self._counter.value()
            snap = self._snapshot
            if snap is None or snap.version != version:
                snap = self._snapshot = Snapshot(version, await store.all_products(self._engine))
            return snap

    def close(self) -> None:
        if self._counter is not None:
            self._counter.close()


CATALOGUE: web.AppKey[Catalogue] = web.AppKey("products_catalogue", Catalogue)


async def catalogue_context(app: web.Application) -> AsyncIterator[None]:
    """``cleanup_ctx`` (after the database's): ``app[CATALOGUE]``."""
    engine = app[kit.DB]
    app[CATALOGUE] = Catalogue(engine, ChangeCounter.for_engine(engine))
    yield
    app[CATALOGUE].close()
