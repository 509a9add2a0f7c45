"""``boutique bench``: what the mesh costs on this machine, mesh on against mesh off.

boutique bench              the full run (10 to 15 minutes on 2 cores)
boutique bench --quick      a minute or two: few rates, short steps
boutique bench --tuning     the tuning experiments: each knob against the baseline, repeated
boutique bench --cost       7 to 10 minutes: CPU-ms per request by process group, as `boutique
                            up` runs the shop, tracing on and off (3 repeats, interleaved), and
                            issue 15's targets judged on the medians
boutique bench --cost --profile products,gateway   the same, with py-spy flame graphs
boutique bench --floor      10 to 15 minutes: the floor, the browse/product-page chain with bare
                            apps and the Envoys stripped to a router, then mTLS, policy and
                            tracing added one layer at a time (``floor``)

Results go to ``results/bench-<UTC time>/``: ``results.json``, ``report.md`` and its charts.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from loadgenerator.run import positive  # the same check as `boutique load`
from mesh import topology as topo

if TYPE_CHECKING:
    from .model import Results
    from .plans import Plan, StackSpec
    from .profiling import Profiler


def _rates(text: str) -> list[float]:
    from .stats import parse_rates

    try:
        return parse_rates(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _names(text: str) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()]


def _env(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    return key, value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--quick", action="store_true", help="a minute or two: few rates, short steps")
    add(
        "--cost",
        action="store_true",
        help="7 to 10 minutes: CPU-ms per request by process group (browse, product page, "
        "checkout) as `boutique up` runs the shop, tracing on and off, 3 repeats interleaved "
        "(--repeats); the targets met or not on the medians",
    )
    _add_floor_arguments(parser)
    add(
        "--profile",
        type=_names,
        default=[],
        metavar="NAMES",
        help="py-spy flame graphs (SVG) of these apps (every replica) or tracestore during each "
        "step's window, e.g. products,gateway",
    )
    add("--profile-rate", type=positive(int), default=100, metavar="HZ", help="samples/s (100)")
    add("--results", default="results", metavar="DIR", help="where to write (default results/)")
    add("--rates", type=_rates, metavar="R", help="one-hop rates: 50,100,200 or a ladder 25:800:2")
    add("--browse-rates", type=_rates, metavar="R", help="browse's cost rate(s) (100)")
    add("--checkout-rates", type=_rates, metavar="R", help="checkout rates, as --rates")
    add("--duration", type=positive(float), metavar="SECONDS", help="each step's window")
    add("--warmup", type=float, metavar="SECONDS", help="warm-up before each step's window")
    add("--users", type=positive(int), metavar="N", help="signed-in users for checkouts")
    add("--paths", help="which paths (default one-hop,checkout; --cost: browse,one-hop,checkout)")
    add("--p99-bound", type=positive(float), metavar="MS", help="one-hop p99 bound (100)")
    add("--checkout-p99-bound", type=positive(float), metavar="MS", help="checkout's (1000)")
    add("--max-inflight", type=positive(int), metavar="N", help="requests in flight (256)")
    add("--no-tracing-cost", action="store_true", help="skip the tracing on/off comparison")
    add("--mesh-only", action="store_true", help="skip the stack without the mesh")
    add("--no-cost", action="store_true", help="skip the cost stacks at the end of the full run")
    add(
        "--replicas-from-topology",
        action="store_true",
        help="run the mesh with the topology's replicas (default: one of each, as without it)",
    )
    knobs = parser.add_argument_group("knobs (the default is what `boutique up` runs)")
    knobs.add_argument("--envoy-concurrency", type=positive(int), default=1, metavar="N")
    knobs.add_argument("--no-keepalive", action="store_true", help="the client reconnects")
    knobs.add_argument("--sidecar-http2", action="store_true", help="HTTP/2 between sidecars")
    knobs.add_argument(
        "--no-sidecar-pool", action="store_true", help="one request per sidecar connection"
    )
    knobs.add_argument("--no-access-log", action="store_true", help="Envoys log no requests")
    knobs.add_argument(
        "--envoy-min-flush-spans", type=positive(int), metavar="N", help="spans per export (5)"
    )
    knobs.add_argument(
        "--env",
        type=_env,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for every service (e.g. OTEL_BSP_SCHEDULE_DELAY=5000)",
    )
    add(
        "--tuning",
        nargs="?",
        const="all",
        metavar="VARIANTS",
        help="run the tuning experiments instead: all, or a comma list of variants",
    )
    _add_repeats(parser)
    add("--keep-run-dirs", action="store_true", help="keep each stack's logs and data")
    add(
        "--report-from",
        nargs="+",
        metavar="RESULTS",
        help="measure nothing: write the report again from results.json files (or their "
        "folders); several tuning runs are merged, their repeats numbered on",
    )
    add("--topology", default=str(topo.DEFAULT_PATH), help=argparse.SUPPRESS)


def _add_repeats(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--repeats",
        type=positive(int),
        metavar="N",
        help="repeats: of the tuning variants (2), of --cost's stacks (3), of the full run's "
        "cost stacks (1), of --floor (1)",
    )


def _add_floor_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--floor",
        action="store_true",
        help="10 to 15 minutes: the CPU floor of the browse/product-page chain (bare apps, the "
        "Envoys stripped to a router) and what each of the mesh's layers adds",
    )
    parser.add_argument(
        "--layers",
        type=_names,
        metavar="NAMES",
        help="--floor's layers (default bare,mtls,policy,traced)",
    )


def merge(paths: list[Path]) -> Results:
    """Results of several runs as one: the first's plan and machine, every stack and step; the
    repeats of later tuning or cost runs numbered on after the earlier ones' (a cost run of one
    repeat counts as repeat 1), so that merged cost runs are judged on their medians."""
    from .model import read
    from .plans import base_label

    runs = [read(path) for path in paths]
    if len(runs) > 1:
        for run in runs:
            _number_single_cost_run(run)
    merged = runs[0]
    for data in runs[1:]:
        offset = max((s.repeat or 0 for s in merged.stacks), default=0)
        for info in data.stacks:
            if info.repeat:
                info.repeat += offset
                info.label = f"{info.variant or base_label(info.label)}#{info.repeat}"
        for step in data.steps:
            if step.repeat:
                step.repeat += offset
                step.stack = f"{step.variant or base_label(step.stack)}#{step.repeat}"
        merged.stacks += data.stacks
        merged.steps += data.steps
        merged.disturbed_steps += data.disturbed_steps
        merged.merged_from = [*(merged.merged_from or [merged.started_at]), data.started_at]
    return merged


def _number_single_cost_run(results: Results) -> None:
    """The cost stacks of a run of one repeat (``up``, ``up-untraced``) as repeat 1."""
    from .plans import COST_OFF, COST_ON

    for info in results.stacks:
        if info.label in (COST_ON, COST_OFF) and not info.repeat:
            info.repeat, info.label = 1, f"{info.label}#1"
    for step in results.steps:
        if step.stack in (COST_ON, COST_OFF) and not step.repeat:
            step.repeat, step.stack = 1, f"{step.stack}#1"


def show(results: Results, out: Path) -> None:
    """Write the report to ``out`` and show it, with the files written."""
    from . import report
    from .analysis import summarize

    files = report.write(results, out)
    print()
    print(report.terminal(results, summarize(results)))
    print()
    for name, path in files.items():
        print(f"{name:<18} {path}")


def rewrite(args: argparse.Namespace) -> int:
    try:
        results = merge([Path(p) for p in args.report_from])
    except (OSError, ValueError) as exc:
        print(f"boutique bench: cannot read {args.report_from}: {exc}", file=sys.stderr)
        return 2
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    kind = "tuning" if results.tuning else "bench"
    show(results, Path(args.results) / f"{kind}-report-{stamp}")
    return 0


def plan_from(args: argparse.Namespace) -> Plan:
    """The quick or full plan, with what the command line changes."""
    from . import plans

    if args.cost:
        plan = plans.cost_plan()
    else:
        plan = plans.quick_plan() if args.quick else plans.full_plan()
    for path, rates in (
        ("browse", args.browse_rates),
        ("one-hop", args.rates),
        ("checkout", args.checkout_rates),
    ):
        if rates and (args.cost or path == "browse"):
            plan.cost_rates[path] = rates
        if rates and path in plan.rates:
            plan.rates[path] = rates
    if args.duration:
        plan.duration_s = args.duration
    if args.warmup is not None:
        plan.warmup_s = max(0.0, args.warmup)
    if args.users:
        plan.users = args.users
    if args.p99_bound:
        plan.p99_bound_ms["one-hop"] = args.p99_bound
    if args.checkout_p99_bound:
        plan.p99_bound_ms["checkout"] = args.checkout_p99_bound
    if args.max_inflight:
        plan.max_inflight = args.max_inflight
    if args.paths:
        plan.paths = _names(args.paths)
        if args.cost:
            plan.cost_rates = {p: r for p, r in plan.cost_rates.items() if p in plan.paths}
    plan.tracing_cost = not args.no_tracing_cost
    if args.repeats and not args.tuning:
        plan.cost_repeats = args.repeats
    if args.no_cost and not args.cost:
        plan.cost_rates = {}
    if args.mesh_only:
        plan.modes = ["mesh"]
    plan.one_replica = plan.one_replica and not args.replicas_from_topology
    return plan


def stacks_from(args: argparse.Namespace, plan: Plan) -> list[StackSpec]:
    """The stacks to run: the tuning variants, or the bench's with the knobs given."""
    from . import plans
    from .tuning import Knobs

    if args.cost and (args.tuning or args.quick):
        raise ValueError("--cost is a run of its own: not with --tuning or --quick")
    if args.tuning:
        names = list(plans.VARIANTS) if args.tuning == "all" else args.tuning.split(",")
        return plans.tuning_stacks(plan, [n.strip() for n in names], args.repeats or 2)
    knobs = Knobs(
        envoy_concurrency=args.envoy_concurrency,
        keepalive=not args.no_keepalive,
        sidecar_http2=args.sidecar_http2,
        sidecar_pool=not args.no_sidecar_pool,
        access_log=not args.no_access_log,
        envoy_min_flush_spans=args.envoy_min_flush_spans,
        env=dict(args.env),
    )
    return plans.bench_stacks(plan, knobs)


def profiler_from(args: argparse.Namespace, out: Path) -> Profiler | None:
    """The profiler ``--profile`` asks for, its names checked against the topology."""
    from .profiling import Profiler, check_names, py_spy

    if not args.profile:
        return None
    check_names(args.profile, list(topo.load(Path(args.topology)).services))
    try:
        py_spy()
    except RuntimeError as exc:
        raise ValueError(str(exc)) from None
    return Profiler(args.profile, out, args.profile_rate)


def main(args: argparse.Namespace) -> int:
    from mesh.processes import StartError

    from . import plans, runner
    from .progress import Progress

    if args.report_from:
        return rewrite(args)
    if args.floor:
        return floor(args)
    plan = plan_from(args)
    unknown = [p for p in plan.paths if p not in plan.rates]
    if unknown or not plan.paths:
        known = ", ".join(plan.rates)
        print(f"boutique bench: unknown path(s) {unknown}; known: {known}", file=sys.stderr)
        return 2
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    kind_dir = "tuning" if args.tuning else ("cost" if args.cost else "bench")
    out = Path(args.results) / f"{kind_dir}-{stamp}"
    try:
        stacks = stacks_from(args, plan)
        profiler = profiler_from(args, out)
    except ValueError as exc:
        print(f"boutique bench: {exc}", file=sys.stderr)
        return 2
    bench = runner.Bench(
        plan, Progress(), Path(args.topology), args.keep_run_dirs, profiler=profiler
    )
    kind = f"tuning run ({plan.name} plan)" if args.tuning else f"{plan.name} run"
    print(
        f"boutique bench: {kind}, {len(stacks)} stack(s) one after the other, "
        f"about {plans.estimate_s(plan, stacks) / 60:.0f} min at most; results in {out}/",
        flush=True,
    )
    code = 0
    try:
        results = bench.run(stacks)
    except KeyboardInterrupt:
        print("\ninterrupted: writing what was measured so far", file=sys.stderr)
        results, code = bench.results, 130
    except (StartError, RuntimeError) as exc:
        print(f"\nboutique bench: {exc}", file=sys.stderr)
        results, code = bench.results, 1
    if not results.steps:
        return code or 1
    show(results, out)
    return code


def floor(args: argparse.Namespace) -> int:
    """``--floor``: run the floor, write ``results.json`` and ``report.md``, show the report."""
    from . import floor_report
    from .floor import LAYERS
    from .floor_run import FloorPlan, run_floor
    from .progress import Progress

    plan = FloorPlan()
    if args.layers:
        unknown = [n for n in args.layers if n not in LAYERS]
        if unknown:
            print(f"boutique bench: unknown layer(s) {unknown}; known: {LAYERS}", file=sys.stderr)
            return 2
        plan.layers = args.layers
    if args.duration:
        plan.duration_s = args.duration
    if args.warmup is not None:
        plan.warmup_s = max(0.0, args.warmup)
    plan.repeats = args.repeats or 1
    out = Path(args.results) / f"floor-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}"
    print(
        f"boutique bench: floor run, {len(plan.layers)} layer(s), about "
        f"{plan.estimate_s() / 60:.0f} min; results in {out}/",
        flush=True,
    )
    results = run_floor(plan, Path(args.topology), Progress(), args.keep_run_dirs)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(results.to_json())
    report = floor_report.markdown(results)
    (out / "report.md").write_text(report)
    print()
    print(report)
    return 1 if results.error or not results.rows else 0
