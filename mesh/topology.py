"""Load and check ``mesh/topology.yaml``: the services, their ports and who may call whom."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

DEFAULT_PATH = Path(__file__).with_name("topology.yaml")
STORES = {"sqlite", "redis"}


class TopologyError(ValueError):
    """The topology file is wrong; the message says where and how."""


@dataclass(frozen=True)
class Service:
    name: str
    port: int
    stores: tuple[str, ...]
    calls: tuple[str, ...]


@dataclass(frozen=True)
class Topology:
    trust_domain: str
    namespace: str
    ingress_port: int
    services: dict[str, Service]

    def service(self, name: str) -> Service:
        try:
            return self.services[name]
        except KeyError:
            known = ", ".join(self.services)
            raise TopologyError(f"no service {name!r} in the topology (known: {known})") from None


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML keeps the last of two equal keys silently; a topology must not."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise TopologyError(f"line {key_node.start_mark.line + 1}: {key!r} is defined twice")
        seen.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load(path: Path | str = DEFAULT_PATH) -> Topology:
    try:
        raw = yaml.load(Path(path).read_text(), Loader=_UniqueKeyLoader)  # noqa: S506
    except yaml.YAMLError as exc:
        raise TopologyError(f"{path}: not valid YAML: {exc}") from None
    try:
        return parse(raw)
    except TopologyError as exc:
        raise TopologyError(f"{path}: {exc}") from None


def parse(raw: Any) -> Topology:
    if not isinstance(raw, dict):
        raise TopologyError("the topology must be a mapping with 'mesh' and 'services'")
    mesh = _mapping(raw.get("mesh", {}), "mesh")
    ingress = _mapping(mesh.get("ingress", {}), "mesh.ingress")
    services_raw = _mapping(raw.get("services"), "services")
    if not services_raw:
        raise TopologyError("services: at least one service is needed")
    services = {name: _service(name, spec) for name, spec in services_raw.items()}
    topology = Topology(
        trust_domain=str(mesh.get("trust_domain", "boutique.local")),
        namespace=str(mesh.get("namespace", "boutique")),
        ingress_port=_port(ingress.get("port", 8080), "mesh.ingress.port"),
        services=services,
    )
    _check(topology)
    return topology


def _service(name: Any, spec: Any) -> Service:
    where = f"services.{name}"
    if not isinstance(name, str) or not name.isidentifier() or name != name.lower():
        raise TopologyError(f"{where}: a service name is lower-case letters, digits and _")
    spec = _mapping(spec, where)
    unknown = set(spec) - {"port", "stores", "calls"}
    if unknown:
        raise TopologyError(f"{where}: unknown field(s) {sorted(unknown)}")
    stores = tuple(_list(spec.get("stores", []), f"{where}.stores"))
    bad = set(stores) - STORES
    if bad:
        raise TopologyError(
            f"{where}.stores: unknown store(s) {sorted(bad)}; known {sorted(STORES)}"
        )
    calls = tuple(_list(spec.get("calls", []), f"{where}.calls"))
    if len(set(calls)) != len(calls):
        raise TopologyError(f"{where}.calls: a peer is listed twice")
    return Service(name, _port(spec.get("port"), f"{where}.port"), stores, calls)


def _check(topology: Topology) -> None:
    ports: dict[int, str] = {topology.ingress_port: "mesh.ingress.port"}
    for svc in topology.services.values():
        for peer in svc.calls:
            if peer not in topology.services:
                raise TopologyError(f"services.{svc.name}.calls: unknown peer {peer!r}")
            if peer == svc.name:
                raise TopologyError(f"services.{svc.name}.calls: a service does not call itself")
        where = f"services.{svc.name}.port"
        if svc.port in ports:
            raise TopologyError(f"{where}: port {svc.port} is already used by {ports[svc.port]}")
        ports[svc.port] = where


def _mapping(value: Any, where: str) -> dict[Any, Any]:
    if value is None:
        raise TopologyError(f"{where}: missing")
    if not isinstance(value, dict):
        raise TopologyError(f"{where}: expected a mapping, got {type(value).__name__}")
    return value


def _list(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TopologyError(f"{where}: expected a list of names")
    return value


def _port(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 65535:
        raise TopologyError(f"{where}: expected a port number 1-65535, got {value!r}")
    return value
