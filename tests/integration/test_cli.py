"""``boutique up`` as a user runs it: it stops cleanly, restarts a crash, stops on a crash loop,
and names a busy port."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mesh import topology
from mesh.ports import PortPlan
from tests.polling import wait_for

pytestmark = pytest.mark.integration
READY_LINE = "Ctrl-C stops everything."
_started: list[subprocess.Popen[str]] = []


@pytest.fixture(autouse=True)
def _stop_what_a_test_started() -> Iterator[None]:
    """A test that fails midway must not leave its whole mesh running: stop it as Ctrl-C would
    (SIGTERM), and kill what is left if that does not do it within a minute."""
    yield
    while _started:
        proc = _started.pop()
        if proc.poll() is not None:
            continue
        left = descendants(proc.pid)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        for pid in alive(left):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def start_up(
    run_dir: Path, public_port: int | None = None, *extra: str
) -> tuple[subprocess.Popen[str], list[str]]:
    plan = PortPlan.free(topology.load())
    if public_port:
        plan = plan.with_public(public_port)
    argv = [sys.executable, "-m", "boutique", "up", "--run-dir", str(run_dir), *plan.cli_args()]
    argv += extra
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PAYMENT_LATENCY_MS": "0"},
    )
    _started.append(proc)
    lines: list[str] = []
    assert proc.stdout is not None
    deadline = time.monotonic() + 90
    for line in proc.stdout:
        lines.append(line)
        if READY_LINE in line or time.monotonic() > deadline:
            break
    return proc, lines


def descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pids: set[int]) -> set[int]:
    out = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            out.add(pid)
    return out


def gone(pids: set[int]) -> None:
    """Every one of ``pids`` has exited (a killed process takes a moment to go)."""
    wait_for(lambda: alive(pids), lambda left: left == set(), what="every child exiting")


def cmdline(pid: int) -> str:
    """The process's command line; empty once it has gone (it may exit after ``alive`` saw it)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")
    except OSError:
        return ""


def test_sigterm_stops_everything_and_leaves_no_process(tmp_path: Path) -> None:
    proc, lines = start_up(tmp_path, None, "--load", "2")
    assert any(READY_LINE in line for line in lines), "".join(lines) + proc.stderr.read()  # type: ignore[union-attr]
    assert "ingress" in "".join(lines) and "products-1" in "".join(lines)  # the table
    children = descendants(proc.pid)
    assert len(children) >= 18  # redis, trace store, 7 apps, 7 sidecars, the ingress, Locust
    assert any("locust" in cmdline(pid) for pid in children)
    gateway_log = tmp_path / "logs" / "envoy-gateway-0.log"  # its sidecar logs every request
    # the shoppers get going, and their requests reach the shop
    wait_for(lambda: "/api/products" in gateway_log.read_text(), within=60, what="a shopper")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0
    gone(children)


def serving(pids: set[int], name: str) -> int | None:
    return next((pid for pid in alive(pids) if cmdline(pid).endswith(f"serve {name} ")), None)


def test_a_killed_app_is_restarted_and_a_crash_loop_stops_the_run(tmp_path: Path) -> None:
    proc, lines = start_up(tmp_path, None, "--crash-loop", "1")
    assert any(READY_LINE in line for line in lines)
    children = descendants(proc.pid)
    cart = serving(children, "cart")
    assert cart is not None
    os.kill(cart, signal.SIGKILL)
    again = wait_for(
        lambda: serving(descendants(proc.pid), "cart"),
        lambda pid: pid not in (None, cart),
        within=30,
        what="the cart app restarting",
    )
    assert again is not None
    assert proc.poll() is None  # the rest kept running
    os.kill(again, signal.SIGKILL)  # a second exit after one restart: a crash loop (--crash-loop 1)
    assert proc.wait(60) == 1
    stdout, stderr = proc.communicate()
    assert "cart-0 exited with code -9; restarting it in 0.5s" in stdout
    assert f"cart-0 restarted (pid {again})" in stdout
    assert "cart-0 exited with code -9 after 1 restarts in the last 120s: a crash loop" in stderr
    assert "last lines of" in stderr and "cart-0.log" in stderr
    gone(children | {again})


def test_a_port_in_use_is_named(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        proc, _ = start_up(tmp_path, public_port=port)
        assert proc.wait(60) == 1
        stderr = proc.stderr.read()  # type: ignore[union-attr]
    assert f"port(s) already in use: {port} (envoy:ingress)" in stderr


def test_render_writes_every_config_without_starting_anything(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "boutique", "render", "--run-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    listed = dict(line.split() for line in result.stdout.splitlines())
    assert {"ingress", "gateway-0", "products-0", "products-1"} <= set(listed)
    assert all(Path(path).is_file() for path in listed.values())
    assert (tmp_path / "certs" / "root-cert.pem").is_file()


def test_a_bad_topology_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "topology.yaml"
    bad.write_text("services:\n  cart:\n    port: 8103\n    calls: [nowhere]\n")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "boutique",
            "render",
            "--run-dir",
            str(tmp_path),
            "--topology",
            str(bad),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "services.cart.calls: unknown peer 'nowhere'" in result.stderr
