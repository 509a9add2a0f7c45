"""``boutique mint``: compose's one-shot identity step, like istiod's on Kubernetes.

It makes a CA and issues every workload its SPIFFE certificate, each into its own directory
(in compose: one volume per workload, mounted by that workload's sidecar only):
``<out>/<name>/root-cert.pem``, ``cert.pem`` and ``key.pem``, owned by the sidecars' user.
When every directory already holds a current set from one CA, nothing changes: a restarted
stack keeps the identities its running sidecars trust.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import tempfile
from pathlib import Path

from cryptography import x509

from .ca import LocalCA
from .topology import Topology

SIDECAR_UID = 1337  # as Istio's proxy: apps run as another user and cannot read the keys
RENEW_BEFORE = dt.timedelta(hours=1)


def workloads(topology: Topology) -> list[str]:
    return [*topology.services, "ingress"]


def current(out: Path, names: list[str]) -> bool:
    """True when every name has a certificate from one CA, valid for another hour at least."""
    roots = set()
    soon = dt.datetime.now(dt.UTC) + RENEW_BEFORE
    for name in names:
        folder = out / name
        try:
            roots.add((folder / "root-cert.pem").read_bytes())
            cert = x509.load_pem_x509_certificate((folder / "cert.pem").read_bytes())
        except (OSError, ValueError):
            return False
        if cert.not_valid_after_utc < soon or not (folder / "key.pem").exists():
            return False
    return len(roots) == 1


def mint(
    topology: Topology,
    out: Path,
    names: list[str] | None = None,
    owner: int | None = None,
    lifetime: dt.timedelta = dt.timedelta(days=30),
) -> bool:
    """Write a fresh set unless a current one is there; True when it wrote one."""
    names = names or workloads(topology)
    if current(out, names):
        return False
    with tempfile.TemporaryDirectory() as tmp:
        ca = LocalCA(Path(tmp), topology.trust_domain, lifetime)
        for name in names:
            identity = ca.issue(topology.spiffe_id(name), name)
            folder = out / name
            folder.mkdir(parents=True, exist_ok=True)
            files = {"root-cert.pem": ca.root, "cert.pem": identity.cert, "key.pem": identity.key}
            for target, source in files.items():
                path = folder / target
                path.unlink(missing_ok=True)
                shutil.copyfile(source, path)
                path.chmod(0o400 if target == "key.pem" else 0o444)
                if owner is not None:
                    os.chown(path, owner, owner)
    return True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="/mesh", help="one directory per workload under here")
    parser.add_argument(
        "--owner", type=int, default=SIDECAR_UID, help=f"the files' owner ({SIDECAR_UID})"
    )
    parser.add_argument("--days", type=int, default=30, help="certificate lifetime (30)")
    parser.add_argument("names", nargs="*", help="workloads (default: every service, ingress)")


def main(args: argparse.Namespace, topology: Topology) -> int:
    names = args.names or workloads(topology)
    unknown = sorted(set(names) - set(workloads(topology)))
    if unknown:
        print(f"boutique mint: unknown workloads {', '.join(unknown)}")
        return 2
    owner = args.owner if os.geteuid() == 0 else None
    wrote = mint(topology, Path(args.out), names, owner, dt.timedelta(days=args.days))
    what = "minted" if wrote else "kept the current"
    print(f"boutique mint: {what} identities for {', '.join(names)} in {args.out}")
    return 0
