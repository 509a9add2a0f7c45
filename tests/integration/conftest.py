"""The real local shop, with the mesh and without, on free ports; helpers to read Envoy admin."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from mesh import topology
from mesh.local import LocalOptions, LocalRun
from mesh.processes import port_in_use


def free_block(size: int) -> int:
    """The first port of ``size`` consecutive free ports."""
    for _ in range(200):
        base = random.randrange(20000, 60000 - size)
        if not any(port_in_use(p) for p in range(base, base + size)):
            return base
    raise RuntimeError("no free block of ports")


def port_plan() -> dict[str, int]:
    """Every port a local run needs, from one block checked free as a whole (separately chosen
    free ports could land inside the sidecars' block)."""
    topo = topology.load()
    sidecars = 10 * (sum(s.replicas for s in topo.services.values()) + 1)
    base = free_block(sidecars + 4 + len(topo.services))
    extra = iter(range(base + sidecars, base + sidecars + 4 + len(topo.services)))
    plan = {"base": base, "public": next(extra), "redis": next(extra), "otlp": next(extra)}
    plan["traces"] = next(extra)
    plan.update({f"app:{name}": next(extra) for name in topo.services})
    return plan


def local_options(run_dir: Path, mesh: bool = True, **kw: object) -> LocalOptions:
    plan = port_plan()
    return LocalOptions(
        run_dir=run_dir,
        mesh=mesh,
        public_port=plan["public"],
        redis_port=plan["redis"],
        base_port=plan["base"],
        ports={k[4:]: v for k, v in plan.items() if k.startswith("app:")},
        env={"PAYMENT_LATENCY_MS": "0"},
        tracing=True,
        otlp_port=plan["otlp"],
        traces_port=plan["traces"],
        **kw,  # type: ignore[arg-type]
    )


@pytest.fixture(scope="session")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRun]:
    """The whole mesh: apps, sidecars, ingress, redis."""
    run = LocalRun(topology.load(), local_options(tmp_path_factory.mktemp("mesh")))
    run.start()
    yield run
    run.stop()


@pytest.fixture(scope="session")
def direct_shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRun]:
    """The same services talking directly (``boutique up --no-mesh``)."""
    run = LocalRun(topology.load(), local_options(tmp_path_factory.mktemp("direct"), mesh=False))
    run.start()
    yield run
    run.stop()
