"""HTTP handlers: the catalog, stock counters, and stock reservations."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from pydantic import Field, model_validator

from services import kit
from services.kit.jsonio import json_body, json_response

from . import store
from .catalog import IMAGES
from .snapshot import CATALOGUE, public

MAX_IDS = 100
MAX_KEY_LENGTH = 256
IMAGE_CACHE_CONTROL = "public, max-age=86400"


class Item(kit.Body):
    product_id: str = Field(min_length=1, max_length=64)
    quantity: int = Field(ge=1, le=1000)


class ReserveBody(kit.Body):
    items: list[Item] = Field(min_length=1, max_length=MAX_IDS)
    ttl_seconds: int = Field(default=900, ge=10, le=3600)

    @model_validator(mode="after")
    def _unique_products(self) -> ReserveBody:
        ids = [item.product_id for item in self.items]
        if len(set(ids)) != len(ids):
            raise ValueError("each product_id may appear only once in items")
        return self


# --- catalog ---------------------------------------------------------------------------------


async def list_products(request: web.Request) -> web.Response:
    snap = await request.app[CATALOGUE].current()
    if "ids" not in request.query:
        return json_body(snap.listing())
    ids = list(dict.fromkeys(filter(None, (i.strip() for i in request.query["ids"].split(",")))))
    if not 1 <= len(ids) <= MAX_IDS:
        raise kit.Problem(
            400, f"ids must name 1 to {MAX_IDS} product ids, comma-separated", code="bad_query"
        )
    _require_known(ids, snap.by_id)
    return json_response({"products": [public(snap.by_id[i]) for i in ids]})


async def get_product(request: web.Request) -> web.Response:
    pid = request.match_info["id"]
    body = (await request.app[CATALOGUE].current()).page(pid)
    if body is None:
        raise _unknown_products([pid])
    return json_body(body)


async def get_stock(request: web.Request) -> web.Response:
    p = await _one_product(request)
    return json_response(
        {
            "product_id": p.id,
            "stocked": p.stocked,
            "available": p.available,
            "reserved": p.reserved,
            "sold": p.sold,
        }
    )


async def get_image(request: web.Request) -> web.Response:
    pid = request.match_info["id"]
    image = request.app[IMAGES].get(pid)  # only catalog ids are keys: no path is ever built
    if image is None:
        raise kit.Problem(404, f"There is no image for product {pid!r}", code="unknown_image")
    return web.Response(
        body=image, content_type="image/svg+xml", headers={"Cache-Control": IMAGE_CACHE_CONTROL}
    )


# --- reservations ----------------------------------------------------------------------------


async def put_reservation(request: web.Request) -> web.Response:
    key = _reservation_key(request)
    body = await kit.read_json(request, ReserveBody)
    items = [(item.product_id, item.quantity) for item in body.items]
    try:
        reservation, created = await store.reserve(
            request.app[kit.DB], key, items, now=time.time(), ttl=body.ttl_seconds
        )
    except store.UnknownProducts as exc:
        raise _unknown_products(exc.product_ids) from None
    except store.OutOfStock as exc:
        raise kit.Problem(
            409,
            f"Not enough stock of {exc.product_id!r}: {exc.available} available; nothing was held",
            code="out_of_stock",
            product_id=exc.product_id,
            available=exc.available,
        ) from None
    return json_response(_reservation(reservation), status=201 if created else 200)


async def get_reservation(request: web.Request) -> web.Response:
    key = _reservation_key(request)
    return json_response(
        _reservation(_found(key, await store.get_reservation(request.app[kit.DB], key)))
    )


async def commit_reservation(request: web.Request) -> web.Response:
    key = _reservation_key(request)
    reservation = _found(key, await store.commit(request.app[kit.DB], key))
    if reservation.status != store.COMMITTED:
        raise kit.Problem(
            409,
            f"Reservation {key!r} is {reservation.status}, so it can no longer be committed",
            code="reservation_not_held",
            reservation_status=reservation.status,
        )
    return json_response(_reservation(reservation))


async def release_reservation(request: web.Request) -> web.Response:
    key = _reservation_key(request)
    reservation = _found(key, await store.release(request.app[kit.DB], key))
    if reservation.status == store.COMMITTED:
        raise kit.Problem(
            409,
            f"Reservation {key!r} is committed (sold), so it cannot be released",
            code="reservation_committed",
            reservation_status=reservation.status,
        )
    return json_response(_reservation(reservation))


routes = [
    web.get("/products", list_products),
    web.get("/products/{id}", get_product),
    web.get("/products/{id}/image.svg", get_image),
    web.get("/products/{id}/stock", get_stock),
    web.put("/reservations/{key}", put_reservation),
    web.get("/reservations/{key}", get_reservation),
    web.post("/reservations/{key}/commit", commit_reservation),
    web.post("/reservations/{key}/release", release_reservation),
]


# --- helpers ---------------------------------------------------------------------------------


async def _one_product(request: web.Request) -> store.Product:
    pid = request.match_info["id"]
    found = (await request.app[CATALOGUE].current()).by_id
    _require_known([pid], found)
    return found[pid]


def _require_known(ids: list[str], found: dict[str, store.Product]) -> None:
    if unknown := [i for i in ids if i not in found]:
        raise _unknown_products(unknown)


def _unknown_products(ids: list[str]) -> kit.Problem:
    return kit.Problem(
        404, f"No such product: {', '.join(ids)}", code="unknown_product", product_ids=ids
    )


def _reservation_key(request: web.Request) -> str:
    key = request.match_info["key"]
    if len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise kit.Problem(
            400,
            f"A reservation key is 1-{MAX_KEY_LENGTH} printable characters",
            code="invalid_reservation_key",
        )
    return key


def _found(key: str, reservation: store.Reservation | None) -> store.Reservation:
    if reservation is None:
        raise kit.Problem(404, f"No reservation {key!r}", code="unknown_reservation")
    return reservation


def _reservation(r: store.Reservation) -> dict[str, Any]:
    return {
        "key": r.key,
        "status": r.status,
        "items": [_held_item(pid, q, r.prices.get(pid)) for pid, q in r.items],
        "created_at": _timestamp(r.created_at),
        "expires_at": _timestamp(r.expires_at),
    }


def _held_item(pid: str, quantity: int, price: tuple[str, int] | None) -> dict[str, Any]:
    if price is None:
        return {"product_id": pid, "quantity": quantity}
    return {"product_id": pid, "quantity": quantity, "name": price[0], "unit_price_cents": price[1]}


def _timestamp(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
