"""One step: one path at one rate through one stack, driven by the load client in its own
process (``loadgen``); what it measured, with the stack's CPU by kind of process, each Envoy's
load, the memory of every process, and the verdict."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
from typing import TYPE_CHECKING

from . import codec, stats
from .loadgen import LoadSpec
from .model import LoadResult, Step
from .progress import Progress
from .stack import Target, envoy_load, memory_now, vcpu_groups

if TYPE_CHECKING:
    from .profiling import Profiler


@dataclasses.dataclass
class StepSettings:
    """What every step of a run shares (from the plan)."""

    duration_s: float
    warmup_s: float
    p99_bound_ms: float = 100.0
    max_inflight: int = 256
    timeout_s: float = 30.0
    profiler: Profiler | None = None  # flame graphs of named processes during the window


def run_step(
    target: Target,
    path: str,
    rate: float,
    settings: StepSettings,
    ids: list[str],
    tokens: list[str] | None = None,
    progress: Progress | None = None,
) -> Step:
    """Drive ``path`` at ``rate`` through ``target`` with the load client in its own process;
    everything measured, the CPU and memory of the stack's processes, and the verdict."""
    spec = LoadSpec(
        base_url=target.base_url,
        path=path,
        rate=rate,
        duration_s=settings.duration_s,
        warmup_s=settings.warmup_s,
        max_inflight=settings.max_inflight,
        keepalive=target.knobs.keepalive,
        timeout_s=settings.timeout_s,
        product_ids=ids,
        tokens=tokens or [],
        pids=target.pids,
        admin_urls=target.admin_urls,
    )
    what = f"{target.label:<14} {path:<8} {rate:>6g}/s"
    profiles: list[str] = []
    if settings.profiler is None:
        load = run_client(spec, what, progress)
    else:
        recording = settings.profiler.recording(target, path, rate, settings.duration_s)
        spec.window_mark = str(recording.mark)
        recording.start(timeout_s=settings.warmup_s + settings.timeout_s + 120)
        try:
            load = run_client(spec, what, progress)
        finally:
            profiles = recording.finish()
        if progress and recording.errors:
            progress.line(f"  profiling: {'; '.join(recording.errors)}")
    step = Step(
        **{f.name: getattr(load, f.name) for f in dataclasses.fields(LoadResult)},
        stack=target.label,
        mesh=target.mesh,
        tracing=target.tracing,
        knobs=target.knobs.changes(),
        vcpu_groups=vcpu_groups(load.vcpu, load.system_vcpu),
        envoys=envoy_load(load.vcpu, load.envoy_requests, load.window_s),
        memory=memory_now(target),
        p99_bound_ms=settings.p99_bound_ms,
        profiles=profiles,
    )
    step.failed_because = stats.verdict(step, settings.p99_bound_ms)
    if progress:
        progress.line(step_line(target.label, step))
    return step


def run_client(spec: LoadSpec, what: str, progress: Progress | None) -> LoadResult:
    """The load client, run in its own process (so nothing else shares its event loop)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "loadgenerator.bench.loadgen"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    t0 = time.monotonic()
    expected_s = spec.warmup_s + spec.duration_s
    payload: str | None = spec.to_json()
    try:
        while True:
            try:
                out, err = proc.communicate(payload, timeout=0.25)
                break
            except subprocess.TimeoutExpired:
                payload = None
                if progress:
                    progress.tick(what, min(time.monotonic() - t0, expected_s), expected_s)
                if time.monotonic() - t0 > expected_s + spec.timeout_s + 120:
                    raise RuntimeError(f"the load client did not finish: {what}") from None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"the load client failed ({what}):\n{err.strip()[-2000:]}")
    return codec.load(LoadResult, json.loads(out), "the load client's answer")


def step_line(label: str, step: Step) -> str:
    lat = step.latency_ms
    g = step.vcpu_groups
    mark = "ok" if not step.failed_because else f"NOT SUSTAINED: {step.failed_because}"
    if "p50" not in lat:
        return f"{label:<14} {step.path:<8} {step.rate:>6g}/s  no answers  {mark}"
    return (
        f"{label:<14} {step.path:<8} {step.rate:>6g}/s  "
        f"got {step.achieved_rps:6.1f}/s  p50 {lat['p50']:6.1f}  p90 {lat['p90']:6.1f}  "
        f"p99 {lat['p99']:7.1f} ms  stack {g.stack:.2f} vCPU  client {g.client:.2f}  "
        f"{mark}"
    )
