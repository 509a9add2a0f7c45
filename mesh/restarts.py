"""When to restart a crashed process, and when to give up: the kubelet's rule, made small.

A process that exits is restarted after a back-off: 0.5 s, doubled for each restart it had in
the last two minutes, at most 10 s. A process that exits again after ``crash_loop`` restarts in
those two minutes is in a crash loop: restarting it more would only hide the fault, so the run
stops and shows the end of its log (``boutique up --crash-loop N``).

This module decides; :class:`mesh.processes.Supervisor` acts (and reports each exit and restart).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

FIRST_DELAY_S = 0.5
MAX_DELAY_S = 10.0
WINDOW_S = 120.0
CRASH_LOOP = 5


@dataclass(frozen=True)
class RestartPolicy:
    first_delay_s: float = FIRST_DELAY_S
    max_delay_s: float = MAX_DELAY_S
    window_s: float = WINDOW_S  # restarts older than this no longer count
    crash_loop: int = CRASH_LOOP  # this many restarts within the window, then one more exit: stop

    def __post_init__(self) -> None:
        if self.crash_loop < 1:
            raise ValueError("crash_loop must be at least 1 (restarts within the window)")
        if not 0 < self.first_delay_s <= self.max_delay_s:
            raise ValueError("the back-off needs 0 < first_delay_s <= max_delay_s")


@dataclass(frozen=True)
class Decision:
    """What to do about one exit: restart after ``delay_s``, or stop (``crash_loop``)."""

    delay_s: float
    recent: int  # restarts of this process within the window, before this exit
    crash_loop: bool

    def describe(self, name: str, code: int | None, window_s: float) -> str:
        if self.crash_loop:
            return (
                f"{name} exited with code {code} after {self.recent} restarts in the last "
                f"{window_s:.0f}s: a crash loop"
            )
        return (
            f"{name} exited with code {code}; restarting it in {self.delay_s:g}s "
            f"(restart {self.recent + 1} in the last {window_s:.0f}s)"
        )


@dataclass
class Restarts:
    """The restart history of every process, and the decision for its next exit."""

    policy: RestartPolicy = field(default_factory=RestartPolicy)
    clock: Callable[[], float] = time.monotonic
    history: dict[str, list[float]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)  # every restart since the start

    def recent(self, name: str) -> int:
        """Restarts of ``name`` within the window (older ones are forgotten)."""
        since = self.clock() - self.policy.window_s
        kept = [t for t in self.history.get(name, []) if t > since]
        self.history[name] = kept
        return len(kept)

    def on_exit(self, name: str) -> Decision:
        recent = self.recent(name)
        if recent >= self.policy.crash_loop:
            return Decision(0.0, recent, crash_loop=True)
        delay = min(self.policy.first_delay_s * 2**recent, self.policy.max_delay_s)
        return Decision(delay, recent, crash_loop=False)

    def restarted(self, name: str) -> None:
        """Count a restart of ``name`` (now)."""
        self.history.setdefault(name, []).append(self.clock())
        self.counts[name] = self.counts.get(name, 0) + 1
