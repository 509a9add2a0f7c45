"""From the raw results (stacks and steps) to the figures the report shows. Pure functions."""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

from . import stats

# Istio's published sidecar cost (docs: "Performance and scalability"), per sidecar proxy, per
# 1000 requests per second going through it.
ISTIO_VCPU_PER_1000_RPS = 0.20
ISTIO_MB_PER_SIDECAR = 60.0
FOREIGN_VCPU_LIMIT = 0.2  # other processes using more than this during a step: disturbed
MB = 1024 * 1024


def steps_of(results: dict[str, Any], stack: str, path: str) -> list[dict[str, Any]]:
    """The steps of one stack and path, by rate (a step re-run after a disturbance replaces
    the disturbed one, which is kept apart under ``disturbed_steps``)."""
    found = [s for s in results["steps"] if s["stack"] == stack and s["path"] == path]
    return sorted(found, key=lambda s: s["rate"])


def stack_info(results: dict[str, Any], label: str) -> dict[str, Any] | None:
    return next((s for s in results["stacks"] if s["label"] == label), None)


def hops_of(results: dict[str, Any], path: str, stack: str = "mesh") -> dict[str, Any]:
    """The hops of ``path`` as counted on the ``stack`` stack, else on the first stack that
    counted any (a tuning run has no stack called ``mesh``)."""
    infos = [stack_info(results, stack)] + results["stacks"]
    for info in infos:
        found = (info or {}).get("hops", {}).get(path)
        if found and found.get("hops"):
            return found
    return {"hops": 0, "proxy_traversals": 0}


def pct(step: dict[str, Any]) -> dict[str, float]:
    lat = step.get("latency_ms", {})
    return {k: lat[k] for k in ("p50", "p90", "p99") if k in lat}


def compare(results: dict[str, Any], path: str) -> list[dict[str, Any]]:
    """Mesh against no mesh at every rate both ran: each side's percentiles and what the mesh
    adds, in total and per hop."""
    hops = hops_of(results, path)["hops"]
    direct = {s["rate"]: s for s in steps_of(results, "no-mesh", path)}
    rows = []
    for mesh in steps_of(results, "mesh", path):
        other = direct.get(mesh["rate"])
        if other is None:
            continue
        rows.append(
            {
                "rate": mesh["rate"],
                "no_mesh": pct(other),
                "mesh": pct(mesh),
                "added": stats.added(pct(mesh), pct(other), hops),
                "sustained": {
                    "no_mesh": not other["failed_because"],
                    "mesh": not mesh["failed_because"],
                },
                "stack_vcpu": {
                    "no_mesh": other["vcpu_groups"]["stack"],
                    "mesh": mesh["vcpu_groups"]["stack"],
                },
            }
        )
    return rows


def max_rates(results: dict[str, Any], path: str) -> dict[str, Any]:
    out = {}
    for stack in ("no-mesh", "mesh"):
        steps = steps_of(results, stack, path)
        if steps:
            out[stack] = stats.max_sustained(steps)
    return out


def envoy_cpu(step: dict[str, Any]) -> dict[str, Any]:
    """The Envoys' CPU in one step, per 1000 requests per second through them (summed over
    all listeners: the proxied requests) and per 1000 requests per second of the path."""
    envoys = step.get("envoys", {})
    vcpu = sum(e["vcpu"] for e in envoys.values())
    proxied = sum(e["rps"] for e in envoys.values())
    achieved = step.get("achieved_rps", 0.0)
    return {
        "rate": step["rate"],
        "achieved_rps": achieved,
        "envoys": len(envoys),
        "envoys_vcpu": vcpu,
        "proxied_rps": proxied,
        "vcpu_per_1000_proxied_rps": vcpu / (proxied / 1000) if proxied else None,
        "vcpu_per_1000_path_rps": vcpu / (achieved / 1000) if achieved else None,
        "apps_vcpu": step["vcpu_groups"]["apps"],
        "client_vcpu": step["vcpu_groups"]["client"],
        "sustained": not step["failed_because"],
    }


def reference_step(results: dict[str, Any], path: str, stack: str = "mesh") -> dict | None:
    """The step whose per-sidecar figures are shown: the highest rate the stack sustained
    (most requests, so fixed costs weigh least), else its lowest rate."""
    steps = steps_of(results, stack, path)
    good = [s for s in steps if not s["failed_because"]]
    if good:
        return good[-1]
    return steps[0] if steps else None


def sidecars(results: dict[str, Any], path: str, stack: str = "mesh") -> dict[str, Any]:
    """Each Envoy at the reference step: vCPU, requests through it, vCPU per 1000 of them,
    and its memory; with Istio's published figures beside them."""
    step = reference_step(results, path, stack)
    if step is None:
        return {}
    rows = []
    for name, load in sorted(step.get("envoys", {}).items()):
        mem = step.get("memory", {}).get(name, {})
        rows.append(
            {
                "name": name.removeprefix("envoy:"),
                **load,
                "rss_mb": mem.get("rss", 0) / MB,
                "pss_mb": mem.get("pss", 0) / MB,
            }
        )
    per_1000 = [r["vcpu_per_1000_rps"] for r in rows if r["vcpu_per_1000_rps"] is not None]
    return {
        "rate": step["rate"],
        "achieved_rps": step["achieved_rps"],
        "rows": rows,
        "median_vcpu_per_1000_rps": stats.median(per_1000) if per_1000 else None,
        "median_rss_mb": stats.median([r["rss_mb"] for r in rows]) if rows else None,
        "median_pss_mb": stats.median([r["pss_mb"] for r in rows]) if rows else None,
        "all": envoy_cpu(step),
        "istio": {
            "vcpu_per_1000_rps": ISTIO_VCPU_PER_1000_RPS,
            "mb_per_sidecar": ISTIO_MB_PER_SIDECAR,
        },
    }


def tracing_cost(results: dict[str, Any], path: str) -> list[dict[str, Any]]:
    """Tracing at 100% sampling against tracing off, same mesh, same rates."""
    off = {s["rate"]: s for s in steps_of(results, "mesh", path)}
    rows = []
    for on in steps_of(results, "mesh+tracing", path):
        base = off.get(on["rate"])
        if base is None:
            continue
        groups = ("stack", "envoys", "apps", "tracestore")
        rows.append(
            {
                "rate": on["rate"],
                "off": pct(base),
                "on": pct(on),
                "added": stats.added(pct(on), pct(base), 1),
                "vcpu_off": {g: base["vcpu_groups"][g] for g in groups},
                "vcpu_on": {g: on["vcpu_groups"][g] for g in groups},
                "sustained": {"off": not base["failed_because"], "on": not on["failed_because"]},
            }
        )
    return rows


def memory(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each stack's memory at rest after start-up and after its load, by kind of process."""
    rows = []
    for info in results["stacks"]:
        idle = info.get("idle", {}).get("memory_groups", {})
        after = info.get("after", {}).get("memory_groups", {})
        rows.append(
            {
                "stack": info["label"],
                "started_s": info.get("started_s"),
                "processes": info.get("processes"),
                "idle_rss_mb": idle.get("total", {}).get("rss", 0) / MB,
                "idle_pss_mb": idle.get("total", {}).get("pss", 0) / MB,
                "after_rss_mb": after.get("total", {}).get("rss", 0) / MB,
                "after_pss_mb": after.get("total", {}).get("pss", 0) / MB,
                "groups_idle": {
                    g: {"rss_mb": v["rss"] / MB, "pss_mb": v["pss"] / MB, "count": v["count"]}
                    for g, v in idle.items()
                    if g != "total"
                },
                "idle_vcpu": info.get("idle", {}).get("vcpu_groups", {}).get("stack"),
                "speed_probe_ms": info.get("speed_probe_ms"),
            }
        )
    return rows


def speed_spread(results: dict[str, Any]) -> float | None:
    """How much slower the slowest stack's speed probe was than the fastest's (0.1 = 10%)."""
    probes = [s["speed_probe_ms"] for s in results["stacks"] if s.get("speed_probe_ms")]
    if len(probes) < 2:
        return None
    return max(probes) / min(probes) - 1


def client_cost(results: dict[str, Any]) -> dict[str, Any]:
    steps = results["steps"]
    if not steps:
        return {}
    worst = max(steps, key=lambda s: s["vcpu_groups"]["client"])
    lags = [s["send_lag_ms"].get("p99", 0.0) for s in steps if s["send_lag_ms"].get("count")]
    return {
        "max_vcpu": worst["vcpu_groups"]["client"],
        "at": f"{worst['stack']} {worst['path']} {worst['rate']:g}/s",
        "per_1000_rps": [
            s["vcpu_groups"]["client"] / (s["achieved_rps"] / 1000)
            for s in steps
            if s["path"] == "one-hop" and s["achieved_rps"]
        ],
        "max_send_lag_p99_ms": max(lags) if lags else None,
    }


def disturbed(steps: list[dict[str, Any]], limit: float = FOREIGN_VCPU_LIMIT) -> list[dict]:
    return [
        {"stack": s["stack"], "path": s["path"], "rate": s["rate"], "foreign_vcpu": f}
        for s in steps
        if (f := s["vcpu_groups"].get("foreign")) is not None and f > limit
    ]


def tuning(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Per variant, path and rate: the median over repeats (and the spread) of the latency
    percentiles and the CPU, and the change of the medians against ``baseline``."""
    cells: dict[tuple[str, str, float], list[dict[str, Any]]] = defaultdict(list)
    order: list[str] = []
    for step in results["steps"]:
        variant = step.get("variant")
        if not variant:
            continue
        if variant not in order:
            order.append(variant)
        cells[(variant, step["path"], step["rate"])].append(step)
    rows = []
    for (variant, path, rate), steps in cells.items():
        row: dict[str, Any] = {
            "variant": variant,
            "path": path,
            "rate": rate,
            "repeats": len(steps),
            "sustained": sum(not s["failed_because"] for s in steps),
        }
        for key in ("p50", "p90", "p99"):
            values = [s["latency_ms"].get(key, math.nan) for s in steps]
            row[key] = stats.median(values)
            row[f"{key}_range"] = [min(values), max(values)]
        for key, read in (
            ("stack_vcpu", lambda s: s["vcpu_groups"]["stack"]),
            ("envoys_vcpu", lambda s: s["vcpu_groups"]["envoys"]),
            ("tracestore_vcpu", lambda s: s["vcpu_groups"]["tracestore"]),
            ("client_vcpu", lambda s: s["vcpu_groups"]["client"]),
        ):
            values = [read(s) for s in steps]
            row[key] = stats.median(values)
            row[f"{key}_range"] = [min(values), max(values)]
        rows.append(row)
    base = {(r["path"], r["rate"]): r for r in rows if r["variant"] == "baseline"}
    for row in rows:
        ref = base.get((row["path"], row["rate"]))
        if ref is not None and row["variant"] != "baseline":
            row["vs_baseline"] = {
                k: row[k] - ref[k] for k in ("p50", "p90", "p99", "stack_vcpu", "envoys_vcpu")
            }
    rows.sort(key=lambda r: (r["path"], r["rate"], order.index(r["variant"])))
    return rows


def variants(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Per tuning variant, what its stacks show beyond the steps: each Envoy's memory after the
    load, and the connections the Envoys opened between each other (per 1000 requests they
    sent upstream), which shows whether connection reuse and HTTP/2 took effect."""
    by_variant: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for info in results["stacks"]:
        if info.get("variant"):
            by_variant[info["variant"]].append(info)
    rows = []
    for variant, infos in by_variant.items():
        rss = [
            m["rss"] / MB
            for info in infos
            for name, m in info.get("after", {}).get("memory", {}).items()
            if name.startswith("envoy:") and "rss" in m
        ]
        pss = [
            m["pss"] / MB
            for info in infos
            for name, m in info.get("after", {}).get("memory", {}).items()
            if name.startswith("envoy:") and "pss" in m
        ]
        conns = [info["envoy_connections"] for info in infos if info.get("envoy_connections")]
        sent = sum(c.get("upstream_rq_total", 0) for c in conns)

        def per_1000(key: str, conns: list[dict[str, int]] = conns, sent: int = sent) -> float:
            return 1000 * sum(c.get(key, 0) for c in conns) / sent if sent else math.nan

        rows.append(
            {
                "variant": variant,
                "stacks": len(infos),
                "envoy_rss_mb": stats.median(rss) if rss else None,
                "envoy_pss_mb": stats.median(pss) if pss else None,
                "envoys_rss_mb": stats.median(
                    [
                        i.get("after", {}).get("memory_groups", {}).get("envoys", {}).get("rss", 0)
                        / MB
                        for i in infos
                    ]
                ),
                "connections_per_1000_rq": per_1000("upstream_cx_total"),
                "http2_connections_per_1000_rq": per_1000("upstream_cx_http2_total"),
                "tls_handshakes_per_1000_rq": per_1000("tls_handshakes"),
                "started_s": stats.median([i.get("started_s") or math.nan for i in infos]),
                "speed_probe_ms": [i.get("speed_probe_ms") for i in infos],
            }
        )
    return rows


def summarize(results: dict[str, Any]) -> dict[str, Any]:
    paths = list(dict.fromkeys(s["path"] for s in results["steps"]))
    summary: dict[str, Any] = {
        "paths": paths,
        "hops": {p: hops_of(results, p) for p in paths},
        "compare": {p: compare(results, p) for p in paths},
        "max_sustained": {p: max_rates(results, p) for p in paths},
        "p99_bound_ms": results["plan"]["p99_bound_ms"],
        "envoy_cpu": {p: [envoy_cpu(s) for s in steps_of(results, "mesh", p)] for p in paths},
        "sidecars": {p: sidecars(results, p) for p in paths},
        "tracing": {p: tracing_cost(results, p) for p in paths},
        "memory": memory(results),
        "client": client_cost(results),
        "disturbed": disturbed(
            results["steps"], results["plan"].get("foreign_limit", FOREIGN_VCPU_LIMIT)
        ),
        "redone_after_disturbance": len(results.get("disturbed_steps", [])),
        "speed_spread": speed_spread(results),
    }
    if results.get("kind_of_run") == "tuning":
        summary["tuning"] = tuning(results)
        summary["variants"] = variants(results)
    return summary
