"""Render the Kubernetes + Istio tree ``istio/`` from the topology (pure: topology in, files out).

``istio/`` is a kustomization (``kubectl apply -k istio/``) of two parts, plus the mesh config
for ``istioctl install -f istio/istio-operator.yaml``:

- ``base/``: the namespace (sidecar injection on); per service ``<name>.yaml`` (ServiceAccount,
  Deployment, Service, SQLite claim); ``redis.yaml``; ``tracing.yaml`` (Collector + Jaeger);
  ``locust.yaml``; ``ingress.yaml`` (the Gateway ``boutique`` and the VirtualService ``ingress``).
- ``mesh/``: ``namespace.yaml`` (PeerAuthentication STRICT, default deny, Telemetry) and per
  service ``<name>.yaml``: its VirtualService (when it has callers), DestinationRule, Sidecar
  (the hosts its app may reach) and AuthorizationPolicy; ``redis.yaml``: who may reach Redis;
  ``ingress.yaml``: the edge's admission (DestinationRules for the ingress gateway's pods) and
  rate limit (the one EnvoyFilter, ``istio_edge``).

Names others rely on (``istio/experiments/<name>/`` overlays patch them): every callee service
has exactly one VirtualService, named after the service, in the topology's namespace
(``boutique``), with routes named ``<caller>-safe-method``, ``<caller>-idempotent`` and
``<caller>-other``; the edge's routes are in the VirtualService ``ingress`` (``to-<service>``).
"""

from __future__ import annotations

from typing import Any

import yaml

from mesh.topology import Topology

from . import istio_edge as edge
from . import istio_security as security
from . import istio_traffic as traffic
from . import istio_workloads as workloads
from .istio_meta import check

HEADER = (
    "# Rendered from mesh/topology.yaml by `boutique render` (make k8s-render). Do not edit:\n"
    "# change the topology and render again.\n"
)
KUSTOMIZE = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization"}
OPERATOR = "istio-operator.yaml"


class _Dumper(yaml.SafeDumper):
    """Block style, keys in the order written, multi-line strings as literal blocks, no aliases."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump(objects: list[dict[str, Any]]) -> str:
    body = yaml.dump_all(objects, Dumper=_Dumper, sort_keys=False, explicit_start=True, width=100)
    return HEADER + body


def _kustomization(resources: list[str]) -> dict[str, Any]:
    return {**KUSTOMIZE, "resources": resources}


def base(topology: Topology) -> dict[str, list[dict[str, Any]]]:
    files = {"namespace.yaml": [workloads.namespace(topology)]}
    for svc in topology.services.values():
        files[f"{svc.name}.yaml"] = workloads.service_workload(topology, svc)
    files["redis.yaml"] = workloads.redis(topology)
    files["tracing.yaml"] = workloads.tracing(topology)
    files["locust.yaml"] = workloads.locust(topology)
    files["ingress.yaml"] = traffic.gateway(topology)
    return files


def mesh(topology: Topology) -> dict[str, list[dict[str, Any]]]:
    files = {"namespace.yaml": security.namespace_policies(topology)}
    for name, svc in topology.services.items():
        vs = [traffic.virtual_service(topology, name)] if topology.callers(name) else []
        files[f"{name}.yaml"] = [
            *vs,
            traffic.destination_rule(topology, name),
            traffic.sidecar(topology, svc),
            security.authorization(topology, name),
        ]
    files["redis.yaml"] = [security.redis_authorization(topology)]
    limited = [edge.route_name(op) for op in topology.rate_limit.operations]
    files["ingress.yaml"] = [
        *traffic.ingress_destination_rules(topology),
        *edge.rate_limit_filter(topology, limited),
    ]
    return files


def objects(topology: Topology) -> dict[str, list[dict[str, Any]]]:
    """Every rendered file under ``istio/`` (relative path) with its objects."""
    check(topology)
    out: dict[str, list[dict[str, Any]]] = {}
    for part, files in (("base", base(topology)), ("mesh", mesh(topology))):
        for name, objs in files.items():
            out[f"{part}/{name}"] = objs
        out[f"{part}/kustomization.yaml"] = [_kustomization(list(files))]
    out["kustomization.yaml"] = [_kustomization(["base", "mesh"])]
    out[OPERATOR] = [security.istio_operator(topology)]
    return out


def render(topology: Topology) -> dict[str, str]:
    """Every file under ``istio/`` (relative path) with its text."""
    return {path: dump(objs) for path, objs in objects(topology).items()}
