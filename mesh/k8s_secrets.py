"""``make k8s-secrets``: mint the secrets of one Kubernetes install and apply them.

What ``istio/`` cannot hold, because it is per install and (but for the public key) secret:

- ``user-token-key``: the user-token signing key (ES256), mounted into the signer alone;
- ``redis-acl``: Redis's ACL file (one user per service with a Redis store, only its
  ``redis_keys``, passwords stored hashed; the default user off);
- ``redis-<service>``: that service's ``REDIS_URL`` with its own password;
- the RequestAuthentication ``user-token``, carrying the key's public half (JWKS) for every
  sidecar to verify user tokens with.

The objects go to ``kubectl apply -f -`` on standard input: no secret is ever on a command line
or left in a file. An install that has them keeps them (a new key would orphan the tokens the
running gateway signs); delete the Secrets to mint anew, then restart the deployments.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from mesh import keys
from mesh import topology as topo
from mesh.render import istio_security
from mesh.render.istio_workloads import minted_secrets


def objects(topology: topo.Topology, directory: Path) -> list[dict[str, Any]]:
    """Mint into ``directory`` (0700, removed by the caller) and build the objects to apply."""
    key = keys.mint_user_token_key(directory)
    users = keys.mint_redis_users(topology, directory)
    return [
        *minted_secrets(
            topology,
            key_pem=key.private_key.read_text(),
            acl=users.acl_file.read_text(),
            passwords=users.passwords,
        ),
        istio_security.request_authentication(topology, key.jwks),
    ]


def minted(kubectl: str, namespace: str) -> bool:
    found = subprocess.run(
        [
            kubectl,
            "-n",
            namespace,
            "get",
            "secret",
            "user-token-key",
            "--ignore-not-found",
            "-o",
            "name",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return bool(found.stdout.strip())


def apply(topology: topo.Topology, kubectl: str = "kubectl") -> str:
    """Mint and apply, unless this install has its secrets already; says what it did."""
    if minted(kubectl, topology.namespace):
        return f"namespace {topology.namespace} has its secrets already; nothing minted"
    with tempfile.TemporaryDirectory(prefix="boutique-k8s-") as tmp:
        manifest = yaml.safe_dump_all(objects(topology, Path(tmp)), sort_keys=False)
    subprocess.run([kubectl, "apply", "-f", "-"], input=manifest, text=True, check=True)
    return f"minted and applied the secrets of namespace {topology.namespace}"


def main() -> int:
    try:
        print(apply(topo.load()))
    except (subprocess.CalledProcessError, FileNotFoundError) as exc:
        print(f"k8s-secrets: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
