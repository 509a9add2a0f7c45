"""The port planner: one block checked free as a whole, every port of a run in it, none twice."""

from __future__ import annotations

from pathlib import Path

from boutique import cli
from mesh import topology
from mesh.local import LocalOptions, LocalRun
from mesh.ports import DEFAULT, PortPlan, free_block, port_in_use, sidecar_block


def _every_port(run: LocalRun) -> list[int]:
    o = run.options
    assert run.placement is not None
    sidecars = [
        p
        for i in run.placement.all_instances()
        for p in (i.admin_port, i.inbound_port, i.egress_port)
    ]
    ingress = [run.placement.ingress.admin_port, run.placement.ingress.port]
    apps = [run.app_port(name) for name in run.topology.services if name != "gateway"]
    return [*sidecars, *ingress, o.redis_port, o.otlp_port, o.traces_port, *apps]


def test_a_free_plan_puts_every_port_of_a_run_in_one_free_block(tmp_path: Path) -> None:
    topo = topology.load()
    plan = PortPlan.free(topo)
    run = LocalRun(topo, LocalOptions.planned(plan, tmp_path))
    ports = _every_port(run)
    assert len(ports) == len(set(ports)), "a port is planned twice"
    size = sidecar_block(topo) + 4 + len(topo.services)
    assert all(plan.base <= p < plan.base + size for p in ports)
    assert not any(port_in_use(p) for p in ports)
    assert set(plan.apps) == set(topo.services)


def test_the_default_plan_is_what_boutique_up_uses() -> None:
    options = LocalOptions()
    assert (options.public_port, options.base_port, options.redis_port) == (8080, 15000, 6380)
    assert (options.otlp_port, options.traces_port) == (DEFAULT.otlp, DEFAULT.traces)
    args = cli.build_parser().parse_args(["up"])
    assert (args.port, args.base_port, args.redis_port) == (8080, 15000, 6380)
    assert (args.otlp_port, args.traces_port) == (4318, 16686)


def test_a_plan_travels_as_boutique_up_options() -> None:
    plan = PortPlan.free(topology.load()).with_public(12345)
    args = cli.build_parser().parse_args(["up", *plan.cli_args()])
    assert (args.port, args.base_port, args.redis_port) == (12345, plan.base, plan.redis)
    assert (args.otlp_port, args.traces_port) == (plan.otlp, plan.traces)


def test_a_free_block_is_free() -> None:
    base = free_block(50)
    assert not any(port_in_use(p) for p in range(base, base + 50))
