"""Runs the benchmark: starts each stack in turn, prepares it, runs its fixed-rate steps, stops it.

Stacks run one after the other, never side by side, so each has the machine to itself (bar the
load client, which always shares it). A ladder runs steps at rising rates and stops at the first
rate not sustained; a step disturbed by other processes on the machine is redone.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from mesh import topology as topo
from mesh.local import LocalRun, envoy_binary
from mesh.processes import StartError

from . import machine, probes, stats
from .model import AfterLoad, Results, StackInfo, Step
from .plans import Plan, StackSpec, Work, estimate_s, one_replica
from .profiling import Profiler
from .progress import Progress
from .stack import Target, check_alive, measure_idle, memory_groups, memory_now, stack_options
from .steps import StepSettings, run_step


class Bench:
    """Runs stacks one after the other and keeps everything in one ``Results``."""

    def __init__(
        self,
        plan: Plan,
        progress: Progress | None = None,
        topology_path: Path = topo.DEFAULT_PATH,
        keep_run_dirs: bool = False,
        profiler: Profiler | None = None,
    ) -> None:
        self.plan = plan
        self.progress = progress or Progress(quiet=True)
        self.full_topology = topo.load(topology_path)
        self.topology = one_replica(self.full_topology) if plan.one_replica else self.full_topology
        self.profiler = profiler
        self.keep_run_dirs = keep_run_dirs
        self.results = Results(
            started_at=utc_now(), plan=plan, machine=machine.describe(_envoy_or_none())
        )

    def run(self, stacks: list[StackSpec]) -> Results:
        self.progress.estimate_s = estimate_s(self.plan, stacks)
        kind = "cost" if self.plan.name == "cost" else "bench"
        self.results.kind_of_run = "tuning" if any(s.variant for s in stacks) else kind
        for spec in stacks:
            self.run_stack(spec)
        self.results.finished_at = utc_now()
        return self.results

    def run_stack(self, spec: StackSpec) -> None:
        """Start a stack, measure it, stop it."""
        run_dir = Path(tempfile.mkdtemp(prefix="boutique-bench-"))
        what = "with the mesh" if spec.mesh else "without a mesh"
        tracing = "tracing on" if spec.tracing else "tracing off"
        knobs = spec.knobs.changes() or "default"
        self.progress.line(f"starting {spec.label}: {what}, {tracing}, knobs: {knobs}")
        probe = probes.speed_probe()
        run = self.start(spec, run_dir)
        failed = True
        try:
            info = self.measure_stack(run, spec)
            info.speed_probe_ms = probe
            failed = False
        finally:
            run.stop()
            if failed:
                self.progress.line(f"{spec.label} failed; its logs are in {run_dir / 'logs'}")
            elif not self.keep_run_dirs:
                shutil.rmtree(run_dir, ignore_errors=True)

    def measure_stack(self, run: LocalRun, spec: StackSpec) -> StackInfo:
        """Measure a running stack: at rest, then its work (ladders and fixed rates)."""
        target = Target.of(run, spec.label, spec.knobs)
        info = StackInfo(
            label=spec.label,
            mesh=target.mesh,
            tracing=target.tracing,
            knobs=spec.knobs.changes(),
            variant=spec.variant,
            repeat=spec.repeat,
            started_s=run.started_s,
            processes=len(target.pids),
        )
        self.progress.line(
            f"{spec.label}: {len(target.pids)} processes healthy in {run.started_s or 0:.1f}s"
        )
        info.idle = measure_idle(target, self.plan.idle_s)
        ids = probes.product_ids(target.base_url)
        paths = list(dict.fromkeys(w.path for w in spec.work))
        tokens: list[str] = []
        if "checkout" in paths:
            t0 = time.monotonic()
            tokens = probes.make_users(target.base_url, self.plan.users)
            info.users, info.users_s = len(tokens), time.monotonic() - t0
        info.hops = {p: probes.count_hops(target, p, tokens, ids) for p in paths}
        for work in spec.work:
            for step in self.run_work(run, target, work, ids, tokens):
                step.variant, step.repeat = spec.variant, spec.repeat
        after = memory_now(target)
        info.after = AfterLoad(memory=after, memory_groups=memory_groups(after))
        if target.admin_urls:
            info.envoy_connections = probes.connection_counts(target.admin_urls)
        self.results.stacks.append(info)
        return info

    def run_work(
        self, run: LocalRun, target: Target, work: Work, ids: list[str], tokens: list[str]
    ) -> list[Step]:
        """One path's rates: a ladder ends at its first failure, then (``plan.refine``) narrows
        the highest sustained rate down by bisecting geometrically; fixed rates all run."""
        todo = list(work.rates)
        good: float | None = None
        bad: float | None = None
        refine = self.plan.refine if work.ladder else 0
        done = []
        while todo:
            rate = todo.pop(0)
            step = self.undisturbed_step(target, work.path, rate, ids, tokens)
            check_alive(run)
            self.results.steps.append(step)
            done.append(step)
            if not step.failed_because:
                good = rate
            elif work.ladder:
                bad, todo = rate, []
            if not todo and refine > 0 and good is not None and bad is not None:
                middle = stats.nice((good * bad) ** 0.5)
                if good < middle < bad:
                    todo, refine = [middle], refine - 1
        return done

    def start(self, spec: StackSpec, run_dir: Path) -> LocalRun:
        """Start a stack on free ports; once more on other ports if it fails (a port taken
        between choosing it and binding it, by another run on this machine)."""
        for attempt in (1, 2):
            topology = self.full_topology if spec.topology_replicas else self.topology
            options = stack_options(run_dir, spec.mesh, spec.tracing, spec.knobs, topology)
            run = LocalRun(topology, options)
            try:
                run.start()
                time.sleep(0.5)
                check_alive(run)
                return run
            except (StartError, RuntimeError) as exc:
                run.stop()
                if attempt == 2:
                    raise
                self.progress.line(f"{spec.label} did not start ({exc}); again on other ports")
        raise AssertionError("unreachable")

    def undisturbed_step(
        self, target: Target, path: str, rate: float, ids: list[str], tokens: list[str]
    ) -> Step:
        """A step, redone (up to ``disturbed_retries`` times) while other processes on the
        machine used more than ``foreign_limit`` vCPU during it; disturbed tries are kept."""
        plan = self.plan
        settings = StepSettings(
            duration_s=plan.duration_s,
            warmup_s=plan.warmup_s,
            p99_bound_ms=plan.p99_bound_ms[path],
            max_inflight=plan.max_inflight,
            timeout_s=plan.timeout_s,
            profiler=self.profiler,
        )
        for attempt in range(plan.disturbed_retries + 1):
            step = run_step(target, path, rate, settings, ids, tokens, self.progress)
            foreign = step.vcpu_groups.foreign
            if foreign is None or foreign <= plan.foreign_limit:
                break
            if attempt == plan.disturbed_retries:
                self.progress.line(f"  still disturbed ({foreign:.2f} vCPU elsewhere); kept")
                break
            self.results.disturbed_steps.append(step)
            self.progress.line(
                f"  disturbed: other processes used {foreign:.2f} vCPU meanwhile; again in 5 s"
            )
            time.sleep(5)
        return step


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _envoy_or_none() -> str | None:
    try:
        return envoy_binary()
    except Exception:
        return None
