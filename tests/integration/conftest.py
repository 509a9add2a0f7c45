"""The real local shop: redis-server and every service as processes, on free ports."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mesh import topology
from mesh.local import LocalOptions, LocalRun
from tests.conftest import free_port


def local_options(run_dir: Path, **kw: object) -> LocalOptions:
    topo = topology.load()
    return LocalOptions(
        run_dir=run_dir,
        public_port=free_port(),
        redis_port=free_port(),
        ports={name: free_port() for name in topo.services},
        env={"PAYMENT_LATENCY_MS": "0"},
        **kw,  # type: ignore[arg-type]
    )


@pytest.fixture(scope="session")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRun]:
    run = LocalRun(topology.load(), local_options(tmp_path_factory.mktemp("shop")))
    run.start()
    yield run
    run.stop()
