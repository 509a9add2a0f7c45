"""The tuning experiments' figures: each variant against the baseline, over its repeats."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable

from . import stats
from .model import Results, StackInfo, Step
from .summary import TuningRow, VariantRow

MB = 1024 * 1024
LATENCY = ("p50", "p90", "p99")
CPU: dict[str, Callable[[Step], float]] = {
    "stack_vcpu": lambda s: s.vcpu_groups.stack,
    "envoys_vcpu": lambda s: s.vcpu_groups.envoys,
    "tracestore_vcpu": lambda s: s.vcpu_groups.tracestore,
    "client_vcpu": lambda s: s.vcpu_groups.client,
}
COMPARED = ("p50", "p90", "p99", "stack_vcpu", "envoys_vcpu")


def _row(variant: str, path: str, rate: float, steps: list[Step]) -> TuningRow:
    readers: dict[str, Callable[[Step], float]] = {
        key: (lambda s, key=key: s.latency_ms.get(key, math.nan)) for key in LATENCY
    }
    readers.update(CPU)
    medians, ranges = {}, {}
    for key, read in readers.items():
        values = [read(s) for s in steps]
        medians[key] = stats.median(values)
        ranges[key] = [min(values), max(values)]
    return TuningRow(
        variant=variant,
        path=path,
        rate=rate,
        repeats=len(steps),
        sustained=sum(not s.failed_because for s in steps),
        medians=medians,
        ranges=ranges,
    )


def tuning(results: Results) -> list[TuningRow]:
    """Per variant, path and rate: the median over repeats (and the spread) of the latency
    percentiles and the CPU, and the change of the medians against ``baseline``."""
    cells: dict[tuple[str, str, float], list[Step]] = defaultdict(list)
    order: list[str] = []
    for step in results.steps:
        if not step.variant:
            continue
        if step.variant not in order:
            order.append(step.variant)
        cells[(step.variant, step.path, step.rate)].append(step)
    rows = [_row(variant, path, rate, steps) for (variant, path, rate), steps in cells.items()]
    base = {(r.path, r.rate): r for r in rows if r.variant == "baseline"}
    for row in rows:
        ref = base.get((row.path, row.rate))
        if ref is not None and row.variant != "baseline":
            row.vs_baseline = {k: row.medians[k] - ref.medians[k] for k in COMPARED}
    rows.sort(key=lambda r: (r.path, r.rate, order.index(r.variant)))
    return rows


def _envoy_memory(infos: list[StackInfo], key: str) -> list[float]:
    return [
        m[key] / MB
        for info in infos
        for name, m in info.after.memory.items()
        if name.startswith("envoy:") and key in m
    ]


def _variant(variant: str, infos: list[StackInfo]) -> VariantRow:
    rss, pss = _envoy_memory(infos, "rss"), _envoy_memory(infos, "pss")
    conns = [info.envoy_connections for info in infos if info.envoy_connections]
    sent = sum(c.get("upstream_rq_total", 0) for c in conns)

    def per_1000(key: str) -> float:
        return 1000 * sum(c.get(key, 0) for c in conns) / sent if sent else math.nan

    all_envoys = [i.after.memory_groups.get("envoys") for i in infos]
    return VariantRow(
        variant=variant,
        stacks=len(infos),
        envoy_rss_mb=stats.median(rss) if rss else None,
        envoy_pss_mb=stats.median(pss) if pss else None,
        envoys_rss_mb=stats.median([g.rss / MB if g else 0.0 for g in all_envoys]),
        connections_per_1000_rq=per_1000("upstream_cx_total"),
        http2_connections_per_1000_rq=per_1000("upstream_cx_http2_total"),
        tls_handshakes_per_1000_rq=per_1000("tls_handshakes"),
        started_s=stats.median([i.started_s or math.nan for i in infos]),
        speed_probe_ms=[i.speed_probe_ms for i in infos],
    )


def variants(results: Results) -> list[VariantRow]:
    """Per tuning variant, what its stacks show beyond the steps: each Envoy's memory after the
    load, and the connections the Envoys opened between each other (per 1000 requests they
    sent upstream), which shows whether connection reuse and HTTP/2 took effect."""
    by_variant: dict[str, list[StackInfo]] = defaultdict(list)
    for info in results.stacks:
        if info.variant:
            by_variant[info.variant].append(info)
    return [_variant(variant, infos) for variant, infos in by_variant.items()]
