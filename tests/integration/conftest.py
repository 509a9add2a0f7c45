"""The real local shop, with the mesh and without, on free ports; helpers to read Envoy admin."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from mesh import topology
from mesh.local import LocalOptions, LocalRun
from mesh.ports import PortPlan


def local_options(run_dir: Path, mesh: bool = True, **kw: object) -> LocalOptions:
    """Options on ports planned free as one block (``PortPlan.free``)."""
    plan = PortPlan.free(topology.load())
    env = {"PAYMENT_LATENCY_MS": "0"}
    return LocalOptions.planned(plan, run_dir, mesh=mesh, env=env, tracing=True, **kw)


@pytest.fixture(scope="session")
def shop() -> Iterator[LocalRun]:
    """The whole mesh: apps, sidecars, ingress, redis. Its run directory sits in a folder every
    user may pass through (pytest's own are 0700), so that a test run as another user meets the
    mesh's own permissions, not pytest's."""
    parent = Path(tempfile.mkdtemp(prefix="boutique-shop-"))
    parent.chmod(0o711)
    run = LocalRun(topology.load(), local_options(parent / "run"))
    try:
        run.start()
        yield run
    finally:
        run.stop()
        shutil.rmtree(parent, ignore_errors=True)


@pytest.fixture(scope="session")
def direct_shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRun]:
    """The same services talking directly (``boutique up --no-mesh``)."""
    run = LocalRun(topology.load(), local_options(tmp_path_factory.mktemp("direct"), mesh=False))
    run.start()
    yield run
    run.stop()
