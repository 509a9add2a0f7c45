"""How a peer's answer becomes the public answer: pass 4xx problems on, name failing peers."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from services import kit


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
