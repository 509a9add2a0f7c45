"""`boutique up --https`: the public port speaks TLS with a certificate minted at start, and the
shop's session cookie is Secure there."""

from __future__ import annotations

import re
import ssl
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from mesh import topology
from mesh.local import LocalRun
from tests.integration.conftest import local_options

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def https_shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRun]:
    run = LocalRun(topology.load(), local_options(tmp_path_factory.mktemp("https"), https=True))
    run.start()
    yield run
    run.stop()


def trust(run: LocalRun) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(Path(run.run_dir) / "certs" / "edge-cert.pem"))


async def test_the_api_answers_over_tls_and_not_in_plain_text(https_shop: LocalRun) -> None:
    assert https_shop.public_url.startswith("https://")
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{https_shop.public_url}/api/products", ssl=trust(https_shop)) as r:
            assert r.status == 200
            assert len((await r.json())["products"]) >= 12
        plain = https_shop.public_url.replace("https://", "http://")
        with pytest.raises(aiohttp.ClientError):
            async with http.get(f"{plain}/api/products") as resp:
                await resp.read()


async def test_signing_up_in_the_shop_over_https_sets_a_secure_session_cookie(
    https_shop: LocalRun,
) -> None:
    shop = https_shop.public_url
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as http:
        page = await (await http.get(f"{shop}/signup", ssl=trust(https_shop))).text()
        csrf = re.search(r'name="csrf" value="([^"]+)"', page)
        assert csrf, "the sign-up form carries a CSRF token"
        form = {
            "email": f"tls-{uuid.uuid4().hex[:8]}@example.com",
            "password": "s3cret-pw-1",
            "csrf": csrf.group(1),
        }
        resp = await http.post(
            f"{shop}/signup", data=form, ssl=trust(https_shop), allow_redirects=False
        )
        assert resp.status in (302, 303), await resp.text()
        cookies = resp.headers.getall("Set-Cookie", [])
        session = [c for c in cookies if c.startswith("session=")]
        assert session and "Secure" in session[0], cookies
