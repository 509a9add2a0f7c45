"""Static checks for the rendered ``istio/`` tree: Istio's CRD schemas, and each call's policy
read back from both renderings (the local Envoy configs and the Istio resources)."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

import celpy
import jsonschema
import yaml

CRDS = Path(__file__).parent / "schemas" / "istio-crds.yaml"
TOP_LEVEL = {"apiVersion", "kind", "metadata", "spec"}


# -- Istio's CRD schemas ------------------------------------------------------------------------


def _closed(schema: Any) -> Any:
    """The schema with unknown fields as errors, as the API server's pruning makes them."""
    if isinstance(schema, list):
        return [_closed(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _closed(v) for k, v in schema.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@cache
def crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> the served version's openAPIV3Schema, closed."""
    out = {}
    for crd in yaml.safe_load_all(CRDS.read_text()):
        if not crd:
            continue
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            if version.get("served"):
                schema = version["schema"]["openAPIV3Schema"]
                out[(f"{group}/{version['name']}", kind)] = _closed(schema)
    return out


_CEL = celpy.Environment()


@cache
def _program(rule: str) -> Any:
    return _CEL.program(_CEL.compile(rule))


def _cel_errors(schema: dict[str, Any], value: Any, where: str) -> list[str]:
    """The CRDs' CEL rules (x-kubernetes-validations), evaluated for every value present."""
    errors = []
    for v in schema.get("x-kubernetes-validations", []):
        try:
            ok = _program(v["rule"]).evaluate({"self": celpy.json_to_cel(value)})
        except Exception as exc:  # a rule that fails to evaluate is a failed rule
            ok = exc
        if isinstance(ok, Exception) or not bool(ok):
            errors.append(f"{where}: {v.get('message', v['rule'])} ({value!r})")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            sub = props.get(key, extra if isinstance(extra, dict) else None)
            if sub:
                errors += _cel_errors(sub, item, f"{where}.{key}")
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            errors += _cel_errors(schema["items"], item, f"{where}[{i}]")
    return errors


def istio_errors(obj: dict[str, Any]) -> list[str]:
    """Why the API server would refuse ``obj`` (schema, unknown fields, CEL rules); [] if none."""
    name = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
    schema = crd_schemas().get((obj.get("apiVersion"), obj.get("kind")))
    if schema is None:
        return [f"{name}: no served CRD for {obj.get('apiVersion')} {obj.get('kind')}"]
    errors = [f"{name}: unknown top-level field {k!r}" for k in set(obj) - TOP_LEVEL]
    spec = schema["properties"]["spec"]
    validator = jsonschema.Draft7Validator(spec)
    errors += [
        f"{name}: spec.{'.'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(obj.get("spec", {}))
    ]
    return errors + _cel_errors(spec, obj.get("spec", {}), f"{name}: spec")


# -- a call's policy, read back from each rendering ---------------------------------------------

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)$")
_UNIT = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}


def to_ms(value: str) -> int:
    match = _DURATION.match(value)
    assert match, f"not a duration: {value!r}"
    return round(float(match.group(1)) * _UNIT[match.group(2)])


def envoy_retries(route: dict[str, Any]) -> tuple[int, int, frozenset[str]] | None:
    policy = route.get("retry_policy")
    if not policy or not policy.get("num_retries"):
        return None
    # retriable-headers retries a local sidecar's own not-ready answer; on Kubernetes a pod that
    # is not ready leaves the Service's endpoints instead (its readinessProbe), so no such answer
    on = frozenset(policy["retry_on"].split(",")) - {"retriable-headers"}
    return policy["num_retries"], to_ms(policy["per_try_timeout"]), on


def istio_retries(route: dict[str, Any]) -> tuple[int, int, frozenset[str]] | None:
    retries = route["retries"]  # always written: no retries means Istio's default of 2
    if not retries["attempts"]:
        return None
    on = frozenset(retries["retryOn"].split(","))
    return retries["attempts"], to_ms(retries["perTryTimeout"]), on


def _envoy_match(match: dict[str, Any]) -> tuple[str, ...]:
    out = []
    for header in match.get("headers", []):
        if header["name"] == ":method":
            out.append(f"method~{header['string_match']['safe_regex']['regex']}")
        else:
            assert header.get("present_match") is True, header
            out.append(f"has {header['name']}")
    return tuple(out)


def _istio_match(match: dict[str, Any]) -> tuple[str, ...]:
    out = []
    if "method" in match:
        out.append(f"method~{match['method']['regex']}")
    for name, value in match.get("headers", {}).items():
        assert value == {"regex": ".*"}, value  # any value, even empty: Envoy's present_match
        out.append(f"has {name}")
    return tuple(out)


def envoy_routes(sidecar: dict[str, Any], callee: str) -> list[tuple[Any, ...]]:
    """The caller's routes to ``callee``: (match, timeout, retries), in order."""
    listener = next(x for x in sidecar["static_resources"]["listeners"] if x["name"] == "outbound")
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    vhost = next(v for v in hcm["route_config"]["virtual_hosts"] if v["name"] == callee)
    return [
        (_envoy_match(r["match"]), to_ms(r["route"]["timeout"]), envoy_retries(r["route"]))
        for r in vhost["routes"]
    ]


def envoy_peers(sidecar: dict[str, Any]) -> set[str]:
    """The hosts the app may call through its egress (the catch-all refusal left out)."""
    listener = next(x for x in sidecar["static_resources"]["listeners"] if x["name"] == "outbound")
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    return {v["name"] for v in hcm["route_config"]["virtual_hosts"]} - {"not-allowed"}


def istio_routes(vs: dict[str, Any], caller: str) -> list[tuple[Any, ...]]:
    out = []
    for route in vs["spec"]["http"]:
        (match,) = route["match"]
        if match["sourceLabels"] != {"app": caller}:
            continue
        rest = {k: v for k, v in match.items() if k != "sourceLabels"}
        out.append((_istio_match(rest), to_ms(route["timeout"]), istio_retries(route)))
    return out


def envoy_cluster(config: dict[str, Any], callee: str) -> dict[str, Any]:
    """A peer cluster's circuit breaker, outlier detection and connect timeout."""
    cluster = next(c for c in config["static_resources"]["clusters"] if c["name"] == callee)
    (cb,) = cluster["circuit_breakers"]["thresholds"]
    od = cluster["outlier_detection"]
    return {
        "max_connections": cb["max_connections"],
        "max_pending_requests": cb["max_pending_requests"],
        "max_requests": cb["max_requests"],
        "max_retries": cb["max_retries"],
        "consecutive_5xx": od["consecutive_5xx"],
        "consecutive_gateway": od["consecutive_gateway_failure"],
        "interval": to_ms(od["interval"]),
        "base_ejection_time": to_ms(od["base_ejection_time"]),
        "max_ejection_percent": od["max_ejection_percent"],
        "connect_timeout": to_ms(cluster["connect_timeout"]),
        "mtls": "common_tls_context" in cluster["transport_socket"]["typed_config"],
    }


def istio_cluster(dr: dict[str, Any]) -> dict[str, Any]:
    policy = dr["spec"]["trafficPolicy"]
    tcp, http = policy["connectionPool"]["tcp"], policy["connectionPool"]["http"]
    od = policy["outlierDetection"]
    return {
        "max_connections": tcp["maxConnections"],
        "max_pending_requests": http["http1MaxPendingRequests"],
        "max_requests": http["http2MaxRequests"],
        "max_retries": http["maxRetries"],
        "consecutive_5xx": od["consecutive5xxErrors"],
        "consecutive_gateway": od["consecutiveGatewayErrors"],
        "interval": to_ms(od["interval"]),
        "base_ejection_time": to_ms(od["baseEjectionTime"]),
        "max_ejection_percent": od["maxEjectionPercent"],
        "connect_timeout": to_ms(tcp["connectTimeout"]),
        "mtls": policy["tls"] == {"mode": "ISTIO_MUTUAL"},
    }


# Where the callers of one host disagree, the DestinationRule takes the strictest value.
# (min for the rest: limits, errors before ejection, interval, connect timeout)
STRICTEST = {"base_ejection_time": max, "max_ejection_percent": max, "mtls": all}


def strictest(clusters: list[dict[str, Any]]) -> dict[str, Any]:
    return {k: STRICTEST.get(k, min)(c[k] for c in clusters) for k in clusters[0]}


def envoy_callers(sidecar: dict[str, Any]) -> set[str]:
    """The SPIFFE ids the inbound RBAC admits."""
    listener = next(x for x in sidecar["static_resources"]["listeners"] if x["name"] == "inbound")
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    rbac = next(f for f in hcm["http_filters"] if f["name"] == "envoy.filters.http.rbac")
    out = set()
    for policy in rbac["typed_config"]["rules"]["policies"].values():
        for p in policy["principals"]:
            if "authenticated" in p:
                out.add(p["authenticated"]["principal_name"]["exact"])
    return out


def istio_callers(policy: dict[str, Any]) -> set[str]:
    return {
        f"spiffe://{p}"
        for rule in policy["spec"].get("rules", [])
        for source in rule["from"]
        for p in source["source"]["principals"]
    }


def _template_regex(path: str) -> str:
    """An Istio path template (``/orders/{*}/pay``) as the regex the local RBAC uses."""
    segments = path.strip("/").split("/") if path != "/" else []
    return "^/" + "/".join("[^/]+" if s == "{*}" else re.escape(s) for s in segments) + "$"


def istio_access(policy: dict[str, Any]) -> dict[str, set[tuple[str, str, bool]]]:
    """Per principal (a SPIFFE id): the (method, path regex, needs a user) it is allowed;
    ("*", "*", ...) for any operation."""
    out: dict[str, set[tuple[str, str, bool]]] = {}
    for rule in policy["spec"].get("rules", []):
        ops = {("*", "*")}
        if "to" in rule:
            ops = {
                (m, _template_regex(p))
                for to in rule["to"]
                for m in to["operation"]["methods"]
                for p in to["operation"]["paths"]
            }
        for source in rule["from"]:
            user = bool(source["source"].get("requestPrincipals"))
            for p in source["source"]["principals"]:
                out.setdefault(f"spiffe://{p}", set()).update((m, r, user) for m, r in ops)
    return out


def envoy_access(sidecar: dict[str, Any]) -> dict[str, set[tuple[str, str, bool]]]:
    """The inbound RBAC as :func:`istio_access` reads an AuthorizationPolicy: per SPIFFE id, the
    (method, path regex, needs a verified user) it is allowed."""
    listener = next(x for x in sidecar["static_resources"]["listeners"] if x["name"] == "inbound")
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    rbac = next(f for f in hcm["http_filters"] if f["name"] == "envoy.filters.http.rbac")
    out: dict[str, set[tuple[str, str, bool]]] = {}
    for policy in rbac["typed_config"]["rules"]["policies"].values():
        ops = set()
        for perm in policy["permissions"]:
            if perm.get("any"):
                ops.add(("*", "*"))
                continue
            method, path = perm["and_rules"]["rules"]
            ops.add(
                (
                    method["header"]["string_match"]["exact"],
                    path["url_path"]["path"]["safe_regex"]["regex"],
                )
            )
        for who in policy["principals"]:
            ids = who["and_ids"]["ids"] if "and_ids" in who else [who]
            user = any(i.get("header", {}).get("present_match") for i in ids)
            (spiffe,) = (
                i["authenticated"]["principal_name"]["exact"] for i in ids if "authenticated" in i
            )
            out.setdefault(spiffe, set()).update((m, r, user) for m, r in ops)
    # any operation without a user covers everything else (the edge's health checks)
    return {p: {("*", "*", False)} if ("*", "*", False) in o else o for p, o in out.items()}
