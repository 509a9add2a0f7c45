"""Istio traffic resources: the ingress Gateway and its VirtualService, and per callee service
one VirtualService and one DestinationRule.

A callee's VirtualService is named after the service, in the topology's namespace; it holds, per
caller (``sourceLabels: {app: <caller>}``), the three routes the caller's local sidecar has for
that peer, in the same order and with the same timeout and retries:
``<caller>-safe-method`` (GET, HEAD, OPTIONS, PUT, DELETE: the call's retry policy),
``<caller>-idempotent`` (an ``Idempotency-Key`` header: the same) and ``<caller>-other``
(anything else: retried only when it never reached the app).

A DestinationRule applies to every caller of a host, while the topology gives each call its own
circuit breaker and outlier detection. Where the callers of one service disagree, the rendered
rule takes the strictest value of each field (:func:`strictest`): the smallest limits and
connect timeout, the fewest errors before ejection, the shortest interval, the longest ejection,
the largest share ejected.
"""

from __future__ import annotations

from typing import Any

from mesh.topology import CallPolicy, CircuitBreaker, OutlierDetection, Service, Topology

from . import istio_edge as edge
from .envoy_pieces import IDEMPOTENCY_HEADER, NEVER_REACHED, SAFE_METHODS
from .istio_meta import (
    COLLECTOR,
    GATEWAY_NAME,
    INGRESS_NAMESPACE,
    INGRESS_SELECTOR,
    INGRESS_VS_NAME,
    NETWORKING,
    REDIS,
    SERVICE_PORT,
    duration,
    fqdn,
    meta,
    obj,
)


def _destination(topology: Topology, service: str) -> dict[str, Any]:
    return {"destination": {"host": fqdn(topology, service), "port": {"number": SERVICE_PORT}}}


def retries(on: str, attempts: int, per_try_ms: int) -> dict[str, Any]:
    """Istio's retries; ``attempts: 0`` written out, since no ``retries`` means Istio's default."""
    if attempts == 0:
        return {"attempts": 0}
    return {"attempts": attempts, "perTryTimeout": duration(per_try_ms), "retryOn": on}


def caller_routes(
    topology: Topology, caller: str, callee: str, policy: CallPolicy
) -> list[dict[str, Any]]:
    r = policy.retries
    source = {"sourceLabels": {"app": caller}}
    base = {
        "route": [_destination(topology, callee)],
        "timeout": duration(policy.timeout_ms),
        # the callee's sidecar sets it from the verified user token; a caller never does
        "headers": {"request": {"remove": [topology.user_token.user_header]}},
    }
    full = retries(",".join(r.on), r.attempts, r.per_try_timeout_ms)
    never = retries(NEVER_REACHED, r.attempts, r.per_try_timeout_ms)
    method = {"method": {"regex": SAFE_METHODS}}
    keyed = {"headers": {IDEMPOTENCY_HEADER: {"regex": ".*"}}}
    return [
        {"name": f"{caller}-safe-method", "match": [{**source, **method}], **base, "retries": full},
        {"name": f"{caller}-idempotent", "match": [{**source, **keyed}], **base, "retries": full},
        {"name": f"{caller}-other", "match": [source], **base, "retries": never},
    ]


def virtual_service(topology: Topology, callee: str) -> dict[str, Any]:
    """The callee's VirtualService (named after it): its callers' routes, in topology order."""
    routes = [
        route
        for caller in topology.callers(callee)
        for route in caller_routes(topology, caller, callee, topology.service(caller).calls[callee])
    ]
    return obj(
        NETWORKING,
        "VirtualService",
        meta(callee, topology.namespace, app=callee),
        spec={"hosts": [fqdn(topology, callee)], "http": routes},
    )


def strictest(policies: list[CallPolicy]) -> tuple[CircuitBreaker, OutlierDetection, int]:
    """One host's circuit breaker, outlier detection and connect timeout, from all its callers'
    policies."""
    cbs = [p.circuit_breaker for p in policies]
    ods = [p.outlier_detection for p in policies]
    cb = CircuitBreaker(
        max_connections=min(c.max_connections for c in cbs),
        max_pending_requests=min(c.max_pending_requests for c in cbs),
        max_requests=min(c.max_requests for c in cbs),
        max_retries=min(c.max_retries for c in cbs),
    )
    od = OutlierDetection(
        consecutive_5xx=min(o.consecutive_5xx for o in ods),
        interval_ms=min(o.interval_ms for o in ods),
        base_ejection_time_ms=max(o.base_ejection_time_ms for o in ods),
        max_ejection_percent=max(o.max_ejection_percent for o in ods),
    )
    return cb, od, min(p.connect_timeout_ms for p in policies)


def traffic_policy(cb: CircuitBreaker, od: OutlierDetection, connect_ms: int) -> dict[str, Any]:
    return {
        "connectionPool": {
            "tcp": {"maxConnections": cb.max_connections, "connectTimeout": duration(connect_ms)},
            "http": {
                "http1MaxPendingRequests": cb.max_pending_requests,
                "http2MaxRequests": cb.max_requests,
                "maxRetries": cb.max_retries,
            },
        },
        "outlierDetection": {
            "consecutive5xxErrors": od.consecutive_5xx,
            "consecutiveGatewayErrors": od.consecutive_5xx,
            "interval": duration(od.interval_ms),
            "baseEjectionTime": duration(od.base_ejection_time_ms),
            "maxEjectionPercent": od.max_ejection_percent,
        },
        "tls": {"mode": "ISTIO_MUTUAL"},
    }


def destination_rule(topology: Topology, callee: str) -> dict[str, Any]:
    """The callee's DestinationRule (named after it) for its callers' pods; mTLS even for a
    service nobody calls. The ingress gateway has its own (:func:`ingress_destination_rules`)."""
    policies = [topology.service(c).calls[callee] for c in topology.callers(callee)]
    cb, od, connect_ms = strictest(policies or [topology.defaults])
    return obj(
        NETWORKING,
        "DestinationRule",
        meta(callee, topology.namespace, app=callee),
        spec={"host": fqdn(topology, callee), "trafficPolicy": traffic_policy(cb, od, connect_ms)},
    )


def gateway(topology: Topology) -> list[dict[str, Any]]:
    """The Istio Gateway on the ingress gateway's port 80, and the routes the local edge has."""
    gw = obj(
        NETWORKING,
        "Gateway",
        meta(GATEWAY_NAME, topology.namespace),
        spec={
            "selector": dict(INGRESS_SELECTOR),
            "servers": [
                {"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}
            ],
        },
    )
    routes = [
        {
            "name": f"to-{r.service}",
            "match": [{"uri": {"prefix": r.prefix}}],
            "route": [_destination(topology, r.service)],
            "timeout": duration(r.timeout_ms),
            "headers": {"request": {"remove": [topology.user_token.user_header]}},
            "retries": retries(
                ",".join(r.retries.on), r.retries.attempts, r.retries.per_try_timeout_ms
            ),
        }
        for r in topology.ingress_routes
    ]
    routes = edge.limited_routes(topology, routes)
    vs = obj(
        NETWORKING,
        "VirtualService",
        meta(INGRESS_VS_NAME, topology.namespace),
        spec={"hosts": ["*"], "gateways": [GATEWAY_NAME], "http": routes},
    )
    return [gw, vs]


def sidecar(topology: Topology, svc: Service) -> dict[str, Any]:
    """The service's Sidecar: its app reaches the peers it may call (and the Collector, and Redis
    for a Redis store) and no other host, as the local egress refuses an undeclared host."""
    hosts = [*svc.calls, COLLECTOR, *([REDIS] if "redis" in svc.stores else [])]
    return obj(
        NETWORKING,
        "Sidecar",
        meta(svc.name, topology.namespace, app=svc.name),
        spec={
            "workloadSelector": {"labels": {"app": svc.name}},
            "egress": [{"hosts": [f"./{fqdn(topology, h)}" for h in hosts]}],
            "outboundTrafficPolicy": {"mode": "REGISTRY_ONLY"},
        },
    )


def edge_breaker(topology: Topology) -> CircuitBreaker:
    """The ingress's limits per service (``mesh.ingress.admission``), as the local edge has them:
    ``max_requests`` in flight (a connection each), ``max_pending`` waiting."""
    a = topology.admission
    return CircuitBreaker(
        max_connections=a.max_requests,
        max_pending_requests=a.max_pending,
        max_requests=a.max_requests,
        max_retries=max(3, a.max_requests // 4),
    )


def ingress_destination_rules(topology: Topology) -> list[dict[str, Any]]:
    """Per service the ingress routes to, a DestinationRule for the ingress gateway's own pods
    (``workloadSelector``, in their namespace): the edge's admission as its connection pool, the
    defaults' outlier detection, mTLS."""
    d = topology.defaults
    policy = traffic_policy(edge_breaker(topology), d.outlier_detection, d.connect_timeout_ms)
    return [
        obj(
            NETWORKING,
            "DestinationRule",
            meta(f"{INGRESS_VS_NAME}-{service}", INGRESS_NAMESPACE, app=service),
            spec={
                "host": fqdn(topology, service),
                "workloadSelector": {"matchLabels": dict(INGRESS_SELECTOR)},
                "exportTo": ["."],
                "trafficPolicy": policy,
            },
        )
        for service in dict.fromkeys(r.service for r in topology.ingress_routes)
    ]
