"""The load generator's own parts: Locust's argv, the summary read from its CSV, the shop check,
Ctrl-C passed on, and the shoppers' checks of every answer (Locust run against a fake shop).

Locust is never imported here: it monkey-patches the standard library with gevent on import.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from loadgenerator import run
from tests.conftest import closed_port

HEADER = (
    "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,"
    "Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,"
    "50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%"
)
ROWS = [
    "GET,/api/products,300,0,9,12.5,3.1,96.2,5000.0,10.0,0.0,9,11,12,13,17,31,59,83,96,96,96",
    "POST,/api/checkout,27,2,130,136.1,93.0,190.4,700.0,0.9,0.07,"
    "130,140,150,160,170,190,190,190,190,190,190",
    "POST,/api/checkout [out of stock],9,0,21,22.0,15.0,30.0,300.0,0.3,0.0,"
    "21,22,27,29,31,31,31,31,31,31,31",
    "POST,/api/checkout [declined card],1,0,160,161.0,161.0,161.0,300.0,0.03,0.0,"
    "160,160,160,160,160,160,160,160,160,160,160",
    "GET,/api/orders,0,0,0,0,0,0,0,0.0,0.0,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A",
    ",Aggregated,337,2,9,20.0,3.1,190.4,4000.0,11.2,0.07,9,11,13,14,20,130,160,190,190,190,190",
]
SAMPLE = "\n".join([HEADER, *ROWS]) + "\n"
FAILURES = (
    "Method,Name,Error,Occurrences,First Seen,Last Seen\n"
    "POST,/api/checkout,\"CatchResponseError('503 dependency_unavailable: "
    "The payment service could not be reached')\",2,1,2\n"
)


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    run.add_arguments(parser)
    return parser.parse_args(list(argv))


def value_after(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


# -- argv ------------------------------------------------------------------------------------------


def test_a_headless_run_writes_csv_and_html_into_the_results_and_fails_on_errors(
    tmp_path: Path,
) -> None:
    argv = run.headless_argv("http://shop:8080/", 7, 2.5, "30s", tmp_path)
    assert argv[:3] == [sys.executable, "-m", "locust"]
    assert Path(value_after(argv, "-f")) == run.LOCUSTFILE and run.LOCUSTFILE.exists()
    assert value_after(argv, "--host") == "http://shop:8080"
    assert "--headless" in argv and "--only-summary" in argv
    assert (value_after(argv, "-u"), value_after(argv, "-r")) == ("7", "2.5")
    assert value_after(argv, "-t") == "30s"
    assert value_after(argv, "--csv") == str(tmp_path / "locust")
    assert value_after(argv, "--html") == str(tmp_path / "report.html")
    assert value_after(argv, "--exit-code-on-error") == "1"
    assert value_after(argv, "--loglevel") == "WARNING"


def test_the_web_ui_listens_on_localhost_at_the_chosen_port() -> None:
    argv = run.web_argv("http://127.0.0.1:8080", 10, 2, 18089)
    assert "--headless" not in argv and "-t" not in argv and "--csv" not in argv
    assert value_after(argv, "--web-port") == "18089"
    assert value_after(argv, "--web-host") == "127.0.0.1"
    assert (value_after(argv, "-u"), value_after(argv, "-r")) == ("10", "2")


def test_the_background_load_is_steady_endless_quiet_and_writes_nothing() -> None:
    argv = run.background_argv("http://127.0.0.1:8080")
    assert "--headless" in argv
    assert (value_after(argv, "-u"), value_after(argv, "-r")) == ("3", "1")
    assert not {"-t", "--run-time", "--csv", "--html", "--web-port"} & set(argv)
    assert value_after(argv, "--loglevel") == "ERROR"
    assert value_after(run.background_argv("http://x", users=8, spawn_rate=0.5), "-r") == "0.5"


def test_the_command_line_defaults_and_run_times() -> None:
    args = parse()
    assert (args.host, args.users, args.spawn_rate, args.run_time) == (
        run.DEFAULT_HOST,
        10,
        2,
        "1m",
    )
    assert (args.web, args.web_port, args.results) == (False, 8089, None)
    for good in ("30s", "5m", "1h30m", "2h", "45"):
        assert parse("-t", good).run_time == good
    for bad in ("abc", "5 m", "0", "0m", "m5", "1.5m", "1h30", ""):
        with pytest.raises(SystemExit):
            parse("-t", bad)
    for flag, bad in (("-u", "0"), ("-u", "1.5"), ("-r", "-1"), ("-r", "x"), ("--web-port", "0")):
        with pytest.raises(SystemExit):
            parse(flag, bad)


def test_think_times_reach_the_shoppers_through_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SHOPPER_THINK_MIN", raising=False)
    monkeypatch.setenv("SHOPPER_THINK_MAX", "3")
    env = run.think_env(0.1, None)
    assert (env["SHOPPER_THINK_MIN"], env["SHOPPER_THINK_MAX"]) == ("0.1", "3")
    assert env["PATH"] == os.environ["PATH"]
    with pytest.raises(ValueError, match="min <= max"):
        run.think_env(4, 2)


# -- the summary -----------------------------------------------------------------------------------


def test_the_stats_csv_is_read_row_by_row_with_missing_percentiles_as_none(
    tmp_path: Path,
) -> None:
    path = tmp_path / "locust_stats.csv"
    path.write_text(SAMPLE)
    stats = run.read_stats(path)
    assert [s.label for s in stats][:2] == ["GET /api/products", "POST /api/checkout"]
    checkout = stats[1]
    assert (checkout.requests, checkout.failures, checkout.p50_ms, checkout.p95_ms) == (
        27,
        2,
        130,
        190,
    )
    orders = stats[4]
    assert (orders.requests, orders.p50_ms, orders.p95_ms) == (0, None, None)
    assert run.total(stats).requests == 337 and run.total(stats).failures == 2
    assert run.checkouts(stats) == {"paid": 25, "out of stock": 9, "declined": 1}


def test_the_summary_has_totals_checkouts_percentiles_and_the_top_failures(
    tmp_path: Path,
) -> None:
    (tmp_path / "locust_stats.csv").write_text(SAMPLE)
    (tmp_path / "locust_failures.csv").write_text(FAILURES)
    stats = run.read_stats(run.stats_csv(tmp_path))
    text = run.summary(stats, run.read_failures(tmp_path / "locust_failures.csv"))
    lines = text.splitlines()
    assert lines[0] == (
        "337 requests (11.2/s), 2 failures; checkouts: 25 paid, 9 out of stock, "
        "1 declined (test card 0002)"
    )
    row = next(line for line in lines if line.startswith("POST /api/checkout "))
    assert row.split()[-4:] == ["27", "2", "130", "190"]
    assert next(line for line in lines if line.startswith("GET /api/orders")).endswith("-       -")
    total = next(line for line in lines if line.startswith("Aggregated"))
    assert total.split()[1:] == ["337", "2", "9", "130"]
    assert "503 dependency_unavailable: The payment service could not be reached" in lines[-1]
    assert run.read_failures(tmp_path / "missing.csv") == []


def test_without_an_aggregated_row_the_totals_are_summed(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_text("\n".join(SAMPLE.splitlines()[:3]) + "\n")
    assert run.total(run.read_stats(path)).requests == 327


# -- is there a shop? ------------------------------------------------------------------------------


def test_no_shop_at_the_host_is_said_plainly() -> None:
    host = f"http://127.0.0.1:{closed_port()}"
    assert run.check_shop(host, timeout=2) == (f"no shop at {host}: is `boutique up` running?")
    assert "must be a URL" in (run.check_shop("127.0.0.1:8080") or "")


async def test_a_shop_that_answers_an_error_is_not_ready(aiohttp_server: Any) -> None:
    app = web.Application()

    async def not_ready(_: web.Request) -> web.Response:
        return web.json_response({}, status=503)

    app.router.add_get("/api/products", not_ready)
    server = await aiohttp_server(app)
    host = str(server.make_url("")).rstrip("/")
    problem = await asyncio.to_thread(run.check_shop, host)
    assert problem == f"the shop at {host} is not ready: GET /api/products answered 503"


def test_load_against_no_shop_fails_at_once_without_starting_locust(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(run, "run_locust", lambda *a, **k: pytest.fail("Locust was started"))
    host = f"http://127.0.0.1:{closed_port()}"
    assert run.main(parse("--host", host)) == 2
    assert capsys.readouterr().err.strip() == (
        f"boutique load: no shop at {host}: is `boutique up` running?"
    )


def test_a_run_with_failures_exits_non_zero_and_prints_the_summary(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    started: list[list[str]] = []

    def fake_locust(argv: list[str], env: dict[str, str] | None = None) -> int:
        started.append(argv)
        assert env is not None and (env["SHOPPER_THINK_MIN"], env["SHOPPER_THINK_MAX"]) == (
            "0.1",
            "0.5",
        )
        (tmp_path / "locust_stats.csv").write_text(SAMPLE)
        return 0  # even if Locust said all was well, the CSV has failures

    monkeypatch.setattr(run, "check_shop", lambda host: None)
    monkeypatch.setattr(run, "run_locust", fake_locust)
    args = parse("--results", str(tmp_path), "--think-min", "0.1", "--think-max", "0.5")
    assert run.main(args) == 1
    out = capsys.readouterr().out
    assert "337 requests (11.2/s), 2 failures; checkouts: 25 paid" in out
    assert f"reports: {tmp_path / 'report.html'}" in out
    assert value_after(started[0], "--csv") == str(tmp_path / "locust")


# -- Ctrl-C ----------------------------------------------------------------------------------------


def test_ctrl_c_is_passed_on_to_locust_once(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    child = (
        "import signal, sys, time, pathlib\n"
        "signal.signal(signal.SIGINT, lambda *_: sys.exit(7))\n"
        f"pathlib.Path({str(ready)!r}).touch()\n"
        "time.sleep(30)\n"
        "sys.exit(1)\n"
    )

    def press_ctrl_c() -> None:
        deadline = time.monotonic() + 20
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGINT)

    before = signal.getsignal(signal.SIGINT)
    threading.Thread(target=press_ctrl_c, daemon=True).start()
    assert run.run_locust([sys.executable, "-c", child]) == 7
    assert signal.getsignal(signal.SIGINT) is before


# -- the shoppers, against a fake shop -------------------------------------------------------------


class FakeShop:
    """Canned answers of the public API: mugs in stock, checkouts that pay, run out of stock or
    decline the 0002 card, and an orders service that is down (every call a 503 problem)."""

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.checkouts = 0

    @staticmethod
    def problem(status: int, code: str, detail: str, **extra: Any) -> web.Response:
        body = {"type": f"https://boutique.local/problems/{code}", "title": "x", "status": status}
        body |= {"detail": detail, "code": code, **extra}
        return web.json_response(body, status=status, content_type="application/problem+json")

    def app(self) -> web.Application:
        mug = {"id": "mug", "available": 50, "image_url": "/api/products/mug/image.svg"}
        cart = {"items": [{"product_id": "mug", "quantity": 1}], "item_count": 1}

        async def checkout(request: web.Request) -> web.Response:
            self.keys.append(request.headers.get("Idempotency-Key", ""))
            body = await request.json()
            if body["card"]["number"] == "4000 0000 0000 0002":
                return self.problem(402, "card_declined", "The card was declined")
            self.checkouts += 1
            if self.checkouts % 2:
                return self.problem(409, "out_of_stock", "Only 0 of mug", product_id="mug")
            return web.json_response({"id": "ord_1", "status": "paid"}, status=201)

        async def orders(_: web.Request) -> web.Response:
            return self.problem(503, "dependency_unavailable", "The orders service is down")

        def answer(data: dict[str, Any], status: int = 200) -> Any:
            async def handler(_: web.Request) -> web.Response:
                return web.json_response(data, status=status)

            return handler

        async def image(_: web.Request) -> web.Response:
            return web.Response(text="<svg/>", content_type="image/svg+xml")

        app = web.Application()
        app.router.add_get("/api/products", answer({"products": [mug]}))
        app.router.add_get("/api/products/mug", answer(mug))
        app.router.add_get("/api/products/mug/image.svg", image)
        app.router.add_post("/api/auth/register", answer({"id": "u_1"}, 201))
        app.router.add_post("/api/auth/login", answer({"token": "t"}))
        app.router.add_get("/api/cart", answer(cart))
        app.router.add_put("/api/cart/items/mug", answer(cart))
        app.router.add_delete("/api/cart/items/mug", answer({"items": [], "item_count": 0}))
        app.router.add_post("/api/checkout", checkout)
        app.router.add_get("/api/orders", orders)
        return app


async def test_the_shoppers_count_outcomes_apart_and_fail_with_status_and_detail(
    aiohttp_server: Any, tmp_path: Path
) -> None:
    shop = FakeShop()
    server = await aiohttp_server(shop.app())
    # one shopper of each kind, and each of their tasks equally likely: every path is taken
    argv = run.headless_argv(str(server.make_url("")), 3, 3, "5s", tmp_path)
    argv.append("--equal-weights")
    env = run.think_env(0.01, 0.05)
    proc = await asyncio.create_subprocess_exec(*argv, env=env, stdout=asyncio.subprocess.DEVNULL)
    assert await asyncio.wait_for(proc.wait(), 60) == 1  # the orders calls failed

    stats = {s.label: s for s in run.read_stats(run.stats_csv(tmp_path))}
    for name in (
        "POST /api/checkout",
        "POST /api/checkout [out of stock]",
        "POST /api/checkout [declined card]",
        "DELETE /api/cart/items/[id]",  # the product that ran out leaves the cart
        "GET /api/products/[id]",
        "GET /api/products/[id]/image.svg",
    ):
        assert stats[name].requests >= 1 and stats[name].failures == 0, name
    orders = stats["GET /api/orders"]
    assert orders.failures == orders.requests >= 1
    assert run.total(list(stats.values())).failures == orders.failures

    with (tmp_path / "locust_failures.csv").open() as f:
        errors = {row["Error"] for row in csv.DictReader(f)}
    assert errors == {
        "CatchResponseError('503 dependency_unavailable: The orders service is down')"
    }
    assert len(shop.keys) == len(set(shop.keys)) and all(len(k) == 36 for k in shop.keys)


def test_the_declined_card_shoppers_are_one_in_twenty() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(run.LOCUSTFILE), "--show-task-ratio-json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    ratios = {name: c["ratio"] for name, c in json.loads(out)["per_class"].items()}
    assert ratios == pytest.approx({"Browser": 0.5, "Buyer": 0.45, "DeclinedBuyer": 0.05})


def test_the_summary_knows_the_locustfiles_checkout_names() -> None:
    text = run.LOCUSTFILE.read_text()
    for name in (run.CHECKOUT, run.CHECKOUT_OUT_OF_STOCK, run.CHECKOUT_DECLINED):
        assert f'"{name}"' in text
