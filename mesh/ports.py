"""Every TCP port a local run uses, planned in one place.

A :class:`PortPlan` names the public port, the first of the sidecars' block (the ingress admin,
then ten ports per instance: admin, inbound, egress), redis, the trace store's two ports, and the
apps' own ports when they run without a mesh. :data:`DEFAULT` is what ``boutique up`` uses;
:meth:`PortPlan.free` plans a run beside others (tests, the benchmark): all its ports come from
one block checked free as a whole, so no two of them, chosen separately, can land in each other's
range.
"""

from __future__ import annotations

import random
import socket
from dataclasses import dataclass, field, replace

from .topology import Topology

HOST = "127.0.0.1"
PORTS_PER_INSTANCE = 10  # admin, inbound, egress, and room to grow
FREE_RANGE = (20000, 60000)  # where free blocks are looked for


def port_in_use(port: int, host: str = HOST) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def free_port(host: str = HOST) -> int:
    """One port free right now (the system's pick): for a single server, never for a run."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def free_block(size: int, host: str = HOST) -> int:
    """The first of ``size`` consecutive ports, all free right now."""
    for _ in range(200):
        base = random.randrange(FREE_RANGE[0], FREE_RANGE[1] - size)
        if not any(port_in_use(p, host) for p in range(base, base + size)):
            return base
    raise RuntimeError(f"no block of {size} free ports")


def sidecar_block(topology: Topology) -> int:
    """How many ports the sidecars and the ingress admin take from ``base``."""
    instances = sum(s.replicas for s in topology.services.values())
    return PORTS_PER_INSTANCE * (instances + 1)


@dataclass(frozen=True)
class PortPlan:
    public: int  # the ingress (or, without the mesh, the gateway)
    base: int  # the sidecars' block starts here
    redis: int
    otlp: int  # the trace store's OTLP/HTTP receiver
    traces: int  # the trace store's Jaeger query API and trace view
    apps: dict[str, int] = field(default_factory=dict)  # without the mesh; else the topology's

    @classmethod
    def free(cls, topology: Topology, host: str = HOST) -> PortPlan:
        """Every port from one block checked free as a whole: the sidecars' block, then the
        public, redis and trace store ports, then one per app."""
        sidecars = sidecar_block(topology)
        base = free_block(sidecars + 4 + len(topology.services), host)
        extra = iter(range(base + sidecars, base + sidecars + 4 + len(topology.services)))
        public, redis, otlp, traces = next(extra), next(extra), next(extra), next(extra)
        apps = {name: next(extra) for name in topology.services}
        return cls(public, base, redis, otlp, traces, apps)

    def with_public(self, port: int) -> PortPlan:
        return replace(self, public=port)

    def cli_args(self) -> list[str]:
        """The plan as ``boutique up`` options."""
        return [
            *("--port", str(self.public), "--base-port", str(self.base)),
            *("--redis-port", str(self.redis)),
            *("--otlp-port", str(self.otlp), "--traces-port", str(self.traces)),
        ]


DEFAULT = PortPlan(public=8080, base=15000, redis=6380, otlp=4318, traces=16686)
