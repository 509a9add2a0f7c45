"""Jaeger's HTTP query API (the one the Jaeger UI calls), in Jaeger's own JSON.

GET /api/services                          service names
GET /api/services/{service}/operations     operation names
GET /api/operations?service=&spanKind=     [{name, spanKind}]
GET /api/traces?service=&operation=&tags=&tag=&start=&end=&minDuration=&maxDuration=&limit=
                &lookback=&traceID=        matching traces, the newest first
GET /api/traces/{traceID}                  one trace

Every answer is ``{"data": ..., "total": n, "limit": 0, "offset": 0, "errors": null}``; a
bad parameter is a 400 and an unknown trace a 404, with ``data: null`` and ``errors`` set.
As in Jaeger, a trace matches a search when one of its spans meets all the conditions.
One extension: ``service`` may be left out of a search to look in every service (Jaeger
requires it); the trace view uses that for "all services".
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from aiohttp import web
from multidict import MultiMapping

from .store import Store, TraceQuery

SPAN_KINDS = ("server", "client", "producer", "consumer", "internal")
DEFAULT_LIMIT = 20
DEFAULT_LOOKBACK_US = 2 * 24 * 3600 * 1_000_000  # Jaeger's default: two days

# -- shapes ---------------------------------------------------------------------------------


def trace_json(trace_id: str, spans: list[tuple[dict[str, Any], dict[str, Any]]]) -> dict:
    """A Jaeger trace from its ``(span, process)`` pairs: equal processes share one id."""
    processes: dict[str, dict[str, Any]] = {}
    ids: dict[str, str] = {}
    out = []
    for span, process in spans:
        key = json.dumps(process, sort_keys=True)
        pid = ids.get(key)
        if pid is None:
            pid = ids[key] = f"p{len(ids) + 1}"
            processes[pid] = process
        out.append({**span, "processID": pid})
    return {"traceID": trace_id, "spans": out, "processes": processes, "warnings": None}


def answer(data: Any, total: int = 0) -> web.Response:
    return web.json_response(
        {"data": data, "total": total, "limit": 0, "offset": 0, "errors": None},
        dumps=_dumps,
    )


def error(status: int, msg: str, **extra: Any) -> web.Response:
    return web.json_response(
        {
            "data": None,
            "total": 0,
            "limit": 0,
            "offset": 0,
            "errors": [{"code": status, "msg": msg, **extra}],
        },
        status=status,
        dumps=_dumps,
    )


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


# -- parameters -----------------------------------------------------------------------------


class BadParam(ValueError):
    """A query parameter that does not parse; the message says which and why."""


_DURATION_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h|d)")
_UNIT_US = {
    "ns": 0.001,
    "us": 1,
    "µs": 1,
    "μs": 1,
    "ms": 1_000,
    "s": 1_000_000,
    "m": 60_000_000,
    "h": 3_600_000_000,
    "d": 86_400_000_000,
}


def parse_duration(text: str, name: str = "duration", days: bool = False) -> int:
    """Go's duration syntax (``1.2s``, ``100ms``, ``500us``, ``1m30s``) to microseconds;
    ``days`` also allows ``2d`` (the Jaeger UI's lookbacks)."""
    s = text.strip()
    if s == "0":
        return 0
    pos, total = 0, 0.0
    while pos < len(s):
        m = _DURATION_PART.match(s, pos)
        if m is None or (m.group(2) == "d" and not days):
            raise BadParam(
                f"unable to parse param '{name}': invalid duration {text!r}"
                " (use a number and a unit: 500us, 100ms, 1.2s, 2m, 1h)"
            )
        total += float(m.group(1)) * _UNIT_US[m.group(2)]
        pos = m.end()
    if not s:
        raise BadParam(f"unable to parse param '{name}': empty duration")
    return int(total)


def normalize_trace_id(text: str) -> str:
    """A trace id as stored: 32 lower-case hex digits (shorter ids are zero-padded, as Jaeger
    prints 64-bit ones)."""
    s = text.strip().lower()
    if not 0 < len(s) <= 32 or not re.fullmatch(r"[0-9a-f]+", s):
        raise BadParam(f"cannot parse traceID param: {text!r} is not a hex trace id")
    return s.rjust(32, "0")


def _int(query: MultiMapping[str], name: str) -> int | None:
    raw = query.get(name, "").strip()
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        raise BadParam(f"unable to parse param '{name}': {raw!r} is not an integer") from None


def parse_tags(query: MultiMapping[str]) -> dict[str, str]:
    """``tags={"k":"v",...}`` (a JSON object of strings) and repeated ``tag=k:v``."""
    tags: dict[str, str] = {}
    for item in query.getall("tag", []):
        key, sep, value = item.partition(":")
        if not sep or not key:
            raise BadParam(f"malformed 'tag' parameter, expecting key:value, received: {item}")
        tags[key] = value
    for raw in query.getall("tags", []):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except ValueError as exc:
            raise BadParam(f"malformed 'tags' parameter, cannot unmarshal JSON: {exc}") from None
        if not isinstance(obj, dict) or not all(isinstance(v, str) for v in obj.values()):
            raise BadParam(
                "malformed 'tags' parameter: expecting a JSON object of strings,"
                ' like {"http.status_code":"500","error":"true"}'
            )
        tags.update(obj)
    return tags


def parse_trace_query(query: MultiMapping[str], now_us: int | None = None) -> TraceQuery:
    now_us = int(time.time() * 1_000_000) if now_us is None else now_us
    end = _int(query, "end")
    end = now_us if end is None else end
    start = _int(query, "start")
    if start is None:
        lookback = query.get("lookback", "").strip()
        span = DEFAULT_LOOKBACK_US
        if lookback and lookback != "custom":
            span = parse_duration(lookback, "lookback", days=True)
        start = end - span
    if start > end:
        raise BadParam("'start' should not be after 'end'")
    limit = _int(query, "limit")
    limit = DEFAULT_LIMIT if limit is None or limit == 0 else limit
    if limit < 0:
        raise BadParam(f"unable to parse param 'limit': {limit} is negative")
    durations: dict[str, int | None] = {}
    for name in ("minDuration", "maxDuration"):
        raw = query.get(name, "").strip()
        durations[name] = parse_duration(raw, name) if raw else None
    low, high = durations["minDuration"], durations["maxDuration"]
    if low is not None and high is not None and high < low:
        raise BadParam("'maxDuration' should be greater than 'minDuration'")
    return TraceQuery(
        start_us=start,
        end_us=end,
        service=query.get("service") or None,
        operation=query.get("operation") or None,
        tags=parse_tags(query),
        min_duration_us=low,
        max_duration_us=high,
        limit=limit,
    )


# -- handlers -------------------------------------------------------------------------------


class QueryAPI:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def services(self, request: web.Request) -> web.Response:
        names = await self.store.services()
        return answer(names, len(names))

    async def service_operations(self, request: web.Request) -> web.Response:
        ops = await self.store.operations(request.match_info["service"])
        names = sorted({name for name, _ in ops})
        return answer(names, len(names))

    async def operations(self, request: web.Request) -> web.Response:
        service = request.query.get("service", "")
        if not service:
            return error(400, "parameter 'service' is required")
        kind = request.query.get("spanKind") or None
        if kind is not None and kind not in SPAN_KINDS:
            return error(400, f"unsupported span kind {kind!r}: use one of {', '.join(SPAN_KINDS)}")
        ops = await self.store.operations(service, kind)
        data = [{"name": name, "spanKind": k} for name, k in ops]
        return answer(data, len(data))

    async def find_traces(self, request: web.Request) -> web.Response:
        try:
            ids = [normalize_trace_id(t) for t in request.query.getall("traceID", [])]
            query = None if ids else parse_trace_query(request.query)
        except BadParam as exc:
            return error(400, str(exc))
        if query is not None:
            ids = await self.store.find_trace_ids(query)
        found = await self.store.traces(ids)
        traces = [trace_json(tid, spans) for tid, spans in found.items()]
        traces.sort(key=_trace_start, reverse=True)
        # Asked by id, as Jaeger does: the ones not found are listed in ``errors``.
        missing = [tid for tid in ids if tid not in found] if query is None else []
        errors = [{"code": 404, "msg": "trace not found", "traceID": t} for t in missing]
        return web.json_response(
            {"data": traces, "total": 0, "limit": 0, "offset": 0, "errors": errors or None},
            dumps=_dumps,
        )

    async def get_trace(self, request: web.Request) -> web.Response:
        try:
            trace_id = normalize_trace_id(request.match_info["trace_id"])
        except BadParam as exc:
            return error(400, str(exc))
        found = await self.store.traces([trace_id])
        if trace_id not in found:
            return error(404, "trace not found")
        return answer([trace_json(trace_id, found[trace_id])])


def _trace_start(trace: dict[str, Any]) -> int:
    return min((s["startTime"] for s in trace["spans"]), default=0)


def routes(store: Store) -> list[web.RouteDef]:
    api = QueryAPI(store)
    return [
        web.get("/api/services", api.services),
        web.get("/api/services/{service}/operations", api.service_operations),
        web.get("/api/operations", api.operations),
        web.get("/api/traces", api.find_traces),
        web.get("/api/traces/{trace_id}", api.get_trace),
    ]
