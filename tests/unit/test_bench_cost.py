"""`boutique bench --cost` (issue 15): processes grouped, CPU-ms per request, tracing's share, the
targets' verdicts, the tables, the plan and command line, and the results read back strictly."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from boutique.cli import build_parser
from loadgenerator.bench import analysis, cli, codec, cost, model, plans, profiling, report
from loadgenerator.bench.cost_tables import cost_sections
from loadgenerator.bench.model import Idle, Results, StackInfo, Step, VcpuGroups
from loadgenerator.bench.stack import service_of
from loadgenerator.bench.summary import Cost
from loadgenerator.bench.tuning import Knobs


def test_processes_group_by_app_with_replicas_summed_and_envoys_together() -> None:
    assert service_of("products-1") == "products" and service_of("gateway") == "gateway"
    assert service_of("envoy:cart-0") == "envoy:cart-0"
    groups = {
        name: cost.process_group(name)
        for name in ("products-0", "products-1", "gateway-0", "gateway", "envoy:ingress",
                     "envoy:products-1", "tracestore", "redis", "client")
    }  # fmt: skip
    assert groups == {
        "products-0": "products",
        "products-1": "products",
        "gateway-0": "gateway",
        "gateway": "gateway",
        "envoy:ingress": "envoys",
        "envoy:products-1": "envoys",
        "tracestore": "tracestore",
        "redis": "redis",
        "client": "client",
    }


def test_cpu_ms_per_request_is_cpu_seconds_over_answered_requests_client_apart() -> None:
    cpu_s = {
        "products-0": 0.6,
        "products-1": 0.4,
        "gateway-0": 0.5,
        "envoy:ingress": 0.2,
        "envoy:gateway-0": 0.3,
        "tracestore": 0.25,
        "redis": 0.05,
        "client": 0.7,
    }
    per = cost.cpu_ms_per_request(cpu_s, 500)
    assert per["products"] == pytest.approx(2.0)  # (0.6 + 0.4) s x 1000 / 500
    assert per["envoys"] == pytest.approx(1.0)
    assert per["tracestore"] == pytest.approx(0.5) and per["redis"] == pytest.approx(0.1)
    assert per["client"] == pytest.approx(1.4)
    assert per["stack"] == pytest.approx(4.6)  # all but the client
    assert cost.cpu_ms_per_request(cpu_s, 0) == {}


def test_tracing_share_is_what_tracing_adds_over_the_traced_stack() -> None:
    assert cost.tracing_share(10.0, 8.0) == pytest.approx(0.2)
    assert cost.tracing_share(5.0, 6.0) == pytest.approx(-0.2)  # noise can make it negative
    assert cost.tracing_share(0.0, 1.0) is None


def cost_step(stack: str, path: str, rate: float, stack_cpu_s: float, ok: int = 1000) -> Step:
    """A step of a cost stack whose processes used ``stack_cpu_s`` in all (products half)."""
    half = stack_cpu_s / 2
    cpu_s = {"products-0": half / 2, "products-1": half / 2, "envoy:ingress": half,
             "client": 0.1}  # fmt: skip
    return codec.load(Step, {
        "stack": stack, "mesh": True, "tracing": stack == plans.COST_ON, "path": path,
        "rate": rate, "duration_s": 10.0, "warmup_s": 1.0, "window_s": 10.0,
        "scheduled": ok, "sent": ok, "ok": ok, "dropped": 0, "errors_total": 0,
        "achieved_rps": ok / 10, "latency_ms": {"count": ok, "p50": 5.0, "p99": 9.0},
        "cpu_s": cpu_s, "vcpu": {k: v / 10 for k, v in cpu_s.items()},
        "vcpu_groups": codec.dump(VcpuGroups(foreign=0.1)),
    })  # fmt: skip


def cost_results(checkout_ladder: bool = False) -> Results:
    steps = [
        cost_step(plans.COST_ON, "browse", 100, 2.0),  # 2.0 CPU-ms per request: met
        cost_step(plans.COST_ON, "one-hop", 100, 3.0),  # 3.0: not met
        cost_step(plans.COST_ON, "checkout", 10, 15.0, ok=100),  # 150: not met
        cost_step(plans.COST_OFF, "browse", 100, 1.8),  # share 10%
        cost_step(plans.COST_OFF, "one-hop", 100, 2.1),  # share 30%
        cost_step(plans.COST_OFF, "checkout", 10, 13.5, ok=100),  # share 10%
    ]
    if checkout_ladder:
        steps += [cost_step("mesh", "checkout", rate, 1.0) for rate in (32, 45, 64)]
        steps[-1].failed_because = "p99 2000 ms > 1000 ms"
    stacks = [StackInfo(label=plans.COST_ON, idle=Idle(vcpu_groups=VcpuGroups(stack=0.05)))]
    return Results(started_at="2026-12-04T20:00:00Z", plan=plans.cost_plan(), steps=steps,
                   stacks=stacks, kind_of_run="bench" if checkout_ladder else "cost")  # fmt: skip


def test_the_targets_are_judged_on_the_traced_stack_and_the_worst_share() -> None:
    summary = analysis.summarize(cost_results())
    c = summary.cost
    assert c is not None
    assert [r.path for r in c.on] == ["browse", "one-hop", "checkout"]
    assert c.on[0].cpu_ms["products"] == pytest.approx(1.0) and c.on[0].processes["products"] == 2
    shares = {s.path: s.share for s in c.tracing}
    assert shares == pytest.approx({"browse": 0.1, "one-hop": 0.3, "checkout": 0.1})
    verdicts = {t.target.split(" CPU")[0].split("'")[0]: (t.measured, t.met) for t in c.targets}
    assert verdicts["browse"] == (pytest.approx(2.0), True)
    assert verdicts["product page"] == (pytest.approx(3.0), False)
    assert verdicts["checkout"] == (pytest.approx(150.0), False)
    assert verdicts["tracing"] == (pytest.approx(0.3), False)
    assert not any("checkout rate" in t.target for t in c.targets)  # no ladder in a cost run


def test_a_full_run_judges_the_highest_sustained_checkout_rate_against_twice_27() -> None:
    c = analysis.summarize(cost_results(checkout_ladder=True)).cost
    assert c is not None
    rate = next(t for t in c.targets if "checkout rate" in t.target)
    assert (rate.limit, rate.measured, rate.met) == (54.0, 45.0, False)


def test_a_verdict_resting_on_a_step_not_sustained_is_marked(tmp_path: Path) -> None:
    results = cost_results()
    results.steps[0].failed_because = "120 failed or dropped"
    c = analysis.summarize(results).cost
    assert c is not None
    assert [t.sustained for t in c.targets] == [False, True, True, False]
    text = report.write(results, tmp_path)["report"].read_text()
    assert "| browse CPU-ms per request | <= 2.5 | 2.00 | 1 | met * |" in text


def test_a_target_not_measured_says_so() -> None:
    verdicts = cost.verdicts([], [])
    assert all(v.met is None and v.measured is None for v in verdicts)
    (section,) = cost_sections(Cost(on=[], off=[], tracing=[], targets=verdicts, idle_vcpu={}))
    assert all(row[-1] == "not measured" for row in section[2])


def test_the_cost_report_has_the_per_path_tables_and_the_verdicts(tmp_path: Path) -> None:
    results = cost_results()
    files = report.write(results, tmp_path)
    text = files["report"].read_text()
    for expected in (
        "## CPU per request as `boutique up` runs it",
        "## CPU per request, the same with tracing off",
        "## Tracing's share of the stack's CPU",
        "## Targets (issue 15)",
        "| CPU-ms per request | browse 100/s | product page 100/s | checkout 10/s |",
        "| products (2) | 1.00 | 1.50 | 75.00 |",
        "| stack total | 2.00 | 3.00 | 150.00 |",
        "| of which the stack at rest | 0.50 | 0.50 | 5.00 |",  # 0.05 vCPU over 100/s, 10/s
        "| load client (apart) | 0.10 | 0.10 | 1.00 |",
        "| browse CPU-ms per request | <= 2.5 | 2.00 | 1 | met |",
        "| product page CPU-ms per request | <= 2 | 3.00 | 1 | NOT MET |",
        "| tracing's share of the stack's CPU | <= 20% | 30% | 1 | NOT MET |",
        "- One repeat: each figure is one sample",
    ):
        assert expected in text, expected
    assert "## Latency at fixed rates" not in text  # a cost run has no mesh/no-mesh ladders
    terminal = report.terminal(results, analysis.summarize(results))
    assert "Targets (issue 15)" in terminal and "NOT MET" in terminal


def test_cost_results_read_back_strictly_with_their_profiles(tmp_path: Path) -> None:
    results = cost_results()
    results.steps[0].profiles = ["profile-up-browse-100-products-0.svg"]
    files = report.write(results, tmp_path)
    again = model.read(files["json"])
    assert again == results and again.cost_only
    assert again.plan.cost_rates == plans.COST_RATES
    saved = json.loads(files["json"].read_text())
    assert saved["summary"]["cost"]["targets"][0]["met"] is True
    assert "profile-up-browse-100-products-0.svg" in files["report"].read_text()


def test_the_cost_plan_runs_the_shop_as_up_does_then_with_tracing_off() -> None:
    plan = plans.cost_plan()
    plan.cost_repeats = 1
    stacks = plans.bench_stacks(plan, Knobs())
    assert [(s.label, s.mesh, s.tracing, s.topology_replicas, s.repeat) for s in stacks] == [
        (plans.COST_ON, True, True, True, None),
        (plans.COST_OFF, True, False, True, None),
    ]
    assert [(w.path, w.rates, w.ladder) for w in stacks[0].work] == [
        ("browse", [100.0], False),
        ("one-hop", [100.0], False),
        ("checkout", [10.0], False),
    ]
    assert not plan.one_replica and plan.disturbed_retries == 0
    assert plans.estimate_s(plan, stacks) < 4 * 60
    # the full run ends with the same cost stacks; the quick run has none
    full = plans.bench_stacks(plans.full_plan(), Knobs())
    labels = ["no-mesh", "mesh", "mesh+tracing", plans.COST_ON, plans.COST_OFF]
    assert [s.label for s in full] == labels
    assert [s.label for s in plans.bench_stacks(plans.quick_plan(), Knobs())] == [
        "no-mesh",
        "mesh",
        "mesh+tracing",
    ]


def parse(*argv: str) -> argparse.Namespace:

    return build_parser().parse_args(["bench", *argv])


def test_the_command_line_sets_the_cost_rates_and_paths() -> None:
    args = parse("--cost", "--browse-rates", "50", "--rates", "60", "--checkout-rates", "5")
    plan = cli.plan_from(args)
    assert plan.name == "cost"
    assert plan.cost_rates == {"browse": [50.0], "one-hop": [60.0], "checkout": [5.0]}
    plan = cli.plan_from(parse("--cost", "--paths", "browse,checkout"))
    assert list(plan.cost_rates) == ["browse", "checkout"]
    # without --cost, --rates stays the one-hop ladder and the cost rates stay fixed
    full = cli.plan_from(parse("--rates", "10,20"))
    assert full.rates["one-hop"] == [10, 20] and full.cost_rates["one-hop"] == [100.0]
    assert cli.plan_from(parse("--no-cost")).cost_rates == {}
    with pytest.raises(ValueError, match="run of its own"):
        cli.stacks_from(parse("--cost", "--quick"), plan)


def test_profiling_picks_every_replica_and_refuses_what_is_not_python(tmp_path: Path) -> None:
    pids = {"products-0": 1, "products-1": 2, "gateway-0": 3, "envoy:products-0": 4,
            "tracestore": 5, "redis": 6}  # fmt: skip
    assert profiling.pick(pids, ["products", "tracestore"]) == {
        "products-0": 1,
        "products-1": 2,
        "tracestore": 5,
    }
    profiling.check_names(["products", "tracestore"], ["products", "gateway"])
    with pytest.raises(ValueError, match="envoy, redis"):
        profiling.check_names(["envoy", "redis"], ["products"])
    args = parse("--cost", "--profile", "products,gateway", "--profile-rate", "50")
    profiler = cli.profiler_from(args, tmp_path)
    assert profiler is not None and profiler.names == ["products", "gateway"]
    assert profiler.rate_hz == 50
