"""One request, one trace: the network (Envoy) and the code (apps) stitched together.

Everything is read through the trace store's Jaeger query API, as a user would read it in Jaeger.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from mesh.local import LocalRun
from tests.integration.test_purchase import CARD, sign_in
from tests.polling import eventually

pytestmark = pytest.mark.integration
CHECKOUT_PATH = ["gateway", "checkout", "cart", "products", "orders", "payment"]


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


class Trace:
    """A Jaeger trace, with each span's service, tags and parent at hand."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.spans = data["spans"]
        self.by_id = {s["spanID"]: s for s in self.spans}
        for span in self.spans:
            span["service"] = data["processes"][span["processID"]]["serviceName"]
            span["tagmap"] = {t["key"]: t["value"] for t in span["tags"]}

    def parent(self, span: dict[str, Any]) -> dict[str, Any] | None:
        refs = [r for r in span["references"] if r["refType"] == "CHILD_OF"]
        return self.by_id.get(refs[0]["spanID"]) if refs else None

    def children(self, span: dict[str, Any]) -> list[dict[str, Any]]:
        return [s for s in self.spans if self.parent(s) is span]

    def find(self, service: str, name: str) -> list[dict[str, Any]]:
        return [s for s in self.spans if s["service"] == service and s["operationName"] == name]


def is_network(span: dict[str, Any]) -> bool:
    return span["tagmap"].get("component") == "proxy"


def kind(span: dict[str, Any]) -> str | None:
    return span["tagmap"].get("span.kind")


def complete(t: Trace, services: list[str]) -> bool:
    """Every named service has sent its spans, and no hop is still on its way.

    Spans arrive in batches, per process: a trace is whole once each span's parent is there
    (but the edge's, which may be the caller's) and each HTTP call (a CLIENT span that is not
    SQL or Redis) has the span of the side it called, and each sidecar's inbound span has its
    app's (sidecars and apps flush separately). A process sends a span after its children, so an
    app's own spans have come once its server span has.
    """
    if not set(services) <= {s["service"] for s in t.spans}:
        return False
    for span in t.spans:
        if span["references"] and t.parent(span) is None and span["service"] != "ingress":
            return False
        call = kind(span) == "client" and "db.system" not in span["tagmap"]
        if call and not t.children(span):
            return False
        inbound = kind(span) == "server" and is_network(span) and span["service"] != "ingress"
        if inbound and not t.children(span):
            return False
    return True


async def fetch_trace(
    http: aiohttp.ClientSession, shop: LocalRun, trace_id: str, services: list[str]
) -> Trace:
    """The trace once it is complete (see :func:`complete`)."""

    async def read() -> Trace | None:
        async with http.get(f"{shop.traces_url}/api/traces/{trace_id}") as resp:
            return Trace((await resp.json())["data"][0]) if resp.status == 200 else None

    def whole(t: Trace | None) -> bool:
        return t is not None and complete(t, services)

    found = await eventually(read, whole, within=20, interval=0.1, what=f"trace {trace_id}")
    assert found is not None
    return found


def trace_id_of(resp: aiohttp.ClientResponse) -> str:
    return resp.headers["traceresponse"].split("-")[1]


async def buy(
    http: aiohttp.ClientSession, shop: LocalRun, card: dict[str, Any], **headers: str
) -> tuple[aiohttp.ClientResponse, dict[str, str]]:
    api = shop.public_url + "/api"
    auth = await sign_in(http, api)
    resp = await http.put(f"{api}/cart/items/salt-pepper-set", json={"quantity": 1}, headers=auth)
    assert resp.status == 200
    resp = await http.post(
        f"{api}/checkout",
        json={"card": card},
        headers={**auth, "Idempotency-Key": uuid.uuid4().hex, **headers},
    )
    await resp.read()
    return resp, auth


async def test_a_checkout_is_one_trace_of_network_and_code(
    shop: LocalRun, http: aiohttp.ClientSession
) -> None:
    resp, _ = await buy(http, shop, CARD)
    assert resp.status == 201
    t = await fetch_trace(http, shop, trace_id_of(resp), ["ingress", *CHECKOUT_PATH])

    roots = [s for s in t.spans if not s["references"]]
    assert len(roots) == 1, [s["operationName"] for s in roots]
    root = roots[0]
    assert root["service"] == "ingress" and is_network(root)
    orphans = [s["operationName"] for s in t.spans if s["references"] and t.parent(s) is None]
    assert orphans == [], "spans whose parent is missing"

    services = {s["service"] for s in t.spans}
    assert set(CHECKOUT_PATH) <= services

    # Each hop: caller's egress span -> callee's sidecar span -> callee's app server span.
    for callee in CHECKOUT_PATH:
        inbound = t.find(callee, f"ingress {callee}")
        assert inbound, f"no sidecar span for {callee}"
        for sidecar in inbound:
            assert is_network(sidecar) and kind(sidecar) == "server"
            caller_span = t.parent(sidecar)
            assert caller_span is not None and is_network(caller_span)
            assert kind(caller_span) == "client"
            if callee != "gateway":  # the gateway is called by the ingress
                assert caller_span["operationName"] == f"egress {callee}"
            apps = [c for c in t.children(sidecar) if not is_network(c)]
            assert len(apps) == 1 and apps[0]["service"] == callee and kind(apps[0]) == "server"

    # ...and each app's outgoing call is the parent of its sidecar's egress span.
    for egress in [s for s in t.spans if s["operationName"].startswith("egress ")]:
        app_client = t.parent(egress)
        assert app_client is not None and not is_network(app_client)
        assert app_client["service"] == egress["service"] and kind(app_client) == "client"

    # The code's own spans: SQL and Redis under the app's spans, the saga's steps in checkout.
    def under_app(span: dict[str, Any]) -> bool:
        node = t.parent(span)
        while node is not None and not is_network(node):
            if kind(node) == "server":
                return True
            node = t.parent(node)
        return False

    sql = [s for s in t.spans if s["tagmap"].get("db.system") == "sqlite"]
    redis_spans = [s for s in t.spans if s["tagmap"].get("db.system") == "redis"]
    assert {s["service"] for s in sql} >= {"products", "orders", "payment"}
    assert {s["service"] for s in redis_spans} >= {"gateway", "cart"}
    assert all(under_app(s) for s in sql + redis_spans)
    steps = {s["operationName"] for s in t.spans if s["service"] == "checkout"}
    assert {"checkout.reserve_stock", "checkout.open_order", "checkout.charge"} <= steps


async def test_the_ingress_continues_a_callers_traceparent(
    shop: LocalRun, http: aiohttp.ClientSession
) -> None:
    trace_id, parent = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    async with http.get(
        f"{shop.public_url}/api/products", headers={"traceparent": f"00-{trace_id}-{parent}-01"}
    ) as resp:
        assert resp.status == 200 and trace_id_of(resp) == trace_id
    t = await fetch_trace(http, shop, trace_id, ["ingress", "gateway", "products"])
    (edge,) = [s for s in t.spans if s["service"] == "ingress" and kind(s) == "server"]
    assert [r["spanID"] for r in edge["references"]] == [parent]


async def test_a_declined_payment_marks_the_failing_spans_along_the_path(
    shop: LocalRun, http: aiohttp.ClientSession
) -> None:
    declined = {**CARD, "number": "4000 0000 0000 0002"}
    resp, _ = await buy(http, shop, declined)
    assert resp.status == 402
    t = await fetch_trace(http, shop, trace_id_of(resp), ["ingress", *CHECKOUT_PATH])
    errors = [s for s in t.spans if s["tagmap"].get("error") is True]
    failing = {(s["service"], s["operationName"]) for s in errors}
    assert ("payment", "payment.settle") in failing  # where the card was declined
    assert ("checkout", "checkout.charge") in failing  # the saga step that failed
    assert ("checkout", "POST payment") in failing  # checkout's call that got the 402
    assert ("gateway", "POST checkout") in failing  # the gateway's call that got the 402
    for span in errors:
        assert span["tagmap"].get("otel.status_code") == "ERROR"
    assert t.find("checkout", "checkout.compensate"), "the undo is in the trace too"


async def test_no_span_carries_secrets_or_personal_data(
    shop: LocalRun, http: aiohttp.ClientSession
) -> None:
    resp, auth = await buy(http, shop, CARD)
    token = auth["Authorization"].split()[1]
    t = await fetch_trace(http, shop, trace_id_of(resp), ["ingress", *CHECKOUT_PATH])
    # and the sign-up and login traces, where the password and email travel
    async with http.get(
        f"{shop.traces_url}/api/traces", params={"service": "gateway", "limit": "200"}
    ) as found:
        everything = json.dumps((await found.json())["data"]) + json.dumps(t.data)
    assert "s3cret-pw" not in everything
    assert token not in everything
    assert not re.search(r"4242\s?4242\s?4242\s?4242", everything)
    assert "@example.com" not in everything
