"""Envoy pieces for the topology's ``mesh.readiness`` and ``mesh.ingress.admission``.

- A sidecar health-checks its app (``readiness_check`` on the ``app`` cluster), with the panic
  threshold at 0: an app that is not ready gets no traffic at all, and the sidecar answers
  ``503 not_ready`` itself (``not_ready_reply``), marked safe to retry (the app never saw it).
- The ingress's cluster per service carries the admission limits as circuit breakers
  (``admission_breakers``); what does not fit gets ``503 overloaded`` (``overloaded_reply``).
Both answers are problem+json with ``Retry-After``, like the apps' own.
"""

from __future__ import annotations

from typing import Any

from mesh.resilience import RETRY_AFTER_S, Admission, Readiness

from .envoy_pieces import ms

# Set on the sidecar's own not-ready answer: callers may retry it even for a POST without an
# Idempotency-Key (``retriable_headers``), since the request never reached the app.
NOT_READY_HEADER = "x-mesh-not-ready"


def readiness_check(readiness: Readiness, service: str) -> dict[str, Any]:
    """The ``app`` cluster's active health check and its panic threshold (0: never route to an
    unready app, even when it is the only one).

    A ready app is checked every ``interval``; after a failed check (confirming it), while it
    is not ready (to give it traffic again soon) and before its cluster's first connection
    (start-up), every ``recheck``."""
    every, recheck = ms(readiness.interval_ms), ms(readiness.recheck_ms)
    return {
        "health_checks": [
            {
                "timeout": ms(readiness.timeout_ms),
                "interval": every,
                "unhealthy_interval": recheck,
                "unhealthy_edge_interval": recheck,
                "healthy_edge_interval": recheck,
                # Envoy checks an idle cluster only once a minute unless told otherwise
                "no_traffic_interval": recheck,
                "no_traffic_healthy_interval": every,
                "unhealthy_threshold": readiness.unhealthy_threshold,
                "healthy_threshold": readiness.healthy_threshold,
                "http_health_check": {"path": readiness.path, "host": service},
            }
        ],
        "common_lb_config": {"healthy_panic_threshold": {"value": 0}},
    }


def admission_breakers(admission: Admission) -> dict[str, Any]:
    """An ingress cluster's circuit breakers: ``max_requests`` in flight (one connection each,
    HTTP/1.1), ``max_pending`` waiting for one."""
    return {
        "circuit_breakers": {
            "thresholds": [
                {
                    "priority": "DEFAULT",
                    "max_connections": admission.max_requests,
                    "max_pending_requests": admission.max_pending,
                    "max_requests": admission.max_requests,
                    "max_retries": max(3, admission.max_requests // 4),
                    "track_remaining": True,
                }
            ]
        }
    }


def _problem_mapper(
    flags: list[str], code: str, detail: str, extra_headers: dict[str, str] | None = None
) -> dict[str, Any]:
    body = (
        f'{{"type":"https://boutique.local/problems/{code}","title":"Service Unavailable",'
        f'"status":503,"detail":"{detail}","code":"{code}"}}'
    )
    headers = {"retry-after": str(RETRY_AFTER_S), **(extra_headers or {})}
    return {
        "filter": {"response_flag_filter": {"flags": flags}},
        "status_code": 503,
        "headers_to_add": [
            {"header": {"key": k, "value": v}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}
            for k, v in headers.items()
        ],
        "body": {"inline_string": body},
        "body_format_override": {
            "text_format_source": {"inline_string": "%LOCAL_REPLY_BODY%"},
            "content_type": "application/problem+json",
        },
    }


def not_ready_reply(service: str) -> dict[str, Any]:
    """The sidecar's answer while its app is not ready (no healthy upstream: ``UH``)."""
    detail = f"The {service} instance is not ready (starting or restarting); try again"
    mapper = _problem_mapper(["UH"], "not_ready", detail, {NOT_READY_HEADER: "true"})
    return {"local_reply_config": {"mappers": [mapper]}}


def overloaded_reply() -> dict[str, Any]:
    """The edge's answer for what does not fit (circuit breaker overflow: ``UO``)."""
    detail = "The shop is busy right now; try again in a moment"
    return {"local_reply_config": {"mappers": [_problem_mapper(["UO"], "overloaded", detail)]}}


def retry_not_ready(route: dict[str, Any]) -> dict[str, Any]:
    """``route`` (a route action) whose retry policy, if any, also retries a peer's not-ready
    answer: always safe, whatever the method, since the request never reached the app."""
    policy = route.get("retry_policy")
    if policy is None:
        return route
    retried = {
        **policy,
        "retry_on": f"{policy['retry_on']},retriable-headers",
        "retriable_headers": [{"name": NOT_READY_HEADER, "present_match": True}],
    }
    return {**route, "retry_policy": retried}
