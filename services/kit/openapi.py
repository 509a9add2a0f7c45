"""A service's OpenAPI document, bundled when the service starts.

A service's ``openapi.yaml`` refers to what every service shares in ``services/kit/components.yaml``
(``$ref: "../kit/components.yaml#/components/schemas/Problem"``). :func:`load` copies each such
component into the document, under the same name, and turns the reference into a local one
(``#/components/schemas/Problem``); a shared path item (``components/pathItems``) is written in
place. So the service serves one self-contained OpenAPI 3.1 document, as before.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml


class BundleError(ValueError):
    """A reference that cannot be bundled, or a local component that shadows a shared one."""


def load(path: Path) -> dict[str, Any]:
    """The document at ``path`` with every reference to another file bundled into it."""
    doc = _read(path)
    return _Bundler(doc, path.resolve()).bundle()


def dump(doc: dict[str, Any]) -> str:
    """The bundled document as readable YAML (multi-line descriptions as blocks)."""
    return yaml.dump(doc, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


def _read(path: Path) -> dict[str, Any]:
    data = yaml.load(path.read_text(), Loader=yaml.CSafeLoader)
    if not isinstance(data, dict):
        raise BundleError(f"{path}: not a YAML mapping")
    return data


class _Bundler:
    def __init__(self, doc: dict[str, Any], root: Path) -> None:
        self.doc = doc
        self.root = root
        self.files: dict[Path, dict[str, Any]] = {root: doc}
        self.local = {
            (kind, name) for kind, named in doc.get("components", {}).items() for name in named
        }
        self.copied: set[tuple[str, str]] = set()

    def bundle(self) -> dict[str, Any]:
        return self._walk(self.doc, self.root)

    def _walk(self, node: Any, base: Path) -> Any:
        """``node`` with its references to other files bundled (changed in place)."""
        if isinstance(node, list):
            node[:] = [self._walk(item, base) for item in node]
        elif isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                where, _, pointer = ref.partition("#")
                source = (base.parent / where).resolve() if where else base
                if source != self.root:
                    return self._import(source, pointer, ref)
            for key in list(node):  # a copied component may join a mapping being walked
                node[key] = self._walk(node[key], base)
        return node

    def _import(self, source: Path, pointer: str, ref: str) -> Any:
        parts = [p.replace("~1", "/").replace("~0", "~") for p in pointer.strip("/").split("/")]
        if len(parts) != 3 or parts[0] != "components":
            raise BundleError(f"{ref}: only a /components/<kind>/<name> can be shared")
        _, kind, name = parts
        if source not in self.files:
            self.files[source] = _read(source)
        try:
            content = self.files[source]["components"][kind][name]
        except KeyError:
            raise BundleError(f"{ref}: no such component in {source}") from None
        if kind == "pathItems":  # written in place: a path's methods stay readable as they are
            return self._walk(copy.deepcopy(content), source)
        if (kind, name) in self.local:
            raise BundleError(f"{self.root} defines {kind}/{name}, which {source.name} shares")
        local = f"#/components/{kind}/{name}"
        if (kind, name) not in self.copied:
            self.copied.add((kind, name))
            named = self.doc.setdefault("components", {}).setdefault(kind, {})
            named[name] = None  # taken before the walk, so a cycle refers to it and stops
            named[name] = self._walk(copy.deepcopy(content), source)
        return {"$ref": local}


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)
