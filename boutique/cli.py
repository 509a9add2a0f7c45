"""``boutique``: run one service, or the whole shop locally, and read its traces.

boutique up [--no-mesh]    run redis-server, the trace store, every service with its Envoy
                           sidecar, and the ingress; Ctrl-C stops them all
boutique up --load         ...with a steady background load of Locust shoppers
boutique load              drive the running shop with Locust shoppers (headless or web UI)
boutique render [--check]  write the renderings checked in (envoy/local/), or check them
boutique render --run-dir DIR   one run's Envoy configs and certificates, in DIR
boutique traces [ID]       recent traces, or one trace as a tree
boutique bench [--quick]   what the mesh costs: latency, CPU, memory, mesh on against off
boutique experiment ...    fault-injection experiments: list, show, run, apply, clear
boutique serve NAME        run one service (configured by environment variables)
boutique mint              compose's identities: a CA and each workload's SPIFFE certificate
boutique tracestore        run the local trace store (`boutique up` starts it)
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
from pathlib import Path

from boutique import experiment
from loadgenerator import run as load_runner
from loadgenerator.bench import cli as bench_cli
from mesh import mint
from mesh import topology as topo
from mesh.local import LocalOptions, LocalRun
from mesh.ports import DEFAULT
from mesh.processes import StartError
from mesh.render import targets
from mesh.restarts import CRASH_LOOP
from tracestore import server as tracestore
from tracestore import terminal


def cmd_serve(args: argparse.Namespace) -> int:
    from services.kit import Settings, run

    package = "frontend" if args.name == "frontend" else f"services.{args.name}"
    try:
        module = importlib.import_module(f"{package}.app")
    except ModuleNotFoundError as exc:
        if exc.name and not f"{package}.app".startswith(exc.name):
            raise
        print(f"boutique: no service {args.name!r} (looked for {package}.app)", file=sys.stderr)
        return 2
    run(module.create_app(Settings.from_env(args.name)))
    return 0


def _local_run(args: argparse.Namespace, mesh: bool = True) -> LocalRun:
    options = LocalOptions(
        run_dir=Path(args.run_dir),
        mesh=mesh,
        public_port=args.port,
        base_port=args.base_port,
        redis_port=getattr(args, "redis_port", DEFAULT.redis),
        fresh=getattr(args, "fresh", False),
        tracing=not getattr(args, "no_tracing", False),
        otlp_port=args.otlp_port,
        traces_port=args.traces_port,
        load_users=getattr(args, "load", 0),
        crash_loop=getattr(args, "crash_loop", CRASH_LOOP),
        https=getattr(args, "https", False),
    )
    return LocalRun(topo.load(args.topology), options)


def cmd_render(args: argparse.Namespace) -> int:
    if args.run_dir is not None:
        if args.check:
            print("boutique render: --check compares the tree, not a run dir", file=sys.stderr)
            return 2
        run = _local_run(args)
        for name, path in run.render().items():
            print(f"{name:<12} {path}")
        return 0
    topology = topo.load(args.topology)
    if args.check:
        drift = targets.check(topology, Path(args.root))
        for line in drift.lines():
            print(line)
        if drift:
            print("boutique render: the renderings are out of date; run `boutique render`")
            return 1
        print("the renderings are up to date")
        return 0
    for line in targets.write(topology, Path(args.root)) or ["the renderings were up to date"]:
        print(line)
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    run = _local_run(args, mesh=not args.no_mesh)
    topology, options = run.topology, run.options
    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    what = "with Envoy sidecars and the ingress" if options.mesh else "without a mesh"
    print(f"starting {len(topology.services)} services {what} (logs in {run.run_dir}/logs)")
    try:
        run.start()
    except StartError as exc:
        print(f"boutique up: {exc}", file=sys.stderr)
        return 1
    print(f"\nall ready in {run.started_s:.1f}s\n")
    print(run.table())
    print(f"\nshop:     {run.shop_url}/")
    print(f"API:      {run.public_url}/api/products  (contract: {run.public_url}/api/openapi.json)")
    if options.tracing:
        print(f"traces:   {run.traces_url}/  (or `boutique traces`)")
    if options.load_users:
        print(f"load:     {options.load_users} Locust shoppers (log: {run.log('load')})")
    if options.mesh:
        admin = run.admin_socket("ingress")
        print(f"admin:    curl --unix-socket {admin} http://admin/  (sidecars': pods/<instance>/)")
    print(f"logs:     {run.run_dir}/logs/<process>.log")
    print("\nA process that exits is restarted. Ctrl-C stops everything.", flush=True)
    code = 0
    while not stopping:
        if run.supervisor.failed.wait(0.3):
            print(f"\nboutique up: {run.supervisor.failure}\nstopping the rest.", file=sys.stderr)
            code = 1
            break
    print("stopping...")
    run.stop()
    print("stopped.")
    return code


def _where(cmd: argparse.ArgumentParser, run_dir: str | None = ".run") -> None:
    """The options that say where the local mesh runs (shared by `up` and `render`)."""
    cmd.add_argument(
        "--port", type=int, default=DEFAULT.public, help=f"the public port ({DEFAULT.public})"
    )
    cmd.add_argument(
        "--base-port",
        type=int,
        default=DEFAULT.base,
        help=f"sidecar and admin ports are counted up from here ({DEFAULT.base})",
    )
    cmd.add_argument(
        "--otlp-port",
        type=int,
        default=DEFAULT.otlp,
        help=f"trace store OTLP/HTTP ({DEFAULT.otlp})",
    )
    cmd.add_argument(
        "--traces-port",
        type=int,
        default=DEFAULT.traces,
        help=f"trace view and Jaeger API ({DEFAULT.traces})",
    )
    cmd.add_argument("--run-dir", default=run_dir, help="logs, data, configs (default .run)")
    cmd.add_argument(
        "--topology", default=str(topo.DEFAULT_PATH), help="the topology (mesh/topology.yaml)"
    )


def _at_least_one(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="boutique", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="run the whole shop locally")
    up.add_argument("--no-mesh", action="store_true", help="services talk to each other directly")
    up.add_argument("--no-tracing", action="store_true", help="no spans, no trace store")
    up.add_argument(
        "--redis-port",
        type=int,
        default=DEFAULT.redis,
        help=f"unused locally: Redis listens on a Unix socket ({DEFAULT.redis})",
    )
    up.add_argument(
        "--https", action="store_true", help="serve the public port over TLS (a minted cert)"
    )
    up.add_argument("--fresh", action="store_true", help="start with empty stores")
    up.add_argument(
        "--crash-loop",
        type=_at_least_one,
        default=CRASH_LOOP,
        metavar="N",
        help=f"stop when a process exits after N restarts within two minutes ({CRASH_LOOP})",
    )
    up.add_argument(
        "--load",
        type=int,
        nargs="?",
        const=3,
        default=0,
        metavar="USERS",
        help="run a steady background load of Locust shoppers (3 unless a number is given)",
    )
    _where(up)
    up.set_defaults(func=cmd_up)

    render = sub.add_parser(
        "render", help="write the renderings checked in (envoy/local/), or one run's configs"
    )
    _where(render, run_dir=None)
    render.add_argument(
        "--check", action="store_true", help="fail, naming the files, when a rendering is stale"
    )
    render.add_argument(
        "--root", default=str(targets.ROOT), help="the repository to write or check (this one)"
    )
    render.set_defaults(func=cmd_render)

    traces = sub.add_parser("traces", help="recent traces, or one trace as a tree")
    terminal.add_arguments(traces)
    traces.set_defaults(func=terminal.main)

    load = sub.add_parser("load", help="drive the running shop with Locust shoppers")
    load_runner.add_arguments(load)
    load.set_defaults(func=load_runner.main)

    bench = sub.add_parser(
        "bench", help="measure what the mesh costs (mesh on against off)", description=None
    )
    bench_cli.add_arguments(bench)
    bench.set_defaults(func=bench_cli.main)

    exp = sub.add_parser("experiment", help="fault-injection experiments (mesh/experiments/)")
    experiment.add_arguments(exp, _where)
    exp.set_defaults(func=experiment.main)

    serve = sub.add_parser("serve", help="run one service (configured by environment variables)")
    serve.add_argument("name")
    serve.set_defaults(func=cmd_serve)

    minter = sub.add_parser("mint", help="compose's CA and SPIFFE certificates, one dir each")
    mint.add_arguments(minter)
    minter.add_argument("--topology", default=str(topo.DEFAULT_PATH), help="the topology")
    minter.set_defaults(func=lambda args: mint.main(args, topo.load(args.topology)))

    store = sub.add_parser("tracestore", help="run the local trace store (OTLP in, Jaeger API out)")
    tracestore.add_arguments(store)
    store.set_defaults(func=tracestore.serve)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except topo.TopologyError as exc:
        print(f"boutique: {exc}", file=sys.stderr)
        return 2
