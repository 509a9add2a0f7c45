"""The benchmark harness against the real shop: the quick mode's smallest step, with the mesh and
without, gives sane numbers, a results.json and a report. No timed assertions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadgenerator.bench import plans, report, runner
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
