"""A small supervisor for local child processes: start, wait healthy, restart, stop them all.

Every child gets its own log file, its own session (so a Ctrl-C reaches only the supervisor,
which then stops the children in order), and dies with the supervisor (PR_SET_PDEATHSIG), so no
process is left behind even if the supervisor is killed. Once started, a watcher thread restarts
a child that exits, with the back-off and crash-loop rule of :mod:`mesh.restarts`.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .ports import port_in_use
from .restarts import Restarts

_PR_SET_PDEATHSIG = 1


class StartError(RuntimeError):
    """A child could not start or did not become healthy; the message says which and why."""


@dataclass
class Child:
    name: str
    argv: list[str]
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    ready: Callable[[], bool] | None = None
    ports: tuple[int, ...] = ()
    proc: subprocess.Popen[bytes] | None = None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log.read_text(errors="replace").rstrip().splitlines()
        except OSError:
            return "(no log)"
        return "\n".join("    " + line for line in text[-lines:])


def _die_with_parent() -> None:
    """In the child before exec: its files are its user's alone (umask 077); it dies with us."""
    os.umask(0o077)
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


def http_ok(url: str) -> bool:
    """True when ``url`` answers 2xx."""
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return 200 <= resp.status < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


class Supervisor:
    def __init__(
        self, say: Callable[[str], None] = print, restarts: Restarts | None = None
    ) -> None:
        self.children: list[Child] = []
        self.say = say
        self.restarts = restarts or Restarts()
        self.failure: str | None = None  # why the run must stop (a crash loop), once it must
        self.failed = threading.Event()
        self._lock = threading.RLock()  # the watcher and stop() never act on a child at once
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None
        self._due: dict[str, float] = {}  # child -> when its restart is due (monotonic)
        self._given_up: set[str] = set()

    def check_ports(self, children: list[Child]) -> None:
        taken = [(c.name, p) for c in children for p in c.ports if port_in_use(p)]
        if taken:
            names = ", ".join(f"{p} ({name})" for name, p in taken)
            raise StartError(
                f"port(s) already in use: {names}. Stop whatever holds them "
                "(`ss -ltnp` shows it) or choose other ports."
            )

    def start(self, child: Child) -> None:
        self._spawn(child)
        self.children.append(child)

    def _spawn(self, child: Child) -> None:
        child.log.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # a log is its user's alone (requests, user ids): 0600 however the caller's umask is set
        log = os.fdopen(os.open(child.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab")
        env = {**os.environ, **child.env}
        child.proc = subprocess.Popen(
            child.argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        log.close()

    def wait_healthy(self, children: list[Child], deadline_s: float = 60.0) -> None:
        pending = [c for c in children if c.ready]
        give_up = time.monotonic() + deadline_s
        while pending:
            for child in list(pending):
                if not child.alive:
                    code = child.proc.returncode if child.proc else None
                    raise StartError(
                        f"{child.name} exited with code {code} while starting; "
                        f"last lines of {child.log}:\n{child.tail()}"
                    )
                if child.ready and child.ready():
                    pending.remove(child)
            if pending and time.monotonic() > give_up:
                names = ", ".join(c.name for c in pending)
                raise StartError(f"not healthy after {deadline_s:.0f}s: {names} (see their logs)")
            if pending:
                time.sleep(0.1)

    def first_exit(self) -> Child | None:
        for child in self.children:
            if not child.alive:
                return child
        return None

    # -- healing ---------------------------------------------------------------------------------

    def watch(self, interval_s: float = 0.1) -> None:
        """Restart children that exit, from a background thread, until :meth:`stop`.

        The thread lives as long as the run: the children it starts die with it (PDEATHSIG).
        """
        if self._watcher is not None:
            return
        self._stopping.clear()

        def loop() -> None:
            while not self._stopping.wait(interval_s):
                try:
                    self.heal()
                except Exception as exc:  # keep watching; say what went wrong
                    self.say(f"supervisor: {type(exc).__name__}: {exc}")

        self._watcher = threading.Thread(target=loop, name="supervisor", daemon=True)
        self._watcher.start()

    def heal(self) -> None:
        """One round: decide about every child that exited; restart those whose wait is over."""
        with self._lock:
            for child in self.children:
                if self._stopping.is_set():
                    return
                if child.alive or child.name in self._given_up:
                    continue
                due = self._due.get(child.name)
                if due is None:
                    self._exited(child)
                elif time.monotonic() >= due:
                    del self._due[child.name]
                    self.restarts.restarted(child.name)
                    self._spawn(child)
                    pid = child.proc.pid if child.proc else None
                    self.say(f"{child.name} restarted (pid {pid})")

    def _exited(self, child: Child) -> None:
        code = child.proc.returncode if child.proc else None
        decision = self.restarts.on_exit(child.name)
        self.say(decision.describe(child.name, code, self.restarts.policy.window_s))
        if not decision.crash_loop:
            self._due[child.name] = time.monotonic() + decision.delay_s
            return
        self._given_up.add(child.name)
        if self.failure is None:
            self.failure = (
                f"{decision.describe(child.name, code, self.restarts.policy.window_s)}; "
                f"last lines of {child.log}:\n{child.tail()}"
            )
        self.failed.set()

    # -- stopping --------------------------------------------------------------------------------

    def stop(self, grace_s: float = 10.0) -> None:
        """Stop children in reverse start order: SIGTERM, then SIGKILL after the grace period."""
        with self._lock:  # no restart after this
            self._stopping.set()
        for child in reversed(self.children):
            if child.alive and child.proc:
                child.proc.send_signal(signal.SIGTERM)
        end = time.monotonic() + grace_s
        for child in reversed(self.children):
            if child.proc is None:
                continue
            try:
                child.proc.wait(max(0.1, end - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.say(f"{child.name} did not stop in {grace_s:.0f}s; killing it")
                child.proc.kill()
                child.proc.wait()
        if self._watcher is not None:
            self._watcher.join()
            self._watcher = None
        self.children.clear()


def unix_redis_ok(path: Path) -> bool:
    """True when a Redis server on the Unix socket answers (PONG, or NOAUTH: it is up, and
    refuses a client without a user, as it should)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(2)
            sock.connect(str(path))
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith((b"+PONG", b"-NOAUTH"))
    except OSError:
        return False


def unix_http_ok(socket_path: Path, path: str) -> bool:
    """True when an HTTP server on the Unix socket answers ``GET path`` with 2xx."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(2)
            sock.connect(str(socket_path))
            sock.sendall(
                f"GET {path} HTTP/1.1\r\nHost: local\r\nConnection: close\r\n\r\n".encode()
            )
            status = sock.recv(64).split(b" ", 2)
            return len(status) > 1 and status[1].startswith(b"2")
    except OSError:
        return False
