"""The sidecars of a running mesh, as :class:`faults.Proxy` objects.

Locally: every instance's Envoy admin, at the addresses the local run gives (never hard-coded).
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from mesh.local import LocalRun


@dataclass
class LocalProxy:
    name: str
    service: str
    admin_url: str

    def _get(self, path: str, method: str = "GET") -> str:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        req = urllib.request.Request(self.admin_url + path, method=method)
        with opener.open(req, timeout=10) as resp:
            return resp.read().decode()

    def runtime_modify(self, values: dict[str, str]) -> None:
        self._get("/runtime_modify?" + urllib.parse.urlencode(values), method="POST")

    def admin_layer(self) -> dict[str, str]:
        data: dict[str, Any] = json.loads(self._get("/runtime"))
        layers = data.get("layers", [])
        if "admin" not in layers:
            return {}
        at = layers.index("admin")
        out = {}
        for key, entry in data.get("entries", {}).items():
            values = entry.get("layer_values", [])
            if at < len(values) and values[at] != "":
                out[key] = values[at]
        return out

    def counters(self, pattern: str) -> dict[str, int]:
        text = self._get("/stats?" + urllib.parse.urlencode({"filter": pattern}))
        out = {}
        for line in text.splitlines():
            name, _, value = line.partition(": ")
            if value.strip().isdigit():
                out[name] = int(value)
        return out


def local_proxies(run: LocalRun) -> list[LocalProxy]:
    """Every sidecar of the local run, and its ingress (service ``ingress``)."""
    assert run.placement is not None, "no sidecars without the mesh"
    proxies = [
        LocalProxy(i.name, i.service, run.admin_url(i.name)) for i in run.placement.all_instances()
    ]
    proxies.append(LocalProxy("ingress", "ingress", run.admin_url("ingress")))
    return proxies
