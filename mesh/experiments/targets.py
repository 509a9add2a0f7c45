"""The sidecars of a running mesh, as :class:`faults.Proxy` objects.

Locally: every instance's Envoy admin through the one admin client (``mesh.admin``), at the
addresses the local run gives (never hard-coded: TCP or Unix sockets, whatever the run uses).
In compose: ``docker exec`` into each sidecar container, through the stack's own helper.
"""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass
from typing import Any

from mesh.admin import Admin, admin_layer, parse_stats
from mesh.local import LocalRun
from mesh.placement import POD_ADMIN_PORT
from mesh.topology import Topology


@dataclass
class LocalProxy:
    name: str
    service: str
    admin: Admin

    def runtime_modify(self, values: dict[str, str]) -> None:
        self.admin.runtime_modify(values)

    def admin_layer(self) -> dict[str, str]:
        return self.admin.admin_layer()

    def counters(self, pattern: str) -> dict[str, int]:
        return self.admin.stats(pattern)


def local_proxies(run: LocalRun) -> list[LocalProxy]:
    """Every sidecar of the local run, and its ingress (service ``ingress``)."""
    assert run.placement is not None, "no sidecars without the mesh"
    proxies = [
        LocalProxy(i.name, i.service, Admin(run.admin_url(i.name)))
        for i in run.placement.all_instances()
    ]
    proxies.append(LocalProxy("ingress", "ingress", Admin(run.admin_url("ingress"))))
    return proxies


@dataclass
class ComposeProxy:
    """A sidecar of the compose stack: its admin is on its pod's loopback only, so every call
    is a ``docker exec`` into the sidecar's container, asking with the image's own probe."""

    name: str
    service: str
    stack: Any  # containers.daemon.Stack
    container: str

    def _admin(self, path: str, params: dict[str, str] | None = None, method: str = "GET") -> str:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        url = f"http://127.0.0.1:{POD_ADMIN_PORT}{path}{query}"
        argv = ("exec", self.container, "python3", "-m", "mesh.probe", "-X", method, url)
        return str(self.stack.daemon.docker(*argv, timeout=60))

    def runtime_modify(self, values: dict[str, str]) -> None:
        self._admin("/runtime_modify", values, method="POST")

    def admin_layer(self) -> dict[str, str]:
        return admin_layer(json.loads(self._admin("/runtime")))

    def counters(self, pattern: str) -> dict[str, int]:
        return parse_stats(self._admin("/stats", {"filter": pattern}))


def compose_proxies(stack: Any, topology: Topology) -> list[ComposeProxy]:
    """Every sidecar of the compose stack (``<service>-<replica>``), and its ingress, found by
    the compose labels of the stack's containers."""
    listed = stack.daemon.docker(
        "ps",
        "--filter",
        f"label=com.docker.compose.project={stack.project}",
        "--format",
        '{{.Names}} {{.Label "com.docker.compose.service"}}',
        timeout=30,
    )
    containers = dict(reversed(line.split()) for line in listed.splitlines() if " " in line)
    proxies = [
        ComposeProxy(f"{svc.name}-{r}", svc.name, stack, containers[f"{svc.name}-{r}-sidecar"])
        for svc in topology.services.values()
        for r in range(svc.replicas)
        if f"{svc.name}-{r}-sidecar" in containers
    ]
    if "ingress" in containers:
        proxies.append(ComposeProxy("ingress", "ingress", stack, containers["ingress"]))
    return proxies
