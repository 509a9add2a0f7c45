"""docker compose, for real: the stack built offline and run on Debian's dockerd + docker-compose.

A Docker daemon of the test's own (state in .cache/dockerd-test/, so a re-run reuses its image
layers; no iptables, no IP forwarding, no default bridge; its containers and volumes removed and
the daemon stopped by PID at the end, also on failure) runs
docker-compose.yml with containers/offline.yml: no image can be pulled here, so the base image
is built with mmdebstrap and the wheels on the host (both cached in .cache/), and the project's
own trace store stands in for Jaeger and an Envoy forwarder for the Collector (said in
containers/offline.yml). The published ports are free ones, never the user's 8080.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import platform
import shutil
import sys
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest

from containers import images
from containers.daemon import PORTS, REPO, Daemon, DockerError, Stack
from mesh.processes import port_in_use
from tests.integration.test_purchase import CARD, sign_in
from tests.integration.test_traces import CHECKOUT_PATH, Trace, is_network, kind, trace_id_of


def _why_not() -> str | None:
    if platform.system() != "Linux":
        return "dockerd runs on Linux only"
    if os.geteuid() != 0:
        return "starting a Docker daemon needs root"
    missing = [b for b in ("dockerd", "docker-compose", "mmdebstrap") if not shutil.which(b)]
    if missing:
        return f"not installed: {', '.join(missing)} (`make setup` installs them)"
    return None


pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(_why_not() is not None, reason=_why_not() or ""),
]

# A caller inside a pod, by a small script run with the pod's python3 (the image has no curl).
THROUGH_EGRESS = """
import sys, urllib.request, urllib.error
proxy = urllib.request.ProxyHandler({"http": "http://127.0.0.1:15001"})
try:
    print(urllib.request.build_opener(proxy).open(sys.argv[1], timeout=10).status)
except urllib.error.HTTPError as exc:
    print(exc.code, exc.read().decode())
"""
WITH_IDENTITY = """
import http.client, ssl, sys
ctx = ssl.create_default_context(cafile="/etc/mesh/root-cert.pem")
ctx.check_hostname = False  # SPIFFE ids are URI SANs; the callee's id is not the point here
ctx.load_cert_chain("/etc/mesh/cert.pem", "/etc/mesh/key.pem")
conn = http.client.HTTPSConnection(sys.argv[1], int(sys.argv[2]), context=ctx, timeout=10)
headers = dict([sys.argv[4].split(": ", 1)]) if len(sys.argv) > 4 else {}
conn.request("GET", sys.argv[3], headers=headers)
resp = conn.getresponse()
print(resp.status, resp.read().decode())
"""
CONNECT = """
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5).close()
    print("connected")
except OSError as exc:
    print("refused", exc)
"""
PLAIN_HTTP = """
import http.client, sys
try:
    conn = http.client.HTTPConnection(sys.argv[1], int(sys.argv[2]), timeout=10)
    conn.request("GET", "/products")
    print(conn.getresponse().status)
except (OSError, http.client.HTTPException) as exc:
    print("failed", type(exc).__name__)
"""

REDIS_AS_CART = """
import redis
own = redis.Redis.from_url(open("/run/secrets/boutique/redis-url").read().strip())
own.set("cart:compose-probe", "1")
print("own:", own.get("cart:compose-probe").decode())
anonymous = redis.Redis("redis")
for name, client, key in (("others", own, "session:x"), ("anonymous", anonymous, "cart:x")):
    try:
        client.get(key)
        print(name + ": read")
    except redis.exceptions.RedisError as exc:
        print(name + ": " + type(exc).__name__)
"""


def _free_ports() -> dict[str, int]:
    import random

    ports: dict[str, int] = {}
    while len(ports) < len(PORTS):
        port = random.randrange(20000, 60000)
        if port not in ports.values() and not port_in_use(port):
            ports[list(PORTS)[len(ports)]] = port
    return ports


def _serving(url: str, deadline_s: float = 60.0) -> None:
    """Healthy containers, and then every sidecar seeing its app ready: the shop answers."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    end = time.monotonic() + deadline_s
    while True:
        try:
            with opener.open(url, timeout=5) as resp:
                if resp.status == 200:
                    return
        except OSError:
            if time.monotonic() > end:
                raise
        time.sleep(0.5)


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    root = REPO / ".cache" / "dockerd-test"
    root.mkdir(parents=True, exist_ok=True)
    lock = (root / "lock").open("w")
    fcntl.flock(lock, fcntl.LOCK_EX)  # one live test per checkout at a time
    daemon = Daemon(root)
    running = Stack(daemon, project=f"boutique{os.getpid()}", ports=_free_ports())
    t0 = time.monotonic()
    try:
        daemon.start()
        images.build_app(daemon, log=root / "build.log")
        built = time.monotonic()
        try:
            running.up()
        except DockerError as exc:
            pytest.fail(f"{exc}\n{running.compose('ps')}\n{running.compose('logs', '--tail=20')}")
        _serving(running.url() + "/api/products")
        print(
            f"compose live: built in {built - t0:.0f}s, up in {time.monotonic() - built:.0f}s",
            file=sys.stderr,
        )
        yield running
    finally:
        try:
            if daemon.alive():
                running.down()
        finally:
            daemon.stop()
            lock.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def _until_served(send: Any, deadline_s: float = 60.0) -> aiohttp.ClientResponse:
    """A request repeated while the mesh answers 502/503/504: on a loaded machine the first calls
    through cold pods may time out (every request here is a PUT or carries an Idempotency-Key)."""
    end = asyncio.get_running_loop().time() + deadline_s
    while True:
        resp = await send()
        await resp.read()
        if resp.status not in (502, 503, 504) or asyncio.get_running_loop().time() > end:
            return resp
        await asyncio.sleep(0.5)


async def buy(http: aiohttp.ClientSession, stack: Stack) -> aiohttp.ClientResponse:
    api = stack.url() + "/api"
    auth = await sign_in(http, api)
    item = f"{api}/cart/items/salt-pepper-set"
    resp = await _until_served(lambda: http.put(item, json={"quantity": 1}, headers=auth))
    assert resp.status == 200, await resp.text()
    key = uuid.uuid4().hex
    return await _until_served(
        lambda: http.post(
            f"{api}/checkout", json={"card": CARD}, headers={**auth, "Idempotency-Key": key}
        )
    )


async def test_a_shopper_buys_through_the_ingress_on_loopback(
    stack: Stack, http: aiohttp.ClientSession
) -> None:
    resp = await buy(http, stack)
    assert resp.status == 201, await resp.text()
    order = await resp.json()
    assert order["status"] == "paid" and order["total_cents"] > 0
    async with http.get(stack.url() + "/") as page:  # the shop's pages, through the same port
        assert page.status == 200 and "text/html" in page.headers["content-type"]


def test_callers_the_topology_does_not_declare_are_refused(stack: Stack) -> None:
    # orders calls nobody: its own sidecar refuses a call to cart with a problem document
    out = stack.exec("orders-0", "python3", "-c", THROUGH_EGRESS, "http://cart/cart")
    assert out.startswith("403") and "does not allow orders" in out, out
    # with orders' own certificate, straight at cart's sidecar: cart's RBAC says no
    out = stack.exec("orders-0-sidecar", "python3", "-c", WITH_IDENTITY, "cart-0", "15006", "/")
    assert out.startswith("403"), out
    # ...while a declared caller (cart -> products) gets through the same way (once products-0's
    # sidecar sees its app ready: on a loaded machine a readiness check may fail for a while)
    argv = ("python3", "-c", WITH_IDENTITY, "products-0", "15006", "/products")
    out = _exec_until(stack, "cart-0-sidecar", argv, lambda out: out.startswith("200"))
    assert out.startswith("200"), out
    # ...but only on the operations the topology lists for that call (cart may list products)
    argv = ("python3", "-c", WITH_IDENTITY, "products-0", "15006", "/products/salt-pepper-set")
    out = stack.exec("cart-0-sidecar", *argv)
    assert out.startswith("403"), out
    # a user-scoped service wants the user's signed token, not a bare user id from a caller
    argv = ("python3", "-c", WITH_IDENTITY, "cart-0", "15006", "/cart", "X-User-Id: u_someone")
    out = stack.exec("gateway-0-sidecar", *argv)
    assert out[:3] in ("401", "403"), out
    # no certificate at all: the inbound listener speaks only mTLS
    out = stack.exec("orders-0", "python3", "-c", PLAIN_HTTP, "products-0", "15006")
    assert out.startswith("failed"), out
    # another pod's app, egress and admin are on that pod's loopback: not reachable
    for port in ("8102", "15001", "15000"):
        out = stack.exec("orders-0", "python3", "-c", CONNECT, "products-0", port)
        assert out.startswith("refused"), f"products-0:{port} {out}"


def test_each_service_reaches_only_its_own_redis_keys(stack: Stack) -> None:
    out = stack.exec("cart-0", "python3", "-c", REDIS_AS_CART)
    assert "own: 1" in out, out
    assert "others: NoPermissionError" in out, out  # cart's user may not read sessions
    assert "anonymous: read" not in out and "anonymous: " in out, out  # the default user is off


def _exec_until(
    stack: Stack, service: str, argv: tuple[str, ...], done: Any, deadline_s: float = 30.0
) -> str:
    end = time.monotonic() + deadline_s
    out = stack.exec(service, *argv)
    while not done(out) and time.monotonic() < end:
        time.sleep(0.5)
        out = stack.exec(service, *argv)
    return out


async def _status_until(
    http: aiohttp.ClientSession, url: str, wanted: int, deadline_s: float = 30.0
) -> int:
    status = 0
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    while loop.time() < end:
        async with http.get(url) as resp:
            status = resp.status
            await resp.read()
        if status == wanted:
            return status
        await asyncio.sleep(0.3)
    return status


async def test_a_fault_switched_on_through_the_sidecars_admin_reaches_the_shoppers(
    stack: Stack, http: aiohttp.ClientSession
) -> None:
    products = stack.url() + "/api/products"
    pods = ["products-0", "products-1"]
    assert await _status_until(http, products, 200) == 200
    try:
        for pod in pods:
            stack.admin(pod, "/runtime_modify?fault.http.abort.abort_percent=100", "POST")
        assert await _status_until(http, products, 503) == 503
    finally:
        for pod in pods:
            stack.admin(pod, "/runtime_modify?fault.http.abort.abort_percent=0", "POST")
    assert await _status_until(http, products, 200) == 200
    stats = stack.admin("products-0", "/stats?filter=fault.aborts_injected")
    assert any(int(line.rsplit(" ", 1)[1]) > 0 for line in stats.splitlines()), stats


async def _whole_trace(http: aiohttp.ClientSession, url: str, services: set[str]) -> Trace:
    got: dict[str, Any] = {}
    loop = asyncio.get_running_loop()
    end = loop.time() + 30
    while loop.time() < end:
        async with http.get(url) as resp:
            if resp.status == 200:
                got = (await resp.json())["data"][0]
                seen = {p["serviceName"] for p in got["processes"].values()}
                apps = {s for s in services if _has_app_span(got, s)}
                t = Trace(got)
                orphans = [s for s in t.spans if s["references"] and t.parent(s) is None]
                if services <= seen and apps == services - {"ingress"} and not orphans:
                    return t  # spans arrive in batches: whole once no parent is missing
        await asyncio.sleep(0.5)
    seen = sorted({p["serviceName"] for p in got.get("processes", {}).values()})
    pytest.fail(f"{url}: incomplete, only {seen}")


def _has_app_span(data: dict[str, Any], service: str) -> bool:
    pids = {pid for pid, p in data["processes"].items() if p["serviceName"] == service}
    return any(
        s["processID"] in pids and all(t.get("value") != "proxy" for t in s["tags"])
        for s in data["spans"]
    )


async def test_a_checkouts_trace_comes_back_whole_through_the_jaeger_api(
    stack: Stack, http: aiohttp.ClientSession
) -> None:
    resp = await buy(http, stack)
    assert resp.status == 201
    url = f"{stack.url('BOUTIQUE_JAEGER_PORT')}/api/traces/{trace_id_of(resp)}"
    t = await _whole_trace(http, url, {"ingress", *CHECKOUT_PATH})
    roots = [s for s in t.spans if not s["references"]]
    assert len(roots) == 1 and roots[0]["service"] == "ingress", roots
    for service in CHECKOUT_PATH:
        sidecar_spans = t.find(service, f"ingress {service}")
        assert sidecar_spans and all(is_network(s) for s in sidecar_spans), service
        apps = [c for s in sidecar_spans for c in t.children(s) if not is_network(c)]
        assert apps and all(a["service"] == service and kind(a) == "server" for a in apps)
