"""The floor (``boutique bench --floor``): the shop's browse/product-page chain of processes with
nothing in it, then the mesh's features added back one layer at a time.

The chain is the shop's: the ingress Envoy, the gateway's sidecar, an app, the same sidecar's
egress, a products sidecar, an app. The apps are bare (``floor_apps``: a relay where the gateway
stands, a leaf answering products' bytes where products stands). The Envoys are the shop's own,
rendered by ``mesh.render`` from the topology cut down to this chain, then stripped to a layer:

- ``bare``: a router only: no TLS, no HTTP filter but the router, no local replies, no access
  log, no tracing. What stays is routing itself: the routes' timeouts and retries, the clusters'
  circuit breakers, outlier detection and readiness checks (the design's readiness, at rest).
- ``mtls``: + mutual TLS on every hop between Envoys (and the client-certificate forwarding).
- ``policy``: + every HTTP filter (the user header's strip, JWT, RBAC, the fault filters, the
  edge's rate limit), the local replies and the access logs: the shop's Envoys, tracing off.
- ``traced``: + tracing at 100% to the trace store: the shop's Envoys as ``boutique up`` runs them.

Shapes: ``two`` (two products instances, as the topology has), ``one`` (one), and ``edge`` (the
ingress and the gateway's sidecar in front of a leaf: no call at all). One call (app -> sidecar
-> sidecar -> app) costs ``one`` less ``edge`` on the same path and rate.
"""

from __future__ import annotations

import dataclasses
import sys
from functools import partial
from pathlib import Path
from typing import Any

import yaml

from mesh import topology as topo
from mesh.local import LocalRun
from mesh.placement import Instance
from mesh.processes import Child, unix_http_ok
from mesh.render import envoy as envoy_config

LAYERS = ("bare", "mtls", "policy", "traced")
LAYER_TEXT = {
    "bare": "router only (no TLS, filters, local replies, access log, tracing)",
    "mtls": "+ mTLS between Envoys",
    "policy": "+ JWT, RBAC, faults, rate limit, local replies, access logs (the shop untraced)",
    "traced": "+ tracing at 100% to the trace store (the shop's Envoys as `boutique up` runs them)",
}
SHAPES = {"two": 2, "one": 1, "edge": 0}  # products instances behind the gateway's relay
ROUTER = "envoy.filters.http.router"
CALLER, CALLEE = "gateway", "products"


def floor_topology(full: topo.Topology, shape: str) -> topo.Topology:
    """The topology cut down to the chain: the gateway (calling products alone) and products
    with the shape's instances; ``edge``: the gateway alone, calling nobody. The policies of
    what stays (timeouts, retries, breakers, allowed operations) are the topology's own."""
    replicas = SHAPES[shape]
    gateway = full.service(CALLER)
    if replicas:
        gateway = dataclasses.replace(
            gateway,
            stores=(),
            calls={CALLEE: gateway.calls[CALLEE]},
            allow={k: v for k, v in gateway.allow.items() if k == CALLEE},
        )
        products = dataclasses.replace(full.service(CALLEE), replicas=replicas, stores=())
        services = {CALLER: gateway, CALLEE: products}
    else:
        services = {CALLER: dataclasses.replace(gateway, stores=(), calls={}, allow={})}
    routes = tuple(r for r in full.ingress_routes if r.service == CALLER)
    return dataclasses.replace(full, services=services, ingress_routes=routes)


def strip(config: Any, layer: str) -> Any:
    """An Envoy bootstrap stripped down to ``layer`` (tracing is rendered or not by the run's
    ``tracing`` option: ``traced`` only). Returns a new structure."""
    keep_tls = LAYERS.index(layer) >= LAYERS.index("mtls")
    keep_policy = LAYERS.index(layer) >= LAYERS.index("policy")
    return _walk(config, keep_tls, keep_policy)


TLS_KEYS = ("transport_socket", "forward_client_cert_details", "set_current_client_cert_details")
POLICY_KEYS = ("local_reply_config", "access_log", "typed_per_filter_config")


def _walk(node: Any, keep_tls: bool, keep_policy: bool) -> Any:
    if isinstance(node, list):
        return [_walk(v, keep_tls, keep_policy) for v in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if (key in TLS_KEYS and not keep_tls) or (key in POLICY_KEYS and not keep_policy):
            continue
        if key == "http_filters" and not keep_policy:
            value = [f for f in value if f.get("name") == ROUTER]
        out[key] = _walk(value, keep_tls, keep_policy)
    return out


def role(service: str, shape: str) -> str:
    """Which bare app stands where: the gateway relays unless nothing stands behind it."""
    return "relay" if service == CALLER and SHAPES[shape] else "leaf"


class FloorRun(LocalRun):
    """The local run of the floor: the shop's runner, with the Envoy configs stripped to the
    layer and bare apps in place of the services."""

    def __init__(self, topology: topo.Topology, options: Any, layer: str, shape: str) -> None:
        if layer not in LAYERS or shape not in SHAPES:
            raise ValueError(f"unknown layer {layer!r} or shape {shape!r}")
        super().__init__(topology, options)
        self.layer, self.shape = layer, shape

    def render(self) -> dict[str, Path]:
        paths = super().render()
        for path in paths.values():
            config = yaml.safe_load(path.read_text())
            path.write_text(envoy_config.dump(strip(config, self.layer)))
        return paths

    def app_child(self, inst: Instance) -> Child:
        assert inst.app_socket is not None
        inst.app_socket.unlink(missing_ok=True)
        env = {
            "UNIX_SOCKET": str(inst.app_socket),
            "PEER_SOCKET": str(inst.egress_socket),
            "PRODUCTS_STOCK": self.options.env.get("PRODUCTS_STOCK", ""),
            "PYTHONUNBUFFERED": "1",
        }
        return Child(
            inst.name,
            [
                sys.executable,
                "-m",
                "loadgenerator.bench.floor_apps",
                role(inst.service, self.shape),
            ],
            self.log(inst.name),
            env=env,
            ready=partial(unix_http_ok, inst.app_socket, "/readyz"),
        )
