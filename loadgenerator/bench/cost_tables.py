"""The cost tables (issue 15): CPU-ms per request by process group and path, tracing's share,
and the targets met or not. Each a ``Section`` as in ``tables``."""

from __future__ import annotations

from .cost import APART, PATH_NAMES, STACK
from .plans import COST_OFF, COST_ON, Plan
from .summary import Cost, CostRow
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


def per_request_section(rows: list[CostRow], title: str, idle: float | None = None) -> Section:
    """Rows: each process group, the stack, the client apart, then what the step got."""
    body: list[Row] = []
    for group in groups_of(rows):
        body.append((_label(group, rows), *(num(r.cpu_ms.get(group), 2) for r in rows)))
    body.append(("stack total", *(num(r.cpu_ms.get(STACK), 2) for r in rows)))
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
    return (title, ["CPU-ms per request", *(_path_header(r) for r in rows)], body, note)


def tracing_share_section(cost: Cost) -> Section:
    rows: list[Row] = [
        (
            PATH_NAMES.get(s.path, s.path),
            f"{s.rate:g}",
            num(s.on_ms, 2),
            num(s.off_ms, 2),
            num(s.on_ms - s.off_ms, 2),
            f"{s.share:.0%}",
        )
        for s in cost.tracing
    ]
    headers = ["path", "rate/s", "tracing on", "tracing off", "added", "tracing's share"]
    note = (
        "Stack CPU-ms per request, the mesh with the topology's replicas, tracing at 100% "
        "against tracing off. Tracing's share = (on - off) / on: the part of the stack's CPU "
        "that tracing adds (apps' OpenTelemetry, Envoys' spans, the trace store)."
    )
    return ("Tracing's share of the stack's CPU", headers, rows, note)


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
        rows.append((t.target, f"{t.op} {limit}", measured, verdict))
    note = (
        "Issue 15: the whole stack as `boutique up` runs it (mesh, mTLS, tracing at 100%), at "
        "fixed rates well below the knee. Tracing's share: the worst path. The checkout rate: "
        "the mesh ladder's highest sustained rate (full run only) against twice 27/s, the "
        "rate measured before issue 15 (docs/performance.md). * = a step it rests on was not "
        "sustained (errors, drops or p99 over its bound): the machine was too busy for that "
        "rate, so the figure is not a clean one; measure again."
    )
    return ("Targets (issue 15)", ["target", "limit", "measured", "verdict"], rows, note)


def cost_sections(cost: Cost | None) -> list[Section]:
    if cost is None:
        return []
    out = []
    if cost.on:
        title = "CPU per request as `boutique up` runs it (mesh, mTLS, tracing at 100%)"
        out.append(per_request_section(cost.on, title, cost.idle_vcpu.get(COST_ON)))
    if cost.off:
        title = "CPU per request, the same with tracing off"
        out.append(per_request_section(cost.off, title, cost.idle_vcpu.get(COST_OFF)))
    if cost.tracing:
        out.append(tracing_share_section(cost))
    out.append(targets_section(cost))
    return out


def method_lines(plan: Plan) -> list[str]:
    """How a cost run measures (the report's method section)."""
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
        "",
    ]
