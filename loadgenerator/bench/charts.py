"""PNG charts of latency (p50, p99) and CPU against rate, mesh and no mesh, per path."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from .analysis import steps_of
from .model import Results

STYLES = {"no-mesh": "tab:blue", "mesh": "tab:orange", "mesh+tracing": "tab:green"}


def draw_charts(results: Results, out: Path) -> dict[str, str]:
    """The charts written to ``out``, by name; empty when matplotlib is missing (the report
    says so)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return {}
    charts = {}
    for path in results.paths():
        if _latency(plt, results, path, out / f"latency-{path}.png"):
            charts[f"latency-{path}"] = f"latency-{path}.png"
        else:
            continue
        if _cpu(plt, results, path, out / f"cpu-{path}.png"):
            charts[f"cpu-{path}"] = f"cpu-{path}.png"
    return charts


def _latency(plt: Any, results: Results, path: str, file: Path) -> bool:
    import matplotlib.ticker

    fig, ax = plt.subplots(figsize=(7, 4.2))
    drawn = False
    for stack, color in STYLES.items():
        steps = [s for s in steps_of(results, stack, path) if s.latency_ms]
        if not steps:
            continue
        drawn = True
        x = [s.rate for s in steps]
        for key, style in (("p50", "-"), ("p99", "--")):
            y = [s.latency_ms.get(key, math.nan) for s in steps]
            ax.plot(x, y, style, color=color, marker="o", ms=3, label=f"{stack} {key}")
        bad = [s for s in steps if s.failed_because]
        if bad:
            y = [s.latency_ms.get("p99", math.nan) for s in bad]
            ax.plot([s.rate for s in bad], y, "x", color=color, ms=9)
    if not drawn:
        plt.close(fig)
        return False
    bounds = results.plan.p99_bound_ms
    if path in bounds:
        ax.axhline(bounds[path], color="grey", lw=0.8, ls=":", label="p99 bound")
    ax.set_xscale("log", base=2)
    rates = sorted({s.rate for s in results.steps if s.path == path})
    ax.set_xticks(rates, [f"{r:g}" for r in rates], fontsize=7)
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.set_yscale("log")
    ax.set_xlabel("target rate (requests/s)")
    ax.set_ylabel("latency (ms)")
    ax.set_title(f"{path}: latency against rate (x = not sustained)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(file, dpi=110)
    plt.close(fig)
    return True


def _cpu(plt: Any, results: Results, path: str, file: Path) -> bool:
    if not any(steps_of(results, stack, path) for stack in ("no-mesh", "mesh")):
        return False
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for stack in ("no-mesh", "mesh"):
        steps = steps_of(results, stack, path)
        if not steps:
            continue
        x = [s.achieved_rps for s in steps]
        color = STYLES[stack]
        y = [s.vcpu_groups.stack for s in steps]
        ax.plot(x, y, "-o", ms=3, color=color, label=f"{stack}: whole stack")
        if stack == "mesh":
            y = [s.vcpu_groups.envoys for s in steps]
            ax.plot(x, y, ":o", ms=3, color=color, label="mesh: Envoys")
    ax.set_xlabel("answered requests/s")
    ax.set_ylabel("vCPU")
    ax.set_title(f"{path}: CPU against rate")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(file, dpi=110)
    plt.close(fig)
    return True
