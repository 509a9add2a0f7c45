"""The Envoy admin client against a real Envoy whose admin listens on a Unix socket."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from mesh.admin import Address, Admin, AdminError, AsyncAdmin, parse_hosts, parse_stats
from mesh.local import envoy_binary


def test_an_admin_address_is_a_tcp_or_unix_url() -> None:
    assert Address.parse("http://127.0.0.1:15000").port == 15000
    assert Address.parse("unix:///run/x/admin.sock").unix == "/run/x/admin.sock"
    for bad in ("127.0.0.1:15000", "http://127.0.0.1", "unix://", "ftp://h:1"):
        with pytest.raises(ValueError, match="http://host:port or unix:///path"):
            Address.parse(bad)


def test_stats_and_hosts_text_is_parsed() -> None:
    text = "a.b: 3\nc.gauge: -1\nh.histogram: P0(nan,0) P25(nan,0)\nempty: \n"
    assert parse_stats(text) == {"a.b": 3, "c.gauge": -1}
    clusters = (
        "products::127.0.0.1:1::health_flags::healthy\n"
        "products::127.0.0.1:2::health_flags::/failed_outlier_check\n"
        "products::127.0.0.1:2::cx_total::4\n"
    )
    assert parse_hosts(clusters) == {
        "products": {"127.0.0.1:1": "healthy", "127.0.0.1:2": "/failed_outlier_check"}
    }


def _bootstrap(admin: Path) -> dict:
    peer = {"endpoint": {"address": {"pipe": {"path": str(admin.with_name("peer.sock"))}}}}
    return {
        "admin": {"address": {"pipe": {"path": str(admin)}}},
        "layered_runtime": {
            "layers": [
                {"name": "static", "static_layer": {"some.key": 1}},
                {"name": "admin", "admin_layer": {}},
            ]
        },
        "static_resources": {
            "clusters": [
                {
                    "name": "peer",
                    "type": "STATIC",
                    "connect_timeout": "1s",
                    "load_assignment": {
                        "cluster_name": "peer",
                        "endpoints": [{"lb_endpoints": [peer]}],
                    },
                }
            ]
        },
    }


@pytest.fixture(scope="module")
def admin_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("admin")
    sock = folder / "admin.sock"
    config = folder / "envoy.yaml"
    config.write_text(yaml.safe_dump(_bootstrap(sock)))
    argv = [envoy_binary(), "-c", str(config), "--disable-hot-restart", "--log-level", "error"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"unix://{sock}"
    try:
        deadline = time.monotonic() + 30
        while not Admin(url).ready():
            assert proc.poll() is None, "envoy exited"
            assert time.monotonic() < deadline, "envoy did not become ready"
            time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def test_the_blocking_client_reads_stats_hosts_and_switches_the_runtime(admin_url: str) -> None:
    admin = Admin(admin_url)
    assert admin.ready()
    assert admin.stat("server.live") == 1
    assert admin.stat("server.no_such_stat") == 0
    assert set(admin.stats(r"^cluster\.peer\.membership_")) >= {"cluster.peer.membership_total"}
    assert list(admin.hosts()["peer"].values()) == ["healthy"]
    admin.runtime_modify({"fault.http.abort.abort_percent": "7"})
    assert admin.admin_layer() == {"fault.http.abort.abort_percent": "7"}
    admin.runtime_modify({"fault.http.abort.abort_percent": ""})  # dropped again
    assert admin.admin_layer() == {}
    assert admin.runtime()["entries"]["some.key"]["final_value"] == "1"
    with pytest.raises(AdminError, match="404"):
        admin.request("/no-such-page")


async def test_the_async_client_does_the_same(admin_url: str) -> None:
    admin = AsyncAdmin(admin_url)
    assert await admin.ready()
    assert await admin.stat("server.live") == 1
    assert list((await admin.hosts())["peer"].values()) == ["healthy"]
    await admin.runtime_modify({"tracing.opentelemetry.min_flush_spans": "9"})
    try:
        assert await admin.admin_layer() == {"tracing.opentelemetry.min_flush_spans": "9"}
    finally:
        await admin.runtime_modify({"tracing.opentelemetry.min_flush_spans": ""})
    assert await admin.admin_layer() == {}


def test_an_admin_that_is_not_there_is_not_ready(tmp_path: Path) -> None:
    assert not Admin(f"unix://{tmp_path / 'nothing.sock'}").ready()
