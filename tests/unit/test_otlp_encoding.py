"""The apps' own OTLP encoder writes exactly the message OpenTelemetry's encoder builds, and the
exporter using it delivers every span to the trace store."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.span import TraceState

from services.kit.otlp import LeanOTLPSpanExporter, SpanEncoder
from tests.conftest import closed_port
from tests.polling import eventually
from tracestore.server import start

VALUES = {
    "text": "GET",
    "empty": "",
    "unicode": "prix: 12 €",
    "zero": 0,
    "count": 42,
    "big": 2**62,
    "negative": -7,
    "yes": True,
    "no": False,
    "ratio": 0.25,
    "nothing": 0.0,
    "minus zero": -0.0,
    "not a number": math.nan,
    "raw": b"\x00\xff",
    "words": ("a", "b"),
    "numbers": (1, -2, 3),
    "flags": (True, False),
    "none yet": (),
}


def made_spans() -> list[ReadableSpan]:
    """Spans of every shape the SDK makes: kinds, parents (local and remote), trace state,
    every attribute type, events, links, statuses, two scopes and two resources."""
    finished: list[ReadableSpan] = []
    for name in ("gateway", "products"):
        spans = InMemorySpanExporter()
        provider = TracerProvider(resource=Resource.create({"service.name": name, "n": 1}))
        provider.add_span_processor(SimpleSpanProcessor(spans))
        server = provider.get_tracer("opentelemetry.instrumentation.aiohttp_server", "0.66b1")
        mine = provider.get_tracer("boutique", schema_url="https://opentelemetry.io/schemas/1.21.0")
        remote = SpanContext(
            0x4BF92F3577B34DA6A3CE929D0E0E4736,
            0x00F067AA0BA902B7,
            is_remote=True,
            trace_flags=TraceFlags(1),
            trace_state=TraceState([("vendor", "x1"), ("other", "2")]),
        )
        parent = trace.set_span_in_context(trace.NonRecordingSpan(remote))
        with server.start_as_current_span(
            "GET /products/{sku}", context=parent, kind=SpanKind.SERVER, attributes=VALUES
        ) as span:
            span.add_event("retry", {"attempt": 2, "why": "locked"})
            span.add_event("plain")
            with mine.start_as_current_span(
                "checkout.reserve_stock", links=[Link(remote, {"why": "batch"}), Link(remote)]
            ) as step:
                step.set_status(Status(StatusCode.ERROR, "no stock"))
            with mine.start_as_current_span("ok step", kind=SpanKind.CLIENT) as step:
                step.set_status(Status(StatusCode.OK))
            span.set_attribute("http.response.status_code", 200)
        with mine.start_as_current_span("alone", kind=SpanKind.CONSUMER, attributes={"k": "v"}):
            pass
        provider.shutdown()
        finished += spans.get_finished_spans()
    return finished


def test_the_encoding_is_opentelemetrys_message_field_for_field() -> None:
    spans = made_spans()
    encoder = SpanEncoder()
    for _ in range(2):  # the second time from what the encoder remembered
        ours = ExportTraceServiceRequest.FromString(encoder.encode(spans))
        theirs = encode_spans(spans)
        assert ours == theirs
        assert len(ours.resource_spans) == 2
    # one span alone, as a small batch sends it
    assert ExportTraceServiceRequest.FromString(encoder.encode(spans[:1])) == encode_spans(
        spans[:1]
    )


async def test_spans_exported_in_batches_all_arrive_in_the_trace_store(tmp_path: Path) -> None:
    server = await start(tmp_path / "traces.db", otlp_port=0, query_port=0)
    try:
        exporter = LeanOTLPSpanExporter(endpoint=f"{server.otlp_url}/v1/traces")
        provider = TracerProvider(resource=Resource.create({"service.name": "cart"}))
        provider.add_span_processor(BatchSpanProcessor(exporter, max_export_batch_size=7))
        tracer = provider.get_tracer("boutique")
        trace_ids = set()
        for i in range(50):
            with tracer.start_as_current_span(f"request {i}", kind=SpanKind.SERVER) as span:
                trace_ids.add(f"{span.get_span_context().trace_id:032x}")
                with tracer.start_as_current_span("step", attributes={"i": i}):
                    pass
        await asyncio.to_thread(provider.shutdown)  # exports what is still batched

        async def stored() -> int:
            return server.store.span_count

        await eventually(stored, lambda n: n == 100, within=20, what="100 spans stored")
        found = await server.store.traces(trace_ids)
        assert set(found) == trace_ids
        assert all(len(spans) == 2 for spans in found.values())
        for spans in found.values():
            step, request = sorted(spans, key=lambda pair: pair[0]["operationName"])[::-1]
            assert step[0]["references"][0]["spanID"] == request[0]["spanID"]
    finally:
        await server.close()


def test_equal_resources_of_distinct_objects_are_one_resource_as_in_opentelemetry() -> None:
    """The encoder groups by the resource object (hashing a Resource runs json.dumps); equal
    resources of distinct objects still make one ResourceSpans, as OpenTelemetry's does."""
    spans = made_spans() + made_spans()  # the second call's resources: equal, other objects
    ours = ExportTraceServiceRequest.FromString(SpanEncoder().encode(spans))
    assert ours == encode_spans(spans)
    assert len(ours.resource_spans) == 2


async def test_spans_go_straight_to_the_collector_whatever_proxy_the_environment_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """requests would look up proxies and ~/.netrc for every POST; the exporter's session does
    not read the environment, so an HTTP_PROXY meant for other traffic does not take spans."""
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("NO_PROXY", "")
    server = await start(tmp_path / "traces.db", otlp_port=0, query_port=0)
    try:
        exporter = LeanOTLPSpanExporter(endpoint=f"{server.otlp_url}/v1/traces")
        spans = made_spans()
        result = await asyncio.to_thread(exporter.export, spans)
        assert result == SpanExportResult.SUCCESS
        assert server.store.span_count == len(spans)
    finally:
        await server.close()
