"""Exhaustion is an answer: a full pool, Redis down or slow, SQLite busy are 503s, never 500s.

Each case is made for real: a real redis-server with a pool of one connection, a closed port, a
real SQLite file whose write lock the test holds.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from aiohttp import web
from redis import exceptions as redis_errors
from sqlalchemy import Column, Integer, MetaData, Table, insert
from sqlalchemy import exc as sql_errors

from services.kit import (
    DB,
    REDIS,
    Problem,
    Settings,
    create_app,
    database_context,
    problem_response,
    redis_context,
)
from services.kit.exhaustion import as_problem
from tests.conftest import closed_port

metadata = MetaData()
hits = Table("hits", metadata, Column("n", Integer))


@pytest.mark.parametrize(
    ("error", "store"),
    [
        (redis_errors.MaxConnectionsError("Too many connections"), "redis"),
        (redis_errors.ConnectionError("No connection available."), "redis"),
        (redis_errors.TimeoutError("Timeout reading from socket"), "redis"),
        (redis_errors.BusyLoadingError("loading"), "redis"),
        (sql_errors.TimeoutError("QueuePool limit of size 5 overflow 10 reached"), "database"),
        (sql_errors.OperationalError("INSERT", {}, sqlite3.OperationalError("locked")), "database"),
    ],
)
def test_a_store_running_out_is_503_overloaded_with_retry_after(
    error: Exception, store: str
) -> None:
    problem = as_problem(error)
    assert problem is not None
    assert problem.status_code == 503 and problem.headers["Retry-After"] == "1"
    assert problem.details["code"] == "overloaded" and problem.details["store"] == store


@pytest.mark.parametrize(
    "error", [ValueError("bad"), KeyError("x"), sql_errors.IntegrityError("I", {}, Exception())]
)
def test_a_bug_is_not_called_exhaustion(error: Exception) -> None:
    assert as_problem(error) is None


async def _blocking(request: web.Request) -> web.Response:
    """Holds a Redis connection for a while (a slow command), like a burst of real work."""
    await request.app[REDIS].blpop(["nothing-ever"], timeout=1)
    return web.json_response({"ok": True})


async def _ping(request: web.Request) -> web.Response:
    await request.app[REDIS].ping()
    return web.json_response({"ok": True})


async def test_a_full_redis_pool_answers_503_not_500(aiohttp_client, redis_url: str) -> None:  # type: ignore[no-untyped-def]
    env = {"REDIS_URL": redis_url, "REDIS_MAX_CONNECTIONS": "1", "REDIS_POOL_WAIT_S": "0.2"}
    app = create_app(
        Settings.from_env("kit", env),
        routes=[web.get("/slow", _blocking)],
        contexts=[redis_context],
    )
    client = await aiohttp_client(app)
    answers = await asyncio.gather(*(client.get("/slow") for _ in range(6)))
    statuses = sorted(resp.status for resp in answers)
    assert statuses[0] == 200 and set(statuses) == {200, 503}  # one got the connection
    refused = next(resp for resp in answers if resp.status == 503)
    assert refused.content_type == "application/problem+json"
    assert refused.headers["Retry-After"] == "1"
    assert (await refused.json())["code"] == "overloaded"


async def test_redis_down_answers_503_overloaded(aiohttp_client) -> None:  # type: ignore[no-untyped-def]
    env = {"REDIS_URL": f"redis://127.0.0.1:{closed_port()}/0"}
    app = create_app(
        Settings.from_env("kit", env), routes=[web.get("/ping", _ping)], contexts=[redis_context]
    )
    client = await aiohttp_client(app)
    resp = await client.get("/ping")
    assert resp.status == 503 and resp.headers["Retry-After"] == "1"
    body = json.loads(await resp.text())
    assert body["code"] == "overloaded" and body["store"] == "redis"


async def _write(request: web.Request) -> web.Response:
    async with request.app[DB].begin() as conn:
        await conn.execute(insert(hits).values(n=1))
    return web.json_response({"ok": True}, status=201)


async def test_sqlite_busy_past_its_wait_answers_503_then_works_again(  # type: ignore[no-untyped-def]
    aiohttp_client, tmp_path: Path
) -> None:
    env = {"BOUTIQUE_DATA_DIR": str(tmp_path), "SQLITE_BUSY_MS": "100"}
    app = create_app(
        Settings.from_env("kit", env),
        routes=[web.post("/hits", _write)],
        contexts=[database_context(metadata)],
    )
    client = await aiohttp_client(app)
    with closing(sqlite3.connect(tmp_path / "kit.db", isolation_level=None)) as other:
        other.execute("BEGIN IMMEDIATE")  # another writer holds the lock
        busy = await client.post("/hits")
        assert busy.status == 503 and busy.headers["Retry-After"] == "1"
        body = await busy.json()
        assert body["code"] == "overloaded" and body["store"] == "database"
        assert "busy" in body["detail"]
        other.execute("ROLLBACK")
    assert (await client.post("/hits")).status == 201


def test_every_503_says_when_to_come_back() -> None:
    assert Problem(503, "down").headers["Retry-After"] == "1"
    assert Problem(503, "later", headers={"Retry-After": "5"}).headers["Retry-After"] == "5"
    assert problem_response(503, "down", code="not_ready").headers["Retry-After"] == "1"
    assert "Retry-After" not in Problem(500, "bug").headers
