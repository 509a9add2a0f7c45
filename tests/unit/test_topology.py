"""The topology file: the real one loads; every kind of mistake is refused with a clear message."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mesh import topology
from mesh.topology import TopologyError


def test_the_real_topology_loads_and_names_the_call_graph() -> None:
    topo = topology.load()
    assert set(topo.services) >= {"gateway", "products", "cart", "checkout", "payment", "orders"}
    assert set(topo.service("checkout").calls) >= {"cart", "products", "orders", "payment"}
    assert topo.service("products").calls == {}
    assert topo.service("products").replicas == 2
    assert topo.callers("products")[:3] == ["gateway", "cart", "checkout"]
    assert "recommendations" in topo.callers("products")  # issue 16: related products
    assert topo.spiffe_id("cart") == "spiffe://boutique.local/ns/boutique/sa/cart"


def test_a_call_gets_the_defaults_with_its_own_keys_winning() -> None:
    topo = topology.load()
    cart_products = topo.service("cart").calls["products"]
    assert cart_products.timeout_ms == 2000
    assert cart_products.retries.attempts == 3 and cart_products.retries.per_try_timeout_ms == 600
    # not overridden: from the defaults
    assert cart_products.retries.on == topo.defaults.retries.on
    assert cart_products.circuit_breaker == topo.defaults.circuit_breaker


def _raw() -> dict:
    return yaml.safe_load(topology.DEFAULT_PATH.read_text())


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: r["services"]["cart"].update(calls=["nowhere"]), "unknown peer 'nowhere'"),
        (lambda r: r["services"]["cart"].update(port=8102), "port 8102 is already used"),
        (lambda r: r["services"]["cart"].update(port=70000), "expected a port number"),
        (lambda r: r["services"]["cart"].update(port="80"), "expected a port number"),
        (lambda r: r["services"]["cart"].update(calls=["cart"]), "does not call itself"),
        (lambda r: r["services"]["cart"].update(stores=["mongo"]), "unknown store"),
        (lambda r: r["services"]["cart"].update(colour="red"), "unknown field"),
        (lambda r: r["services"]["cart"].update(calls=["products", "products"]), "listed twice"),
        (lambda r: r.update(services={}), "at least one service"),
        (lambda r: r["mesh"]["ingress"].update(port=8101), "already used"),
        (
            lambda r: r["services"]["cart"]["calls"]["products"].update(timeout="2 sec"),
            "cart.calls.products.timeout: bad duration '2 sec'",
        ),
        (
            lambda r: r["services"]["cart"]["calls"]["products"].update(timeout="0ms"),
            "at least 1ms",
        ),
        (
            lambda r: r["defaults"]["retries"].update(retry_on=["5xx", "sometimes"]),
            "unknown condition",
        ),
        (lambda r: r["defaults"]["retries"].update(attempts=-1), "retries.attempts"),
        (lambda r: r["defaults"]["circuit_breaker"].update(max_requests=0), "max_requests"),
        (lambda r: r["defaults"]["outlier_detection"].update(interval=5), "bad duration"),
        (lambda r: r["services"]["cart"].update(replicas=0), "replicas"),
        (
            lambda r: r["mesh"]["ingress"]["routes"][0].update(service="nowhere"),
            "unknown service 'nowhere'",
        ),
        (lambda r: r["mesh"]["ingress"]["routes"][0].update(prefix="api"), "starting with /"),
        (lambda r: r["defaults"].update(connect_timeout="1"), "defaults.connect_timeout: bad"),
        (
            lambda r: r["services"]["cart"]["calls"]["products"].update(connect_timeout="x"),
            "services.cart.calls.products.connect_timeout: bad duration",
        ),
        (lambda r: r["mesh"]["ingress"]["retries"].update(attempts=11), "ingress.retries.attempts"),
        (lambda r: r["mesh"]["ingress"]["retries"].update(tries=1), "ingress.retries: unknown"),
        (
            lambda r: r["mesh"]["ingress"]["routes"][0].update(retries={"retry_on": ["maybe"]}),
            r"mesh.ingress.routes\[0\].retries.retry_on: unknown condition",
        ),
        (lambda r: r["mesh"]["tracing"].update(sampling=101), "mesh.tracing.sampling"),
        (lambda r: r["mesh"]["tracing"].update(sampling="all"), "mesh.tracing.sampling"),
        (lambda r: r["mesh"]["tracing"].update(rate=1), "mesh.tracing: unknown field"),
        (lambda r: r["mesh"]["readiness"].update(path="readyz"), "readiness.path: expected a"),
        (lambda r: r["mesh"]["readiness"].update(interval="1"), "readiness.interval: bad"),
        (lambda r: r["mesh"]["readiness"].update(timeout="6s"), "readiness.timeout: at most"),
        (lambda r: r["mesh"]["readiness"].update(recheck="6s"), "readiness.recheck: 100ms to"),
        (lambda r: r["mesh"]["readiness"].update(recheck="50ms"), "readiness.recheck: 100ms to"),
        (
            lambda r: r["mesh"]["readiness"].update(unhealthy_threshold=0),
            "unhealthy_threshold .checks.: expected a whole number 1-10",
        ),
        (lambda r: r["mesh"]["readiness"].update(every="1s"), "readiness: unknown field"),
        (
            lambda r: r["mesh"]["ingress"]["admission"].update(max_requests=0),
            "mesh.ingress.admission.max_requests: expected a whole number",
        ),
        (lambda r: r["mesh"]["ingress"]["admission"].update(max_pending=-1), "max_pending"),
        (lambda r: r["mesh"]["ingress"]["admission"].update(rps=5), "admission: unknown"),
    ],
)
def test_mistakes_are_refused_with_a_clear_message(mutate, message) -> None:  # type: ignore[no-untyped-def]
    raw = _raw()
    mutate(raw)
    with pytest.raises(TopologyError, match=message):
        topology.parse(raw)


def test_a_service_defined_twice_is_refused(tmp_path: Path) -> None:
    text = topology.DEFAULT_PATH.read_text() + "  cart:\n    port: 9999\n"
    path = tmp_path / "topology.yaml"
    path.write_text(text)
    with pytest.raises(TopologyError, match="'cart' is defined twice"):
        topology.load(path)


def test_invalid_yaml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "topology.yaml"
    path.write_text("services: [unclosed")
    with pytest.raises(TopologyError, match="not valid YAML"):
        topology.load(path)


def test_a_minimal_topology_without_defaults_loads() -> None:
    topo = topology.parse({"services": {"a": {"port": 9001, "calls": ["b"]}, "b": {"port": 9002}}})
    policy = topo.service("a").calls["b"]
    assert policy.timeout_ms == 10_000 and policy.retries.per_try_timeout_ms == 10_000
    assert policy.connect_timeout_ms == 1000 and topo.sampling == 100
    assert topo.callers("b") == ["a"]


def test_the_ingress_retries_come_from_the_mesh_with_a_route_overriding_them() -> None:
    raw = _raw()
    raw["mesh"]["ingress"]["retries"] = {"attempts": 4, "per_try_timeout": "3s"}
    raw["mesh"]["ingress"]["routes"][1]["retries"] = {"attempts": 0}
    api, shop = topology.parse(raw).ingress_routes
    assert (api.retries.attempts, api.retries.per_try_timeout_ms) == (4, 3000)
    assert api.retries.on == tuple(topology.EDGE_RETRY_ON)  # not given: only never-reached
    assert (shop.retries.attempts, shop.retries.per_try_timeout_ms) == (0, 3000)
