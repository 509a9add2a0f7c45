"""Where every piece of a running mesh sits: ports, sockets and certificates per instance.

The renderers turn the topology plus a placement into configs; the local runner makes the
placement for this machine (every instance on loopback, apps on Unix sockets only their sidecar
can reach).
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
    app_socket: Path  # the app listens here, and only its sidecar connects
    inbound_port: int  # mTLS from callers
    egress_port: int  # the app's HTTP proxy for calls to peers
    admin_port: int
    cert: Path
    key: Path

    @property
    def name(self) -> str:
        return f"{self.service}-{self.replica}"


@dataclass(frozen=True)
class IngressPlacement:
    port: int
    admin_port: int
    cert: Path
    key: Path


@dataclass(frozen=True)
class Placement:
    host: str
    root_cert: Path
    ingress: IngressPlacement
    instances: dict[str, tuple[Instance, ...]]
    otlp: tuple[str, int] | None = None  # where sidecars send spans (OTLP/HTTP); None: no tracing

    def all_instances(self) -> list[Instance]:
        return [i for group in self.instances.values() for i in group]


def local_placement(
    topology: Topology,
    run_dir: Path,
    public_port: int,
    base_port: int,
    host: str = "127.0.0.1",
    otlp_port: int | None = None,
) -> Placement:
    """Ports from ``base_port``: the ingress admin first, then ten ports per instance."""
    certs = run_dir / "certs"
    sockets = run_dir / "sockets"
    instances: dict[str, tuple[Instance, ...]] = {}
    slot = 1
    for svc in topology.services.values():
        group = []
        for r in range(svc.replicas):
            base = base_port + 10 * slot
            name = f"{svc.name}-{r}"
            group.append(
                Instance(
                    service=svc.name,
                    replica=r,
                    app_socket=sockets / f"{name}.sock",
                    admin_port=base,
                    inbound_port=base + 1,
                    egress_port=base + 2,
                    cert=certs / f"{svc.name}-cert.pem",
                    key=certs / f"{svc.name}-key.pem",
                )
            )
            slot += 1
        instances[svc.name] = tuple(group)
    ingress = IngressPlacement(
        port=public_port,
        admin_port=base_port,
        cert=certs / "ingress-cert.pem",
        key=certs / "ingress-key.pem",
    )
    otlp = (host, otlp_port) if otlp_port else None
    return Placement(host, certs / "root-cert.pem", ingress, instances, otlp)
