"""The Envoy pieces of zero trust (docs/security.md): who may call what, and as which user.

- Inbound, in this order: any ``X-User-Id`` a caller sent is dropped; ``jwt_authn`` verifies the
  user token (``X-User-Token``, ES256, the run's JWKS) and puts its verified subject into
  ``X-User-Id`` (a token verified before is found in its verified-token cache, keyed by the
  whole token, and its ``exp`` checked again: the gateway reuses a user's token); RBAC allows
  each caller (its SPIFFE id) only the operations its call lists in the topology, and on a
  ``user_scoped`` service only with a verified user. A caller may always read ``/healthz`` and
  ``/readyz``. Refusals are problem+json (401 ``invalid_user_token``, 403 ``refused_by_mesh``).
- At the edge: a local rate limit (token bucket per route) on the topology's rate-limited
  operations (429 ``rate_limited`` with ``Retry-After``), and TLS when a certificate is given.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from mesh.access import Operation
from mesh.topology import Topology

_T = "type.googleapis.com/envoy.extensions"
RBAC = f"{_T}.filters.http.rbac.v3.RBAC"
JWT_AUTHN = f"{_T}.filters.http.jwt_authn.v3.JwtAuthentication"
HEADER_MUTATION = f"{_T}.filters.http.header_mutation.v3.HeaderMutation"
LOCAL_RATE_LIMIT = f"{_T}.filters.http.local_ratelimit.v3.LocalRateLimit"
DOWNSTREAM_TLS = f"{_T}.transport_sockets.tls.v3.DownstreamTlsContext"
RATE_LIMIT_FILTER = "envoy.filters.http.local_ratelimit"
JWT_PROVIDER = "user"
# Verified tokens a sidecar keeps (one per recently seen user, a few KB each; Envoy's default
# is 100). Each worker thread has its own; the sidecars run one.
JWT_CACHE_SIZE = 1024
HEALTH = (Operation("GET", "/healthz"), Operation("GET", "/readyz"))


def _problem(status: int, title: str, detail: str, code: str) -> str:
    return (
        f'{{"type":"about:blank","status":{status},"title":"{title}",'
        f'"detail":"{detail}","code":"{code}"}}'
    )


def _mapper(status: int, body: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    value = {"default_value": status, "runtime_key": f"boutique.local_reply.{status}"}
    mapper: dict[str, Any] = {
        "filter": {"status_code_filter": {"comparison": {"op": "EQ", "value": value}}},
        "body_format_override": {
            "text_format_source": {"inline_string": body},
            "content_type": "application/problem+json",
        },
    }
    if headers:
        mapper["headers_to_add"] = [
            {"header": {"key": k, "value": v}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}
            for k, v in headers.items()
        ]
    return mapper


def inbound_replies() -> list[dict[str, Any]]:
    """Local-reply mappers of a sidecar's inbound listener: its refusals as problem+json."""
    return [
        _mapper(
            401,
            _problem(
                401,
                "Refused by the mesh",
                "The user token is not valid (signature, issuer, audience or expiry)",
                "invalid_user_token",
            ),
        ),
        _mapper(
            403,
            _problem(
                403,
                "Refused by the mesh",
                "The mesh does not allow this caller this operation (or it needs a signed-in user)",
                "refused_by_mesh",
            ),
        ),
    ]


def edge_replies() -> list[dict[str, Any]]:
    """Local-reply mappers of the ingress: a rate-limited request as problem+json."""
    body = _problem(
        429, "Too many requests", "Too many attempts; wait a moment and try again", "rate_limited"
    )
    return [_mapper(429, body, {"retry-after": "1"})]


# -- the inbound filters ------------------------------------------------------------------------


def inbound_filters(topology: Topology, service: str, jwks: Path) -> list[dict[str, Any]]:
    """Drop the caller's user header, verify the user token, then check caller and operation."""
    token = topology.user_token
    strip = {
        "name": "envoy.filters.http.header_mutation",
        "typed_config": {
            "@type": HEADER_MUTATION,
            "mutations": {"request_mutations": [{"remove": token.user_header}]},
        },
    }
    provider = {
        "issuer": token.issuer,
        "audiences": [token.audience],
        "from_headers": [{"name": token.header}],
        "forward": True,
        "local_jwks": {"filename": str(jwks)},
        "claim_to_headers": [{"header_name": token.user_header, "claim_name": "sub"}],
        "jwt_cache_config": {"jwt_cache_size": JWT_CACHE_SIZE},
    }
    either = {"requirements": [{"provider_name": JWT_PROVIDER}, {"allow_missing": {}}]}
    jwt = {
        "name": "envoy.filters.http.jwt_authn",
        "typed_config": {
            "@type": JWT_AUTHN,
            "providers": {JWT_PROVIDER: provider},
            "rules": [{"match": {"prefix": "/"}, "requires": {"requires_any": either}}],
        },
    }
    return [strip, jwt, rbac(topology, service)]


def _operation(op: Operation) -> dict[str, Any]:
    method = {"header": {"name": ":method", "string_match": {"exact": op.method}}}
    path = {"url_path": {"path": {"safe_regex": {"regex": op.regex}}}}
    return {"and_rules": {"rules": [method, path]}}


def rbac(topology: Topology, service: str) -> dict[str, Any]:
    """One policy per caller: its SPIFFE id (and a verified user on a user-scoped service) AND
    one of the operations its call lists; one more per caller for the health checks."""
    svc = topology.service(service)
    callers: dict[str, tuple[Operation, ...] | None] = {
        c: topology.allowed(c, service) for c in topology.callers(service)
    }
    if topology.exposed(service):
        callers["ingress"] = None  # the edge forwards the public API as a whole
    user = {"header": {"name": topology.user_token.user_header, "present_match": True}}
    policies: dict[str, Any] = {}
    for caller, ops in callers.items():
        principal = {"authenticated": {"principal_name": {"exact": topology.spiffe_id(caller)}}}
        who = {"and_ids": {"ids": [principal, user]}} if svc.user_scoped else principal
        allowed = [{"any": True}] if ops is None else [_operation(op) for op in ops]
        policies[f"{caller}-calls"] = {"permissions": allowed, "principals": [who]}
        policies[f"{caller}-health"] = {
            "permissions": [_operation(op) for op in HEALTH],
            "principals": [principal],
        }
    return {
        "name": "envoy.filters.http.rbac",
        "typed_config": {"@type": RBAC, "rules": {"action": "ALLOW", "policies": policies}},
    }


# -- the edge -----------------------------------------------------------------------------------


def rate_limit_filter() -> dict[str, Any]:
    """Off for every route but those given a bucket (:func:`with_rate_limits`)."""
    return {
        "name": RATE_LIMIT_FILTER,
        "typed_config": {"@type": LOCAL_RATE_LIMIT, "stat_prefix": "edge_rate_limit"},
    }


def bucket(per_second: int) -> dict[str, Any]:
    """The edge's token bucket per operation (also the Istio ingress gateway's, istio_edge)."""
    everyone = {"numerator": 100, "denominator": "HUNDRED"}
    return {
        "@type": LOCAL_RATE_LIMIT,
        "stat_prefix": "edge_rate_limit",
        "token_bucket": {
            "max_tokens": per_second,
            "tokens_per_fill": per_second,
            "fill_interval": "1s",
        },
        "filter_enabled": {"runtime_key": "edge_rate_limit.enabled", "default_value": everyone},
        "filter_enforced": {"runtime_key": "edge_rate_limit.enforced", "default_value": everyone},
        "response_headers_to_add": [
            {
                "header": {"key": "retry-after", "value": "1"},
                "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
            }
        ],
    }


def with_rate_limits(
    routes: list[dict[str, Any]], limited: tuple[Operation, ...], per_second: int
) -> list[dict[str, Any]]:
    """``routes`` with one route per rate-limited operation in front, each a copy of the route
    that would serve it, matching the exact method and path, with its own token bucket."""
    front = []
    for op in limited:
        base = next(
            (r for r in routes if "route" in r and op.path.startswith(r["match"]["prefix"])), None
        )
        if base is None:
            continue
        route = copy.deepcopy(base)
        route["name"] = f"rate-limited {op}"
        route["match"] = {
            "path": op.path,
            "headers": [{"name": ":method", "string_match": {"exact": op.method}}],
        }
        route["typed_per_filter_config"] = {RATE_LIMIT_FILTER: bucket(per_second)}
        front.append(route)
    return [*front, *routes]


def edge_tls(cert: Path, key: Path) -> dict[str, Any]:
    """The public port's TLS (``boutique up --https``)."""
    context = {
        "tls_certificates": [
            {"certificate_chain": {"filename": str(cert)}, "private_key": {"filename": str(key)}}
        ],
        "alpn_protocols": ["http/1.1"],
    }
    return {
        "name": "envoy.transport_sockets.tls",
        "typed_config": {"@type": DOWNSTREAM_TLS, "common_tls_context": context},
    }
