"""Who may talk to whom: only the calls the topology declares, only through the sidecars."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from mesh.local import LocalRun

pytestmark = pytest.mark.integration


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def instance(shop: LocalRun, name: str):  # type: ignore[no-untyped-def]
    assert shop.placement is not None
    return next(i for i in shop.placement.all_instances() if i.name == name)


def client_tls(shop: LocalRun, identity: str) -> ssl.SSLContext:
    """A TLS client holding ``identity``'s certificate from the local CA."""
    certs = shop.run_dir / "certs"
    ctx = ssl.create_default_context(cafile=str(certs / "root-cert.pem"))
    ctx.check_hostname = False  # SPIFFE ids are URI SANs, not DNS names
    ctx.load_cert_chain(certs / f"{identity}-cert.pem", certs / f"{identity}-key.pem")
    return ctx


async def test_an_undeclared_call_is_refused_by_the_callers_sidecar(
    shop: LocalRun, http: aiohttp.ClientSession
) -> None:
    egress = aiohttp.UnixConnector(path=str(instance(shop, "cart-0").egress_socket))
    async with aiohttp.ClientSession(connector=egress) as cart:
        async with cart.get("http://payment/healthz") as resp:  # cart never calls payment
            assert resp.status == 403
            assert resp.content_type == "application/problem+json"
            assert "does not allow cart" in (await resp.json())["detail"]
        async with cart.get("http://products/healthz") as resp:  # a declared call
            assert resp.status == 200


@pytest.mark.parametrize(("caller", "status"), [("checkout", 200), ("cart", 403), ("ingress", 403)])
async def test_the_callees_sidecar_checks_the_callers_identity(
    shop: LocalRun, http: aiohttp.ClientSession, caller: str, status: int
) -> None:
    payment = instance(shop, "payment-0")
    url = f"https://127.0.0.1:{payment.inbound_port}/healthz"
    async with http.get(url, ssl=client_tls(shop, caller)) as resp:
        assert resp.status == status, f"{caller} -> payment"


async def test_a_sidecar_refuses_a_client_without_a_mesh_certificate(
    shop: LocalRun, http: aiohttp.ClientSession
) -> None:
    products = instance(shop, "products-0")
    url = f"https://127.0.0.1:{products.inbound_port}/healthz"
    no_cert = ssl.create_default_context(cafile=str(shop.run_dir / "certs" / "root-cert.pem"))
    no_cert.check_hostname = False
    with pytest.raises(aiohttp.ClientError):
        async with http.get(url, ssl=no_cert) as resp:
            await resp.read()
    with pytest.raises(aiohttp.ClientError):  # and plain HTTP gets nowhere either
        async with http.get(f"http://127.0.0.1:{products.inbound_port}/healthz") as resp:
            await resp.read()


def _listening_tcp_inodes() -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":  # LISTEN
                inodes.add(fields[9])
    return inodes


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = fd.readlink().as_posix()
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def test_no_app_can_be_reached_on_a_tcp_port(shop: LocalRun) -> None:
    listening = _listening_tcp_inodes()
    apps = [c for c in shop.supervisor.children if c.name.split("-")[0] in shop.topology.services]
    sidecars = [c for c in shop.supervisor.children if c.name.startswith("envoy:")]
    assert len(apps) == sum(s.replicas for s in shop.topology.services.values())
    for app in apps:
        assert app.proc is not None
        assert not _socket_inodes(app.proc.pid) & listening, f"{app.name} listens on TCP"
    for sidecar in sidecars:  # the check itself sees listeners where they are
        assert sidecar.proc is not None
        assert _socket_inodes(sidecar.proc.pid) & listening, f"{sidecar.name} has no listener"
