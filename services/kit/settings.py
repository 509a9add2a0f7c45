"""Configuration from environment variables (12-factor). Nothing here knows about the mesh."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


def _peer_urls(raw: str) -> dict[str, str]:
    """Parse ``PEER_URLS="cart=http://host:port,products=http://host:port"``."""
    urls: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        name, sep, url = item.partition("=")
        if not sep or not name.strip() or not url.strip():
            raise ValueError(f"PEER_URLS entry {item!r} is not of the form name=url")
        urls[name.strip()] = url.strip().rstrip("/")
    return urls


@dataclass(frozen=True)
class Settings:
    """What one service process needs to know about its surroundings.

    - ``SERVICE_NAME``: the service's name (also its OpenTelemetry ``service.name``).
    - ``HOST`` / ``PORT``: where the app listens; or ``UNIX_SOCKET``, a socket path (then the
      app has no TCP port at all: in the local mesh only its sidecar can reach it).
    - ``DATABASE_URL``: SQLAlchemy URL; SQLite under ``BOUTIQUE_DATA_DIR`` by default.
    - ``REDIS_URL``: Redis for services that use it; or ``REDIS_URL_FILE``, a file holding it
      (compose: the URL carries the service's own Redis password, kept out of the environment).
    - ``PEER_SOCKET``: a Unix socket every peer call goes to (the sidecar's egress, in a folder
      only this app's user can open: the local mesh).
    - ``PEER_PROXY``: an HTTP proxy every peer call goes through (the sidecar's egress: compose).
    - ``PEER_URLS``: ``name=url`` pairs for calling peers directly (no mesh).
      With neither set, ``http://<peer>/`` is resolved by DNS (Kubernetes).
    - ``MAX_BODY_BYTES``: the largest request body accepted (413 above it).
    """

    service: str
    host: str = "127.0.0.1"
    port: int = 8080
    unix_socket: str | None = None
    database_url: str = ""
    redis_url: str = "redis://localhost/0"
    peer_proxy: str | None = None
    peer_socket: str | None = None
    peer_urls: dict[str, str] = field(default_factory=dict)
    max_body_bytes: int = 64 * 1024
    environ: dict[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def from_env(cls, service: str, environ: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if environ is None else environ)
        database_url = env.get("DATABASE_URL") or (
            f"sqlite+aiosqlite:///{_data_dir_from(env) / (service + '.db')}"
        )
        return cls(
            service=env.get("SERVICE_NAME", service),
            host=env.get("HOST", "127.0.0.1"),
            port=int(env.get("PORT", "8080")),
            unix_socket=env.get("UNIX_SOCKET") or None,
            database_url=database_url,
            redis_url=_redis_url(env),
            peer_proxy=env.get("PEER_PROXY") or None,
            peer_socket=env.get("PEER_SOCKET") or None,
            peer_urls=_peer_urls(env.get("PEER_URLS", "")),
            max_body_bytes=int(env.get("MAX_BODY_BYTES", str(64 * 1024))),
            environ=env,
        )

    def get(self, name: str, default: str = "") -> str:
        """A service-specific variable, e.g. ``settings.get("PAYMENT_LATENCY_MS", "0")``."""
        return self.environ.get(name, default)


def _redis_url(env: dict[str, str]) -> str:
    path = env.get("REDIS_URL_FILE")
    if path:
        return Path(path).read_text().strip()
    return env.get("REDIS_URL", "redis://localhost/0")


def _data_dir_from(env: dict[str, str]) -> Path:
    return Path(env.get("BOUTIQUE_DATA_DIR", "var")).resolve()
