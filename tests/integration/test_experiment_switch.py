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
from mesh.ports import free_block

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
    code = cli.main(["experiment", "clear", "--base-port", str(free_block(200))])
    assert code == 1
    assert "no local mesh runs" in capsys.readouterr().err


FROM_CART = """\
description: Products fails every request from cart.
teaches: A fault for one caller leaves the others alone.
destination: products
match:
  sourceLabels: {app: cart}
fault:
  abort: {percentage: {value: 100}, httpStatus: 503}
phases: {steady: 1s, fault: 1s, recovery: 1s}
hypotheses: [aborts injected > 0 during fault]
"""


def as_caller(shop: LocalRun, identity: str, headers: dict[str, str] | None = None) -> int:
    """GET /products on products-0's sidecar, over mTLS with ``identity``'s certificate."""
    import ssl

    certs = shop.run_dir / "certs"
    ctx = ssl.create_default_context(cafile=str(certs / "root-cert.pem"))
    ctx.check_hostname = False
    ctx.load_cert_chain(certs / f"{identity}-cert.pem", certs / f"{identity}-key.pem")
    assert shop.placement is not None
    port = next(i.inbound_port for i in shop.placement.all_instances() if i.name == "products-0")
    req = urllib.request.Request(f"https://127.0.0.1:{port}/products", headers=headers or {})
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=ctx)
    )
    try:
        with opener.open(req, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_a_fault_for_one_caller_hits_only_that_callers_verified_identity(
    shop: LocalRun, tmp_path: Path
) -> None:
    path = tmp_path / "from-cart.yaml"
    path.write_text(FROM_CART)
    proxies = local_proxies(shop)
    forged = {"x-forwarded-client-cert": f"By=x;URI={shop.topology.spiffe_id('cart')}"}
    try:
        assert cli.main(["experiment", "apply", str(path), *where(shop)]) == 0
        assert as_caller(shop, "cart") == 503  # cart's requests are aborted
        assert as_caller(shop, "gateway") == 200  # the gateway's get through
        assert as_caller(shop, "gateway", forged) == 200  # claiming to be cart changes nothing
        assert status(shop.public_url + "/api/products") == 200  # the shoppers' catalog too
    finally:
        faults.clear(proxies)
    assert faults.active(proxies) == {}
    assert as_caller(shop, "cart") == 200
