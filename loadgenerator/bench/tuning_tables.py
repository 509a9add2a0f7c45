"""The report's tables of a tuning run, and the table of every step (both kinds of run)."""

from __future__ import annotations

from .analysis import FOREIGN_VCPU_LIMIT
from .model import Results
from .summary import Summary, TuningRow
from .tables import Row, Section, num


def _spread(row: TuningRow, key: str, digits: int = 1) -> str:
    lo, hi = row.ranges[key]
    if row.repeats < 2:
        return num(row.medians[key], digits)
    return f"{num(row.medians[key], digits)} ({num(lo, digits)}-{num(hi, digits)})"


def tuning_section(summary: Summary) -> Section:
    rows: list[Row] = []
    for r in summary.tuning:
        vs = r.vs_baseline or {}
        rows.append(
            (
                r.variant,
                r.path,
                f"{r.rate:g}",
                f"{r.sustained}/{r.repeats}",
                _spread(r, "p50"),
                _spread(r, "p99"),
                _spread(r, "stack_vcpu", 2),
                _spread(r, "envoys_vcpu", 3),
                num(vs.get("p50"), 1, sign=True),
                num(vs.get("p99"), 1, sign=True),
                num(vs.get("stack_vcpu"), 2, sign=True),
            )
        )
    headers = ["variant", "path", "rate/s", "sustained", "p50 ms", "p99 ms", "stack vCPU"]
    headers += ["Envoys vCPU", "p50 vs baseline", "p99 vs baseline", "vCPU vs baseline"]
    return (
        "Tuning experiments (median of repeats, range in brackets)",
        headers,
        rows,
        "Each variant is the mesh with one change (tracing off unless named); repeats "
        "interleave variants so drift spreads over all of them.",
    )


def variants_section(summary: Summary) -> Section:
    rows: list[Row] = []
    for v in summary.variants:
        probes = ", ".join(num(p, 0) for p in v.speed_probe_ms if p is not None) or "-"
        rows.append(
            (
                v.variant,
                str(v.stacks),
                num(v.started_s, 1),
                num(v.envoy_rss_mb, 1),
                num(v.envoy_pss_mb, 1),
                num(v.envoys_rss_mb, 0),
                num(v.connections_per_1000_rq, 1),
                num(v.http2_connections_per_1000_rq, 1),
                num(v.tls_handshakes_per_1000_rq, 1),
                probes,
            )
        )
    headers = ["variant", "stacks", "healthy in s", "MB RSS per Envoy", "MB PSS per Envoy"]
    headers += ["MB RSS all Envoys", "upstream connections per 1000 requests", "of them HTTP/2"]
    headers += ["TLS handshakes per 1000 requests", "speed probe ms"]
    return (
        "Per variant: memory, start-up and connections",
        headers,
        rows,
        "Memory after the load (median). Connections: what the Envoys opened to each other over "
        "the whole stack's life, per 1000 requests they sent upstream (Envoy's own counters).",
    )


def steps_section(results: Results) -> Section:
    rows: list[Row] = []
    for s in results.steps:
        lat, g = s.latency_ms, s.vcpu_groups
        rows.append(
            (
                s.stack,
                s.path,
                f"{s.rate:g}",
                num(s.achieved_rps, 1),
                str(s.ok),
                str(s.errors_total),
                str(s.dropped),
                *(num(lat.get(k)) for k in ("p50", "p90", "p99", "p99.9", "max")),
                num(g.stack, 2),
                num(g.client, 2),
                num(g.foreign, 2),
                s.failed_because or "sustained",
            )
        )
    headers = ["stack", "path", "rate/s", "answered/s", "ok", "errors", "dropped"]
    headers += ["p50", "p90", "p99", "p99.9", "max", "stack vCPU", "client vCPU", "other vCPU"]
    return (
        "Every step",
        [*headers, "verdict"],
        rows,
        "Latencies in ms. Other vCPU: what processes outside the stack and the client used "
        f"meanwhile (a step with more than {FOREIGN_VCPU_LIMIT} is redone).",
    )
