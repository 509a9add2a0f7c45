"""The benchmark harness against the real shop: the quick mode's smallest step, with the mesh and
without, gives sane numbers, a results.json and a report. No timed assertions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadgenerator.bench import cost, plans, report, runner
from loadgenerator.bench.profiling import Profiler
from loadgenerator.bench.tuning import Knobs
from mesh.local import LocalRun

pytestmark = pytest.mark.integration


def test_the_smallest_quick_step_runs_through_the_mesh_and_without(
    shop: LocalRun, direct_shop: LocalRun, tmp_path: Path
) -> None:
    plan = plans.smallest_plan()
    step = plans.smallest_step(plans.quick_plan())
    bench = runner.Bench(plan)
    for run, label in ((direct_shop, "no-mesh"), (shop, "mesh")):
        work = [plans.Work(step.path, [step.rate], ladder=False)]
        spec = plans.StackSpec(label, run.options.mesh, run.options.tracing, work=work)
        bench.measure_stack(run, spec)
    files = report.write(bench.results, tmp_path / "bench")

    saved = json.loads(files["json"].read_text())
    assert saved["machine"]["cores"] >= 1 and saved["machine"]["memory_bytes"] > 0
    assert saved["machine"]["envoy"] and saved["machine"]["python"]
    steps = {s["stack"]: s for s in saved["steps"]}
    assert set(steps) == {"no-mesh", "mesh"}
    for s in steps.values():
        assert (s["path"], s["rate"]) == (step.path, step.rate)
        assert s["scheduled"] > 0 and s["ok"] > 0 and s["achieved_rps"] > 0
        assert s["sent"] + s["dropped"] == s["scheduled"]
        lat = s["latency_ms"]
        assert lat["count"] == s["ok"]
        assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
        assert s["window_s"] > 0
        assert all(v >= 0 for v in s["vcpu"].values())
        assert s["vcpu"]["client"] >= 0 and s["vcpu_groups"]["apps"] >= 0
        assert s["memory"]["gateway" if not s["mesh"] else "gateway-0"]["rss"] > 0
    mesh = steps["mesh"]
    assert mesh["vcpu_groups"]["envoys"] >= 0
    assert "envoy:ingress" in mesh["envoys"] and mesh["envoys"]["envoy:ingress"]["rps"] > 0
    assert steps["no-mesh"]["envoys"] == {}
    # one-hop through the mesh: ingress -> gateway, gateway -> products: two hops, four proxies
    hops = saved["summary"]["hops"]["one-hop"]
    assert (hops["hops"], hops["proxy_traversals"]) == (2.0, 4.0)
    assert [r["rate"] for r in saved["summary"]["compare"]["one-hop"]] == [step.rate]

    text = files["report"].read_text()
    for title in ("## Machine", "## Latency at fixed rates", "## Highest sustained rate"):
        assert title in text
    assert "## Sidecars, one-hop" in text and "## Every step" in text
    assert f"| one-hop | {step.rate:g} |" in text


def test_the_cost_mode_measures_every_path_on_the_shop_as_up_runs_it(
    shop: LocalRun, tmp_path: Path
) -> None:
    """`boutique bench --cost --repeats 2`'s traced stack, with tiny steps, on the session's shop
    (mesh, mTLS, tracing at 100%, the topology's replicas), measured twice: CPU-ms per request by
    process group for browse, product page and checkout, the medians of the two repeats, the
    targets judged on them, and py-spy's flame graphs of products."""
    plan = plans.cost_plan()
    plan.duration_s, plan.warmup_s, plan.users, plan.idle_s = 1.0, 0.5, 2, 0.5
    plan.cost_rates = {"browse": [10.0], "one-hop": [10.0], "checkout": [2.0]}
    plan.tracing_cost, plan.cost_repeats = False, 2
    rates = {path: r[0] for path, r in plan.cost_rates.items()}
    profiler = Profiler(["products"], tmp_path / "cost", rate_hz=50)
    bench = runner.Bench(plan, profiler=profiler)
    bench.results.kind_of_run = "cost"
    specs = plans.cost_stacks(plan, Knobs())
    assert [s.label for s in specs] == ["up#1", "up#2"]
    for spec in specs:
        bench.measure_stack(shop, spec)
    files = report.write(bench.results, tmp_path / "cost")

    saved = json.loads(files["json"].read_text())
    rows = {r["path"]: r for r in saved["summary"]["cost"]["on"]}
    assert set(rows) == set(rates)
    for path, row in rows.items():
        assert row["requests"] > 0, path
        ms = row["cpu_ms"]
        # (products and the trace store may read 0: a cached catalogue answer, or ingesting a
        # 1 s step's few spans, costs under one clock tick of /proc; so each group is checked
        # by its processes being counted)
        assert ms["stack"] > 0 and ms["products"] >= 0 and ms["envoys"] > 0, path
        assert ms["tracestore"] >= 0 and "client" in ms, path
        assert row["processes"]["products"] == 2  # both replicas, summed
        assert row["processes"]["tracestore"] == 1, path
        # the median of two repeats: their mean, each repeat's kept beside it
        assert row["samples"] == 2 and len(row["stack_samples"]) == 2, path
        assert ms["stack"] == pytest.approx(sum(row["stack_samples"]) / 2), path
    # (a 1 s step's few requests may cost an app under one clock tick: each app is checked by
    # its process being counted, and the whole stack by its CPU)
    assert rows["checkout"]["processes"]["payment"] == 1 and "payment" in rows["checkout"]["cpu_ms"]
    assert rows["browse"]["processes"]["gateway"] == 1 and "gateway" in rows["browse"]["cpu_ms"]
    targets = saved["summary"]["cost"]["targets"]
    assert [t["met"] is not None for t in targets] == [True, True, True, False]  # no off stack
    assert [t["samples"] for t in targets] == [2, 2, 2, 0]
    text = files["report"].read_text()
    assert "## Targets (issue 15)" in text and "| products (2) |" in text
    assert "median of 2 repeats" in text and "| stack total, each repeat |" in text
    assert [s.stack for s in bench.results.steps] == ["up#1"] * 3 + ["up#2"] * 3
    for step in bench.results.steps:
        per = cost.cpu_ms_per_request(step.cpu_s, step.ok)  # one repeat: the groups add up
        parts = [v for k, v in per.items() if k not in ("stack", "client")]
        assert per["stack"] == pytest.approx(sum(parts)) and step.repeat in (1, 2)
        assert [p.endswith(".svg") for p in step.profiles] == [True, True], step.path
        svg = (tmp_path / "cost" / step.profiles[0]).read_text()
        assert svg.startswith("<?xml") and "<svg" in svg
