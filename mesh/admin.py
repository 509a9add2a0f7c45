"""One client for Envoy's admin API, used by the runner, the benchmark, the experiments and the
tests: stats, one stat, ready, each cluster's hosts and their health, the runtime and its live
changes.

An admin is addressed by a URL: ``http://127.0.0.1:15000`` or ``unix:///run/admin.sock`` (an
admin on a Unix socket, reachable by its own user alone). :class:`Admin` is blocking (the runner,
the benchmark, the experiments); :class:`AsyncAdmin` has the same methods for asyncio code (the
tests, the benchmark's load client). Neither follows ``HTTP_PROXY``: an admin is always local.
"""

from __future__ import annotations

import http.client
import json
import socket
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

TIMEOUT_S = 10.0


class AdminError(RuntimeError):
    """The admin answered with an error status."""


@dataclass(frozen=True)
class Address:
    """Where an admin listens: ``host:port``, or the path of a Unix socket."""

    url: str
    host: str = ""
    port: int = 0
    unix: str = ""

    @classmethod
    def parse(cls, url: str) -> Address:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme == "unix" and parts.path:
            return cls(url, unix=parts.path)
        if parts.scheme == "http" and parts.hostname and parts.port:
            return cls(url, host=parts.hostname, port=parts.port)
        raise ValueError(f"an admin address is http://host:port or unix:///path, not {url!r}")


def parse_stats(text: str) -> dict[str, int]:
    """``/stats`` text (``name: value`` per line): its counters and gauges, not histograms."""
    out = {}
    for line in text.splitlines():
        name, _, value = line.partition(": ")
        if value.strip().lstrip("-").isdigit():
            out[name] = int(value)
    return out


def parse_hosts(text: str) -> dict[str, dict[str, str]]:
    """``/clusters`` text as ``{cluster: {host address: health flags}}`` (``healthy``, or
    flags like ``/failed_outlier_check``)."""
    out: dict[str, dict[str, str]] = {}
    for line in text.splitlines():
        fields = line.split("::")
        if len(fields) == 4 and fields[2] == "health_flags":
            out.setdefault(fields[0], {})[fields[1]] = fields[3]
    return out


def admin_layer(runtime: dict[str, Any]) -> dict[str, str]:
    """The keys set live (``/runtime_modify``) in ``/runtime``'s answer."""
    layers = runtime.get("layers", [])
    if "admin" not in layers:
        return {}
    at = layers.index("admin")
    out = {}
    for key, entry in runtime.get("entries", {}).items():
        values = entry.get("layer_values", [])
        if at < len(values) and values[at] != "":
            out[key] = values[at]
    return out


def _query(path: str, params: Mapping[str, object] | None) -> str:
    return (
        f"{path}?{urllib.parse.urlencode({k: str(v) for k, v in params.items()})}"
        if params
        else path
    )


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.unix_path)
        self.sock = sock


class Admin:
    """One Envoy's admin API, blocking."""

    def __init__(self, url: str, timeout_s: float = TIMEOUT_S) -> None:
        self.address = Address.parse(url)
        self.url = url
        self.timeout_s = timeout_s

    def request(
        self, path: str, params: Mapping[str, object] | None = None, method: str = "GET"
    ) -> str:
        a = self.address
        conn = (
            _UnixConnection(a.unix, self.timeout_s)
            if a.unix
            else http.client.HTTPConnection(a.host, a.port, timeout=self.timeout_s)
        )
        try:
            conn.request(method, _query(path, params))
            resp = conn.getresponse()
            text = resp.read().decode(errors="replace")
        finally:
            conn.close()
        if resp.status >= 400:
            raise AdminError(f"{self.url}{path}: {resp.status} {text.strip()[:200]}")
        return text

    def stats(self, pattern: str) -> dict[str, int]:
        """Counters and gauges whose names match the regular expression ``pattern``."""
        return parse_stats(self.request("/stats", {"filter": pattern}))

    def stat(self, name: str) -> int:
        """One counter or gauge (0 while Envoy has not made it)."""
        return self.stats(f"^{_escape(name)}$").get(name, 0)

    def ready(self) -> bool:
        """True when Envoy is up and its listeners are ready; never raises."""
        try:
            return self.request("/ready").strip() == "LIVE"
        except (OSError, AdminError, http.client.HTTPException):
            return False

    def hosts(self) -> dict[str, dict[str, str]]:
        return parse_hosts(self.request("/clusters"))

    def runtime(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.request("/runtime"))
        return data

    def admin_layer(self) -> dict[str, str]:
        return admin_layer(self.runtime())

    def runtime_modify(self, values: Mapping[str, object]) -> None:
        """Set runtime keys live; an empty value drops the key (back to the config's)."""
        self.request("/runtime_modify", values, method="POST")


class AsyncAdmin:
    """One Envoy's admin API for asyncio code; ``http``: a session to share (TCP admins only)."""

    def __init__(
        self, url: str, http: aiohttp.ClientSession | None = None, timeout_s: float = TIMEOUT_S
    ) -> None:
        self.address = Address.parse(url)
        self.url = url
        self.http = http
        self.timeout_s = timeout_s

    async def request(
        self, path: str, params: Mapping[str, object] | None = None, method: str = "GET"
    ) -> str:
        a = self.address
        base = "http://localhost" if a.unix else f"http://{a.host}:{a.port}"
        shared = self.http if self.http is not None and not a.unix else None
        session = shared or aiohttp.ClientSession(
            connector=aiohttp.UnixConnector(path=a.unix) if a.unix else None,
            timeout=aiohttp.ClientTimeout(total=self.timeout_s),
        )
        try:
            async with session.request(method, base + _query(path, params)) as resp:
                text = await resp.text(errors="replace")
                status = resp.status
        finally:
            if shared is None:
                await session.close()
        if status >= 400:
            raise AdminError(f"{self.url}{path}: {status} {text.strip()[:200]}")
        return text

    async def stats(self, pattern: str) -> dict[str, int]:
        return parse_stats(await self.request("/stats", {"filter": pattern}))

    async def stat(self, name: str) -> int:
        return (await self.stats(f"^{_escape(name)}$")).get(name, 0)

    async def ready(self) -> bool:
        try:
            return (await self.request("/ready")).strip() == "LIVE"
        except (OSError, AdminError, aiohttp.ClientError):
            return False

    async def hosts(self) -> dict[str, dict[str, str]]:
        return parse_hosts(await self.request("/clusters"))

    async def runtime(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(await self.request("/runtime"))
        return data

    async def admin_layer(self) -> dict[str, str]:
        return admin_layer(await self.runtime())

    async def runtime_modify(self, values: Mapping[str, object]) -> None:
        await self.request("/runtime_modify", values, method="POST")


def _escape(name: str) -> str:
    """A stat name as a regular expression that matches it alone."""
    return name.replace(".", r"\.")
