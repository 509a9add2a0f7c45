"""The benchmark's pure parts: percentiles, ladders, verdicts, CPU and memory from /proc
snapshots, the Envoy config knobs, the open-loop client against a local server, and the report
rendered from a sample results dict. No timed assertions."""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from loadgenerator.bench import (
    analysis,
    charts,
    codec,
    loadgen,
    model,
    plans,
    procstat,
    report,
    stack,
    stats,
)
from loadgenerator.bench.model import (
    Hops,
    Idle,
    LoadResult,
    Machine,
    MemoryGroup,
    Results,
    StackInfo,
    Step,
    VcpuGroups,
)
from loadgenerator.bench.tuning import Knobs
from mesh import topology
from mesh.placement import local_placement
from mesh.render import envoy as envoy_config
from mesh.render.envoy import HTTP_OPTIONS_KEY

# -- percentiles and summaries ------------------------------------------------------------------


def test_percentiles_interpolate_between_ranks() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert stats.percentile(values, 0) == 1
    assert stats.percentile(values, 100) == 100
    assert stats.percentile(values, 50) == pytest.approx(50.5)
    assert stats.percentile(values, 90) == pytest.approx(90.1)
    assert stats.percentile(values, 99) == pytest.approx(99.01)
    assert stats.percentile([7.0], 99) == 7.0
    assert math.isnan(stats.percentile([], 50))
    with pytest.raises(ValueError):
        stats.percentile(values, 101)


def test_a_summary_sorts_and_orders_its_percentiles() -> None:
    summary = stats.summarize([9.0, 1.0, 5.0, 3.0, 7.0, 100.0])
    assert summary["count"] == 6
    assert summary["min"] == 1 and summary["max"] == 100
    assert summary["p50"] <= summary["p90"] <= summary["p99"] <= summary["p99.9"]
    assert stats.summarize([]) == {"count": 0}


# -- rates ------------------------------------------------------------------------------------


def test_a_ladder_is_geometric_and_rounded() -> None:
    assert stats.ladder(25, 800, 2) == [25, 50, 100, 200, 400, 800]
    assert stats.ladder(25, 800, 2**0.5) == [25, 35, 50, 71, 100, 140, 200, 280, 400, 570, 800]
    assert stats.ladder(2, 64, 2**0.5)[:4] == [2, 2.8, 4, 5.7]
    with pytest.raises(ValueError):
        stats.ladder(10, 5, 2)
    with pytest.raises(ValueError):
        stats.ladder(10, 50, 1)


def test_rates_parse_from_lists_and_ladders() -> None:
    assert stats.parse_rates("200, 50,100") == [50, 100, 200]
    assert stats.parse_rates("25:200:2") == [25, 50, 100, 200]
    with pytest.raises(ValueError):
        stats.parse_rates("0,10")


def step(rate: float, p99: float = 10.0, achieved: float | None = None, **kw: Any) -> LoadResult:
    return LoadResult(
        path="one-hop",
        rate=rate,
        duration_s=1.0,
        warmup_s=0.0,
        window_s=1.0,
        scheduled=int(rate),
        sent=int(rate),
        ok=int(rate),
        achieved_rps=rate if achieved is None else achieved,
        latency_ms={"p50": p99 / 2, "p90": p99 * 0.8, "p99": p99},
        errors_total=kw.get("errors", 0),
        dropped=kw.get("dropped", 0),
    )


def test_a_step_is_sustained_only_within_every_bound() -> None:
    assert stats.verdict(step(100), 100) is None
    assert "p99" in (stats.verdict(step(100, p99=150), 100) or "")
    assert "achieved" in (stats.verdict(step(100, achieved=90), 100) or "")
    assert stats.verdict(step(100, achieved=96), 100) is None
    assert "failed" in (stats.verdict(step(100, errors=1), 100) or "")
    assert "failed" in (stats.verdict(step(100, dropped=3), 100) or "")


def test_the_highest_sustained_rate_is_the_last_good_before_the_first_failure() -> None:
    def s(rate: float, ok: bool) -> Step:
        return sample_step("mesh", "one-hop", rate, 5.0, None if ok else "p99")

    assert stats.max_sustained([s(50, True), s(100, True), s(200, False)]) == stats.MaxSustained(
        rate=100, bounded=True, first_failure=200
    )
    # a refining step between the last good rate and the failure, run last, sorts in between
    refined = [s(100, True), s(200, False), s(140, True)]
    assert stats.max_sustained(refined).rate == 140
    assert stats.max_sustained([s(50, True), s(100, True)]) == stats.MaxSustained(
        rate=100, bounded=False, first_failure=None
    )
    assert stats.max_sustained([s(50, False)]).rate is None


def test_added_latency_is_per_percentile_and_per_hop() -> None:
    added = stats.added({"p50": 8, "p90": 10, "p99": 20}, {"p50": 4, "p90": 5, "p99": 8}, 2)
    assert added == {
        "p50": 4,
        "p50_per_hop": 2,
        "p90": 5,
        "p90_per_hop": 2.5,
        "p99": 12,
        "p99_per_hop": 6,
    }


# -- /proc ------------------------------------------------------------------------------------

# utime 1500, stime 500 (fields 14 and 15); the name holds spaces and parentheses
STAT = "4242 (envoy (main) x) S 1 4242 4242 0 -1 4194560 1 0 0 0 1500 500 0 0 20 0 9 0 1 2 3\n"
STATUS = "Name:\tenvoy\nVmHWM:\t   90000 kB\nVmRSS:\t   65536 kB\nThreads:\t9\n"
ROLLUP = "00400000-7ffd0000 ---p 00000000 00:00 0 [rollup]\nRss: 65536 kB\nPss: 20480 kB\n"


@pytest.fixture
def fake_proc(tmp_path: Path) -> Path:
    pid = tmp_path / "4242"
    pid.mkdir()
    (pid / "stat").write_text(STAT)
    (pid / "status").write_text(STATUS)
    (pid / "smaps_rollup").write_text(ROLLUP)
    (tmp_path / "stat").write_text(
        "cpu  1000 50 400 8000 100 10 20 30 0 0\ncpu0 500 25 200 4000 50 5 10 15 0 0\n"
    )
    return tmp_path


def test_cpu_seconds_are_utime_plus_stime_in_clock_ticks(fake_proc: Path) -> None:
    assert procstat.parse_stat_ticks(STAT) == 2000
    assert procstat.cpu_seconds(4242, fake_proc) == pytest.approx(2000 / procstat.CLK_TCK)
    assert procstat.cpu_seconds(999, fake_proc) is None
    assert procstat.sample_cpu({"envoy:x": 4242, "gone": 999}, fake_proc) == {
        "envoy:x": pytest.approx(2000 / procstat.CLK_TCK)
    }


def test_memory_reads_rss_peak_and_pss(fake_proc: Path) -> None:
    assert procstat.memory(4242, fake_proc) == {
        "rss": 65536 * 1024,
        "hwm": 90000 * 1024,
        "pss": 20480 * 1024,
    }
    assert procstat.memory(999, fake_proc) == {}


def test_system_busy_time_leaves_out_idle_and_iowait(fake_proc: Path) -> None:
    busy, total = procstat.parse_system_ticks((fake_proc / "stat").read_text())
    assert total == 1000 + 50 + 400 + 8000 + 100 + 10 + 20 + 30
    assert busy == total - 8000 - 100
    assert procstat.system_busy_seconds(fake_proc) == pytest.approx(busy / procstat.CLK_TCK)


def test_vcpu_is_cpu_seconds_over_wall_seconds_and_per_1000_rps_scales_it() -> None:
    used = procstat.vcpu({"a": 10.0, "b": 3.0, "gone": 1.0}, {"a": 12.5, "b": 3.0}, 10.0)
    assert used == {"a": pytest.approx(0.25), "b": 0.0}
    assert procstat.per_1000_rps(0.25, 500) == pytest.approx(0.5)
    assert procstat.per_1000_rps(0.25, 0) is None
    with pytest.raises(ValueError):
        procstat.vcpu({}, {}, 0)


def test_cpu_is_grouped_by_kind_and_the_rest_of_the_machine_is_foreign() -> None:
    groups = stack.vcpu_groups(
        {"envoy:ingress": 0.1, "envoy:gateway-0": 0.2, "gateway-0": 0.3, "redis": 0.05,
         "client": 0.1},
        system_vcpu=0.9,
    )  # fmt: skip
    assert groups.envoys == pytest.approx(0.3)
    assert groups.apps == pytest.approx(0.3)
    assert groups.stack == pytest.approx(0.65)
    assert groups.foreign == pytest.approx(0.15)
    assert stack.vcpu_groups({"client": 0.1}, None).foreign is None


def test_envoy_load_counts_every_listener_of_each_envoy() -> None:
    load = stack.envoy_load(
        {"envoy:gateway-0": 0.2, "envoy:cart-0": 0.0, "gateway-0": 0.5},
        {"envoy:gateway-0": {"inbound": 500, "outbound": 500}, "envoy:cart-0": {}},
        window_s=5.0,
    )
    assert set(load) == {"envoy:gateway-0", "envoy:cart-0"}
    assert load["envoy:gateway-0"].rps == 200
    assert load["envoy:gateway-0"].vcpu_per_1000_rps == pytest.approx(1.0)
    assert load["envoy:cart-0"].vcpu_per_1000_rps is None


def test_memory_sums_by_kind_without_the_client() -> None:
    mb = 1024 * 1024
    groups = stack.memory_groups(
        {
            "envoy:a": {"rss": 60 * mb, "pss": 20 * mb},
            "envoy:b": {"rss": 60 * mb, "pss": 20 * mb},
            "cart-0": {"rss": 90 * mb, "pss": 50 * mb},
            "client": {"rss": 70 * mb, "pss": 40 * mb},
        }
    )
    assert groups["envoys"] == MemoryGroup(rss=120 * mb, pss=40 * mb, count=2)
    assert groups["total"] == MemoryGroup(rss=210 * mb, pss=90 * mb, count=3)


# -- plans and knobs --------------------------------------------------------------------------


def test_the_quick_plan_is_small_and_its_smallest_step_is_two_seconds_of_one_hop() -> None:
    quick, full = plans.quick_plan(), plans.full_plan()
    assert len(quick.rates["one-hop"]) < len(full.rates["one-hop"])
    assert quick.duration_s < full.duration_s and quick.users < full.users
    smallest = plans.smallest_step(quick)
    assert (smallest.path, smallest.rate, smallest.duration_s) == ("one-hop", 50.0, 2.0)
    stacks = plans.bench_stacks(quick, Knobs())
    assert [s.label for s in stacks] == ["no-mesh", "mesh", "mesh+tracing"]
    assert [s.tracing for s in stacks] == [False, False, True]
    # mesh and no-mesh run the same rates
    assert stacks[0].work == stacks[1].work
    assert plans.estimate_s(quick, stacks) < 240


def test_tuning_repeats_interleave_the_variants() -> None:
    stacks = plans.tuning_stacks(plans.quick_plan(), ["baseline", "sidecar-http2"], 2)
    assert [s.label for s in stacks] == [
        "baseline#1",
        "sidecar-http2#1",
        "baseline#2",
        "sidecar-http2#2",
    ]
    assert stacks[1].knobs.sidecar_http2 and not stacks[0].knobs.changes()
    with pytest.raises(ValueError):
        plans.tuning_stacks(plans.quick_plan(), ["warp-drive"], 1)


def render(knobs: Knobs) -> dict[str, dict]:
    topo = topology.load()
    placement = local_placement(topo, Path("run"), 8080, 15000, otlp_port=4318)
    return envoy_config.render_all(topo, placement, knobs.envoy_options())


def test_default_knobs_render_the_shipped_envoy_config() -> None:
    assert Knobs().envoy_options() == envoy_config.EnvoyOptions()
    for config in render(Knobs()).values():
        for cluster in config["static_resources"]["clusters"]:
            assert "typed_extension_protocol_options" not in cluster
        for listener in config["static_resources"]["listeners"]:
            assert "access_log" in listener["filter_chains"][0]["filters"][0]["typed_config"]


def test_http2_between_sidecars_changes_only_the_peer_clusters() -> None:
    config = render(Knobs(sidecar_http2=True))["gateway-0"]
    clusters = {c["name"]: c for c in config["static_resources"]["clusters"]}
    options = clusters["products"]["typed_extension_protocol_options"][HTTP_OPTIONS_KEY]
    assert options["@type"] == envoy_config.HTTP_OPTIONS
    assert options["explicit_http_config"] == {"http2_protocol_options": {}}
    tls = clusters["products"]["transport_socket"]["typed_config"]["common_tls_context"]
    assert tls["alpn_protocols"] == ["h2"]
    assert "typed_extension_protocol_options" not in clusters["app"]  # the app keeps HTTP/1.1
    inbound = next(x for x in config["static_resources"]["listeners"] if x["name"] == "inbound")
    down = inbound["filter_chains"][0]["transport_socket"]["typed_config"]["common_tls_context"]
    assert down["alpn_protocols"] == ["h2", "http/1.1"]


def test_no_pool_and_no_access_log() -> None:
    config = render(Knobs(sidecar_pool=False, access_log=False))["cart-0"]
    products = next(c for c in config["static_resources"]["clusters"] if c["name"] == "products")
    options = products["typed_extension_protocol_options"][HTTP_OPTIONS_KEY]
    assert options["common_http_protocol_options"] == {"max_requests_per_connection": 1}
    for listener in config["static_resources"]["listeners"]:
        assert "access_log" not in listener["filter_chains"][0]["filters"][0]["typed_config"]
    assert Knobs(sidecar_pool=False, access_log=False).changes() == {
        "sidecar_pool": False,
        "access_log": False,
    }


def test_the_span_batch_knob_is_rendered_into_the_runtime() -> None:
    config = render(Knobs(envoy_min_flush_spans=16))["ingress"]
    static = config["layered_runtime"]["layers"][0]["static_layer"]
    assert static["tracing.opentelemetry.min_flush_spans"] == 16


# -- the open-loop client -----------------------------------------------------------------------


def test_a_load_spec_checks_itself_and_travels_as_json() -> None:
    spec = loadgen.LoadSpec("http://x", "one-hop", 10, 1, product_ids=["a"])
    assert loadgen.LoadSpec.from_json(spec.to_json()) == spec
    with pytest.raises(ValueError):
        loadgen.LoadSpec("http://x", "sideways", 10, 1, product_ids=["a"])
    with pytest.raises(ValueError):
        loadgen.LoadSpec("http://x", "checkout", 10, 1, product_ids=["a"])  # no users
    with pytest.raises(ValueError):
        loadgen.LoadSpec("http://x", "one-hop", 0, 1, product_ids=["a"])


async def test_the_client_keeps_sending_while_the_server_stalls(aiohttp_server: Any) -> None:
    """Open loop: requests keep going out on schedule while earlier ones hang, and a request's
    latency counts from when it was due (so the stall shows in the percentiles)."""
    gate = asyncio.Event()
    arrived: list[int] = []

    async def product(request: web.Request) -> web.Response:
        arrived.append(1)
        await gate.wait()
        return web.json_response({"id": request.match_info["id"]})

    app = web.Application()
    app.router.add_get("/api/products/{id}", product)
    server = await aiohttp_server(app)
    spec = loadgen.LoadSpec(
        f"http://127.0.0.1:{server.port}", "one-hop", 50, 1.0, 0.0, product_ids=["a", "b"]
    )
    loop = asyncio.get_running_loop()
    loop.call_later(0.4, gate.set)
    result = await loadgen.run(spec)
    assert result.scheduled == 50 and result.sent == 50 and result.dropped == 0
    assert result.ok == 50 and result.errors_total == 0
    lat = result.latency_ms
    assert lat["count"] == 50
    assert lat["max"] >= 300  # the first request waited out most of the stall
    assert lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    assert result.vcpu["client"] >= 0
    # what the client process writes, the runner reads back the same (strictly)
    assert codec.load(LoadResult, json.loads(json.dumps(codec.dump(result)))) == result


async def test_requests_beyond_the_in_flight_bound_are_dropped(aiohttp_server: Any) -> None:
    gate = asyncio.Event()

    async def product(request: web.Request) -> web.Response:
        await gate.wait()
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/api/products/{id}", product)
    server = await aiohttp_server(app)
    spec = loadgen.LoadSpec(
        f"http://127.0.0.1:{server.port}", "one-hop", 40, 0.5, 0.0, max_inflight=3,
        product_ids=["a"],
    )  # fmt: skip
    asyncio.get_running_loop().call_later(0.3, gate.set)
    result = await loadgen.run(spec)
    assert result.dropped > 0
    assert result.sent + result.dropped == result.scheduled
    assert stats.verdict(result, 10_000) is not None


# -- the report -------------------------------------------------------------------------------


def sample_step(stack: str, path: str, rate: float, p50: float, failed: str | None = None) -> Step:
    mesh = stack != "no-mesh"
    envoys = (
        {
            "envoy:ingress": {"vcpu": 0.05, "rps": rate, "vcpu_per_1000_rps": 50 / rate},
            "envoy:gateway-0": {"vcpu": 0.1, "rps": 2 * rate, "vcpu_per_1000_rps": 50 / rate},
        }
        if mesh
        else {}
    )
    mb = 1024 * 1024
    return codec.load(Step, {
        "stack": stack,
        "mesh": mesh,
        "tracing": stack == "mesh+tracing",
        "knobs": {},
        "path": path,
        "rate": rate,
        "duration_s": 4.0,
        "warmup_s": 1.0,
        "window_s": 4.0,
        "scheduled": int(rate * 4),
        "sent": int(rate * 4),
        "achieved_rps": rate * 0.99,
        "ok": int(rate * 10),
        "errors": {},
        "errors_total": 0,
        "dropped": 0,
        "latency_ms": {"count": int(rate * 10), "p50": p50, "p90": p50 * 1.5, "p99": p50 * 3,
                       "p99.9": p50 * 4, "max": p50 * 5},
        "send_lag_ms": {"count": 10, "p99": 0.5},
        "vcpu_groups": {"envoys": 0.15 if mesh else 0.0, "apps": 0.3, "redis": 0.01,
                        "tracestore": 0.05 if stack == "mesh+tracing" else 0.0, "client": 0.05,
                        "stack": 0.46 if mesh else 0.31, "foreign": 0.01},
        "envoys": envoys,
        "memory": {n: {"rss": 66 * mb, "pss": 21 * mb} for n in envoys},
        "failed_because": failed,
    })  # fmt: skip


def sample_results() -> Results:
    mb = 1024 * 1024
    steps = [
        sample_step("no-mesh", "one-hop", 50, 4.0),
        sample_step("no-mesh", "one-hop", 100, 4.5),
        sample_step("mesh", "one-hop", 50, 6.0),
        sample_step("mesh", "one-hop", 100, 40.0, failed="p99 120 ms > 100 ms"),
        sample_step("mesh+tracing", "one-hop", 50, 7.0),
        sample_step("no-mesh", "checkout", 5, 50.0),
        sample_step("mesh", "checkout", 5, 70.0),
    ]
    one_hop = {"envoy:ingress": {"ingress": 1.0}, "envoy:gateway-0": {"inbound": 1.0}}
    hops = {
        "one-hop": Hops(hops=2.0, proxy_traversals=4.0, per_envoy=one_hop),
        "checkout": Hops(hops=12.0, proxy_traversals=24.0),
    }
    idle = Idle(
        vcpu_groups=VcpuGroups(stack=0.01),
        memory_groups={
            "total": MemoryGroup(rss=1300 * mb, pss=700 * mb, count=18),
            "envoys": MemoryGroup(rss=600 * mb, pss=190 * mb, count=9),
        },
    )
    stacks = [
        StackInfo(label=label, started_s=4.2, processes=18, hops=hops, idle=idle)
        for label in ("no-mesh", "mesh", "mesh+tracing")
    ]
    machine = Machine(cores=2, memory_bytes=2**34, cpu_model="Test CPU", kernel="6.1",
                      python="3.11.2", envoy="1.40.0", redis="7.0.15")  # fmt: skip
    return Results(
        started_at="2025-01-01T00:00:00Z",
        plan=plans.quick_plan(),
        machine=machine,
        stacks=stacks,
        steps=steps,
    )


def test_the_summary_compares_the_same_rates_and_finds_the_highest_sustained() -> None:
    summary = analysis.summarize(sample_results())
    rows = summary.compare["one-hop"]
    assert [r.rate for r in rows] == [50, 100]
    assert rows[0].added["p50"] == pytest.approx(2.0)
    assert rows[0].added["p50_per_hop"] == pytest.approx(1.0)
    assert summary.max_sustained["one-hop"]["mesh"].rate == 50
    assert summary.max_sustained["one-hop"]["no-mesh"] == stats.MaxSustained(
        rate=100, bounded=False, first_failure=None
    )
    # the sidecars are read at the highest rate the mesh sustained
    sidecars = summary.sidecars["one-hop"]
    assert sidecars is not None and sidecars.rate == 50
    assert summary.tracing["one-hop"][0].added["p50"] == pytest.approx(1.0)
    assert summary.memory[0].idle_rss_mb == pytest.approx(1300)


def test_the_report_has_the_tables_and_the_terminal_the_same(tmp_path: Path) -> None:
    results = sample_results()
    files = report.write(results, tmp_path)
    text = files["report"].read_text()
    for title in (
        "## Machine",
        "## Hops per request with the mesh",
        "## Latency at fixed rates",
        "## Highest sustained rate",
        "## Sidecars, one-hop at 50/s",
        "## Tracing at 100% sampling",
        "## Start-up and memory",
        "## Every step",
        "Test CPU",
        "| one-hop | 50 | 4.0 / 6.0 / 12.0 | 6.0 / 9.0 / 18.0 | +2.0 / +3.0 / +6.0 |",
    ):
        assert title in text, title
    saved = json.loads(files["json"].read_text())
    assert saved["summary"]["hops"]["checkout"]["hops"] == 12
    terminal = report.terminal(results, analysis.summarize(results))
    assert "Highest sustained rate" in terminal and "100/s or more" in terminal


def test_results_read_back_strictly_and_as_written(tmp_path: Path) -> None:
    results = sample_results()
    files = report.write(results, tmp_path)
    assert model.read(files["json"]) == results  # the summary is derived again, not read
    saved = json.loads(files["json"].read_text())
    saved["steps"][0]["latency_ms"]["p50"] = "fast"
    with pytest.raises(codec.FormatError, match=r"steps\[0\]\.latency_ms\.p50"):
        model.parse(saved)
    del saved["steps"][0]["latency_ms"]
    with pytest.raises(codec.FormatError, match="missing latency_ms"):
        model.parse(saved)
    with pytest.raises(codec.FormatError, match="unknown key"):
        model.parse({**json.loads(files["json"].read_text()), "colour": "blue"})


def test_a_results_file_written_before_the_types_still_reads(tmp_path: Path) -> None:
    """The keys as the first format wrote them (a step's extra keys only when counted, no
    kind_of_run, NaN as null), and the report made from it."""
    old = json.loads(json.dumps(codec.dump(sample_results())))
    for step in old["steps"]:
        for key in ("refills", "refill_errors", "waited_for_user", "client_runtime_s"):
            del step[key]
        step["vcpu_groups"]["foreign"] = None
    del old["kind_of_run"], old["finished_at"], old["merged_from"]
    old["steps"][0]["latency_ms"]["mean"] = None  # a NaN, written as null
    (tmp_path / "results.json").write_text(json.dumps(old))
    results = model.read(tmp_path)
    assert math.isnan(results.steps[0].latency_ms["mean"])
    assert results.steps[0].vcpu_groups.foreign is None and not results.tuning
    assert "## Latency at fixed rates" in report.markdown(results, analysis.summarize(results), {})


def test_charts_are_drawn_when_matplotlib_is_there(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    drawn = charts.draw_charts(sample_results(), tmp_path)
    assert set(drawn) == {"latency-one-hop", "cpu-one-hop", "latency-checkout", "cpu-checkout"}
    assert (tmp_path / "latency-one-hop.png").read_bytes()[:4] == b"\x89PNG"


def test_json_has_no_nan() -> None:
    assert codec.dump({"a": math.nan, "b": [1.0, math.inf], "c": {"d": 2}}) == {
        "a": None,
        "b": [1.0, None],
        "c": {"d": 2},
    }


# -- the command line, merged runs, the shape of the stacks ------------------------------------


def test_boutique_bench_is_a_subcommand() -> None:
    from boutique.cli import build_parser

    args = build_parser().parse_args(["bench", "--quick", "--rates", "10,20", "--no-keepalive"])
    assert args.quick and args.rates == [10, 20] and args.no_keepalive
    assert args.func.__module__ == "loadgenerator.bench.cli"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["bench", "--rates", "fast"])


def test_every_service_runs_once_in_both_stacks() -> None:
    single = plans.one_replica(topology.load())
    assert {s.replicas for s in single.services.values()} == {1}
    assert set(single.services) == set(topology.load().services)


def tuning_results(started: str) -> Results:
    results = sample_results()
    results.kind_of_run = "tuning"
    results.started_at = started
    results.stacks, results.steps = [], []
    for repeat in (1, 2):
        for variant in ("baseline", "sidecar-no-pool"):
            label = f"{variant}#{repeat}"
            results.stacks.append(
                StackInfo(
                    label=label,
                    variant=variant,
                    repeat=repeat,
                    started_s=4.0,
                    speed_probe_ms=18.0,
                    envoy_connections={
                        "upstream_rq_total": 1000,
                        "upstream_cx_total": 1000 if variant == "sidecar-no-pool" else 4,
                        "tls_handshakes": 1000 if variant == "sidecar-no-pool" else 4,
                    },
                )
            )
            step = sample_step("mesh", "one-hop", 100, 6.0 + repeat)
            step.stack, step.variant, step.repeat = label, variant, repeat
            results.steps.append(step)
    return results


def test_tuning_compares_each_variant_with_the_baseline() -> None:
    summary = analysis.summarize(tuning_results("2025-01-01T00:00:00Z"))
    rows = {r.variant: r for r in summary.tuning}
    assert rows["baseline"].repeats == 2
    assert rows["baseline"].medians["p50"] == pytest.approx(7.5)  # the median of 7 and 8
    assert rows["baseline"].ranges["p50"] == [7.0, 8.0]
    vs = rows["sidecar-no-pool"].vs_baseline
    assert vs is not None and vs["p50"] == pytest.approx(0.0)
    variants = {v.variant: v for v in summary.variants}
    assert variants["sidecar-no-pool"].connections_per_1000_rq == pytest.approx(1000)
    assert variants["baseline"].tls_handshakes_per_1000_rq == pytest.approx(4)


def test_runs_merge_with_their_repeats_numbered_on(tmp_path: Path) -> None:
    from loadgenerator.bench.cli import merge

    for name, started in (("a.json", "2025-01-01T00:00:00Z"), ("b.json", "2025-01-02T00:00:00Z")):
        (tmp_path / name).write_text(json.dumps(codec.dump(tuning_results(started))))
    merged = merge([tmp_path / "a.json", tmp_path / "b.json"])
    assert [s.repeat for s in merged.stacks] == [1, 1, 2, 2, 3, 3, 4, 4]
    assert merged.stacks[-1].label == "sidecar-no-pool#4"
    assert merged.steps[-1].stack == "sidecar-no-pool#4"
    assert merged.merged_from == ["2025-01-01T00:00:00Z", "2025-01-02T00:00:00Z"]
    rows = {r.variant: r for r in analysis.summarize(merged).tuning}
    assert rows["baseline"].repeats == 4
    assert "Tuning experiments" in report.markdown(merged, analysis.summarize(merged), {})


def test_a_slower_machine_between_stacks_is_flagged() -> None:
    results = sample_results()
    results.stacks[0].speed_probe_ms = 20.0
    results.stacks[1].speed_probe_ms = 25.0  # 25% slower
    summary = analysis.summarize(results)
    assert summary.speed_spread == pytest.approx(0.25)
    assert "25% slower" in report.terminal(results, summary)
