"""Render Envoy (v3 API) bootstraps from the topology: one per sidecar, and one for the ingress.

A sidecar has two listeners:
- ``inbound``: mTLS required; the caller's SPIFFE id checked against the topology (RBAC); the
  fault filter (off until switched on through the runtime); then the app on its Unix socket.
- ``outbound``: the app's HTTP proxy; one virtual host per peer the topology allows, carrying
  the call's timeout and retries, to a cluster per peer with circuit breaking, outlier detection
  and mTLS origination. Any other host is refused with 403.
The ingress serves the public port and routes by path prefix, as Istio's ingress gateway does.
"""

from __future__ import annotations

from typing import Any

from mesh.placement import Instance, Placement
from mesh.topology import CallPolicy, Topology

# Requests that may be sent twice without harm get the call's full retry policy. Anything else
# (a POST without an Idempotency-Key) is only retried when it never reached the app.
SAFE_METHODS = "GET|HEAD|OPTIONS|PUT|DELETE"
IDEMPOTENCY_HEADER = "idempotency-key"
NEVER_REACHED = "connect-failure,refused-stream,reset-before-request"
FAULT_STATUS = 503

_T = "type.googleapis.com/envoy.extensions"
HCM = f"{_T}.filters.network.http_connection_manager.v3.HttpConnectionManager"
ROUTER = f"{_T}.filters.http.router.v3.Router"
RBAC = f"{_T}.filters.http.rbac.v3.RBAC"
FAULT = f"{_T}.filters.http.fault.v3.HTTPFault"
DOWNSTREAM_TLS = f"{_T}.transport_sockets.tls.v3.DownstreamTlsContext"
UPSTREAM_TLS = f"{_T}.transport_sockets.tls.v3.UpstreamTlsContext"
FILE_LOG = f"{_T}.access_loggers.file.v3.FileAccessLog"
HTTP_OPTIONS = f"{_T}.upstreams.http.v3.HttpProtocolOptions"
PREVIOUS_HOSTS = f"{_T}.retry.host.previous_hosts.v3.PreviousHostsPredicate"
OTEL_TRACER = "type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig"
COLLECTOR = "otel_collector"

ACCESS_LOG_FORMAT = (
    '[%START_TIME%] %DOWNSTREAM_LOCAL_ADDRESS% "%REQ(:METHOD)% %REQ(:AUTHORITY)%%REQ(:PATH)%" '
    "%RESPONSE_CODE% %RESPONSE_FLAGS% %DURATION%ms upstream=%UPSTREAM_HOST% "
    "peer=%DOWNSTREAM_PEER_URI_SAN% attempts=%UPSTREAM_REQUEST_ATTEMPT_COUNT%\n"
)


def ms(value: int) -> str:
    """Milliseconds as a protobuf Duration string."""
    return f"{value / 1000:.3f}s"


# -- pieces -------------------------------------------------------------------------------------


def _socket(host: str, port: int) -> dict[str, Any]:
    return {"socket_address": {"address": host, "port_value": port}}


def _access_log() -> list[dict[str, Any]]:
    return [
        {
            "name": "envoy.access_loggers.file",
            "typed_config": {
                "@type": FILE_LOG,
                "path": "/dev/stdout",
                "log_format": {"text_format_source": {"inline_string": ACCESS_LOG_FORMAT}},
            },
        }
    ]


def _tls_certificate(cert: Any, key: Any) -> dict[str, Any]:
    return {"certificate_chain": {"filename": str(cert)}, "private_key": {"filename": str(key)}}


def _tracing(placement: Placement, service: str, spawn_upstream_span: bool) -> dict[str, Any]:
    """Envoy's OpenTelemetry tracer: spans carry the app's service.name, sent over OTLP/HTTP."""
    if placement.otlp is None:
        return {}
    host, port = placement.otlp
    return {
        "tracing": {
            "random_sampling": {"value": 100},
            "spawn_upstream_span": spawn_upstream_span,
            "provider": {
                "name": "envoy.tracers.opentelemetry",
                "typed_config": {
                    "@type": OTEL_TRACER,
                    "service_name": service,
                    "http_service": {
                        "http_uri": {
                            "uri": f"http://{host}:{port}/v1/traces",
                            "cluster": COLLECTOR,
                            "timeout": "2s",
                        },
                    },
                },
            },
        }
    }


def _collector_cluster(placement: Placement) -> list[dict[str, Any]]:
    if placement.otlp is None:
        return []
    host, port = placement.otlp
    endpoint = {"endpoint": {"address": _socket(host, port)}}
    return [
        {
            "name": COLLECTOR,
            "type": "STATIC",
            "connect_timeout": "1s",
            "load_assignment": {
                "cluster_name": COLLECTOR,
                "endpoints": [{"lb_endpoints": [endpoint]}],
            },
        }
    ]


def _decorator(operation: str) -> dict[str, Any]:
    """The span's name, Istio style; not propagated, so the next hop names its own span."""
    return {"operation": operation, "propagate": False}


def _hcm(
    stat_prefix: str, route_config: dict[str, Any], filters: list[dict[str, Any]], **extra: Any
) -> dict[str, Any]:
    return {
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": {
            "@type": HCM,
            "stat_prefix": stat_prefix,
            "codec_type": "AUTO",
            "route_config": route_config,
            "http_filters": [
                *filters,
                {"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER}},
            ],
            "access_log": _access_log(),
            **extra,
        },
    }


def _problem_route(status: int, detail: str) -> dict[str, Any]:
    body = (
        f'{{"type":"about:blank","status":{status},"title":"Refused by the mesh",'
        f'"detail":"{detail}"}}'
    )
    return {
        "match": {"prefix": "/"},
        "direct_response": {"status": status, "body": {"inline_string": body}},
        "response_headers_to_add": [
            {
                "header": {"key": "content-type", "value": "application/problem+json"},
                "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
            }
        ],
    }


def _peer_cluster(
    topology: Topology, placement: Placement, peer: str, policy: CallPolicy, cert: Any, key: Any
) -> dict[str, Any]:
    cb, od = policy.circuit_breaker, policy.outlier_detection
    endpoints = [
        {"endpoint": {"address": _socket(placement.host, inst.inbound_port)}}
        for inst in placement.instances[peer]
    ]
    return {
        "name": peer,
        "type": "STATIC",
        "connect_timeout": "1s",
        "lb_policy": "ROUND_ROBIN",
        "load_assignment": {"cluster_name": peer, "endpoints": [{"lb_endpoints": endpoints}]},
        "circuit_breakers": {
            "thresholds": [
                {
                    "priority": "DEFAULT",
                    "max_connections": cb.max_connections,
                    "max_pending_requests": cb.max_pending_requests,
                    "max_requests": cb.max_requests,
                    "max_retries": cb.max_retries,
                    "track_remaining": True,
                }
            ]
        },
        "outlier_detection": {
            "consecutive_5xx": od.consecutive_5xx,
            "consecutive_gateway_failure": od.consecutive_5xx,
            "enforcing_consecutive_gateway_failure": 100,
            "interval": ms(od.interval_ms),
            "base_ejection_time": ms(od.base_ejection_time_ms),
            "max_ejection_percent": od.max_ejection_percent,
        },
        "transport_socket": {
            "name": "envoy.transport_sockets.tls",
            "typed_config": {
                "@type": UPSTREAM_TLS,
                "sni": peer,
                "common_tls_context": {
                    "tls_certificates": [_tls_certificate(cert, key)],
                    "validation_context": {
                        "trusted_ca": {"filename": str(placement.root_cert)},
                        "match_typed_subject_alt_names": [
                            {"san_type": "URI", "matcher": {"exact": topology.spiffe_id(peer)}}
                        ],
                    },
                },
            },
        },
    }


def _retry_policy(on: str, attempts: int, per_try_ms: int) -> dict[str, Any]:
    return {
        "retry_on": on,
        "num_retries": attempts,
        "per_try_timeout": ms(per_try_ms),
        "retry_host_predicate": [
            {
                "name": "envoy.retry_host_predicates.previous_hosts",
                "typed_config": {"@type": PREVIOUS_HOSTS},
            }
        ],
        "host_selection_retry_max_attempts": 3,
    }


def _peer_routes(peer: str, policy: CallPolicy) -> list[dict[str, Any]]:
    """Safe-to-repeat requests get the full retry policy; the rest only never-reached retries."""
    r = policy.retries
    route = {"cluster": peer, "timeout": ms(policy.timeout_ms)}
    safe = {**route}
    if r.attempts:
        safe["retry_policy"] = _retry_policy(",".join(r.on), r.attempts, r.per_try_timeout_ms)
    unsafe = {
        **route,
        "retry_policy": _retry_policy(NEVER_REACHED, max(r.attempts, 1), r.per_try_timeout_ms),
    }
    method = {"name": ":method", "string_match": {"safe_regex": {"regex": SAFE_METHODS}}}
    keyed = {"name": IDEMPOTENCY_HEADER, "present_match": True}
    named = _decorator(f"egress {peer}")
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


def _runtime() -> dict[str, Any]:
    """A static layer with the fault filter off, and an admin layer to switch it live."""
    return {
        "layers": [
            {
                "name": "static",
                "static_layer": {
                    "fault.http.abort.abort_percent": 0,
                    "fault.http.delay.fixed_delay_percent": 0,
                    # spans are sent every second, so a trace is readable right after a request
                    "tracing.opentelemetry.flush_interval_ms": 1000,
                    # fewer, bigger OTLP batches: the collector's CPU drops by a third or more
                    # (docs/performance.md, "Envoy span batches"); the interval still flushes
                    "tracing.opentelemetry.min_flush_spans": 256,
                },
            },
            {"name": "admin", "admin_layer": {}},
        ]
    }


def _bootstrap(
    node: str,
    cluster: str,
    host: str,
    admin_port: int,
    listeners: list[dict[str, Any]],
    clusters: list[dict[str, Any]],
) -> dict[str, Any]:
    return {
        "node": {"id": node, "cluster": cluster},
        "admin": {"address": _socket(host, admin_port)},
        "layered_runtime": _runtime(),
        "static_resources": {"listeners": listeners, "clusters": clusters},
    }


# -- the two kinds of config ----------------------------------------------------------------------


def sidecar(topology: Topology, placement: Placement, inst: Instance) -> dict[str, Any]:
    svc = topology.service(inst.service)
    callers = topology.callers(svc.name) + (["ingress"] if topology.exposed(svc.name) else [])
    principals = [
        {"authenticated": {"principal_name": {"exact": topology.spiffe_id(c)}}} for c in callers
    ]
    rbac = {
        "name": "envoy.filters.http.rbac",
        "typed_config": {
            "@type": RBAC,
            "rules": {
                "action": "ALLOW",
                "policies": {
                    "callers-from-topology": {
                        "permissions": [{"any": True}],
                        "principals": principals or [{"not_id": {"any": True}}],
                    }
                },
            },
        },
    }
    fault = {
        "name": "envoy.filters.http.fault",
        "typed_config": {
            "@type": FAULT,
            "delay": {"fixed_delay": "1s", "percentage": {"numerator": 0}},
            "abort": {"http_status": FAULT_STATUS, "percentage": {"numerator": 0}},
        },
    }
    inbound_routes = {
        "name": "inbound",
        "virtual_hosts": [
            {
                "name": svc.name,
                "domains": ["*"],
                "routes": [
                    {
                        "match": {"prefix": "/"},
                        "route": {"cluster": "app", "timeout": "0s"},
                        "decorator": _decorator(f"ingress {svc.name}"),
                    }
                ],
            }
        ],
    }
    inbound = {
        "name": "inbound",
        "traffic_direction": "INBOUND",
        "address": _socket(placement.host, inst.inbound_port),
        "filter_chains": [
            {
                "filters": [
                    _hcm(
                        "inbound",
                        inbound_routes,
                        [rbac, fault],
                        forward_client_cert_details="SANITIZE_SET",
                        set_current_client_cert_details={"uri": True},
                        **_tracing(placement, svc.name, spawn_upstream_span=False),
                    )
                ],
                "transport_socket": {
                    "name": "envoy.transport_sockets.tls",
                    "typed_config": {
                        "@type": DOWNSTREAM_TLS,
                        "require_client_certificate": True,
                        "common_tls_context": {
                            "tls_certificates": [_tls_certificate(inst.cert, inst.key)],
                            "validation_context": {
                                "trusted_ca": {"filename": str(placement.root_cert)}
                            },
                        },
                    },
                },
            }
        ],
    }
    vhosts = [
        {"name": peer, "domains": [peer, f"{peer}:80"], "routes": _peer_routes(peer, policy)}
        for peer, policy in svc.calls.items()
    ]
    vhosts.append(
        {
            "name": "not-allowed",
            "domains": ["*"],
            "routes": [
                _problem_route(403, f"The topology does not allow {svc.name} to call this host")
            ],
        }
    )
    outbound_routes = {"name": "outbound", "virtual_hosts": vhosts}
    outbound = {
        "name": "outbound",
        "traffic_direction": "OUTBOUND",
        "address": _socket(placement.host, inst.egress_port),
        "filter_chains": [
            {
                "filters": [
                    _hcm(
                        "outbound",
                        outbound_routes,
                        [],
                        **_tracing(placement, svc.name, spawn_upstream_span=False),
                    )
                ],
            }
        ],
    }
    app_cluster = {
        "name": "app",
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": "app",
            "endpoints": [
                {
                    "lb_endpoints": [
                        {"endpoint": {"address": {"pipe": {"path": str(inst.app_socket)}}}}
                    ]
                }
            ],
        },
    }
    clusters = [app_cluster, *_collector_cluster(placement)] + [
        _peer_cluster(topology, placement, peer, policy, inst.cert, inst.key)
        for peer, policy in svc.calls.items()
    ]
    return _bootstrap(
        inst.name, svc.name, placement.host, inst.admin_port, [inbound, outbound], clusters
    )


def ingress(topology: Topology, placement: Placement) -> dict[str, Any]:
    ing = placement.ingress
    routes = [
        {
            "name": f"to-{r.service}",
            "match": {"prefix": r.prefix},
            "route": {
                "cluster": r.service,
                "timeout": ms(r.timeout_ms),
                "retry_policy": _retry_policy(NEVER_REACHED, 2, r.timeout_ms),
            },
            "decorator": _decorator(f"ingress-gateway {r.service}"),
        }
        for r in topology.ingress_routes
    ]
    routes.append(_problem_route(404, "Nothing is served at this path"))
    route_config = {
        "name": "ingress",
        "virtual_hosts": [{"name": "boutique", "domains": ["*"], "routes": routes}],
    }
    hcm = _hcm(
        "ingress",
        route_config,
        [],
        use_remote_address=True,
        **_tracing(placement, "ingress", spawn_upstream_span=True),
    )
    listener = {
        "name": "ingress",
        "traffic_direction": "INBOUND",
        "address": _socket(placement.host, ing.port),
        "filter_chains": [{"filters": [hcm]}],
    }
    clusters = [*_collector_cluster(placement)] + [
        _peer_cluster(topology, placement, service, topology.defaults, ing.cert, ing.key)
        for service in dict.fromkeys(r.service for r in topology.ingress_routes)
    ]
    return _bootstrap("ingress", "ingress", placement.host, ing.admin_port, [listener], clusters)
