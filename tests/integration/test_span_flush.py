"""An app's batched spans are not lost when it stops: SIGTERM flushes them to the collector."""

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
from tracestore.server import start

pytestmark = pytest.mark.integration


async def test_sigterm_flushes_the_spans_still_in_the_batch(tmp_path: Path) -> None:
    store = await start(tmp_path / "traces.db", otlp_port=0, query_port=0)
    port = free_port()
    env = {
        **os.environ,
        "PORT": str(port),
        "BOUTIQUE_DATA_DIR": str(tmp_path),
        "OTEL_EXPORTER_OTLP_ENDPOINT": store.otlp_url,
        "OTEL_BSP_SCHEDULE_DELAY": "600000",  # nothing leaves on its own for ten minutes
    }
    app = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "boutique",
        "serve",
        "orders",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60  # a loaded machine starts Python slowly
        while time.monotonic() < deadline:
            if await asyncio.to_thread(http_ok, f"http://127.0.0.1:{port}/healthz"):
                break
            await asyncio.sleep(0.1)
        async with aiohttp.ClientSession() as http:
            async with http.get(
                f"http://127.0.0.1:{port}/orders", headers={"X-User-Id": "u_flush"}
            ) as resp:
                assert resp.status == 200
                trace_id = resp.headers["traceresponse"].split("-")[1]
            url = f"{store.query_url}/api/traces/{trace_id}"
            async with http.get(url) as before:
                assert before.status == 404  # still in the app's batch
            app.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(app.wait(), 30) == 0
            async with http.get(url) as after:
                assert after.status == 200
                spans = (await after.json())["data"][0]["spans"]
        assert "GET /orders" in {s["operationName"] for s in spans}
    finally:
        if app.returncode is None:
            app.kill()
        await store.close()
