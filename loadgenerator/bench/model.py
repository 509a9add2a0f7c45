"""What a benchmark run measured, as types: the shape of ``results.json`` (less its summary).

``Results`` holds the plan, the machine, each stack (``StackInfo``: start-up, rest, hops,
connections) and each step (``Step``: what the load client measured, ``LoadResult``, and what the
runner added). :func:`read` reads a ``results.json`` back strictly (see ``codec``); files written
before these types existed read the same.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from . import codec
from .plans import Plan

# Maps keyed by names the run chooses (processes, percentiles, listeners) stay maps, typed:
Percentiles = dict[str, float]  # count, min, mean, p50 ... p99.9, max (``stats.summarize``), ms
ByProcess = dict[str, float]  # vCPU or CPU seconds by process name (``envoy:cart-0``, ``client``)
Memory = dict[str, int]  # one process's ``rss``, ``hwm``, ``pss`` in bytes (``procstat.memory``)
KnobValue = int | float | bool | str | dict[str, str] | None
Knobs = dict[str, KnobValue]  # the knobs that differ from the shipped defaults


@dataclass(kw_only=True)
class VcpuGroups:
    """vCPU by kind of process; ``stack`` is all but the client, ``foreign`` what other processes
    on the machine used meanwhile (None where the machine's busy time could not be read)."""

    envoys: float = 0.0
    apps: float = 0.0
    redis: float = 0.0
    tracestore: float = 0.0
    client: float = 0.0
    stack: float = 0.0
    foreign: float | None = None


@dataclass(kw_only=True)
class MemoryGroup:
    rss: int = 0
    pss: int = 0
    count: int = 0


@dataclass(kw_only=True)
class EnvoyLoad:
    """One Envoy in one step: its vCPU, requests per second through it (all its listeners), and
    vCPU per 1000 of those (Istio's unit)."""

    vcpu: float
    rps: float
    vcpu_per_1000_rps: float | None


@dataclass(kw_only=True)
class LoadResult:
    """What the load client measured in one step (``loadgen.run``)."""

    path: str
    rate: float
    duration_s: float
    warmup_s: float
    keepalive: bool = True
    max_inflight: int = 256
    window_s: float
    scheduled: int
    sent: int
    ok: int
    dropped: int
    errors: dict[str, int] = field(default_factory=dict)
    errors_total: int
    achieved_rps: float
    latency_ms: Percentiles
    send_lag_ms: Percentiles = field(default_factory=dict)
    cpu_s: ByProcess = field(default_factory=dict)
    vcpu: ByProcess = field(default_factory=dict)
    system_vcpu: float | None = None
    envoy_requests: dict[str, dict[str, int]] = field(default_factory=dict)
    prepare_s: float = 0.0
    error_samples: list[str] = field(default_factory=list)
    refills: int = 0  # checkout: carts refilled after a checkout
    refill_errors: int = 0
    waited_for_user: int = 0  # checkouts due while no user had a full cart
    client_runtime_s: float | None = None


@dataclass(kw_only=True)
class Step(LoadResult):
    """One step as the report reads it: the load client's numbers and the stack's."""

    stack: str
    mesh: bool
    tracing: bool = False
    knobs: Knobs = field(default_factory=dict)
    vcpu_groups: VcpuGroups
    envoys: dict[str, EnvoyLoad] = field(default_factory=dict)
    memory: dict[str, Memory] = field(default_factory=dict)
    p99_bound_ms: float | None = None
    failed_because: str | None = None
    variant: str | None = None
    repeat: int | None = None
    profiles: list[str] = field(default_factory=list)  # flame graphs (SVG) of this step

    def percentiles(self) -> dict[str, float]:
        """p50, p90 and p99 (those measured)."""
        return {k: self.latency_ms[k] for k in ("p50", "p90", "p99") if k in self.latency_ms}


@dataclass(kw_only=True)
class Hops:
    """How often one request of a path passes through Envoy (``probes.count_hops``)."""

    hops: float = 0.0
    proxy_traversals: float = 0.0
    per_envoy: dict[str, dict[str, float]] = field(default_factory=dict)


@dataclass(kw_only=True)
class Idle:
    """A stack at rest after start-up."""

    window_s: float = 0.0
    vcpu: ByProcess = field(default_factory=dict)
    vcpu_groups: VcpuGroups = field(default_factory=VcpuGroups)
    memory: dict[str, Memory] = field(default_factory=dict)
    memory_groups: dict[str, MemoryGroup] = field(default_factory=dict)


@dataclass(kw_only=True)
class AfterLoad:
    memory: dict[str, Memory] = field(default_factory=dict)
    memory_groups: dict[str, MemoryGroup] = field(default_factory=dict)


@dataclass(kw_only=True)
class StackInfo:
    """One stack: how it started, at rest, the hops of its paths, and after its load."""

    label: str
    mesh: bool = True
    tracing: bool = False
    knobs: Knobs = field(default_factory=dict)
    variant: str | None = None
    repeat: int | None = None
    started_s: float | None = None
    processes: int = 0
    idle: Idle = field(default_factory=Idle)
    users: int | None = None
    users_s: float | None = None
    hops: dict[str, Hops] = field(default_factory=dict)
    after: AfterLoad = field(default_factory=AfterLoad)
    envoy_connections: dict[str, int] | None = None
    speed_probe_ms: float | None = None


@dataclass(kw_only=True)
class Machine:
    """What machine the numbers come from (``machine.describe``)."""

    cores: int | None = None
    memory_bytes: int | None = None
    cpu_model: str | None = None
    kernel: str | None = None
    os: str | None = None
    python: str | None = None
    python_implementation: str | None = None
    envoy: str | None = None
    redis: str | None = None
    aiohttp: str | None = None
    opentelemetry_sdk: str | None = None
    git_commit: str | None = None
    load_average_at_start: list[float] | None = None
    executable: str | None = None


@dataclass(kw_only=True)
class Results:
    kind: str = "boutique-bench"
    format: int = 1
    kind_of_run: str = "bench"  # or "tuning", "cost"
    started_at: str
    finished_at: str | None = None
    plan: Plan
    machine: Machine = field(default_factory=Machine)
    stacks: list[StackInfo] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    disturbed_steps: list[Step] = field(default_factory=list)  # redone; kept apart
    merged_from: list[str] | None = None  # the runs ``--report-from`` merged, by start time

    @property
    def tuning(self) -> bool:
        return self.kind_of_run == "tuning"

    @property
    def cost_only(self) -> bool:
        return self.kind_of_run == "cost"

    def paths(self) -> list[str]:
        return list(dict.fromkeys(s.path for s in self.steps))


def parse(data: object, where: str = "results.json") -> Results:
    """Parsed JSON as ``Results``; a written file's ``summary`` is derived again, not read."""
    if isinstance(data, dict):
        data = {k: v for k, v in data.items() if k != "summary"}
    return codec.load(Results, data, where)


def read(path: Path) -> Results:
    """A ``results.json`` (or the folder holding one), strictly."""
    file = path / "results.json" if path.is_dir() else path
    return parse(json.loads(file.read_text()), str(file))
