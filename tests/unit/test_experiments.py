"""Experiment files: the shipped ones load; a mistake names the file, the line and the field."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from boutique import cli
from mesh import topology
from mesh.experiments import faults, hypotheses, spec
from mesh.experiments.yamlcheck import SpecError

GOOD = """\
description: Orders is down.
teaches: Failure stays where it is.
destination: orders
fault:
  abort:
    percentage: {value: 100}
    httpStatus: 503
load: {users: 4, spawn_rate: 2, think_time: {min: 100ms, max: 500ms}}
phases: {steady: 5s, fault: 10s, recovery: 5s}
expected: held
hypotheses:
  - aborts injected > 0 during fault
  - products error rate < 1% during fault
  - held reservations == 0 after recovery
"""


@pytest.fixture(scope="module")
def topo() -> topology.Topology:
    return topology.load()


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "exp.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_every_shipped_experiment_loads_and_at_least_one_expects_to_break(
    topo: topology.Topology,
) -> None:
    found = spec.load_all(topo)
    assert len(found) >= 5
    assert {e.expected for e in found} == {"held", "broken"}
    for exp in found:
        assert exp.teaches and exp.hypotheses and exp.phases[1].name == "fault"


def test_a_good_file_reads_as_written(tmp_path: Path, topo: topology.Topology) -> None:
    exp = spec.load(write(tmp_path, GOOD), topo)
    assert exp.name == "exp" and exp.destination == "orders" and exp.source is None
    assert exp.abort == spec.Abort(100, 503) and exp.delay is None
    assert exp.load == spec.Load(4, 2, 0.1, 0.5, 0)
    assert [(p.name, p.duration_s) for p in exp.phases] == [
        ("steady", 5),
        ("fault", 10),
        ("recovery", 5),
    ]
    first = exp.hypotheses[1]
    assert (first.metric, first.cmp, first.threshold, first.when) == (
        "products error rate",
        "<",
        1.0,
        "fault",
    )
    assert faults.runtime_values(exp) == {
        "fault.http.abort.abort_percent": "100",
        "fault.http.abort.http_status": "503",
    }


@pytest.mark.parametrize(
    ("old", "new", "line", "field", "message"),
    [
        ("destination: orders", "destination: order", 3, "destination", "unknown service"),
        ("    httpStatus: 503", "    httpStatus: 700", 7, "fault.abort.httpStatus", "200-599"),
        ("{value: 100}", "{value: 0.5}", 6, "fault.abort.percentage.value", "whole percentage"),
        ("phases: {steady: 5s,", "phases: {steady: five,", 9, "phases.steady", "duration"),
        ("  abort:", "  abortt:", 5, "fault.abortt", "unknown field 'abortt'"),
        ("users: 4,", "users: -4,", 8, "load.users", "whole number from 1"),
        ("expected: held", "expected: maybe", 10, "expected", "held or broken"),
        ("  - aborts injected > 0 during fault", "  - aborts > 0 during fault", 12,
         "hypotheses[0]", "unknown metric 'aborts'"),
        ("products error rate < 1% during fault", "products error rate < 1 during fault", 13,
         "hypotheses[1]", "a share like 1%"),
        ("during fault\n  - held", "during chaos\n  - held", 13, "hypotheses[1]",
         "unknown phase 'chaos'"),
        ("held reservations == 0 after recovery", "held reservations == 0 during fault", 14,
         "hypotheses[2]", "after recovery"),
    ],
)  # fmt: skip
def test_a_mistake_names_the_file_line_and_field(
    tmp_path: Path,
    topo: topology.Topology,
    old: str,
    new: str,
    line: int,
    field: str,
    message: str,
) -> None:
    assert old in GOOD
    path = write(tmp_path, GOOD.replace(old, new, 1))
    with pytest.raises(SpecError) as err:
        spec.load(path, topo)
    text = str(err.value)
    assert text.startswith(f"{path}:{line}: {field}:"), text
    assert message in text


def test_a_caller_that_does_not_call_the_destination_is_refused(
    tmp_path: Path, topo: topology.Topology
) -> None:
    text = GOOD.replace("destination: orders\n", "destination: orders\nmatch:\n  sourceLabels:\n")
    text = text.replace("  sourceLabels:\n", "  sourceLabels: {app: cart}\n")
    with pytest.raises(SpecError, match=r":5: match.sourceLabels.app: 'cart' does not call orders"):
        spec.load(write(tmp_path, text), topo)


def test_missing_parts_bad_yaml_and_twice_written_keys_are_refused(
    tmp_path: Path, topo: topology.Topology
) -> None:
    with pytest.raises(SpecError, match=r"exp.yaml:1: fault is missing"):
        no_fault = GOOD.replace("fault:\n  abort:\n    percentage: {value: 100}\n", "")
        spec.load(write(tmp_path, no_fault.replace("    httpStatus: 503\n", "")), topo)
    with pytest.raises(SpecError, match=r"exp.yaml:\d+: not valid YAML"):
        spec.load(write(tmp_path, GOOD + "  - [unclosed\n"), topo)
    with pytest.raises(SpecError, match="'expected' is defined twice"):
        spec.load(write(tmp_path, GOOD + "expected: broken\n"), topo)
    with pytest.raises(SpecError, match="write every phase, in order"):
        spec.load(write(tmp_path, GOOD.replace("fault: 10s, ", "")), topo)


def test_hypotheses_judge_their_numbers() -> None:
    h = hypotheses.parse("checkout p95 < 2s during fault")
    assert h.threshold == 2000 and h.kind == "latency" and h.source == "shoppers"
    assert h.holds(1500) and not h.holds(2500) and not h.holds(None)
    assert h.show(2500) == "2.50 s" and h.show(None) == "nothing measured"
    assert hypotheses.parse("retries >= 1 during steady").source == "envoy"


def test_the_cli_lists_and_shows_and_a_bad_name_is_a_clear_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["experiment", "list"]) == 0
    assert "timeout-shorter-than-delay  broken" in capsys.readouterr().out
    assert cli.main(["experiment", "show", "flaky-products"]) == 0
    assert "fault.http.abort.abort_percent = 15" in capsys.readouterr().out
    assert cli.main(["experiment", "show", "nope"]) == 2
    assert "no experiment 'nope'; known: flaky-products" in capsys.readouterr().err


def test_every_sidecar_has_a_fault_filter_per_caller_matching_its_verified_identity(
    topo: topology.Topology,
) -> None:
    import re

    from mesh.placement import local_placement
    from mesh.render import envoy

    configs = envoy.render_all(topo, local_placement(topo, Path("run"), 8080, 15000))
    inbound = configs["products-0"]["static_resources"]["listeners"][0]
    manager = inbound["filter_chains"][0]["filters"][0]["typed_config"]
    filters = [f["typed_config"] for f in manager["http_filters"] if "fault" in f["name"]]
    assert manager["forward_client_cert_details"] == "SANITIZE_SET"
    assert "headers" not in filters[0]  # the first is for every caller
    per_caller = {f["abort_percent_runtime"].split(".")[3]: f for f in filters[1:]}
    assert set(per_caller) == set(topo.callers("products"))
    cart = per_caller["cart"]
    assert cart["delay_percent_runtime"] == "fault.http.from.cart.delay.fixed_delay_percent"
    regex = cart["headers"][0]["string_match"]["safe_regex"]["regex"]
    spiffe = topo.spiffe_id("cart")
    xfcc = "By=spiffe://boutique.local/ns/boutique/sa/products;Hash=ab12;URI={}"
    assert re.fullmatch(regex, xfcc.format(spiffe))
    assert not re.fullmatch(regex, xfcc.format(spiffe + "x"))
    assert not re.fullmatch(regex, xfcc.format(topo.spiffe_id("gateway")))


def test_each_experiment_is_a_kustomize_overlay_with_the_fault_on_its_routes(
    topo: topology.Topology,
) -> None:
    import shutil
    import subprocess

    import yaml

    from mesh.render import istio_experiments, targets

    assert not targets.check(topo), "istio/experiments/ is stale: run `boutique render`"
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("no kubectl on this machine (Debian's kubernetes-client has one)")
    for exp in spec.load_all(topo):
        out = subprocess.run(
            [kubectl, "kustomize", str(targets.ROOT / "istio" / "experiments" / exp.name)],
            capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        services = [
            o for o in yaml.safe_load_all(out.stdout)
            if o and o["kind"] == "VirtualService" and o["metadata"]["name"] == exp.destination
        ]  # fmt: skip
        routes = services[0]["spec"]["http"]
        faulted = {r["name"] for r in routes if "fault" in r}
        callers = [exp.source] if exp.source else topo.callers(exp.destination)
        assert faulted == {r["name"] for r in routes if r["name"].split("-")[0] in callers}
        fault = next(r["fault"] for r in routes if "fault" in r)
        assert fault == istio_experiments.istio_fault(exp)
    flaky = spec.load("flaky-products", topo)
    assert istio_experiments.istio_fault(flaky) == {
        "abort": {"percentage": {"value": 15}, "httpStatus": 503}
    }
