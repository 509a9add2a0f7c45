"""A tag search's SQL prefilter: spans that cannot match are left out without decoding them.

A tag condition ``key=value`` holds on a span when its process has the tag, or its stored
OTLP bytes (canonical protobuf, as ``translate.to_rows`` re-serialized them) hold an attribute
or event attribute whose value's string form is ``value``, or a tag derived from the span
(``span.kind``, ``error``, the status, the scope, ``event``) says so. Each of these leaves
bytes a span must contain: the KeyValue message with each value the string form can come from
(a string, an int, a bool, bytes; any double or list, by its key and type), the status code,
the event name. ``instr`` looks for them in SQL, in C, so a search that matches nothing no
longer decodes every span in range. What passes is still matched exactly by its lines
(``translate.span_search_text``): the prefilter only ever leaves out spans that cannot match.
"""

from __future__ import annotations

import struct
from typing import Any

# Derived tags (translate._span_lines), as columns or as the bytes their source leaves.
_COLUMNS = {"otel.scope.name": "s.scope_name", "otel.scope.version": "s.scope_version"}
_STATUS = {("otel.status_code", "OK"): b"\x18\x01", ("otel.status_code", "ERROR"): b"\x18\x02"}
_STATUS[("error", "true")] = b"\x18\x02"
_FIELDS = {"otel.status_description": b"\x12", "w3c.tracestate": b"\x1a", "event": b"\x12"}


def _varint(n: int) -> bytes:
    n &= 0xFFFF_FFFF_FFFF_FFFF  # a negative int64 is ten bytes, two's complement
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(tag: bytes, payload: bytes) -> bytes:
    return tag + _varint(len(payload)) + payload


def value_encodings(value: str) -> list[bytes]:
    """Each AnyValue (field 2 of a KeyValue, with its tag and length) whose string form can be
    ``value``; a bare b"" when any value of the key may be (doubles, lists, maps, none)."""
    out = [_field(b"\x12", _field(b"\x0a", value.encode()))]
    try:
        number = int(value)
    except ValueError:
        pass
    else:
        if str(number) == value and -(2**63) <= number < 2**63:
            out.append(_field(b"\x12", b"\x18" + _varint(number)))
    if value in ("true", "false"):
        out.append(_field(b"\x12", b"\x10" + (b"\x01" if value == "true" else b"\x00")))
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        pass
    else:
        out.append(_field(b"\x12", _field(b"\x3a", raw)))
    try:
        struct.pack("<d", float(value))
    except (ValueError, OverflowError):
        pass
    else:  # ".10g" rounds: any double may print as this value
        out.append(b"\x12\x09\x21")
    if not value or value[0] in "[{":  # no value, or a list or map as JSON
        out.append(b"")
    return out


def needle_sql(key: str, value: str, processes: list[str]) -> tuple[str, list[Any]]:
    """A SQL condition (on spans ``s``) that every span with tag ``key=value`` meets, given
    the ``processes`` (hashes) whose tags include it; and its parameters."""
    terms: list[str] = []
    params: list[Any] = []
    if processes:
        terms.append(f"s.process IN ({','.join('?' * len(processes))})")
        params += processes
    name = _field(b"\x0a", key.encode())
    for encoding in value_encodings(value):
        terms.append("instr(s.data, ?) > 0")
        params.append(name + encoding)
    if key in _COLUMNS:
        terms.append(f"{_COLUMNS[key]} = ?")
        params.append(value)
    if key == "span.kind":
        terms.append("s.kind = ?")
        params.append(value)
    if (key, value) in _STATUS:
        terms.append("instr(s.data, ?) > 0")
        params.append(_STATUS[key, value])
    if key in _FIELDS:
        terms.append("instr(s.data, ?) > 0")
        params.append(_field(_FIELDS[key], value.encode()))
    return "(" + " OR ".join(terms) + ")", params
