"""OTLP/HTTP traces in: ``POST /v1/traces``, protobuf or JSON, optionally gzipped.

The spans are stored as they came (``translate.to_rows``); the store serves them in Jaeger's
JSON, translated the way Jaeger's OTLP receiver does it (``translate.jaeger_span``).

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

from .store import Store
from .translate import to_rows

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
ENCODINGS = ("", "identity", "gzip", "deflate")  # aiohttp inflates gzip and deflate bodies
MAX_BODY = 64 * 1024 * 1024  # decompressed

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


__all__ = ["decode", "decode_json", "routes", "status_response", "to_rows"]


def routes(store: Store) -> list[web.RouteDef]:
    return [web.post("/v1/traces", Receiver(store).traces)]
