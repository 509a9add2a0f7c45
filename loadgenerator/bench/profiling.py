"""Flame graphs of named processes during each step's measured window, recorded by py-spy.

``boutique bench --cost --profile products,gateway`` samples every replica of each named app
(and ``tracestore``, the trace store) with ``py-spy record`` while the load client measures,
and writes one SVG per process and step beside ``results.json``. The load client creates a
marker file when its window starts; the recording starts then and lasts the window.

py-spy reads the interpreter's memory from outside (ptrace); it runs ``--nonblocking`` (the
target is never paused), so the CPU measured meanwhile stays close to an unprofiled step's.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .stack import Target, service_of

NOT_PYTHON = ("redis", "client")


def py_spy() -> str:
    """The py-spy binary: beside this Python (the venv's), else on the PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    if beside.exists():
        return str(beside)
    found = shutil.which("py-spy")
    if not found:
        raise RuntimeError("py-spy is not installed (it is in the test extras: make setup)")
    return found


def pick(pids: dict[str, int], names: list[str]) -> dict[str, int]:
    """The processes of the named apps (every replica) or of ``tracestore``."""
    wanted = set(names)
    return {
        proc: pid
        for proc, pid in sorted(pids.items())
        if not proc.startswith("envoy:") and proc not in NOT_PYTHON
        if service_of(proc) in wanted
    }


def check_names(names: list[str], services: list[str]) -> None:
    """Refuse what py-spy cannot profile (Envoy, Redis) and names nobody runs."""
    known = {*services, "tracestore"}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(
            f"cannot profile {', '.join(unknown)}: py-spy samples Python processes, one of "
            f"{', '.join(sorted(known))}"
        )


@dataclass
class Recording:
    """py-spy on each picked process for one step's window."""

    pids: dict[str, int]
    out_dir: Path
    stem: str
    duration_s: float
    rate_hz: int
    errors: list[str] = field(default_factory=list)
    thread: threading.Thread | None = None

    @property
    def mark(self) -> Path:
        return self.out_dir / f".{self.stem}.window"

    def svg(self, proc: str) -> Path:
        return self.out_dir / f"profile-{self.stem}-{proc}.svg"

    def start(self, timeout_s: float) -> None:
        self.mark.unlink(missing_ok=True)
        self.thread = threading.Thread(target=self._record, args=(timeout_s,), daemon=True)
        self.thread.start()

    def _record(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not self.mark.exists():
            if time.monotonic() > deadline:
                self.errors.append("the measured window never started")
                return
            time.sleep(0.02)
        seconds = str(max(1, round(self.duration_s)))
        procs = {
            proc: subprocess.Popen(
                [py_spy(), "record", "--pid", str(pid), "--duration", seconds]
                + ["--rate", str(self.rate_hz), "--nonblocking", "--format", "flamegraph"]
                + ["--output", str(self.svg(proc))],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            for proc, pid in self.pids.items()
        }
        for proc, child in procs.items():
            _, err = child.communicate()
            if child.returncode != 0:
                self.errors.append(f"{proc}: {err.strip()[-300:]}")

    def finish(self) -> list[str]:
        """Wait for the recordings; the SVGs written (file names in ``out_dir``)."""
        if self.thread is not None:
            self.thread.join(timeout=self.duration_s + 60)
        self.mark.unlink(missing_ok=True)
        return [self.svg(p).name for p in self.pids if self.svg(p).exists()]


@dataclass
class Profiler:
    """Which processes to profile, and where their flame graphs go."""

    names: list[str]
    out_dir: Path
    rate_hz: int = 100

    def recording(self, target: Target, path: str, rate: float, duration_s: float) -> Recording:
        # a repeat's label (``up#2``) without its ``#``, which a browser reads as a fragment
        stem = f"{target.label.replace('#', '-')}-{path}-{rate:g}"
        self.out_dir.mkdir(parents=True, exist_ok=True)
        return Recording(
            pick(target.pids, self.names), self.out_dir, stem, duration_s, self.rate_hz
        )
