"""Where every piece of a running mesh sits: ports, sockets and certificates per instance.

The renderers turn the topology plus a placement into configs; the local runner makes the
placement for this machine: each instance has a private folder, ``pods/<instance>/`` (0700, like
a pod's own network namespace), holding its app's socket, its sidecar's egress and its admin, all
Unix sockets; only the sidecars' mTLS inbound ports and the ingress are on loopback TCP.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .topology import Topology


@dataclass(frozen=True)
class Instance:
    """One replica of a service with its sidecar."""

    service: str
    replica: int
    app_socket: Path | None  # the app listens here, and only its sidecar connects
    inbound_port: int  # mTLS from callers
    egress_port: int  # the app's HTTP proxy for calls to peers
    admin_port: int
    cert: Path
    key: Path
    app_port: int | None = None  # compose: the app on its pod's loopback instead of a socket
    address: str | None = None  # where peers reach the inbound (None: the placement's host)
    pod_dir: Path | None = None  # the instance's private folder (0700)
    egress_socket: Path | None = None  # set: the egress is this Unix socket, not egress_port
    admin_socket: Path | None = None  # set: the admin is this Unix socket, not admin_port

    @property
    def name(self) -> str:
        return f"{self.service}-{self.replica}"


@dataclass(frozen=True)
class IngressPlacement:
    port: int
    admin_port: int
    cert: Path
    key: Path
    admin_socket: Path | None = None  # set: the admin is this Unix socket, not admin_port
    tls: tuple[Path, Path] | None = None  # the public port's certificate and key (HTTPS)


@dataclass(frozen=True)
class Placement:
    host: str
    root_cert: Path
    ingress: IngressPlacement
    instances: dict[str, tuple[Instance, ...]]
    otlp: tuple[str, int] | None = None  # where sidecars send spans (OTLP/HTTP); None: no tracing
    listen: str | None = None  # where inbound and public listeners bind (None: host)
    dns: bool = False  # peers and the collector are names to resolve (compose), not addresses
    jwks: Path | None = None  # the user token's public keys; None: tokens are not checked

    def all_instances(self) -> list[Instance]:
        return [i for group in self.instances.values() for i in group]

    @property
    def listen_host(self) -> str:
        return self.listen or self.host

    def address(self, inst: Instance) -> str:
        return inst.address or self.host


def local_placement(
    topology: Topology,
    run_dir: Path,
    public_port: int,
    base_port: int,
    host: str = "127.0.0.1",
    otlp_port: int | None = None,
    https: bool = False,
) -> Placement:
    """Ports from ``base_port``: ten per instance (its inbound is the second)."""
    certs = run_dir / "certs"
    pods = run_dir / "pods"
    instances: dict[str, tuple[Instance, ...]] = {}
    slot = 1
    for svc in topology.services.values():
        group = []
        for r in range(svc.replicas):
            base = base_port + 10 * slot
            name = f"{svc.name}-{r}"
            pod = pods / name
            group.append(
                Instance(
                    service=svc.name,
                    replica=r,
                    app_socket=pod / "app.sock",
                    admin_port=base,
                    inbound_port=base + 1,
                    egress_port=base + 2,
                    cert=certs / f"{svc.name}-cert.pem",
                    key=certs / f"{svc.name}-key.pem",
                    pod_dir=pod,
                    egress_socket=pod / "egress.sock",
                    admin_socket=pod / "admin.sock",
                )
            )
            slot += 1
        instances[svc.name] = tuple(group)
    ingress = IngressPlacement(
        port=public_port,
        admin_port=base_port,
        cert=certs / "ingress-cert.pem",
        key=certs / "ingress-key.pem",
        admin_socket=pods / "ingress" / "admin.sock",
        tls=(certs / "edge-cert.pem", certs / "edge-key.pem") if https else None,
    )
    otlp = (host, otlp_port) if otlp_port else None
    jwks = run_dir / "keys" / "user-token.jwks"
    return Placement(host, certs / "root-cert.pem", ingress, instances, otlp, jwks=jwks)


# In compose each pod is an app container and its sidecar container sharing one network
# namespace, with Istio's ports: admin and egress on the pod's loopback, inbound on the network.
POD_ADMIN_PORT = 15000
POD_EGRESS_PORT = 15001
POD_INBOUND_PORT = 15006
COMPOSE_MESH_DIR = Path("/etc/mesh")  # each sidecar's own identity volume (boutique mint)
COMPOSE_OTLP = ("otel-collector", 4318)


def compose_placement(topology: Topology) -> Placement:
    """Peers by container name (``products-1``), resolved by compose's DNS."""
    cert, key = COMPOSE_MESH_DIR / "cert.pem", COMPOSE_MESH_DIR / "key.pem"
    instances = {
        svc.name: tuple(
            Instance(
                service=svc.name,
                replica=r,
                app_socket=None,
                app_port=svc.port,
                inbound_port=POD_INBOUND_PORT,
                egress_port=POD_EGRESS_PORT,
                admin_port=POD_ADMIN_PORT,
                cert=cert,
                key=key,
                address=f"{svc.name}-{r}",
            )
            for r in range(svc.replicas)
        )
        for svc in topology.services.values()
    }
    ingress = IngressPlacement(topology.ingress_port, POD_ADMIN_PORT, cert, key)
    root = COMPOSE_MESH_DIR / "root-cert.pem"
    jwks = COMPOSE_MESH_DIR / "user-token.jwks"  # beside each identity (boutique mint)
    return Placement(
        "127.0.0.1", root, ingress, instances, COMPOSE_OTLP, "0.0.0.0", dns=True, jwks=jwks
    )
