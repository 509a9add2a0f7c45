"""`boutique experiment run` on the real local mesh: short phases, one experiment whose
hypotheses hold and one whose hypothesis breaks; the fault shows in Envoy's counters and in the
traces, the verdict follows the numbers, and the runtime is clean afterwards."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from boutique import cli
from mesh.experiments import faults
from mesh.experiments.targets import local_proxies
from mesh.local import LocalRun

pytestmark = pytest.mark.integration

LOAD = "load: {users: 5, spawn_rate: 5, think_time: {min: 100ms, max: 400ms}}\n"
PHASES = "phases: {steady: 4s, fault: 8s, recovery: 3s}\n"
FLAKY = (
    """\
description: A fifth of the requests to products fail.
teaches: Retries hide failures.
destination: products
fault:
  abort: {percentage: {value: 20}, httpStatus: 503}
expected: held
hypotheses:
  - aborts injected > 0 during fault
  - retries > 0 during fault
  - aborts injected == 0 during recovery
  - held reservations == 0 after recovery
"""
    + LOAD
    + PHASES
)
SLOW = (
    """\
description: Every request to products takes 700 ms longer.
teaches: A delay shows in the shoppers' latency.
destination: products
fault:
  delay: {percentage: {value: 100}, fixedDelay: 700ms}
expected: broken
hypotheses:
  - delays injected > 0 during fault
  - products p95 < 500ms during fault
"""
    + LOAD
    + PHASES
)


def run(shop: LocalRun, tmp_path: Path, name: str, text: str) -> tuple[int, dict, str]:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    o = shop.options
    results = tmp_path / f"{name}-results"
    code = cli.main(
        ["experiment", "run", str(path), "--results", str(results), "--port", str(o.public_port)]
        + ["--base-port", str(o.base_port), "--run-dir", str(o.run_dir)]
        + ["--traces-port", str(o.traces_port), "--otlp-port", str(o.otlp_port)]
    )
    report = (results / "report.md").read_text()
    assert (results / "report.html").exists() and (results / "timeline.png").stat().st_size > 0
    return code, json.loads((results / "results.json").read_text()), report


def test_retries_absorb_an_abort_fault_and_the_hypotheses_hold(
    shop: LocalRun, tmp_path: Path
) -> None:
    code, data, report = run(shop, tmp_path, "flaky", FLAKY)
    assert data["verdict"] == "held" and code == 0, report
    envoy = {p["name"]: data["envoy"][p["name"]] for p in data["phases"]}
    assert envoy["fault"]["aborts injected"] > 0 and envoy["steady"]["aborts injected"] == 0
    assert data["traces"] and {t["flag"] for t in data["traces"]} == {"FI"}
    assert all(t["status"] == "503" for t in data["traces"]), data["traces"]
    assert "HELD (as expected)" in report
    assert faults.active(local_proxies(shop)) == {}


def test_a_delay_breaks_a_latency_hypothesis_and_the_report_says_so(
    shop: LocalRun, tmp_path: Path
) -> None:
    code, data, report = run(shop, tmp_path, "slow", SLOW)
    verdicts = {h["text"]: h for h in data["hypotheses"]}
    p95 = verdicts["products p95 < 500ms during fault"]
    assert p95["held"] is False and p95["value"] >= 500, p95
    assert verdicts["delays injected > 0 during fault"]["held"] is True
    assert data["shoppers"]["steady"]["products p95"] < 500  # the delay made the difference
    assert data["verdict"] == "broken" and code == 1
    assert "BROKEN (as expected)" in report and "**broken**" in report
    assert {t["flag"] for t in data["traces"]} == {"DI"}
    assert faults.active(local_proxies(shop)) == {}
