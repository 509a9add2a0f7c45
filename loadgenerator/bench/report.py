"""The results as a terminal table, ``results.json``, and ``report.md`` with PNG charts."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import analysis, machine

Row = Sequence[str]
Section = tuple[str, list[str], list[Row], str]  # title, headers, rows, note


# -- formatting -------------------------------------------------------------------------------


def num(value: float | None, digits: int = 1, sign: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def triple(p: dict[str, float], digits: int = 1, sign: bool = False, suffix: str = "") -> str:
    return " / ".join(num(p.get(f"p{q}{suffix}"), digits, sign) for q in (50, 90, 99))


def rate(value: float | None) -> str:
    return "-" if value is None else f"{value:g}/s"


def text_table(headers: list[str], rows: list[Row]) -> str:
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    head = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    rule = "  ".join("-" * w for w in widths)
    return "\n".join([head, rule, *lines])


def md_table(headers: list[str], rows: list[Row]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


# -- the sections, shared by the terminal and the Markdown ---------------------------------------


def hops_section(summary: dict[str, Any]) -> Section:
    rows = []
    for path, h in summary["hops"].items():
        through = ", ".join(
            f"{name.removeprefix('envoy:')} {sum(v.values()):g}"
            for name, v in h.get("per_envoy", {}).items()
        )
        rows.append((path, num(h["hops"], 1), num(h["proxy_traversals"], 1), through or "-"))
    note = (
        "A hop is one call the mesh carries: the edge call (ingress to gateway) or a call "
        "between two services; each passes a client-side proxy and a server-side proxy, as in "
        "Istio. Counted from the Envoys' own request counters around single requests."
    )
    return (
        "Hops per request with the mesh",
        ["path", "hops", "proxy traversals", "requests per Envoy"],
        rows,
        note,
    )


def latency_section(summary: dict[str, Any]) -> Section:
    rows = []
    for path, cmp in summary["compare"].items():
        for r in cmp:
            both = all(r["sustained"].values())
            rows.append(
                (
                    path,
                    f"{r['rate']:g}" + ("" if both else " *"),
                    triple(r["no_mesh"]),
                    triple(r["mesh"]),
                    triple(r["added"], sign=True) if both else "-",
                    triple(r["added"], 2, sign=True, suffix="_per_hop") if both else "-",
                )
            )
    return (
        "Latency at fixed rates (ms, p50 / p90 / p99)",
        ["path", "rate/s", "no mesh", "mesh", "added by the mesh", "added per hop"],
        rows,
        "Open loop, latency from each request's intended send time. * = a side did not "
        "sustain this rate (its percentiles measure the queue it built, so nothing is added up).",
    )


def max_section(summary: dict[str, Any]) -> Section:
    rows = []
    for path, m in summary["max_sustained"].items():
        bound = summary["p99_bound_ms"].get(path)
        rows.append((path, f"{num(bound, 0)} ms", _max(m.get("no-mesh")), _max(m.get("mesh"))))
    return (
        "Highest sustained rate",
        ["path", "p99 bound", "no mesh", "mesh"],
        rows,
        "Sustained: p99 within the bound, at least 95% of the target rate answered, no errors.",
    )


def _max(found: dict[str, Any] | None) -> str:
    if not found:
        return "not run"
    if found["rate"] is None:
        return "none (lowest rate failed)"
    above = "" if found["bounded"] else " or more (highest tried)"
    return f"{found['rate']:g}/s{above}"


def _group_mb(groups: dict[str, Any], name: str) -> str:
    x = groups.get(name)
    return f"{num(x['rss_mb'], 0)} ({x['count']})" if x else "-"


def _spread(row: dict[str, Any], key: str, digits: int = 1) -> str:
    lo, hi = row[f"{key}_range"]
    if row["repeats"] < 2:
        return num(row[key], digits)
    return f"{num(row[key], digits)} ({num(lo, digits)}-{num(hi, digits)})"


def sidecar_sections(summary: dict[str, Any]) -> list[Section]:
    out = []
    for path, sc in summary["sidecars"].items():
        if not sc or not sc.get("rows"):
            continue
        rows = [
            (
                r["name"],
                num(r["rps"], 0),
                num(r["vcpu"], 3),
                num(r["vcpu_per_1000_rps"], 2),
                num(r["rss_mb"], 1),
                num(r["pss_mb"], 1),
            )
            for r in sc["rows"]
        ]
        a = sc["all"]
        rows.append(
            (
                "all Envoys",
                num(a["proxied_rps"], 0),
                num(a["envoys_vcpu"], 3),
                num(a["vcpu_per_1000_proxied_rps"], 2),
                "-",
                "-",
            )
        )
        note = (
            f"Median per sidecar: {num(sc['median_vcpu_per_1000_rps'], 2)} vCPU per 1000 rps "
            f"through it and {num(sc['median_rss_mb'], 0)} MB RSS "
            f"({num(sc['median_pss_mb'], 0)} MB PSS); Istio publishes "
            f"{analysis.ISTIO_VCPU_PER_1000_RPS:.2f} vCPU and "
            f"{analysis.ISTIO_MB_PER_SIDECAR:.0f} MB. All Envoys together: "
            f"{num(a['vcpu_per_1000_path_rps'], 2)} vCPU per 1000 {path} requests per second."
        )
        out.append(
            (
                f"Sidecars, {path} at {sc['rate']:g}/s (mesh, {num(sc['achieved_rps'], 0)}/s "
                "answered)",
                ["Envoy", "rps through", "vCPU", "vCPU per 1000 rps", "RSS MB", "PSS MB"],
                rows,
                note,
            )
        )
    return out


def envoy_cpu_section(summary: dict[str, Any]) -> Section:
    rows = []
    for path, steps in summary["envoy_cpu"].items():
        for e in steps:
            rows.append(
                (
                    path,
                    f"{e['rate']:g}" + ("" if e["sustained"] else " *"),
                    num(e["achieved_rps"], 1),
                    num(e["envoys_vcpu"], 3),
                    num(e["vcpu_per_1000_proxied_rps"], 2),
                    num(e["vcpu_per_1000_path_rps"], 2),
                    num(e["apps_vcpu"], 2),
                    num(e["client_vcpu"], 2),
                )
            )
    return (
        "Envoy CPU at every rate (mesh)",
        [
            "path",
            "rate/s",
            "answered/s",
            "Envoys vCPU",
            "per 1000 proxied rps",
            "per 1000 path rps",
            "apps vCPU",
            "client vCPU",
        ],
        rows,
        "Proxied requests: requests taken by any Envoy listener (each traversal counts).",
    )


def tracing_section(summary: dict[str, Any]) -> Section:
    rows = []
    for path, tr in summary["tracing"].items():
        for r in tr:
            off, on = r["vcpu_off"], r["vcpu_on"]
            rows.append(
                (
                    path,
                    f"{r['rate']:g}" + ("" if all(r["sustained"].values()) else " *"),
                    triple(r["off"]),
                    triple(r["on"]),
                    triple(r["added"], sign=True),
                    f"{num(off['stack'], 2)} -> {num(on['stack'], 2)}",
                    f"{num(off['envoys'], 2)} -> {num(on['envoys'], 2)}",
                    f"{num(off['apps'], 2)} -> {num(on['apps'], 2)}",
                    num(on["tracestore"], 2),
                )
            )
    return (
        "Tracing at 100% sampling against tracing off (mesh)",
        [
            "path",
            "rate/s",
            "off (ms)",
            "on (ms)",
            "added (ms)",
            "stack vCPU",
            "Envoys vCPU",
            "apps vCPU",
            "trace store vCPU",
        ],
        rows,
        "Tracing on: every app and sidecar exports spans (OTLP/HTTP) to the local trace store.",
    )


def memory_section(summary: dict[str, Any]) -> Section:
    rows = []
    for m in summary["memory"]:
        g = m["groups_idle"]
        rows.append(
            (
                m["stack"],
                num(m["started_s"], 1) + " s",
                str(m["processes"]),
                f"{num(m['idle_rss_mb'], 0)} / {num(m['idle_pss_mb'], 0)}",
                f"{num(m['after_rss_mb'], 0)} / {num(m['after_pss_mb'], 0)}",
                _group_mb(g, "envoys"),
                _group_mb(g, "apps"),
                num(m["idle_vcpu"], 3),
                num(m.get("speed_probe_ms"), 0),
            )
        )
    return (
        "Start-up and memory of the whole local stack",
        [
            "stack",
            "healthy in",
            "processes",
            "MB idle RSS / PSS",
            "MB after load RSS / PSS",
            "Envoys MB RSS (n)",
            "apps MB RSS (n)",
            "idle vCPU",
            "speed probe ms",
        ],
        rows,
        "Healthy in: LocalRun.start(), what `boutique up` runs, until every process answers its "
        "readiness check. RSS counts shared pages (the Envoy binary, Python's libraries) in every "
        "process; PSS divides them among their sharers, so PSS adds up to what the stack holds. "
        "Speed probe: a fixed piece of work timed before each stack started, a coarse check "
        "that the machine ran at the same speed (repeats tell more).",
    )


def tuning_section(summary: dict[str, Any]) -> Section:
    rows = []
    for r in summary.get("tuning", []):
        vs = r.get("vs_baseline", {})
        rows.append(
            (
                r["variant"],
                r["path"],
                f"{r['rate']:g}",
                f"{r['sustained']}/{r['repeats']}",
                _spread(r, "p50"),
                _spread(r, "p99"),
                _spread(r, "stack_vcpu", 2),
                _spread(r, "envoys_vcpu", 3),
                num(vs.get("p50"), 1, sign=True),
                num(vs.get("p99"), 1, sign=True),
                num(vs.get("stack_vcpu"), 2, sign=True),
            )
        )
    return (
        "Tuning experiments (median of repeats, range in brackets)",
        [
            "variant",
            "path",
            "rate/s",
            "sustained",
            "p50 ms",
            "p99 ms",
            "stack vCPU",
            "Envoys vCPU",
            "p50 vs baseline",
            "p99 vs baseline",
            "vCPU vs baseline",
        ],
        rows,
        "Each variant is the mesh with one change (tracing off unless named); repeats "
        "interleave variants so drift spreads over all of them.",
    )


def variants_section(summary: dict[str, Any]) -> Section:
    rows = []
    for v in summary.get("variants", []):
        probes = ", ".join(num(p, 0) for p in v["speed_probe_ms"] if p is not None) or "-"
        rows.append(
            (
                v["variant"],
                str(v["stacks"]),
                num(v["started_s"], 1),
                num(v["envoy_rss_mb"], 1),
                num(v["envoy_pss_mb"], 1),
                num(v["envoys_rss_mb"], 0),
                num(v["connections_per_1000_rq"], 1),
                num(v["http2_connections_per_1000_rq"], 1),
                num(v["tls_handshakes_per_1000_rq"], 1),
                probes,
            )
        )
    return (
        "Per variant: memory, start-up and connections",
        [
            "variant",
            "stacks",
            "healthy in s",
            "MB RSS per Envoy",
            "MB PSS per Envoy",
            "MB RSS all Envoys",
            "upstream connections per 1000 requests",
            "of them HTTP/2",
            "TLS handshakes per 1000 requests",
            "speed probe ms",
        ],
        rows,
        "Memory after the load (median). Connections: what the Envoys opened to each other over "
        "the whole stack's life, per 1000 requests they sent upstream (Envoy's own counters).",
    )


def steps_section(results: dict[str, Any]) -> Section:
    rows = []
    for s in results["steps"]:
        lat = s["latency_ms"]
        g = s["vcpu_groups"]
        rows.append(
            (
                s["stack"],
                s["path"],
                f"{s['rate']:g}",
                num(s["achieved_rps"], 1),
                str(s["ok"]),
                str(s["errors_total"]),
                str(s["dropped"]),
                num(lat.get("p50")),
                num(lat.get("p90")),
                num(lat.get("p99")),
                num(lat.get("p99.9")),
                num(lat.get("max")),
                num(g["stack"], 2),
                num(g["client"], 2),
                num(g["foreign"], 2),
                s["failed_because"] or "sustained",
            )
        )
    return (
        "Every step",
        [
            "stack",
            "path",
            "rate/s",
            "answered/s",
            "ok",
            "errors",
            "dropped",
            "p50",
            "p90",
            "p99",
            "p99.9",
            "max",
            "stack vCPU",
            "client vCPU",
            "other vCPU",
            "verdict",
        ],
        rows,
        "Latencies in ms. Other vCPU: what processes outside the stack and the client used "
        f"meanwhile (a step with more than {analysis.FOREIGN_VCPU_LIMIT} is redone).",
    )


def sections(results: dict[str, Any], summary: dict[str, Any]) -> list[Section]:
    if results.get("kind_of_run") == "tuning":
        out = [hops_section(summary), tuning_section(summary), variants_section(summary)]
        return [s for s in out if s[2]]
    out = [hops_section(summary), latency_section(summary), max_section(summary)]
    out += sidecar_sections(summary)
    out += [envoy_cpu_section(summary), tracing_section(summary), memory_section(summary)]
    return [s for s in out if s[2]]


def header_lines(results: dict[str, Any]) -> list[str]:
    plan = results["plan"]
    kind = "tuning run" if results.get("kind_of_run") == "tuning" else f"{plan['name']} run"
    return [
        f"Mesh Boutique bench, {kind}, {results['started_at']}",
        f"machine: {machine.one_line(results['machine'])}",
        f"commit: {results['machine'].get('git_commit') or 'unknown'}",
    ]


def terminal(results: dict[str, Any], summary: dict[str, Any]) -> str:
    parts = ["\n".join(header_lines(results))]
    for title, headers, rows, note in sections(results, summary):
        parts.append(f"{title}\n{text_table(headers, rows)}\n{note}")
    if summary["disturbed"]:
        parts.append(disturbed_note(summary))
    if note := speed_note(summary):
        parts.append(note)
    return "\n\n".join(parts)


def speed_note(summary: dict[str, Any]) -> str | None:
    spread = summary.get("speed_spread")
    if spread is None or spread < 0.15:
        return None
    return (
        f"Speed: the machine ran {spread:.0%} slower for one stack than for another (speed "
        "probe); ratios between stacks carry part of that difference."
    )


def disturbed_note(summary: dict[str, Any]) -> str:
    names = ", ".join(f"{d['stack']} {d['path']} {d['rate']:g}/s" for d in summary["disturbed"])
    return (
        f"Disturbed: other processes used over {analysis.FOREIGN_VCPU_LIMIT} vCPU during {names} "
        "even after retries; read those steps with care."
    )


# -- Markdown and charts --------------------------------------------------------------------


def markdown(results: dict[str, Any], summary: dict[str, Any], charts: dict[str, str]) -> str:
    m, plan = results["machine"], results["plan"]
    bounds = ", ".join(f"{k} {v:g} ms" for k, v in summary["p99_bound_ms"].items())
    lines = [f"# {header_lines(results)[0]}", ""]
    mem = m.get("memory_bytes")
    lines += [
        "## Machine",
        "",
        md_table(
            ["what", "value"],
            [
                ("cores (os.cpu_count)", str(m.get("cores"))),
                ("CPU", str(m.get("cpu_model"))),
                ("memory", f"{mem / 2**30:.1f} GiB" if mem else "-"),
                ("kernel", str(m.get("kernel"))),
                ("Python", f"{m.get('python')} ({m.get('python_implementation')})"),
                ("Envoy", str(m.get("envoy"))),
                ("Redis", str(m.get("redis"))),
                ("aiohttp", str(m.get("aiohttp"))),
                ("OpenTelemetry SDK", str(m.get("opentelemetry_sdk"))),
                ("commit", str(m.get("git_commit"))),
                ("load average at start", str(m.get("load_average_at_start"))),
            ],
        ),
        "",
        "## How this was measured",
        "",
        f"- Each step drives one path at a constant rate for {plan['duration_s']:g} s after a "
        f"{plan['warmup_s']:g} s warm-up (open loop: requests are due at fixed intervals "
        "whatever the answers; latency is measured from each request's intended send time, so "
        "no coordinated omission). The client runs in its own process on the same machine, "
        f"keeps connections alive, and keeps at most {plan['max_inflight']} requests in flight "
        "(beyond that a request counts as dropped).",
        "- Stacks run one after the other on free ports with fresh stores: without the mesh, "
        "with it, and with it and tracing at 100% sampling. The mesh and no-mesh stacks run "
        "with tracing off, so they differ only by the mesh"
        + (
            " (and every service runs one instance in both, as `--no-mesh` does). "
            if plan.get("one_replica", True)
            else "; the mesh runs the topology's replicas, the stack without it one of each. "
        )
        + "Every stack runs with "
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
    for title, headers, rows, note in sections(results, summary):
        lines += [f"## {title}", "", md_table(headers, rows), "", note, ""]
        chart_key = _chart_for(title)
        for name, file in charts.items():
            if chart_key and name.startswith(chart_key):
                lines += [f"![{name}]({file})", ""]
    if charts and not any(_chart_for(t) for t, *_ in sections(results, summary)):
        lines += [f"![{name}]({file})" for name, file in charts.items()] + [""]
    if summary["disturbed"]:
        lines += [disturbed_note(summary), ""]
    if note := speed_note(summary):
        lines += [note, ""]
    if summary.get("client"):
        c = summary["client"]
        lines += [
            "## The load client's own cost",
            "",
            f"The client used at most {num(c['max_vcpu'], 2)} vCPU ({c['at']}); the worst p99 "
            f"delay between a request's due time and its actual send was "
            f"{num(c['max_send_lag_p99_ms'], 1)} ms (that delay is inside the latencies above).",
            "",
        ]
    title, headers, rows, note = steps_section(results)
    lines += [f"## {title}", "", md_table(headers, rows), "", note, ""]
    return "\n".join(lines)


def _chart_for(title: str) -> str | None:
    if title.startswith("Latency at fixed rates"):
        return "latency"
    if title.startswith("Envoy CPU at every rate"):
        return "cpu"
    return None


def draw_charts(results: dict[str, Any], out: Path) -> dict[str, str]:
    """PNG charts of latency (p50, p99) and CPU against rate, mesh and no mesh, per path.
    Empty when matplotlib is missing (the report says so)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:
        return {}
    charts = {}
    bounds = results["plan"]["p99_bound_ms"]
    paths = list(dict.fromkeys(s["path"] for s in results["steps"]))
    styles = {"no-mesh": "tab:blue", "mesh": "tab:orange", "mesh+tracing": "tab:green"}
    for path in paths:
        fig, ax = plt.subplots(figsize=(7, 4.2))
        drawn = False
        for stack, color in styles.items():
            steps = [s for s in analysis.steps_of(results, stack, path) if s["latency_ms"]]
            if not steps:
                continue
            drawn = True
            x = [s["rate"] for s in steps]
            for key, style in (("p50", "-"), ("p99", "--")):
                y = [s["latency_ms"].get(key, math.nan) for s in steps]
                ax.plot(x, y, style, color=color, marker="o", ms=3, label=f"{stack} {key}")
            bad = [s for s in steps if s["failed_because"]]
            if bad:
                ax.plot(
                    [s["rate"] for s in bad],
                    [s["latency_ms"].get("p99", math.nan) for s in bad],
                    "x",
                    color=color,
                    ms=9,
                )
        if not drawn:
            plt.close(fig)
            continue
        if path in bounds:
            ax.axhline(bounds[path], color="grey", lw=0.8, ls=":", label="p99 bound")
        ax.set_xscale("log", base=2)
        rates = sorted({s["rate"] for s in results["steps"] if s["path"] == path})
        ax.set_xticks(rates, [f"{r:g}" for r in rates], fontsize=7)
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.set_yscale("log")
        ax.set_xlabel("target rate (requests/s)")
        ax.set_ylabel("latency (ms)")
        ax.set_title(f"{path}: latency against rate (x = not sustained)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        name = f"latency-{path}.png"
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        charts[f"latency-{path}"] = name

        if not any(analysis.steps_of(results, stack, path) for stack in ("no-mesh", "mesh")):
            continue
        fig, ax = plt.subplots(figsize=(7, 4.2))
        for stack in ("no-mesh", "mesh"):
            steps = analysis.steps_of(results, stack, path)
            if not steps:
                continue
            x = [s["achieved_rps"] for s in steps]
            ax.plot(
                x,
                [s["vcpu_groups"]["stack"] for s in steps],
                "-o",
                ms=3,
                color=styles[stack],
                label=f"{stack}: whole stack",
            )
            if stack == "mesh":
                ax.plot(
                    x,
                    [s["vcpu_groups"]["envoys"] for s in steps],
                    ":o",
                    ms=3,
                    color=styles[stack],
                    label="mesh: Envoys",
                )
        ax.set_xlabel("answered requests/s")
        ax.set_ylabel("vCPU")
        ax.set_title(f"{path}: CPU against rate")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        name = f"cpu-{path}.png"
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        charts[f"cpu-{path}"] = name
    return charts


def write(results: dict[str, Any], out: Path) -> dict[str, Path]:
    """``results.json`` (with the summary), the charts, and ``report.md`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    summary = analysis.summarize(results)
    results = {**results, "summary": summary}
    (out / "results.json").write_text(json.dumps(clean(results), indent=1, allow_nan=False))
    charts = draw_charts(results, out)
    report = markdown(results, summary, charts)
    if not charts:
        report += "\n(No charts: matplotlib is not installed.)\n"
    (out / "report.md").write_text(report)
    files = {"json": out / "results.json", "report": out / "report.md"}
    files.update({name: out / file for name, file in charts.items()})
    return files


def clean(value: Any) -> Any:
    """``value`` with every NaN or infinity (no answer to measure) as ``null``, for strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    return value
