"""The kit's OpenTelemetry: OTEL_* variables honoured, and the spans an app makes, nested right."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from services.kit import telemetry

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
