"""Who may do what: the topology's access keys, the minted secrets, the user token in the kit."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import jwt
import pytest
import yaml
from aiohttp import web

from mesh import keys, topology
from mesh.topology import TopologyError
from services import kit
from services.gateway import tokens


def _raw() -> dict:
    return yaml.safe_load(topology.DEFAULT_PATH.read_text())


def test_every_call_of_the_shop_lists_its_operations() -> None:
    topo = topology.load()
    for svc in topo.services.values():
        assert set(svc.allow) == set(svc.calls), f"{svc.name} has a call without allow"
    pay = topo.allowed("payment", "orders")
    assert [str(op) for op in pay] == ["POST /orders/{id}/pay"]
    assert pay[0].matches("POST", "/orders/o_1/pay?x=1")
    assert not pay[0].matches("POST", "/orders/o_1/pay/more")
    assert not pay[0].matches("GET", "/orders/o_1/pay")
    assert not any(
        op.matches("POST", "/orders/o_1/pay") for op in topo.allowed("checkout", "orders")
    )
    assert {s.name for s in topo.services.values() if s.user_scoped} >= {
        "cart",
        "checkout",
        "payment",
        "orders",
        "email",
    }
    assert not topo.service("currency").user_scoped and not topo.service("shipping").user_scoped
    assert topo.service("gateway").redis_keys == ("session:*",)
    assert topo.service("cart").redis_keys == ("cart:*", "product:*")
    assert topo.user_token.signer == "gateway" and topo.user_token.ttl_s == 300


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: _call(r).update(allow=["FETCH /products"]), "METHOD one of"),
        (lambda r: _call(r).update(allow=["GET products"]), "starts with /"),
        (lambda r: _call(r).update(allow=["GET /products?ids=1"]), "no query"),
        (lambda r: _call(r).update(allow=["GET /products/x{id}"]), "whole {name}"),
        (lambda r: _call(r).update(allow=[]), "non-empty list"),
        (lambda r: _call(r).update(allow=["GET /products", "GET /products"]), "listed twice"),
        (lambda r: r["defaults"].update(allow=["GET /x"]), "unknown field"),
        (lambda r: r["services"]["cart"].update(user_scoped="yes"), "true or false"),
        (lambda r: r["services"]["cart"].pop("redis_keys"), "lists the keys it may use"),
        (lambda r: r["services"]["orders"].update(redis_keys=["o:*"]), "only such a service"),
        (lambda r: r["services"]["cart"].update(redis_keys=["cart *"]), "not a key pattern"),
        (lambda r: r["mesh"]["user_token"].update(ttl="1s"), "10s to 1h"),
        (lambda r: r["mesh"]["user_token"].update(signer="nobody"), "unknown service 'nobody'"),
        (lambda r: r["mesh"]["user_token"].update(colour=1), "unknown field"),
    ],
)
def test_mistakes_in_access_keys_are_refused(mutate, message) -> None:  # type: ignore[no-untyped-def]
    raw = _raw()
    mutate(raw)
    with pytest.raises(TopologyError, match=message):
        topology.parse(raw)


def _call(raw: dict) -> dict:
    return raw["services"]["cart"]["calls"]["products"]


def test_secrets_are_private_and_the_jwks_verifies_the_gateways_tokens(tmp_path: Path) -> None:
    topo = topology.load()
    key = keys.mint_user_token_key(tmp_path / "keys")
    users = keys.mint_redis_users(topo, tmp_path / "redis")
    cert, edge_key = keys.mint_edge_certificate(tmp_path / "edge")
    for path in (key.private_key, users.acl_file, edge_key):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    settings = kit.Settings.from_env(
        "gateway", {"USER_TOKEN_KEY_FILE": str(key.private_key), "USER_TOKEN_TTL_SECONDS": "60"}
    )
    signer = tokens.signer_from(settings)
    assert signer is not None
    token = signer.sign("u_ada")
    public = jwt.PyJWKSet.from_dict(json.loads(key.jwks)).keys[0]
    claims = jwt.decode(token, public.key, algorithms=["ES256"], audience="boutique")
    assert claims["sub"] == "u_ada" and claims["exp"] - claims["iat"] == 60
    acl = users.acl_file.read_text()
    assert "user default off" in acl
    assert "user cart on #" in acl and "~cart:* ~product:*" in acl and "-@dangerous" in acl
    assert users.passwords["gateway"] not in acl  # only its hash
    assert set(users.passwords) == {"gateway", "cart"}


async def test_calls_for_the_user_carry_the_incoming_token_and_others_do_not(
    aiohttp_client, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """Through the peer client on a Unix socket (PEER_SOCKET), as an app reaches its egress."""
    seen: list[dict[str, str]] = []

    async def echo(request: web.Request) -> web.Response:
        seen.append({"host": request.host, **{k.lower(): v for k, v in request.headers.items()}})
        return web.json_response({})

    egress = web.Application()
    egress.router.add_route("*", "/{tail:.*}", echo)
    runner = web.AppRunner(egress)
    await runner.setup()
    sock = tmp_path / "egress.sock"
    await web.UnixSite(runner, str(sock)).start()

    async def handler(request: web.Request) -> web.Response:
        await kit.peers(request).get("cart", "/cart", user="u_ada")
        await kit.peers(request).get("products", "/products")
        return web.json_response({})

    settings = kit.Settings.from_env("checkout", {"PEER_SOCKET": str(sock)})
    app = kit.create_app(settings, routes=[web.get("/go", handler)], contexts=[kit.peers_context])
    client = await aiohttp_client(app)
    try:
        assert (await client.get("/go", headers={"X-User-Token": "t.o.k"})).status == 200
    finally:
        await runner.cleanup()
    for_user, not_for_user = seen
    assert for_user["host"] == "cart" and for_user["x-user-token"] == "t.o.k"
    assert for_user["x-user-id"] == "u_ada"
    assert not_for_user["host"] == "products" and "x-user-token" not in not_for_user
