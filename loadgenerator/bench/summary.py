"""The figures the report shows, as types: what ``analysis.summarize`` derives from ``Results``.

Written into ``results.json`` beside the raw results for a reader; never read back (the report
of an old file derives them again).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .model import Hops, Percentiles, VcpuGroups
from .stats import MaxSustained

Added = dict[str, float]  # what a side adds: p50, p90, p99 and each ``_per_hop`` (ms)


@dataclass(kw_only=True)
class CompareRow:
    """Mesh against no mesh at one rate both ran."""

    rate: float
    no_mesh: Percentiles
    mesh: Percentiles
    added: Added
    no_mesh_sustained: bool
    mesh_sustained: bool
    no_mesh_vcpu: float
    mesh_vcpu: float


@dataclass(kw_only=True)
class EnvoyCpu:
    """The Envoys' CPU in one step, per 1000 requests per second through them (summed over all
    listeners: the proxied requests) and per 1000 requests per second of the path."""

    rate: float
    achieved_rps: float
    envoys: int
    envoys_vcpu: float
    proxied_rps: float
    vcpu_per_1000_proxied_rps: float | None
    vcpu_per_1000_path_rps: float | None
    apps_vcpu: float
    client_vcpu: float
    sustained: bool


@dataclass(kw_only=True)
class SidecarRow:
    name: str
    vcpu: float
    rps: float
    vcpu_per_1000_rps: float | None
    rss_mb: float
    pss_mb: float


@dataclass(kw_only=True)
class Sidecars:
    """Each Envoy at the reference step, with Istio's published figures beside them."""

    rate: float
    achieved_rps: float
    rows: list[SidecarRow]
    median_vcpu_per_1000_rps: float | None
    median_rss_mb: float | None
    median_pss_mb: float | None
    all: EnvoyCpu
    istio_vcpu_per_1000_rps: float
    istio_mb_per_sidecar: float


@dataclass(kw_only=True)
class TracingRow:
    """Tracing at 100% sampling against tracing off at one rate."""

    rate: float
    off: Percentiles
    on: Percentiles
    added: Added
    vcpu_off: VcpuGroups
    vcpu_on: VcpuGroups
    off_sustained: bool
    on_sustained: bool


@dataclass(kw_only=True)
class GroupMb:
    rss_mb: float
    pss_mb: float
    count: int


@dataclass(kw_only=True)
class MemoryRow:
    """One stack's start-up, and its memory at rest and after its load."""

    stack: str
    started_s: float | None
    processes: int
    idle_rss_mb: float
    idle_pss_mb: float
    after_rss_mb: float
    after_pss_mb: float
    groups_idle: dict[str, GroupMb]
    idle_vcpu: float
    speed_probe_ms: float | None


@dataclass(kw_only=True)
class ClientCost:
    max_vcpu: float
    at: str
    per_1000_rps: list[float]
    max_send_lag_p99_ms: float | None


@dataclass(kw_only=True)
class Disturbed:
    stack: str
    path: str
    rate: float
    foreign_vcpu: float


@dataclass(kw_only=True)
class TuningRow:
    """One variant at one path and rate: medians over its repeats, their ranges, and the change
    of the medians against ``baseline``."""

    variant: str
    path: str
    rate: float
    repeats: int
    sustained: int
    medians: dict[str, float]  # p50, p90, p99, stack_vcpu, envoys_vcpu, ...
    ranges: dict[str, list[float]]  # [min, max] of each
    vs_baseline: dict[str, float] | None = None


@dataclass(kw_only=True)
class VariantRow:
    """One variant's stacks beyond the steps: Envoy memory, start-up, connections."""

    variant: str
    stacks: int
    envoy_rss_mb: float | None
    envoy_pss_mb: float | None
    envoys_rss_mb: float
    connections_per_1000_rq: float
    http2_connections_per_1000_rq: float
    tls_handshakes_per_1000_rq: float
    started_s: float
    speed_probe_ms: list[float | None]


@dataclass(kw_only=True)
class CostRow:
    """One path at its fixed rate on a cost stack: CPU-ms per request by process group. Over
    several repeats: each figure the median of the repeats' (the stack's too, so the groups need
    not add up to it), ``requests`` their sum, ``stack_samples`` each repeat's stack CPU-ms."""

    path: str
    rate: float
    requests: int
    achieved_rps: float
    cpu_ms: dict[str, float]  # by group (each app, envoys, tracestore, redis), stack, client
    processes: dict[str, int]  # how many processes each group has
    sustained: bool
    p50_ms: float | None = None
    p99_ms: float | None = None
    foreign_vcpu: float | None = None
    samples: int = 1  # the repeats it rests on
    stack_samples: list[float] = field(default_factory=list)  # each repeat's stack CPU-ms


@dataclass(kw_only=True)
class TracingShare:
    """Tracing's share of the stack's CPU on one path: (on - off) / on, from the medians over the
    repeats; ``shares`` each repeat's own (on#r against off#r), for the spread."""

    path: str
    rate: float
    on_ms: float
    off_ms: float
    share: float
    sustained: bool = True  # every step it rests on was
    samples: int = 1  # the fewer of the two sides' repeats
    shares: list[float] = field(default_factory=list)


@dataclass(kw_only=True)
class TargetVerdict:
    target: str
    op: str  # "<=" or ">="
    limit: float
    measured: float | None
    met: bool | None  # None: not measured in this run
    sustained: bool = True  # False: a step it rests on was not sustained
    samples: int = 1  # the repeats the measured median rests on (0: not measured)


@dataclass(kw_only=True)
class Cost:
    """The cost stacks (issue 15): as `boutique up` runs it (``on``), tracing off (``off``)."""

    on: list[CostRow]
    off: list[CostRow]
    tracing: list[TracingShare]
    targets: list[TargetVerdict]
    idle_vcpu: dict[str, float]  # each cost stack's vCPU at rest (median of its repeats)


@dataclass(kw_only=True)
class Summary:
    paths: list[str]
    hops: dict[str, Hops]
    compare: dict[str, list[CompareRow]]
    max_sustained: dict[str, dict[str, MaxSustained]]  # path -> stack -> rate
    p99_bound_ms: dict[str, float]
    envoy_cpu: dict[str, list[EnvoyCpu]]
    sidecars: dict[str, Sidecars | None]
    tracing: dict[str, list[TracingRow]]
    memory: list[MemoryRow]
    client: ClientCost | None
    disturbed: list[Disturbed]
    redone_after_disturbance: int
    speed_spread: float | None
    tuning: list[TuningRow] = field(default_factory=list)
    variants: list[VariantRow] = field(default_factory=list)
    cost: Cost | None = None
