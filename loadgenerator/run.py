"""``boutique load``: drive the shop with the Locust shoppers of ``locustfile.py``.

Headless (the default) for a fixed time, writing CSV stats and an HTML report into ``--results``
and printing a short summary; or with Locust's web UI (``--web``). Locust always runs as a
subprocess (``python -m locust``): its gevent monkey-patching never touches this process. The exit
code is non-zero when any request failed, so scripts and CI can rely on it.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
DEFAULT_HOST = "http://127.0.0.1:8080"
CSV_PREFIX = "locust"  # Locust writes locust_stats.csv, locust_failures.csv, ...
HTML_REPORT = "report.html"
# The request names of locustfile.py's checkouts (not imported: that would import Locust).
CHECKOUT = "/api/checkout"
CHECKOUT_OUT_OF_STOCK = "/api/checkout [out of stock]"
CHECKOUT_DECLINED = "/api/checkout [declined card]"
RUN_TIME = re.compile(r"\d+|(?=\d)(\d+h)?(\d+m)?(\d+s)?")


def run_time(value: str) -> str:
    """Locust's run time: ``30s``, ``5m``, ``1h30m``, or plain seconds; more than none."""
    if not RUN_TIME.fullmatch(value) or not any(int(n) for n in re.findall(r"\d+", value)):
        raise argparse.ArgumentTypeError(f"{value!r} is not a run time like 30s, 5m or 1h30m")
    return value


def positive(kind: type[int] | type[float]) -> Callable[[str], float]:
    def parse(value: str) -> float:
        try:
            number = kind(value)
        except ValueError:
            number = 0
        if number <= 0:
            raise argparse.ArgumentTypeError(f"{value!r} is not a positive number")
        return number

    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--host", default=DEFAULT_HOST, help=f"the shop (default {DEFAULT_HOST})")
    add("-u", "--users", type=positive(int), default=10, metavar="N", help="shoppers (default 10)")
    add(
        "-r",
        "--spawn-rate",
        type=positive(float),
        default=2,
        metavar="N",
        help="shoppers started per second (default 2)",
    )
    add(
        "-t",
        "--run-time",
        type=run_time,
        default="1m",
        metavar="TIME",
        help="how long: 30s, 5m, 1h30m (default 1m)",
    )
    add(
        "--results",
        metavar="DIR",
        help="CSV stats and the HTML report go here (default results/load-<timestamp>/)",
    )
    add(
        "--think-min",
        type=float,
        metavar="SECONDS",
        help="shortest pause between a shopper's steps (default $SHOPPER_THINK_MIN or 1)",
    )
    add(
        "--think-max",
        type=float,
        metavar="SECONDS",
        help="longest pause between a shopper's steps (default $SHOPPER_THINK_MAX or 5)",
    )
    add("--web", action="store_true", help="run Locust's web UI instead, and start from there")
    add(
        "--web-port",
        type=positive(int),
        default=8089,
        metavar="PORT",
        help="the web UI's port (default 8089)",
    )
    add(
        "--web-host",
        default="127.0.0.1",
        metavar="ADDRESS",
        help="the web UI's address (default 127.0.0.1; 0.0.0.0 in a container)",
    )


# -- argv ------------------------------------------------------------------------------------------


def _locust(host: str) -> list[str]:
    return [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--host", host.rstrip("/")]


def headless_argv(
    host: str, users: int, spawn_rate: float, run_time: str, results: Path
) -> list[str]:
    """A fixed-time headless run writing CSV stats and an HTML report into ``results``."""
    return [
        *_locust(host),
        "--headless",
        *("-u", str(users), "-r", _number(spawn_rate), "-t", run_time),
        *("--csv", str(results / CSV_PREFIX), "--html", str(results / HTML_REPORT)),
        "--only-summary",
        *("--exit-code-on-error", "1", "--loglevel", "WARNING"),
    ]


def web_argv(
    host: str, users: int, spawn_rate: float, web_port: int, web_host: str = "127.0.0.1"
) -> list[str]:
    """Locust's web UI (on localhost by default); ``users`` and ``spawn_rate`` fill in its form."""
    return [
        *_locust(host),
        *("--web-host", web_host, "--web-port", str(web_port)),
        *("-u", str(users), "-r", _number(spawn_rate)),
        *("--exit-code-on-error", "1", "--loglevel", "WARNING"),
    ]


def background_argv(host: str, users: int = 3, spawn_rate: float = 1) -> list[str]:
    """A steady, endless headless load (``boutique up --load``): quiet, no reports."""
    return [
        *_locust(host),
        "--headless",
        *("-u", str(users), "-r", _number(spawn_rate)),
        *("--only-summary", "--loglevel", "ERROR"),
    ]


def think_env(think_min: float | None, think_max: float | None) -> dict[str, str]:
    """The environment for Locust: ours, plus the shoppers' think times when given."""
    env = dict(os.environ)
    if think_min is not None:
        env["SHOPPER_THINK_MIN"] = _number(think_min)
    if think_max is not None:
        env["SHOPPER_THINK_MAX"] = _number(think_max)
    low = float(env.get("SHOPPER_THINK_MIN", "1"))
    high = float(env.get("SHOPPER_THINK_MAX", "5"))
    if not 0 <= low <= high:
        raise ValueError(f"think times must be 0 <= min <= max, not {low} and {high}")
    return env


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


# -- is there a shop? ------------------------------------------------------------------------------


def check_shop(host: str, timeout: float = 5.0) -> str | None:
    """None when the shop answers ``GET /api/products``; else what is wrong, for people."""
    if not host.startswith(("http://", "https://")):
        return f"--host must be a URL like {DEFAULT_HOST}, not {host!r}"
    url = host.rstrip("/") + "/api/products"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no proxy
    try:
        with opener.open(url, timeout=timeout) as resp:
            resp.read()
    except urllib.error.HTTPError as exc:
        return f"the shop at {host} is not ready: GET /api/products answered {exc.code}"
    except (OSError, ValueError):  # refused, unknown host, timeout, malformed URL
        return f"no shop at {host}: is `boutique up` running?"
    return None


# -- the stats Locust wrote ------------------------------------------------------------------------


@dataclass(frozen=True)
class Stat:
    """One row of Locust's ``*_stats.csv``: a request name, or the ``Aggregated`` total."""

    method: str
    name: str
    requests: int
    failures: int
    p50_ms: float | None
    p95_ms: float | None
    rps: float

    @property
    def label(self) -> str:
        return f"{self.method} {self.name}".strip()


def stats_csv(results: Path) -> Path:
    return results / f"{CSV_PREFIX}_stats.csv"


def read_stats(path: Path) -> list[Stat]:
    """The rows of a Locust stats CSV, the ``Aggregated`` row last."""
    with path.open(newline="", encoding="utf-8") as f:
        return [
            Stat(
                method=row["Type"],
                name=row["Name"],
                requests=int(row["Request Count"]),
                failures=int(row["Failure Count"]),
                p50_ms=_ms(row.get("50%")),
                p95_ms=_ms(row.get("95%")),
                rps=float(row["Requests/s"] or 0),
            )
            for row in csv.DictReader(f)
        ]


def read_failures(path: Path) -> list[tuple[str, str, int]]:
    """(request, error, occurrences) from a Locust failures CSV, most frequent first."""
    if not path.exists():
        return []
    with path.open(newline="", encoding="utf-8") as f:
        rows = [
            (f"{r['Method']} {r['Name']}", r["Error"], int(r["Occurrences"]))
            for r in csv.DictReader(f)
        ]
    return sorted(rows, key=lambda r: -r[2])


def _ms(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:  # "N/A" when nothing was measured
        return None


def total(stats: list[Stat]) -> Stat:
    found = [s for s in stats if s.name == "Aggregated"]
    if found:
        return found[0]
    requests, failures = sum(s.requests for s in stats), sum(s.failures for s in stats)
    return Stat("", "Aggregated", requests, failures, None, None, sum(s.rps for s in stats))


def checkouts(stats: list[Stat]) -> dict[str, int]:
    """How the checkouts ended: paid, out of stock, declined (as the declined shoppers expect)."""
    count = {s.name: s.requests - s.failures for s in stats if s.method == "POST"}
    return {
        "paid": count.get(CHECKOUT, 0),
        "out of stock": count.get(CHECKOUT_OUT_OF_STOCK, 0),
        "declined": count.get(CHECKOUT_DECLINED, 0),
    }


def summary(stats: list[Stat], failures: list[tuple[str, str, int]] | None = None) -> str:
    """A short report: totals, checkouts, and p50/p95 per request name."""
    all_ = total(stats)
    ends = checkouts(stats)
    lines = [
        f"{all_.requests} requests ({all_.rps:.1f}/s), {all_.failures} failures; "
        f"checkouts: {ends['paid']} paid, {ends['out of stock']} out of stock, "
        f"{ends['declined']} declined (test card 0002)",
        "",
        f"{'request':<46} {'count':>7} {'fails':>6} {'p50 ms':>7} {'p95 ms':>7}",
    ]
    for s in [s for s in stats if s.name != "Aggregated"] + [all_]:
        lines.append(
            f"{s.label:<46} {s.requests:>7} {s.failures:>6} {_fmt(s.p50_ms):>7} {_fmt(s.p95_ms):>7}"
        )
    if failures:
        lines += ["", "failures (most frequent first):"]
        lines += [f"{n:>6}x {request}: {error}" for request, error, n in failures[:5]]
    return "\n".join(lines)


def _fmt(ms: float | None) -> str:
    return "-" if ms is None else f"{ms:.0f}"


# -- running Locust --------------------------------------------------------------------------------


@contextmanager
def _forwarding_signals(proc: subprocess.Popen[bytes]) -> Iterator[None]:
    """Pass Ctrl-C (SIGINT) and SIGTERM on to Locust, which stops and writes its reports."""

    def forward(signum: int, _frame: object) -> None:
        if proc.poll() is None:
            proc.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_locust(argv: list[str], env: dict[str, str] | None = None) -> int:
    """Run Locust to its end and answer its exit code.

    Locust gets its own session, so the terminal's Ctrl-C reaches only us, and we pass each one
    on: a single SIGINT lets Locust stop cleanly and write its reports."""
    in_main = threading.current_thread() is threading.main_thread()
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, start_new_session=in_main)
    if not in_main:  # signal handlers can only be installed in the main thread
        return proc.wait()
    with _forwarding_signals(proc):
        return proc.wait()


def default_results() -> Path:
    return Path("results") / time.strftime("load-%Y%m%d-%H%M%S")


def main(args: argparse.Namespace) -> int:
    host = args.host.rstrip("/")
    problem = check_shop(host)
    if problem:
        print(f"boutique load: {problem}", file=sys.stderr)
        return 2
    try:
        env = think_env(args.think_min, args.think_max)
    except ValueError as exc:
        print(f"boutique load: {exc}", file=sys.stderr)
        return 2

    if args.web:
        print(f"Locust's web UI: http://{args.web_host}:{args.web_port} (shoppers against {host})")
        print("Ctrl-C stops it.", flush=True)
        return run_locust(
            web_argv(host, args.users, args.spawn_rate, args.web_port, args.web_host), env
        )

    results = Path(args.results) if args.results else default_results()
    results.mkdir(parents=True, exist_ok=True)
    print(
        f"{args.users} shoppers against {host} for {args.run_time} "
        f"(Ctrl-C stops early); reports in {results}/",
        flush=True,
    )
    argv = headless_argv(host, args.users, args.spawn_rate, args.run_time, results)
    code = run_locust(argv, env)
    if not stats_csv(results).exists():
        print(f"boutique load: Locust wrote no stats (exit code {code})", file=sys.stderr)
        return code or 1
    stats = read_stats(stats_csv(results))
    print("\n" + summary(stats, read_failures(results / f"{CSV_PREFIX}_failures.csv")))
    print(f"\nreports: {results / HTML_REPORT}, {stats_csv(results)}")
    if code == 0 and total(stats).failures:
        code = 1
    return code
