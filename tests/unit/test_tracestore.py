"""The local trace store: OTLP/HTTP in (protobuf and JSON), Jaeger's query API and view out.

Spans are sent with the OpenTelemetry SDK's own OTLP/HTTP exporter and as hand-written OTLP
JSON; every answer is checked against Jaeger's JSON shapes. The sample trace is a request
through the mesh (ingress, sidecars, apps, Redis, SQL) with a failed first try on products-1.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gzip
import json
import os
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from google.protobuf import json_format
from google.rpc.status_pb2 import Status  # googleapis-common-protos, with the OTLP exporter
from opentelemetry import trace as otel
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tracestore import jaeger, terminal
from tracestore import store as store_module
from tracestore.otlp import decode_json, to_rows
from tracestore.server import PortInUse, create_otlp_app, create_query_app, start
from tracestore.store import Store

# -- a sample trace, as each process would export it ------------------------------------------

INTERNAL, SERVER, CLIENT = 1, 2, 3
HEX = set("0123456789abcdef")


def _any(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}  # int64 as a string, as OTLP JSON allows
    if isinstance(value, float):
        return {"doubleValue": value}
    return {"stringValue": str(value)}


def attributes(attrs: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": k, "value": _any(v)} for k, v in attrs.items()]


def net(method: str, url: str, status: int, cluster: str, **extra: Any) -> dict[str, Any]:
    """An Envoy span's tags: its OpenTelemetry tracer adds ``component: proxy``; values are
    strings."""
    return {
        "component": "proxy",
        "upstream_cluster": cluster,
        "http.method": method,
        "http.url": url,
        "http.status_code": str(status),
        "http.protocol": "HTTP/1.1",
        "response_flags": "-",
        "user_agent": "curl/8.5.0",
        **extra,
    }


def app(method: str, status: int, scope: str, **extra: Any) -> dict[str, Any]:
    return {
        "@scope": f"opentelemetry.instrumentation.{scope}",
        "http.request.method": method,
        "http.response.status_code": status,
        **extra,
    }


def db(system: str, statement: str, **extra: Any) -> dict[str, Any]:
    scope = "sqlalchemy" if system == "sqlite" else "redis"
    return {
        "@scope": f"opentelemetry.instrumentation.{scope}",
        "db.system": system,
        "db.statement": statement,
        **extra,
    }


ITEM = "/cart/items/speckled-mug"
PRODUCT = "http://products/products/speckled-mug"
LOCKED = {
    "@error": "database is locked",
    "@event": {
        "name": "exception",
        "at_ms": 16.4,
        "attrs": {
            "exception.type": "sqlite3.OperationalError",
            "exception.message": "database is locked",
            "exception.stacktrace": "Traceback (most recent call last):\n  ...\n"
            "sqlite3.OperationalError: database is locked",
        },
    },
}
# key, process, operation, kind, start ms, duration ms, parent key, tags (@... are not tags)
MESH_TRACE: list[tuple[str, str, str, int, float, float, str | None, dict[str, Any]]] = [
    ("ing", "ingress", "ingress-gateway gateway", SERVER, 0, 48.02, None,
     net("PUT", "http://127.0.0.1:8080/api" + ITEM, 200, "gateway", node_id="ingress")),
    ("up", "ingress", "router gateway egress", CLIENT, 0.31, 47.2, "ing",
     net("PUT", "http://gateway/api" + ITEM, 200, "gateway", node_id="ingress")),
    ("gw_in", "gateway-0 sidecar", "ingress gateway", SERVER, 0.82, 46.1, "up",
     net("PUT", "http://gateway/api" + ITEM, 200, "inbound", node_id="gateway-0")),
    ("gw", "gateway-0", "PUT /api/cart/items/{sku}", SERVER, 1.2, 45.0, "gw_in",
     app("PUT", 200, "aiohttp_server", **{"http.route": "/api/cart/items/{sku}"})),
    ("gw_redis", "gateway-0", "GET", CLIENT, 1.5, 0.6, "gw",
     db("redis", "GET session:?", **{"net.peer.port": 6380})),
    ("gw_out", "gateway-0", "PUT", CLIENT, 2.4, 42.0, "gw",
     app("PUT", 200, "aiohttp_client", **{"url.full": "http://cart" + ITEM})),
    ("eg_cart", "gateway-0 sidecar", "egress cart", CLIENT, 2.7, 41.4, "gw_out",
     net("PUT", "http://cart" + ITEM, 200, "cart", node_id="gateway-0")),
    ("cart_in", "cart-0 sidecar", "ingress cart", SERVER, 3.3, 40.3, "eg_cart",
     net("PUT", "http://cart" + ITEM, 200, "inbound", node_id="cart-0")),
    ("cart", "cart-0", "PUT /cart/items/{sku}", SERVER, 3.7, 39.5, "cart_in",
     app("PUT", 200, "aiohttp_server", **{"http.route": "/cart/items/{sku}"})),
    ("cart_cache", "cart-0", "GET", CLIENT, 3.9, 0.3, "cart",
     db("redis", "GET price:speckled-mug")),
    ("cart_out", "cart-0", "GET", CLIENT, 4.2, 33.0, "cart",
     app("GET", 200, "aiohttp_client", **{"url.full": PRODUCT})),
    ("eg_products", "cart-0 sidecar", "egress products", CLIENT, 4.5, 32.4, "cart_out",
     net("GET", PRODUCT, 200, "products", node_id="cart-0")),
    ("p1_in", "products-1 sidecar", "ingress products", SERVER, 5.0, 12.0, "eg_products",
     net("GET", PRODUCT, 503, "inbound", node_id="products-1", error="true")),
    ("p1", "products-1", "GET /products/{sku}", SERVER, 5.4, 11.2, "p1_in",
     {**app("GET", 503, "aiohttp_server", **{"http.route": "/products/{sku}"}), **LOCKED}),
    ("p1_sql", "products-1", "SELECT products.db", CLIENT, 5.9, 10.1, "p1",
     db("sqlite", "SELECT sku, name, price_cents FROM products WHERE sku = ?",
        **{"@error": "database is locked"})),
    ("p0_in", "products-0 sidecar", "ingress products", SERVER, 19.0, 17.0, "eg_products",
     net("GET", PRODUCT, 200, "inbound", node_id="products-0")),
    ("p0", "products-0", "GET /products/{sku}", SERVER, 19.4, 16.2, "p0_in",
     app("GET", 200, "aiohttp_server", **{"http.route": "/products/{sku}"})),
    ("p0_sql", "products-0", "SELECT products.db", CLIENT, 20.0, 2.1, "p0",
     db("sqlite", "SELECT sku, name, price_cents FROM products WHERE sku = ?")),
    ("cart_save", "cart-0", "HSET", CLIENT, 38.0, 0.9, "cart",
     db("redis", "HSET cart:42 speckled-mug ?")),
    ("cart_ttl", "cart-0", "EXPIRE", CLIENT, 39.1, 0.4, "cart", db("redis", "EXPIRE cart:42 ?")),
]  # fmt: skip
SIMPLE_TRACE = [
    ("ing", "ingress", "ingress-gateway gateway", SERVER, 0, 9.5, None,
     net("GET", "http://127.0.0.1:8080/api/products", 200, "gateway", node_id="ingress")),
    ("gw_in", "gateway-0 sidecar", "ingress gateway", SERVER, 0.6, 8.4, "ing",
     net("GET", "http://gateway/api/products", 200, "inbound", node_id="gateway-0")),
    ("gw", "gateway-0", "GET /api/products", SERVER, 1.0, 7.8, "gw_in",
     app("GET", 200, "aiohttp_server")),
    ("eg", "gateway-0 sidecar", "egress products", CLIENT, 1.6, 6.0, "gw",
     net("GET", "http://products/products", 200, "products", node_id="gateway-0")),
    ("p_in", "products-0 sidecar", "ingress products", SERVER, 2.1, 5.0, "eg",
     net("GET", "http://products/products", 200, "inbound", node_id="products-0")),
    ("p", "products-0", "GET /products", SERVER, 2.4, 4.4, "p_in",
     app("GET", 200, "aiohttp_server")),
    ("p_sql", "products-0", "SELECT products.db", CLIENT, 2.9, 1.7, "p",
     db("sqlite", "SELECT sku, name FROM products")),
]  # fmt: skip
SDK = {"telemetry.sdk.language": "python", "telemetry.sdk.name": "opentelemetry"}


def resource(process: str) -> dict[str, Any]:
    """A sidecar's resource is its service's name only; an app's has its instance and SDK."""
    service = process.split("-")[0]
    if process == "ingress" or process.endswith("sidecar"):
        return {"service.name": service}
    return {"service.name": service, "service.instance.id": process, **SDK}


def exports(
    table: list[Any], trace_id: str | None = None, start_ns: int | None = None
) -> tuple[str, dict[str, str], list[dict[str, Any]]]:
    """The trace in ``table`` as OTLP JSON requests, one per process, as each would send it;
    returns its id, the span ids by key and the requests."""
    trace_id = trace_id or os.urandom(16).hex()
    start_ns = start_ns or time.time_ns() - 5_000_000_000
    ids = {row[0]: os.urandom(8).hex() for row in table}
    by_process: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for key, process, name, kind, start_ms, duration_ms, parent, tags in table:
        tags = dict(tags)
        scope, error, event = (
            tags.pop("@scope", ""),
            tags.pop("@error", None),
            tags.pop("@event", None),
        )
        begin = start_ns + int(start_ms * 1e6)
        span: dict[str, Any] = {
            "traceId": trace_id,
            "spanId": ids[key],
            "parentSpanId": ids[parent] if parent else "",
            "name": name,
            "kind": kind,
            "startTimeUnixNano": str(begin),
            "endTimeUnixNano": begin + int(duration_ms * 1e6),  # a number is fine too
            "attributes": attributes(tags),
            "status": {"code": 2, "message": error} if error else {},
        }
        if event:
            span["events"] = [
                {
                    "timeUnixNano": str(start_ns + int(event["at_ms"] * 1e6)),
                    "name": event["name"],
                    "attributes": attributes(event["attrs"]),
                }
            ]
        by_process.setdefault(process, {}).setdefault(scope, []).append(span)
    requests = [
        {
            "resourceSpans": [
                {
                    "resource": {"attributes": attributes(resource(process))},
                    "scopeSpans": [
                        {"scope": {"name": scope} if scope else {}, "spans": spans}
                        for scope, spans in scopes.items()
                    ],
                }
            ]
        }
        for process, scopes in by_process.items()
    ]
    return trace_id, ids, requests


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = await Store.open(tmp_path / "traces.db")
    yield s
    await s.close()


@pytest.fixture
async def otlp(aiohttp_client: Any, store: Store) -> TestClient:
    return await aiohttp_client(create_otlp_app(store))


@pytest.fixture
async def query(aiohttp_client: Any, store: Store) -> TestClient:
    return await aiohttp_client(create_query_app(store))


async def send(otlp: TestClient, requests: list[dict[str, Any]]) -> None:
    for body in requests:
        resp = await otlp.post("/v1/traces", json=body)
        assert resp.status == 200, await resp.text()
        assert resp.content_type == "application/json"
        assert await resp.json() == {}


async def add_directly(store: Store, requests: list[dict[str, Any]]) -> None:
    """Store OTLP JSON requests without going through HTTP."""
    for body in requests:
        rows, rejected = to_rows(decode_json(json.dumps(body).encode()))
        assert not rejected
        await store.add(rows)


async def get_trace(query: TestClient, trace_id: str) -> dict[str, Any]:
    resp = await query.get(f"/api/traces/{trace_id}")
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["total"] == 0 and body["limit"] == 0 and body["offset"] == 0
    assert body["errors"] is None and len(body["data"]) == 1
    return body["data"][0]


def tags_of(item: dict[str, Any]) -> dict[str, tuple[str, Any]]:
    return {t["key"]: (t["type"], t["value"]) for t in item["tags"]}


def span_named(trace: dict[str, Any], name: str, service: str | None = None) -> dict[str, Any]:
    for span in trace["spans"]:
        s = trace["processes"][span["processID"]]["serviceName"]
        if span["operationName"] == name and (service is None or s == service):
            return span
    raise AssertionError(f"no span {name!r} in the trace")


def check_jaeger_trace(trace: dict[str, Any]) -> None:
    """Every field of a trace in Jaeger's JSON, as the Jaeger UI reads it."""
    assert set(trace) == {"traceID", "spans", "processes", "warnings"}
    assert len(trace["traceID"]) == 32 and set(trace["traceID"]) <= HEX
    assert trace["warnings"] is None
    for pid, process in trace["processes"].items():
        assert pid.startswith("p") and pid[1:].isdigit()
        assert set(process) == {"serviceName", "tags"}
        assert "service.name" not in {t["key"] for t in process["tags"]}
    for span in trace["spans"]:
        assert set(span) == {
            "traceID",
            "spanID",
            "flags",
            "operationName",
            "references",
            "startTime",
            "duration",
            "tags",
            "logs",
            "processID",
            "warnings",
        }
        assert span["traceID"] == trace["traceID"]
        assert len(span["spanID"]) == 16 and set(span["spanID"]) <= HEX
        assert span["processID"] in trace["processes"]
        assert isinstance(span["startTime"], int) and span["startTime"] > 1_600_000_000_000_000
        assert isinstance(span["duration"], int) and span["duration"] >= 0
        assert isinstance(span["flags"], int) and span["warnings"] is None
        for ref in span["references"]:
            assert set(ref) == {"refType", "traceID", "spanID"}
            assert ref["refType"] in ("CHILD_OF", "FOLLOWS_FROM")
            assert len(ref["traceID"]) == 32 and len(ref["spanID"]) == 16
        for log in span["logs"]:
            assert set(log) == {"timestamp", "fields"} and isinstance(log["timestamp"], int)
        for tag in span["tags"] + [f for log in span["logs"] for f in log["fields"]]:
            assert set(tag) == {"key", "type", "value"}
            python_type = {
                "string": str,
                "bool": bool,
                "int64": int,
                "float64": float,
                "binary": str,
            }
            assert isinstance(tag["value"], python_type[tag["type"]]), tag


# -- OTLP in ----------------------------------------------------------------------------------


async def test_the_sdk_exporter_sends_protobuf_and_two_services_merge_into_one_trace(
    tmp_path: Path,
) -> None:
    server = await start(tmp_path / "t.db", otlp_port=0, query_port=0)
    try:
        memory = {name: InMemorySpanExporter() for name in ("gateway", "products")}
        tracers = {}
        for name, exporter in memory.items():
            provider = TracerProvider(
                resource=Resource.create({"service.name": name, "deployment.environment": "dev"})
            )
            provider.add_span_processor(SimpleSpanProcessor(exporter))
            tracers[name] = provider.get_tracer("boutique.test", "1.2.3")
        with (
            tracers["gateway"].start_as_current_span(
                "GET /api/products/{sku}",
                kind=otel.SpanKind.SERVER,
                attributes={"http.response.status_code": 200, "ratio": 0.5, "cached": False},
            ) as parent,
            tracers["products"].start_as_current_span(
                "SELECT products", kind=otel.SpanKind.CLIENT
            ) as child,
        ):
            child.add_event("retry", {"attempt": 2})
            child.set_status(otel.Status(otel.StatusCode.ERROR, "database is locked"))
            child.add_link(parent.get_span_context())
        url = f"{server.otlp_url}/v1/traces"
        gateway_spans = memory["gateway"].get_finished_spans()
        products_spans = memory["products"].get_finished_spans()
        plain = OTLPSpanExporter(endpoint=url)
        gzipped = OTLPSpanExporter(endpoint=url, compression=Compression.Gzip)
        assert (await asyncio.to_thread(plain.export, gateway_spans)).name == "SUCCESS"
        assert (await asyncio.to_thread(gzipped.export, products_spans)).name == "SUCCESS"

        trace_id = format(parent.get_span_context().trace_id, "032x")
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{server.query_url}/api/traces/{trace_id}") as resp,
        ):
            trace = (await resp.json())["data"][0]
    finally:
        await server.close()
    check_jaeger_trace(trace)
    assert trace["traceID"] == trace_id
    assert len(trace["spans"]) == 2 and len(trace["processes"]) == 2
    top, sql = span_named(trace, "GET /api/products/{sku}"), span_named(trace, "SELECT products")
    parent_id = format(parent.get_span_context().span_id, "016x")
    assert top["spanID"] == parent_id and top["references"] == []
    assert sql["references"] == [
        {"refType": "CHILD_OF", "traceID": trace_id, "spanID": parent_id},
        {"refType": "FOLLOWS_FROM", "traceID": trace_id, "spanID": parent_id},
    ]
    assert trace["processes"][top["processID"]]["serviceName"] == "gateway"
    assert trace["processes"][sql["processID"]]["serviceName"] == "products"
    process_tags = tags_of(trace["processes"][top["processID"]])
    assert process_tags["deployment.environment"] == ("string", "dev")
    assert process_tags["telemetry.sdk.language"] == ("string", "python")
    top_tags = tags_of(top)
    assert top_tags["http.response.status_code"] == ("int64", 200)
    assert top_tags["ratio"] == ("float64", 0.5)
    assert top_tags["cached"] == ("bool", False)
    assert top_tags["span.kind"] == ("string", "server")
    assert top_tags["otel.scope.name"] == ("string", "boutique.test")
    assert top_tags["otel.scope.version"] == ("string", "1.2.3")
    assert "error" not in top_tags and "otel.status_code" not in top_tags
    sql_tags = tags_of(sql)
    assert sql_tags["span.kind"] == ("string", "client")
    assert sql_tags["otel.status_code"] == ("string", "ERROR")
    assert sql_tags["otel.status_description"] == ("string", "database is locked")
    assert sql_tags["error"] == ("bool", True)
    [log] = sql["logs"]
    assert log["fields"] == [
        {"key": "event", "type": "string", "value": "retry"},
        {"key": "attempt", "type": "int64", "value": 2},
    ]
    assert sql["startTime"] <= log["timestamp"] <= sql["startTime"] + sql["duration"]
    assert top["flags"] == 1


async def test_otlp_json_exports_of_nine_processes_make_one_trace(
    otlp: TestClient, query: TestClient
) -> None:
    trace_id, ids, requests = exports(MESH_TRACE)
    await send(otlp, requests)
    trace = await get_trace(query, trace_id)
    check_jaeger_trace(trace)
    assert len(trace["spans"]) == len(MESH_TRACE)
    spans = {s["spanID"]: s for s in trace["spans"]}
    for key, process, name, _kind, _start, duration_ms, parent, _tags in MESH_TRACE:
        span = spans[ids[key]]
        assert span["operationName"] == name
        assert trace["processes"][span["processID"]]["serviceName"] == process.split("-")[0]
        assert span["duration"] == int(duration_ms * 1000)
        parent_ref = {"refType": "CHILD_OF", "traceID": trace_id, "spanID": ids.get(parent or "")}
        assert span["references"] == ([parent_ref] if parent else [])
    # equal resources share a process: the two products sidecars, not the two apps
    services = sorted(p["serviceName"] for p in trace["processes"].values())
    assert services == ["cart", "cart", "gateway", "gateway", "ingress"] + ["products"] * 3
    assert [s["startTime"] for s in trace["spans"]] == sorted(
        s["startTime"] for s in spans.values()
    )
    p1 = spans[ids["p1"]]
    assert tags_of(p1)["otel.scope.name"] == (
        "string",
        "opentelemetry.instrumentation.aiohttp_server",
    )
    assert tags_of(p1)["error"] == ("bool", True)
    assert p1["logs"][0]["fields"][:2] == [
        {"key": "event", "type": "string", "value": "exception"},
        {"key": "exception.type", "type": "string", "value": "sqlite3.OperationalError"},
    ]
    envoy = tags_of(spans[ids["p1_in"]])
    assert envoy["component"] == ("string", "proxy") and envoy["error"] == ("string", "true")
    assert envoy["http.status_code"] == ("string", "503")
    assert tags_of(spans[ids["gw_redis"]])["net.peer.port"] == ("int64", 6380)


async def test_protobuf_posted_by_hand_and_gzip_are_accepted(
    otlp: TestClient, query: TestClient, store: Store
) -> None:
    trace_id, _, requests = exports(SIMPLE_TRACE)
    for i, body in enumerate(requests):
        # ids in OTLP JSON are hex; in the protobuf JSON mapping, base64
        message = ExportTraceServiceRequest()
        for rs in body["resourceSpans"]:
            for ss in rs["scopeSpans"]:
                for span in ss["spans"]:
                    for field in ("traceId", "spanId", "parentSpanId"):
                        raw = bytes.fromhex(span[field])
                        span[field] = base64.b64encode(raw).decode()
        json_format.ParseDict(body, message)
        data = message.SerializeToString()
        headers = {"Content-Type": "application/x-protobuf"}
        if i % 2:
            data, headers["Content-Encoding"] = gzip.compress(data), "gzip"
        resp = await otlp.post("/v1/traces", data=data, headers=headers)
        assert resp.status == 200
        assert resp.content_type == "application/x-protobuf"
        reply = ExportTraceServiceResponse.FromString(await resp.read())
        assert not reply.HasField("partial_success")
    gz = gzip.compress(json.dumps(exports(SIMPLE_TRACE)[2][0]).encode())
    resp = await otlp.post(
        "/v1/traces",
        data=gz,
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert resp.status == 200
    trace = await get_trace(query, trace_id)
    assert len(trace["spans"]) == len(SIMPLE_TRACE)
    assert store.span_count == len(SIMPLE_TRACE) + 1  # and the other trace's ingress span


async def test_concurrent_exports_are_all_stored(otlp: TestClient, query: TestClient) -> None:
    traces = [exports(SIMPLE_TRACE) for _ in range(10)]
    bodies = [body for _, _, requests in traces for body in requests]
    replies = await asyncio.gather(*(otlp.post("/v1/traces", json=body) for body in bodies))
    assert [r.status for r in replies] == [200] * len(bodies)
    for trace_id, _, _ in traces:
        assert len((await get_trace(query, trace_id))["spans"]) == len(SIMPLE_TRACE)


async def test_a_span_sent_twice_is_stored_once(otlp: TestClient, query: TestClient) -> None:
    trace_id, _, requests = exports(SIMPLE_TRACE)
    await send(otlp, requests + requests[:2])
    assert len((await get_trace(query, trace_id))["spans"]) == len(SIMPLE_TRACE)


@pytest.mark.parametrize(
    ("content_type", "body", "says"),
    [
        ("application/x-protobuf", b"not a protobuf", "not an OTLP protobuf"),
        ("application/json", b"{not json", "not JSON"),
        ("application/json", b"[1, 2]", "not a JSON object"),
        ("application/json", b'{"resourceSpans": 3}', "resourceSpans"),
        (
            "application/json",
            b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz","spanId":"00"}]}]}]}',
            "traceId 'zz' is not hex",
        ),
        (
            "application/json",
            b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"startTimeUnixNano":"soon"}]}]}]}',
            "soon",
        ),
    ],
)
async def test_a_body_that_does_not_decode_is_400_and_stores_nothing(
    otlp: TestClient, store: Store, content_type: str, body: bytes, says: str
) -> None:
    resp = await otlp.post("/v1/traces", data=body, headers={"Content-Type": content_type})
    assert resp.status == 400
    assert resp.content_type == content_type  # a google.rpc.Status in the request's encoding
    if content_type == "application/json":
        status = await resp.json()
        assert status["code"] == 3 and says in status["message"]
    else:
        status = Status.FromString(await resp.read())
        assert status.code == 3 and says in status.message
    assert store.span_count == 0


async def test_bad_gzip_is_400_and_other_content_types_are_415(
    otlp: TestClient, store: Store
) -> None:
    resp = await otlp.post(
        "/v1/traces",
        data=b"plainly not gzip",
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert resp.status == 400
    assert "gzip" in (await resp.json())["message"]
    resp = await otlp.post("/v1/traces", data=b"{}", headers={"Content-Type": "text/plain"})
    assert resp.status == 415
    assert "application/x-protobuf" in await resp.text()
    resp = await otlp.post(
        "/v1/traces",
        data=b"{}",
        headers={"Content-Type": "application/json", "Content-Encoding": "snappy"},
    )
    assert resp.status == 415
    assert store.span_count == 0


async def test_spans_with_unusable_ids_are_rejected_in_a_partial_success(
    otlp: TestClient, store: Store
) -> None:
    _, _, requests = exports(SIMPLE_TRACE[:2])
    spans = requests[0]["resourceSpans"][0]["scopeSpans"][0]["spans"]
    spans.append({**spans[0], "spanId": "0000000000000000"})
    spans.append({**spans[0], "traceId": "abcd"})
    resp = await otlp.post("/v1/traces", json=requests[0])
    assert resp.status == 200
    partial = (await resp.json())["partialSuccess"]
    assert partial["rejectedSpans"] == "2"
    assert "span id must be 8 bytes" in partial["errorMessage"]
    assert store.span_count == 1


async def test_the_size_cap_evicts_the_oldest_traces_whole(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "capped.db", max_spans=20)
    try:

        async def add(table: list[Any]) -> str:
            trace_id, _, requests = exports(table)
            await add_directly(store, requests)
            return trace_id

        first, second = await add(SIMPLE_TRACE), await add(SIMPLE_TRACE)
        assert store.span_count == 14
        third = await add(SIMPLE_TRACE)  # 21 > 20: the oldest go, down to 90% of the cap
        assert store.span_count == 14
        found = await store.traces([first, second, third])
        assert list(found) == [second, third]
        assert all(len(spans) == len(SIMPLE_TRACE) for spans in found.values())
    finally:
        await store.close()
    reopened = await Store.open(tmp_path / "capped.db", max_spans=20)
    assert reopened.span_count == 14
    await reopened.close()


# -- the Jaeger query API ---------------------------------------------------------------------


async def test_services_and_operations_in_jaeger_shape(otlp: TestClient, query: TestClient) -> None:
    await send(otlp, exports(MESH_TRACE)[2])
    body = await (await query.get("/api/services")).json()
    assert body == {
        "data": ["cart", "gateway", "ingress", "products"],
        "total": 4,
        "limit": 0,
        "offset": 0,
        "errors": None,
    }
    body = await (await query.get("/api/services/products/operations")).json()
    assert body == {
        "data": ["GET /products/{sku}", "SELECT products.db", "ingress products"],
        "total": 3,
        "limit": 0,
        "offset": 0,
        "errors": None,
    }
    body = await (await query.get("/api/services/nobody/operations")).json()
    assert body["data"] == [] and body["total"] == 0
    body = await (await query.get("/api/operations", params={"service": "cart"})).json()
    assert body["total"] == 6 and body["errors"] is None  # GET: Redis and HTTP
    assert {"name": "egress products", "spanKind": "client"} in body["data"]
    assert {"name": "PUT /cart/items/{sku}", "spanKind": "server"} in body["data"]
    body = await (
        await query.get("/api/operations", params={"service": "cart", "spanKind": "server"})
    ).json()
    assert body["data"] == [
        {"name": "PUT /cart/items/{sku}", "spanKind": "server"},
        {"name": "ingress cart", "spanKind": "server"},
    ]


async def search(query: TestClient, **params: Any) -> list[str]:
    resp = await query.get("/api/traces", params={k: str(v) for k, v in params.items()})
    body = await resp.json()
    assert resp.status == 200, body
    assert body["errors"] is None and body["total"] == 0
    for trace in body["data"]:
        check_jaeger_trace(trace)
    return [t["traceID"] for t in body["data"]]


def typed_trace() -> tuple[str, dict[str, Any]]:
    """A trace of one span with a tag of every OTLP value type, an error status, trace state,
    an event and a link; its id and OTLP JSON."""
    trace_id = os.urandom(16).hex()
    now = time.time_ns()
    values = [
        {"key": "text", "value": {"stringValue": "a=b\\c\nsecond line"}},
        {"key": "odd=key\nname", "value": {"stringValue": "x"}},
        {"key": "count", "value": {"intValue": "-42"}},
        {"key": "flag", "value": {"boolValue": False}},
        {"key": "ratio", "value": {"doubleValue": 0.1}},
        {"key": "big", "value": {"doubleValue": 12345678901.5}},
        {"key": "raw", "value": {"bytesValue": base64.b64encode(b"\x00\xffok").decode()}},
        {"key": "list", "value": {"arrayValue": {"values": [{"intValue": "1"}, {}]}}},
        {"key": "map", "value": {"kvlistValue": {"values": [{"key": "k", "value": {}}]}}},
        {"key": "empty", "value": {}},
    ]
    span = {
        "traceId": trace_id,
        "spanId": os.urandom(8).hex(),
        "name": "every type",
        "kind": SERVER,
        "startTimeUnixNano": str(now - 2_000_000),
        "endTimeUnixNano": str(now),
        "attributes": values,
        "status": {"code": 2, "message": "it failed"},
        "traceState": "vendor=1",
        "events": [
            {"timeUnixNano": str(now - 1_000_000), "name": "retry", "attributes": values[:3]}
        ],
        "links": [{"traceId": os.urandom(16).hex(), "spanId": os.urandom(8).hex()}],
    }
    body = {
        "resourceSpans": [
            {
                "resource": {"attributes": attributes({"service.name": "typed", "zone": "b=1"})},
                "scopeSpans": [{"scope": {"name": "lib", "version": "1.0"}, "spans": [span]}],
            }
        ]
    }
    return trace_id, body


def shown_tags(trace: dict[str, Any]) -> list[tuple[str, str]]:
    """Every tag, log field and process tag the trace's one span shows, as a search compares
    it: ``(key, value as a string)``."""
    shown = trace["spans"][0]
    kvs = shown["tags"] + [f for log in shown["logs"] for f in log["fields"]]
    kvs += trace["processes"][shown["processID"]]["tags"]
    out = []
    for kv in kvs:
        value = kv["value"]
        if kv["type"] == "bool":
            value = "true" if value else "false"
        elif kv["type"] == "float64":
            value = format(value, ".10g")
        elif kv["type"] == "binary":
            value = base64.b64decode(value).hex()
        out.append((kv["key"], str(value)))
    return out


async def test_every_tag_a_trace_shows_finds_it_in_a_search(
    otlp: TestClient, query: TestClient
) -> None:
    """Spans are stored as they came and turned into Jaeger's JSON when read; the search text is
    built at ingest. Every tag and log field the trace shows, of every type, must find it."""
    trace_id, body = typed_trace()
    await send(otlp, [body])
    trace = await get_trace(query, trace_id)
    check_jaeger_trace(trace)
    tags = shown_tags(trace)
    assert {"otel.scope.name", "span.kind", "error", "w3c.tracestate", "event"} <= {
        key for key, _ in tags
    }
    for key, value in tags:
        found = await search(query, service="typed", tags=json.dumps({key: value}))
        assert found == [trace_id], (key, value)
    assert await search(query, service="typed", tags='{"count":"-4"}') == []
    assert await search(query, service="typed", tags='{"text":"a=b"}') == []


async def test_a_tag_search_that_matches_nothing_decodes_no_span(
    otlp: TestClient, query: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tag search used to decode every span in range to compare its tags, seconds at the
    store's cap even when nothing matched; the spans' stored bytes now rule out the spans that
    cannot match first. Every tag still finds its trace, and every other value of it, nothing."""
    trace_id, body = typed_trace()
    mesh_id, _, mesh = exports(MESH_TRACE)
    await send(otlp, [body, *mesh])
    decoded = []
    real = store_module.span_search_text
    monkeypatch.setattr(store_module, "span_search_text", lambda *a: decoded.append(a) or real(*a))
    tags = shown_tags(await get_trace(query, trace_id))
    for key, value in tags:
        assert trace_id in await search(query, tags=json.dumps({key: value})), (key, value)
        decoded.clear()
        for other in (value + "0", "1" + value, value[:-1], "9" if value != "9" else "8"):
            if other and (key, other) not in tags:  # "" is any value's key: decoded
                assert await search(query, tags=json.dumps({key: other})) == [], (key, other)
        # ...and only a double, list or map (matched by its key and type) was decoded for it
        assert decoded == [] or key in ("ratio", "big", "list", "map", "empty"), (key, value)
    decoded.clear()
    for tags_json in (
        '{"http.status_code":"599"}',
        '{"http.route":"/nowhere"}',
        '{"no.such.key":"x"}',
        '{"db.system":"sqlite","error":"false"}',
        '{"span.kind":"producer"}',
        '{"otel.scope.name":"nope"}',
    ):
        assert await search(query, tags=tags_json) == [], tags_json
    assert decoded == []
    assert await search(query, tags='{"http.status_code":"503","error":"true"}') == [mesh_id]
    assert await search(query, tags='{"exception.type":"sqlite3.OperationalError"}') == [mesh_id]
    assert await search(query, service="products", tags='{"otel.status_code":"ERROR"}') == [mesh_id]


async def test_search_filters_each_include_and_exclude(otlp: TestClient, query: TestClient) -> None:
    now = time.time_ns()
    mesh_id, _, mesh = exports(MESH_TRACE, start_ns=now - 60_000_000_000)  # a minute ago
    simple_id, _, simple = exports(SIMPLE_TRACE, start_ns=now - 5_000_000_000)
    await send(otlp, mesh + simple)
    both = [simple_id, mesh_id]  # the newest first
    assert await search(query, service="products") == both
    assert await search(query, service="cart") == [mesh_id]
    assert await search(query, service="nobody") == []
    # operation
    assert await search(query, service="gateway", operation="egress products") == [simple_id]
    assert await search(query, service="gateway", operation="egress cart") == [mesh_id]
    # tags: a JSON object of strings, or tag=key:value; values compare as strings
    assert await search(query, service="products", tags='{"http.status_code":"503"}') == [mesh_id]
    assert await search(query, service="products", tags='{"error":"true"}') == [mesh_id]
    assert await search(query, service="gateway", tags='{"error":"true"}') == []
    assert await search(query, service="products", tag="http.response.status_code:503") == [mesh_id]
    assert await search(query, service="products", tag="service.instance.id:products-1") == [
        mesh_id
    ]  # a process tag
    assert await search(query, service="products", tag="exception.type:sqlite3.OperationalError")
    # all conditions hold on one span: products-1's error is not on the SQL span of products-0
    assert await search(
        query, service="products", operation="GET /products/{sku}", tags='{"error":"true"}'
    ) == [mesh_id]
    assert (
        await search(
            query, service="products", operation="ingress products", tag="db.system:sqlite"
        )
        == []
    )
    # durations (of one span)
    assert await search(query, service="ingress", minDuration="40ms") == [mesh_id]
    assert await search(query, service="ingress", maxDuration="10ms") == [simple_id]
    assert await search(query, service="ingress", minDuration="9ms", maxDuration="0.01s") == [
        simple_id
    ]
    assert await search(query, service="ingress", minDuration="1m") == []
    # start / end, in microseconds since the epoch; lookback when no start
    now_us = now // 1000
    assert await search(query, service="ingress", start=now_us - 30_000_000) == [simple_id]
    assert await search(query, service="ingress", end=now_us - 30_000_000) == [mesh_id]
    assert await search(query, service="ingress", start=now_us - 600_000_000) == both
    assert await search(query, service="ingress", lookback="30s") == [simple_id]
    assert await search(query, service="ingress", lookback="2d") == both
    # limit: the newest first
    assert await search(query, service="ingress", limit=1) == [simple_id]
    # by id, and every service at once (an extension: Jaeger requires a service)
    assert await search(query, traceID=mesh_id) == [mesh_id]
    assert await search(query) == both


async def test_the_search_returns_whole_traces(otlp: TestClient, query: TestClient) -> None:
    trace_id, _, requests = exports(MESH_TRACE)
    await send(otlp, requests)
    body = await (await query.get("/api/traces", params={"service": "products"})).json()
    [trace] = body["data"]
    assert len(trace["spans"]) == len(MESH_TRACE)
    assert trace == await get_trace(query, trace_id)


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"service": "x", "start": "yesterday"}, "'start'"),
        ({"service": "x", "end": "1.5"}, "'end'"),
        ({"service": "x", "limit": "many"}, "'limit'"),
        ({"service": "x", "limit": "-1"}, "'limit'"),
        ({"service": "x", "minDuration": "fast"}, "'minDuration'"),
        ({"service": "x", "maxDuration": "10 parsecs"}, "'maxDuration'"),
        ({"service": "x", "minDuration": "2s", "maxDuration": "1s"}, "'maxDuration'"),
        ({"service": "x", "tags": "{nope"}, "'tags'"),
        ({"service": "x", "tags": '{"status": 500}'}, "'tags'"),
        ({"service": "x", "tag": "no-colon"}, "'tag'"),
        ({"service": "x", "lookback": "ages"}, "'lookback'"),
        ({"service": "x", "start": "20", "end": "10"}, "'start'"),
        ({"traceID": "xyz"}, "traceID"),
    ],
)
async def test_bad_search_params_are_400_in_jaeger_shape(
    query: TestClient, params: dict[str, str], says: str
) -> None:
    resp = await query.get("/api/traces", params=params)
    assert resp.status == 400
    body = await resp.json()
    assert body["data"] is None and body["total"] == 0
    [error] = body["errors"]
    assert error["code"] == 400 and says in error["msg"]


async def test_bad_operations_params_are_400(query: TestClient) -> None:
    resp = await query.get("/api/operations")
    assert resp.status == 400
    assert (await resp.json())["errors"] == [
        {"code": 400, "msg": "parameter 'service' is required"}
    ]
    resp = await query.get("/api/operations", params={"service": "cart", "spanKind": "sideways"})
    assert resp.status == 400


async def test_an_unknown_trace_is_404_and_a_bad_id_400(query: TestClient) -> None:
    resp = await query.get(f"/api/traces/{'ab' * 16}")
    assert resp.status == 404
    assert await resp.json() == {
        "data": None,
        "total": 0,
        "limit": 0,
        "offset": 0,
        "errors": [{"code": 404, "msg": "trace not found"}],
    }
    resp = await query.get("/api/traces/not-hex")
    assert resp.status == 400
    assert (await resp.json())["errors"][0]["code"] == 400
    # asked by id in a search, as Jaeger answers: found ones in data, missing ones in errors
    body = await (await query.get("/api/traces", params={"traceID": "ab" * 16})).json()
    assert body["data"] == []
    assert body["errors"] == [{"code": 404, "msg": "trace not found", "traceID": "ab" * 16}]


async def test_a_trace_id_is_found_in_upper_case_and_zero_padded(
    otlp: TestClient, query: TestClient
) -> None:
    trace_id, _, requests = exports(SIMPLE_TRACE, trace_id="0" * 16 + "00ab34cd56ef7890")
    await send(otlp, requests)
    trace = await get_trace(query, "AB34CD56EF7890")
    assert trace["traceID"] == trace_id


def test_durations_parse_like_go() -> None:
    assert jaeger.parse_duration("1.2s") == 1_200_000
    assert jaeger.parse_duration("100ms") == 100_000
    assert jaeger.parse_duration("500us") == jaeger.parse_duration("500µs") == 500
    assert jaeger.parse_duration("1m30s") == 90_000_000
    assert jaeger.parse_duration("0") == 0
    assert jaeger.parse_duration("2d", days=True) == 2 * 86_400_000_000
    for bad in ("", "5", "1.2", "2d", "-1s", "1s 2s"):
        with pytest.raises(jaeger.BadParam):
            jaeger.parse_duration(bad)


# -- the view and the server ------------------------------------------------------------------


async def test_the_view_and_a_trace_deep_link_serve_the_page(query: TestClient) -> None:
    for path in ("/", f"/trace/{'ab' * 16}", "/?service=cart&lookback=1h"):
        resp = await query.get(path)
        assert resp.status == 200 and resp.content_type == "text/html"
        page = await resp.text()
        assert '<script src="/static/view.js">' in page and "/static/view.css" in page
        assert "http://" not in page and "https://" not in page  # no external assets
    for asset, ctype in (("view.js", "javascript"), ("view.css", "text/css")):
        resp = await query.get(f"/static/{asset}")
        assert resp.status == 200 and ctype in resp.content_type
        text = await resp.text()
        assert "https://" not in text and "@import" not in text and "@font-face" not in text
    assert (await query.get("/healthz")).status == 200


async def test_a_port_in_use_is_named(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(PortInUse, match=f"port {port} on 127.0.0.1 is already in use"):
            await start(tmp_path / "t.db", otlp_port=0, query_port=port)


# -- boutique traces --------------------------------------------------------------------------


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Any]:
    server = await start(tmp_path / "t.db", otlp_port=0, query_port=0)
    yield server
    await server.close()


async def test_terminal_tree_shows_the_nesting_and_net_and_app_markers(running: Any) -> None:
    trace_id, _, requests = exports(MESH_TRACE)
    await add_directly(running.store, requests)
    text = await asyncio.to_thread(terminal.tree, running.query_url, trace_id)
    lines = text.splitlines()
    assert lines[0].startswith(f"trace {trace_id}")
    assert "20 spans" in lines[0] and "ERRORS: 3" in lines[0]
    assert lines[1] == "request PUT /api/cart/items/speckled-mug (HTTP 200)"
    body = lines[3:]
    assert len(body) == len(MESH_TRACE)

    def line(needle: str, nth: int = 0) -> str:
        return [x for x in body if needle in x][nth]

    root = line("ingress: ingress-gateway gateway")
    assert root.split()[:2] == ["+0ms", "48.02ms"]
    assert root.endswith("[net] HTTP 200")
    upstream = line("ingress: router gateway egress")
    assert "└─ ingress: router gateway egress  [net]" in upstream
    gw_app = line("gateway: PUT /api/cart/items/{sku}")
    assert gw_app.endswith("[app] HTTP 200")
    sql = line("products: SELECT products.db")
    assert sql.endswith("[app]  ERROR")
    failed = line("products: ingress products")
    assert failed.endswith("[net] HTTP 503  ERROR")
    # each level is indented three more columns, after the offset and duration columns
    path = [
        "ingress: ingress-gateway",
        "ingress: router",
        "gateway: ingress gateway",
        "gateway: PUT /api",
        "gateway: PUT  [app]",
        "gateway: egress cart",
        "cart: ingress cart",
        "cart: PUT /cart",
        "cart: GET  [app]",
        "cart: egress products",
        "products: ingress products",
        "products: GET /products",
        "products: SELECT",
    ]
    assert [line(n).index(n) for n in path] == [22 + 3 * depth for depth in range(len(path))]
    assert "│" in text and "├─" in text


async def test_terminal_recent_lists_the_newest_traces(running: Any) -> None:
    now = time.time_ns()
    old_id, _, old = exports(MESH_TRACE, start_ns=now - 120_000_000_000)
    new_id, _, new = exports(SIMPLE_TRACE, start_ns=now - 1_000_000_000)
    await add_directly(running.store, old + new)
    text = await asyncio.to_thread(terminal.recent, running.query_url)
    header, first, second = text.splitlines()
    assert header.split() == ["TRACE", "ID", "START", "DURATION", "SPANS", "ROOT", "REQUEST"]
    assert first.startswith(new_id) and "ingress: ingress-gateway gateway" in first
    assert " 7 " in first and "GET /api/products 200" in first and "ERROR" not in first
    assert second.startswith(old_id) and "48.02ms" in second
    assert second.endswith("PUT /api/cart/items/speckled-mug 200  ERROR (3)")
    text = await asyncio.to_thread(terminal.recent, running.query_url, "cart", 20, "1h")
    assert len(text.splitlines()) == 2 and old_id in text
    text = await asyncio.to_thread(terminal.recent, running.query_url, None, 20, "1m")
    assert old_id not in text and new_id in text
    text = await asyncio.to_thread(terminal.recent, running.query_url, "nobody")
    assert text == "no traces through nobody in the last 1h"


def test_terminal_says_when_no_store_is_running(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: the connection is refused
        parser = argparse.ArgumentParser()
        terminal.add_arguments(parser)
        args = parser.parse_args(["--url", f"http://127.0.0.1:{port}"])
        assert terminal.main(args) == 1
    err = capsys.readouterr().err
    assert f"no trace store at http://127.0.0.1:{port}: is `boutique up` running?" in err
