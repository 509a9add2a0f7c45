"""How the mesh heals and protects itself, read from the topology: readiness and admission.

- ``mesh.readiness``: each sidecar asks its app's readiness path (``/readyz``) every
  ``interval`` while the app is ready, and every ``recheck`` (at most the interval) once a check
  failed, while the app is not ready and before it first was; after ``unhealthy_threshold``
  failures (at once for a ``503``) the app gets no traffic (its sidecar answers ``503 not_ready``
  at once, so callers retry another replica), after ``healthy_threshold`` successes it gets
  traffic again. On Kubernetes the same values are the app container's readinessProbe (the
  kubelet probes every ``interval``; it has no ``recheck``).
- ``mesh.ingress.admission``: the edge admits at most ``max_requests`` requests in flight to each
  service it routes to, and lets ``max_pending`` more wait; the rest get a fast ``503
  overloaded`` with ``Retry-After: 1`` instead of queueing. Locally these are the ingress's
  circuit breakers; on Istio, the DestinationRules of the ingress gateway's own pods.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .fields import TopologyError, duration, int_in, known, mapping

RETRY_AFTER_S = 1  # what the edge and a not-ready sidecar tell a client to wait


@dataclass(frozen=True)
class Readiness:
    path: str = "/readyz"
    interval_ms: int = 1000
    timeout_ms: int = 1000
    recheck_ms: int = 1000  # after a failed check, and while not ready (at most interval_ms)
    unhealthy_threshold: int = 3
    healthy_threshold: int = 1


@dataclass(frozen=True)
class Admission:
    max_requests: int = 48
    max_pending: int = 16


def readiness(value: Any, where: str) -> Readiness:
    spec = mapping(value, where)
    keys = {"path", "interval", "timeout", "recheck", "unhealthy_threshold", "healthy_threshold"}
    known(spec, keys, where)
    base = Readiness()
    path = spec.get("path", base.path)
    if not isinstance(path, str) or not path.startswith("/"):
        raise TopologyError(f"{where}.path: expected a path starting with /, got {path!r}")
    interval = duration(spec.get("interval", f"{base.interval_ms}ms"), f"{where}.interval")
    timeout = duration(spec.get("timeout", f"{base.timeout_ms}ms"), f"{where}.timeout")
    if not 100 <= interval <= 60_000:
        raise TopologyError(f"{where}.interval: a check every 100ms to 1m")
    if timeout > interval:
        raise TopologyError(f"{where}.timeout: at most the interval ({interval}ms)")
    recheck = duration(spec.get("recheck", f"{interval}ms"), f"{where}.recheck")
    if not 100 <= recheck <= interval:
        raise TopologyError(f"{where}.recheck: 100ms to the interval ({interval}ms)")
    thresholds = {
        key: int_in(spec.get(key, getattr(base, key)), f"{where}.{key} (checks)", 1, 10)
        for key in ("unhealthy_threshold", "healthy_threshold")
    }
    return Readiness(
        path=path, interval_ms=interval, timeout_ms=timeout, recheck_ms=recheck, **thresholds
    )


def admission(value: Any, where: str) -> Admission:
    spec = mapping(value, where)
    known(spec, {"max_requests", "max_pending"}, where)
    base = Admission()
    return Admission(
        max_requests=int_in(
            spec.get("max_requests", base.max_requests), f"{where}.max_requests", 1, 100_000
        ),
        max_pending=int_in(
            spec.get("max_pending", base.max_pending), f"{where}.max_pending", 0, 100_000
        ),
    )
