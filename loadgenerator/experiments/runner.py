"""Run one experiment: steady state, fault, recovery, under the Locust shoppers; judge it.

The shoppers run in one Locust process for the whole experiment, writing every request to a
log; the phases are cut by wall clock. The fault is switched on at the start of the fault phase
and off at its end, through the sidecars' runtime, and always switched off when the run ends,
however it ends (an error, Ctrl-C, SIGTERM).
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadgenerator import run as load_runner
from mesh.experiments import faults
from mesh.experiments.faults import Proxy
from mesh.experiments.hypotheses import AFTER
from mesh.experiments.spec import Experiment

from . import measure

REQUEST_LOG = "requests.csv"


@dataclass
class Target:
    """Where an experiment runs: the shop's public URL, its sidecars, traces and books."""

    kind: str  # "local" or "compose"
    public_url: str
    proxies: list[Proxy]
    traces_url: str | None = None
    data_dir: Path | None = None  # the SQLite files of the books; None: not readable here
    how: str = ""  # "started its own mesh on free ports", "attached to ..."
    stop: Callable[[], None] = field(default=lambda: None)


@dataclass
class Window:
    name: str
    start: float  # Unix seconds
    end: float


@dataclass
class Verdict:
    text: str
    when: str
    value: float | None
    shown: str
    held: bool


@dataclass
class Outcome:
    experiment: Experiment
    target: Target
    windows: list[Window]
    shoppers: dict[str, dict[str, float | None]]  # phase -> metric -> value
    envoy: dict[str, dict[str, float | None]]  # phase -> counter -> delta
    books: dict[str, float | None]
    traces: list[dict[str, Any]]
    verdicts: list[Verdict]
    settle_s: float
    requests: list[measure.Request]
    results: Path

    @property
    def held(self) -> bool:
        return all(v.held for v in self.verdicts)

    @property
    def verdict(self) -> str:
        return "held" if self.held else "broken"


class Stopped(Exception):
    """SIGTERM: stop the run as Ctrl-C would."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise Stopped()


def locust_env(exp: Experiment, log: Path) -> dict[str, str]:
    env = load_runner.think_env(exp.load.think_min_s, exp.load.think_max_s)
    env["SHOPPER_REQUEST_LOG"] = str(log)
    env["SHOPPER_PAGE_PROBERS"] = str(exp.load.page_probers)
    return env


def start_locust(exp: Experiment, target: Target, results: Path) -> subprocess.Popen[bytes]:
    log = results / REQUEST_LOG
    log.unlink(missing_ok=True)
    users = exp.load.users + exp.load.page_probers
    run_time = f"{int(exp.duration_s) + 120}s"  # stopped by us at the end of recovery
    argv = load_runner.headless_argv(
        target.public_url, users, exp.load.spawn_rate, run_time, results
    )
    out = (results / "locust.log").open("wb")
    return subprocess.Popen(
        argv,
        env=locust_env(exp, log),
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # Ctrl-C reaches us; we stop Locust ourselves
    )


def stop_locust(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)  # Locust stops its shoppers and writes its reports
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run(
    exp: Experiment, target: Target, results: Path, progress: Callable[[str], None] | None = None
) -> Outcome:
    results.mkdir(parents=True, exist_ok=True)
    show = progress or (lambda _line: None)
    proxies = target.proxies
    faults.clear(proxies)
    snapshots = [measure.envoy_counters(proxies, exp)]
    windows: list[Window] = []
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if _main_thread() else None
    proc = start_locust(exp, target, results)
    try:
        for phase in exp.phases:
            # a phase starts once its switch is done and the counters are read (a docker exec
            # can take a while), so no request is counted in a phase it did not belong to
            if phase.name == "fault":
                faults.apply(exp, proxies)
            start = time.time()
            end = start + phase.duration_s
            _wait(end, phase.name, phase.duration_s, proc, results, show)
            if phase.name == "fault":
                faults.clear(proxies)
            snapshots.append(measure.envoy_counters(proxies, exp))
            windows.append(Window(phase.name, start, end))
    finally:
        try:
            faults.clear(proxies)
        finally:
            stop_locust(proc)
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
    return judge(exp, target, results, windows, snapshots)


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _wait(
    end: float,
    phase: str,
    length: float,
    proc: subprocess.Popen[bytes],
    results: Path,
    show: Callable[[str], None],
) -> None:
    while (left := end - time.time()) > 0:
        if proc.poll() is not None:
            raise RuntimeError(
                f"Locust stopped early (exit code {proc.returncode}); see {results / 'locust.log'}"
            )
        requests = measure.read_requests(results / REQUEST_LOG)
        failed = sum(1 for r in requests if not r.ok)
        recent = sorted(r.ms for r in requests if r.t > time.time() - 6)
        p95 = measure.percentile(recent, 95)
        show(
            f"[{phase:<8} {length - left:4.0f}/{length:.0f} s] {len(requests)} requests, "
            f"{failed} failed; last 5 s p95 {'-' if p95 is None else f'{p95:.0f} ms'}"
        )
        time.sleep(min(1.0, left))


def judge(
    exp: Experiment,
    target: Target,
    results: Path,
    windows: list[Window],
    snapshots: list[dict[str, int]],
) -> Outcome:
    settle_s = measure.wait_settled(target.proxies, exp)
    requests = measure.read_requests(results / REQUEST_LOG)
    shoppers = {
        w.name: measure.shopper_metrics(r for r in requests if w.start <= r.t < w.end)
        for w in windows
    }
    envoy = {
        w.name: measure.counter_delta(snapshots[i], snapshots[i + 1]) for i, w in enumerate(windows)
    }
    books = measure.books(target.data_dir, windows[0].start)
    fault = next(w for w in windows if w.name == "fault")
    traces = measure.example_traces(target.traces_url, exp, fault.start, fault.end + 15)
    verdicts = []
    for h in exp.hypotheses:
        if h.when == AFTER:
            value = books.get(h.metric)
        elif h.source == "envoy":
            value = envoy[h.when].get(h.metric)
        else:
            value = shoppers[h.when].get(h.metric)
        verdicts.append(Verdict(h.text, h.when, value, h.show(value), h.holds(value)))
    return Outcome(
        exp, target, windows, shoppers, envoy, books, traces, verdicts, settle_s, requests, results
    )
