"""The results as a terminal table, ``results.json``, and ``report.md`` with PNG charts."""

from __future__ import annotations

import json
from pathlib import Path

from . import codec, machine
from .analysis import FOREIGN_VCPU_LIMIT, summarize
from .charts import draw_charts
from .cost_tables import cost_sections, method_lines, repeats_of
from .model import Results
from .summary import Summary
from .tables import (
    Section,
    envoy_cpu_section,
    hops_section,
    latency_section,
    max_section,
    md_table,
    memory_section,
    num,
    sidecar_sections,
    text_table,
    tracing_section,
)
from .tuning_tables import steps_section, tuning_section, variants_section


def sections(results: Results, summary: Summary) -> list[Section]:
    if results.tuning:
        out = [hops_section(summary), tuning_section(summary), variants_section(summary)]
        return [s for s in out if s[2]]
    if results.cost_only:
        out = [hops_section(summary), *cost_sections(summary.cost), memory_section(summary)]
        return [s for s in out if s[2]]
    out = [hops_section(summary), latency_section(summary), max_section(summary)]
    out += sidecar_sections(summary)
    out += [envoy_cpu_section(summary), tracing_section(summary), memory_section(summary)]
    out += cost_sections(summary.cost)
    return [s for s in out if s[2]]


def profiles_lines(results: Results) -> list[str]:
    """The flame graphs recorded (``--profile``), one line per step."""
    return [
        f"{s.stack} {s.path} {s.rate:g}/s: {', '.join(s.profiles)}"
        for s in results.steps
        if s.profiles
    ]


def header_lines(results: Results) -> list[str]:
    kind = "tuning run" if results.tuning else f"{results.plan.name} run"
    return [
        f"Mesh Boutique bench, {kind}, {results.started_at}",
        f"machine: {machine.one_line(results.machine)}",
        f"commit: {results.machine.git_commit or 'unknown'}",
    ]


def terminal(results: Results, summary: Summary) -> str:
    parts = ["\n".join(header_lines(results))]
    for title, headers, rows, note in sections(results, summary):
        parts.append(f"{title}\n{text_table(headers, rows)}\n{note}")
    if summary.disturbed:
        parts.append(disturbed_note(summary, results.plan.disturbed_retries))
    if note := speed_note(summary):
        parts.append(note)
    if profiles := profiles_lines(results):
        parts.append("Flame graphs (py-spy, beside results.json):\n" + "\n".join(profiles))
    return "\n\n".join(parts)


def speed_note(summary: Summary) -> str | None:
    spread = summary.speed_spread
    if spread is None or spread < 0.15:
        return None
    return (
        f"Speed: the machine ran {spread:.0%} slower for one stack than for another (speed "
        "probe); ratios between stacks carry part of that difference."
    )


def disturbed_note(summary: Summary, retries: int) -> str:
    names = ", ".join(f"{d.stack} {d.path} {d.rate:g}/s" for d in summary.disturbed)
    again = " even after retries" if retries else " (a cost run does not redo steps)"
    return (
        f"Disturbed: other processes used over {FOREIGN_VCPU_LIMIT} vCPU during {names}"
        f"{again}; read those steps with care."
    )


def _machine_lines(results: Results) -> list[str]:
    m = results.machine
    mem = m.memory_bytes
    rows = [
        ("cores (os.cpu_count)", str(m.cores)),
        ("CPU", str(m.cpu_model)),
        ("memory", f"{mem / 2**30:.1f} GiB" if mem else "-"),
        ("kernel", str(m.kernel)),
        ("Python", f"{m.python} ({m.python_implementation})"),
        ("Envoy", str(m.envoy)),
        ("Redis", str(m.redis)),
        ("aiohttp", str(m.aiohttp)),
        ("OpenTelemetry SDK", str(m.opentelemetry_sdk)),
        ("commit", str(m.git_commit)),
        ("load average at start", str(m.load_average_at_start)),
    ]
    return ["## Machine", "", md_table(["what", "value"], rows), ""]


def _method_lines(results: Results, summary: Summary) -> list[str]:
    plan = results.plan
    if results.cost_only:
        repeats = repeats_of(summary.cost) if summary.cost else 1
        return method_lines(plan, repeats, len(results.merged_from or [results.started_at]))
    bounds = ", ".join(f"{k} {v:g} ms" for k, v in summary.p99_bound_ms.items())
    replicas = (
        " (and every service runs one instance in both, as `--no-mesh` does). "
        if plan.one_replica
        else "; the mesh runs the topology's replicas, the stack without it one of each. "
    )
    return [
        "## How this was measured",
        "",
        f"- Each step drives one path at a constant rate for {plan.duration_s:g} s after a "
        f"{plan.warmup_s:g} s warm-up (open loop: requests are due at fixed intervals "
        "whatever the answers; latency is measured from each request's intended send time, so "
        "no coordinated omission). The client runs in its own process on the same machine, "
        f"keeps connections alive, and keeps at most {plan.max_inflight} requests in flight "
        "(beyond that a request counts as dropped).",
        "- Stacks run one after the other on free ports with fresh stores: without the mesh, "
        "with it, and with it and tracing at 100% sampling. The mesh and no-mesh stacks run "
        "with tracing off, so they differ only by the mesh" + replicas + "Every stack runs with "
        "`PRODUCTS_STOCK=1000000` (stock never runs out) and `PAYMENT_LATENCY_MS=0` (the "
        "simulated card network adds no delay).",
        "- one-hop: `GET /api/products/{id}`. checkout: `POST /api/checkout` by a signed-in "
        "user with one item in the cart and a fresh Idempotency-Key; the user's cart is "
        "refilled (not timed, but it is load) after each checkout.",
        "- CPU: utime + stime from `/proc/<pid>/stat` of every process of the stack and of the "
        "client, read at the measured window's edges; vCPU = CPU seconds / wall seconds. "
        "Memory: VmRSS and PSS (`/proc/<pid>/smaps_rollup`).",
        f"- Sustained: p99 within the bound ({bounds}), at least 95% of the target rate "
        "answered, and no errors or drops.",
        "",
    ]


def _chart_for(title: str) -> str | None:
    if title.startswith("Latency at fixed rates"):
        return "latency"
    if title.startswith("Envoy CPU at every rate"):
        return "cpu"
    return None


def markdown(results: Results, summary: Summary, charts: dict[str, str]) -> str:
    lines = [f"# {header_lines(results)[0]}", ""]
    lines += _machine_lines(results) + _method_lines(results, summary)
    shown = sections(results, summary)
    for title, headers, rows, note in shown:
        lines += [f"## {title}", "", md_table(headers, rows), "", note, ""]
        chart_key = _chart_for(title)
        for name, file in charts.items():
            if chart_key and name.startswith(chart_key):
                lines += [f"![{name}]({file})", ""]
    if charts and not any(_chart_for(t) for t, *_ in shown):
        lines += [f"![{name}]({file})" for name, file in charts.items()] + [""]
    if summary.disturbed:
        lines += [disturbed_note(summary, results.plan.disturbed_retries), ""]
    if note := speed_note(summary):
        lines += [note, ""]
    if c := summary.client:
        lines += [
            "## The load client's own cost",
            "",
            f"The client used at most {num(c.max_vcpu, 2)} vCPU ({c.at}); the worst p99 "
            f"delay between a request's due time and its actual send was "
            f"{num(c.max_send_lag_p99_ms, 1)} ms (that delay is inside the latencies above).",
            "",
        ]
    if profiles := profiles_lines(results):
        lines += ["## Flame graphs (py-spy)", "", *(f"- {p}" for p in profiles), ""]
    title, headers, rows, note = steps_section(results)
    lines += [f"## {title}", "", md_table(headers, rows), "", note, ""]
    return "\n".join(lines)


def write(results: Results, out: Path) -> dict[str, Path]:
    """``results.json`` (with the summary), the charts, and ``report.md`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize(results)
    saved = {**codec.dump(results), "summary": codec.dump(summary)}
    (out / "results.json").write_text(json.dumps(saved, indent=1, allow_nan=False))
    charts = draw_charts(results, out)
    report = markdown(results, summary, charts)
    if not charts:
        report += "\n(No charts: matplotlib is not installed.)\n"
    (out / "report.md").write_text(report)
    files = {"json": out / "results.json", "report": out / "report.md"}
    files.update({name: out / file for name, file in charts.items()})
    return files
