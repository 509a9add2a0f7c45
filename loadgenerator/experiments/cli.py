"""``boutique experiment run NAME``: pick the target, run, report, and answer the exit status."""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mesh import topology as topo
from mesh.experiments import spec
from mesh.experiments.targets import local_proxies
from mesh.local import LocalOptions, LocalRun
from mesh.ports import PortPlan

from . import report, runner
from .runner import Target


def own_mesh(topology: topo.Topology, results: Path) -> Target:
    """A fresh local mesh on free ports, in a temporary folder removed when it stops (its
    traces are kept in ``results/traces.db``: ``boutique tracestore --db`` serves them)."""
    run_dir = Path(tempfile.mkdtemp(prefix="boutique-exp-"))
    options = LocalOptions.planned(PortPlan.free(topology), run_dir)
    local = LocalRun(topology, options)
    try:
        local.start()
    except BaseException:
        shutil.rmtree(run_dir, ignore_errors=True)
        raise

    def stop() -> None:
        local.stop()
        if (run_dir / "traces.db").exists():
            results.mkdir(parents=True, exist_ok=True)
            shutil.copy(run_dir / "traces.db", results / "traces.db")
        shutil.rmtree(run_dir, ignore_errors=True)

    return Target(
        "local",
        local.public_url,
        list(local_proxies(local)),
        traces_url=local.traces_url,
        data_dir=local.run_dir / "data",
        how=f"its own mesh on free ports, started in {local.started_s or 0:.0f} s",
        stop=stop,
    )


def attached(local: LocalRun, proxies: list[Any]) -> Target:
    return Target(
        "local",
        local.public_url,
        proxies,
        traces_url=local.traces_url,
        data_dir=local.run_dir / "data",
        how=f"the running mesh at {local.public_url}",
    )


def _progress() -> Callable[[str], None]:
    tty = sys.stderr.isatty()
    last = [0.0]

    def show(line: str) -> None:
        if tty:
            print(f"\r{line:<100}", end="", file=sys.stderr, flush=True)
        elif time.monotonic() - last[0] >= 10:
            last[0] = time.monotonic()
            print(line, file=sys.stderr, flush=True)

    return show


def compose_target(stack: Any, proxies: list[Any]) -> Target:
    """The compose stack: its published ports; its books are in volumes, not read here."""
    return Target(
        "compose",
        stack.url(),
        proxies,
        traces_url=stack.url("BOUTIQUE_JAEGER_PORT"),
        how=f"the compose stack {stack.project} at {stack.url()}",
    )


def run_experiment(
    args: argparse.Namespace, attach: Callable[..., Any], compose: Callable[..., Any]
) -> int:
    topology = topo.load(args.topology)
    exp = spec.load(args.name, topology)
    results = Path(args.results or f"results/experiment-{exp.name}-{time.strftime('%H%M%S')}")
    target = compose_target(*compose(args)) if args.target == "compose" else None
    if target is None and not args.own_mesh:
        try:
            target = attached(*attach(args))
        except RuntimeError:
            target = None
    if target is None:
        print("no mesh runs here: starting one of its own on free ports...", file=sys.stderr)
        target = own_mesh(topology, results)
    print(f"{exp.name}: {exp.fault_text()}; {exp.duration_s:g} s on {target.how}", flush=True)
    try:
        outcome = runner.run(exp, target, results, _progress())
    except (KeyboardInterrupt, runner.Stopped):
        print("\nstopped: the fault is switched off, the shoppers stopped.", file=sys.stderr)
        return 130
    finally:
        target.stop()
    print(file=sys.stderr)
    paths = report.write(outcome)
    print(summary(outcome))
    print(f"\nreport: {paths['md']} (and {paths['html'].name}, {paths['chart'].name}, "
          f"{paths['json'].name})")  # fmt: skip
    return 0 if outcome.held else 1


def summary(o: runner.Outcome) -> str:
    exp = o.experiment
    expectation = "as expected" if o.verdict == exp.expected else f"expected {exp.expected}"
    lines = [f"\nverdict: {o.verdict.upper()} ({expectation})"]
    for v in o.verdicts:
        lines.append(f"  {'held  ' if v.held else 'BROKEN'}  {v.text:<48} measured {v.shown}")
    for t in o.traces[:3]:
        lines.append(f"  trace {t['trace_id']} ({t['flag']} at {t['span']}, {t['status']})")
    return "\n".join(lines)
