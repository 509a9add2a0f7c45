"""The user token: a short-lived ES256 JWT for the signed-in user, signed for every request.

The signing key is minted at each start (``mesh/keys.py``) and given to the gateway alone
(``USER_TOKEN_KEY_FILE``); the sidecars verify tokens with its public half and hand the callee
the verified subject. Without a key (no mesh, unit tests) no token is made: the user id then
travels as the bare ``X-User-Id`` header, as before.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import jwt
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from services import kit

KEY_ID = "boutique-user-token"


@dataclass(frozen=True)
class TokenSigner:
    key: ec.EllipticCurvePrivateKey
    issuer: str
    audience: str
    ttl_s: int

    def sign(self, user_id: str) -> str:
        now = int(time.time())
        claims = {
            "sub": user_id,
            "iss": self.issuer,
            "aud": self.audience,
            "iat": now,
            "exp": now + self.ttl_s,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self.key, algorithm="ES256", headers={"kid": KEY_ID})


SIGNER: web.AppKey[TokenSigner | None] = web.AppKey("token_signer")


def signer_from(settings: kit.Settings) -> TokenSigner | None:
    """``USER_TOKEN_KEY_FILE`` (PEM), ``USER_TOKEN_ISSUER``, ``_AUDIENCE``, ``_TTL_SECONDS``."""
    path = settings.get("USER_TOKEN_KEY_FILE")
    if not path:
        return None
    key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("USER_TOKEN_KEY_FILE must hold an EC (P-256) private key")
    ttl = settings.get("USER_TOKEN_TTL_SECONDS", "300")
    if not ttl.isdigit() or int(ttl) < 1:
        raise ValueError(f"USER_TOKEN_TTL_SECONDS must be a positive integer, not {ttl!r}")
    return TokenSigner(
        key=key,
        issuer=settings.get("USER_TOKEN_ISSUER", "boutique.local/gateway"),
        audience=settings.get("USER_TOKEN_AUDIENCE", "boutique"),
        ttl_s=int(ttl),
    )


def act_for(request: web.Request, user_id: str) -> None:
    """Calls made for this request carry a fresh token naming ``user_id``."""
    signer = request.app[SIGNER]
    if signer is not None:
        kit.set_user_token(signer.sign(user_id))
