"""From the raw results (stacks and steps) to the figures the report shows. Pure functions."""

from __future__ import annotations

from . import stats
from .cost import summarize_cost
from .model import Hops, MemoryGroup, Results, StackInfo, Step
from .summary import (
    ClientCost,
    CompareRow,
    Disturbed,
    EnvoyCpu,
    GroupMb,
    MemoryRow,
    SidecarRow,
    Sidecars,
    Summary,
    TracingRow,
)
from .tuning_figures import tuning, variants

# Istio's published sidecar cost (docs: "Performance and scalability"), per sidecar proxy, per
# 1000 requests per second going through it.
ISTIO_VCPU_PER_1000_RPS = 0.20
ISTIO_MB_PER_SIDECAR = 60.0
FOREIGN_VCPU_LIMIT = 0.2  # other processes using more than this during a step: disturbed
MB = 1024 * 1024


def steps_of(results: Results, stack: str, path: str) -> list[Step]:
    """The steps of one stack and path, by rate (a step re-run after a disturbance replaces
    the disturbed one, which is kept apart under ``disturbed_steps``)."""
    found = [s for s in results.steps if s.stack == stack and s.path == path]
    return sorted(found, key=lambda s: s.rate)


def paired(results: Results, first: str, second: str, path: str) -> list[tuple[Step, Step]]:
    """The steps of two stacks at every rate both ran, by rate."""
    by_rate = {s.rate: s for s in steps_of(results, first, path)}
    return [(by_rate[s.rate], s) for s in steps_of(results, second, path) if s.rate in by_rate]


def stack_info(results: Results, label: str) -> StackInfo | None:
    return next((s for s in results.stacks if s.label == label), None)


def hops_of(results: Results, path: str, stack: str = "mesh") -> Hops:
    """The hops of ``path`` as counted on the ``stack`` stack, else on the first stack that
    counted any (a tuning run has no stack called ``mesh``)."""
    first = stack_info(results, stack)
    for info in [*([first] if first else []), *results.stacks]:
        found = info.hops.get(path)
        if found and found.hops:
            return found
    return Hops()


def compare(results: Results, path: str) -> list[CompareRow]:
    """Mesh against no mesh at every rate both ran: each side's percentiles and what the mesh
    adds, in total and per hop."""
    hops = hops_of(results, path).hops
    rows = []
    for other, mesh in paired(results, "no-mesh", "mesh", path):
        rows.append(
            CompareRow(
                rate=mesh.rate,
                no_mesh=other.percentiles(),
                mesh=mesh.percentiles(),
                added=stats.added(mesh.percentiles(), other.percentiles(), hops),
                no_mesh_sustained=not other.failed_because,
                mesh_sustained=not mesh.failed_because,
                no_mesh_vcpu=other.vcpu_groups.stack,
                mesh_vcpu=mesh.vcpu_groups.stack,
            )
        )
    return rows


def max_rates(results: Results, path: str) -> dict[str, stats.MaxSustained]:
    out = {}
    for stack in ("no-mesh", "mesh"):
        steps = steps_of(results, stack, path)
        if steps:
            out[stack] = stats.max_sustained(steps)
    return out


def envoy_cpu(step: Step) -> EnvoyCpu:
    vcpu = sum(e.vcpu for e in step.envoys.values())
    proxied = sum(e.rps for e in step.envoys.values())
    achieved = step.achieved_rps
    return EnvoyCpu(
        rate=step.rate,
        achieved_rps=achieved,
        envoys=len(step.envoys),
        envoys_vcpu=vcpu,
        proxied_rps=proxied,
        vcpu_per_1000_proxied_rps=vcpu / (proxied / 1000) if proxied else None,
        vcpu_per_1000_path_rps=vcpu / (achieved / 1000) if achieved else None,
        apps_vcpu=step.vcpu_groups.apps,
        client_vcpu=step.vcpu_groups.client,
        sustained=not step.failed_because,
    )


def reference_step(results: Results, path: str, stack: str = "mesh") -> Step | None:
    """The step whose per-sidecar figures are shown: the highest rate the stack sustained
    (most requests, so fixed costs weigh least), else its lowest rate."""
    steps = steps_of(results, stack, path)
    good = [s for s in steps if not s.failed_because]
    if good:
        return good[-1]
    return steps[0] if steps else None


def sidecars(results: Results, path: str, stack: str = "mesh") -> Sidecars | None:
    """Each Envoy at the reference step: vCPU, requests through it, vCPU per 1000 of them,
    and its memory; with Istio's published figures beside them."""
    step = reference_step(results, path, stack)
    if step is None or not step.envoys:
        return None
    rows = []
    for name, load in sorted(step.envoys.items()):
        mem = step.memory.get(name, {})
        rows.append(
            SidecarRow(
                name=name.removeprefix("envoy:"),
                vcpu=load.vcpu,
                rps=load.rps,
                vcpu_per_1000_rps=load.vcpu_per_1000_rps,
                rss_mb=mem.get("rss", 0) / MB,
                pss_mb=mem.get("pss", 0) / MB,
            )
        )
    per_1000 = [r.vcpu_per_1000_rps for r in rows if r.vcpu_per_1000_rps is not None]
    return Sidecars(
        rate=step.rate,
        achieved_rps=step.achieved_rps,
        rows=rows,
        median_vcpu_per_1000_rps=stats.median(per_1000) if per_1000 else None,
        median_rss_mb=stats.median([r.rss_mb for r in rows]),
        median_pss_mb=stats.median([r.pss_mb for r in rows]),
        all=envoy_cpu(step),
        istio_vcpu_per_1000_rps=ISTIO_VCPU_PER_1000_RPS,
        istio_mb_per_sidecar=ISTIO_MB_PER_SIDECAR,
    )


def tracing_cost(results: Results, path: str) -> list[TracingRow]:
    """Tracing at 100% sampling against tracing off, same mesh, same rates."""
    rows = []
    for base, on in paired(results, "mesh", "mesh+tracing", path):
        rows.append(
            TracingRow(
                rate=on.rate,
                off=base.percentiles(),
                on=on.percentiles(),
                added=stats.added(on.percentiles(), base.percentiles(), 1),
                vcpu_off=base.vcpu_groups,
                vcpu_on=on.vcpu_groups,
                off_sustained=not base.failed_because,
                on_sustained=not on.failed_because,
            )
        )
    return rows


def _mb(groups: dict[str, MemoryGroup], key: str) -> tuple[float, float]:
    group = groups.get(key, MemoryGroup())
    return group.rss / MB, group.pss / MB


def memory(results: Results) -> list[MemoryRow]:
    """Each stack's memory at rest after start-up and after its load, by kind of process."""
    rows = []
    for info in results.stacks:
        idle, after = info.idle.memory_groups, info.after.memory_groups
        groups = {
            g: GroupMb(rss_mb=v.rss / MB, pss_mb=v.pss / MB, count=v.count)
            for g, v in idle.items()
            if g != "total"
        }
        rows.append(
            MemoryRow(
                stack=info.label,
                started_s=info.started_s,
                processes=info.processes,
                idle_rss_mb=_mb(idle, "total")[0],
                idle_pss_mb=_mb(idle, "total")[1],
                after_rss_mb=_mb(after, "total")[0],
                after_pss_mb=_mb(after, "total")[1],
                groups_idle=groups,
                idle_vcpu=info.idle.vcpu_groups.stack,
                speed_probe_ms=info.speed_probe_ms,
            )
        )
    return rows


def speed_spread(results: Results) -> float | None:
    """How much slower the slowest stack's speed probe was than the fastest's (0.1 = 10%)."""
    probes = [s.speed_probe_ms for s in results.stacks if s.speed_probe_ms]
    if len(probes) < 2:
        return None
    return max(probes) / min(probes) - 1


def client_cost(results: Results) -> ClientCost | None:
    steps = results.steps
    if not steps:
        return None
    worst = max(steps, key=lambda s: s.vcpu_groups.client)
    lags = [s.send_lag_ms.get("p99", 0.0) for s in steps if s.send_lag_ms.get("count")]
    return ClientCost(
        max_vcpu=worst.vcpu_groups.client,
        at=f"{worst.stack} {worst.path} {worst.rate:g}/s",
        per_1000_rps=[
            s.vcpu_groups.client / (s.achieved_rps / 1000)
            for s in steps
            if s.path == "one-hop" and s.achieved_rps
        ],
        max_send_lag_p99_ms=max(lags) if lags else None,
    )


def disturbed(steps: list[Step], limit: float = FOREIGN_VCPU_LIMIT) -> list[Disturbed]:
    return [
        Disturbed(stack=s.stack, path=s.path, rate=s.rate, foreign_vcpu=f)
        for s in steps
        if (f := s.vcpu_groups.foreign) is not None and f > limit
    ]


def summarize(results: Results) -> Summary:
    paths = results.paths()
    summary = Summary(
        paths=paths,
        hops={p: hops_of(results, p) for p in paths},
        compare={p: compare(results, p) for p in paths},
        max_sustained={p: max_rates(results, p) for p in paths},
        p99_bound_ms=results.plan.p99_bound_ms,
        envoy_cpu={p: [envoy_cpu(s) for s in steps_of(results, "mesh", p)] for p in paths},
        sidecars={p: sidecars(results, p) for p in paths},
        tracing={p: tracing_cost(results, p) for p in paths},
        memory=memory(results),
        client=client_cost(results),
        disturbed=disturbed(results.steps, results.plan.foreign_limit),
        redone_after_disturbance=len(results.disturbed_steps),
        speed_spread=speed_spread(results),
    )
    if results.tuning:
        summary.tuning = tuning(results)
        summary.variants = variants(results)
    summary.cost = summarize_cost(results)
    return summary
