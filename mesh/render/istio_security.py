"""Istio security and telemetry: mTLS STRICT, who may call whom, traces to the Collector, and
the mesh config ``istioctl install -f istio/istio-operator.yaml`` needs.

- PeerAuthentication ``default``: STRICT mTLS for the whole namespace.
- AuthorizationPolicy ``allow-nothing``: the namespace denies by default; then per service one
  ALLOW policy named after it, one rule per declared caller: its principal (the SPIFFE id, as in
  the local mode) and the operations its ``allow`` lists (methods and paths; a ``{name}``
  segment becomes Istio's one-segment template ``{*}``), plus the ingress gateway's principal
  for a service the ingress routes to. A ``user_scoped`` service also wants a verified user
  token (``requestPrincipals``: the token's issuer). A caller with an ``allow`` list may also
  read ``/healthz`` and ``/readyz``, without a user, as locally. Redis admits the services that
  keep a store in it.
- Telemetry ``tracing``: every sidecar's spans to the Collector (the ``otel`` extensionProvider).
"""

from __future__ import annotations

from typing import Any

from mesh.access import Operation
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


def operations(ops: tuple[Operation, ...]) -> list[dict[str, Any]]:
    """``allow`` as Istio operations, one per method (paths in the order written)."""
    by_method: dict[str, list[str]] = {}
    for op in ops:
        path = "/" + "/".join("{*}" if s.startswith("{") else s for s in op.segments)
        by_method.setdefault(op.method, []).append(path)
    return [{"operation": {"methods": [m], "paths": paths}} for m, paths in by_method.items()]


HEALTH = (Operation("GET", "/healthz"), Operation("GET", "/readyz"))


def _rule(
    principal_: str, ops: tuple[Operation, ...] | None, user_issuer: str | None
) -> dict[str, Any]:
    source: dict[str, Any] = {"principals": [principal_]}
    if user_issuer:
        source["requestPrincipals"] = [f"{user_issuer}/*"]
    rule: dict[str, Any] = {"from": [{"source": source}]}
    if ops is not None:
        rule["to"] = operations(ops)
    return rule


def _allow(topology: Topology, name: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
    return obj(
        SECURITY,
        "AuthorizationPolicy",
        meta(name, topology.namespace, app=name),
        spec={"selector": {"matchLabels": {"app": name}}, "action": "ALLOW", "rules": rules},
    )


def authorization(topology: Topology, service: str) -> dict[str, Any]:
    """One service's ALLOW policy; with no callers, no rule, so nothing is allowed."""
    user = topology.user_token.issuer if topology.service(service).user_scoped else None
    callers = {
        principal(topology, c): topology.allowed(c, service) for c in topology.callers(service)
    }
    if topology.exposed(service):
        callers[ingress_principal(topology)] = None  # the edge forwards the public API whole
    rules = []
    for who, ops in callers.items():
        rules.append(_rule(who, ops, user))
        if ops is not None:
            rules.append(_rule(who, HEALTH, None))  # a caller may always ask if it is up
    return _allow(topology, service, rules)


def request_authentication(topology: Topology, jwks: str) -> dict[str, Any]:
    """Every sidecar verifies the user token (``X-User-Token``) with the install's public key
    and hands its app the verified subject as ``X-User-Id``; applied by `make k8s-secrets`,
    which mints the key."""
    token = topology.user_token
    rule = {
        "issuer": token.issuer,
        "audiences": [token.audience],
        "jwks": jwks,
        "fromHeaders": [{"name": token.header}],
        "forwardOriginalToken": True,
        "outputClaimToHeaders": [{"header": token.user_header, "claim": "sub"}],
    }
    return obj(
        SECURITY,
        "RequestAuthentication",
        meta("user-token", topology.namespace),
        spec={"jwtRules": [rule]},
    )


def redis_authorization(topology: Topology) -> dict[str, Any]:
    owners = [
        principal(topology, s.name) for s in topology.services.values() if "redis" in s.stores
    ]
    return _allow(
        topology, REDIS, [{"from": [{"source": {"principals": owners}}]}] if owners else []
    )


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
