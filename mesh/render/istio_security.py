"""Istio security and telemetry: mTLS STRICT, who may call whom, traces to the Collector, and
the mesh config ``istioctl install -f istio/istio-operator.yaml`` needs.

- PeerAuthentication ``default``: STRICT mTLS for the whole namespace.
- AuthorizationPolicy ``allow-nothing``: the namespace denies by default; then per service one
  ALLOW policy named after it, with the principals (SPIFFE ids, as in the local mode) of its
  declared callers, and the ingress gateway's for a service the ingress routes to; Redis admits
  the services that keep a store in it.
- Telemetry ``tracing``: every sidecar's spans to the Collector (the ``otel`` extensionProvider).
"""

from __future__ import annotations

from typing import Any

from mesh.topology import Topology

from .istio_meta import (
    COLLECTOR,
    OTEL_PROVIDER,
    OTLP_GRPC,
    REDIS,
    SECURITY,
    TELEMETRY,
    fqdn,
    ingress_principal,
    meta,
    obj,
    principal,
)


def callers_principals(topology: Topology, service: str) -> list[str]:
    """The principals allowed to call ``service``: its callers', then the ingress gateway's."""
    out = [principal(topology, c) for c in topology.callers(service)]
    if topology.exposed(service):
        out.append(ingress_principal(topology))
    return out


def _allow(topology: Topology, name: str, principals: list[str]) -> dict[str, Any]:
    rules = [{"from": [{"source": {"principals": principals}}]}] if principals else []
    return obj(
        SECURITY,
        "AuthorizationPolicy",
        meta(name, topology.namespace, app=name),
        spec={
            "selector": {"matchLabels": {"app": name}},
            "action": "ALLOW",
            "rules": rules,
        },
    )


def authorization(topology: Topology, service: str) -> dict[str, Any]:
    """One service's ALLOW policy; with no callers, no rule, so nothing is allowed."""
    return _allow(topology, service, callers_principals(topology, service))


def redis_authorization(topology: Topology) -> dict[str, Any]:
    owners = [s.name for s in topology.services.values() if "redis" in s.stores]
    return _allow(topology, REDIS, [principal(topology, s) for s in owners])


def namespace_policies(topology: Topology) -> list[dict[str, Any]]:
    ns = topology.namespace
    return [
        obj(SECURITY, "PeerAuthentication", meta("default", ns), spec={"mtls": {"mode": "STRICT"}}),
        obj(SECURITY, "AuthorizationPolicy", meta("allow-nothing", ns), spec={}),
        obj(
            TELEMETRY,
            "Telemetry",
            meta("tracing", ns),
            spec={
                "tracing": [
                    {
                        "providers": [{"name": OTEL_PROVIDER}],
                        "randomSamplingPercentage": topology.sampling,
                    }
                ]
            },
        ),
    ]


def istio_operator(topology: Topology) -> dict[str, Any]:
    """The IstioOperator for ``istioctl install -f``: trust domain and the trace provider."""
    return {
        "apiVersion": "install.istio.io/v1alpha1",
        "kind": "IstioOperator",
        "metadata": {"name": "boutique", "namespace": "istio-system"},
        "spec": {
            "profile": "default",
            "meshConfig": {
                "trustDomain": topology.trust_domain,
                "accessLogFile": "/dev/stdout",
                "extensionProviders": [
                    {
                        "name": OTEL_PROVIDER,
                        "opentelemetry": {
                            "service": fqdn(topology, COLLECTOR),
                            "port": OTLP_GRPC,
                        },
                    }
                ],
            },
        },
    }
