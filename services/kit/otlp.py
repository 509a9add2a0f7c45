"""The apps' spans as OTLP protobuf bytes, written directly, and the exporter that sends them.

OpenTelemetry's own encoder builds a protobuf object per span, per attribute and per value, and
then serializes them: in a profile of a loaded app it was the largest single cost of tracing (8%
of the gateway's CPU, twice what making the spans cost). This encoder writes the same bytes
(the same message, field for field: a unit test compares the two) straight from the SDK's
spans, and keeps the encoding of attribute pairs that repeat (``http.request.method=GET``,
``server.address=products``): most of a span's attributes are such pairs.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Mapping, Sequence
from typing import Any

import requests
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.trace import SpanKind

_KINDS = {
    SpanKind.INTERNAL: 1,
    SpanKind.SERVER: 2,
    SpanKind.CLIENT: 3,
    SpanKind.PRODUCER: 4,
    SpanKind.CONSUMER: 5,
}
_HAS_IS_REMOTE, _IS_REMOTE = 0x100, 0x200  # SpanFlags
_SMALL = [bytes((i,)) for i in range(128)]
_PACK_Q, _PACK_D, _PACK_I = (
    struct.Struct("<Q").pack,
    struct.Struct("<d").pack,
    struct.Struct("<I").pack,
)
_SCALARS = (str, int, float, bytes, bool)
_CREDENTIALS = (  # an OpenTelemetry credential provider makes the exporter's session
    "OTEL_PYTHON_EXPORTER_OTLP_HTTP_TRACES_CREDENTIAL_PROVIDER",
    "OTEL_PYTHON_EXPORTER_OTLP_HTTP_CREDENTIAL_PROVIDER",
)
_CACHE_LIMIT = 20_000  # remembered attribute pairs; forgotten all at once when full


def _varint(n: int) -> bytes:
    if 0 <= n < 128:
        return _SMALL[n]
    n &= 0xFFFF_FFFF_FFFF_FFFF  # negative int64: ten bytes, two's complement
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field: tag, length, payload."""
    return tag + _varint(len(payload)) + payload


def _text(tag: bytes, value: str | None) -> bytes:
    if not value:
        return b""
    return _field(tag, value.encode())


def _any(value: Any) -> bytes:
    """An AnyValue message, as OpenTelemetry's encoder maps Python values (its fields are a
    oneof: a zero or empty value is still written)."""
    if value is None:
        return b""
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, str):
        return _field(b"\x0a", value.encode())
    if isinstance(value, int):
        return b"\x18" + _varint(value)
    if isinstance(value, float):
        return b"\x21" + _PACK_D(value)
    if isinstance(value, bytes):
        return _field(b"\x3a", value)
    if isinstance(value, Sequence):
        return _field(b"\x2a", b"".join(_field(b"\x0a", _any(v)) for v in value))
    if isinstance(value, Mapping):
        pairs = b"".join(_field(b"\x0a", _key_value(str(k), v)) for k, v in value.items())
        return _field(b"\x32", pairs)
    raise TypeError(f"invalid type {type(value).__name__} of value {value!r}")


def _key_value(key: str, value: Any) -> bytes:
    return _text(b"\x0a", key) + _field(b"\x12", _any(value))


class SpanEncoder:
    """ExportTraceServiceRequest bytes for a batch of SDK spans."""

    def __init__(self) -> None:
        self._pairs: dict[tuple[str, type, Any], bytes] = {}
        self._resources: dict[int, tuple[Any, bytes]] = {}
        self._scopes: dict[Any, bytes] = {}

    def attributes(self, tag: bytes, attributes: Mapping[str, Any] | None) -> bytes:
        """Each attribute as a KeyValue field ``tag``; scalar pairs are remembered."""
        if not attributes:
            return b""
        out = []
        pairs = self._pairs
        for key, value in attributes.items():
            scalar = isinstance(value, _SCALARS)
            cached = pairs.get((key, type(value), value)) if scalar else None
            if cached is None:
                try:
                    cached = _field(tag, _key_value(key, value))
                except TypeError:  # as OpenTelemetry's encoder: the pair is left out
                    continue
                if scalar and tag == b"\x4a":
                    if len(pairs) >= _CACHE_LIMIT:
                        pairs.clear()
                    pairs[(key, type(value), value)] = cached
            elif tag != b"\x4a":
                cached = tag + cached[1:]
            out.append(cached)
        return b"".join(out)

    def encode(self, spans: Sequence[ReadableSpan]) -> bytes:
        # grouped by the resource object: a Resource hashes by json.dumps of its attributes,
        # and a process has one (equal resources that are distinct objects are merged below)
        grouped: dict[int, dict[Any, list[bytes]]] = {}
        resources: dict[int, Any] = {}
        for span in spans:
            resource = span.resource
            scopes = grouped.get(id(resource))
            if scopes is None:
                scopes = grouped[id(resource)] = {}
                resources[id(resource)] = resource
            scopes.setdefault(span.instrumentation_scope or None, []).append(self.span(span))
        out = []
        for key, scopes in _merge_equal(grouped, resources):
            resource = resources[key]
            body = [self._resource(resource)]
            for scope, encoded in scopes.items():
                scope_spans = [self._scope(scope)]
                scope_spans += [_field(b"\x12", s) for s in encoded]
                if scope is not None:
                    scope_spans.append(_text(b"\x1a", scope.schema_url))
                body.append(_field(b"\x12", b"".join(scope_spans)))
            body.append(_text(b"\x1a", resource.schema_url))
            out.append(_field(b"\x0a", b"".join(body)))
        return b"".join(out)

    def _resource(self, resource: Any) -> bytes:
        encoded = self._resources.get(id(resource))
        if encoded is None or encoded[0] is not resource:
            body = _field(b"\x0a", self.attributes(b"\x0a", resource.attributes))
            encoded = self._resources[id(resource)] = (resource, body)
        return encoded[1]

    def _scope(self, scope: Any) -> bytes:
        encoded = self._scopes.get(scope)
        if encoded is None:
            body = b""
            if scope is not None:
                body = _text(b"\x0a", scope.name) + _text(b"\x12", scope.version)
                body += self.attributes(b"\x1a", scope.attributes)
            encoded = self._scopes[scope] = _field(b"\x0a", body)
        return encoded

    def span(self, span: ReadableSpan) -> bytes:
        ctx = span.context
        parts = [b"\x0a\x10", ctx.trace_id.to_bytes(16, "big"), b"\x12\x08"]
        parts.append(ctx.span_id.to_bytes(8, "big"))
        if ctx.trace_state:
            parts.append(_text(b"\x1a", ",".join(f"{k}={v}" for k, v in ctx.trace_state.items())))
        parent = span.parent
        if parent:
            parts += (b"\x22\x08", parent.span_id.to_bytes(8, "big"))
        parts.append(_text(b"\x2a", span.name))
        parts += (b"\x30", _varint(_KINDS[span.kind]))
        if span.start_time:
            parts += (b"\x39", _PACK_Q(span.start_time))
        if span.end_time:
            parts += (b"\x41", _PACK_Q(span.end_time))
        parts.append(self.attributes(b"\x4a", _plain_attributes(span)))
        if span.dropped_attributes:
            parts += (b"\x50", _varint(span.dropped_attributes))
        for event in span.events:
            body = b"\x09" + _PACK_Q(event.timestamp) + _text(b"\x12", event.name)
            body += self.attributes(b"\x1a", event.attributes)
            if event.dropped_attributes:
                body += b"\x20" + _varint(event.dropped_attributes)
            parts.append(_field(b"\x5a", body))
        if span.dropped_events:
            parts += (b"\x60", _varint(span.dropped_events))
        for link in span.links:
            body = b"\x0a\x10" + link.context.trace_id.to_bytes(16, "big")
            body += b"\x12\x08" + link.context.span_id.to_bytes(8, "big")
            body += self.attributes(b"\x22", link.attributes)
            if link.dropped_attributes:
                body += b"\x28" + _varint(link.dropped_attributes)
            body += b"\x35" + _PACK_I(_flags(link.context))
            parts.append(_field(b"\x6a", body))
        if span.dropped_links:
            parts += (b"\x70", _varint(span.dropped_links))
        status = span.status
        if status is not None:
            code = status.status_code.value
            body = _text(b"\x12", status.description) + (b"\x18" + _varint(code) if code else b"")
            parts.append(_field(b"\x7a", body))
        parts += (b"\x85\x01", _PACK_I(_flags(parent)))
        return b"".join(parts)


def _merge_equal(
    grouped: dict[int, dict[Any, list[bytes]]], resources: dict[int, Any]
) -> list[tuple[int, dict[Any, list[bytes]]]]:
    """The groups, those of equal resources (rare: distinct objects) merged into the first."""
    if len(grouped) == 1:
        return list(grouped.items())
    merged: dict[Any, tuple[int, dict[Any, list[bytes]]]] = {}
    for key, scopes in grouped.items():
        first = merged.setdefault(resources[key], (key, {}))
        for scope, encoded in scopes.items():
            first[1].setdefault(scope, []).extend(encoded)
    return list(merged.values())


def _plain_attributes(span: ReadableSpan) -> Mapping[str, Any] | None:
    """The span's attributes: the SDK's own dict when it has one (its read-only view, a
    ``MappingProxyType`` of a locked ``BoundedAttributes``, iterates in Python, key by key)."""
    plain = getattr(getattr(span, "_attributes", None), "_dict", None)
    return plain if isinstance(plain, dict) else span.attributes


def _flags(parent: Any) -> int:
    if parent is not None and parent.is_remote:
        return _HAS_IS_REMOTE | _IS_REMOTE
    return _HAS_IS_REMOTE


class LeanOTLPSpanExporter(OTLPSpanExporter):
    """OpenTelemetry's OTLP/HTTP span exporter (its endpoint, headers, compression, retries
    and ``OTEL_EXPORTER_OTLP_*`` settings), with :class:`SpanEncoder` writing the bytes."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if "session" not in kwargs and not any(k in os.environ for k in _CREDENTIALS):
            # requests looks for proxies and reads ~/.netrc on every POST otherwise
            session = requests.Session()
            session.trust_env = False
            kwargs["session"] = session
        super().__init__(*args, **kwargs)
        self._encoder = SpanEncoder()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._shutdown:
            return SpanExportResult.FAILURE
        result = self._client.export(self._encoder.encode(spans))
        return SpanExportResult.SUCCESS if result.success else SpanExportResult.FAILURE
