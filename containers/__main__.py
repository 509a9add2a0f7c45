"""``python -m containers up|down|status``: the compose stack on a daemon of our own, offline.

``up`` starts the daemon (``.cache/dockerd/``), builds the base image, the wheelhouse and the
project's image (cached), and runs ``docker-compose.yml`` with ``containers/offline.yml``.
``down`` removes the stack with its volumes and stops the daemon.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from . import images
from .daemon import DEFAULT_ROOT, PORTS, Daemon, DockerError, Stack


def up(args: argparse.Namespace) -> int:
    t0 = time.monotonic()
    daemon = Daemon(args.root)
    print(f"dockerd: starting (state in {args.root})", flush=True)
    daemon.start()
    log = args.root / "build.log"
    print(f"images: base, wheelhouse, {images.APP_IMAGE} (log: {log})", flush=True)
    images.build_app(daemon, log=log)
    ports = {"BOUTIQUE_PORT": args.port, "BOUTIQUE_JAEGER_PORT": args.jaeger_port}
    ports["BOUTIQUE_LOCUST_PORT"] = args.locust_port
    stack = Stack(daemon, ports=ports)
    print("compose: up", flush=True)
    stack.up()
    print(f"\nup in {time.monotonic() - t0:.0f}s")
    print(f"shop:    {stack.url()}/")
    print(f"Jaeger:  {stack.url('BOUTIQUE_JAEGER_PORT')}/  (the trace store, offline)")
    print(f"Locust:  {stack.url('BOUTIQUE_LOCUST_PORT')}/")
    print(f"compose: DOCKER_HOST={daemon.host} docker-compose -p {stack.project} ps")
    return 0


def down(args: argparse.Namespace) -> int:
    daemon = Daemon(args.root)
    stack = Stack.find(args.root)
    if stack is not None:
        print("compose: down", flush=True)
        stack.down()
    if daemon.pid() is not None:
        print("dockerd: stopping", flush=True)
        daemon.stop()
    print("down.")
    return 0


def status(args: argparse.Namespace) -> int:
    stack = Stack.find(args.root)
    if stack is None:
        print("no stack is running")
        return 1
    print(stack.compose("ps"))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m containers", description=__doc__)
    parser.add_argument("--root", type=lambda p: Path(p).resolve())
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("up", help="build offline and run the stack")
    start.add_argument("--port", type=int, default=PORTS["BOUTIQUE_PORT"])
    start.add_argument("--jaeger-port", type=int, default=PORTS["BOUTIQUE_JAEGER_PORT"])
    start.add_argument("--locust-port", type=int, default=PORTS["BOUTIQUE_LOCUST_PORT"])
    start.set_defaults(func=up)
    sub.add_parser("down", help="remove the stack and stop the daemon").set_defaults(func=down)
    sub.add_parser("status", help="the stack's containers").set_defaults(func=status)
    args = parser.parse_args(argv)
    args.root = args.root or DEFAULT_ROOT
    try:
        return args.func(args)
    except DockerError as exc:
        print(f"containers: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
