"""The building blocks of the Envoy bootstraps in ``envoy.py``: each a pure function of its inputs.

Policy values come from the topology (timeouts, retries, circuit breakers, outlier detection,
sampling); how the proxies carry them (access logs, HTTP/2 between sidecars, connection reuse,
span batching) comes from :class:`EnvoyOptions`, whose defaults are what ``boutique up`` runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mesh.placement import Placement
from mesh.topology import CallPolicy, Retries, Topology

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
HTTP_OPTIONS_KEY = HTTP_OPTIONS.rsplit("/", 1)[1]
PREVIOUS_HOSTS = f"{_T}.retry.host.previous_hosts.v3.PreviousHostsPredicate"
OTEL_TRACER = "type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig"
COLLECTOR = "otel_collector"

ACCESS_LOG_FORMAT = (
    '[%START_TIME%] %DOWNSTREAM_LOCAL_ADDRESS% "%REQ(:METHOD)% %REQ(:AUTHORITY)%%REQ(:PATH)%" '
    "%RESPONSE_CODE% %RESPONSE_FLAGS% %DURATION%ms upstream=%UPSTREAM_HOST% "
    "peer=%DOWNSTREAM_PEER_URI_SAN% attempts=%UPSTREAM_REQUEST_ATTEMPT_COUNT%\n"
)


@dataclass(frozen=True)
class EnvoyOptions:
    """How the proxies carry the mesh; the defaults are what ``boutique up`` runs. The
    benchmark's tuning knobs are these options (``loadgenerator/bench/tuning.py``)."""

    access_log: bool = True  # every Envoy writes an access-log line per request
    sidecar_http2: bool = False  # sidecars (and the ingress) talk HTTP/2 to each other
    sidecar_pool: bool = True  # False: one request per connection between sidecars (new mTLS)
    # spans are sent every second, so a trace is readable right after a request
    span_flush_interval_ms: int = 1000
    # fewer, bigger OTLP batches: the collector's CPU drops by a third or more
    # (docs/performance.md, "Envoy span batches"); the interval still flushes
    span_batch: int = 256
    span_export_timeout_ms: int = 2000  # one OTLP export to the collector
    # Envoy's watchdogs: the shortest timeout sets how often every event loop and both guard-dog
    # threads wake. Envoy's 200 ms (miss) woke an idle proxy ~35 times a second; at 5 s (mega-miss
    # 10 s, kill off as before) ~7 (docs/performance.md). None: Envoy's defaults.
    watchdog_miss_ms: int | None = 5000


def ms(value: int) -> str:
    """Milliseconds as a protobuf Duration string."""
    return f"{value / 1000:.3f}s"


def socket(host: str, port: int) -> dict[str, Any]:
    return {"socket_address": {"address": host, "port_value": port}}


def address(host: str, port: int, pipe: Path | None) -> dict[str, Any]:
    """A Unix socket only this user may open (0600) when ``pipe`` is given, else host:port."""
    if pipe is not None:
        return {"pipe": {"path": str(pipe), "mode": 0o600}}
    return socket(host, port)


def static_cluster(
    name: str, addresses: list[dict[str, Any]], connect_timeout_ms: int, dns: bool = False
) -> dict[str, Any]:
    """A cluster of fixed addresses; with ``dns`` names resolved by DNS (compose's containers)."""
    endpoints = [{"endpoint": {"address": a}} for a in addresses]
    return {
        "name": name,
        "type": "STRICT_DNS" if dns else "STATIC",
        "connect_timeout": ms(connect_timeout_ms),
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": endpoints}]},
    }


def access_log() -> list[dict[str, Any]]:
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


def tls_certificate(cert: Path, key: Path) -> dict[str, Any]:
    return {"certificate_chain": {"filename": str(cert)}, "private_key": {"filename": str(key)}}


def tracing(
    topology: Topology, placement: Placement, service: str, options: EnvoyOptions, spawn: bool
) -> dict[str, Any]:
    """Envoy's OpenTelemetry tracer: spans carry the app's service.name, sent over OTLP/HTTP.
    ``spawn``: upstream spans of their own (the ingress only)."""
    if placement.otlp is None:
        return {}
    host, port = placement.otlp
    http_uri = {
        "uri": f"http://{host}:{port}/v1/traces",
        "cluster": COLLECTOR,
        "timeout": ms(options.span_export_timeout_ms),
    }
    provider = {
        "name": "envoy.tracers.opentelemetry",
        "typed_config": {
            "@type": OTEL_TRACER,
            "service_name": service,
            "http_service": {"http_uri": http_uri},
        },
    }
    return {
        "tracing": {
            "random_sampling": {"value": topology.sampling},
            "spawn_upstream_span": spawn,
            "provider": provider,
        }
    }


def collector_cluster(topology: Topology, placement: Placement) -> list[dict[str, Any]]:
    if placement.otlp is None:
        return []
    host, port = placement.otlp
    timeout = topology.defaults.connect_timeout_ms
    return [static_cluster(COLLECTOR, [socket(host, port)], timeout, placement.dns)]


def decorator(operation: str) -> dict[str, Any]:
    """The span's name, Istio style; not propagated, so the next hop names its own span."""
    return {"operation": operation, "propagate": False}


def hcm(
    stat_prefix: str,
    route_config: dict[str, Any],
    filters: list[dict[str, Any]],
    options: EnvoyOptions,
    **extra: Any,
) -> dict[str, Any]:
    """An HTTP connection manager: the filters, then the router."""
    logs = {"access_log": access_log()} if options.access_log else {}
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
            **logs,
            **extra,
        },
    }


def problem_route(status: int, detail: str) -> dict[str, Any]:
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


def _protocol_options(options: EnvoyOptions) -> dict[str, Any]:
    """HTTP/2 or no connection reuse between sidecars; nothing at all by default."""
    if not options.sidecar_http2 and options.sidecar_pool:
        return {}
    http: dict[str, Any] = {"@type": HTTP_OPTIONS}
    if options.sidecar_http2:
        http["explicit_http_config"] = {"http2_protocol_options": {}}
    else:
        http["explicit_http_config"] = {"http_protocol_options": {}}
    if not options.sidecar_pool:
        http["common_http_protocol_options"] = {"max_requests_per_connection": 1}
    return {"typed_extension_protocol_options": {HTTP_OPTIONS_KEY: http}}


def peer_cluster(
    topology: Topology,
    placement: Placement,
    peer: str,
    policy: CallPolicy,
    identity: tuple[Path, Path],
    options: EnvoyOptions,
) -> dict[str, Any]:
    """Every replica of ``peer`` over mTLS (``identity``: this proxy's cert and key), with the
    call's circuit breaker and outlier detection."""
    cb, od = policy.circuit_breaker, policy.outlier_detection
    addresses = [socket(placement.address(i), i.inbound_port) for i in placement.instances[peer]]
    tls_context: dict[str, Any] = {
        "tls_certificates": [tls_certificate(*identity)],
        "validation_context": {
            "trusted_ca": {"filename": str(placement.root_cert)},
            "match_typed_subject_alt_names": [
                {"san_type": "URI", "matcher": {"exact": topology.spiffe_id(peer)}}
            ],
        },
    }
    if options.sidecar_http2:
        tls_context["alpn_protocols"] = ["h2"]
    cluster = static_cluster(peer, addresses, policy.connect_timeout_ms, placement.dns)
    return {
        **cluster,
        "lb_policy": "ROUND_ROBIN",
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
            "typed_config": {"@type": UPSTREAM_TLS, "sni": peer, "common_tls_context": tls_context},
        },
        **_protocol_options(options),
    }


def retry_policy(retries: Retries, on: str | None = None) -> dict[str, Any]:
    """Envoy's retry policy for ``retries`` (``on``: other conditions than its own); an empty
    mapping when its attempts are 0, so that no retry policy is rendered at all."""
    if retries.attempts == 0:
        return {}
    policy = {
        "retry_on": on or ",".join(retries.on),
        "num_retries": retries.attempts,
        "per_try_timeout": ms(retries.per_try_timeout_ms),
        "retry_host_predicate": [
            {
                "name": "envoy.retry_host_predicates.previous_hosts",
                "typed_config": {"@type": PREVIOUS_HOSTS},
            }
        ],
        "host_selection_retry_max_attempts": 3,
    }
    return {"retry_policy": policy}


def runtime(options: EnvoyOptions) -> dict[str, Any]:
    """A static layer with the fault filter off, and an admin layer to switch it live."""
    static = {
        "fault.http.abort.abort_percent": 0,
        "fault.http.delay.fixed_delay_percent": 0,
        "tracing.opentelemetry.flush_interval_ms": options.span_flush_interval_ms,
        "tracing.opentelemetry.min_flush_spans": options.span_batch,
    }
    return {
        "layers": [
            {"name": "static", "static_layer": static},
            {"name": "admin", "admin_layer": {}},
        ]
    }


def bootstrap(
    node: str,
    cluster: str,
    admin: dict[str, Any],
    listeners: list[dict[str, Any]],
    clusters: list[dict[str, Any]],
    options: EnvoyOptions,
) -> dict[str, Any]:
    """A whole bootstrap: ``node`` is one proxy, ``cluster`` the service it stands for."""
    config: dict[str, Any] = {
        "node": {"id": node, "cluster": cluster},
        "admin": {"address": admin},
        "layered_runtime": runtime(options),
        "static_resources": {"listeners": listeners, "clusters": clusters},
    }
    if options.watchdog_miss_ms is not None:
        config["watchdogs"] = watchdogs(options.watchdog_miss_ms)
    return config


def watchdogs(miss_ms: int) -> dict[str, Any]:
    """The main thread's and the workers' watchdogs: a loop silent ``miss_ms`` counts a miss,
    twice that a mega-miss (stats only; no kill, as Envoy's default)."""
    dog = {"miss_timeout": ms(miss_ms), "megamiss_timeout": ms(2 * miss_ms)}
    return {"main_thread_watchdog": dog, "worker_watchdog": dict(dog)}
