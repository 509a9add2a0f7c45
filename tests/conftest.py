"""Shared fixtures: a real redis-server, and real services built in-process for unit tests."""

from __future__ import annotations

import importlib
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from aiohttp import web
from aiohttp.test_utils import TestServer

from mesh.ports import HOST, free_port
from services.kit import OPENAPI, Settings
from tests.contract import ContractClient

ServiceFactory = Callable[..., Awaitable[ContractClient]]


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server for the whole test session, on a free port, nothing persisted."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed: run `make setup`")
    port = free_port()
    workdir = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail("redis-server did not start")
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def clean_redis(redis_url: str) -> str:
    redis.Redis.from_url(redis_url).flushall()
    return redis_url


_NEVER_LISTENING: list[socket.socket] = []


def held_socket() -> socket.socket:
    """A socket bound to a port of its own, to hand to a :func:`server_on` later.

    Picking a free port and binding it later races every other bind on the machine: the
    system may hand the same port to the next test client in between (seen in CI as
    EADDRINUSE). A bound socket keeps the port until its server listens on it.
    """
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, 0))
    return sock


def port_of(sock: socket.socket) -> int:
    port: int = sock.getsockname()[1]
    return port


def server_on(app: web.Application, sock: socket.socket) -> TestServer:
    """A test server that listens on ``sock`` (from :func:`held_socket`)."""
    return TestServer(app, socket_factory=lambda _host, _port, _family: sock)


def closed_port() -> int:
    """A port where nothing ever listens: connecting is refused, and for the whole session no
    other server can take it (a port merely seen free may be some other test's server later)."""
    sock = held_socket()
    _NEVER_LISTENING.append(sock)
    return port_of(sock)


def service_settings(name: str, data_dir: Path, redis_url: str, **env: str) -> Settings:
    base = {
        "BOUTIQUE_DATA_DIR": str(data_dir),
        "REDIS_URL": redis_url,
        "PAYMENT_LATENCY_MS": "0",
    }
    base.update(env)
    return Settings.from_env(name, base)


def build_app(name: str, settings: Settings) -> web.Application:
    module = importlib.import_module(f"services.{name}.app")
    return module.create_app(settings)


@pytest.fixture
async def service(
    aiohttp_client: Any, tmp_path: Path, clean_redis: str
) -> AsyncIterator[ServiceFactory]:
    """``await service("cart", peers=["products"], **env)``: a contract-checked client.

    The peers are the real services, started in-process on their own test servers; every
    started service knows every other's URL, and all share the test's data dir and Redis.
    """
    servers: list[TestServer] = []

    async def factory(name: str, peers: Iterable[str] = (), **env: str) -> ContractClient:
        socks = {peer: held_socket() for peer in peers}
        urls = ",".join(f"{peer}=http://127.0.0.1:{port_of(s)}" for peer, s in socks.items())
        for peer, sock in socks.items():
            settings = service_settings(peer, tmp_path, clean_redis, PEER_URLS=urls, **env)
            server = server_on(build_app(peer, settings), sock)
            await server.start_server()
            servers.append(server)
        app = build_app(name, service_settings(name, tmp_path, clean_redis, PEER_URLS=urls, **env))
        client = await aiohttp_client(app)
        return ContractClient(client, app[OPENAPI])

    yield factory
    for server in servers:
        await server.close()
