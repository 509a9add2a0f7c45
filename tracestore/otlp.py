"""OTLP/HTTP traces in: ``POST /v1/traces``, protobuf or JSON, optionally gzipped.

Each span is translated the way Jaeger's OTLP receiver does it: resource attributes (minus
``service.name``) become the process's tags; span attributes become tags, plus ``span.kind``,
``otel.status_code`` / ``otel.status_description``, ``error: true`` for an ERROR status and
``otel.scope.name`` / ``otel.scope.version``; events become logs (field ``event`` = the name);
the parent becomes a CHILD_OF reference and links FOLLOWS_FROM references.

Answers follow the OTLP/HTTP spec: 200 with an ExportTraceServiceResponse in the request's
encoding (spans with unusable ids are counted in its ``partial_success``), 400 with a
``google.rpc.Status`` when the body does not decode, 415 for another content type.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError
from google.protobuf import json_format
from google.protobuf.message import DecodeError as ProtobufDecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from . import jaeger
from .store import SpanRow, Store

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
ENCODINGS = ("", "identity", "gzip", "deflate")  # aiohttp inflates gzip and deflate bodies
MAX_BODY = 64 * 1024 * 1024  # decompressed

KINDS = {
    Span.SPAN_KIND_SERVER: "server",
    Span.SPAN_KIND_CLIENT: "client",
    Span.SPAN_KIND_PRODUCER: "producer",
    Span.SPAN_KIND_CONSUMER: "consumer",
    Span.SPAN_KIND_INTERNAL: "internal",
}
UNKNOWN_SERVICE = "unknown_service"
_INVALID_ARGUMENT = 3  # google.rpc.Code


class DecodeError(ValueError):
    """The body is not an ExportTraceServiceRequest; the message says why."""


# -- decoding -------------------------------------------------------------------------------


def decode(body: bytes, content_type: str) -> ExportTraceServiceRequest:
    if content_type == PROTOBUF:
        try:
            return ExportTraceServiceRequest.FromString(body)
        except ProtobufDecodeError as exc:
            raise DecodeError(f"the body is not an OTLP protobuf request: {exc}") from None
    return decode_json(body)


def decode_json(body: bytes) -> ExportTraceServiceRequest:
    """OTLP's JSON: the protobuf JSON mapping, but trace and span ids in hex."""
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise DecodeError(f"the body is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise DecodeError("the body is not an OTLP ExportTraceServiceRequest: not a JSON object")
    try:
        for rs in _list(doc, "resourceSpans", "resource_spans"):
            for ss in _list(rs, "scopeSpans", "scope_spans"):
                for span in _list(ss, "spans"):
                    _ids_to_base64(span, "traceId", "spanId", "parentSpanId")
                    for link in _list(span, "links"):
                        _ids_to_base64(link, "traceId", "spanId")
        return json_format.ParseDict(doc, ExportTraceServiceRequest(), ignore_unknown_fields=True)
    except (json_format.ParseError, DecodeError, AttributeError, TypeError, ValueError) as exc:
        raise DecodeError(f"the body is not an OTLP ExportTraceServiceRequest: {exc}") from None


def _list(obj: Any, *names: str) -> list[Any]:
    if not isinstance(obj, dict):
        return []
    for name in names:
        value = obj.get(name)
        if isinstance(value, list):
            return value
    return []


def _ids_to_base64(obj: Any, *camel: str) -> None:
    if not isinstance(obj, dict):
        return
    for name in camel:
        for key in (name, _snake(name)):
            value = obj.get(key)
            if value is None:
                continue
            if not isinstance(value, str):
                raise DecodeError(f"{name} must be a hex string, not {value!r}")
            try:
                raw = bytes.fromhex(value)
            except ValueError:
                raise DecodeError(f"{name} {value!r} is not hex") from None
            obj[key] = base64.b64encode(raw).decode()


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name)


# -- translating ----------------------------------------------------------------------------


def to_rows(request: ExportTraceServiceRequest) -> tuple[list[SpanRow], list[str]]:
    """The spans as rows to store, and a reason for each span that had to be rejected."""
    rows: list[SpanRow] = []
    rejected: list[str] = []
    for rs in request.resource_spans:
        service = UNKNOWN_SERVICE
        process_tags = []
        for attr in rs.resource.attributes:
            if attr.key == "service.name":
                service = _plain(attr.value) or UNKNOWN_SERVICE
            else:
                process_tags.append(_tag(attr))
        process = {"serviceName": str(service), "tags": process_tags}
        for ss in rs.scope_spans:
            scope_tags = _scope_tags(ss.scope)
            for span in ss.spans:
                problem = _check_ids(span)
                if problem:
                    rejected.append(problem)
                    continue
                rows.append(_row(span, str(service), process, scope_tags))
    return rows, rejected


def _check_ids(span: Span) -> str | None:
    if len(span.trace_id) != 16 or not any(span.trace_id):
        return f"span {span.name!r}: the trace id must be 16 bytes, not all zero"
    if len(span.span_id) != 8 or not any(span.span_id):
        return f"span {span.name!r}: the span id must be 8 bytes, not all zero"
    if span.parent_span_id and len(span.parent_span_id) != 8:
        return f"span {span.name!r}: the parent span id must be 8 bytes"
    return None


def _row(span: Span, service: str, process: dict, scope_tags: list[dict]) -> SpanRow:
    trace_id = span.trace_id.hex()
    start_us = span.start_time_unix_nano // 1000
    duration_us = max(0, span.end_time_unix_nano - span.start_time_unix_nano) // 1000
    attrs = [_tag(a) for a in span.attributes]
    present = {t["key"] for t in attrs}
    tags = scope_tags + attrs
    kind = KINDS.get(span.kind, "")
    if kind and "span.kind" not in present:
        tags.append(jaeger.kv("span.kind", kind))
    code = span.status.code
    if code == Status.STATUS_CODE_OK:
        tags.append(jaeger.kv("otel.status_code", "OK"))
    elif code == Status.STATUS_CODE_ERROR:
        tags.append(jaeger.kv("otel.status_code", "ERROR"))
        if "error" not in present:
            tags.append(jaeger.kv("error", True))
    if span.status.message:
        tags.append(jaeger.kv("otel.status_description", span.status.message))
    if span.trace_state:
        tags.append(jaeger.kv("w3c.tracestate", span.trace_state))
    references = []
    if any(span.parent_span_id):
        references.append(jaeger.reference("CHILD_OF", trace_id, span.parent_span_id.hex()))
    for link in span.links:
        if len(link.trace_id) == 16 and len(link.span_id) == 8:
            references.append(
                jaeger.reference("FOLLOWS_FROM", link.trace_id.hex(), link.span_id.hex())
            )
    logs = []
    for event in span.events:
        fields = [_tag(a) for a in event.attributes]
        if event.name and not any(f["key"] == "event" for f in fields):
            fields.insert(0, jaeger.kv("event", event.name))
        logs.append({"timestamp": event.time_unix_nano // 1000, "fields": fields})
    jspan = {
        "traceID": trace_id,
        "spanID": span.span_id.hex(),
        "flags": (span.flags & 0xFF) or 1,  # W3C trace flags; what arrives was sampled
        "operationName": span.name,
        "references": references,
        "startTime": start_us,
        "duration": duration_us,
        "tags": tags,
        "logs": logs,
        "warnings": None,
    }
    return SpanRow(
        trace_id=trace_id,
        span_id=jspan["spanID"],
        service=service,
        operation=span.name,
        kind=kind,
        start_us=start_us,
        duration_us=duration_us,
        span=jspan,
        process=process,
    )


def _scope_tags(scope: InstrumentationScope) -> list[dict[str, Any]]:
    tags = []
    if scope.name:
        tags.append(jaeger.kv("otel.scope.name", scope.name))
    if scope.version:
        tags.append(jaeger.kv("otel.scope.version", scope.version))
    return tags


def _tag(attr: KeyValue) -> dict[str, Any]:
    value = _plain(attr.value)
    if isinstance(value, list | dict):  # arrays and maps become JSON strings, as in Jaeger
        value = json.dumps(value, separators=(",", ":"), default=_b64)
    return jaeger.kv(attr.key, value)


def _plain(value: AnyValue) -> Any:
    which = value.WhichOneof("value")
    if which == "array_value":
        return [_plain(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return {kv.key: _plain(kv.value) for kv in value.kvlist_value.values}
    if which is None:
        return ""
    return getattr(value, which)


def _b64(value: Any) -> str:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


# -- the receiver ---------------------------------------------------------------------------


class Receiver:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def traces(self, request: web.Request) -> web.Response:
        ctype = request.content_type
        if ctype not in (PROTOBUF, JSON):
            return web.Response(
                status=415,
                text=f"unsupported content type {ctype!r}: send {PROTOBUF} or {JSON}\n",
            )
        encoding = request.headers.get("Content-Encoding", "").strip().lower()
        if encoding not in ENCODINGS:
            return web.Response(
                status=415, text=f"unsupported content encoding {encoding!r}: send gzip or none\n"
            )
        try:
            body = await request.read()
        except RequestPayloadError:
            response = status_response(400, f"the body is not valid {encoding} data", ctype)
            response.force_close()  # aiohttp drops the connection after a body it cannot inflate
            return response
        try:
            message = decode(body, ctype)
        except DecodeError as exc:
            return status_response(400, str(exc), ctype)
        rows, rejected = to_rows(message)
        await self.store.add(rows)
        reply = ExportTraceServiceResponse()
        if rejected:
            reply.partial_success.rejected_spans = len(rejected)
            more = f" (and {len(rejected) - 1} more)" if len(rejected) > 1 else ""
            reply.partial_success.error_message = rejected[0] + more
        if ctype == PROTOBUF:
            return web.Response(body=reply.SerializeToString(), content_type=PROTOBUF)
        return web.Response(text=json_format.MessageToJson(reply, indent=None), content_type=JSON)


def status_response(http_status: int, message: str, content_type: str) -> web.Response:
    """A ``google.rpc.Status`` (code INVALID_ARGUMENT) in the request's encoding."""
    if content_type == PROTOBUF:
        text = message.encode()
        body = b"\x08" + _varint(_INVALID_ARGUMENT) + b"\x12" + _varint(len(text)) + text
        return web.Response(status=http_status, body=body, content_type=PROTOBUF)
    return web.json_response(
        {"code": _INVALID_ARGUMENT, "message": message}, status=http_status, content_type=JSON
    )


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def routes(store: Store) -> list[web.RouteDef]:
    return [web.post("/v1/traces", Receiver(store).traces)]
