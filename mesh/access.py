"""Who may do what, read from the topology: operations per call, the user token, Redis keys.

- ``allow`` (per call): ``["GET /products", "POST /orders/{id}/pay"]``. A ``{name}`` is one
  whole path segment. The callee's sidecar lets the caller use these operations and no others.
  A call without ``allow`` may use any path (handy in small test topologies; the shop's topology
  lists every call's operations).
- ``user_scoped`` (per service): every request must carry a user token the sidecar verified.
- ``redis_keys`` (per service with a ``redis`` store): the key patterns its Redis user may touch.
- ``mesh.user_token``: the signed end-user token (issuer, audience, lifetime, the signing service).
- ``mesh.ingress.rate_limit``: the operations the edge rate-limits (sign-in, sign-up).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
_LITERAL = re.compile(r"^[A-Za-z0-9._~-]+$")
_PARAM = re.compile(r"^\{[a-z_][a-z0-9_]*\}$")
_REDIS_PATTERN = re.compile(r"^[A-Za-z0-9:_.*-]+$")
_ISSUER = re.compile(r"^[A-Za-z0-9:/._-]{1,200}$")


class AccessError(ValueError):
    """A mistake in one of the access keys; the topology adds the file name."""


@dataclass(frozen=True)
class Operation:
    """One method on one path template, e.g. ``POST /orders/{id}/pay``."""

    method: str
    path: str

    @property
    def segments(self) -> tuple[str, ...]:
        return tuple(self.path.strip("/").split("/")) if self.path != "/" else ()

    @property
    def regex(self) -> str:
        """A RE2 regex for the path without its query (``{x}`` is one segment)."""
        parts = ["[^/]+" if _PARAM.match(s) else re.escape(s) for s in self.segments]
        return "^/" + "/".join(parts) + "$"

    def matches(self, method: str, path: str) -> bool:
        path = path.split("?", 1)[0]
        return method == self.method and re.fullmatch(self.regex[1:-1], path) is not None

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


@dataclass(frozen=True)
class UserToken:
    """The end-user token: ES256 JWT signed by ``signer``, verified by every sidecar."""

    issuer: str = "boutique.local/gateway"
    audience: str = "boutique"
    ttl_s: int = 300
    signer: str = "gateway"
    header: str = "x-user-token"  # where a service passes it on
    user_header: str = "x-user-id"  # where the sidecar puts the verified subject


@dataclass(frozen=True)
class RateLimit:
    """The edge's token bucket per operation (sign-in and sign-up): ``per_second`` each."""

    per_second: int = 10
    operations: tuple[Operation, ...] = ()


def rate_limit(value: Any, where: str) -> RateLimit:
    if not isinstance(value, dict) or set(value) - {"per_second", "operations"}:
        raise AccessError(f"{where}: expected a mapping of per_second and operations")
    per_second = value.get("per_second", RateLimit.per_second)
    if not isinstance(per_second, int) or isinstance(per_second, bool) or not per_second >= 1:
        raise AccessError(f"{where}.per_second: expected a whole number from 1")
    return RateLimit(per_second, operations(value.get("operations"), f"{where}.operations"))


def operations(value: Any, where: str) -> tuple[Operation, ...]:
    if not isinstance(value, list) or not value:
        raise AccessError(f"{where}: expected a non-empty list like ['GET /products']")
    ops = tuple(operation(v, f"{where}[{i}]") for i, v in enumerate(value))
    if len(set(ops)) != len(ops):
        raise AccessError(f"{where}: an operation is listed twice")
    return ops


def operation(value: Any, where: str) -> Operation:
    method, _, path = value.partition(" ") if isinstance(value, str) else ("", "", "")
    if method not in METHODS:
        raise AccessError(
            f"{where}: {value!r} should be 'METHOD /path' with METHOD one of {', '.join(METHODS)}"
        )
    if not path.startswith("/") or "?" in path or (path != "/" and path.endswith("/")):
        raise AccessError(f"{where}: {value!r}: the path starts with / and has no query or end /")
    op = Operation(method, path)
    for seg in op.segments:
        if not (_LITERAL.match(seg) or _PARAM.match(seg)):
            raise AccessError(
                f"{where}: {value!r}: segment {seg!r} is neither plain text nor a whole {{name}}"
            )
    return op


def redis_keys(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise AccessError(f"{where}: expected a non-empty list of key patterns like 'cart:*'")
    for v in value:
        if not isinstance(v, str) or not _REDIS_PATTERN.match(v):
            raise AccessError(f"{where}: {v!r} is not a key pattern (letters, digits, : _ . - *)")
    return tuple(value)


def user_token(value: Any, where: str, duration_ms: Any) -> UserToken:
    if not isinstance(value, dict):
        raise AccessError(f"{where}: expected a mapping")
    unknown = set(value) - {"issuer", "audience", "ttl", "signer"}
    if unknown:
        raise AccessError(f"{where}: unknown field(s) {sorted(unknown)}")
    base = UserToken()
    for key in ("issuer", "audience"):
        if key in value and not (isinstance(value[key], str) and _ISSUER.match(value[key])):
            raise AccessError(f"{where}.{key}: expected a short name or URL, got {value[key]!r}")
    ttl_ms = duration_ms(value.get("ttl", f"{base.ttl_s}s"), f"{where}.ttl")
    if not 10_000 <= ttl_ms <= 3_600_000:
        raise AccessError(f"{where}.ttl: a user token lives 10s to 1h")
    signer = value.get("signer", base.signer)
    if not isinstance(signer, str):
        raise AccessError(f"{where}.signer: expected a service name")
    return UserToken(
        issuer=value.get("issuer", base.issuer),
        audience=value.get("audience", base.audience),
        ttl_s=ttl_ms // 1000,
        signer=signer,
    )
