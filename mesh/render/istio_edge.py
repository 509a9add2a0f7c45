"""The edge's rate limit on Istio: the ingress gateway's local rate limit, per operation.

Istio has no v1 resource for it, so this is the one EnvoyFilter (``networking.istio.io/
v1alpha3``) of ``istio/``: the local rate-limit filter inserted (off) into the ingress gateway's
HTTP filters, and a token bucket on each rate-limited route of the VirtualService ``ingress``
(``rate-limited-<method>-<path>``, an exact-path copy of the route that would serve it, in
front), as the local ingress has it. Over the bucket: 429 with ``Retry-After: 1`` (Envoy's plain
text; locally problem+json).
"""

from __future__ import annotations

import copy
import re
from typing import Any

from mesh.access import Operation
from mesh.topology import Topology

from .envoy_security import LOCAL_RATE_LIMIT, bucket
from .istio_meta import INGRESS_NAMESPACE, INGRESS_SELECTOR, meta, obj

ENVOY_FILTER_API = "networking.istio.io/v1alpha3"  # EnvoyFilter has no v1
FILTER = "envoy.filters.http.local_ratelimit"
HCM = "envoy.filters.network.http_connection_manager"


def route_name(op: Operation) -> str:
    return "rate-limited-" + re.sub(r"[^a-z0-9]+", "-", f"{op.method} {op.path}".lower()).strip("-")


def limited_routes(topology: Topology, routes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``routes`` (the ingress VirtualService's) with the rate-limited copies in front."""
    front = []
    for op in topology.rate_limit.operations:
        base = next((r for r in routes if op.path.startswith(r["match"][0]["uri"]["prefix"])), None)
        if base is None:
            continue
        route = copy.deepcopy(base)
        route["name"] = route_name(op)
        route["match"] = [{"uri": {"exact": op.path}, "method": {"exact": op.method}}]
        front.append(route)
    return [*front, *routes]


def rate_limit_filter(topology: Topology, route_names: list[str]) -> list[dict[str, Any]]:
    """The EnvoyFilter for the ingress gateway's pods; none when nothing is rate-limited."""
    if not route_names:
        return []
    insert = {
        "applyTo": "HTTP_FILTER",
        "match": {
            "context": "GATEWAY",
            "listener": {
                "filterChain": {
                    "filter": {"name": HCM, "subFilter": {"name": "envoy.filters.http.router"}}
                }
            },
        },
        "patch": {
            "operation": "INSERT_BEFORE",
            "value": {
                "name": FILTER,
                "typed_config": {"@type": LOCAL_RATE_LIMIT, "stat_prefix": "edge_rate_limit"},
            },
        },
    }
    per_route = [
        {
            "applyTo": "HTTP_ROUTE",
            "match": {
                "context": "GATEWAY",
                "routeConfiguration": {"vhost": {"route": {"name": name}}},
            },
            "patch": {
                "operation": "MERGE",
                "value": {
                    "typed_per_filter_config": {FILTER: bucket(topology.rate_limit.per_second)}
                },
            },
        }
        for name in route_names
    ]
    return [
        obj(
            ENVOY_FILTER_API,
            "EnvoyFilter",
            meta("edge-rate-limit", INGRESS_NAMESPACE),
            spec={
                "workloadSelector": {"labels": dict(INGRESS_SELECTOR)},
                "configPatches": [insert, *per_route],
            },
        )
    ]
