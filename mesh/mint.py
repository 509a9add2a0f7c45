"""``boutique mint``: compose's one-shot secrets step, as istiod's and an operator's on Kubernetes.

Into one folder per volume under ``--out`` (in compose each folder is a volume, mounted by its
owner alone):
- ``<workload>/``: that sidecar's identity, ``root-cert.pem``, ``cert.pem`` and ``key.pem`` (its
  SPIFFE certificate from a fresh CA), and ``user-token.jwks``, the public key its sidecar checks
  user tokens with; owned by the sidecars' user.
- ``app-<service>/``: what the app itself holds, owned by the apps' user: ``redis-url`` (its own
  Redis user and password) and, for the token signer, ``user-token-key.pem``.
- ``redis/users.acl``: one ACL user per service (passwords as SHA-256 only), the default user
  off, and a ``healthcheck`` user that may only PING.
When every file is there and the certificates are current, nothing changes: a restarted stack
keeps the identities and passwords its running containers hold.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import tempfile
from pathlib import Path

from cryptography import x509

from . import keys
from .ca import LocalCA
from .topology import Topology

SIDECAR_UID = 1337  # as Istio's proxy: apps run as another user and cannot read the keys
APP_UID = 10001  # the Dockerfile's user
RENEW_BEFORE = dt.timedelta(hours=1)
JWKS = "user-token.jwks"
TOKEN_KEY = "user-token-key.pem"
REDIS_URL = "redis-url"
REDIS_ACL = "users.acl"
HEALTHCHECK_USER = "user healthcheck on nopass resetkeys resetchannels -@all +ping"


def workloads(topology: Topology) -> list[str]:
    return [*topology.services, "ingress"]


def app_secrets(topology: Topology) -> list[str]:
    """The services whose app holds a secret: a Redis password, or the user-token key."""
    signer = topology.user_token.signer
    return [s.name for s in topology.services.values() if s.redis_keys or s.name == signer]


def folders(topology: Topology) -> dict[str, str]:
    """Compose's volume per folder: ``mesh-cart`` -> ``cart``, ``secrets-cart`` -> ``app-cart``."""
    out = {f"mesh-{w}": w for w in workloads(topology)}
    out.update({f"secrets-{s}": f"app-{s}" for s in app_secrets(topology)})
    out["secrets-redis"] = "redis"
    return out


def _expected(topology: Topology) -> list[str]:
    files = [f"{w}/{f}" for w in workloads(topology) for f in ("key.pem", JWKS)]
    for name in app_secrets(topology):
        if topology.service(name).redis_keys:
            files.append(f"app-{name}/{REDIS_URL}")
        if name == topology.user_token.signer:
            files.append(f"app-{name}/{TOKEN_KEY}")
    return [*files, f"redis/{REDIS_ACL}"]


def current(topology: Topology, out: Path) -> bool:
    """True when every file is there and every certificate is from one CA, valid for another
    hour at least."""
    roots = set()
    soon = dt.datetime.now(dt.UTC) + RENEW_BEFORE
    for name in workloads(topology):
        try:
            roots.add((out / name / "root-cert.pem").read_bytes())
            cert = x509.load_pem_x509_certificate((out / name / "cert.pem").read_bytes())
        except (OSError, ValueError):
            return False
        if cert.not_valid_after_utc < soon:
            return False
    return len(roots) == 1 and all((out / f).exists() for f in _expected(topology))


def _put(path: Path, data: bytes, mode: int, owner: int | None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    path.write_bytes(data)
    path.chmod(mode)
    if owner is not None:
        os.chown(path, owner, owner)


def mint(
    topology: Topology,
    out: Path,
    chown: bool = False,
    lifetime: dt.timedelta = dt.timedelta(days=30),
    redis_address: str = "redis:6379",
) -> bool:
    """Write a fresh set unless a current one is there; True when it wrote one. With ``chown``
    (as root) the sidecars' files go to their user, the apps' to theirs."""
    if current(topology, out):
        return False
    sidecar, app = (SIDECAR_UID, APP_UID) if chown else (None, None)
    with tempfile.TemporaryDirectory() as tmp:
        ca = LocalCA(Path(tmp) / "ca", topology.trust_domain, lifetime)
        token = keys.mint_user_token_key(Path(tmp) / "keys")
        users = keys.mint_redis_users(topology, Path(tmp) / "redis")
        for name in workloads(topology):
            identity = ca.issue(topology.spiffe_id(name), name)
            folder = out / name
            _put(folder / "root-cert.pem", ca.root.read_bytes(), 0o444, sidecar)
            _put(folder / "cert.pem", identity.cert.read_bytes(), 0o444, sidecar)
            _put(folder / "key.pem", identity.key.read_bytes(), 0o400, sidecar)
            _put(folder / JWKS, token.jwks.encode(), 0o444, sidecar)
        for name, password in users.passwords.items():
            url = f"redis://{name}:{password}@{redis_address}/0"
            _put(out / f"app-{name}" / REDIS_URL, url.encode(), 0o400, app)
        signer = topology.user_token.signer
        if signer in topology.services:
            _put(out / f"app-{signer}" / TOKEN_KEY, token.private_key.read_bytes(), 0o400, app)
        acl = users.acl_file.read_text() + HEALTHCHECK_USER + "\n"
        _put(out / "redis" / REDIS_ACL, acl.encode(), 0o444, None)  # hashes only; Redis reads it
    return True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="/mesh", help="one folder per volume under here")
    parser.add_argument("--days", type=int, default=30, help="certificate lifetime (30)")
    parser.add_argument("--redis", default="redis:6379", help="Redis's address for the apps")


def main(args: argparse.Namespace, topology: Topology) -> int:
    chown = os.geteuid() == 0
    wrote = mint(topology, Path(args.out), chown, dt.timedelta(days=args.days), args.redis)
    what = "minted" if wrote else "kept the current"
    print(f"boutique mint: {what} identities and secrets in {args.out}")
    return 0
