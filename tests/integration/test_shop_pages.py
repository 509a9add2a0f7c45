"""The shop's pages show the catalog's images, with the mesh (one origin) and without (two)."""

from __future__ import annotations

import re

import aiohttp
import pytest

from mesh.local import LocalRun

pytestmark = pytest.mark.integration


async def first_image(http: aiohttp.ClientSession, page_url: str) -> tuple[str, str]:
    async with http.get(page_url) as resp:
        assert resp.status == 200
        html = await resp.text()
        csp = resp.headers["Content-Security-Policy"]
    src = re.search(r'<img src="([^"]+/image\.svg)"', html)
    assert src, "no product image on the catalog page"
    return src.group(1), csp


async def test_through_the_ingress_images_come_from_the_same_origin(shop: LocalRun) -> None:
    async with aiohttp.ClientSession() as http:
        src, csp = await first_image(http, shop.shop_url + "/")
        assert src.startswith("/api/products/")
        assert "img-src 'self';" in csp
        async with http.get(shop.public_url + src) as image:
            assert image.status == 200 and image.content_type == "image/svg+xml"


async def test_without_a_mesh_images_come_from_the_gateways_port(direct_shop: LocalRun) -> None:
    async with aiohttp.ClientSession() as http:
        src, csp = await first_image(http, direct_shop.shop_url + "/")
        assert src.startswith(direct_shop.public_url + "/api/products/")
        assert f"img-src 'self' {direct_shop.public_url};" in csp  # the browser may load them
        async with http.get(src) as image:
            assert image.status == 200 and image.content_type == "image/svg+xml"
