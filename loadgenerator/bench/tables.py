"""The report's tables of a bench run, shared by the terminal and the Markdown: each a
``Section`` (title, headers, rows, note)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from .stats import MaxSustained
from .summary import GroupMb, Summary

Row = Sequence[str]
Section = tuple[str, list[str], list[Row], str]  # title, headers, rows, note


def num(value: float | None, digits: int = 1, sign: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def triple(p: dict[str, float], digits: int = 1, sign: bool = False, suffix: str = "") -> str:
    return " / ".join(num(p.get(f"p{q}{suffix}"), digits, sign) for q in (50, 90, 99))


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


def hops_section(summary: Summary) -> Section:
    rows = []
    for path, h in summary.hops.items():
        through = ", ".join(
            f"{name.removeprefix('envoy:')} {sum(v.values()):g}" for name, v in h.per_envoy.items()
        )
        rows.append((path, num(h.hops, 1), num(h.proxy_traversals, 1), through or "-"))
    note = (
        "A hop is one call the mesh carries: the edge call (ingress to gateway) or a call "
        "between two services; each passes a client-side proxy and a server-side proxy, as in "
        "Istio. Counted from the Envoys' own request counters around single requests."
    )
    headers = ["path", "hops", "proxy traversals", "requests per Envoy"]
    return ("Hops per request with the mesh", headers, rows, note)


def latency_section(summary: Summary) -> Section:
    rows = []
    for path, cmp in summary.compare.items():
        for r in cmp:
            both = r.no_mesh_sustained and r.mesh_sustained
            rows.append(
                (
                    path,
                    f"{r.rate:g}" + ("" if both else " *"),
                    triple(r.no_mesh),
                    triple(r.mesh),
                    triple(r.added, sign=True) if both else "-",
                    triple(r.added, 2, sign=True, suffix="_per_hop") if both else "-",
                )
            )
    return (
        "Latency at fixed rates (ms, p50 / p90 / p99)",
        ["path", "rate/s", "no mesh", "mesh", "added by the mesh", "added per hop"],
        rows,
        "Open loop, latency from each request's intended send time. * = a side did not "
        "sustain this rate (its percentiles measure the queue it built, so nothing is added up).",
    )


def max_section(summary: Summary) -> Section:
    rows = []
    for path, m in summary.max_sustained.items():
        bound = summary.p99_bound_ms.get(path)
        rows.append((path, f"{num(bound, 0)} ms", _max(m.get("no-mesh")), _max(m.get("mesh"))))
    return (
        "Highest sustained rate",
        ["path", "p99 bound", "no mesh", "mesh"],
        rows,
        "Sustained: p99 within the bound, at least 95% of the target rate answered, no errors.",
    )


def _max(found: MaxSustained | None) -> str:
    if not found:
        return "not run"
    if found.rate is None:
        return "none (lowest rate failed)"
    above = "" if found.bounded else " or more (highest tried)"
    return f"{found.rate:g}/s{above}"


def sidecar_sections(summary: Summary) -> list[Section]:
    out = []
    for path, sc in summary.sidecars.items():
        if sc is None or not sc.rows:
            continue
        rows: list[Row] = [
            (
                r.name,
                num(r.rps, 0),
                num(r.vcpu, 3),
                num(r.vcpu_per_1000_rps, 2),
                num(r.rss_mb, 1),
                num(r.pss_mb, 1),
            )
            for r in sc.rows
        ]
        a = sc.all
        every = num(a.vcpu_per_1000_proxied_rps, 2)
        rows.append(("all Envoys", num(a.proxied_rps, 0), num(a.envoys_vcpu, 3), every, "-", "-"))
        note = (
            f"Median per sidecar: {num(sc.median_vcpu_per_1000_rps, 2)} vCPU per 1000 rps "
            f"through it and {num(sc.median_rss_mb, 0)} MB RSS "
            f"({num(sc.median_pss_mb, 0)} MB PSS); Istio publishes "
            f"{sc.istio_vcpu_per_1000_rps:.2f} vCPU and "
            f"{sc.istio_mb_per_sidecar:.0f} MB. All Envoys together: "
            f"{num(a.vcpu_per_1000_path_rps, 2)} vCPU per 1000 {path} requests per second."
        )
        title = f"Sidecars, {path} at {sc.rate:g}/s (mesh, {num(sc.achieved_rps, 0)}/s answered)"
        headers = ["Envoy", "rps through", "vCPU", "vCPU per 1000 rps", "RSS MB", "PSS MB"]
        out.append((title, headers, rows, note))
    return out


def envoy_cpu_section(summary: Summary) -> Section:
    rows = [
        (
            path,
            f"{e.rate:g}" + ("" if e.sustained else " *"),
            num(e.achieved_rps, 1),
            num(e.envoys_vcpu, 3),
            num(e.vcpu_per_1000_proxied_rps, 2),
            num(e.vcpu_per_1000_path_rps, 2),
            num(e.apps_vcpu, 2),
            num(e.client_vcpu, 2),
        )
        for path, steps in summary.envoy_cpu.items()
        for e in steps
    ]
    headers = ["path", "rate/s", "answered/s", "Envoys vCPU", "per 1000 proxied rps"]
    headers += ["per 1000 path rps", "apps vCPU", "client vCPU"]
    return (
        "Envoy CPU at every rate (mesh)",
        headers,
        rows,
        "Proxied requests: requests taken by any Envoy listener (each traversal counts).",
    )


def tracing_section(summary: Summary) -> Section:
    rows = []
    for path, tr in summary.tracing.items():
        for r in tr:
            off, on = r.vcpu_off, r.vcpu_on
            rows.append(
                (
                    path,
                    f"{r.rate:g}" + ("" if r.off_sustained and r.on_sustained else " *"),
                    triple(r.off),
                    triple(r.on),
                    triple(r.added, sign=True),
                    f"{num(off.stack, 2)} -> {num(on.stack, 2)}",
                    f"{num(off.envoys, 2)} -> {num(on.envoys, 2)}",
                    f"{num(off.apps, 2)} -> {num(on.apps, 2)}",
                    num(on.tracestore, 2),
                )
            )
    headers = ["path", "rate/s", "off (ms)", "on (ms)", "added (ms)", "stack vCPU"]
    headers += ["Envoys vCPU", "apps vCPU", "trace store vCPU"]
    return (
        "Tracing at 100% sampling against tracing off (mesh)",
        headers,
        rows,
        "Tracing on: every app and sidecar exports spans (OTLP/HTTP) to the local trace store.",
    )


def _group_mb(groups: dict[str, GroupMb], name: str) -> str:
    x = groups.get(name)
    return f"{num(x.rss_mb, 0)} ({x.count})" if x else "-"


def memory_section(summary: Summary) -> Section:
    rows = [
        (
            m.stack,
            num(m.started_s, 1) + " s",
            str(m.processes),
            f"{num(m.idle_rss_mb, 0)} / {num(m.idle_pss_mb, 0)}",
            f"{num(m.after_rss_mb, 0)} / {num(m.after_pss_mb, 0)}",
            _group_mb(m.groups_idle, "envoys"),
            _group_mb(m.groups_idle, "apps"),
            num(m.idle_vcpu, 3),
            num(m.speed_probe_ms, 0),
        )
        for m in summary.memory
    ]
    headers = ["stack", "healthy in", "processes", "MB idle RSS / PSS", "MB after load RSS / PSS"]
    headers += ["Envoys MB RSS (n)", "apps MB RSS (n)", "idle vCPU", "speed probe ms"]
    return (
        "Start-up and memory of the whole local stack",
        headers,
        rows,
        "Healthy in: LocalRun.start(), what `boutique up` runs, until every process answers its "
        "readiness check. RSS counts shared pages (the Envoy binary, Python's libraries) in every "
        "process; PSS divides them among their sharers, so PSS adds up to what the stack holds. "
        "Speed probe: a fixed piece of work timed before each stack started, a coarse check "
        "that the machine ran at the same speed (repeats tell more).",
    )
