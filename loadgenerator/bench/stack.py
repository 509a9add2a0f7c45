"""One stack as the steps see it: where it listens, its processes, its Envoys, and how their CPU
and memory add up by kind of process.

A stack is the local shop started on free ports with fresh stores. Every stack gets
``PRODUCTS_STOCK=1000000`` (stock never runs out) and ``PAYMENT_LATENCY_MS=0`` (the simulated
card network adds no delay of its own).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from mesh import topology as topo
from mesh.local import LocalOptions, LocalRun
from mesh.ports import PortPlan

from . import procstat
from .model import ByProcess, EnvoyLoad, Idle, Memory, MemoryGroup, VcpuGroups
from .tuning import Knobs, admin_urls

STACK_ENV = {"PRODUCTS_STOCK": "1000000", "PAYMENT_LATENCY_MS": "0"}
GROUPS = ("envoys", "apps", "redis", "tracestore", "client")


def stack_options(
    run_dir: Path, mesh: bool, tracing: bool, knobs: Knobs, topology: topo.Topology
) -> LocalOptions:
    """A stack on ports planned free as one block, with fresh stores and the knobs applied."""
    return LocalOptions.planned(
        PortPlan.free(topology),
        run_dir,
        mesh=mesh,
        env={**STACK_ENV, **knobs.env},
        fresh=True,
        envoy_concurrency=knobs.envoy_concurrency,
        envoy=knobs.envoy_options(),
        tracing=tracing,
    )


@dataclass
class Target:
    """A running stack: where to send requests, which processes to read, which Envoys."""

    label: str
    mesh: bool
    tracing: bool
    base_url: str
    pids: dict[str, int]
    admin_urls: dict[str, str]
    knobs: Knobs = field(default_factory=Knobs)

    @classmethod
    def of(cls, run: LocalRun, label: str | None = None, knobs: Knobs | None = None) -> Target:
        pids = {c.name: c.proc.pid for c in run.supervisor.children if c.proc and c.alive}
        mesh = run.options.mesh
        return cls(
            label=label or ("mesh" if mesh else "no-mesh"),
            mesh=mesh,
            tracing=run.options.tracing,
            base_url=run.public_url,
            pids=pids,
            admin_urls=admin_urls(run),
            knobs=knobs or getattr(run, "knobs", None) or Knobs(),
        )


def check_alive(run: LocalRun) -> None:
    """Every process of the stack still runs (one that died may leave its port to another)."""
    gone = run.supervisor.first_exit()
    if gone is not None:
        code = gone.proc.returncode if gone.proc else None
        raise RuntimeError(f"{gone.name} exited (code {code}); end of {gone.log}:\n{gone.tail()}")


def service_of(name: str) -> str:
    """The service of a process: ``products-1`` is a replica of ``products``; ``gateway``
    (without the mesh), ``tracestore``, ``redis`` and ``envoy:cart-0`` are their own."""
    if name.startswith("envoy:"):
        return name
    base, sep, index = name.rpartition("-")
    return base if sep and index.isdigit() else name


def group_of(name: str) -> str:
    if name.startswith("envoy:"):
        return "envoys"
    if name in ("client", "redis", "tracestore"):
        return name
    return "apps"


def vcpu_groups(vcpu: ByProcess, system_vcpu: float | None) -> VcpuGroups:
    """vCPU by kind of process; ``stack`` is everything but the client, ``foreign`` what other
    processes on the machine used meanwhile (all cores' busy time less ours)."""
    sums = dict.fromkeys(GROUPS, 0.0)
    for name, used in vcpu.items():
        sums[group_of(name)] += used
    ours = sum(vcpu.values())
    foreign = None if system_vcpu is None else max(0.0, system_vcpu - ours)
    return VcpuGroups(**sums, stack=ours - sums["client"], foreign=foreign)


def envoy_load(
    vcpu: ByProcess, requests: dict[str, dict[str, int]], window_s: float
) -> dict[str, EnvoyLoad]:
    """Per Envoy: vCPU, requests per second through it (all its HTTP listeners), and vCPU per
    1000 of those (Istio's unit)."""
    out = {}
    for name, used in sorted(vcpu.items()):
        if not name.startswith("envoy:"):
            continue
        rps = sum(requests.get(name, {}).values()) / window_s if window_s > 0 else 0.0
        per_1000 = procstat.per_1000_rps(used, rps)
        out[name] = EnvoyLoad(vcpu=used, rps=rps, vcpu_per_1000_rps=per_1000)
    return out


def memory_groups(memory: dict[str, Memory]) -> dict[str, MemoryGroup]:
    """RSS and PSS summed by kind of process, and ``total`` over the whole stack."""
    out: dict[str, MemoryGroup] = {}
    for name, mem in memory.items():
        if name == "client":
            continue
        for group in (group_of(name), "total"):
            slot = out.setdefault(group, MemoryGroup())
            slot.rss += mem.get("rss", 0)
            slot.pss += mem.get("pss", 0)
            slot.count += 1
    return out


def memory_now(target: Target) -> dict[str, Memory]:
    return {name: procstat.memory(pid) for name, pid in target.pids.items()}


def measure_idle(target: Target, seconds: float) -> Idle:
    """CPU and memory of the stack at rest."""
    before = procstat.sample_cpu(target.pids)
    busy0 = procstat.system_busy_seconds()
    t0 = time.monotonic()
    time.sleep(seconds)
    wall = time.monotonic() - t0
    used = procstat.vcpu(before, procstat.sample_cpu(target.pids), wall)
    busy1 = procstat.system_busy_seconds()
    system = None if busy0 is None or busy1 is None else (busy1 - busy0) / wall
    memory = memory_now(target)
    return Idle(
        window_s=wall,
        vcpu=used,
        vcpu_groups=vcpu_groups(used, system),
        memory=memory,
        memory_groups=memory_groups(memory),
    )
