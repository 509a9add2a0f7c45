"""Runs the floor: each layer's stacks (one per shape) one after the other, each path at its
fixed rate with the bench's own load client (``steps.run_step``), and CPU-ms per request by
group exactly as ``--cost`` counts it (``cost.cpu_ms_per_request``: ``utime + stime`` from
``/proc`` over the measured window / requests answered). Redis, which ``LocalRun`` starts and
nothing here uses, is left out of the count."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from itertools import product
from pathlib import Path

from mesh import topology as topo
from mesh.processes import StartError
from services.products.catalog import load_catalog

from .cost import cpu_ms_per_request
from .floor import LAYERS, SHAPES, FloorRun, floor_topology
from .progress import Progress
from .runner import utc_now
from .stack import Target, check_alive, stack_options
from .steps import StepSettings, run_step
from .tuning import Knobs

# What each shape runs: the shop's cost rate (100/s) on both paths, and the checkout's (10/s)
# where one call is measured (``one`` less ``edge``).
WORK: dict[str, list[tuple[str, float]]] = {
    "two": [("browse", 100.0), ("one-hop", 100.0)],
    "one": [("browse", 100.0), ("one-hop", 100.0), ("one-hop", 10.0)],
    "edge": [("one-hop", 100.0), ("one-hop", 10.0)],
}
LEFT_OUT = ("redis",)


@dataclass
class FloorPlan:
    layers: list[str] = field(default_factory=lambda: list(LAYERS))
    shapes: list[str] = field(default_factory=lambda: list(SHAPES))
    work: dict[str, list[tuple[str, float]]] = field(default_factory=lambda: dict(WORK))
    duration_s: float = 10.0  # each window at least this long, and
    min_requests: int = 300  # long enough for this many requests (CPU ticks are 10 ms)
    warmup_s: float = 2.0
    repeats: int = 1  # the layers run again in turn (A B C D A B C D); the report takes medians

    def window_s(self, rate: float) -> float:
        return max(self.duration_s, self.min_requests / rate)

    def estimate_s(self) -> float:
        steps = sum(
            self.warmup_s + self.window_s(r) + 3 for s in self.shapes for _, r in self.work[s]
        )
        return self.repeats * len(self.layers) * (len(self.shapes) * 15 + steps)


@dataclass
class FloorRow:
    layer: str
    shape: str
    path: str
    rate: float
    requests: int
    errors: int
    cpu_ms: dict[str, float]  # by group (envoys, gateway, products, tracestore), stack, client
    p50_ms: float | None
    p99_ms: float | None
    foreign_vcpu: float | None  # what other processes used meanwhile
    repeat: int = 1


@dataclass
class FloorResults:
    started_at: str
    plan: FloorPlan
    rows: list[FloorRow] = field(default_factory=list)
    load_average: list[float] = field(default_factory=list)  # 1-minute, at each stack's start
    finished_at: str = ""
    error: str = ""  # why the run stopped early (what was measured before is kept)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)


def product_ids() -> list[str]:
    return [e.id for e in load_catalog()]


def start(full: topo.Topology, layer: str, shape: str, run_dir: Path) -> FloorRun:
    """The floor stack of ``layer`` and ``shape``, on free ports (again on others if it fails)."""
    topology = floor_topology(full, shape)
    for attempt in (1, 2):
        options = stack_options(run_dir, True, layer == "traced", Knobs(), topology)
        run = FloorRun(topology, options, layer, shape)
        try:
            run.start()
            check_alive(run)
            return run
        except (StartError, RuntimeError):
            run.stop()
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def measure(run: FloorRun, plan: FloorPlan, ids: list[str], progress: Progress) -> list[FloorRow]:
    target = Target.of(run, f"{run.layer}/{run.shape}")
    for name in LEFT_OUT:
        target.pids.pop(name, None)
    rows = []
    for path, rate in plan.work[run.shape]:
        settings = StepSettings(duration_s=plan.window_s(rate), warmup_s=plan.warmup_s)
        step = run_step(target, path, rate, settings, ids, progress=progress)
        check_alive(run)
        rows.append(
            FloorRow(
                layer=run.layer,
                shape=run.shape,
                path=path,
                rate=rate,
                requests=step.ok,
                errors=step.errors_total,
                cpu_ms=cpu_ms_per_request(step.cpu_s, step.ok),
                p50_ms=step.latency_ms.get("p50"),
                p99_ms=step.latency_ms.get("p99"),
                foreign_vcpu=step.vcpu_groups.foreign,
            )
        )
    return rows


def run_floor(
    plan: FloorPlan, topology_path: Path, progress: Progress, keep: bool = False
) -> FloorResults:
    """Every layer, every shape; a stack that fails ends the run, with what was measured kept
    and the failure in ``error``."""
    full = topo.load(topology_path)
    ids = product_ids()
    results = FloorResults(started_at=utc_now(), plan=plan)
    try:
        for repeat, layer, shape in product(range(1, plan.repeats + 1), plan.layers, plan.shapes):
            results.load_average.append(round(os.getloadavg()[0], 2))
            progress.line(f"floor: {layer}/{shape} starting (repeat {repeat})")
            run_dir = Path(tempfile.mkdtemp(prefix="boutique-floor-"))
            run = start(full, layer, shape, run_dir)
            try:
                time.sleep(1.0)  # the start-up's work settles before the first window
                for row in measure(run, plan, ids, progress):
                    row.repeat = repeat
                    results.rows.append(row)
            finally:
                run.stop()
                if not keep:
                    shutil.rmtree(run_dir, ignore_errors=True)
    except (StartError, RuntimeError) as exc:
        results.error = str(exc)
    results.finished_at = utc_now()
    return results
