"""The local supervisor: crashes are reported, busy ports named, and nothing is left behind."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

from mesh.processes import Child, StartError, Supervisor


def _child(tmp_path: Path, name: str, code: str, **kw) -> Child:  # type: ignore[no-untyped-def]
    return Child(name, [sys.executable, "-c", code], tmp_path / f"{name}.log", **kw)


def test_a_child_that_dies_while_starting_is_reported_with_its_log(tmp_path: Path) -> None:
    sup = Supervisor()
    child = _child(
        tmp_path, "broken", "print('config is wrong'); raise SystemExit(3)", ready=lambda: False
    )
    sup.start(child)
    with pytest.raises(StartError, match="broken exited with code 3") as err:
        sup.wait_healthy([child], deadline_s=10)
    assert "config is wrong" in str(err.value)
    sup.stop()


def test_a_crash_after_start_is_seen_and_stop_leaves_no_process(tmp_path: Path) -> None:
    sup = Supervisor()
    steady = _child(tmp_path, "steady", "import time; time.sleep(60)")
    crashing = _child(tmp_path, "crashing", "raise SystemExit(1)")
    sup.start(steady)
    sup.start(crashing)
    assert crashing.proc is not None
    crashing.proc.wait(10)
    assert sup.first_exit() is crashing
    sup.stop(grace_s=5)
    assert steady.proc is not None and steady.proc.poll() is not None


def test_a_busy_port_is_named(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        child = _child(tmp_path, "web", "pass", ports=(port,))
        with pytest.raises(StartError, match=f"{port} \\(web\\)"):
            Supervisor().check_ports([child])
