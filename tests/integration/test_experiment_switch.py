"""`boutique experiment apply` and `clear` on the real local mesh: live, and clean afterwards."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import pytest

from boutique import cli
from mesh.experiments import faults
from mesh.experiments.targets import local_proxies
from mesh.local import LocalRun

pytestmark = pytest.mark.integration

PRODUCTS_DOWN = """\
description: Products is down.
teaches: What the shop shows when the catalog cannot be read.
destination: products
fault:
  abort: {percentage: {value: 100}, httpStatus: 503}
phases: {steady: 1s, fault: 1s, recovery: 1s}
hypotheses: [products error rate > 50% during fault]
"""


def status(url: str) -> int:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def where(shop: LocalRun) -> list[str]:
    o = shop.options
    return ["--port", str(o.public_port), "--base-port", str(o.base_port), "--run-dir",
            str(o.run_dir)]  # fmt: skip


def test_apply_switches_a_fault_on_live_and_clear_leaves_the_runtime_clean(
    shop: LocalRun, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "products-down.yaml"
    path.write_text(PRODUCTS_DOWN)
    proxies = local_proxies(shop)
    pids = [c.proc.pid for c in shop.supervisor.children if c.proc]
    try:
        assert cli.main(["experiment", "apply", str(path), *where(shop)]) == 0
        assert "switched on in products-0, products-1" in capsys.readouterr().out
        assert status(shop.public_url + "/api/products") == 503
        assert set(faults.active(proxies)) == {"products-0", "products-1"}
    finally:
        assert cli.main(["experiment", "clear", *where(shop)]) == 0
    assert "products-0: cleared fault.http.abort.abort_percent" in capsys.readouterr().out
    assert faults.active(proxies) == {}
    assert status(shop.public_url + "/api/products") == 200
    assert [c.proc.pid for c in shop.supervisor.children if c.proc] == pids  # nothing restarted


def test_apply_without_a_running_mesh_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    from tests.integration.conftest import free_block

    code = cli.main(["experiment", "clear", "--base-port", str(free_block(200))])
    assert code == 1
    assert "no local mesh runs" in capsys.readouterr().err
