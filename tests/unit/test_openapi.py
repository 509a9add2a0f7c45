"""Every service's OpenAPI document is valid 3.1 and lists exactly the routes the app serves."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from openapi_spec_validator import validate

from mesh import topology
from services.kit import OPENAPI
from tests.conftest import build_app, service_settings

# The frontend serves the shop's pages, not an API: it has no OpenAPI document.
SERVICES = sorted(name for name in topology.load().services if name != "frontend")


def _routes(app) -> set[tuple[str, str]]:  # type: ignore[no-untyped-def]
    found = set()
    for route in app.router.routes():
        if route.method in ("HEAD", "*"):
            continue
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        if path:
            found.add((route.method.lower(), re.sub(r"\{([^}:]+)(:[^}]*)?\}", r"{\1}", path)))
    return found


@pytest.mark.parametrize("name", SERVICES)
def test_document_is_valid_openapi_31(name: str, tmp_path: Path) -> None:
    app = build_app(name, service_settings(name, tmp_path, "redis://localhost/0"))
    doc = app[OPENAPI]
    assert doc["openapi"].startswith("3.1")
    validate(doc)


@pytest.mark.parametrize("name", SERVICES)
def test_document_lists_exactly_the_served_routes(name: str, tmp_path: Path) -> None:
    app = build_app(name, service_settings(name, tmp_path, "redis://localhost/0"))
    doc = app[OPENAPI]
    documented = {
        (method, path)
        for path, ops in doc["paths"].items()
        for method in ops
        if method in ("get", "put", "post", "delete", "patch")
    }
    served = _routes(app)
    assert served - documented == set(), "served but not documented"
    assert documented - served == set(), "documented but not served"
