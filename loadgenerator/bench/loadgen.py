"""The open-loop, constant-rate load client (as Fortio's ``-qps`` or wrk2 keep a rate).

Request ``i`` is due at ``start + i / rate``, whether or not earlier requests have answered, and
its latency is measured from that intended time, not from when it was actually sent: a stall
anywhere (server, mesh, or this client) shows in the latency instead of silently lowering the
rate (no coordinated omission). At most ``max_inflight`` requests are outstanding; a request
due while that many are, is not sent and counts as dropped. Connections are kept alive unless
``keepalive`` is off. Latencies are kept exactly (a list, sorted at the end).

A warm-up (``warmup_s``, same rate) opens connections and fills caches; only the requests due
after it are measured. At the window's start and end the client reads the CPU seconds of the
processes it is given (and its own) from ``/proc``, all cores' busy time, and the request
counters of the Envoys' listeners, so the CPU of exactly the measured window is known.

It runs in its own process
(``python -m loadgenerator.bench.loadgen < spec.json > result.json``) so no
other work shares its event loop; ``run_step`` in ``runner`` starts it.

Paths:
- ``browse``: ``GET /api/products``, the catalogue; 200 expected.
- ``one-hop``: ``GET /api/products/{id}``, ids in turn; 200 expected.
- ``checkout``: ``POST /api/checkout`` by a signed-in user with one item in the cart, a fresh
  ``Idempotency-Key`` and the card that succeeds; 201 expected. Each user's cart is refilled
  (``PUT /api/cart/items/{id}``, not timed) after each checkout and before the first; a checkout
  due while no user has a full cart waits for one, and the wait counts in its latency.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import aiohttp

from mesh.admin import AsyncAdmin

from . import codec, procstat, stats
from .model import LoadResult

PATHS = ("browse", "one-hop", "checkout")
CARD = {"number": "4242424242424242", "exp_month": 12, "exp_year": 2035, "cvc": "123"}
EXPECTED = {"browse": 200, "one-hop": 200, "checkout": 201}
ENVOY_REQUESTS = r"^http\.(inbound|outbound|ingress)\.downstream_rq_total$"


@dataclass
class LoadSpec:
    base_url: str  # the public port: the ingress, or the gateway itself without a mesh
    path: str  # one of PATHS
    rate: float  # requests per second, constant
    duration_s: float  # the measured window
    warmup_s: float = 1.0
    max_inflight: int = 256
    keepalive: bool = True
    timeout_s: float = 30.0
    product_ids: list[str] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)  # signed-in users (checkout)
    pids: dict[str, int] = field(default_factory=dict)  # processes whose CPU is read
    admin_urls: dict[str, str] = field(default_factory=dict)  # Envoys whose requests are counted
    window_mark: str = ""  # a file created when the measured window starts (for profilers)

    def __post_init__(self) -> None:
        if self.path not in PATHS:
            raise ValueError(f"unknown path {self.path!r}; one of {', '.join(PATHS)}")
        if self.rate <= 0 or self.duration_s <= 0 or self.warmup_s < 0:
            raise ValueError("rate and duration are positive, warm-up not negative")
        if not self.product_ids:
            raise ValueError("no product ids to ask for")
        if self.path == "checkout" and not self.tokens:
            raise ValueError("a checkout needs signed-in users")

    @classmethod
    def from_json(cls, text: str) -> LoadSpec:
        return cls(**json.loads(text))

    def to_json(self) -> str:
        return json.dumps(asdict(self))


async def envoy_requests(http: aiohttp.ClientSession, admin_url: str) -> dict[str, int]:
    """Requests taken so far by each HTTP listener (``inbound``, ``outbound``, ``ingress``) of
    one Envoy, from its admin ``/stats``."""
    counted = await AsyncAdmin(admin_url, http).stats(ENVOY_REQUESTS)
    return {name.split(".")[1]: value for name, value in counted.items()}


async def all_envoy_requests(
    http: aiohttp.ClientSession, admin_urls: dict[str, str]
) -> dict[str, dict[str, int]]:
    names = list(admin_urls)
    counts = await asyncio.gather(*(envoy_requests(http, admin_urls[n]) for n in names))
    return dict(zip(names, counts, strict=True))


class Workload:
    """One kind of request; ``request`` returns the HTTP status."""

    def __init__(self, spec: LoadSpec, http: aiohttp.ClientSession) -> None:
        self.spec = spec
        self.http = http
        self.api = spec.base_url.rstrip("/") + "/api"
        self.extra: Counter[str] = Counter()  # what else happened (refills, waits)
        self.samples: list[str] = []  # the first few unexpected answers, for the reader

    def answered(self, status: int, body: bytes) -> int:
        if status != EXPECTED[self.spec.path] and len(self.samples) < 3:
            self.samples.append(f"{status}: {body[:300].decode(errors='replace')}")
        return status

    async def prepare(self) -> None:
        """Untimed set-up before the first request."""

    async def request(self, i: int) -> int:
        raise NotImplementedError

    def close(self) -> None:
        """Stop any background work."""


class Browse(Workload):
    async def request(self, i: int) -> int:
        async with self.http.get(f"{self.api}/products") as resp:
            return self.answered(resp.status, await resp.read())


class OneHop(Workload):
    async def request(self, i: int) -> int:
        ids = self.spec.product_ids
        async with self.http.get(f"{self.api}/products/{ids[i % len(ids)]}") as resp:
            return self.answered(resp.status, await resp.read())


class Checkout(Workload):
    def __init__(self, spec: LoadSpec, http: aiohttp.ClientSession) -> None:
        super().__init__(spec, http)
        self.ready: asyncio.Queue[int] = asyncio.Queue()
        self.refills: set[asyncio.Task[None]] = set()
        self.turn = 0

    def auth(self, user: int) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.spec.tokens[user]}"}

    async def fill(self, user: int) -> bool:
        ids = self.spec.product_ids
        self.turn += 1
        pid = ids[(user + self.turn) % len(ids)]
        try:
            async with self.http.put(
                f"{self.api}/cart/items/{pid}", json={"quantity": 1}, headers=self.auth(user)
            ) as resp:
                await resp.read()
                return resp.status == 200
        except (TimeoutError, aiohttp.ClientError):
            return False

    async def prepare(self) -> None:
        sem = asyncio.Semaphore(8)

        async def one(user: int) -> None:
            async with sem:
                if not await self.fill(user):
                    raise RuntimeError(f"could not fill the cart of user {user}")
            self.ready.put_nowait(user)

        await asyncio.gather(*(one(u) for u in range(len(self.spec.tokens))))

    async def refill(self, user: int) -> None:
        if not await self.fill(user):
            self.extra["refill_errors"] += 1
        self.extra["refills"] += 1
        self.ready.put_nowait(user)

    async def request(self, i: int) -> int:
        if self.ready.empty():
            self.extra["waited_for_user"] += 1
        user = await self.ready.get()
        try:
            async with self.http.post(
                f"{self.api}/checkout",
                json={"card": CARD},
                headers={**self.auth(user), "Idempotency-Key": uuid.uuid4().hex},
            ) as resp:
                return self.answered(resp.status, await resp.read())
        finally:
            task = asyncio.ensure_future(self.refill(user))
            self.refills.add(task)
            task.add_done_callback(self.refills.discard)

    def close(self) -> None:
        for task in list(self.refills):
            task.cancel()


WORKLOADS: dict[str, type[Workload]] = {"browse": Browse, "one-hop": OneHop, "checkout": Checkout}


@dataclass
class _Mark:
    """What is read at a window's edge."""

    t: float
    cpu: dict[str, float]
    busy: float | None


def _mark(loop: asyncio.AbstractEventLoop, pids: dict[str, int]) -> _Mark:
    return _Mark(loop.time(), procstat.sample_cpu(pids), procstat.system_busy_seconds())


def _window_starts(spec: LoadSpec) -> None:
    """Tell a profiler waiting for the window (an empty file, created at once)."""
    if spec.window_mark:
        Path(spec.window_mark).touch()


class _Driver:
    """Sends the requests at their due times and keeps what the measured ones got."""

    def __init__(self, spec: LoadSpec, work: Workload, loop: asyncio.AbstractEventLoop) -> None:
        self.spec, self.work, self.loop = spec, work, loop
        self.expected = EXPECTED[spec.path]
        self.latencies: list[float] = []
        self.lags: list[float] = []
        self.errors: Counter[str] = Counter()
        self.counts: Counter[str] = Counter()
        self.inflight = 0
        self.measured: set[asyncio.Task[None]] = set()

    async def one(self, i: int, due: float, measure: bool) -> None:
        loop = self.loop
        self.inflight += 1
        if measure:
            self.lags.append((loop.time() - due) * 1000)
        try:
            status = await self.work.request(i)
        except TimeoutError:
            if measure:
                self.errors["timeout"] += 1
            return
        except aiohttp.ClientError as exc:
            if measure:
                self.errors[type(exc).__name__] += 1
            return
        finally:
            self.inflight -= 1
        if not measure:
            return
        if status == self.expected:
            self.latencies.append((loop.time() - due) * 1000)
            self.counts["ok"] += 1
        else:
            self.errors[f"http {status}"] += 1

    def send(self, i: int, due: float, measure: bool) -> None:
        """Request ``i`` now, unless ``max_inflight`` are outstanding (then it is dropped)."""
        if self.inflight >= self.spec.max_inflight:
            if measure:
                self.counts["dropped"] += 1
            return
        if measure:
            self.counts["sent"] += 1
        task = asyncio.ensure_future(self.one(i, due, measure))
        if measure:
            self.measured.add(task)

    async def finish(self) -> None:
        """The requests still in flight get their full timeout to answer."""
        if self.measured:
            _, pending = await asyncio.wait(self.measured, timeout=self.spec.timeout_s + 5)
            for task in pending:
                task.cancel()
                self.errors["unfinished"] += 1


@dataclass
class _Window:
    """The measured window's edges: CPU, busy time and the Envoys' request counters."""

    first: _Mark
    last: _Mark
    envoy: dict[str, dict[str, int]]


async def _drive(
    spec: LoadSpec, driver: _Driver, admin: aiohttp.ClientSession, pids: dict[str, int]
) -> _Window:
    """The warm-up and the window at ``spec.rate``, in open loop."""
    loop = driver.loop
    n_warm = round(spec.warmup_s * spec.rate)
    n = max(1, round(spec.duration_s * spec.rate))
    start = loop.time() + 0.02
    first: _Mark | None = None
    before: asyncio.Task[dict[str, dict[str, int]]] | None = None
    for i in range(n_warm + n):
        due = start + i / spec.rate
        if (delay := due - loop.time()) > 0:
            await asyncio.sleep(delay)
        if i == n_warm:
            first = _mark(loop, pids)
            before = asyncio.ensure_future(all_envoy_requests(admin, spec.admin_urls))
            _window_starts(spec)
        driver.send(i, due, i >= n_warm)
    if (delay := start + (n_warm + n) / spec.rate - loop.time()) > 0:
        await asyncio.sleep(delay)
    last = _mark(loop, pids)
    after = await all_envoy_requests(admin, spec.admin_urls)
    assert first is not None and before is not None
    counted = await before
    envoy = {
        name: {k: now[k] - counted.get(name, {}).get(k, 0) for k in now}
        for name, now in after.items()
    }
    return _Window(first, last, envoy)


async def run(spec: LoadSpec) -> LoadResult:
    """Drive ``spec.path`` at ``spec.rate`` for the warm-up and the window; the numbers."""
    loop = asyncio.get_running_loop()
    pids = {**spec.pids, "client": os.getpid()}
    connector = aiohttp.TCPConnector(limit=0, force_close=not spec.keepalive)
    timeout = aiohttp.ClientTimeout(total=spec.timeout_s)
    async with (
        aiohttp.ClientSession(connector=connector, timeout=timeout) as http,
        aiohttp.ClientSession() as admin,
    ):
        work = WORKLOADS[spec.path](spec, http)
        t_prep = loop.time()
        await work.prepare()
        prepare_s = loop.time() - t_prep
        driver = _Driver(spec, work, loop)
        window = await _drive(spec, driver, admin, pids)
        await driver.finish()
        work.close()
    return _result(spec, driver, window, prepare_s)


def _result(spec: LoadSpec, driver: _Driver, window: _Window, prepare_s: float) -> LoadResult:
    first, last = window.first, window.last
    wall = last.t - first.t
    used = procstat.vcpu(first.cpu, last.cpu, wall)
    system = None
    if first.busy is not None and last.busy is not None:
        system = max(0.0, (last.busy - first.busy) / wall)
    counts, errors = driver.counts, driver.errors
    return LoadResult(
        path=spec.path,
        rate=spec.rate,
        duration_s=spec.duration_s,
        warmup_s=spec.warmup_s,
        keepalive=spec.keepalive,
        max_inflight=spec.max_inflight,
        window_s=wall,
        scheduled=max(1, round(spec.duration_s * spec.rate)),
        sent=counts["sent"],
        ok=counts["ok"],
        dropped=counts["dropped"],
        errors=dict(errors),
        errors_total=sum(errors.values()),
        achieved_rps=counts["ok"] / wall,
        latency_ms=stats.summarize(driver.latencies),
        send_lag_ms=stats.summarize(driver.lags),
        cpu_s={k: last.cpu[k] - first.cpu[k] for k in used},
        vcpu=used,
        system_vcpu=system,
        envoy_requests=window.envoy,
        prepare_s=prepare_s,
        error_samples=driver.work.samples,
        refills=driver.work.extra["refills"],
        refill_errors=driver.work.extra["refill_errors"],
        waited_for_user=driver.work.extra["waited_for_user"],
    )


def main() -> int:
    spec = LoadSpec.from_json(sys.stdin.read())
    t0 = time.monotonic()
    result = asyncio.run(run(spec))
    result.client_runtime_s = time.monotonic() - t0
    json.dump(codec.dump(result), sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
