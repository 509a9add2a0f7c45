"""The local run: redis-server and every service as processes on this machine, no containers.

``LocalRun`` plans the processes from the topology, starts them, waits until each is ready, and
stops them all. The CLI (``boutique up``) and the integration tests use the same class.
"""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from .processes import Child, StartError, Supervisor, http_ok, redis_ok
from .topology import Topology


@dataclass
class LocalOptions:
    run_dir: Path = Path(".run")
    public_port: int = 8080
    redis_port: int = 6380
    host: str = "127.0.0.1"
    ports: dict[str, int] = field(default_factory=dict)  # per-service app port overrides
    env: dict[str, str] = field(default_factory=dict)  # extra environment for every service
    fresh: bool = False  # start from empty stores


class LocalRun:
    def __init__(self, topology: Topology, options: LocalOptions | None = None) -> None:
        self.topology = topology
        self.options = options or LocalOptions()
        self.run_dir = self.options.run_dir.resolve()
        self.supervisor = Supervisor()
        self.started_s: float | None = None

    # -- the plan ------------------------------------------------------------------------------

    def app_port(self, name: str) -> int:
        if name == "gateway":  # without a mesh the gateway itself answers on the public port
            return self.options.public_port
        return self.options.ports.get(name, self.topology.service(name).port)

    def app_url(self, name: str) -> str:
        return f"http://{self.options.host}:{self.app_port(name)}"

    @property
    def public_url(self) -> str:
        return f"http://{self.options.host}:{self.options.public_port}"

    @property
    def redis_url(self) -> str:
        return f"redis://{self.options.host}:{self.options.redis_port}/0"

    def redis_child(self) -> Child:
        binary = shutil.which("redis-server")
        if binary is None:
            raise StartError("redis-server is not installed; `make setup` installs it")
        data = self.run_dir / "redis"
        data.mkdir(parents=True, exist_ok=True)
        argv = [
            binary,
            "--port",
            str(self.options.redis_port),
            "--bind",
            self.options.host,
            "--dir",
            str(data),
            "--appendonly",
            "yes",
            "--save",
            "",
        ]
        return Child(
            "redis",
            argv,
            self.run_dir / "logs" / "redis.log",
            ready=partial(redis_ok, self.options.redis_port),
            ports=(self.options.redis_port,),
        )

    def service_child(self, name: str) -> Child:
        svc = self.topology.service(name)
        peers = ",".join(f"{peer}={self.app_url(peer)}" for peer in svc.calls)
        env = {
            "SERVICE_NAME": name,
            "HOST": self.options.host,
            "PORT": str(self.app_port(name)),
            "BOUTIQUE_DATA_DIR": str(self.run_dir / "data"),
            "REDIS_URL": self.redis_url,
            "PEER_URLS": peers,
            "PYTHONUNBUFFERED": "1",
            **self.options.env,
        }
        port = self.app_port(name)
        return Child(
            name,
            [sys.executable, "-m", "mesh", "serve", name],
            self.run_dir / "logs" / f"{name}.log",
            env=env,
            ready=partial(http_ok, f"{self.app_url(name)}/readyz"),
            ports=(port,),
        )

    # -- running -------------------------------------------------------------------------------

    def start(self, deadline_s: float = 60.0) -> None:
        t0 = time.monotonic()
        if self.options.fresh:
            for sub in ("data", "redis"):
                shutil.rmtree(self.run_dir / sub, ignore_errors=True)
        redis = self.redis_child()
        services = [self.service_child(name) for name in self.topology.services]
        self.supervisor.check_ports([redis, *services])
        try:
            self.supervisor.start(redis)
            self.supervisor.wait_healthy([redis], deadline_s)
            for child in services:
                self.supervisor.start(child)
            self.supervisor.wait_healthy(services, deadline_s)
        except BaseException:
            self.supervisor.stop()
            raise
        self.started_s = time.monotonic() - t0

    def stop(self) -> None:
        self.supervisor.stop()

    def __enter__(self) -> LocalRun:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def table(self) -> str:
        rows = [("process", "address", "ready")]
        for child in self.supervisor.children:
            address = self.redis_url if child.name == "redis" else self.app_url(child.name)
            ok = child.alive and (child.ready() if child.ready else True)
            rows.append((child.name, address, "yes" if ok else "NO"))
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)) for r in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(lines)
