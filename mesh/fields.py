"""The checked readers of the topology's YAML: each takes a value and the place it came from
(``services.cart.calls.products.timeout``) and returns it checked, or raises a
:class:`TopologyError` naming that place."""

from __future__ import annotations

import re
from typing import Any

import yaml

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m)$")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000}


class TopologyError(ValueError):
    """The topology file is wrong; the message says where and how."""


class UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML keeps the last of two equal keys silently; a topology must not."""


def construct_mapping(loader: UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise TopologyError(f"line {key_node.start_mark.line + 1}: {key!r} is defined twice")
        seen.add(key)
    return loader.construct_mapping(node)


UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


def duration(value: Any, where: str) -> int:
    """``"250ms"``, ``"2s"``, ``"1.5s"``, ``"1m"`` -> milliseconds (at least 1)."""
    match = _DURATION.match(value) if isinstance(value, str) else None
    if not match:
        raise TopologyError(f"{where}: bad duration {value!r}; write it like 250ms, 2s or 1m")
    ms = round(float(match.group(1)) * _UNIT_MS[match.group(2)])
    if ms < 1:
        raise TopologyError(f"{where}: a duration must be at least 1ms, got {value!r}")
    return ms


def known(spec: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = set(spec) - allowed
    if unknown:
        raise TopologyError(f"{where}: unknown field(s) {sorted(unknown)}; known {sorted(allowed)}")


def mapping(value: Any, where: str) -> dict[Any, Any]:
    if value is None:
        raise TopologyError(f"{where}: missing")
    if not isinstance(value, dict):
        raise TopologyError(f"{where}: expected a mapping, got {type(value).__name__}")
    return value


def list_of(value: Any, where: str, kind: type) -> list[Any]:
    if not isinstance(value, list) or not all(isinstance(v, kind) for v in value):
        raise TopologyError(f"{where}: expected a list of {kind.__name__}")
    return value


def int_in(value: Any, where: str, lo: int, hi: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise TopologyError(f"{where}: expected a whole number {lo}-{hi}, got {value!r}")
    return value


def percent(value: Any, where: str) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 100
    if not ok:
        raise TopologyError(f"{where}: expected a percentage 0-100, got {value!r}")
    return float(value)


def name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[a-z0-9][a-z0-9.-]*", value):
        raise TopologyError(f"{where}: expected a lower-case DNS name, got {value!r}")
    return value


def port(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 65535:
        raise TopologyError(f"{where}: expected a port number 1-65535, got {value!r}")
    return value
