"""`boutique bench --floor`: the chain cut from the topology, the Envoy configs stripped to each
layer, the bare apps' answers, the plan, and the report's arithmetic and verdicts."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from boutique.cli import build_parser
from loadgenerator.bench import floor_report
from loadgenerator.bench.floor import floor_topology, role, strip
from loadgenerator.bench.floor_apps import catalogue
from loadgenerator.bench.floor_run import FloorPlan, FloorResults, FloorRow
from mesh import topology as topo
from mesh.placement import local_placement
from mesh.render import envoy


def rendered(shape: str, tracing: bool = False) -> dict[str, dict[str, Any]]:
    t = floor_topology(topo.load(), shape)
    otlp = 4318 if tracing else None
    placement = local_placement(t, Path("/run/x"), 18080, 18100, "127.0.0.1", otlp_port=otlp)
    return envoy.render_all(t, placement)


def filters(config: dict[str, Any]) -> list[str]:
    """The HTTP filters of every listener, each named once, in order."""
    return list(dict.fromkeys(n for n in _names(config) if n.startswith("envoy.filters.http.")))


def _names(node: Any) -> list[str]:
    if isinstance(node, list):
        return [n for v in node for n in _names(v)]
    if isinstance(node, dict):
        own = [node["name"]] if isinstance(node.get("name"), str) else []
        return own + [n for v in node.values() for n in _names(v)]
    return []


def test_the_chain_is_the_gateway_calling_products_with_the_shapes_instances() -> None:
    full = topo.load()
    two, one, edge = (floor_topology(full, s) for s in ("two", "one", "edge"))
    assert list(two.services) == ["gateway", "products"] and two.services["products"].replicas == 2
    assert one.services["products"].replicas == 1
    assert list(two.services["gateway"].calls) == ["products"]
    assert two.services["gateway"].calls["products"] == full.services["gateway"].calls["products"]
    assert list(edge.services) == ["gateway"] and edge.services["gateway"].calls == {}
    assert [r.service for r in two.ingress_routes] == ["gateway"]
    assert (role("gateway", "two"), role("products", "two"), role("gateway", "edge")) == (
        "relay",
        "leaf",
        "leaf",
    )


def test_bare_envoys_keep_only_the_router_and_no_tls_and_the_layers_add_back_in_order() -> None:
    configs = rendered("two")
    original = copy.deepcopy(configs)
    for name, config in configs.items():
        bare, mtls, policy = (strip(config, layer) for layer in ("bare", "mtls", "policy"))
        text = json.dumps(bare)
        assert filters(bare) == ["envoy.filters.http.router"], name
        for gone in ("transport_socket", "access_log", "local_reply_config", 'tracing"'):
            assert gone not in text, (name, gone)
        assert "health_checks" in text or name == "ingress"  # readiness stays
        assert "transport_socket" in json.dumps(mtls) and filters(mtls) == filters(bare)
        assert policy == config  # tracing off: the policy layer is the shop's untraced Envoy
    sidecar = strip(configs["products-0"], "policy")
    assert {"envoy.filters.http.jwt_authn", "envoy.filters.http.rbac"} <= set(filters(sidecar))
    assert configs == original  # stripping copies


def test_the_traced_layer_is_the_shops_envoy_as_rendered_with_tracing() -> None:
    config = rendered("one", tracing=True)["gateway-0"]
    assert strip(config, "traced") == config and '"tracing"' in json.dumps(config)
    assert '"tracing"' not in json.dumps(strip(rendered("one")["gateway-0"], "bare"))


def test_the_leaf_answers_products_bytes_sorted_by_name_with_the_stock_given() -> None:
    listing, pages = catalogue("7")
    shown = orjson.loads(listing)["products"]
    assert [p["name"] for p in shown] == sorted(p["name"] for p in shown)
    assert all(p["available"] == 7 and p["in_stock"] for p in shown)
    assert set(pages) == {p["id"] for p in shown}
    first = shown[0]
    assert orjson.loads(pages[first["id"]]) == first
    assert list(first) == [
        "id", "name", "description", "price_cents", "currency", "categories", "available",
        "in_stock",
    ]  # fmt: skip


def test_a_windows_length_holds_enough_requests_at_a_low_rate() -> None:
    plan = FloorPlan(duration_s=10, min_requests=300)
    assert plan.window_s(100) == 10 and plan.window_s(10) == 30
    assert plan.estimate_s() > 0


def row(layer: str, shape: str, path: str, rate: float, stack: float) -> FloorRow:
    cpu = {"envoys": stack / 2, "gateway": stack / 4, "stack": stack}
    return FloorRow(layer, shape, path, rate, 100, 0, cpu, 2.0, 5.0, 0.01)


def results() -> FloorResults:
    plan = FloorPlan(layers=["bare", "traced"])
    rows = []
    for layer, k in (("bare", 1.0), ("traced", 2.0)):
        rows += [
            row(layer, "two", "browse", 100.0, 1.5 * k),
            row(layer, "two", "one-hop", 100.0, 1.4 * k),
            row(layer, "one", "one-hop", 100.0, 1.3 * k),
            row(layer, "one", "one-hop", 10.0, 3.0 * k),
            row(layer, "edge", "one-hop", 100.0, 0.8 * k),
            row(layer, "edge", "one-hop", 10.0, 1.8 * k),
        ]
    return FloorResults(started_at="t0", plan=plan, rows=rows, load_average=[1.0, 2.0])


def test_one_call_is_the_one_instance_chain_less_the_edge() -> None:
    r = results()
    assert floor_report.one_call(r.rows, "bare", 100.0) == pytest.approx(0.5)
    assert floor_report.one_call(r.rows, "traced", 10.0) == pytest.approx(2.4)
    assert floor_report.one_call(r.rows, "mtls", 10.0) is None


def test_the_report_shows_each_layer_what_it_adds_and_the_targets_missed_at_the_floor() -> None:
    text = floor_report.markdown(results())
    assert "| **bare** | 1.50 | 1.40 | 1.30 | 3.00 | 0.80 | 1.80 | 1.20 | 0.50 |" in text
    assert "| traced adds | +1.50 | +1.40 | +1.30 | +3.00 | +0.80 | +1.80 | +1.20 | +0.50 |" in text
    assert "- browse: floor 3.00 CPU-ms, target 2.5: missed by 0.50 (1.2×)" in text
    assert "- product page: floor 2.80 CPU-ms, target 2: missed by 0.80" in text
    # the checkout: the edge plus ten calls, at 10/s
    assert "checkout (edge 3.60 + 10 calls × 2.40, 10/s): floor 27.60 CPU-ms" in text
    assert "| traced | 1.40 | 0.70 | – | – | 2.80 |" in text
    assert "stopped early" not in text


def test_the_floor_is_a_bench_mode_with_its_layers() -> None:
    args = build_parser().parse_args(["bench", "--floor", "--layers", "bare,mtls"])
    assert args.floor and args.layers == ["bare", "mtls"]


def test_repeats_give_each_cell_its_median_and_range() -> None:
    r = results()
    again = [
        dataclasses.replace(x, cpu_ms={**x.cpu_ms, "stack": x.cpu_ms["stack"] + 0.3})
        for x in r.rows
    ]
    third = [
        dataclasses.replace(x, cpu_ms={**x.cpu_ms, "stack": x.cpu_ms["stack"] + 0.1})
        for x in r.rows
    ]
    for n, rows in ((2, again), (3, third)):
        for x in rows:
            x.repeat = n
    r.rows += again + third
    cell = floor_report.find(r.rows, "bare", "two", "browse", 100.0)
    assert cell is not None and cell.cpu_ms["stack"] == pytest.approx(1.6)
    assert cell.requests == 300
    assert floor_report.spread(r.rows, "bare", "two", "browse", 100.0) == "1.50–1.80"
    assert "| **bare** | 1.60 (1.50–1.80) |" in floor_report.markdown(r)
