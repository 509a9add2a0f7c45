"""``boutique``: run one service, or the whole shop locally.

boutique serve NAME        run one service (configured by environment variables)
boutique up [--no-mesh]    run redis-server and every service; Ctrl-C stops them all
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import time
from pathlib import Path

from . import topology as topo
from .local import LocalOptions, LocalRun
from .processes import StartError


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
        redis_port=getattr(args, "redis_port", 6380),
        fresh=getattr(args, "fresh", False),
    )
    return LocalRun(topo.load(args.topology), options)


def cmd_render(args: argparse.Namespace) -> int:
    run = _local_run(args)
    for name, path in run.render().items():
        print(f"{name:<12} {path}")
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
    print(
        f"starting redis-server and {len(topology.services)} services (logs in {run.run_dir}/logs)"
    )
    try:
        run.start()
    except StartError as exc:
        print(f"boutique up: {exc}", file=sys.stderr)
        return 1
    print(f"\nall ready in {run.started_s:.1f}s\n")
    print(run.table())
    print(
        f"\nAPI:      {run.public_url}/api/products"
        f"\nOpenAPI:  {run.public_url}/api/openapi.json"
        f"\nlogs:     {run.run_dir}/logs/<process>.log"
    )
    if options.mesh:
        print(
            f"admin:    {run.admin_url('ingress')}/stats?filter=http.ingress (and each sidecar's"
            " admin column: /stats, /clusters, /config_dump)"
        )
    print("\nCtrl-C stops everything.")
    code = 0
    while not stopping:
        crashed = run.supervisor.first_exit()
        if crashed is not None:
            rc = crashed.proc.returncode if crashed.proc else None
            print(
                f"\nboutique up: {crashed.name} exited with code {rc}; stopping the rest.\n"
                f"last lines of {crashed.log}:\n{crashed.tail()}",
                file=sys.stderr,
            )
            code = 1
            break
        time.sleep(0.3)
    print("stopping...")
    run.stop()
    print("stopped.")
    return code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="boutique", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run one service (configured by environment variables)")
    serve.add_argument("name")
    serve.set_defaults(func=cmd_serve)

    up = sub.add_parser("up", help="run the whole shop locally")
    up.add_argument("--no-mesh", action="store_true", help="services talk to each other directly")
    up.add_argument("--port", type=int, default=8080, help="the public port (default 8080)")
    up.add_argument("--redis-port", type=int, default=6380, help="redis-server's port (6380)")
    up.add_argument(
        "--base-port",
        type=int,
        default=15000,
        help="sidecar and admin ports are counted up from here (default 15000)",
    )
    up.add_argument("--run-dir", default=".run", help="logs and data go here (default .run)")
    up.add_argument("--fresh", action="store_true", help="start with empty stores")
    up.add_argument("--topology", default=str(topo.DEFAULT_PATH), help=argparse.SUPPRESS)
    up.set_defaults(func=cmd_up)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except topo.TopologyError as exc:
        print(f"boutique: {exc}", file=sys.stderr)
        return 2
