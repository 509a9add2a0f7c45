"""Contract checks: every response a test sees must be one the service's OpenAPI document promises.

``ContractClient`` wraps aiohttp's test client. After each request it finds the documented
operation, checks that the status code is documented, and validates the JSON body against the
schema documented for that status and content type (OpenAPI 3.1 schemas are JSON Schema 2020-12).
"""

from __future__ import annotations

import json
import re
from typing import Any

from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

DOC_URI = "urn:openapi"


class ContractError(AssertionError):
    pass


class Contract:
    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.registry = Registry().with_resource(
            DOC_URI, Resource.from_contents(doc, default_specification=DRAFT202012)
        )
        self._paths = [
            (re.compile("^" + re.sub(r"\{[^/]+\}", "[^/]+", p) + "$"), p)
            for p in sorted(doc.get("paths", {}), key=lambda p: p.count("{"))
        ]

    def operation(self, method: str, path: str) -> tuple[str, dict[str, Any]]:
        for pattern, template in self._paths:
            if pattern.match(path):
                op = self.doc["paths"][template].get(method.lower())
                if op is None:
                    raise ContractError(f"{method} {template} is not documented")
                return template, op
        raise ContractError(f"no documented path matches {path}")

    def check(self, method: str, path: str, status: int, content_type: str, body: bytes) -> None:
        template, op = self.operation(method, path)
        responses = op.get("responses", {})
        spec = (
            responses.get(str(status))
            or responses.get(f"{str(status)[0]}XX")
            or responses.get("default")
        )
        where = f"{method} {template} -> {status}"
        if spec is None:
            raise ContractError(f"{where}: status not documented (has {sorted(responses)})")
        spec = self._deref(spec)
        content = spec.get("content")
        if not content:
            if body:
                raise ContractError(f"{where}: documented without a body, got {body[:200]!r}")
            return
        media = content.get(content_type)
        if media is None:
            raise ContractError(f"{where}: content type {content_type} not documented")
        schema = media.get("schema")
        if schema is None or not content_type.endswith("json"):
            return
        pointer = self._pointer(template, method, status, spec, content_type)
        validator = Draft202012Validator({"$ref": pointer}, registry=self.registry)
        errors = sorted(validator.iter_errors(json.loads(body)), key=lambda e: e.path)
        if errors:
            details = "; ".join(
                f"{'/'.join(map(str, e.absolute_path)) or '(body)'}: {e.message}" for e in errors
            )
            raise ContractError(f"{where}: body does not match the documented schema: {details}")

    def _deref(self, node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            node = self._resolve(node["$ref"])
        return node

    def _resolve(self, ref: str) -> dict[str, Any]:
        node: Any = self.doc
        for part in ref.lstrip("#/").split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    def _pointer(
        self, template: str, method: str, status: int, spec: dict[str, Any], ctype: str
    ) -> str:
        # Point at the schema inside the document so that its own $refs resolve.
        responses = self.doc["paths"][template][method.lower()]["responses"]
        key = next(k for k in (str(status), f"{str(status)[0]}XX", "default") if k in responses)
        base = responses[key]
        if "$ref" in base:
            prefix = base["$ref"]
            while "$ref" in self._resolve(prefix):
                prefix = self._resolve(prefix)["$ref"]
        else:
            prefix = "#/paths/" + _esc(template) + f"/{method.lower()}/responses/{key}"
        return f"{DOC_URI}{prefix}/content/{_esc(ctype)}/schema"


def _esc(part: str) -> str:
    return part.replace("~", "~0").replace("/", "~1")


class ContractClient:
    """Like ``TestClient``, but every response is checked against the service's contract."""

    def __init__(self, client: TestClient, doc: dict[str, Any]) -> None:
        self.client = client
        self.contract = Contract(doc)
        self.app = client.app

    async def request(self, method: str, path: str, **kwargs: Any) -> ClientResponse:
        resp = await self.client.request(method, path, **kwargs)
        body = await resp.read()
        ctype = resp.headers.get("Content-Type", "").split(";")[0].strip()
        self.contract.check(method, resp.url.path, resp.status, ctype, body)
        return resp

    async def get(self, path: str, **kw: Any) -> ClientResponse:
        return await self.request("GET", path, **kw)

    async def post(self, path: str, **kw: Any) -> ClientResponse:
        return await self.request("POST", path, **kw)

    async def put(self, path: str, **kw: Any) -> ClientResponse:
        return await self.request("PUT", path, **kw)

    async def delete(self, path: str, **kw: Any) -> ClientResponse:
        return await self.request("DELETE", path, **kw)
