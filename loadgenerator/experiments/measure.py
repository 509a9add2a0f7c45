"""What an experiment measures: the shoppers' requests, Envoy's counters, the books, the traces.

- Shoppers: every request the Locust shoppers made (their request log), cut by phase and group.
- Envoy: counters summed over the sidecars, read at each phase boundary and subtracted.
- The books: the run's own SQLite files (products' reservations, payment's charges, orders).
- Traces: example traces of the fault phase whose destination span carries Envoy's fault flag
  (``response_flags`` FI for an abort, DI for a delay), through the Jaeger query API.
"""

from __future__ import annotations

import csv
import json
import math
import sqlite3
import time
import urllib.parse
import urllib.request
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mesh.experiments.faults import Proxy
from mesh.experiments.spec import Experiment

GROUP_PREFIX = {
    "products": "/api/products",
    "cart": "/api/cart",
    "checkout": "/api/checkout",
    "orders": "/api/orders",
    "auth": "/api/auth",
}
PAGES = "[page] "


@dataclass(frozen=True)
class Request:
    t: float  # when it started (Unix seconds)
    method: str
    name: str
    ms: float
    ok: bool


def read_requests(path: Path) -> list[Request]:
    if not path.exists():
        return []
    with path.open(newline="", encoding="utf-8") as f:
        rows = [r for r in csv.reader(f) if len(r) == 5]
    out = []
    for t, method, name, ms, ok in rows:
        try:
            out.append(Request(float(t), method, name, float(ms), ok == "1"))
        except ValueError:
            continue  # a row cut short when Locust was stopped
    return sorted(out, key=lambda r: r.t)


def groups_of(name: str) -> list[str]:
    if name.startswith(PAGES):
        return ["pages"]
    return ["shoppers", *(g for g, prefix in GROUP_PREFIX.items() if name.startswith(prefix))]


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile of sorted ``values``."""
    if not values:
        return None
    return values[max(0, math.ceil(q / 100 * len(values)) - 1)]


def shopper_metrics(requests: Iterable[Request]) -> dict[str, float | None]:
    """``<group> p50|p95|p99|requests|errors|error rate`` for one slice of requests."""
    by_group: dict[str, list[Request]] = {}
    for r in requests:
        for g in groups_of(r.name):
            by_group.setdefault(g, []).append(r)
    out: dict[str, float | None] = {}
    for group in ("shoppers", *GROUP_PREFIX, "pages"):
        rows = by_group.get(group, [])
        times = sorted(r.ms for r in rows)
        errors = sum(1 for r in rows if not r.ok)
        out[f"{group} requests"] = len(rows)
        out[f"{group} errors"] = errors
        out[f"{group} error rate"] = 100 * errors / len(rows) if rows else None
        for q in (50, 95, 99):
            out[f"{group} p{q}"] = percentile(times, q)
    return out


# -- Envoy ----------------------------------------------------------------------------------------


def envoy_counters(proxies: Iterable[Proxy], exp: Experiment) -> dict[str, int]:
    """The destination's fault counters, and its callers' counters for calls to it: one stats
    read per proxy, all at once (in compose each read is a ``docker exec``)."""
    dest = exp.destination
    pattern = rf"downstream_rq_active$|^http\.inbound\.fault\.|^cluster\.{dest}\."
    proxies = list(proxies)
    with ThreadPoolExecutor(max_workers=4) as pool:
        read = list(pool.map(lambda p: p.counters(pattern), proxies))
    c = dict.fromkeys(("aborts injected", "delays injected", "retries", "timeouts"), 0)
    c |= {"ejections": 0, "overflows": 0, "in flight": 0}
    p = f"cluster.{dest}."
    for proxy, got in zip(proxies, read, strict=True):
        c["in flight"] += sum(
            v
            for k, v in got.items()
            if k.endswith("downstream_rq_active") and not k.startswith("http.admin.")
        )
        if proxy.service == dest:
            c["aborts injected"] += got.get("http.inbound.fault.aborts_injected", 0)
            c["delays injected"] += got.get("http.inbound.fault.delays_injected", 0)
            continue
        c["retries"] += got.get(p + "upstream_rq_retry", 0)
        c["timeouts"] += got.get(p + "upstream_rq_timeout", 0)
        c["timeouts"] += got.get(p + "upstream_rq_per_try_timeout", 0)
        c["ejections"] += got.get(p + "outlier_detection.ejections_enforced_total", 0)
        for name in ("upstream_rq_pending_overflow", "upstream_cx_overflow"):
            c["overflows"] += got.get(p + name, 0)
        c["overflows"] += got.get(p + "upstream_rq_retry_overflow", 0)
    c["faults injected"] = c["aborts injected"] + c["delays injected"]
    return c


def counter_delta(before: dict[str, int], after: dict[str, int]) -> dict[str, float | None]:
    return {k: after[k] - before.get(k, 0) for k in after if k != "in flight"}


def wait_settled(proxies: list[Proxy], exp: Experiment, within_s: float = 30.0) -> float:
    """Wait until no request is in flight anywhere in the mesh (the sagas have finished), at
    most ``within_s``; how long it took."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < within_s:
        if envoy_counters(proxies, exp)["in flight"] == 0:
            break
        time.sleep(0.25)
    return time.monotonic() - t0


# -- the books --------------------------------------------------------------------------------


def _rows(db: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as conn:
        return conn.execute(sql, args).fetchall()


def books(data_dir: Path | None, since: float) -> dict[str, float | None]:
    """Stock reservations of this run still held, and charges and paid orders of this run that
    do not match one to one (None when the books cannot be read here)."""
    out: dict[str, float | None] = {"held reservations": None, "unmatched charges": None}
    if data_dir is None:
        return out
    iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(since))
    try:
        out["held reservations"] = _rows(
            data_dir / "products.db",
            "SELECT count(*) FROM reservations WHERE status = 'held' AND created_at >= ?",
            int(since),
        )[0][0]
        charges = _rows(
            data_dir / "payment.db",
            "SELECT id, order_id FROM charges WHERE status = 'succeeded' AND created_at >= ?",
            iso,
        )
        paid = _rows(
            data_dir / "orders.db",
            "SELECT id, charge_id FROM orders WHERE status = 'paid' AND created_at >= ?",
            iso,
        )
    except sqlite3.Error:
        return out
    by_charge = {charge_id: order_id for order_id, charge_id in paid}
    unmatched = sum(1 for cid, oid in charges if by_charge.get(cid) != oid)
    charge_ids = {cid for cid, _ in charges}
    unmatched += sum(1 for _, cid in paid if cid not in charge_ids)
    out["unmatched charges"] = unmatched
    return out


# -- traces -----------------------------------------------------------------------------------


def example_traces(
    traces_url: str | None, exp: Experiment, start: float, end: float, limit: int = 3
) -> list[dict[str, Any]]:
    """Traces of the fault phase in which the destination's sidecar injected the fault."""
    if not traces_url:
        return []
    flags = (["FI"] if exp.abort else []) + (["DI"] if exp.delay else [])
    found: list[dict[str, Any]] = []
    for flag in flags:
        params = {
            "service": exp.destination,
            "tags": json.dumps({"response_flags": flag}),
            "start": str(int(start * 1e6)),
            "end": str(int(end * 1e6)),
            "limit": str(limit),
        }
        url = f"{traces_url}/api/traces?{urllib.parse.urlencode(params)}"
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(url, timeout=10) as resp:
                data = json.load(resp).get("data") or []
        except (OSError, ValueError):
            continue
        for trace in data[:limit]:
            found.append(_example(traces_url, trace, exp.destination, flag))
    return found


def _example(base: str, trace: dict[str, Any], service: str, flag: str) -> dict[str, Any]:
    processes = trace.get("processes", {})
    span_name, status, ms = "", "", 0.0
    for span in trace.get("spans", []):
        tags = {t["key"]: t["value"] for t in span.get("tags", [])}
        who = processes.get(span.get("processID"), {}).get("serviceName")
        if who == service and flag in str(tags.get("response_flags", "")):
            span_name = span.get("operationName", "")
            status = str(tags.get("http.status_code", ""))
            ms = span.get("duration", 0) / 1000
            break
    trace_id = trace.get("traceID", "")
    return {
        "trace_id": trace_id,
        "url": f"{base}/trace/{trace_id}",
        "flag": flag,
        "span": span_name,
        "status": status,
        "ms": round(ms, 1),
    }
