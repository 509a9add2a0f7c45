"""The user token: a short-lived ES256 JWT naming the signed-in user, reused for many requests.

The signing key is minted at each start (``mesh/keys.py``) and given to the gateway alone
(``USER_TOKEN_KEY_FILE``); the sidecars verify tokens with its public half and hand the callee
the verified subject. Without a key (no mesh, unit tests) no token is made: the user id then
travels as the bare ``X-User-Id`` header, as before.

One token per user, not per request (issue 15): :class:`UserTokens` keeps each user's signed
token and signs a new one only when less than half its life (``USER_TOKEN_TTL_SECONDS``, 300 s)
is left, so every request of that user in the meantime carries the same token, and the
sidecars' verified-token cache (``jwt_cache_config``) checks its signature once instead of on
every hop. What changes: a token still lives 300 s at most and names one user; it now serves
many requests of its user (and all of that user's sessions), and its ``jti`` names the token,
not a request. What does not: the session is checked first (``auth.require_user``), so a
signed-out or unknown session gets 401 before any token is looked up or sent.
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import jwt
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from services import kit

KEY_ID = "boutique-user-token"
KEPT_USERS = 4096  # users whose token is kept (least recently served dropped first)


@dataclass(frozen=True)
class TokenSigner:
    key: ec.EllipticCurvePrivateKey
    issuer: str
    audience: str
    ttl_s: int

    def sign(self, user_id: str, now: int | None = None) -> str:
        """A new token for ``user_id``, issued at ``now`` (Unix seconds; the clock's by default)."""
        issued = int(time.time()) if now is None else now
        claims = {
            "sub": user_id,
            "iss": self.issuer,
            "aud": self.audience,
            "iat": issued,
            "exp": issued + self.ttl_s,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self.key, algorithm="ES256", headers={"kid": KEY_ID})


class UserTokens:
    """Each user's current token, re-signed once less than half its life is left.

    A bounded map (an LRU of ``kept_users``): a user dropped from it just gets a new token.
    """

    def __init__(
        self,
        signer: TokenSigner,
        kept_users: int = KEPT_USERS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if kept_users < 1:
            raise ValueError("keep at least one user's token")
        self.signer = signer
        self._kept_users = kept_users
        self._clock = clock
        self._held: OrderedDict[str, tuple[str, float]] = OrderedDict()  # user: (token, renew at)

    def __len__(self) -> int:
        return len(self._held)

    def token_for(self, user_id: str) -> str:
        now = self._clock()
        held = self._held.get(user_id)
        if held is not None and now < held[1]:
            self._held.move_to_end(user_id)
            return held[0]
        issued = int(now)
        token = self.signer.sign(user_id, issued)
        self._held[user_id] = (token, issued + self.signer.ttl_s / 2)
        self._held.move_to_end(user_id)
        if len(self._held) > self._kept_users:
            self._held.popitem(last=False)
        return token


TOKENS: web.AppKey[UserTokens | None] = web.AppKey("user_tokens")


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


def user_tokens(settings: kit.Settings) -> UserTokens | None:
    """The gateway's kept tokens, or None without a signing key."""
    signer = signer_from(settings)
    return None if signer is None else UserTokens(signer)


def act_for(request: web.Request, user_id: str) -> None:
    """Calls made for this request carry ``user_id``'s current token (call it only after the
    session has been checked)."""
    kept = request.app[TOKENS]
    if kept is not None:
        kit.set_user_token(kept.token_for(user_id))
