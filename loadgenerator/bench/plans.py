"""What a benchmark run does: the plan (rates, durations, bounds) and the stacks it starts.

A stack is the local shop with the mesh or without, tracing on or off, and the tuning knobs;
its work is a list of paths, each at a list of rates, run as a ladder (stopping at the first
rate not sustained) or as fixed rates.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from mesh import topology as topo

from . import stats
from .tuning import Knobs

STEP_OVERHEAD_S = 2.0  # starting the client, filling carts, draining: for estimates only
STACK_OVERHEAD_S = 20.0  # start, idle window, users: for estimates only
# The cost stacks (issue 15): the shop as `boutique up` runs it, and the same with tracing off.
COST_ON, COST_OFF = "up", "up-untraced"
# ``--cost`` runs them this many times, interleaved (on#1 off#1 on#2 off#2 ...), and judges the
# targets on the medians: one sample of a path's stack CPU is good to about +-0.3 CPU-ms on this
# machine, and tracing's share is the difference of two such samples.
COST_REPEATS = 3
# Fixed rates well below the knee (the mesh with tracing sustained one-hop at 100/s and checkout
# at 11/s, with p99 under its bound, before issue 15): high enough that the stack's CPU at rest
# weighs little per request, low enough to leave the shared 2 cores room. Kept fixed, so that
# every cost run compares with every other.
COST_RATES = {"browse": [100.0], "one-hop": [100.0], "checkout": [10.0]}
P99_BOUNDS = {"browse": 100.0, "one-hop": 100.0, "checkout": 1000.0}


@dataclass
class Plan:
    name: str
    rates: dict[str, list[float]]  # the ladder of each path (same for mesh and no-mesh)
    tracing_rates: dict[str, list[float]]  # fixed rates for tracing on vs off
    tuning_rates: dict[str, list[float]]  # fixed rates for the tuning experiments
    duration_s: float  # each step's measured window
    warmup_s: float
    users: int  # signed-in users for the checkout path
    p99_bound_ms: dict[str, float]
    paths: list[str] = field(default_factory=lambda: ["one-hop", "checkout"])
    modes: list[str] = field(default_factory=lambda: ["no-mesh", "mesh"])
    tracing_cost: bool = True
    max_inflight: int = 256
    idle_s: float = 3.0  # the idle window after start-up (CPU and memory at rest)
    timeout_s: float = 30.0
    foreign_limit: float = 0.2  # vCPU other processes may use during a step before it is redone
    disturbed_retries: int = 2
    refine: int = 0  # extra steps between a ladder's last good rate and its first failure
    # every service runs one instance with the mesh too, as without it (``--no-mesh`` runs one
    # of each), so the two stacks differ only by the mesh
    one_replica: bool = True
    # the cost stacks' fixed rates (``boutique bench --cost``, and the end of the full run)
    cost_rates: dict[str, list[float]] = field(default_factory=dict)
    cost_repeats: int = 1  # how many times the cost stacks run, interleaved


def quick_plan() -> Plan:
    """A minute or two: three rates a path, short steps, a small pool of users."""
    return Plan(
        name="quick",
        rates={"one-hop": [50.0, 100.0, 200.0], "checkout": [5.0, 10.0]},
        tracing_rates={"one-hop": [50.0], "checkout": [5.0]},
        tuning_rates={"one-hop": [100.0], "checkout": [5.0]},
        duration_s=4.0,
        warmup_s=1.0,
        users=12,
        p99_bound_ms=dict(P99_BOUNDS),
        idle_s=2.0,
    )


def full_plan() -> Plan:
    """The full run (10 to 15 minutes on 2 cores): finer ladders, longer steps."""
    return Plan(
        name="full",
        rates={
            "one-hop": stats.ladder(25, 800, 2**0.5),
            "checkout": stats.ladder(2, 64, 2**0.5),
        },
        tracing_rates={"one-hop": [50.0, 100.0], "checkout": [5.7, 11.0]},
        tuning_rates={"one-hop": [100.0, 200.0], "checkout": [11.0]},
        duration_s=10.0,
        warmup_s=2.0,
        users=32,
        p99_bound_ms=dict(P99_BOUNDS),
        refine=1,
        cost_rates=_cost_rates(),
    )


def _cost_rates() -> dict[str, list[float]]:
    return {p: list(r) for p, r in COST_RATES.items()}


def cost_plan() -> Plan:
    """``boutique bench --cost``: 7 to 10 minutes; the cost stacks only, each path at its fixed
    rate for 15 s after a 3 s warm-up, the pair of stacks ``COST_REPEATS`` times. A step is not
    redone when other processes were busy meanwhile: CPU time per request is little disturbed by
    them (the report shows their vCPU)."""
    return Plan(
        name="cost",
        rates=_cost_rates(),
        tracing_rates={},
        tuning_rates={},
        duration_s=15.0,
        warmup_s=3.0,
        users=12,
        p99_bound_ms=dict(P99_BOUNDS),
        paths=list(COST_RATES),
        modes=[],
        tracing_cost=True,
        idle_s=2.0,
        disturbed_retries=0,
        one_replica=False,
        cost_rates=_cost_rates(),
        cost_repeats=COST_REPEATS,
    )


@dataclass
class StepPlan:
    path: str
    rate: float
    duration_s: float
    warmup_s: float


def smallest_step(plan: Plan) -> StepPlan:
    """The quick mode's smallest step: one-hop at its lowest rate for two seconds."""
    return StepPlan("one-hop", min(plan.rates["one-hop"]), 2.0, 0.5)


def smallest_plan() -> Plan:
    """A plan of only the quick mode's smallest step (shows the harness works, in seconds)."""
    plan = quick_plan()
    step = smallest_step(plan)
    plan.name = "smallest"
    plan.paths = [step.path]
    plan.rates = {step.path: [step.rate]}
    plan.duration_s, plan.warmup_s = step.duration_s, step.warmup_s
    plan.idle_s = 0.5
    plan.tracing_cost = False
    return plan


def one_replica(topology: topo.Topology) -> topo.Topology:
    """The topology with one instance of every service."""
    services = {n: dataclasses.replace(s, replicas=1) for n, s in topology.services.items()}
    return dataclasses.replace(topology, services=services)


class Work(NamedTuple):
    """One path of a stack: its rates, as a ladder or as fixed rates."""

    path: str
    rates: list[float]
    ladder: bool


@dataclass
class StackSpec:
    label: str
    mesh: bool
    tracing: bool
    knobs: Knobs = field(default_factory=Knobs)
    work: list[Work] = field(default_factory=list)
    variant: str | None = None
    repeat: int | None = None
    topology_replicas: bool = False  # the topology's replicas even when the plan runs one


def estimate_s(plan: Plan, stacks: list[StackSpec]) -> float:
    """An upper bound of the run's length (ladders usually stop earlier)."""
    per_step = plan.warmup_s + plan.duration_s + STEP_OVERHEAD_S
    work = [w for s in stacks for w in s.work]
    steps = sum(len(w.rates) + (plan.refine if w.ladder else 0) for w in work)
    return len(stacks) * (STACK_OVERHEAD_S + plan.idle_s) + steps * per_step


def bench_stacks(plan: Plan, knobs: Knobs) -> list[StackSpec]:
    """The stacks of ``boutique bench``: without the mesh, with it, and with it and tracing on
    (each with tracing off unless said), same rates for all."""
    ladders = [Work(p, plan.rates[p], True) for p in plan.paths]
    stacks = []
    if "no-mesh" in plan.modes:
        stacks.append(StackSpec("no-mesh", mesh=False, tracing=False, knobs=knobs, work=ladders))
    if "mesh" in plan.modes:
        stacks.append(StackSpec("mesh", mesh=True, tracing=False, knobs=knobs, work=ladders))
        if plan.tracing_cost:
            fixed = [Work(p, plan.tracing_rates[p], False) for p in plan.paths]
            stacks.append(
                StackSpec("mesh+tracing", mesh=True, tracing=True, knobs=knobs, work=fixed)
            )
    return stacks + cost_stacks(plan, knobs)


def cost_stacks(plan: Plan, knobs: Knobs) -> list[StackSpec]:
    """The shop as `boutique up` runs it (mesh, mTLS, tracing at 100%, the topology's replicas)
    and the same with tracing off, each path at its fixed cost rate (none without cost rates).
    With ``plan.cost_repeats`` over 1 the pair runs that many times, interleaved (``up#1``,
    ``up-untraced#1``, ``up#2`` ...), so that a slow drift of the machine spreads over both."""
    work = [Work(p, rates, False) for p, rates in plan.cost_rates.items() if rates]
    if not work:
        return []
    kinds = [(COST_ON, True), (COST_OFF, False)] if plan.tracing_cost else [(COST_ON, True)]
    repeats = max(1, plan.cost_repeats)
    stacks = []
    for r in range(1, repeats + 1):
        for label, tracing in kinds:
            stacks.append(
                StackSpec(
                    label if repeats == 1 else f"{label}#{r}",
                    True,
                    tracing,
                    knobs,
                    list(work),
                    repeat=r if repeats > 1 else None,
                    topology_replicas=True,
                )
            )
    return stacks


def base_label(label: str) -> str:
    """A stack's label without its repeat (``up#2`` -> ``up``)."""
    return label.partition("#")[0]


# The tuning experiments: each a variant of the mesh (tracing off unless it says otherwise).
BSP_BATCHED = {
    "OTEL_BSP_SCHEDULE_DELAY": "5000",
    "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "2048",
    "OTEL_BSP_MAX_QUEUE_SIZE": "8192",
}
VARIANTS: dict[str, tuple[bool, bool, Callable[[], Knobs]]] = {
    # name: (mesh, tracing, knobs)
    "no-mesh": (False, False, Knobs),
    "baseline": (True, False, Knobs),
    "envoy-concurrency-2": (True, False, lambda: Knobs(envoy_concurrency=2)),
    "client-keepalive-off": (True, False, lambda: Knobs(keepalive=False)),
    "sidecar-http2": (True, False, lambda: Knobs(sidecar_http2=True)),
    "sidecar-no-pool": (True, False, lambda: Knobs(sidecar_pool=False)),
    "no-access-log": (True, False, lambda: Knobs(access_log=False)),
    "tracing": (True, True, Knobs),
    "tracing-envoy-batched": (True, True, lambda: Knobs(envoy_min_flush_spans=256)),
    "tracing-bsp-batched": (True, True, lambda: Knobs(env=dict(BSP_BATCHED))),
}


def tuning_stacks(plan: Plan, variants: list[str], repeats: int) -> list[StackSpec]:
    """Every variant at the plan's tuning rates, repeated; repeats interleave (A B C A B C) so
    a slow drift of the machine spreads over all variants instead of landing on one."""
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown tuning variant(s) {unknown}; known: {', '.join(VARIANTS)}")
    stacks = []
    for r in range(1, repeats + 1):
        for name in variants:
            mesh, tracing, knobs = VARIANTS[name]
            work = [Work(p, plan.tuning_rates[p], False) for p in plan.paths]
            label = name if repeats == 1 else f"{name}#{r}"
            stacks.append(
                StackSpec(label, mesh, tracing, knobs(), work=work, variant=name, repeat=r)
            )
    return stacks
