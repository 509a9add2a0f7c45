"""Secrets a run mints at start: the user-token signing key, Redis users, the edge certificate.

Every file is written 0600 in a folder of the run directory (itself 0700); nothing outlives the
run that minted it, and nothing is ever passed on a command line.

- The user-token key (ES256): the private key goes to the signer (the gateway) alone; every
  sidecar gets the public half as a JWKS to verify tokens with.
- Redis users: one ACL user per service with a Redis store, allowed only its ``redis_keys`` and
  no dangerous or admin commands; the default user is off. The ACL file holds only the
  passwords' SHA-256; each service gets its own password in its ``REDIS_URL``.
- The edge certificate: self-signed, for ``boutique up --https`` on localhost.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ipaddress
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from .topology import Topology

KEY_ID = "boutique-user-token"
REDIS_COMMANDS = "+@all -@dangerous -@admin"


def private_dir(path: Path | None) -> None:
    """A folder only this user may open (0700), made if missing."""
    if path is not None:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.chmod(0o700)


def user_token_env(topology: Topology, directory: Path, service: str) -> dict[str, str]:
    """The signer (the gateway) alone is given the user-token key, and the token's claims."""
    token = topology.user_token
    if service != token.signer:
        return {}
    return {
        "USER_TOKEN_KEY_FILE": str(directory / "user-token-key.pem"),
        "USER_TOKEN_ISSUER": token.issuer,
        "USER_TOKEN_AUDIENCE": token.audience,
        "USER_TOKEN_TTL_SECONDS": str(token.ttl_s),
    }


def write_secret(path: Path, data: bytes | str) -> Path:
    """Write ``data`` to ``path`` readable by this user alone (created 0600, never wider)."""
    raw = data.encode() if isinstance(data, str) else data
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(raw)
    return path


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def jwks(public: ec.EllipticCurvePublicKey, kid: str = KEY_ID) -> dict[str, object]:
    """The public key as a JSON Web Key Set, as Envoy's ``jwt_authn`` and Istio read it."""
    numbers = public.public_numbers()
    return {
        "keys": [
            {
                "kty": "EC",
                "crv": "P-256",
                "alg": "ES256",
                "use": "sig",
                "kid": kid,
                "x": _b64url(numbers.x.to_bytes(32, "big")),
                "y": _b64url(numbers.y.to_bytes(32, "big")),
            }
        ]
    }


@dataclass(frozen=True)
class UserTokenKey:
    private_key: Path  # PEM, for the signer only
    jwks: str  # the public half, for every sidecar


def mint_user_token_key(directory: Path) -> UserTokenKey:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path = write_secret(directory / "user-token-key.pem", pem)
    return UserTokenKey(path, json.dumps(jwks(key.public_key())))


@dataclass(frozen=True)
class RedisUsers:
    acl_file: Path
    passwords: dict[str, str]  # service -> password (kept in memory, handed to that service)


def mint_redis_users(topology: Topology, directory: Path) -> RedisUsers:
    """One ACL user per service that keeps state in Redis; the default user cannot log in."""
    lines = ["user default off resetkeys -@all"]
    passwords: dict[str, str] = {}
    for svc in topology.services.values():
        if not svc.redis_keys:
            continue
        password = secrets.token_urlsafe(24)
        passwords[svc.name] = password
        digest = hashlib.sha256(password.encode()).hexdigest()
        keys = " ".join(f"~{pattern}" for pattern in svc.redis_keys)
        rules = f"resetkeys {keys} resetchannels {REDIS_COMMANDS}"
        lines.append(f"user {svc.name} on #{digest} {rules}")
    path = write_secret(directory / "users.acl", "\n".join(lines) + "\n")
    return RedisUsers(path, passwords)


def mint_edge_certificate(directory: Path, host: str = "localhost") -> tuple[Path, Path]:
    """A self-signed certificate for the public port (``boutique up --https``): cert and key."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    sans = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    if host not in ("localhost", "127.0.0.1"):
        sans.append(x509.DNSName(host))
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path = directory / "edge-cert.pem"
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert_path, write_secret(directory / "edge-key.pem", key_pem)
