"""``boutique experiment``: fault-injection experiments (``mesh/experiments/*.yaml``).

list            every experiment: what it does, what it teaches, the verdict expected
show NAME       one experiment in full, and the runtime keys it switches
run NAME        run it under load (attached to the running mesh, or on a mesh of its own),
                judge its hypotheses, write the report; exit 0 only when every one held
apply NAME      switch its fault on in the running mesh (live, nothing restarts)
clear           switch every fault off
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Callable
from http.client import HTTPException
from pathlib import Path
from typing import Any

from mesh import topology as topo
from mesh.admin import AdminError
from mesh.experiments import faults, spec
from mesh.experiments.faults import Proxy
from mesh.experiments.yamlcheck import SpecError
from mesh.local import LocalOptions, LocalRun


def add_arguments(parser: argparse.ArgumentParser, where: Callable[..., None]) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("list", help="every experiment, what it teaches and its expected verdict")
    show = sub.add_parser("show", help="one experiment in full")
    show.add_argument("name", help="a name from `boutique experiment list`, or a YAML file")
    run = sub.add_parser("run", help="run an experiment under load and judge it")
    run.add_argument("name")
    run.add_argument("--results", metavar="DIR", help="default results/experiment-<name>-<time>/")
    run.add_argument(
        "--own-mesh",
        action="store_true",
        help="start a mesh of its own on free ports even when one runs (default: attach to it)",
    )
    apply = sub.add_parser("apply", help="switch an experiment's fault on in the running mesh")
    apply.add_argument("name")
    clear = sub.add_parser("clear", help="switch every fault off in the running mesh")
    for cmd in (run, apply, clear):
        where(cmd)
        cmd.add_argument(
            "--target",
            choices=("local", "compose"),
            default="local",
            help="the local mesh (default) or the compose stack that `make compose-up` started",
        )
    show.add_argument(
        "--topology", default=str(topo.DEFAULT_PATH), help="the topology (mesh/topology.yaml)"
    )


def main(args: argparse.Namespace) -> int:
    try:
        return ACTIONS[args.action](args)
    except SpecError as exc:
        print(f"boutique experiment: {exc}", file=sys.stderr)
        return 2
    except MeshNotRunning as exc:
        print(f"boutique experiment: {exc}", file=sys.stderr)
        return 1


def cmd_list(args: argparse.Namespace) -> int:
    topology = topo.load()
    rows = [(e.name, e.expected, e.description) for e in spec.load_all(topology)]
    width = max(len(r[0]) for r in rows)
    print(f"{'experiment':<{width}}  expected  what it does")
    for name, expected, description in rows:
        print(f"{name:<{width}}  {expected:<8}  {description}")
    print("\n`boutique experiment show NAME` tells more; `run NAME` runs one under load.")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    exp = spec.load(args.name, topo.load(args.topology))
    wrap = textwrap.TextWrapper(width=96, initial_indent="  ", subsequent_indent="  ")
    print(f"{exp.name}: {exp.description}\n")
    print(f"fault:      {exp.fault_text()}")
    print(
        f"load:       {exp.load.users} shoppers (+{exp.load.page_probers} on the shop's pages), "
        f"{exp.load.spawn_rate:g}/s spawned, thinking {exp.load.think_min_s:g}-"
        f"{exp.load.think_max_s:g} s"
    )
    print("phases:     " + ", ".join(f"{p.name} {p.duration_s:g} s" for p in exp.phases))
    print(f"expected:   {exp.expected}\n\nwhat it teaches:\n{wrap.fill(exp.teaches)}\n")
    print("hypotheses:")
    for h in exp.hypotheses:
        print(f"  - {h.text}")
    if exp.notes:
        print(f"\nnotes:\n{wrap.fill(exp.notes)}")
    print(f"\nruntime keys on every {exp.destination} sidecar:")
    for key, value in faults.runtime_values(exp).items():
        print(f"  {key} = {value}")
    return 0


class MeshNotRunning(RuntimeError):
    pass


def attach(args: argparse.Namespace) -> tuple[LocalRun, list[Proxy]]:
    """The running local mesh that ``args`` point at (`boutique up`'s options), and its sidecars."""
    options = LocalOptions(
        run_dir=Path(args.run_dir),
        public_port=args.port,
        base_port=args.base_port,
        otlp_port=args.otlp_port,
        traces_port=args.traces_port,
    )
    run = LocalRun(topo.load(args.topology), options)
    from mesh.experiments.targets import local_proxies

    proxies: list[Proxy] = list(local_proxies(run))
    try:
        proxies[-1].admin_layer()  # the ingress answers: a mesh runs there
    except (OSError, AdminError, HTTPException):
        raise MeshNotRunning(
            f"no local mesh runs with --base-port {args.base_port} (is `boutique up` running?)"
        ) from None
    return run, proxies


def compose(args: argparse.Namespace) -> tuple[Any, list[Proxy]]:
    """The compose stack that `make compose-up` left running, and its sidecars."""
    from containers.daemon import Stack
    from mesh.experiments.targets import compose_proxies

    stack = Stack.find()
    if stack is None:
        raise MeshNotRunning("no compose stack runs here (`make compose-up` starts one)")
    return stack, list(compose_proxies(stack, topo.load(args.topology)))


def proxies_of(args: argparse.Namespace) -> list[Proxy]:
    return compose(args)[1] if args.target == "compose" else attach(args)[1]


def cmd_apply(args: argparse.Namespace) -> int:
    proxies = proxies_of(args)
    exp = spec.load(args.name, topo.load(args.topology))
    switched = faults.apply(exp, proxies)
    print(f"{exp.name}: {exp.fault_text()}")
    print(f"switched on in {', '.join(switched)}; `boutique experiment clear` switches it off")
    return 0


def cmd_clear(args: argparse.Namespace) -> int:
    proxies = proxies_of(args)
    removed = faults.clear(proxies)
    if not removed:
        print("no fault was switched on")
    for name, keys in removed.items():
        print(f"{name}: cleared {', '.join(sorted(keys))}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from loadgenerator.experiments import cli as run_cli

    return run_cli.run_experiment(args, attach, compose)


ACTIONS: dict[str, Callable[[argparse.Namespace], int]] = {
    "list": cmd_list,
    "show": cmd_show,
    "run": cmd_run,
    "apply": cmd_apply,
    "clear": cmd_clear,
}
