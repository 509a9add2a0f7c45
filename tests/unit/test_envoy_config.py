"""Rendered Envoy configs: valid for the real Envoy, deterministic, and true to the topology."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from mesh import topology
from mesh.local import LocalOptions, LocalRun, envoy_binary
from mesh.placement import local_placement
from mesh.render import envoy


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    run = LocalRun(topology.load(), LocalOptions(run_dir=tmp_path_factory.mktemp("render")))
    return run.render()


def test_there_is_a_config_per_instance_and_one_for_the_ingress(rendered: dict[str, Path]) -> None:
    topo = topology.load()
    expected = {f"{s.name}-{r}" for s in topo.services.values() for r in range(s.replicas)}
    assert set(rendered) == expected | {"ingress"}


def test_every_config_passes_envoy_validate(rendered: dict[str, Path]) -> None:
    for name, path in rendered.items():
        result = subprocess.run(
            [envoy_binary(), "--mode", "validate", "-c", str(path), "--log-level", "error"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, f"{name}: {result.stdout}{result.stderr}"


def test_rendering_is_deterministic(tmp_path: Path) -> None:
    opts = LocalOptions(run_dir=tmp_path)
    first = {n: p.read_text() for n, p in LocalRun(topology.load(), opts).render().items()}
    second = {n: p.read_text() for n, p in LocalRun(topology.load(), opts).render().items()}
    assert first == second


def test_the_outbound_listener_carries_each_calls_policy(rendered: dict[str, Path]) -> None:
    config = yaml.safe_load(rendered["cart-0"].read_text())
    listener = next(x for x in config["static_resources"]["listeners"] if x["name"] == "outbound")
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    vhosts = {v["name"]: v for v in hcm["route_config"]["virtual_hosts"]}
    assert set(vhosts) == {"products", "not-allowed"}  # cart calls products only
    safe, keyed, other = vhosts["products"]["routes"]
    assert safe["route"]["timeout"] == "2.000s"
    assert safe["route"]["retry_policy"]["num_retries"] == 3
    assert safe["route"]["retry_policy"]["per_try_timeout"] == "0.600s"
    assert keyed["match"]["headers"] == [{"name": "idempotency-key", "present_match": True}]
    # a POST without an idempotency key is only retried when it never reached the app (a
    # peer's not-ready answer, marked by its sidecar, included)
    assert other["route"]["retry_policy"]["retry_on"] == (
        "connect-failure,refused-stream,reset-before-request,retriable-headers"
    )
    assert other["route"]["retry_policy"]["retriable_headers"] == [
        {"name": "x-mesh-not-ready", "present_match": True}
    ]
    cluster = next(c for c in config["static_resources"]["clusters"] if c["name"] == "products")
    assert len(cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]) == 2  # two replicas
    assert cluster["outlier_detection"]["consecutive_5xx"] == 5


def test_the_inbound_listener_admits_only_declared_callers(rendered: dict[str, Path]) -> None:
    config = yaml.safe_load(rendered["products-0"].read_text())
    listener = next(x for x in config["static_resources"]["listeners"] if x["name"] == "inbound")
    chain = listener["filter_chains"][0]
    assert chain["transport_socket"]["typed_config"]["require_client_certificate"] is True
    filters = chain["filters"][0]["typed_config"]["http_filters"]
    rbac = next(f for f in filters if f["name"] == "envoy.filters.http.rbac")
    policies = rbac["typed_config"]["rules"]["policies"]
    principals = [p for policy in policies.values() for p in policy["principals"]]
    allowed = {p["authenticated"]["principal_name"]["exact"].rsplit("/", 1)[1] for p in principals}
    assert allowed == {"gateway", "cart", "checkout", "recommendations"}


# -- every policy value comes from the topology --------------------------------------------------


def _render(raw: dict) -> dict[str, dict]:
    topo = topology.parse(raw)
    placement = local_placement(topo, Path("run"), 8080, 15000, otlp_port=4318)
    return envoy.render_all(topo, placement)


def _clusters(config: dict) -> dict[str, dict]:
    return {c["name"]: c for c in config["static_resources"]["clusters"]}


def _routes(config: dict, listener: str, vhost: str) -> list[dict]:
    found = next(x for x in config["static_resources"]["listeners"] if x["name"] == listener)
    hcm = found["filter_chains"][0]["filters"][0]["typed_config"]
    return next(v for v in hcm["route_config"]["virtual_hosts"] if v["name"] == vhost)["routes"]


def _raw() -> dict:
    return yaml.safe_load(topology.DEFAULT_PATH.read_text())


def test_connect_timeouts_come_from_the_defaults_and_each_call() -> None:
    raw = _raw()
    raw["defaults"]["connect_timeout"] = "750ms"
    raw["services"]["cart"]["calls"]["products"]["connect_timeout"] = "250ms"
    configs = _render(raw)
    cart = _clusters(configs["cart-0"])
    assert cart["products"]["connect_timeout"] == "0.250s"  # the call's own
    assert cart["app"]["connect_timeout"] == "0.750s"  # the defaults'
    assert cart["otel_collector"]["connect_timeout"] == "0.750s"
    assert _clusters(configs["gateway-0"])["products"]["connect_timeout"] == "0.750s"
    assert _clusters(configs["ingress"])["gateway"]["connect_timeout"] == "0.750s"


def test_the_ingress_retries_come_from_the_topology_and_a_route_may_turn_them_off() -> None:
    raw = _raw()
    raw["mesh"]["ingress"]["retries"] = {"attempts": 3, "per_try_timeout": "5s"}
    raw["mesh"]["ingress"]["routes"][1]["retries"] = {"attempts": 0}
    routes = _routes(_render(raw)["ingress"], "ingress", "boutique")
    api, shop, _not_found = [r for r in routes if "typed_per_filter_config" not in r]
    assert api["route"]["retry_policy"]["num_retries"] == 3
    assert api["route"]["retry_policy"]["per_try_timeout"] == "5.000s"
    assert "retry_policy" not in shop["route"]


def test_attempts_zero_renders_no_retry_policy_at_all() -> None:
    raw = _raw()
    raw["services"]["cart"]["calls"]["products"]["retries"]["attempts"] = 0
    for route in _routes(_render(raw)["cart-0"], "outbound", "products"):
        assert "retry_policy" not in route["route"], route["name"]


def test_the_sampling_rate_comes_from_the_topology() -> None:
    raw = _raw()
    raw["mesh"]["tracing"] = {"sampling": 12.5}
    configs = _render(raw)
    for name in ("ingress", "cart-0"):
        for listener in configs[name]["static_resources"]["listeners"]:
            hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
            assert hcm["tracing"]["random_sampling"] == {"value": 12.5}, name


def _hcm(config: dict, listener: str) -> dict:
    found = next(x for x in config["static_resources"]["listeners"] if x["name"] == listener)
    return found["filter_chains"][0]["filters"][0]["typed_config"]


def test_a_ready_app_is_checked_every_interval_and_a_failing_one_every_recheck() -> None:
    """A ready app's sidecar checks it seldom (the stack's cost at rest); once a check fails,
    while the app is not ready and at start-up (no traffic yet), it checks every recheck."""
    raw = _raw()
    raw["mesh"]["readiness"] = {"interval": "5s", "recheck": "1s", "timeout": "1s"}
    [check] = _clusters(_render(raw)["cart-0"])["app"]["health_checks"]
    assert (check["interval"], check["no_traffic_healthy_interval"]) == ("5.000s", "5.000s")
    for key in ("unhealthy_interval", "unhealthy_edge_interval", "healthy_edge_interval"):
        assert check[key] == "1.000s", key
    assert check["no_traffic_interval"] == "1.000s"  # start-up: ready as soon as it answers


def test_each_sidecar_checks_its_apps_readiness_as_the_topology_says() -> None:
    raw = _raw()
    raw["mesh"]["readiness"] = {"interval": "2s", "timeout": "500ms", "unhealthy_threshold": 3}
    config = _render(raw)["orders-0"]
    app = _clusters(config)["app"]
    [check] = app["health_checks"]
    assert check["http_health_check"] == {"path": "/readyz", "host": "orders"}
    assert (check["interval"], check["timeout"]) == ("2.000s", "0.500s")
    assert check["no_traffic_interval"] == "2.000s"  # not Envoy's idle minute
    # without a recheck, every check comes at the interval
    assert {check[k] for k in check if k.endswith("_interval")} == {"2.000s"}
    assert (check["unhealthy_threshold"], check["healthy_threshold"]) == (3, 1)
    # no panic routing: an unready app gets nothing, even as its sidecar's only host
    assert app["common_lb_config"]["healthy_panic_threshold"] == {"value": 0}
    mapper, *refusals = _hcm(config, "inbound")["local_reply_config"]["mappers"]  # 401, 403 after
    assert mapper["filter"] == {"response_flag_filter": {"flags": ["UH"]}}
    assert '"code":"not_ready"' in mapper["body"]["inline_string"]
    headers = {h["header"]["key"]: h["header"]["value"] for h in mapper["headers_to_add"]}
    assert headers == {"retry-after": "1", "x-mesh-not-ready": "true"}


def test_the_ingress_admits_per_service_what_the_topology_allows() -> None:
    raw = _raw()
    raw["mesh"]["ingress"]["admission"] = {"max_requests": 20, "max_pending": 5}
    config = _render(raw)["ingress"]
    for service in ("gateway", "frontend"):
        [limits] = _clusters(config)[service]["circuit_breakers"]["thresholds"]
        assert (limits["max_requests"], limits["max_pending_requests"]) == (20, 5), service
        assert limits["max_connections"] == 20
    mapper, _rate_limited = _hcm(config, "ingress")["local_reply_config"]["mappers"]
    assert mapper["filter"] == {"response_flag_filter": {"flags": ["UO"]}}
    assert mapper["body_format_override"]["content_type"] == "application/problem+json"
    assert '"code":"overloaded"' in mapper["body"]["inline_string"]
    assert {"header": {"key": "retry-after", "value": "1"}} in [
        {"header": h["header"]} for h in mapper["headers_to_add"]
    ]


def test_every_proxy_watches_its_event_loops_every_five_seconds_without_killing() -> None:
    """Envoy's 200 ms watchdog woke every idle proxy ~35 times a second; at 5 s a stuck loop
    still counts as a miss (10 s a mega-miss), and nothing is killed, as by Envoy's default."""
    topo = topology.load()
    placement = local_placement(topo, Path("run"), 8080, 15000, otlp_port=4318)
    dog = {"miss_timeout": "5.000s", "megamiss_timeout": "10.000s"}
    for name, config in envoy.render_all(topo, placement).items():
        assert config["watchdogs"] == {"main_thread_watchdog": dog, "worker_watchdog": dog}, name
    plain = envoy.render_all(topo, placement, envoy.EnvoyOptions(watchdog_miss_ms=None))
    assert all("watchdogs" not in config for config in plain.values())
