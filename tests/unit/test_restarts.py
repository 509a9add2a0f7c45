"""Restarts as a kubelet does them: back-off, doubling, a cap, forgetting, and a crash loop."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from mesh.processes import Child, Supervisor
from mesh.restarts import RestartPolicy, Restarts


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_back_off_doubles_per_recent_restart_up_to_ten_seconds() -> None:
    restarts = Restarts(RestartPolicy(crash_loop=10), clock=Clock())
    delays = []
    for _ in range(8):
        decision = restarts.on_exit("orders-0")
        assert not decision.crash_loop
        delays.append(decision.delay_s)
        restarts.restarted("orders-0")
    assert delays == [0.5, 1, 2, 4, 8, 10, 10, 10]


def test_restarts_older_than_two_minutes_are_forgotten() -> None:
    clock = Clock()
    restarts = Restarts(clock=clock)
    for _ in range(3):
        restarts.restarted("cart-0")
    assert restarts.on_exit("cart-0").delay_s == 4
    clock.now += 121
    assert restarts.on_exit("cart-0").delay_s == 0.5
    assert restarts.counts["cart-0"] == 3  # the total is kept for the report


def test_an_exit_after_n_restarts_within_two_minutes_is_a_crash_loop() -> None:
    clock = Clock()
    restarts = Restarts(RestartPolicy(crash_loop=5), clock=clock)
    for _ in range(5):
        assert not restarts.on_exit("payment-0").crash_loop
        restarts.restarted("payment-0")
        clock.now += 10
    decision = restarts.on_exit("payment-0")
    assert decision.crash_loop and decision.recent == 5
    assert "after 5 restarts in the last 120s: a crash loop" in decision.describe(
        "payment-0", 1, 120
    )
    assert not restarts.on_exit("payment-1").crash_loop  # per process


def test_a_policy_that_cannot_work_is_refused() -> None:
    with pytest.raises(ValueError, match="crash_loop"):
        RestartPolicy(crash_loop=0)
    with pytest.raises(ValueError, match="back-off"):
        RestartPolicy(first_delay_s=20, max_delay_s=10)


def _child(tmp_path: Path, name: str, code: str) -> Child:
    return Child(name, [sys.executable, "-c", code], tmp_path / f"{name}.log")


def _until(condition, deadline_s: float = 20) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + deadline_s
    while not condition():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.05)


def test_a_killed_child_is_restarted_as_a_new_process_and_both_are_reported(
    tmp_path: Path,
) -> None:
    said: list[str] = []
    sup = Supervisor(say=said.append, restarts=Restarts(RestartPolicy(first_delay_s=0.05)))
    child = _child(tmp_path, "steady", "import time; time.sleep(60)")
    sup.start(child)
    sup.watch(interval_s=0.02)
    try:
        assert child.proc is not None
        first = child.proc
        first.kill()
        _until(lambda: child.proc is not first and child.alive)
        assert any("steady exited with code -9; restarting it in 0.05s" in s for s in said)
        assert f"steady restarted (pid {child.proc.pid})" in said
        assert not sup.failed.is_set()
    finally:
        sup.stop(grace_s=5)
    assert child.proc.poll() is not None


def test_a_crash_loop_gives_up_and_says_why_with_the_end_of_the_log(tmp_path: Path) -> None:
    said: list[str] = []
    policy = RestartPolicy(first_delay_s=0.02, max_delay_s=0.05, crash_loop=3)
    sup = Supervisor(say=said.append, restarts=Restarts(policy))
    child = _child(tmp_path, "broken", "print('cannot open the database'); raise SystemExit(4)")
    sup.start(child)
    sup.watch(interval_s=0.02)
    try:
        assert sup.failed.wait(20)
    finally:
        sup.stop(grace_s=5)
    assert sum("broken restarted" in s for s in said) == 3
    assert sup.failure is not None
    assert "broken exited with code 4 after 3 restarts" in sup.failure
    assert "cannot open the database" in sup.failure


def test_nothing_is_restarted_once_stopping(tmp_path: Path) -> None:
    said: list[str] = []
    sup = Supervisor(say=said.append, restarts=Restarts(RestartPolicy(first_delay_s=0.02)))
    child = _child(tmp_path, "steady", "import time; time.sleep(60)")
    sup.start(child)
    sup.watch(interval_s=0.01)
    sup.stop(grace_s=5)  # returns once the watcher is gone: what it did is all said
    assert child.proc is not None and child.proc.poll() is not None
    assert not any("restart" in s for s in said)
