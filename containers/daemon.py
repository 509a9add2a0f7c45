"""A Docker daemon of our own, and the compose stack running on it.

The daemon never touches the system's: its socket, data root and exec root live in one directory
(``.cache/dockerd/`` for ``make compose-up``, a temporary one for the live test), it reads no
``/etc/docker/daemon.json``, sets up no iptables rules and no IP forwarding (containers have no
route out), makes no default bridge, and is stopped by its PID. Its networks come from an
address pool not used on this host, so two such daemons never route into each other.

``Stack`` is one compose project on it; ``Stack.find()`` reads back the stack that ``up`` left
running (the experiments and the CLI find it that way).
"""

from __future__ import annotations

import ipaddress
import json
import os
import random
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_ROOT = REPO / ".cache" / "dockerd"
COMPOSE_FILE = REPO / "docker-compose.yml"
OFFLINE_FILE = REPO / "containers" / "offline.yml"
# The published ports and the variables that move them (docker-compose.yml reads these).
PORTS = {"BOUTIQUE_PORT": 8080, "BOUTIQUE_JAEGER_PORT": 16686, "BOUTIQUE_LOCUST_PORT": 8089}


class DockerError(RuntimeError):
    pass


def docker_binary() -> str:
    """Debian's docker CLI (it matches Debian's dockerd), else the first on PATH."""
    found = "/usr/bin/docker" if Path("/usr/bin/docker").exists() else shutil.which("docker")
    if not found:
        raise DockerError("docker is not installed; `make setup` installs docker.io")
    return found


def compose_binary() -> list[str]:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    raise DockerError("docker-compose is not installed; `make setup` installs it")


def free_pool() -> str:
    """A /16 in 10.0.0.0/8 that no route of this host overlaps."""
    routes = subprocess.run(["ip", "-4", "route"], capture_output=True, text=True).stdout
    used = []
    for line in routes.splitlines():
        word = line.split()[0] if line.split() else ""
        if word[:1].isdigit():
            used.append(ipaddress.ip_network(word if "/" in word else f"{word}/32", strict=False))
    for _ in range(100):
        pool = ipaddress.ip_network(f"10.{random.randrange(100, 250)}.0.0/16")
        if not any(pool.overlaps(u) for u in used):
            return str(pool)
    raise DockerError("no free address pool in 10.0.0.0/8")


@dataclass
class Daemon:
    root: Path = DEFAULT_ROOT
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def socket(self) -> Path:
        return self.root / "docker.sock"

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    @property
    def pidfile(self) -> Path:
        return self.root / "dockerd.pid"

    @property
    def log(self) -> Path:
        return self.root / "dockerd.log"

    def env(self) -> dict[str, str]:
        return {**os.environ, "DOCKER_HOST": self.host}

    def pid(self) -> int | None:
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if Path(f"/proc/{pid}").exists() else None

    def alive(self) -> bool:
        if self.pid() is None or not self.socket.exists():
            return False
        ok = subprocess.run(
            [docker_binary(), "version"], env=self.env(), capture_output=True, timeout=20
        )
        return ok.returncode == 0

    def docker(self, *args: str, timeout: float | None = None) -> str:
        """Run the docker CLI against this daemon; its stdout, or DockerError with stderr."""
        done = subprocess.run(
            [docker_binary(), *args], env=self.env(), capture_output=True, timeout=timeout
        )
        if done.returncode != 0:
            out = (done.stdout[-3000:] + done.stderr[-2000:]).decode(errors="replace")
            raise DockerError(f"docker {' '.join(args[:3])}:\n{out}")
        return done.stdout.decode()

    def start(self, timeout: float = 60.0) -> None:
        if self.alive():
            return
        dockerd = shutil.which("dockerd")
        if not dockerd:
            raise DockerError("dockerd is not installed; `make setup` installs docker.io")
        self.root.mkdir(parents=True, exist_ok=True)
        config = self.root / "daemon.json"
        config.write_text("{}\n")
        namespace = f"boutique-{os.getpid()}"
        argv = [
            dockerd,
            f"--config-file={config}",
            f"--data-root={self.root / 'data'}",
            f"--exec-root={self.root / 'exec'}",
            f"--host={self.host}",
            f"--pidfile={self.pidfile}",
            "--iptables=false",
            "--ip-forward=false",
            "--ip-masq=false",
            "--bridge=none",
            f"--default-address-pool=base={free_pool()},size=24",
            f"--containerd-namespace={namespace}",
            f"--containerd-plugins-namespace={namespace}-plugins",
            "--log-level=warn",
        ]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise DockerError(f"dockerd exited ({self.proc.returncode}):\n{self._tail()}")
            if self.socket.exists() and self.alive():
                return
            time.sleep(0.5)
        self.stop()
        raise DockerError(f"dockerd did not answer within {timeout:.0f}s:\n{self._tail()}")

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM to our dockerd (it stops its containers and its containerd), then SIGKILL."""
        pid = self.proc.pid if self.proc and self.proc.poll() is None else self.pid()
        containerd = _read_pid(self.root / "exec" / "containerd" / "containerd.pid")
        if pid is not None:
            _terminate(pid, timeout, self.proc)
        if containerd is not None and Path(f"/proc/{containerd}").exists():
            _terminate(containerd, 10.0, None)
        self.proc = None

    def _tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _terminate(pid: int, timeout: float, proc: subprocess.Popen[bytes] | None) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return
        if proc is None and not Path(f"/proc/{pid}").exists():
            return
        time.sleep(0.2)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    if proc is not None:
        proc.wait(10)


@dataclass
class Stack:
    """One compose project on a daemon: the files, the project name and the published ports."""

    daemon: Daemon
    project: str = "boutique"
    files: tuple[Path, ...] = (COMPOSE_FILE, OFFLINE_FILE)
    ports: dict[str, int] = field(default_factory=lambda: dict(PORTS))

    @property
    def state(self) -> Path:
        return self.daemon.root / "stack.json"

    def env(self) -> dict[str, str]:
        return {**self.daemon.env(), **{k: str(v) for k, v in self.ports.items()}}

    def compose(self, *args: str, timeout: float | None = None) -> str:
        argv = [*compose_binary(), "--project-directory", str(REPO), "-p", self.project]
        for f in self.files:
            argv += ["-f", str(f)]
        done = subprocess.run(
            [*argv, *args], env=self.env(), capture_output=True, timeout=timeout, cwd=REPO
        )
        if done.returncode != 0:
            out = (done.stdout + done.stderr).decode(errors="replace")
            raise DockerError(f"docker-compose {' '.join(args[:2])}:\n{out[-4000:]}")
        return done.stdout.decode()

    def up(self, timeout: float = 300.0) -> None:
        """Start everything (the images are built beforehand: no registry to pull from)."""
        self.save()
        self.compose("up", "-d", "--no-build", timeout=timeout)

    def down(self) -> None:
        self.compose("down", "--volumes", "--remove-orphans", "--timeout", "2", timeout=120)
        self.state.unlink(missing_ok=True)

    def exec(self, service: str, *argv: str, timeout: float = 120.0) -> str:
        """Run a command in a service's container (its network namespace: its pod)."""
        return self.compose("exec", "-T", service, *argv, timeout=timeout)

    def admin(self, instance: str, path: str, method: str = "GET") -> str:
        """A sidecar's Envoy admin API, which only its own pod can reach (``cart-0``)."""
        url = f"http://127.0.0.1:15000{path}"
        return self.exec(f"{instance}-sidecar", "python3", "-m", "mesh.probe", "-X", method, url)

    def url(self, variable: str = "BOUTIQUE_PORT") -> str:
        return f"http://127.0.0.1:{self.ports[variable]}"

    def save(self) -> None:
        self.state.parent.mkdir(parents=True, exist_ok=True)
        state = {
            "project": self.project,
            "files": [str(f) for f in self.files],
            "ports": self.ports,
        }
        self.state.write_text(json.dumps(state, indent=2) + "\n")

    @classmethod
    def find(cls, root: Path = DEFAULT_ROOT) -> Stack | None:
        """The stack that ``up`` left running on the daemon in ``root``, if it still runs."""
        daemon = Daemon(root)
        try:
            state = json.loads((root / "stack.json").read_text())
        except (OSError, ValueError):
            return None
        if not daemon.alive():
            return None
        files = tuple(Path(f) for f in state["files"])
        return cls(daemon, state["project"], files, {k: int(v) for k, v in state["ports"].items()})
