"""The floor's report (Markdown): CPU-ms per request of the bare chain and of each layer added,
what one call costs, and what that means for issue 15's targets. Pure functions of the results."""

from __future__ import annotations

from statistics import median

from .cost import CPU_MS_TARGETS, STACK
from .floor import LAYER_TEXT, LAYERS
from .floor_run import FloorResults, FloorRow

# Calls a checkout makes (a trace of one at 10/s, session 5: gateway -> checkout -> cart,
# products, currency, shipping, payment, orders, email ...); each is two Envoy traversals.
CHECKOUT_CALLS = 10
PATHS = {"browse": "browse", "one-hop": "product page"}
GROUPS = ("envoys", "gateway", "products", "tracestore")


def find(rows: list[FloorRow], layer: str, shape: str, path: str, rate: float) -> FloorRow | None:
    """The cell's row; with repeats, one row of their medians (requests and errors summed)."""
    same = [r for r in rows if (r.layer, r.shape, r.path, r.rate) == (layer, shape, path, rate)]
    if len(same) <= 1:
        return same[0] if same else None
    groups = dict.fromkeys(g for r in same for g in r.cpu_ms)
    return FloorRow(
        layer=layer,
        shape=shape,
        path=path,
        rate=rate,
        requests=sum(r.requests for r in same),
        errors=sum(r.errors for r in same),
        cpu_ms={g: median(r.cpu_ms.get(g, 0.0) for r in same) for g in groups},
        p50_ms=_median_of([r.p50_ms for r in same]),
        p99_ms=_median_of([r.p99_ms for r in same]),
        foreign_vcpu=_median_of([r.foreign_vcpu for r in same]),
    )


def _median_of(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return median(known) if known else None


def spread(rows: list[FloorRow], layer: str, shape: str, path: str, rate: float) -> str:
    """The stack's CPU-ms of the cell's repeats, lowest to highest (empty for one run)."""
    found = sorted(
        r.cpu_ms.get(STACK, 0.0)
        for r in rows
        if (r.layer, r.shape, r.path, r.rate) == (layer, shape, path, rate)
    )
    return f"{found[0]:.2f}–{found[-1]:.2f}" if len(found) > 1 else ""


def stack_ms(row: FloorRow | None) -> float | None:
    return None if row is None else row.cpu_ms.get(STACK)


def one_call(rows: list[FloorRow], layer: str, rate: float) -> float | None:
    """One call (app -> sidecar -> sidecar -> app): the ``one`` chain less the ``edge``, on the
    product page at ``rate``."""
    chain = stack_ms(find(rows, layer, "one", "one-hop", rate))
    edge = stack_ms(find(rows, layer, "edge", "one-hop", rate))
    return None if chain is None or edge is None else chain - edge


def columns(results: FloorResults) -> list[tuple[str, str, float]]:
    """(shape, path, rate) of every cell measured, in the plan's order."""
    seen: dict[tuple[str, str, float], None] = {}
    for shape in results.plan.shapes:
        for path, rate in results.plan.work.get(shape, []):
            if any((r.shape, r.path, r.rate) == (shape, path, rate) for r in results.rows):
                seen[(shape, path, rate)] = None
    return list(seen)


def _ms(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "–"
    return f"{value:+.2f}" if signed else f"{value:.2f}"


def _title(shape: str, path: str, rate: float) -> str:
    return f"{PATHS.get(path, path)} {shape} {rate:g}/s"


def layers_table(results: FloorResults) -> list[str]:
    """Stack CPU-ms per request: a row per layer, and below each the layer's addition."""
    cols = columns(results)
    calls = sorted({rate for _, _, rate in cols})
    head = ["layer", *(_title(*c) for c in cols), *(f"one call {r:g}/s" for r in calls)]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    measured = [layer for layer in LAYERS if any(r.layer == layer for r in results.rows)]
    before: str | None = None
    for layer in measured:
        cells = [stack_ms(find(results.rows, layer, *c)) for c in cols]
        cells += [one_call(results.rows, layer, r) for r in calls]
        ranges = [spread(results.rows, layer, *c) for c in cols] + [""] * len(calls)
        shown = [_ms(v) + (f" ({r})" if r else "") for v, r in zip(cells, ranges, strict=True)]
        lines.append(f"| **{layer}** | " + " | ".join(shown) + " |")
        if before is not None:
            prev = [stack_ms(find(results.rows, before, *c)) for c in cols]
            prev += [one_call(results.rows, before, r) for r in calls]
            diffs = [
                None if a is None or b is None else a - b for a, b in zip(cells, prev, strict=True)
            ]
            lines.append(f"| {layer} adds | " + " | ".join(_ms(v, True) for v in diffs) + " |")
        before = layer
    return lines


def groups_table(results: FloorResults, shape: str = "two", path: str = "one-hop") -> list[str]:
    """Where a product page's CPU goes, by group, at each layer (100/s)."""
    lines = ["| layer | " + " | ".join(GROUPS) + " | stack | p50 ms | p99 ms | requests |"]
    lines.append("|" + " --- |" * (len(GROUPS) + 5))
    for layer in LAYERS:
        row = find(results.rows, layer, shape, path, 100.0)
        if row is None:
            continue
        cells = [_ms(row.cpu_ms.get(g)) for g in GROUPS]
        lines.append(
            f"| {layer} | {' | '.join(cells)} | {_ms(row.cpu_ms.get(STACK))} | "
            f"{_ms(row.p50_ms)} | {_ms(row.p99_ms)} | {row.requests} |"
        )
    return lines


def targets(results: FloorResults) -> list[str]:
    """Each CPU target against the floor of the most complete layer measured."""
    measured = [layer for layer in LAYERS if any(r.layer == layer for r in results.rows)]
    if not measured:
        return []
    layer = measured[-1]
    rows = results.rows
    lines = [f"Against issue 15's targets, at the `{layer}` layer (the apps bare):", ""]
    for path, name in PATHS.items():
        floor = stack_ms(find(rows, layer, "two", path, 100.0))
        lines.append(_verdict(name, floor, CPU_MS_TARGETS[path]))
    edge = stack_ms(find(rows, layer, "edge", "one-hop", 10.0))
    call = one_call(rows, layer, 10.0)
    if edge is not None and call is not None:
        floor = edge + CHECKOUT_CALLS * call
        lines.append(
            _verdict(
                f"checkout (edge {edge:.2f} + {CHECKOUT_CALLS} calls × {call:.2f}, 10/s)",
                floor,
                CPU_MS_TARGETS["checkout"],
            )
        )
    return lines


def _verdict(name: str, floor: float | None, target: float) -> str:
    if floor is None:
        return f"- {name}: not measured"
    if floor <= target:
        return f"- {name}: floor {floor:.2f} CPU-ms, target {target:g}: {target - floor:.2f} left"
    return (
        f"- {name}: floor {floor:.2f} CPU-ms, target {target:g}: missed by "
        f"{floor - target:.2f} ({floor / target:.1f}×) before any app work"
    )


def markdown(results: FloorResults) -> str:
    load = results.load_average
    foreign = [r.foreign_vcpu for r in results.rows if r.foreign_vcpu is not None]
    lines = [
        "# The floor: what the design's hop chain costs at least on this machine",
        "",
        "The shop's browse/product-page chain (ingress Envoy -> gateway sidecar -> app -> the "
        "same sidecar's egress -> products sidecar -> app) with bare aiohttp/uvloop apps (a "
        "relay, a leaf answering products' bytes) and the shop's own Envoy configs stripped to "
        "each layer. CPU-ms per request of every process but the load client (and Redis, "
        "unused), from /proc, as `--cost` counts it. Shapes: `two`/`one` products instances, "
        "`edge` no call at all; one call = `one` − `edge`.",
        "",
        *(f"- `{layer}`: {LAYER_TEXT[layer]}" for layer in LAYERS),
        "",
        f"Run {results.started_at} to {results.finished_at}; load average (1 min) at each "
        f"stack's start {min(load, default=0):.1f} to {max(load, default=0):.1f}; other "
        f"processes used {min(foreign, default=0):.2f} to {max(foreign, default=0):.2f} vCPU "
        "during the windows (not in the figures).",
        "",
        "## CPU-ms per request of the stack",
        "",
        *layers_table(results),
        "",
        "## The product page (two instances, 100/s) by group",
        "",
        *groups_table(results),
        "",
        *targets(results),
    ]
    errors = [r for r in results.rows if r.errors]
    if errors:
        lines += [
            "",
            "Errors: "
            + ", ".join(f"{r.layer}/{r.shape} {r.path} {r.rate:g}/s: {r.errors}" for r in errors),
        ]
    if results.error:
        lines += ["", f"**The run stopped early:** {results.error}"]
    return "\n".join(lines) + "\n"
