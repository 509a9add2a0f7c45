"""Shared fixtures: a real redis-server, and real services built in-process for unit tests."""

from __future__ import annotations

import importlib
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from aiohttp import web
from aiohttp.test_utils import TestServer

from mesh.ports import free_port
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
        ports = {peer: free_port() for peer in peers}
        urls = ",".join(f"{peer}=http://127.0.0.1:{port}" for peer, port in ports.items())
        for peer, port in ports.items():
            settings = service_settings(peer, tmp_path, clean_redis, PEER_URLS=urls, **env)
            server = TestServer(build_app(peer, settings), port=port)
            await server.start_server()
            servers.append(server)
        app = build_app(name, service_settings(name, tmp_path, clean_redis, PEER_URLS=urls, **env))
        client = await aiohttp_client(app)
        return ContractClient(client, app[OPENAPI])

    yield factory
    for server in servers:
        await server.close()
