"""`boutique bench --floor`, tiny: real Envoys (stripped to a router, and the shop's own with
tracing) and the bare apps answer every request through the chain, and the report states what
one call costs. No timed assertions."""

from __future__ import annotations

import pytest

from loadgenerator.bench import floor_report
from loadgenerator.bench.floor_run import FloorPlan, run_floor
from loadgenerator.bench.progress import Progress
from mesh import topology as topo

pytestmark = pytest.mark.integration


def test_a_tiny_floor_run_answers_through_the_chain_and_reports_one_call() -> None:
    plan = FloorPlan(
        layers=["bare", "traced"],
        shapes=["one", "edge"],
        work={"one": [("one-hop", 50.0)], "edge": [("one-hop", 50.0)]},
        duration_s=2.0,  # 100 requests a cell: the leaf's CPU is several /proc clock ticks
        min_requests=0,
        warmup_s=0.5,
    )
    results = run_floor(plan, topo.DEFAULT_PATH, Progress(quiet=True))

    assert results.error == ""
    cells = {(r.layer, r.shape): r for r in results.rows}
    assert set(cells) == {("bare", "one"), ("bare", "edge"), ("traced", "one"), ("traced", "edge")}
    for row in cells.values():
        assert row.requests >= 80 and row.errors == 0
        assert row.cpu_ms["envoys"] > 0 and row.cpu_ms["stack"] > 0
        assert "redis" not in row.cpu_ms and "client" in row.cpu_ms
    # the relay's answers came from the products leaf behind two sidecars; the edge has none
    assert cells[("bare", "one")].cpu_ms.get("products", 0) > 0
    assert "products" not in cells[("bare", "edge")].cpu_ms
    # the trace store the Envoys send their spans to runs, and counts, in the traced layer only
    assert "tracestore" in cells[("traced", "one")].cpu_ms
    assert "tracestore" not in cells[("bare", "one")].cpu_ms
    text = floor_report.markdown(results)
    assert "| layer | product page one 50/s | product page edge 50/s | one call 50/s |" in text
    assert "| traced adds |" in text
