"""What every Istio/Kubernetes renderer shares: names, labels, host names, durations, and the
check that stops a render when Kubernetes or Istio cannot carry what the topology says."""

from __future__ import annotations

from typing import Any

from mesh.topology import Topology, TopologyError

IMAGE = "mesh-boutique:latest"  # built from the project's Dockerfile (`boutique serve <name>`)
APP_UID = 10001  # the Dockerfile's non-root user
VERSION = "v1"
SERVICE_PORT = 80  # a peer is called as http://<peer>/, so every Service listens on 80
INGRESS_NAMESPACE = "istio-system"
INGRESS_SELECTOR = {"istio": "ingressgateway"}
INGRESS_SERVICE_ACCOUNT = "istio-ingressgateway-service-account"
GATEWAY_NAME = "boutique"  # the Istio Gateway the ingress VirtualService binds to
INGRESS_VS_NAME = "ingress"
OTEL_PROVIDER = "otel"  # the extensionProvider's name in istio-operator.yaml
# Infrastructure the renderers add; a topology service of the same name would collide with it.
REDIS, COLLECTOR, JAEGER, LOCUST = "redis", "otel-collector", "jaeger", "locust"
INFRASTRUCTURE = (REDIS, COLLECTOR, JAEGER, LOCUST, INGRESS_VS_NAME)
REDIS_PORT, OTLP_GRPC, OTLP_HTTP, JAEGER_UI, LOCUST_UI = 6379, 4317, 4318, 16686, 8089
# Ports the injected sidecar takes for itself in every pod (Istio's "ports used by Istio").
ISTIO_PORTS = frozenset({15000, 15001, 15004, 15006, 15008, 15009, 15020, 15021, 15053, 15090})
NETWORKING = "networking.istio.io/v1"
SECURITY = "security.istio.io/v1"
TELEMETRY = "telemetry.istio.io/v1"


class IstioRenderError(TopologyError):
    """The topology says something Kubernetes or Istio cannot carry; the message names where."""


def meta(name: str, namespace: str | None, **labels: str) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name}
    if namespace is not None:
        out["namespace"] = namespace
    if labels:
        out["labels"] = dict(labels)
    return out


def obj(api: str, kind: str, metadata: dict[str, Any], **body: Any) -> dict[str, Any]:
    return {"apiVersion": api, "kind": kind, "metadata": metadata, **body}


def fqdn(topology: Topology, service: str) -> str:
    return f"{service}.{topology.namespace}.svc.cluster.local"


def principal(topology: Topology, service: str) -> str:
    """An Istio principal: the SPIFFE id without ``spiffe://`` (the same id as the local mode's)."""
    return topology.spiffe_id(service).removeprefix("spiffe://")


def ingress_principal(topology: Topology) -> str:
    return f"{topology.trust_domain}/ns/{INGRESS_NAMESPACE}/sa/{INGRESS_SERVICE_ACCOUNT}"


def duration(ms: int) -> str:
    """Milliseconds as an Istio duration: ``3s`` or ``600ms``."""
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


def check(topology: Topology) -> None:
    """Stop with the place named when the topology cannot be rendered for Kubernetes + Istio."""
    r = topology.readiness
    for key, value in (("interval", r.interval_ms), ("timeout", r.timeout_ms)):
        if value % 1000:
            raise IstioRenderError(
                f"mesh.readiness.{key}: {value}ms; a Kubernetes readinessProbe counts whole seconds"
            )
    if topology.admission.max_pending == 0:
        raise IstioRenderError(
            "mesh.ingress.admission.max_pending: 0 (nothing waits) cannot be said to Istio, "
            "which reads 0 as its default (no limit)"
        )
    for svc in topology.services.values():
        where = f"services.{svc.name}"
        if svc.name in INFRASTRUCTURE:
            raise IstioRenderError(
                f"{where}: on Kubernetes the name {svc.name!r} is taken by the rendered "
                f"infrastructure ({', '.join(INFRASTRUCTURE)}); rename the service"
            )
        if svc.port < 1024:
            raise IstioRenderError(
                f"{where}.port: {svc.port} is below 1024, which a non-root container cannot bind"
            )
        if svc.port in ISTIO_PORTS:
            raise IstioRenderError(
                f"{where}.port: {svc.port} is one of the ports Istio's sidecar takes in every pod "
                f"({', '.join(map(str, sorted(ISTIO_PORTS)))})"
            )
