"""Passwords (scrypt), bearer tokens and sessions in Redis, and the check every private route makes.

A token is random (``secrets.token_urlsafe(32)``) and never stored: Redis keeps
``session:<sha256(token)>`` -> user id with a TTL, so a leaked Redis dump holds no usable token.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
import secrets
from datetime import UTC, datetime, timedelta

from aiohttp import web

from services import kit

from . import tokens

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
SALT_BYTES = 16
KEY_BYTES = 32
DEFAULT_TTL_SECONDS = 86400
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{20,128}$")
_BEARER = re.compile(r"^Bearer +(\S+)$", re.IGNORECASE)

SESSION_TTL: web.AppKey[int] = web.AppKey("session_ttl", int)


# --- passwords ---------------------------------------------------------------------------------


def _scrypt(password: str, salt: bytes) -> bytes:
    return hashlib.scrypt(
        password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=KEY_BYTES
    )


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def hash_password_sync(password: str) -> str:
    """``scrypt$n$r$p$<salt>$<key>`` (base64), with a fresh random salt per password."""
    salt = secrets.token_bytes(SALT_BYTES)
    key = _scrypt(password, salt)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(key)}"


def verify_password_sync(password: str, stored: str) -> bool:
    """Constant-time comparison of ``password`` against a stored ``scrypt$...`` hash."""
    try:
        scheme, n, r, p, salt, key = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(key)
        actual = hashlib.scrypt(
            password.encode(),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(expected),
        )
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)


# A hash to check against when the e-mail is unknown, so that both failures take as long.
_DUMMY_HASH = hash_password_sync(secrets.token_urlsafe(16))


async def hash_password(password: str) -> str:
    # scrypt takes tens of milliseconds of CPU: keep it off the event loop.
    return await asyncio.to_thread(hash_password_sync, password)


async def verify_password(password: str, stored: str | None) -> bool:
    """False for an unknown user too, after the same amount of work."""
    ok = await asyncio.to_thread(verify_password_sync, password, stored or _DUMMY_HASH)
    return ok and stored is not None


# --- sessions ----------------------------------------------------------------------------------


def _session_key(token: str) -> str:
    return "session:" + hashlib.sha256(token.encode()).hexdigest()


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def utc_now() -> datetime:
    return datetime.now(UTC)


async def open_session(app: web.Application, user_id: str) -> tuple[str, str]:
    """A new token for ``user_id`` and when it expires (RFC 3339)."""
    ttl = app[SESSION_TTL]
    token = secrets.token_urlsafe(32)
    await app[kit.REDIS].set(_session_key(token), user_id, ex=ttl)
    return token, rfc3339(utc_now() + timedelta(seconds=ttl))


async def close_session(app: web.Application, token: str) -> bool:
    """Revoke ``token``; False when it was no longer valid."""
    return bool(await app[kit.REDIS].delete(_session_key(token)))


def unauthorized(detail: str, *, invalid: bool) -> kit.Problem:
    challenge = 'Bearer realm="boutique"' + (', error="invalid_token"' if invalid else "")
    return kit.Problem(401, detail, code="unauthenticated", headers={"WWW-Authenticate": challenge})


def bearer_token(request: web.Request) -> str:
    """The token of ``Authorization: Bearer <token>``; 401 when absent or not a token."""
    header = request.headers.get("Authorization")
    if not header:
        raise unauthorized("Sign in and send Authorization: Bearer <token>", invalid=False)
    match = _BEARER.match(header.strip())
    if not match or not _TOKEN.match(match.group(1)):
        raise unauthorized("The Authorization header is not a bearer token", invalid=True)
    return match.group(1)


async def require_user(request: web.Request) -> str:
    """The signed-in user's id; 401 (with ``WWW-Authenticate: Bearer``) otherwise."""
    token = bearer_token(request)
    user_id = await request.app[kit.REDIS].get(_session_key(token))
    if user_id is None:
        raise unauthorized("The token is unknown, expired or signed out", invalid=True)
    tokens.act_for(request, user_id)
    return user_id


def session_ttl(settings: kit.Settings) -> int:
    """``SESSION_TTL_SECONDS`` (default one day): how long a token lives after login."""
    raw = settings.get("SESSION_TTL_SECONDS", str(DEFAULT_TTL_SECONDS))
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"SESSION_TTL_SECONDS must be a positive integer, not {raw!r}")
    return int(raw)
