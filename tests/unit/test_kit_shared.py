"""What the services share, defined once in the kit: the OpenAPI components, keyed writes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import Column, Integer, MetaData, String, Table, select
from sqlalchemy.engine import Connection

from mesh import topology
from services import kit
from services.kit import openapi
from services.kit.keys import OPENAPI_TEXT
from services.kit.transactions import insert_new, once
from tests.conftest import build_app, service_settings

SERVICES = sorted(name for name in topology.load().services if name != "frontend")
KIT = Path(openapi.__file__).with_name("components.yaml")


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [r for v in node.values() for r in refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in refs(v)]
    return []


@pytest.mark.parametrize("name", SERVICES)
def test_each_service_serves_one_document_with_the_shared_components(
    name: str, tmp_path: Path
) -> None:
    source = (Path(kit.__file__).parent.parent / name / "openapi.yaml").read_text()
    assert "../kit/components.yaml#/components/schemas/Problem" in source
    app = build_app(name, service_settings(name, tmp_path, "redis://localhost/0"))
    doc = app[kit.OPENAPI]
    assert all(ref.startswith("#/") for ref in refs(doc)), "a reference left to another file"
    shared = yaml.safe_load(KIT.read_text())["components"]
    assert doc["components"]["schemas"]["Problem"] == shared["schemas"]["Problem"]
    assert doc["paths"]["/healthz"]["get"]["operationId"] == "healthz"
    # the YAML served is the same document
    assert yaml.safe_load(app[OPENAPI_TEXT]) == json.loads(json.dumps(doc))


def test_a_local_component_may_not_shadow_a_shared_one(tmp_path: Path) -> None:
    (tmp_path / "kit").mkdir()
    (tmp_path / "kit" / "components.yaml").write_text(KIT.read_text())
    (tmp_path / "svc").mkdir()
    doc = tmp_path / "svc" / "openapi.yaml"
    ref = "../kit/components.yaml#/components/schemas/Problem"
    doc.write_text(
        "openapi: 3.1.0\ninfo: {title: t, version: '1'}\npaths: {}\n"
        f"components:\n  schemas:\n    Problem: {{type: object}}\n    Uses: {{$ref: '{ref}'}}\n"
    )
    with pytest.raises(openapi.BundleError, match="schemas/Problem"):
        openapi.load(doc)


def test_an_unknown_shared_component_is_named(tmp_path: Path) -> None:
    (tmp_path / "kit").mkdir()
    (tmp_path / "kit" / "components.yaml").write_text(KIT.read_text())
    doc = tmp_path / "openapi.yaml"
    doc.write_text(
        "openapi: 3.1.0\ninfo: {title: t, version: '1'}\npaths: {}\n"
        "components:\n  schemas:\n"
        "    Uses: {$ref: 'kit/components.yaml#/components/schemas/Nope'}\n"
    )
    with pytest.raises(openapi.BundleError, match="Nope"):
        openapi.load(doc)


# --- a write keyed by an idempotency key -------------------------------------------------------

things = Table(
    "things",
    MetaData(),
    Column("key", String(32), primary_key=True),
    Column("n", Integer, nullable=False),
)


@pytest.fixture
async def engine(tmp_path: Path):  # type: ignore[no-untyped-def]
    engine = kit.make_engine(f"sqlite+aiosqlite:///{tmp_path / 'once.db'}")
    async with engine.begin() as conn:
        await conn.run_sync(things.metadata.create_all)
    yield engine
    await engine.dispose()


def find(conn: Connection) -> int | None:
    return conn.execute(select(things.c.n).where(things.c.key == "k1")).scalar()


def maker(n: int):  # type: ignore[no-untyped-def]
    def make(conn: Connection) -> int | None:
        return n if insert_new(conn, things, {"key": "k1", "n": n}, ["key"]) else None

    return make


async def test_a_repeated_key_answers_the_first_result_and_writes_nothing(engine) -> None:  # type: ignore[no-untyped-def]
    assert await once(engine, find, maker(1)) == (1, True)
    assert await once(engine, find, maker(2)) == (1, False)
    async with engine.connect() as conn:
        assert (await conn.execute(select(things.c.n))).scalars().all() == [1]


async def test_a_concurrent_writer_that_won_the_race_gives_the_answer(engine) -> None:  # type: ignore[no-untyped-def]
    """A ``make`` that inserts without ``insert_new`` and loses the race to a twin breaks the
    unique key; the winner's row is its answer, and nothing else is written."""
    await once(engine, find, maker(1))

    def plain(conn: Connection) -> int:
        conn.execute(things.insert().values(key="k1", n=2))
        return 2

    assert await once(engine, find, plain) == (1, False)
    async with engine.connect() as conn:
        assert (await conn.execute(select(things.c.n))).scalars().all() == [1]
