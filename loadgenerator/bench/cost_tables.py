"""The cost tables (issue 15): CPU-ms per request by process group and path, tracing's share,
and the targets met or not. Each a ``Section`` as in ``tables``. Over several repeats the cells
are medians, and each repeat's stack total and share are shown beside them for the spread."""

from __future__ import annotations

from .cost import APART, PATH_NAMES, STACK
from .plans import COST_OFF, COST_ON, Plan
from .summary import Cost, CostRow, TargetVerdict
from .tables import Row, Section, num

NAMES = {"envoys": "all Envoys", "tracestore": "trace store", "redis": "Redis"}
TAIL = ("envoys", "tracestore", "redis")


def groups_of(rows: list[CostRow]) -> list[str]:
    """The apps (by name), then Envoys, trace store and Redis: the order of the table."""
    seen = {g for r in rows for g in r.cpu_ms if g not in (STACK, APART)}
    apps = sorted(g for g in seen if g not in TAIL)
    return apps + [g for g in TAIL if g in seen]


def _label(group: str, rows: list[CostRow]) -> str:
    count = max((r.processes.get(group, 0) for r in rows), default=0)
    name = NAMES.get(group, group)
    return f"{name} ({count})" if count > 1 else name


def _path_header(row: CostRow) -> str:
    return f"{PATH_NAMES.get(row.path, row.path)} {row.rate:g}/s"


def repeats_of(cost: Cost) -> int:
    """The most repeats any figure rests on (1: a run of one repeat)."""
    return max((r.samples for r in [*cost.on, *cost.off]), default=1)


def _each(values: list[float], fmt: str = ".2f") -> str:
    return ", ".join(format(v, fmt) for v in values) or "-"


def per_request_section(rows: list[CostRow], title: str, idle: float | None = None) -> Section:
    """Rows: each process group, the stack, the client apart, then what the step got."""
    body: list[Row] = []
    for group in groups_of(rows):
        body.append((_label(group, rows), *(num(r.cpu_ms.get(group), 2) for r in rows)))
    body.append(("stack total", *(num(r.cpu_ms.get(STACK), 2) for r in rows)))
    repeated = any(r.samples > 1 for r in rows)
    if repeated:
        body.append(("stack total, each repeat", *(_each(r.stack_samples) for r in rows)))
    if idle is not None:
        at_rest = [num(idle * 1000 / r.achieved_rps if r.achieved_rps else None, 2) for r in rows]
        body.append(("of which the stack at rest", *at_rest))
    body.append(("load client (apart)", *(num(r.cpu_ms.get(APART), 2) for r in rows)))
    body.append(("answered/s", *(num(r.achieved_rps, 1) for r in rows)))
    body.append(("requests measured", *(str(r.requests) for r in rows)))
    latency = [
        f"{num(r.p50_ms, 1)} / {num(r.p99_ms, 1)}" + ("" if r.sustained else " *") for r in rows
    ]
    body.append(("p50 / p99 ms", *latency))
    body.append(("other processes vCPU", *(num(r.foreign_vcpu, 2) for r in rows)))
    note = (
        "CPU-ms per request: utime + stime (/proc) of the group's processes over the measured "
        "window, divided by the requests answered in it; (n) = processes summed. The stack is "
        "every process but the load client. Checkout includes its cart refill (one PUT "
        "/api/cart/items per checkout). * = not sustained. Other processes vCPU: what the rest "
        "of the machine used meanwhile (it does not enter these figures)."
    )
    if idle is not None:
        note += (
            f" At rest (before the load) this stack used {idle:.3f} vCPU: health checks, "
            "stats, exports; per request at each rate, it is inside the total."
        )
    if repeated:
        note += (
            " Over repeats, each cell is the median of the repeats' figures (the stack total's "
            "too, so the groups need not add up to it; the vCPU at rest too), requests measured "
            "their sum, other processes the most any repeat saw; * if any repeat was not "
            "sustained."
        )
    return (title, ["CPU-ms per request", *(_path_header(r) for r in rows)], body, note)


def tracing_share_section(cost: Cost) -> Section:
    repeated = repeats_of(cost) > 1
    rows: list[Row] = []
    for s in cost.tracing:
        row: Row = (
            PATH_NAMES.get(s.path, s.path),
            f"{s.rate:g}",
            num(s.on_ms, 2),
            num(s.off_ms, 2),
            num(s.on_ms - s.off_ms, 2),
            f"{s.share:.0%}",
        )
        rows.append((*row, _each(s.shares, ".0%")) if repeated else row)
    headers = ["path", "rate/s", "tracing on", "tracing off", "added", "tracing's share"]
    note = (
        "Stack CPU-ms per request, the mesh with the topology's replicas, tracing at 100% "
        "against tracing off. Tracing's share = (on - off) / on: the part of the stack's CPU "
        "that tracing adds (apps' OpenTelemetry, Envoys' spans, the trace store)."
    )
    if repeated:
        headers.append("share, each repeat")
        note += (
            " On and off are the medians over the repeats, the share is taken from them; each "
            "repeat's own share (on#n against off#n) shows the spread."
        )
    return ("Tracing's share of the stack's CPU", headers, rows, note)


def _samples(t: TargetVerdict) -> str:
    if t.met is None:
        return "-"
    return f"median of {t.samples}" if t.samples > 1 else str(t.samples)


def targets_section(cost: Cost) -> Section:
    rows: list[Row] = []
    for t in cost.targets:
        percent = "share" in t.target
        limit = f"{t.limit:.0%}" if percent else f"{t.limit:g}"
        if t.measured is None:
            measured = "-"
        else:
            measured = f"{t.measured:.0%}" if percent else num(t.measured, 2)
        verdict = "not measured" if t.met is None else ("met" if t.met else "NOT MET")
        if t.met is not None and not t.sustained:
            verdict += " *"
        rows.append((t.target, f"{t.op} {limit}", measured, _samples(t), verdict))
    note = (
        "Issue 15: the whole stack as `boutique up` runs it (mesh, mTLS, tracing at 100%), at "
        "fixed rates well below the knee. Tracing's share: the worst path. Samples: the "
        "repeats a verdict rests on; with several, it is judged on their median (the share on "
        "the medians' share). One sample of a path's stack CPU is good to about ±0.3 CPU-ms "
        "on a 2-core VM, and a share is the difference of two such samples, so a verdict "
        "near its limit on one sample can turn with the next run. The checkout rate: "
        "the mesh ladder's highest sustained rate (full run only) against twice 27/s, the "
        "rate measured before issue 15 (docs/performance.md). * = a step it rests on was not "
        "sustained (errors, drops or p99 over its bound): the machine was too busy for that "
        "rate, so the figure is not a clean one; measure again."
    )
    headers = ["target", "limit", "measured", "samples", "verdict"]
    return ("Targets (issue 15)", headers, rows, note)


def cost_sections(cost: Cost | None) -> list[Section]:
    if cost is None:
        return []
    out = []
    repeats = repeats_of(cost)
    of = f", median of {repeats} repeats" if repeats > 1 else ""
    if cost.on:
        title = f"CPU per request as `boutique up` runs it (mesh, mTLS, tracing at 100%){of}"
        out.append(per_request_section(cost.on, title, cost.idle_vcpu.get(COST_ON)))
    if cost.off:
        title = f"CPU per request, the same with tracing off{of}"
        out.append(per_request_section(cost.off, title, cost.idle_vcpu.get(COST_OFF)))
    if cost.tracing:
        out.append(tracing_share_section(cost))
    out.append(targets_section(cost))
    return out


def method_lines(plan: Plan, repeats: int = 1, runs: int = 1) -> list[str]:
    """How a cost run measures (the report's method section); ``repeats``: the most repeats
    the figures rest on, ``runs``: how many runs ``--report-from`` read together."""
    rates = ", ".join(
        f"{PATH_NAMES.get(p, p)} {'/'.join(f'{r:g}' for r in rs)}/s"
        for p, rs in plan.cost_rates.items()
    )
    return [
        "## How this was measured",
        "",
        "- The shop as `boutique up` runs it: the local mesh (ingress and a sidecar per app, "
        "mTLS), tracing at 100% into the trace store, the topology's replicas; then the same "
        "stack with tracing off. One stack after the other, on free ports with fresh stores, "
        "`PRODUCTS_STOCK=1000000` and `PAYMENT_LATENCY_MS=0`.",
        f"- Each path at a fixed rate ({rates}), open loop, for {plan.duration_s:g} s after a "
        f"{plan.warmup_s:g} s warm-up. browse: `GET /api/products`; product page: `GET "
        "/api/products/{id}`; checkout: `POST /api/checkout` by a signed-in user with one item "
        "in the cart (refilled after each checkout).",
        "- CPU: utime + stime from `/proc/<pid>/stat` of every process, read by the load client "
        "at the window's edges; CPU-ms per request = CPU seconds x 1000 / requests answered.",
        _repeats_line(repeats, runs),
        "",
    ]


def _repeats_line(repeats: int, runs: int = 1) -> str:
    if repeats <= 1:
        return (
            "- One repeat: each figure is one sample (about ±0.3 CPU-ms on a 2-core VM; a share "
            "is the difference of two). `--repeats 3` (the default of `--cost`) is steadier."
        )
    if runs > 1:
        how = (
            f"from {runs} runs read together (`--report-from`), one after the other: within a "
            "run its repeats interleave, the runs' do not"
        )
    else:
        how = (
            "interleaved (tracing on #1, off #1, on #2, off #2 ...) so that a drift of the "
            "machine spreads over both sides"
        )
    return (
        f"- {repeats} repeats, {how}; each figure is the median of the repeats' (with 2, their "
        "mean), tracing's share is taken from the medians, and the targets are judged on the "
        "medians. One sample is good to about ±0.3 CPU-ms on a 2-core VM, and a share is the "
        "difference of two samples."
    )
