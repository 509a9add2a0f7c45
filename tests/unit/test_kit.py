"""The shared kit: problem+json for every error, health endpoints, body validation."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp import web
from pydantic import Field

from services.kit import Body, Problem, Settings, create_app, read_json, redis_context
from tests.contract import Contract, ContractClient, ContractError

DOC = {
    "openapi": "3.1.0",
    "info": {"title": "t", "version": "1"},
    "paths": {
        "/things": {
            "post": {
                "responses": {
                    "201": {
                        "description": "made",
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/T"}}
                        },
                    },
                    "default": {"$ref": "#/components/responses/Problem"},
                }
            }
        },
        "/boom": {"get": {"responses": {"default": {"$ref": "#/components/responses/Problem"}}}},
        "/healthz": {"get": {"responses": {"200": {"description": "ok"}}}},
    },
    "components": {
        "schemas": {
            "T": {
                "type": "object",
                "required": ["n"],
                "properties": {"n": {"type": "integer"}},
            },
            "Problem": {
                "type": "object",
                "required": ["title", "status"],
                "properties": {"title": {"type": "string"}, "status": {"type": "integer"}},
            },
        },
        "responses": {
            "Problem": {
                "description": "an error",
                "content": {
                    "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
                },
            }
        },
    },
}


class Thing(Body):
    n: int = Field(ge=0, le=10)


async def make_thing(request: web.Request) -> web.Response:
    thing = await read_json(request, Thing)
    return web.json_response({"n": thing.n}, status=201)


async def boom(request: web.Request) -> web.Response:
    raise RuntimeError("secret internals")


@pytest.fixture
async def client(aiohttp_client, tmp_path: Path, tmp_path_factory):  # type: ignore[no-untyped-def]
    doc_path = tmp_path / "openapi.yaml"
    import yaml

    doc_path.write_text(yaml.safe_dump(DOC))
    settings = Settings.from_env("kit", {"MAX_BODY_BYTES": "1024"})
    app = create_app(
        settings,
        routes=[web.post("/things", make_thing), web.get("/boom", boom)],
        openapi=doc_path,
    )
    return await aiohttp_client(app)


async def test_valid_body_is_accepted(client) -> None:  # type: ignore[no-untyped-def]
    resp = await client.post("/things", json={"n": 3})
    assert resp.status == 201
    assert await resp.json() == {"n": 3}


@pytest.mark.parametrize(
    ("body", "headers", "status", "code"),
    [
        (b"{not json", {"Content-Type": "application/json"}, 400, "malformed_json"),
        (b'{"n": "3"}', {"Content-Type": "application/json"}, 422, "validation_failed"),
        (b'{"n": -1}', {"Content-Type": "application/json"}, 422, "validation_failed"),
        (b'{"n": 1, "x": 2}', {"Content-Type": "application/json"}, 422, "validation_failed"),
        (b"[]", {"Content-Type": "application/json"}, 422, "validation_failed"),
        (b'{"n": 1}', {"Content-Type": "text/plain"}, 415, "unsupported_media_type"),
    ],
)
async def test_bad_bodies_get_problem_json(client, body, headers, status, code) -> None:  # type: ignore[no-untyped-def]
    resp = await client.post("/things", data=body, headers=headers)
    assert resp.status == status
    assert resp.content_type == "application/problem+json"
    problem = await resp.json()
    assert problem["status"] == status and problem["code"] == code and problem["detail"]


async def test_oversized_body_is_413_problem(client) -> None:  # type: ignore[no-untyped-def]
    resp = await client.post(
        "/things",
        data=b'{"n": 1, "pad": "' + b"x" * 4096 + b'"}',
        headers={"Content-Type": "application/json"},
    )
    assert resp.status == 413
    assert resp.content_type == "application/problem+json"


async def test_crash_is_500_problem_without_internals(client) -> None:  # type: ignore[no-untyped-def]
    resp = await client.get("/boom")
    assert resp.status == 500
    text = await resp.text()
    assert "secret internals" not in text and "Traceback" not in text
    assert resp.content_type == "application/problem+json"


async def test_unknown_route_and_method_are_problems(client) -> None:  # type: ignore[no-untyped-def]
    resp = await client.get("/nope")
    assert resp.status == 404 and resp.content_type == "application/problem+json"
    resp = await client.delete("/things")
    assert resp.status == 405 and resp.content_type == "application/problem+json"
    assert "POST" in resp.headers["Allow"]


async def test_health_and_openapi(client) -> None:  # type: ignore[no-untyped-def]
    assert (await client.get("/healthz")).status == 200
    ready = await client.get("/readyz")
    assert ready.status == 200
    doc = await (await client.get("/openapi.json")).json()
    assert doc["openapi"] == "3.1.0"


async def test_readyz_is_503_when_redis_is_down(aiohttp_client) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import closed_port

    settings = Settings.from_env("kit", {"REDIS_URL": f"redis://127.0.0.1:{closed_port()}/0"})
    app = create_app(settings, routes=[], contexts=[redis_context])
    client = await aiohttp_client(app)
    resp = await client.get("/readyz")
    assert resp.status == 503
    body = await resp.json()
    assert body["checks"]["redis"].startswith("failing")


async def test_contract_client_rejects_undocumented_answers(client) -> None:  # type: ignore[no-untyped-def]
    checked = ContractClient(client, DOC)
    await checked.post("/things", json={"n": 1})  # documented: passes
    contract = Contract(DOC)
    with pytest.raises(ContractError, match="does not match"):
        contract.check("POST", "/things", 201, "application/json", b'{"n": "one"}')
    with pytest.raises(ContractError, match="not documented"):
        contract.check("GET", "/healthz", 418, "application/json", b"{}")
    with pytest.raises(ContractError, match="no documented path"):
        contract.check("GET", "/elsewhere", 200, "application/json", b"{}")


def test_problem_carries_code_and_extras() -> None:
    p = Problem(409, "No stock", code="out_of_stock", product_id="mug")
    assert p.details["type"].endswith("/out_of_stock") and p.details["product_id"] == "mug"
