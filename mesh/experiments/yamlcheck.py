"""YAML that remembers where each value came from, so a mistake can name its file and line.

``load_marked`` answers plain dicts and lists (``Marked`` subclasses) whose ``line_of(key)`` is
the line a key was written on; duplicate keys are refused, as in the topology.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from mesh.fields import UniqueKeyLoader as _UniqueKeyLoader
from mesh.fields import construct_mapping as _construct_mapping


class SpecError(ValueError):
    """A file is wrong; the message names the file, the line and the field."""


class MarkedDict(dict):  # type: ignore[type-arg]
    line: int = 0
    lines: dict[Any, int] = {}  # replaced per instance by the loader

    def line_of(self, key: Any) -> int:
        return self.lines.get(key, self.line)


class MarkedList(list):  # type: ignore[type-arg]
    line: int = 0
    lines: list[int] = []

    def line_of(self, index: int) -> int:
        return self.lines[index] if 0 <= index < len(self.lines) else self.line


class _MarkedLoader(_UniqueKeyLoader):
    pass


def _mapping(loader: _MarkedLoader, node: yaml.MappingNode) -> MarkedDict:
    plain = _construct_mapping(loader, node)  # refuses a key written twice
    out = MarkedDict(plain)
    out.line = node.start_mark.line + 1
    out.lines = {}
    for key_node, _ in node.value:
        out.lines[loader.construct_object(key_node)] = key_node.start_mark.line + 1
    return out


def _sequence(loader: _MarkedLoader, node: yaml.SequenceNode) -> MarkedList:
    out = MarkedList(loader.construct_sequence(node, deep=True))
    out.line = node.start_mark.line + 1
    out.lines = [item.start_mark.line + 1 for item in node.value]
    return out


_MarkedLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)
_MarkedLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _sequence)


def load_marked(path: Path) -> Any:
    """The file's YAML with line marks; a SpecError names the file (and line) when it is not."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise SpecError(f"{path}: cannot be read: {exc.strerror}") from None
    try:
        return yaml.load(text, Loader=_MarkedLoader)  # noqa: S506
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark else ""
        raise SpecError(f"{path}{line}: not valid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML: {exc}") from None
    except ValueError as exc:  # a key defined twice (the topology's check)
        raise SpecError(f"{path}: {exc}") from None


class Where:
    """A place in a file: ``Where(path, doc).at("fault", node).fail("...")``."""

    def __init__(self, path: Path, field: str = "", line: int = 1) -> None:
        self.path, self.field, self.line = path, field, line

    def at(self, key: Any, parent: Any) -> Where:
        line = parent.line_of(key) if isinstance(parent, MarkedDict | MarkedList) else self.line
        if isinstance(key, int):
            field = f"{self.field}[{key}]"
        else:
            field = f"{self.field}.{key}" if self.field else str(key)
        return Where(self.path, field, line)

    def error(self, message: str) -> SpecError:
        field = f" {self.field}:" if self.field else ""
        return SpecError(f"{self.path}:{self.line}:{field} {message}")
