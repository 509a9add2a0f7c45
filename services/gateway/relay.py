"""How a peer's answer becomes the public answer: pass 4xx problems on, name failing peers."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from aiohttp import web

from services import kit
from services.kit.jsonio import JSON_TYPE, dumps


class PeerProblem(kit.Problem):
    """A peer's problem, passed to the client unchanged (status and body)."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(status, str(body.get("detail", "")), code=body.get("code"))
        self.details = body
        self.text = json.dumps(body)


def relay(reply: kit.PeerReply, *ok: int) -> Any:
    """The peer's body when its status is in ``ok``.

    A peer's 4xx problem (unknown product, out of stock, card declined...) is the client's
    answer as is, and so is a 5xx problem our own services wrote with a ``code`` (checkout's
    "payment unavailable, you were not charged" must reach the shopper). Anything else (a
    crash, the mesh's own 503 or 504, a body that is not a problem) is a 502/503/504 naming
    the peer.
    """
    if reply.status in ok:
        return reply.data
    body = reply.own_problem
    if body is not None and (reply.status < 500 or body.get("code")):
        raise PeerProblem(reply.status, body)
    raise reply.problem()


def image_url(product_id: str) -> str:
    return f"/api/products/{quote(product_id, safe='')}/image.svg"


def with_image_url(item: dict[str, Any], id_field: str = "id") -> dict[str, Any]:
    """``item`` plus the public ``image_url`` of its product."""
    return {**item, "image_url": image_url(item[id_field])}


class Rewrites:
    """The gateway's encoded answer for a peer's answer it has seen before, kept by the bytes.

    Products answers the same bytes for as long as the catalogue does not change, and the
    public answer is a pure function of those bytes (``rewrite``). So the last answer per
    ``key`` is kept with the bytes it came from, and a reply with the very same bytes gets it
    again without being decoded, rewritten and encoded. Products is still asked every time:
    stock is as fresh as its answer. Anything but a JSON 200 goes through ``relay`` as ever.
    """

    def __init__(self, rewrite: Callable[[Any], Any], limit: int = 1024) -> None:
        self._rewrite = rewrite
        self._limit = limit  # keys are ids products knew (a 200), but the cache stays bounded
        self._seen: dict[str, tuple[bytes, bytes]] = {}

    def answer(self, key: str, reply: kit.PeerReply) -> bytes:
        seen = self._seen.get(key)
        json_200 = reply.status == 200 and reply.content_type == JSON_TYPE
        if seen is not None and json_200 and reply.raw == seen[0]:
            return seen[1]
        body = dumps(self._rewrite(relay(reply, 200)))
        if json_200:
            if len(self._seen) >= self._limit:
                self._seen.clear()
            self._seen[key] = (reply.raw, body)
        return body

    def kept(self, key: str) -> bytes | None:
        """The answer kept for ``key``, if any."""
        seen = self._seen.get(key)
        return None if seen is None else seen[1]


def public_product(item: dict[str, Any]) -> dict[str, Any]:
    return with_image_url(item)


def public_listing(data: dict[str, Any]) -> dict[str, Any]:
    return {"products": [with_image_url(p) for p in data["products"]]}


LISTING: web.AppKey[Rewrites] = web.AppKey("gateway_listing", Rewrites)
PRODUCT_PAGES: web.AppKey[Rewrites] = web.AppKey("gateway_product_pages", Rewrites)
