"""Render Envoy (v3 API) bootstraps from the topology: one per sidecar, and one for the ingress.

Each is a pure function of the topology, a placement (where everything listens) and
:class:`EnvoyOptions` (how the proxies carry the mesh); the pieces are in ``envoy_pieces.py``.

A sidecar has two listeners:
- ``inbound``: mTLS required; the caller's ``X-User-Id`` dropped, the user token verified and
  its subject set as ``X-User-Id``; RBAC: each caller (its SPIFFE id) only the operations its
  call lists (``envoy_security.py``); the fault filters (off until switched on through the
  runtime); then the app on its Unix socket, health-checked: an app that is not ready gets no
  traffic (``envoy_resilience.py``).
- ``outbound``: the app's egress (locally a Unix socket in the instance's private folder); one
  virtual host per peer the topology allows, carrying the call's timeout and retries, to a
  cluster per peer with circuit breaking, outlier detection and mTLS origination. Any other
  host is refused with 403.
The admin listens on a Unix socket beside the egress where the placement gives one.
The ingress serves the public port (TLS with ``--https``), routes by path prefix as Istio's
ingress gateway does, rate-limits sign-in and sign-up, and admits per service only what the
topology's admission limits allow (a fast 503 beyond).
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from mesh.placement import Instance, Placement
from mesh.topology import CallPolicy, Topology

from . import envoy_security as security
from .envoy_pieces import (
    DOWNSTREAM_TLS,
    FAULT,
    FAULT_STATUS,
    HTTP_OPTIONS,
    HTTP_OPTIONS_KEY,
    IDEMPOTENCY_HEADER,
    NEVER_REACHED,
    SAFE_METHODS,
    UPSTREAM_TLS,
    EnvoyOptions,
    address,
    bootstrap,
    collector_cluster,
    decorator,
    hcm,
    ms,
    peer_cluster,
    problem_route,
    retry_policy,
    socket,
    static_cluster,
    tls_certificate,
    tracing,
)
from .envoy_resilience import (
    admission_breakers,
    not_ready_reply,
    overloaded_reply,
    readiness_check,
    retry_not_ready,
)

__all__ = [
    "DOWNSTREAM_TLS",
    "HTTP_OPTIONS",
    "HTTP_OPTIONS_KEY",
    "UPSTREAM_TLS",
    "EnvoyOptions",
    "dump",
    "ingress",
    "render_all",
    "sidecar",
]

DEFAULT_OPTIONS = EnvoyOptions()


def render_all(
    topology: Topology, placement: Placement, options: EnvoyOptions = DEFAULT_OPTIONS
) -> dict[str, dict[str, Any]]:
    """Every bootstrap of a placement by proxy name: ``cart-0``, ..., ``ingress``."""
    configs = {i.name: sidecar(topology, placement, i, options) for i in placement.all_instances()}
    configs["ingress"] = ingress(topology, placement, options)
    return configs


def dump(config: dict[str, Any]) -> str:
    """A bootstrap as readable YAML, in the order it was built."""
    return yaml.safe_dump(config, sort_keys=False)


# -- a sidecar ----------------------------------------------------------------------------------


def _fault(topology: Topology | None = None, caller: str | None = None) -> dict[str, Any]:
    """A fault filter, off: experiments switch it through the runtime (``fault.http.*``).

    With a ``caller``, it acts only on that caller's requests, as Istio's ``sourceLabels``: it
    matches the caller's SPIFFE id in ``x-forwarded-client-cert``, which this sidecar sets itself
    from the verified client certificate (SANITIZE_SET), so a caller cannot claim another's
    identity; it is switched by ``fault.http.from.<caller>.*``."""
    config: dict[str, Any] = {
        "@type": FAULT,
        "delay": {"fixed_delay": "1s", "percentage": {"numerator": 0}},
        "abort": {"http_status": FAULT_STATUS, "percentage": {"numerator": 0}},
    }
    if topology is not None and caller is not None:
        key = f"fault.http.from.{caller}"
        identity = re.escape(topology.spiffe_id(caller))
        config["headers"] = [
            {
                "name": "x-forwarded-client-cert",
                "string_match": {"safe_regex": {"regex": f".*;URI={identity}(;.*)?"}},
            }
        ]
        config |= {
            "delay_percent_runtime": f"{key}.delay.fixed_delay_percent",
            "delay_duration_runtime": f"{key}.delay.fixed_duration_ms",
            "abort_percent_runtime": f"{key}.abort.abort_percent",
            "abort_http_status_runtime": f"{key}.abort.http_status",
            "max_active_faults_runtime": f"{key}.max_active_faults",
        }
    return {"name": "envoy.filters.http.fault", "typed_config": config}


def _inbound(
    topology: Topology, placement: Placement, inst: Instance, options: EnvoyOptions
) -> dict[str, Any]:
    name = inst.service
    if placement.jwks is not None:
        checks = security.inbound_filters(topology, name, placement.jwks)
    else:  # no user tokens here: caller and operation only
        checks = [security.rbac(topology, name)]
    not_ready = not_ready_reply(name)["local_reply_config"]["mappers"]
    replies = {"mappers": [*not_ready, *security.inbound_replies()]}
    route = {
        "match": {"prefix": "/"},
        "route": {"cluster": "app", "timeout": "0s"},
        "decorator": decorator(f"ingress {name}"),
    }
    routes = {
        "name": "inbound",
        "virtual_hosts": [{"name": name, "domains": ["*"], "routes": [route]}],
    }
    manager = hcm(
        "inbound",
        routes,
        [
            *checks,
            _fault(),
            *(_fault(topology, caller) for caller in topology.callers(name)),
        ],
        options,
        local_reply_config=replies,
        forward_client_cert_details="SANITIZE_SET",
        set_current_client_cert_details={"uri": True},
        **tracing(topology, placement, name, options, spawn=False),
    )
    tls_context: dict[str, Any] = {
        "tls_certificates": [tls_certificate(inst.cert, inst.key)],
        "validation_context": {"trusted_ca": {"filename": str(placement.root_cert)}},
    }
    if options.sidecar_http2:
        tls_context["alpn_protocols"] = ["h2", "http/1.1"]
    tls = {
        "@type": DOWNSTREAM_TLS,
        "require_client_certificate": True,
        "common_tls_context": tls_context,
    }
    return {
        "name": "inbound",
        "traffic_direction": "INBOUND",
        "address": socket(placement.listen_host, inst.inbound_port),
        "filter_chains": [
            {
                "filters": [manager],
                "transport_socket": {"name": "envoy.transport_sockets.tls", "typed_config": tls},
            }
        ],
    }


def _peer_routes(peer: str, policy: CallPolicy) -> list[dict[str, Any]]:
    """Safe-to-repeat requests get the full retry policy; the rest only never-reached retries.
    With ``attempts: 0`` no route retries."""
    route = {"cluster": peer, "timeout": ms(policy.timeout_ms)}
    safe = retry_not_ready({**route, **retry_policy(policy.retries)})
    unsafe = retry_not_ready({**route, **retry_policy(policy.retries, on=NEVER_REACHED)})
    method = {"name": ":method", "string_match": {"safe_regex": {"regex": SAFE_METHODS}}}
    keyed = {"name": IDEMPOTENCY_HEADER, "present_match": True}
    named = decorator(f"egress {peer}")
    return [
        {
            "name": f"{peer}-safe-method",
            "match": {"prefix": "/", "headers": [method]},
            "route": safe,
            "decorator": named,
        },
        {
            "name": f"{peer}-idempotent",
            "match": {"prefix": "/", "headers": [keyed]},
            "route": safe,
            "decorator": named,
        },
        {"name": f"{peer}-other", "match": {"prefix": "/"}, "route": unsafe, "decorator": named},
    ]


def _outbound(
    topology: Topology, placement: Placement, inst: Instance, options: EnvoyOptions
) -> dict[str, Any]:
    svc = topology.service(inst.service)
    vhosts = [
        {"name": peer, "domains": [peer, f"{peer}:80"], "routes": _peer_routes(peer, policy)}
        for peer, policy in svc.calls.items()
    ]
    refused = problem_route(403, f"The topology does not allow {svc.name} to call this host")
    vhosts.append({"name": "not-allowed", "domains": ["*"], "routes": [refused]})
    manager = hcm(
        "outbound",
        {"name": "outbound", "virtual_hosts": vhosts},
        [],
        options,
        **tracing(topology, placement, svc.name, options, spawn=False),
    )
    return {
        "name": "outbound",
        "traffic_direction": "OUTBOUND",
        "address": address(placement.host, inst.egress_port, inst.egress_socket),
        "filter_chains": [{"filters": [manager]}],
    }


def sidecar(
    topology: Topology,
    placement: Placement,
    inst: Instance,
    options: EnvoyOptions = DEFAULT_OPTIONS,
) -> dict[str, Any]:
    svc = topology.service(inst.service)
    if inst.app_socket is not None:
        app = {"pipe": {"path": str(inst.app_socket)}}
    else:  # compose: the app on its pod's loopback
        assert inst.app_port is not None, "an app listens on a socket or a port"
        app = socket(placement.host, inst.app_port)
    clusters = [
        {
            **static_cluster("app", [app], topology.defaults.connect_timeout_ms),
            **readiness_check(topology.readiness, svc.name),
        },
        *collector_cluster(topology, placement),
        *(
            peer_cluster(topology, placement, peer, policy, (inst.cert, inst.key), options)
            for peer, policy in svc.calls.items()
        ),
    ]
    listeners = [
        _inbound(topology, placement, inst, options),
        _outbound(topology, placement, inst, options),
    ]
    admin = address(placement.host, inst.admin_port, inst.admin_socket)
    return bootstrap(inst.name, svc.name, admin, listeners, clusters, options)


# -- the ingress --------------------------------------------------------------------------------


def ingress(
    topology: Topology, placement: Placement, options: EnvoyOptions = DEFAULT_OPTIONS
) -> dict[str, Any]:
    ing = placement.ingress
    routes = [
        {
            "name": f"to-{r.service}",
            "match": {"prefix": r.prefix},
            "route": retry_not_ready(
                {"cluster": r.service, "timeout": ms(r.timeout_ms), **retry_policy(r.retries)}
            ),
            "decorator": decorator(f"ingress-gateway {r.service}"),
        }
        for r in topology.ingress_routes
    ]
    routes.append(problem_route(404, "Nothing is served at this path"))
    limit = topology.rate_limit
    routes = security.with_rate_limits(routes, limit.operations, limit.per_second)
    route_config = {
        "name": "ingress",
        "virtual_hosts": [{"name": "boutique", "domains": ["*"], "routes": routes}],
    }
    overloaded = overloaded_reply()["local_reply_config"]["mappers"]
    manager = hcm(
        "ingress",
        route_config,
        [security.rate_limit_filter()] if limit.operations else [],
        options,
        use_remote_address=True,
        local_reply_config={"mappers": [*overloaded, *security.edge_replies()]},
        **tracing(topology, placement, "ingress", options, spawn=True),
    )
    listener = {
        "name": "ingress",
        "traffic_direction": "INBOUND",
        "address": socket(placement.listen_host, ing.port),
        "filter_chains": [
            {
                "filters": [manager],
                **({"transport_socket": security.edge_tls(*ing.tls)} if ing.tls else {}),
            }
        ],
    }
    identity = (ing.cert, ing.key)
    clusters = [
        *collector_cluster(topology, placement),
        *(
            {
                **peer_cluster(topology, placement, service, topology.defaults, identity, options),
                **admission_breakers(topology.admission),
            }
            for service in dict.fromkeys(r.service for r in topology.ingress_routes)
        ),
    ]
    admin = address(placement.host, ing.admin_port, ing.admin_socket)
    return bootstrap("ingress", "ingress", admin, [listener], clusters, options)
