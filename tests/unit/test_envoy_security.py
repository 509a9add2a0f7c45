"""The zero-trust parts of the rendered Envoy configs (docs/security.md), read back from them."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from mesh import topology
from mesh.local import LocalOptions, LocalRun, envoy_binary

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def configs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    run_dir = tmp_path_factory.mktemp("secure")
    run = LocalRun(topology.load(), LocalOptions(run_dir=run_dir, https=True))
    paths = run.render()
    return {"paths": paths, **{n: yaml.safe_load(p.read_text()) for n, p in paths.items()}}


def _filters(config: dict[str, Any], listener: str) -> list[dict[str, Any]]:
    found = next(x for x in config["static_resources"]["listeners"] if x["name"] == listener)
    return found["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"]


def _listener(config: dict[str, Any], name: str) -> dict[str, Any]:
    return next(x for x in config["static_resources"]["listeners"] if x["name"] == name)


def test_the_egress_and_the_admin_are_private_unix_sockets(configs: dict[str, Any]) -> None:
    for name in ("cart-0", "ingress"):
        admin = configs[name]["admin"]["address"]["pipe"]
        assert admin["path"].endswith(f"pods/{name}/admin.sock") and admin["mode"] == 0o600
    egress = _listener(configs["cart-0"], "outbound")["address"]["pipe"]
    assert egress["path"].endswith("pods/cart-0/egress.sock") and egress["mode"] == 0o600


def test_inbound_drops_the_user_header_verifies_the_token_then_checks_the_caller(
    configs: dict[str, Any],
) -> None:
    names = [f["name"] for f in _filters(configs["orders-0"], "inbound")]
    assert names[:3] == [
        "envoy.filters.http.header_mutation",
        "envoy.filters.http.jwt_authn",
        "envoy.filters.http.rbac",
    ]
    strip, jwt, _ = _filters(configs["orders-0"], "inbound")[:3]
    assert strip["typed_config"]["mutations"]["request_mutations"] == [{"remove": "x-user-id"}]
    provider = jwt["typed_config"]["providers"]["user"]
    assert provider["from_headers"] == [{"name": "x-user-token"}]
    assert provider["claim_to_headers"] == [{"header_name": "x-user-id", "claim_name": "sub"}]
    assert provider["audiences"] == ["boutique"]
    # Verified tokens are kept (the gateway reuses a user's token): more than Envoy's 100.
    assert provider["jwt_cache_config"]["jwt_cache_size"] >= 1000
    compose = yaml.safe_load((REPO / "envoy/compose/orders-0.yaml").read_text())
    listener = next(x for x in compose["static_resources"]["listeners"] if x["name"] == "inbound")
    chain = listener["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"]
    composed = next(f for f in chain if f["name"] == "envoy.filters.http.jwt_authn")
    assert composed["typed_config"]["providers"]["user"]["jwt_cache_config"] == {
        "jwt_cache_size": provider["jwt_cache_config"]["jwt_cache_size"]
    }


def _policies(config: dict[str, Any]) -> dict[str, Any]:
    rbac = next(f for f in _filters(config, "inbound") if f["name"] == "envoy.filters.http.rbac")
    return rbac["typed_config"]["rules"]["policies"]


def test_each_caller_gets_only_its_operations_and_a_user_where_scoped(
    configs: dict[str, Any],
) -> None:
    policies = _policies(configs["orders-0"])
    assert set(policies) >= {
        f"{c}-{kind}" for c in ("gateway", "checkout", "payment") for kind in ("calls", "health")
    }
    assert "ratings-calls" in policies  # ratings checks a purchase (issue 16)
    payment = policies["payment-calls"]
    [only] = payment["permissions"]
    method, path = only["and_rules"]["rules"]
    assert method["header"]["string_match"] == {"exact": "POST"}
    assert path["url_path"]["path"]["safe_regex"]["regex"] == "^/orders/[^/]+/pay$"
    ids = payment["principals"][0]["and_ids"]["ids"]
    assert ids[0]["authenticated"]["principal_name"]["exact"].endswith("/sa/payment")
    assert ids[1] == {"header": {"name": "x-user-id", "present_match": True}}
    # products is not user-scoped: the caller's identity and operation are enough
    cart = _policies(configs["products-0"])["cart-calls"]
    assert "authenticated" in cart["principals"][0]


def test_the_edge_rate_limits_sign_in_and_serves_tls(configs: dict[str, Any]) -> None:
    ingress = _listener(configs["ingress"], "ingress")
    hcm = ingress["filter_chains"][0]["filters"][0]["typed_config"]
    routes = hcm["route_config"]["virtual_hosts"][0]["routes"]
    limited = {r["match"]["path"]: r for r in routes if "typed_per_filter_config" in r}
    assert set(limited) == {"/api/auth/login", "/api/auth/register", "/signin", "/signup"}
    bucket = limited["/signin"]["typed_per_filter_config"]["envoy.filters.http.local_ratelimit"]
    assert bucket["token_bucket"]["max_tokens"] == 10
    assert limited["/signin"]["route"]["cluster"] == "frontend"
    assert limited["/api/auth/login"]["route"]["cluster"] == "gateway"
    assert "transport_socket" in ingress["filter_chains"][0]


def test_the_https_configs_pass_envoy_validate(configs: dict[str, Any]) -> None:
    for name in ("ingress", "orders-0"):
        result = subprocess.run(
            [envoy_binary(), "--mode", "validate", "-c", str(configs["paths"][name])],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, f"{name}: {result.stdout}{result.stderr}"


def test_a_call_without_allow_may_use_any_path() -> None:
    raw = {"services": {"a": {"port": 9001, "calls": ["b"]}, "b": {"port": 9002}}}
    run = LocalRun(topology.parse(raw), LocalOptions(run_dir=Path("unused")))
    assert run.placement is not None
    from mesh.render import envoy

    config = envoy.sidecar(run.topology, run.placement, run.placement.instances["b"][0])
    assert _policies(config)["a-calls"]["permissions"] == [{"any": True}]
