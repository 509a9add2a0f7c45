"""OTLP spans to rows (at ingest) and rows to Jaeger JSON (at read).

Ingest does only what most searches need: the ids, service, operation, kind, start and
duration, and the span itself, re-serialized as OTLP protobuf bytes (in C: cheap). The Jaeger
JSON is built when a trace is read, and a span's tags as ``key=value`` lines (what a tag search
matches, :func:`span_search_text`) when a search asks for tags: both rare next to the thousands
of spans a second a loaded shop sends.

The translation is Jaeger's OTLP receiver's: resource attributes (minus ``service.name``)
become the process's tags; span attributes become tags, plus ``span.kind``,
``otel.status_code`` / ``otel.status_description``, ``error: true`` for an ERROR status and
``otel.scope.name`` / ``otel.scope.version``; events become logs (field ``event`` = the name);
the parent becomes a CHILD_OF reference and links FOLLOWS_FROM references.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

KINDS = {
    Span.SPAN_KIND_SERVER: "server",
    Span.SPAN_KIND_CLIENT: "client",
    Span.SPAN_KIND_PRODUCER: "producer",
    Span.SPAN_KIND_CONSUMER: "consumer",
    Span.SPAN_KIND_INTERNAL: "internal",
}
UNKNOWN_SERVICE = "unknown_service"
_OK, _ERROR = Status.STATUS_CODE_OK, Status.STATUS_CODE_ERROR
_ZERO_TRACE, _ZERO_SPAN = bytes(16), bytes(8)


@dataclass(frozen=True, slots=True)
class Process:
    """A resource as Jaeger's process: its ``service``, ``json`` as served, ``digest`` its
    key, ``search`` its tags as ``key=value`` lines."""

    service: str
    digest: str
    json: str
    search: str


class SpanRow(NamedTuple):
    """One span as stored: the columns a search filters on, and ``data`` (the OTLP span's
    protobuf bytes) with its scope, from which :func:`jaeger_span` builds the JSON and
    :func:`span_search_text` the tags a search matches. (A named tuple: made for every span
    ingested, several times faster than a frozen dataclass.)"""

    trace_id: str
    span_id: str
    service: str
    operation: str
    kind: str
    start_us: int
    duration_us: int
    process: Process
    scope_name: str
    scope_version: str
    data: bytes


# -- ingest ---------------------------------------------------------------------------------


def to_rows(request: ExportTraceServiceRequest) -> tuple[list[SpanRow], list[str]]:
    """The spans as rows to store, and a reason for each span that had to be rejected."""
    rows: list[SpanRow] = []
    rejected: list[str] = []
    kinds = KINDS
    for rs in request.resource_spans:
        process = _process(rs.resource.attributes)
        service = process.service
        for ss in rs.scope_spans:
            name, version = ss.scope.name, ss.scope.version
            for span in ss.spans:
                trace_id, span_id = span.trace_id, span.span_id
                if (
                    len(trace_id) != 16
                    or len(span_id) != 8
                    or trace_id == _ZERO_TRACE
                    or span_id == _ZERO_SPAN
                    or len(span.parent_span_id) not in (0, 8)
                ):
                    rejected.append(_check_ids(span) or "span ids")
                    continue
                start, end = span.start_time_unix_nano, span.end_time_unix_nano
                rows.append(
                    SpanRow(
                        trace_id.hex(),
                        span_id.hex(),
                        service,
                        span.name,
                        kinds.get(span.kind, ""),
                        start // 1000,
                        max(0, end - start) // 1000,
                        process,
                        name,
                        version,
                        span.SerializeToString(),
                    )
                )
    return rows, rejected


def _process(attributes: Iterable[KeyValue]) -> Process:
    service: Any = UNKNOWN_SERVICE
    tags = []
    for attr in attributes:
        if attr.key == "service.name":
            service = _plain(attr.value) or UNKNOWN_SERVICE
        else:
            tags.append(_tag(attr))
    text = _dumps({"serviceName": str(service), "tags": tags})
    digest = hashlib.blake2b(text.encode(), digest_size=12).hexdigest()
    return Process(str(service), digest, text, search_text(tags))


def _check_ids(span: Span) -> str | None:
    if len(span.trace_id) != 16 or not any(span.trace_id):
        return f"span {span.name!r}: the trace id must be 16 bytes, not all zero"
    if len(span.span_id) != 8 or not any(span.span_id):
        return f"span {span.name!r}: the span id must be 8 bytes, not all zero"
    if span.parent_span_id and len(span.parent_span_id) != 8:
        return f"span {span.name!r}: the parent span id must be 8 bytes"
    return None


def _scope_lines(name: str, version: str) -> str:
    out = "\n"
    if name:
        out += line("otel.scope.name", name)
    if version:
        out += line("otel.scope.version", version)
    return out


def span_search_text(data: bytes, scope_name: str, scope_version: str) -> str:
    """The stored span's tags and log fields as ``key=value`` lines, each after a newline:
    exactly those :func:`jaeger_span` serves, without building them."""
    return _scope_lines(scope_name, scope_version) + _span_lines(Span.FromString(data))


def _span_lines(span: Span) -> str:
    parts = []
    keys = set()
    for attr in span.attributes:
        keys.add(attr.key)
        parts.append(line(attr.key, _string(attr.value)))
    kind = KINDS.get(span.kind)
    if kind and "span.kind" not in keys:
        parts.append(line("span.kind", kind))
    code = span.status.code
    if code == _OK:
        parts.append("otel.status_code=OK\n")
    elif code == _ERROR:
        parts.append("otel.status_code=ERROR\n")
        if "error" not in keys:
            parts.append("error=true\n")
    if span.status.message:
        parts.append(line("otel.status_description", span.status.message))
    if span.trace_state:
        parts.append(line("w3c.tracestate", span.trace_state))
    for event in span.events:
        named = False
        for attr in event.attributes:
            named = named or attr.key == "event"
            parts.append(line(attr.key, _string(attr.value)))
        if event.name and not named:
            parts.append(line("event", event.name))
    return "".join(parts)


def _string(value: AnyValue) -> str:
    """A value's string form as a search compares it (:func:`tag_string` of its tag)."""
    which = value.WhichOneof("value")
    if which == "string_value":
        return value.string_value
    if which == "int_value":
        return str(value.int_value)
    if which == "bool_value":
        return "true" if value.bool_value else "false"
    if which == "double_value":
        number = value.double_value
        return format(number, ".10g") if math.isfinite(number) else str(number)
    if which == "bytes_value":
        return value.bytes_value.hex()
    if which is None:
        return ""
    return _dumps_value(_plain(value))


# -- read -----------------------------------------------------------------------------------


def jaeger_span(data: bytes, scope_name: str, scope_version: str) -> dict[str, Any]:
    """The stored span in Jaeger's JSON (without its ``processID``)."""
    span = Span.FromString(data)
    trace_id = span.trace_id.hex()
    attrs = [_tag(a) for a in span.attributes]
    present = {t["key"] for t in attrs}
    tags = [
        kv(key, value)
        for key, value in (
            ("otel.scope.name", scope_name),
            ("otel.scope.version", scope_version),
        )
        if value
    ]
    tags += attrs
    kind = KINDS.get(span.kind, "")
    if kind and "span.kind" not in present:
        tags.append(kv("span.kind", kind))
    code = span.status.code
    if code == _OK:
        tags.append(kv("otel.status_code", "OK"))
    elif code == _ERROR:
        tags.append(kv("otel.status_code", "ERROR"))
        if "error" not in present:
            tags.append(kv("error", True))
    if span.status.message:
        tags.append(kv("otel.status_description", span.status.message))
    if span.trace_state:
        tags.append(kv("w3c.tracestate", span.trace_state))
    references = []
    if any(span.parent_span_id):
        references.append(reference("CHILD_OF", trace_id, span.parent_span_id.hex()))
    for link in span.links:
        if len(link.trace_id) == 16 and len(link.span_id) == 8:
            references.append(reference("FOLLOWS_FROM", link.trace_id.hex(), link.span_id.hex()))
    logs = []
    for event in span.events:
        fields = [_tag(a) for a in event.attributes]
        if event.name and not any(f["key"] == "event" for f in fields):
            fields.insert(0, kv("event", event.name))
        logs.append({"timestamp": event.time_unix_nano // 1000, "fields": fields})
    return {
        "traceID": trace_id,
        "spanID": span.span_id.hex(),
        "flags": (span.flags & 0xFF) or 1,  # W3C trace flags; what arrives was sampled
        "operationName": span.name,
        "references": references,
        "startTime": span.start_time_unix_nano // 1000,
        "duration": max(0, span.end_time_unix_nano - span.start_time_unix_nano) // 1000,
        "tags": tags,
        "logs": logs,
        "warnings": None,
    }


def kv(key: str, value: Any) -> dict[str, Any]:
    """A Jaeger tag or log field; its type follows the Python type of ``value``."""
    if isinstance(value, bool):
        return {"key": key, "type": "bool", "value": value}
    if isinstance(value, int):
        return {"key": key, "type": "int64", "value": value}
    if isinstance(value, float):
        if math.isfinite(value):
            return {"key": key, "type": "float64", "value": value}
        return {"key": key, "type": "string", "value": str(value)}  # JSON has no NaN
    if isinstance(value, bytes):
        return {"key": key, "type": "binary", "value": base64.b64encode(value).decode()}
    return {"key": key, "type": "string", "value": str(value)}


def reference(ref_type: str, trace_id: str, span_id: str) -> dict[str, str]:
    return {"refType": ref_type, "traceID": trace_id, "spanID": span_id}


def _tag(attr: KeyValue) -> dict[str, Any]:
    value = _plain(attr.value)
    if isinstance(value, list | dict):  # arrays and maps become JSON strings, as in Jaeger
        value = _dumps_value(value)
    return kv(attr.key, value)


def _plain(value: AnyValue) -> Any:
    which = value.WhichOneof("value")
    if which == "array_value":
        return [_plain(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return {kv.key: _plain(kv.value) for kv in value.kvlist_value.values}
    if which is None:
        return ""
    return getattr(value, which)


def _dumps_value(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=_b64)


def _b64(value: Any) -> str:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


# -- the search text ------------------------------------------------------------------------


def tag_string(kv: dict[str, Any]) -> str:
    """A tag's value as a search compares it, like Jaeger's ``KeyValue.AsString``."""
    kind, value = kv["type"], kv["value"]
    if kind == "bool":
        return "true" if value else "false"
    if kind == "float64":
        return format(value, ".10g")
    if kind == "binary":
        return base64.b64decode(value).hex()
    return str(value)


def line(key: str, value: str) -> str:
    """``key=value\\n``, escaped so that a line never spans two tags or splits wrongly."""
    if "\\" in key or "\n" in key or "=" in key:
        key = key.replace("\\", "\\\\").replace("\n", "\\n").replace("=", "\\=")
    if "\\" in value or "\n" in value:
        value = value.replace("\\", "\\\\").replace("\n", "\\n")
    return f"{key}={value}\n"


def search_text(kvs: Iterable[dict[str, Any]]) -> str:
    return "\n" + "".join(line(kv["key"], tag_string(kv)) for kv in kvs)
