"""The kit's OpenTelemetry: OTEL_* variables honoured, and the spans an app makes, nested right."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from multidict import CIMultiDict
from opentelemetry import context, trace
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NoOpTracerProvider, SpanKind, StatusCode

from services.kit import httpspans, telemetry
from tests.conftest import build_app, closed_port, service_settings

ENDPOINT = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}


def service_name(provider: TracerProvider | None) -> str:
    assert provider is not None
    return str(provider.resource.attributes["service.name"])


def test_no_endpoint_or_disabled_means_no_tracing() -> None:
    assert telemetry.make_provider("cart", {}) is None
    assert telemetry.make_provider("cart", {**ENDPOINT, "OTEL_SDK_DISABLED": "true"}) is None
    assert telemetry.make_provider("cart", {**ENDPOINT, "OTEL_TRACES_EXPORTER": "none"}) is None


def test_service_name_comes_from_the_service_unless_otel_variables_say_otherwise() -> None:
    assert service_name(telemetry.make_provider("cart", ENDPOINT)) == "cart"
    env = {**ENDPOINT, "OTEL_RESOURCE_ATTRIBUTES": "service.name=basket,deployment.environment=dev"}
    provider = telemetry.make_provider("cart", env)
    assert service_name(provider) == "basket"
    assert provider is not None and provider.resource.attributes["deployment.environment"] == "dev"
    env = {**env, "OTEL_SERVICE_NAME": "trolley"}
    assert service_name(telemetry.make_provider("cart", env)) == "trolley"


def test_an_unknown_exporter_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="OTEL_TRACES_EXPORTER='zipkin'"):
        telemetry.make_provider("cart", {"OTEL_TRACES_EXPORTER": "zipkin"})


@pytest.fixture(scope="module")
def spans() -> Iterator[InMemorySpanExporter]:
    """Spans of every app in this process, kept in memory (a provider can be set only once)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    RedisInstrumentor().instrument(tracer_provider=provider)
    yield exporter
    RedisInstrumentor().uninstrument()
    exporter.shutdown()  # later tests' spans are dropped, not kept in memory


def by_name(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    found = [s for s in spans if s.name == name]
    assert found, f"no span {name!r} in {[s.name for s in spans]}"
    return found[0]


async def test_a_request_is_one_trace_continuing_the_callers_traceparent(
    service,
    spans: InMemorySpanExporter,  # type: ignore[no-untyped-def]
) -> None:
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        pytest.skip("another test set a different tracer provider first")
    api = await service("cart", peers=["products"])
    spans.clear()
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    parent = "00f067aa0ba902b7"
    resp = await api.put(
        "/cart/items/speckled-mug",
        json={"quantity": 1},
        headers={"X-User-Id": "u_trace", "traceparent": f"00-{trace_id}-{parent}-01"},
    )
    assert resp.status == 200
    everything = spans.get_finished_spans()
    got = [s for s in everything if format(s.context.trace_id, "032x") == trace_id]
    # every span of the request's work is in the caller's trace (start-up work is not)
    assert [s.name for s in everything if s.kind != SpanKind.INTERNAL and s not in got] == []
    server = by_name(got, "PUT /cart/items/{product_id}")
    assert server.kind == SpanKind.SERVER and format(server.parent.span_id, "016x") == parent
    client = by_name(got, "GET products")
    assert client.kind == SpanKind.CLIENT and client.parent.span_id == server.context.span_id
    products_server = by_name(got, "GET /products")
    assert products_server.parent.span_id == client.context.span_id  # traceparent propagated
    sql = [s for s in got if s.attributes and s.attributes.get("db.system") == "sqlite"]
    assert sql and all(s.parent.span_id == products_server.context.span_id for s in sql)
    redis_spans = [s for s in got if s.attributes and s.attributes.get("db.system") == "redis"]
    assert redis_spans and all(s.parent.span_id == server.context.span_id for s in redis_spans)


async def test_health_probes_make_no_spans(service, spans: InMemorySpanExporter) -> None:  # type: ignore[no-untyped-def]
    api = await service("gateway")  # its readiness pings both SQL and Redis
    spans.clear()
    assert (await api.get("/healthz")).status == 200
    assert (await api.get("/readyz")).status == 200
    assert [s.name for s in spans.get_finished_spans()] == []


async def test_answers_carry_their_trace_id_errors_included(
    service,
    spans: InMemorySpanExporter,  # type: ignore[no-untyped-def]
) -> None:
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        pytest.skip("another test set a different tracer provider first")
    api = await service("orders")
    trace_id = "0af7651916cd43dd8448eb211c80319c"
    headers = {"traceparent": f"00-{trace_id}-b7ad6b7169203331-01", "X-User-Id": "u_1"}
    ok = await api.get("/orders", headers=headers)
    missing = await api.get("/orders/ord_000000000000000000000000", headers=headers)
    for resp in (ok, missing):
        version, got_trace, span_id, flags = resp.headers["traceresponse"].split("-")
        assert (version, got_trace, flags) == ("00", trace_id, "01")
    assert missing.status == 404
    server_ids = {
        format(s.context.span_id, "016x")
        for s in spans.get_finished_spans()
        if s.kind == SpanKind.SERVER
    }
    assert ok.headers["traceresponse"].split("-")[2] in server_ids


async def test_http_spans_carry_method_route_status_url_and_peer(
    service,
    spans: InMemorySpanExporter,  # type: ignore[no-untyped-def]
) -> None:
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        pytest.skip("another test set a different tracer provider first")
    api = await service("cart", peers=["products"])
    spans.clear()
    resp = await api.put(
        "/cart/items/speckled-mug?x=1",
        json={"quantity": 1},
        headers={"X-User-Id": "u_attrs", "User-Agent": "shopper/1.0"},
    )
    assert resp.status == 200
    got = spans.get_finished_spans()
    server = by_name(got, "PUT /cart/items/{product_id}")
    host, port = resp.url.host, resp.url.port
    assert dict(server.attributes or {}) == {
        "http.method": "PUT",
        "http.scheme": "http",
        "http.flavor": "1.1",
        "http.target": "/cart/items/speckled-mug?x=1",
        "http.url": f"http://{host}:{port}/cart/items/speckled-mug?x=1",
        "http.route": "/cart/items/{product_id}",
        "net.host.name": host,
        "net.host.port": port,
        "http.user_agent": "shopper/1.0",
        "http.status_code": 200,
    }
    assert server.status.status_code == StatusCode.UNSET and not server.parent
    client = by_name(got, "GET products")
    attrs = dict(client.attributes or {})
    assert re.fullmatch(
        r"http://127\.0\.0\.1:\d+/products\?ids=speckled-mug", attrs.pop("http.url")
    )
    assert attrs == {"http.method": "GET", "peer.service": "products", "http.status_code": 200}
    assert client.instrumentation_scope.name == server.instrumentation_scope.name


async def test_failing_calls_mark_the_client_and_server_spans(
    aiohttp_client,  # type: ignore[no-untyped-def]
    spans: InMemorySpanExporter,
    tmp_path: Path,
    clean_redis: str,
) -> None:
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        pytest.skip("another test set a different tracer provider first")
    down = f"products=http://127.0.0.1:{closed_port()}"
    app = build_app("cart", service_settings("cart", tmp_path, clean_redis, PEER_URLS=down))
    api = await aiohttp_client(app)
    spans.clear()
    resp = await api.put(
        "/cart/items/speckled-mug", json={"quantity": 1}, headers={"X-User-Id": "u_down"}
    )
    assert resp.status == 503
    got = spans.get_finished_spans()
    server = by_name(got, "PUT /cart/items/{product_id}")
    assert server.status.status_code == StatusCode.ERROR
    assert server.attributes and server.attributes["http.status_code"] == 503
    client = by_name(got, "GET products")
    assert client.status.status_code == StatusCode.ERROR
    assert [e.name for e in client.events] == ["exception"]
    missing = await api.get("/no/such/path")
    assert missing.status == 404
    (not_found,) = [s for s in spans.get_finished_spans() if s.name == "GET"]
    assert not_found.status.status_code == StatusCode.UNSET  # a 4xx is the caller's error
    assert not_found.attributes and not_found.attributes["http.status_code"] == 404


@pytest.fixture
async def echo(aiohttp_server):  # type: ignore[no-untyped-def]
    """A peer that answers the trace headers it was sent."""

    async def headers(request: web.Request) -> web.Response:
        names = ("traceparent", "tracestate")
        return web.json_response({k: request.headers.get(k) for k in names})

    app = web.Application()
    app.router.add_get("/headers", headers)
    return await aiohttp_server(app)


async def call_echo(echo, incoming: dict[str, str]) -> dict[str, str | None]:  # type: ignore[no-untyped-def]
    """The trace headers a peer gets from a call made while handling a request that came
    with ``incoming``."""
    url = f"http://127.0.0.1:{echo.port}"
    token = context.attach(httpspans._extract(CIMultiDict(incoming)))
    try:
        async with (
            aiohttp.ClientSession(
                trace_configs=[telemetry.client_trace_config({"echo": url})]
            ) as http,
            http.get(url + "/headers") as resp,
        ):
            return await resp.json()
    finally:
        context.detach(token)


async def test_without_tracing_the_callers_traceparent_goes_on_as_it_came(
    echo,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(trace, "get_tracer_provider", NoOpTracerProvider)
    incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    sent = await call_echo(echo, {"traceparent": incoming})
    assert sent == {"traceparent": incoming, "tracestate": None}
    assert await call_echo(echo, {}) == {"traceparent": None, "tracestate": None}
    bad = "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"  # upper case: invalid
    assert await call_echo(echo, {"traceparent": bad}) == {"traceparent": None, "tracestate": None}


async def test_a_call_passes_on_its_own_span_and_the_callers_trace_state(
    echo,  # type: ignore[no-untyped-def]
    spans: InMemorySpanExporter,
) -> None:
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        pytest.skip("another test set a different tracer provider first")
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    for extra in ({}, {"tracestate": "vendor=1"}):
        spans.clear()
        sent = await call_echo(echo, {"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01", **extra})
        (client,) = spans.get_finished_spans()
        assert (
            client.name == "GET echo"
            and format(client.parent.span_id, "016x") == "00f067aa0ba902b7"
        )
        assert sent["traceparent"] == f"00-{trace_id}-{client.context.span_id:016x}-01"
        assert sent["tracestate"] == extra.get("tracestate")
