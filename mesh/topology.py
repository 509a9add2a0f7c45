"""Load and check ``mesh/topology.yaml``: services, who may call whom, and each call's policy.

Every mistake is a :class:`TopologyError` that names the place (``services.cart.calls.products.
timeout: ...``), so a typo never turns into a silently different mesh.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import access, resilience
from .access import Operation, RateLimit, UserToken
from .fields import TopologyError, UniqueKeyLoader
from .fields import duration as _duration
from .fields import int_in as _int
from .fields import known as _known
from .fields import list_of as _list
from .fields import mapping as _mapping
from .fields import merge as _merge
from .fields import name as _name
from .fields import percent as _percent
from .fields import port as _port
from .resilience import Admission, Readiness

DEFAULT_PATH = Path(__file__).with_name("topology.yaml")
STORES = {"sqlite", "redis"}
# Envoy's retry_on conditions for HTTP (x-envoy-retry-on); gRPC ones do not apply here.
RETRY_ON = {
    "5xx",
    "gateway-error",
    "reset",
    "reset-before-request",
    "connect-failure",
    "envoy-ratelimited",
    "retriable-4xx",
    "refused-stream",
    "retriable-status-codes",
    "retriable-headers",
    "http3-post-connect-failure",
}
# What the ingress retries unless the topology says otherwise: only requests that never reached
# the service, so even a POST may be sent again.
EDGE_RETRY_ON = ["connect-failure", "refused-stream", "reset-before-request"]


@dataclass(frozen=True)
class Retries:
    attempts: int
    per_try_timeout_ms: int
    on: tuple[str, ...]


@dataclass(frozen=True)
class CircuitBreaker:
    max_connections: int
    max_pending_requests: int
    max_requests: int
    max_retries: int


@dataclass(frozen=True)
class OutlierDetection:
    consecutive_5xx: int
    interval_ms: int
    base_ejection_time_ms: int
    max_ejection_percent: int


@dataclass(frozen=True)
class CallPolicy:
    timeout_ms: int
    connect_timeout_ms: int  # how long a new connection to the peer may take
    retries: Retries
    circuit_breaker: CircuitBreaker
    outlier_detection: OutlierDetection


@dataclass(frozen=True)
class Service:
    name: str
    port: int
    replicas: int
    stores: tuple[str, ...]
    calls: dict[str, CallPolicy] = field(default_factory=dict)
    # per peer, the operations this service may use there (a peer not named here: any)
    allow: dict[str, tuple[Operation, ...]] = field(default_factory=dict)
    user_scoped: bool = False  # every request must carry a verified user token
    redis_keys: tuple[str, ...] = ()  # key patterns of its Redis user


@dataclass(frozen=True)
class IngressRoute:
    prefix: str
    service: str
    timeout_ms: int
    retries: Retries  # the edge's retries: ``mesh.ingress.retries``, or the route's own


@dataclass(frozen=True)
class Topology:
    trust_domain: str
    namespace: str
    ingress_port: int
    ingress_routes: tuple[IngressRoute, ...]
    services: dict[str, Service]
    defaults: CallPolicy  # what a call gets when it says nothing; the ingress's edge policy
    user_token: UserToken = field(default_factory=UserToken)
    sampling: float = 100.0  # percent of requests traced (``mesh.tracing.sampling``)
    readiness: Readiness = field(default_factory=Readiness)  # ``mesh.readiness``
    admission: Admission = field(default_factory=Admission)  # ``mesh.ingress.admission``
    rate_limit: RateLimit = field(default_factory=RateLimit)  # the edge's, per operation

    def service(self, name: str) -> Service:
        try:
            return self.services[name]
        except KeyError:
            known = ", ".join(self.services)
            raise TopologyError(f"no service {name!r} in the topology (known: {known})") from None

    def callers(self, name: str) -> list[str]:
        """The services allowed to call ``name``, in topology order."""
        return [s.name for s in self.services.values() if name in s.calls]

    def exposed(self, name: str) -> bool:
        """True when the ingress routes public traffic to ``name``."""
        return any(r.service == name for r in self.ingress_routes)

    def allowed(self, caller: str, callee: str) -> tuple[Operation, ...] | None:
        """The operations ``caller`` may use on ``callee``; None: any (no ``allow`` given)."""
        return self.service(caller).allow.get(callee)

    def spiffe_id(self, name: str) -> str:
        return f"spiffe://{self.trust_domain}/ns/{self.namespace}/sa/{name}"


# -- loading ------------------------------------------------------------------------------------


def load(path: Path | str = DEFAULT_PATH) -> Topology:
    try:
        raw = yaml.load(Path(path).read_text(), Loader=UniqueKeyLoader)  # noqa: S506
    except yaml.YAMLError as exc:
        raise TopologyError(f"{path}: not valid YAML: {exc}") from None
    except OSError as exc:
        raise TopologyError(f"{path}: cannot be read: {exc.strerror}") from None
    try:
        return parse(raw)
    except TopologyError as exc:
        raise TopologyError(f"{path}: {exc}") from None


def parse(raw: Any) -> Topology:
    raw = _mapping(raw, "(top level)")
    _known(raw, {"mesh", "defaults", "services"}, "(top level)")
    mesh = _mapping(raw.get("mesh", {}), "mesh")
    _known(
        mesh, {"trust_domain", "namespace", "ingress", "user_token", "tracing", "readiness"}, "mesh"
    )
    ingress = _mapping(mesh.get("ingress", {}), "mesh.ingress")
    _known(ingress, {"port", "routes", "retries", "admission", "rate_limit"}, "mesh.ingress")
    edge_retries = _mapping(ingress.get("retries", {}), "mesh.ingress.retries")
    _retries(edge_retries, "1s", EDGE_RETRY_ON, "mesh.ingress.retries")  # its own mistakes first
    tracing = _mapping(mesh.get("tracing", {}), "mesh.tracing")
    _known(tracing, {"sampling"}, "mesh.tracing")
    defaults = _mapping(raw.get("defaults", {}), "defaults")
    services_raw = _mapping(raw.get("services"), "services")
    if not services_raw:
        raise TopologyError("services: at least one service is needed")
    default_policy = _policy(dict(defaults), "defaults")  # its own mistakes before any call's
    services = {name: _service(name, spec, defaults) for name, spec in services_raw.items()}
    routes = tuple(
        _ingress_route(r, edge_retries, f"mesh.ingress.routes[{i}]")
        for i, r in enumerate(_list(ingress.get("routes", []), "mesh.ingress.routes", dict))
    )
    topology = Topology(
        trust_domain=_name(mesh.get("trust_domain", "boutique.local"), "mesh.trust_domain"),
        namespace=_name(mesh.get("namespace", "boutique"), "mesh.namespace"),
        ingress_port=_port(ingress.get("port", 8080), "mesh.ingress.port"),
        ingress_routes=routes,
        services=services,
        defaults=default_policy,
        user_token=_access(
            access.user_token, mesh.get("user_token", {}), "mesh.user_token", _duration
        ),
        sampling=_percent(tracing.get("sampling", 100), "mesh.tracing.sampling"),
        readiness=resilience.readiness(mesh.get("readiness", {}), "mesh.readiness"),
        admission=resilience.admission(ingress.get("admission", {}), "mesh.ingress.admission"),
        rate_limit=(
            _access(access.rate_limit, ingress["rate_limit"], "mesh.ingress.rate_limit")
            if "rate_limit" in ingress
            else RateLimit()
        ),
    )
    _check(topology)
    return topology


def _service(name: Any, spec: Any, defaults: dict[str, Any]) -> Service:
    where = f"services.{name}"
    if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9-]*", name):
        raise TopologyError(f"{where}: a service name is lower-case letters, digits and -")
    spec = _mapping(spec, where)
    _known(spec, {"port", "replicas", "stores", "calls", "user_scoped", "redis_keys"}, where)
    stores = tuple(_list(spec.get("stores", []), f"{where}.stores", str))
    bad = set(stores) - STORES
    if bad:
        raise TopologyError(
            f"{where}.stores: unknown store(s) {sorted(bad)}; known {sorted(STORES)}"
        )
    calls_raw = spec.get("calls", {})
    if isinstance(calls_raw, list):
        names = _list(calls_raw, f"{where}.calls", str)
        if len(set(names)) != len(names):
            raise TopologyError(f"{where}.calls: a peer is listed twice")
        calls_raw = {peer: {} for peer in names}
    calls_raw = _mapping(calls_raw, f"{where}.calls")
    allow = {}
    for peer, p in list(calls_raw.items()):
        p = dict(_mapping(p or {}, f"{where}.calls.{peer}"))
        if "allow" in p:
            allow[peer] = _access(access.operations, p.pop("allow"), f"{where}.calls.{peer}.allow")
        calls_raw[peer] = p
    calls = {
        peer: _policy(
            _merge(defaults, _mapping(p or {}, f"{where}.calls.{peer}")), f"{where}.calls.{peer}"
        )
        for peer, p in calls_raw.items()
    }
    replicas = spec.get("replicas", 1)
    if not isinstance(replicas, int) or isinstance(replicas, bool) or not 1 <= replicas <= 9:
        raise TopologyError(f"{where}.replicas: expected 1 to 9, got {replicas!r}")
    user_scoped = spec.get("user_scoped", False)
    if not isinstance(user_scoped, bool):
        raise TopologyError(f"{where}.user_scoped: expected true or false")
    keys: tuple[str, ...] = ()
    if "redis_keys" in spec:
        keys = _access(access.redis_keys, spec["redis_keys"], f"{where}.redis_keys")
    if bool(keys) != ("redis" in stores):
        raise TopologyError(
            f"{where}.redis_keys: a service with a redis store lists the keys it may use "
            "(and only such a service)"
        )
    port = _port(spec.get("port"), f"{where}.port")
    return Service(name, port, replicas, stores, calls, allow, user_scoped, keys)


def _access(parse: Any, value: Any, where: str, *args: Any) -> Any:
    try:
        return parse(value, where, *args)
    except access.AccessError as exc:
        raise TopologyError(str(exc)) from None


def _policy(p: dict[str, Any], where: str) -> CallPolicy:
    _known(
        p, {"timeout", "connect_timeout", "retries", "circuit_breaker", "outlier_detection"}, where
    )
    cb = _mapping(p.get("circuit_breaker", {}), f"{where}.circuit_breaker")
    _known(
        cb,
        {"max_connections", "max_pending_requests", "max_requests", "max_retries"},
        f"{where}.circuit_breaker",
    )
    od = _mapping(p.get("outlier_detection", {}), f"{where}.outlier_detection")
    _known(
        od,
        {"consecutive_5xx", "interval", "base_ejection_time", "max_ejection_percent"},
        f"{where}.outlier_detection",
    )
    timeout = p.get("timeout", "10s")
    return CallPolicy(
        timeout_ms=_duration(timeout, f"{where}.timeout"),
        connect_timeout_ms=_duration(p.get("connect_timeout", "1s"), f"{where}.connect_timeout"),
        retries=_retries(p.get("retries", {}), timeout, ["connect-failure"], f"{where}.retries"),
        circuit_breaker=CircuitBreaker(
            **{
                k: _int(cb.get(k, 1024), f"{where}.circuit_breaker.{k}", 1, 1_000_000)
                for k in ("max_connections", "max_pending_requests", "max_requests", "max_retries")
            }
        ),
        outlier_detection=OutlierDetection(
            consecutive_5xx=_int(
                od.get("consecutive_5xx", 5), f"{where}.outlier_detection.consecutive_5xx", 1, 1000
            ),
            interval_ms=_duration(od.get("interval", "10s"), f"{where}.outlier_detection.interval"),
            base_ejection_time_ms=_duration(
                od.get("base_ejection_time", "30s"), f"{where}.outlier_detection.base_ejection_time"
            ),
            max_ejection_percent=_int(
                od.get("max_ejection_percent", 10),
                f"{where}.outlier_detection.max_ejection_percent",
                0,
                100,
            ),
        ),
    )


def _retries(raw: Any, timeout: Any, on: list[str], where: str) -> Retries:
    """A retry policy; ``per_try_timeout`` defaults to the whole ``timeout``."""
    r = _mapping(raw, where)
    _known(r, {"attempts", "per_try_timeout", "retry_on"}, where)
    conditions = tuple(_list(r.get("retry_on", on), f"{where}.retry_on", str))
    bad = set(conditions) - RETRY_ON
    if bad:
        raise TopologyError(
            f"{where}.retry_on: unknown condition(s) {sorted(bad)}; known {sorted(RETRY_ON)}"
        )
    return Retries(
        attempts=_int(r.get("attempts", 0), f"{where}.attempts", 0, 10),
        per_try_timeout_ms=_duration(r.get("per_try_timeout", timeout), f"{where}.per_try_timeout"),
        on=conditions,
    )


def _ingress_route(r: dict[str, Any], edge_retries: dict[str, Any], where: str) -> IngressRoute:
    """A route of the ingress; its ``retries`` keys win over ``mesh.ingress.retries``."""
    _known(r, {"prefix", "service", "timeout", "retries"}, where)
    prefix = r.get("prefix")
    if not isinstance(prefix, str) or not prefix.startswith("/"):
        raise TopologyError(f"{where}.prefix: expected a path starting with /, got {prefix!r}")
    service = r.get("service")
    if not isinstance(service, str):
        raise TopologyError(f"{where}.service: expected a service name")
    timeout = r.get("timeout", "15s")
    own = _mapping(r.get("retries", {}), f"{where}.retries")
    retries = _retries({**edge_retries, **own}, timeout, EDGE_RETRY_ON, f"{where}.retries")
    return IngressRoute(prefix, service, _duration(timeout, f"{where}.timeout"), retries)


def _check(topology: Topology) -> None:
    ports: dict[int, str] = {topology.ingress_port: "mesh.ingress.port"}
    for svc in topology.services.values():
        for peer in svc.calls:
            if peer not in topology.services:
                raise TopologyError(f"services.{svc.name}.calls: unknown peer {peer!r}")
            if peer == svc.name:
                raise TopologyError(f"services.{svc.name}.calls: a service does not call itself")
        where = f"services.{svc.name}.port"
        if svc.port in ports:
            raise TopologyError(f"{where}: port {svc.port} is already used by {ports[svc.port]}")
        ports[svc.port] = where
    scoped = any(s.user_scoped for s in topology.services.values())
    if scoped and topology.user_token.signer not in topology.services:
        raise TopologyError(
            f"mesh.user_token.signer: unknown service {topology.user_token.signer!r}"
        )
    for i, route in enumerate(topology.ingress_routes):
        if route.service not in topology.services:
            raise TopologyError(
                f"mesh.ingress.routes[{i}].service: unknown service {route.service!r}"
            )
