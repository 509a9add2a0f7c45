"""The gateway's user tokens: one per user, reused until half its life is gone, and never handed
to a call before the session has been checked."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec

from mesh import keys
from services.gateway import tokens
from tests.conftest import build_app, held_socket, port_of, server_on, service_settings

PASSWORD = "correct-horse-battery"


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _signer(ttl_s: int = 300) -> tokens.TokenSigner:
    return tokens.TokenSigner(ec.generate_private_key(ec.SECP256R1()), "iss", "boutique", ttl_s)


def _claims(token: str, signer: tokens.TokenSigner) -> dict[str, Any]:
    options = {"verify_exp": False, "verify_iat": False}
    return jwt.decode(
        token, signer.key.public_key(), algorithms=["ES256"], audience="boutique", options=options
    )


def test_a_users_token_is_reused_until_half_its_life_is_left() -> None:
    clock = Clock()
    signer = _signer(ttl_s=300)
    kept = tokens.UserTokens(signer, clock=clock)
    first = kept.token_for("u_ada")
    clock.now += 149
    assert kept.token_for("u_ada") == first
    claims = _claims(first, signer)
    assert claims["sub"] == "u_ada" and claims["exp"] - claims["iat"] == 300
    assert claims["iat"] == int(1_000_000.0)
    clock.now += 1  # 150 s: half its life is gone
    second = kept.token_for("u_ada")
    assert second != first
    renewed = _claims(second, signer)
    assert renewed["iat"] == 1_000_150 and renewed["exp"] == 1_000_450
    assert renewed["jti"] != claims["jti"]
    assert kept.token_for("u_bob") not in (first, second)
    assert _claims(kept.token_for("u_bob"), signer)["sub"] == "u_bob"


def test_the_kept_tokens_are_bounded_least_recently_served_first() -> None:
    clock = Clock()
    kept = tokens.UserTokens(_signer(), kept_users=2, clock=clock)
    ada, bob = kept.token_for("u_ada"), kept.token_for("u_bob")
    assert kept.token_for("u_ada") == ada  # Ada served last: Bob is the oldest now
    kept.token_for("u_cy")
    assert len(kept) == 2
    assert kept.token_for("u_ada") == ada
    assert kept.token_for("u_bob") != bob  # dropped, so signed anew
    with pytest.raises(ValueError):
        tokens.UserTokens(_signer(), kept_users=0)


@pytest.fixture
async def gateway(aiohttp_client, tmp_path: Path, clean_redis: str):  # type: ignore[no-untyped-def]
    """The gateway with a signing key, its cart a recorder of the user tokens it is sent."""
    seen: list[str | None] = []

    async def cart(request: web.Request) -> web.Response:
        seen.append(request.headers.get("X-User-Token"))
        return web.json_response({"user_id": request.headers.get("X-User-Id"), "items": []})

    recorder = web.Application()
    recorder.router.add_get("/cart", cart)
    sock = held_socket()
    server = server_on(recorder, sock)
    await server.start_server()
    key = keys.mint_user_token_key(tmp_path / "keys")
    env = {
        "USER_TOKEN_KEY_FILE": str(key.private_key),
        "PEER_URLS": f"cart=http://127.0.0.1:{port_of(sock)}",
    }
    app = build_app("gateway", service_settings("gateway", tmp_path, clean_redis, **env))
    client = await aiohttp_client(app)
    try:
        yield client, seen, json.loads(key.jwks)
    finally:
        await server.close()


async def _session(client: Any, email: str) -> dict[str, str]:
    creds = {"email": email, "password": PASSWORD}
    await client.post("/api/auth/register", json=creds)  # 201, or 409 when signing in again
    session = await (await client.post("/api/auth/login", json=creds)).json()
    return {"Authorization": f"Bearer {session['token']}"}


async def test_one_token_serves_a_users_requests_and_sessions(gateway) -> None:  # type: ignore[no-untyped-def]
    client, seen, jwks = gateway
    ada = await _session(client, "ada@example.com")
    ada_again = await _session(client, "ada@example.com")  # a second sign-in, same user
    bob = await _session(client, "bob@example.com")
    for headers in (ada, ada, ada_again, bob):
        assert (await client.get("/api/cart", headers=headers)).status == 200
    assert seen[0] == seen[1] == seen[2] and seen[3] != seen[0]
    public = jwt.PyJWKSet.from_dict(jwks).keys[0].key
    ada_id = (await (await client.get("/api/me", headers=ada)).json())["id"]
    claims = jwt.decode(seen[0], public, algorithms=["ES256"], audience="boutique")
    assert claims["sub"] == ada_id


async def test_a_signed_out_session_is_401_though_its_users_token_is_kept(gateway) -> None:  # type: ignore[no-untyped-def]
    client, seen, _ = gateway
    ada = await _session(client, "ada@example.com")
    assert (await client.get("/api/cart", headers=ada)).status == 200
    assert len(client.app[tokens.TOKENS]) == 1  # Ada's token is kept
    assert (await client.post("/api/auth/logout", headers=ada)).status == 204
    resp = await client.get("/api/cart", headers=ada)
    assert resp.status == 401
    assert resp.content_type == "application/problem+json"
    assert (await resp.json())["code"] == "unauthenticated"
    assert len(seen) == 1  # the cart was not called again, with or without the kept token
    unknown = {"Authorization": "Bearer " + "x" * 43}
    assert (await client.get("/api/cart", headers=unknown)).status == 401
    assert len(seen) == 1
