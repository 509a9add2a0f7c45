"""The sidecars of a running mesh, as :class:`faults.Proxy` objects.

Locally: every instance's Envoy admin through the one admin client (``mesh.admin``), at the
addresses the local run gives (never hard-coded: TCP or Unix sockets, whatever the run uses).
"""

from __future__ import annotations

from dataclasses import dataclass

from mesh.admin import Admin
from mesh.local import LocalRun


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
