"""``boutique serve``: an app's request log is opt-in (``ACCESS_LOG``), and its event loop is
uvloop unless ``EVENT_LOOP=asyncio``; either way it answers and stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from mesh.processes import http_ok
from tests.conftest import free_port

pytestmark = pytest.mark.integration


async def serve_products(tmp_path: Path, **env: str) -> tuple[int, str]:
    """Start products with ``env``, browse once, SIGTERM it: its exit code and its log."""
    port = free_port()
    log = tmp_path / f"products-{port}.log"
    full = {**os.environ, "PORT": str(port), "BOUTIQUE_DATA_DIR": str(tmp_path), **env}
    full.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    with log.open("wb") as out:
        app = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "boutique", "serve", "products", env=full, stdout=out, stderr=out
        )
    try:
        deadline = time.monotonic() + 60  # a loaded machine starts Python slowly
        while time.monotonic() < deadline:
            if app.returncode is not None:
                break
            if await asyncio.to_thread(http_ok, f"http://127.0.0.1:{port}/healthz"):
                url = f"http://127.0.0.1:{port}/products"
                async with aiohttp.ClientSession() as http, http.get(url) as resp:
                    assert resp.status == 200
                    assert len((await resp.json())["products"]) > 0
                app.send_signal(signal.SIGTERM)
                break
            await asyncio.sleep(0.1)
        code = await asyncio.wait_for(app.wait(), 30)
    finally:
        if app.returncode is None:
            app.kill()
    return code, log.read_text()


async def test_no_request_log_unless_asked(tmp_path: Path) -> None:
    code, log = await serve_products(tmp_path)
    assert code == 0 and "products listening" in log
    assert "GET /products" not in log


async def test_access_log_true_logs_each_request(tmp_path: Path) -> None:
    code, log = await serve_products(tmp_path, ACCESS_LOG="true", EVENT_LOOP="asyncio")
    assert code == 0
    assert '"GET /products HTTP/1.1" 200' in log


async def test_an_unknown_event_loop_stops_start_up(tmp_path: Path) -> None:
    code, log = await serve_products(tmp_path, EVENT_LOOP="trio")
    assert code != 0 and "EVENT_LOOP='trio'" in log
