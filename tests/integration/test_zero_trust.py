"""Zero trust on a shared host: the attacks of issue 10, each tried on the real mesh and refused.

An attacker holding a service's egress (a compromised app) tries to act for another user or to
use operations its calls do not list; a local user without the mesh's account tries the
sockets, stores and keys; anyone tries Redis without the right password; a burst of sign-ins
meets the edge's rate limit.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import stat
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis
from cryptography.hazmat.primitives.asymmetric import ec

from mesh.local import LocalRun
from services.gateway.tokens import TokenSigner, signer_from
from services.kit import Settings
from tests.integration.test_purchase import CARD, sign_in
from tests.polling import eventually, wait_for

pytestmark = pytest.mark.integration


def instance(shop: LocalRun, name: str):  # type: ignore[no-untyped-def]
    assert shop.placement is not None
    return next(i for i in shop.placement.all_instances() if i.name == name)


def egress(shop: LocalRun, name: str) -> aiohttp.ClientSession:
    """What a process holding ``name``'s egress socket can send (as that app would)."""
    sock = instance(shop, name).egress_socket
    return aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(sock)))


def real_signer(shop: LocalRun) -> TokenSigner:
    """The gateway's own signer (the key only the gateway is given), to make a valid token."""
    env = {"USER_TOKEN_KEY_FILE": str(shop.run_dir / "keys" / "user-token-key.pem")}
    token = shop.topology.user_token
    env.update(USER_TOKEN_ISSUER=token.issuer, USER_TOKEN_AUDIENCE=token.audience)
    signer = signer_from(Settings.from_env("gateway", env))
    assert signer is not None
    return signer


@pytest.fixture
async def victim(shop: LocalRun) -> AsyncIterator[dict[str, Any]]:
    """A shopper with one paid order."""
    api = shop.public_url + "/api"
    async with aiohttp.ClientSession() as http:
        auth = await sign_in(http, api)
        me = await (await http.get(f"{api}/me", headers=auth)).json()
        products = (await (await http.get(f"{api}/products")).json())["products"]
        product = next(p for p in products if p["available"] >= 1)
        await http.put(f"{api}/cart/items/{product['id']}", json={"quantity": 1}, headers=auth)
        keyed = {**auth, "Idempotency-Key": uuid.uuid4().hex}
        resp = await http.post(f"{api}/checkout", json={"card": CARD}, headers=keyed)
        assert resp.status == 201, await resp.text()
        yield {"id": me["id"], "order": (await resp.json())["id"], "auth": auth}


async def answer(resp: aiohttp.ClientResponse) -> tuple[int, Any]:
    body = await resp.json(content_type=None) if resp.content_length != 0 else None
    return resp.status, body


async def test_a_bare_user_id_is_no_identity(shop: LocalRun, victim: dict[str, Any]) -> None:
    """Through the gateway's egress, X-User-Id alone opens nothing; beside a valid token for
    someone else, the sidecar replaces it with the token's verified subject."""
    forged = {"X-User-Id": victim["id"]}
    async with egress(shop, "gateway-0") as gateway:
        status, body = await answer(await gateway.get("http://orders/orders", headers=forged))
        assert status == 403 and body["code"] == "refused_by_mesh", body
        mallory = real_signer(shop).sign("u_mallory")
        both = {**forged, "X-User-Token": mallory}
        status, body = await answer(await gateway.get("http://orders/orders", headers=both))
        assert status == 200 and body["orders"] == []  # Mallory's own (none), not the victim's
        own = {"X-User-Token": real_signer(shop).sign(victim["id"])}  # the check is what refuses
        status, body = await answer(await gateway.get("http://orders/orders", headers=own))
        assert status == 200 and [o["id"] for o in body["orders"]] == [victim["order"]]


def _tokens(shop: LocalRun, victim: str) -> dict[str, str]:
    real = real_signer(shop)
    foreign = TokenSigner(ec.generate_private_key(ec.SECP256R1()), real.issuer, real.audience, 300)
    expired = TokenSigner(real.key, real.issuer, real.audience, -120)
    return {
        "foreign key": foreign.sign(victim),
        "expired": expired.sign(victim),
        "other audience": TokenSigner(real.key, real.issuer, "elsewhere", 300).sign(victim),
        "other issuer": TokenSigner(real.key, "mallory", real.audience, 300).sign(victim),
        "not a token": "e30.e30.e30",
    }


async def test_forged_expired_and_misaddressed_user_tokens_are_refused(
    shop: LocalRun, victim: dict[str, Any]
) -> None:
    async with egress(shop, "gateway-0") as gateway:
        for what, token in _tokens(shop, victim["id"]).items():
            headers = {"X-User-Token": token, "X-User-Id": victim["id"]}
            resp = await gateway.get("http://orders/orders", headers=headers)
            status, body = await answer(resp)
            assert status in (401, 403), f"{what}: {status} {body}"
            assert resp.content_type == "application/problem+json", what
            assert body["code"] in ("invalid_user_token", "refused_by_mesh"), what


ENVOY_CLOCK_SKEW_S = 60  # jwt_authn accepts a token this long past its exp (Envoy's default)


def _with_subject(token: str, subject: str) -> str:
    """``token``'s header and signature around a payload naming someone else."""
    head, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    forged = json.dumps({**claims, "sub": subject}, separators=(",", ":")).encode()
    return f"{head}.{base64.urlsafe_b64encode(forged).rstrip(b'=').decode()}.{signature}"


async def test_a_verified_and_cached_token_is_refused_once_expired_and_never_forged(
    shop: LocalRun,
) -> None:
    """The sidecars keep the tokens they verified (the gateway reuses a user's token); a kept
    token still expires, and a kept token's signature does not carry another payload."""
    real = real_signer(shop)
    # A token at the end of its life: Envoy takes it for about 15 s more (its clock skew).
    ending = TokenSigner(real.key, real.issuer, real.audience, 15 - ENVOY_CLOCK_SKEW_S)
    user = "u_" + uuid.uuid4().hex[:24]
    token = ending.sign(user)
    async with egress(shop, "gateway-0") as gateway:
        for _ in range(2):  # verified, then found in the orders sidecar's cache
            resp = await gateway.get("http://orders/orders", headers={"X-User-Token": token})
            status, body = await answer(resp)
            assert status == 200 and body["orders"] == [], body
        forged = {"X-User-Token": _with_subject(token, "u_mallory")}
        status, body = await answer(await gateway.get("http://orders/orders", headers=forged))
        assert status == 401 and body["code"] == "invalid_user_token", body
        expired = await eventually(
            lambda: gateway.get("http://orders/orders", headers={"X-User-Token": token}),
            lambda r: r.status != 200,
            within=60,
            interval=0.5,
            what="the cached token's expiry",
        )
        status, body = await answer(expired)
        assert status == 401 and body["code"] == "invalid_user_token", body


async def test_operations_a_call_does_not_list_are_refused(
    shop: LocalRun, victim: dict[str, Any]
) -> None:
    """Checkout may open orders but not pay them; payment may pay them but not open or list
    them; the gateway may only read them. Each with a valid token for the user."""
    order = victim["order"]
    as_user = {"X-User-Token": real_signer(shop).sign(victim["id"]), "Idempotency-Key": "k" * 16}
    free = {"items": [{"product_id": "mug", "quantity": 1, "price_cents": 0}], "currency": "EUR"}
    attempts = [
        ("checkout-0", "POST", f"http://orders/orders/{order}/pay", {"charge_id": "ch_x"}),
        ("gateway-0", "POST", f"http://orders/orders/{order}/pay", {"charge_id": "ch_x"}),
        ("payment-0", "POST", "http://orders/orders", free),
        ("payment-0", "GET", "http://orders/orders", None),
        ("gateway-0", "POST", f"http://orders/orders/{order}/cancel", {"reason": "x"}),
        ("cart-0", "PUT", "http://products/reservations/k0000000", {"items": []}),
    ]
    for caller, method, url, body in attempts:
        async with egress(shop, caller) as http:
            resp = await http.request(method, url, json=body, headers=as_user)
            status, problem = await answer(resp)
            assert status == 403, f"{caller} {method} {url}: {status} {problem}"
            assert problem["code"] == "refused_by_mesh"
    async with egress(shop, "payment-0") as payment:  # the declared one reaches the app
        resp = await payment.post(
            f"http://orders/orders/{order}/pay", json={"charge_id": "ch_x"}, headers=as_user
        )
        assert resp.status == 409, await resp.text()  # orders' own answer: already paid


def _redis(shop: LocalRun, user: str | None = None, password: str | None = None) -> redis.Redis:
    return redis.Redis(unix_socket_path=str(shop.redis_socket), username=user, password=password)


def test_redis_takes_no_session_from_anyone_but_the_gateway(shop: LocalRun) -> None:
    assert shop.redis_users is not None
    passwords = shop.redis_users.passwords
    key = "session:" + "0" * 64
    with pytest.raises(redis.AuthenticationError):  # no user: the default user is off
        _redis(shop).set(key, "u_mallory")
    with pytest.raises(redis.AuthenticationError):
        _redis(shop, "gateway", "not-the-password").set(key, "u_mallory")
    with pytest.raises(redis.exceptions.NoPermissionError):  # cart's user, a gateway key
        _redis(shop, "cart", passwords["cart"]).set(key, "u_mallory")
    gateway = _redis(shop, "gateway", passwords["gateway"])
    for command in (("FLUSHALL",), ("CONFIG", "SET", "dir", "/tmp"), ("KEYS", "*")):
        with pytest.raises(redis.exceptions.NoPermissionError):
            gateway.execute_command(*command)
    with pytest.raises(redis.exceptions.NoPermissionError):
        gateway.get("cart:u_someone")
    assert gateway.exists(key) == 0  # nothing above got through


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_run_directory_stores_keys_and_sockets_are_private(shop: LocalRun) -> None:
    run = shop.run_dir
    assert _mode(run) == 0o700
    for folder in ("pods", "redis", "keys", "data", "logs"):
        assert _mode(run / folder) == 0o700, folder
    for inst in shop.placement.all_instances() if shop.placement else []:
        assert inst.pod_dir is not None and _mode(inst.pod_dir) == 0o700, inst.name
        for sock in (inst.egress_socket, inst.admin_socket):
            assert sock is not None and stat.S_ISSOCK(sock.stat().st_mode), sock
            assert _mode(sock) & 0o077 == 0, f"{sock} is open to others"
    secrets = [*run.glob("data/*.db"), *run.glob("keys/*.pem"), run / "redis" / "users.acl"]
    secrets += [*run.glob("certs/*-key.pem"), *run.glob("logs/*.log")]
    assert any(p.suffix == ".db" for p in secrets)
    for path in secrets:
        assert _mode(path) & 0o077 == 0, f"{path} is readable by others"


NOBODY_PROBE = """
import json, os, socket, sys
out = {}
def attempt(name, fn):
    try:
        fn(); out[name] = "allowed"
    except PermissionError: out[name] = "refused"
    except OSError as exc: out[name] = f"other: {exc}"
def connect(path):
    with socket.socket(socket.AF_UNIX) as s: s.connect(path)
for name, path in json.loads(sys.argv[1]).items():
    if name.endswith("socket"): attempt(name, lambda p=path: connect(p))
    elif name.endswith("dir"): attempt(name, lambda p=path: os.listdir(p))
    else: attempt(name, lambda p=path: open(p, "rb").read(1))
print(json.dumps(out))
"""


def _as_nobody(targets: dict[str, str]) -> dict[str, str]:
    python = "/usr/bin/python3"  # the venv's may sit where nobody cannot go
    done = subprocess.run(
        [python, "-c", NOBODY_PROBE, json.dumps(targets)],
        user="nobody",
        group="nogroup",
        extra_groups=[],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
        cwd="/",
    )
    return json.loads(done.stdout)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a probe as the user nobody")
def test_another_local_user_reaches_no_socket_store_or_key(shop: LocalRun) -> None:
    run = shop.run_dir
    assert _mode(run.parent) & 0o001, "the test needs a run directory others may pass through"
    gateway = instance(shop, "gateway-0")
    targets = {
        "gateway egress socket": str(gateway.egress_socket),
        "gateway admin socket": str(gateway.admin_socket),
        "ingress admin socket": str(shop.admin_socket("ingress")),
        "redis socket": str(shop.redis_socket),
        "users database": str(run / "data" / "gateway.db"),
        "user-token key": str(run / "keys" / "user-token-key.pem"),
        "run dir": str(run),
    }
    assert set(_as_nobody(targets).values()) == {"refused"}
    # Even were the run directory opened for passing through, every inner folder holds.
    run.chmod(0o711)
    try:
        seen = _as_nobody({k: v for k, v in targets.items() if k != "run dir"})
    finally:
        run.chmod(0o700)
    assert seen == {k: "refused" for k in targets if k != "run dir"}, seen


async def test_a_sign_in_burst_meets_the_edge_rate_limit(shop: LocalRun) -> None:
    url = shop.public_url + "/api/auth/login"
    wrong = {"email": f"nobody-{uuid.uuid4().hex[:8]}@example.com", "password": "guess-123"}
    async with aiohttp.ClientSession() as http:

        async def one() -> tuple[int, str | None, Any]:
            async with http.post(url, json=wrong) as resp:
                body = await resp.json(content_type=None)
                return resp.status, resp.headers.get("Retry-After"), body

        answers = await asyncio.gather(*(one() for _ in range(60)))
        limited = [a for a in answers if a[0] == 429]
        assert len(limited) >= 30, [a[0] for a in answers]
        assert {a[0] for a in answers} <= {401, 429}
        for _, retry_after, body in limited:
            assert retry_after is not None and int(retry_after) >= 1
            assert body["code"] == "rate_limited" and body["status"] == 429

        async def status() -> int:
            async with http.post(url, json=wrong) as resp:
                return resp.status

        # the bucket refills: a person gets through again
        await eventually(status, lambda code: code == 401, what="a sign-in after the burst")


def test_the_mesh_is_still_reachable_where_it_should_be(shop: LocalRun) -> None:
    """The same user's tools still reach the admin (the runner's readiness, the docs' curl)."""
    from mesh.admin import Admin

    admin = Admin(shop.admin_url("gateway-0"))
    assert wait_for(admin.ready, what="the gateway sidecar's admin answers")
    assert admin.stat("cluster.orders.upstream_rq_total") >= 0
