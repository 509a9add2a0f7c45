"""Switch an experiment's fault on and off live, through the sidecars' runtime: nothing restarts.

Every sidecar's inbound listener has a fault filter for all callers (runtime keys
``fault.http.delay.*`` and ``fault.http.abort.*``) and one per declared caller that matches the
caller's verified identity (``fault.http.from.<caller>.*``); all are off until switched on here.
Percentages are whole percents, as the rendered filters count them.

``Proxy`` is one sidecar's admin as a target sees it: the local run's admin addresses, or
``docker exec`` into a compose stack's sidecar containers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol, TypeVar

from .spec import Experiment

PREFIX = "fault.http"
T = TypeVar("T")


class Proxy(Protocol):
    name: str  # "products-0", or "ingress"
    service: str

    def runtime_modify(self, values: dict[str, str]) -> None: ...

    def admin_layer(self) -> dict[str, str]:
        """The keys set live (the runtime's admin layer)."""
        ...

    def counters(self, pattern: str) -> dict[str, int]: ...


def prefix(source: str | None) -> str:
    return f"{PREFIX}.from.{source}" if source else PREFIX


def runtime_values(exp: Experiment) -> dict[str, str]:
    """The runtime keys that switch ``exp``'s fault on in each of its destination's sidecars."""
    p = prefix(exp.source)
    values: dict[str, str] = {}
    if exp.delay:
        values[f"{p}.delay.fixed_delay_percent"] = str(round(exp.delay.percent))
        values[f"{p}.delay.fixed_duration_ms"] = str(exp.delay.fixed_delay_ms)
    if exp.abort:
        values[f"{p}.abort.abort_percent"] = str(round(exp.abort.percent))
        values[f"{p}.abort.http_status"] = str(exp.abort.http_status)
    return values


def targets(exp: Experiment, proxies: Iterable[Proxy]) -> list[Proxy]:
    return [p for p in proxies if p.service == exp.destination]


def apply(exp: Experiment, proxies: Iterable[Proxy]) -> list[str]:
    """Clear any fault, then switch ``exp``'s on; the sidecars switched, by name."""
    proxies = list(proxies)
    clear(proxies)
    hit = targets(exp, proxies)
    if not hit:
        raise RuntimeError(f"no sidecar of {exp.destination} found to switch")
    values = runtime_values(exp)
    _each(hit, lambda p: p.runtime_modify(values))
    return [p.name for p in hit]


def _each(proxies: Iterable[Proxy], do: Callable[[Proxy], T]) -> list[tuple[Proxy, T]]:
    """``do`` on every proxy at once (in compose each admin call is a ``docker exec``)."""
    proxies = list(proxies)
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(zip(proxies, pool.map(do, proxies), strict=True))


def _fault_keys(proxy: Proxy) -> dict[str, str]:
    return {k: v for k, v in proxy.admin_layer().items() if k.startswith(PREFIX)}


def active(proxies: Iterable[Proxy]) -> dict[str, dict[str, str]]:
    """The fault keys set live, per sidecar (empty when the mesh is clean)."""
    return {p.name: keys for p, keys in _each(proxies, _fault_keys) if keys}


def clear(proxies: Iterable[Proxy]) -> dict[str, dict[str, str]]:
    """Remove every fault key from every sidecar's live runtime; what was removed, per sidecar."""
    proxies = list(proxies)
    removed = active(proxies)
    on = [p for p in proxies if p.name in removed]
    _each(on, lambda p: p.runtime_modify(dict.fromkeys(removed[p.name], "")))  # empty: dropped
    return removed
