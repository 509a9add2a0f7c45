"""The Locust shoppers against the real local mesh: a short headless run, no failures, and
shoppers who pay."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from loadgenerator import run
from mesh.local import LocalRun

pytestmark = pytest.mark.integration


def test_a_short_load_run_buys_with_no_failures(
    shop: LocalRun, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = argparse.ArgumentParser()
    run.add_arguments(parser)
    args = parser.parse_args(
        ["--host", shop.public_url, "--users", "8", "--spawn-rate", "4", "--run-time", "20s"]
        + ["--results", str(tmp_path), "--think-min", "0.1", "--think-max", "0.5"]
    )
    code = run.main(args)
    out = capsys.readouterr().out
    assert code == 0, out

    stats = {s.name: s for s in run.read_stats(run.stats_csv(tmp_path))}
    paid = stats[run.CHECKOUT]
    assert paid.requests >= 1 and paid.failures == 0, out
    assert run.total(list(stats.values())).failures == 0, out
    for name in ("/api/products", "/api/products/[id]", "/api/cart/items/[id]", "/api/orders"):
        assert stats[name].requests >= 1, name
    assert (tmp_path / "report.html").stat().st_size > 0
    assert f"checkouts: {paid.requests} paid" in out
