"""Runs the benchmark: starts each stack in turn, prepares it, runs its fixed-rate steps, stops it.

A stack is the local shop started on free ports with fresh stores, with the mesh or without,
tracing on or off, and the tuning knobs. Stacks run one after the other, never side by side, so
each has the machine to itself (bar the load client, which always shares it). Every stack gets
``PRODUCTS_STOCK=1000000`` (stock never runs out) and ``PAYMENT_LATENCY_MS=0`` (the simulated
card network adds no delay of its own).

A step drives one path at one rate with the load client in its own process (``loadgen``) and
returns everything measured; a ladder runs steps at rising rates and stops at the first rate not
sustained.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mesh import topology as topo
from mesh.local import LocalOptions, LocalRun, envoy_binary
from mesh.processes import StartError, port_in_use

from . import machine, procstat, stats
from .loadgen import CARD, ENVOY_REQUESTS, LoadSpec
from .progress import Progress
from .tuning import Knobs, admin_urls

STACK_ENV = {"PRODUCTS_STOCK": "1000000", "PAYMENT_LATENCY_MS": "0"}
PASSWORD = "bench-pass-1234"
STEP_OVERHEAD_S = 2.0  # starting the client, filling carts, draining: for estimates only
STACK_OVERHEAD_S = 20.0  # start, idle window, users: for estimates only


# -- plans ------------------------------------------------------------------------------------


@dataclass
class Plan:
    name: str
    rates: dict[str, list[float]]  # the ladder of each path (same for mesh and no-mesh)
    tracing_rates: dict[str, list[float]]  # fixed rates for tracing on vs off
    tuning_rates: dict[str, list[float]]  # fixed rates for the tuning experiments
    duration_s: float  # each step's measured window
    warmup_s: float
    users: int  # signed-in users for the checkout path
    p99_bound_ms: dict[str, float]
    paths: list[str] = field(default_factory=lambda: ["one-hop", "checkout"])
    modes: list[str] = field(default_factory=lambda: ["no-mesh", "mesh"])
    tracing_cost: bool = True
    max_inflight: int = 256
    idle_s: float = 3.0  # the idle window after start-up (CPU and memory at rest)
    timeout_s: float = 30.0
    foreign_limit: float = 0.2  # vCPU other processes may use during a step before it is redone
    disturbed_retries: int = 2
    refine: int = 0  # extra steps between a ladder's last good rate and its first failure
    # every service runs one instance with the mesh too, as without it (``--no-mesh`` runs one
    # of each), so the two stacks differ only by the mesh
    one_replica: bool = True


def quick_plan() -> Plan:
    """A minute or two: three rates a path, short steps, a small pool of users."""
    return Plan(
        name="quick",
        rates={"one-hop": [50.0, 100.0, 200.0], "checkout": [5.0, 10.0]},
        tracing_rates={"one-hop": [50.0], "checkout": [5.0]},
        tuning_rates={"one-hop": [100.0], "checkout": [5.0]},
        duration_s=4.0,
        warmup_s=1.0,
        users=12,
        p99_bound_ms={"one-hop": 100.0, "checkout": 1000.0},
        idle_s=2.0,
    )


def full_plan() -> Plan:
    """The full run (10 to 15 minutes on 2 cores): finer ladders, longer steps."""
    return Plan(
        name="full",
        rates={
            "one-hop": stats.ladder(25, 800, 2**0.5),
            "checkout": stats.ladder(2, 64, 2**0.5),
        },
        tracing_rates={"one-hop": [50.0, 100.0], "checkout": [5.7, 11.0]},
        tuning_rates={"one-hop": [100.0, 200.0], "checkout": [11.0]},
        duration_s=10.0,
        warmup_s=2.0,
        users=32,
        p99_bound_ms={"one-hop": 100.0, "checkout": 1000.0},
        refine=1,
    )


@dataclass
class StepPlan:
    path: str
    rate: float
    duration_s: float
    warmup_s: float


def smallest_step(plan: Plan) -> StepPlan:
    """The quick mode's smallest step: one-hop at its lowest rate for two seconds."""
    return StepPlan("one-hop", min(plan.rates["one-hop"]), 2.0, 0.5)


def smallest_plan() -> Plan:
    """A plan of only the quick mode's smallest step (shows the harness works, in seconds)."""
    plan = quick_plan()
    step = smallest_step(plan)
    plan.name = "smallest"
    plan.paths = [step.path]
    plan.rates = {step.path: [step.rate]}
    plan.duration_s, plan.warmup_s = step.duration_s, step.warmup_s
    plan.idle_s = 0.5
    plan.tracing_cost = False
    return plan


def one_replica(topology: topo.Topology) -> topo.Topology:
    """The topology with one instance of every service."""
    services = {n: dataclasses.replace(s, replicas=1) for n, s in topology.services.items()}
    return dataclasses.replace(topology, services=services)


# -- addresses ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_block(size: int) -> int:
    """The first port of ``size`` consecutive free ports."""
    for _ in range(200):
        base = random.randrange(20000, 60000 - size)
        if not any(port_in_use(p) for p in range(base, base + size)):
            return base
    raise RuntimeError("no free block of ports")


def stack_options(
    run_dir: Path, mesh: bool, tracing: bool, knobs: Knobs, topology: topo.Topology
) -> LocalOptions:
    instances = sum(s.replicas for s in topology.services.values())
    return LocalOptions(
        run_dir=run_dir,
        mesh=mesh,
        public_port=free_port(),
        redis_port=free_port(),
        base_port=free_block(10 * (instances + 1)),
        ports={name: free_port() for name in topology.services},
        env={**STACK_ENV, **knobs.env},
        fresh=True,
        envoy_concurrency=knobs.envoy_concurrency,
        envoy=knobs.envoy_options(),
        tracing=tracing,
        otlp_port=free_port(),
        traces_port=free_port(),
    )


# -- one stack, as the steps see it ------------------------------------------------------------


@dataclass
class Target:
    """A running stack: where to send requests, which processes to read, which Envoys."""

    label: str
    mesh: bool
    tracing: bool
    base_url: str
    pids: dict[str, int]
    admin_urls: dict[str, str]
    knobs: Knobs = field(default_factory=Knobs)

    @classmethod
    def of(cls, run: LocalRun, label: str | None = None, knobs: Knobs | None = None) -> Target:
        pids = {c.name: c.proc.pid for c in run.supervisor.children if c.proc and c.alive}
        mesh = run.options.mesh
        return cls(
            label=label or ("mesh" if mesh else "no-mesh"),
            mesh=mesh,
            tracing=run.options.tracing,
            base_url=run.public_url,
            pids=pids,
            admin_urls=admin_urls(run),
            knobs=knobs or getattr(run, "knobs", None) or Knobs(),
        )


def group_of(name: str) -> str:
    if name.startswith("envoy:"):
        return "envoys"
    if name in ("client", "redis", "tracestore"):
        return name
    return "apps"


def vcpu_groups(vcpu: dict[str, float], system_vcpu: float | None) -> dict[str, float | None]:
    """vCPU by kind of process; ``stack`` is everything but the client, ``foreign`` what other
    processes on the machine used meanwhile (all cores' busy time less ours)."""
    out: dict[str, float | None] = {
        g: 0.0 for g in ("envoys", "apps", "redis", "tracestore", "client")
    }
    for name, used in vcpu.items():
        out[group_of(name)] = (out[group_of(name)] or 0.0) + used
    ours = sum(vcpu.values())
    out["stack"] = ours - (out["client"] or 0.0)
    out["foreign"] = None if system_vcpu is None else max(0.0, system_vcpu - ours)
    return out


def envoy_load(
    vcpu: dict[str, float], requests: dict[str, dict[str, int]], window_s: float
) -> dict[str, dict[str, float | None]]:
    """Per Envoy: vCPU, requests per second through it (all its HTTP listeners), and vCPU per
    1000 of those (Istio's unit)."""
    out = {}
    for name, used in sorted(vcpu.items()):
        if not name.startswith("envoy:"):
            continue
        rps = sum(requests.get(name, {}).values()) / window_s if window_s > 0 else 0.0
        per_1000 = procstat.per_1000_rps(used, rps)
        out[name] = {"vcpu": used, "rps": rps, "vcpu_per_1000_rps": per_1000}
    return out


def memory_groups(memory: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    """RSS and PSS summed by kind of process, and ``total`` over the whole stack."""
    out: dict[str, dict[str, int]] = {}
    for name, mem in memory.items():
        if name == "client":
            continue
        for group in (group_of(name), "total"):
            slot = out.setdefault(group, {"rss": 0, "pss": 0, "count": 0})
            slot["rss"] += mem.get("rss", 0)
            slot["pss"] += mem.get("pss", 0)
            slot["count"] += 1
    return out


# -- plain HTTP for the untimed parts ---------------------------------------------------------


def _http(
    method: str, url: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if data is not None:
        req.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            raw = resp.read()
            status = resp.status
    except urllib.error.HTTPError as exc:
        raw, status = exc.read(), exc.code
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode(errors="replace")


def product_ids(base_url: str) -> list[str]:
    status, data = _http("GET", f"{base_url}/api/products")
    if status != 200:
        raise RuntimeError(f"GET /api/products answered {status}: {data}")
    return [p["id"] for p in data["products"]]


def make_users(base_url: str, count: int, threads: int = 4) -> list[str]:
    """``count`` signed-up, signed-in users; their bearer tokens. Not timed: each sign-up and
    each login costs a deliberately slow password hash (scrypt)."""
    api = f"{base_url}/api"
    tag = uuid.uuid4().hex[:8]

    def one(i: int) -> str:
        creds = {"email": f"bench-{tag}-{i}@example.com", "password": PASSWORD}
        status, data = _http("POST", f"{api}/auth/register", creds)
        if status != 201:
            raise RuntimeError(f"sign-up answered {status}: {data}")
        status, data = _http("POST", f"{api}/auth/login", creds)
        if status != 200:
            raise RuntimeError(f"login answered {status}: {data}")
        return data["token"]

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, range(count)))


def envoy_counts(urls: dict[str, str]) -> Counter[tuple[str, str]]:
    out: Counter[tuple[str, str]] = Counter()
    for name, url in urls.items():
        query = urllib.parse.urlencode({"filter": ENVOY_REQUESTS})
        with urllib.request.urlopen(f"{url}/stats?{query}", timeout=10) as resp:
            text = resp.read().decode()
        for line in text.splitlines():
            stat, _, value = line.partition(": ")
            if value.strip().isdigit():
                out[(name, stat.split(".")[1])] = int(value)
    return out


CONNECTION_STATS = (
    r"^(cluster\.[a-z]+\.upstream_(cx_total|cx_http1_total|cx_http2_total|rq_total)"
    r"|listener\.[0-9.:_]+\.ssl\.handshake)$"
)


def connection_counts(urls: dict[str, str]) -> dict[str, int]:
    """Upstream connections the Envoys opened (all, HTTP/1.1, HTTP/2), upstream requests they
    sent, and TLS handshakes their listeners took, summed over every Envoy and peer cluster
    (the app's socket and the trace collector left out)."""
    out: Counter[str] = Counter()
    query = urllib.parse.urlencode({"filter": CONNECTION_STATS})
    for url in urls.values():
        with urllib.request.urlopen(f"{url}/stats?{query}", timeout=10) as resp:
            text = resp.read().decode()
        for line in text.splitlines():
            stat, _, value = line.partition(": ")
            if not value.strip().isdigit():
                continue
            parts = stat.split(".")
            if parts[0] == "cluster" and parts[1] in ("app", "otel_collector"):
                continue
            out[parts[-1] if parts[0] == "cluster" else "tls_handshakes"] += int(value)
    return dict(out)


def count_hops(
    target: Target, path: str, tokens: list[str], ids: list[str], samples: int = 4
) -> dict[str, Any]:
    """How many times one request of ``path`` passes through Envoy, counted from the Envoys'
    own request counters around a few requests sent one at a time.

    ``hops``: calls the mesh carries (each ends at one sidecar's inbound listener: the edge
    call from the ingress to the gateway, and every call between services); each is a
    client-side proxy plus a server-side proxy, as in Istio. ``proxy_traversals``: every
    listener the request passes (ingress, inbound and outbound), about twice the hops.
    """
    if not target.admin_urls:
        return {"hops": 0, "proxy_traversals": 0, "per_envoy": {}}
    api = f"{target.base_url}/api"
    total: Counter[tuple[str, str]] = Counter()
    for k in range(samples):
        if path == "checkout":
            auth = {"Authorization": f"Bearer {tokens[0]}"}
            _http("PUT", f"{api}/cart/items/{ids[k % len(ids)]}", {"quantity": 1}, auth)
            before = envoy_counts(target.admin_urls)
            key = {"Idempotency-Key": uuid.uuid4().hex}
            status, data = _http("POST", f"{api}/checkout", {"card": CARD}, {**auth, **key})
            expected = 201
        else:
            before = envoy_counts(target.admin_urls)
            status, data = _http("GET", f"{api}/products/{ids[k % len(ids)]}")
            expected = 200
        after = envoy_counts(target.admin_urls)
        if status != expected:
            raise RuntimeError(f"{path} answered {status} while counting hops: {data}")
        total.update({key: after[key] - before.get(key, 0) for key in after})
    per_envoy: dict[str, dict[str, float]] = {}
    for (name, listener), count in sorted(total.items()):
        if count:
            per_envoy.setdefault(name, {})[listener] = count / samples
    hops = sum(v.get("inbound", 0.0) for v in per_envoy.values())
    traversals = sum(sum(v.values()) for v in per_envoy.values())
    return {"hops": hops, "proxy_traversals": traversals, "per_envoy": per_envoy}


# -- one step -----------------------------------------------------------------------------------


def run_step(
    target: Target,
    path: str,
    rate: float,
    *,
    duration_s: float,
    warmup_s: float,
    ids: list[str],
    tokens: list[str] | None = None,
    p99_bound_ms: float = 100.0,
    max_inflight: int = 256,
    timeout_s: float = 30.0,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Drive ``path`` at ``rate`` through ``target`` with the load client in its own process;
    everything measured, the CPU and memory of the stack's processes, and the verdict."""
    spec = LoadSpec(
        base_url=target.base_url,
        path=path,
        rate=rate,
        duration_s=duration_s,
        warmup_s=warmup_s,
        max_inflight=max_inflight,
        keepalive=target.knobs.keepalive,
        timeout_s=timeout_s,
        product_ids=ids,
        tokens=tokens or [],
        pids=target.pids,
        admin_urls=target.admin_urls,
    )
    what = f"{target.label:<14} {path:<8} {rate:>6g}/s"
    proc = subprocess.Popen(
        [sys.executable, "-m", "loadgenerator.bench.loadgen"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    t0 = time.monotonic()
    expected_s = warmup_s + duration_s
    payload: str | None = spec.to_json()
    try:
        while True:
            try:
                out, err = proc.communicate(payload, timeout=0.25)
                break
            except subprocess.TimeoutExpired:
                payload = None
                if progress:
                    progress.tick(what, min(time.monotonic() - t0, expected_s), expected_s)
                if time.monotonic() - t0 > expected_s + timeout_s + 120:
                    raise RuntimeError(f"the load client did not finish: {what}") from None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"the load client failed ({what}):\n{err.strip()[-2000:]}")
    result = json.loads(out)
    step: dict[str, Any] = {
        "stack": target.label,
        "mesh": target.mesh,
        "tracing": target.tracing,
        "knobs": target.knobs.changes(),
        **result,
    }
    step["vcpu_groups"] = vcpu_groups(result["vcpu"], result["system_vcpu"])
    step["envoys"] = envoy_load(result["vcpu"], result["envoy_requests"], result["window_s"])
    step["memory"] = {name: procstat.memory(pid) for name, pid in target.pids.items()}
    step["p99_bound_ms"] = p99_bound_ms
    step["failed_because"] = stats.verdict(step, p99_bound_ms)
    if progress:
        progress.line(step_line(target.label, step))
    return step


def step_line(label: str, step: dict[str, Any]) -> str:
    lat = step["latency_ms"]
    g = step["vcpu_groups"]
    mark = "ok" if not step["failed_because"] else f"NOT SUSTAINED: {step['failed_because']}"
    if "p50" not in lat:
        return f"{label:<14} {step['path']:<8} {step['rate']:>6g}/s  no answers  {mark}"
    return (
        f"{label:<14} {step['path']:<8} {step['rate']:>6g}/s  "
        f"got {step['achieved_rps']:6.1f}/s  p50 {lat['p50']:6.1f}  p90 {lat['p90']:6.1f}  "
        f"p99 {lat['p99']:7.1f} ms  stack {g['stack']:.2f} vCPU  client {g['client']:.2f}  "
        f"{mark}"
    )


# -- whole stacks -------------------------------------------------------------------------------


@dataclass
class StackSpec:
    label: str
    mesh: bool
    tracing: bool
    knobs: Knobs = field(default_factory=Knobs)
    work: list[tuple[str, list[float], bool]] = field(default_factory=list)  # path, rates, ladder
    variant: str | None = None
    repeat: int | None = None


def measure_idle(target: Target, seconds: float) -> dict[str, Any]:
    """CPU and memory of the stack at rest."""
    before = procstat.sample_cpu(target.pids)
    busy0 = procstat.system_busy_seconds()
    t0 = time.monotonic()
    time.sleep(seconds)
    wall = time.monotonic() - t0
    used = procstat.vcpu(before, procstat.sample_cpu(target.pids), wall)
    busy1 = procstat.system_busy_seconds()
    system = None if busy0 is None or busy1 is None else (busy1 - busy0) / wall
    memory = {name: procstat.memory(pid) for name, pid in target.pids.items()}
    return {
        "window_s": wall,
        "vcpu": used,
        "vcpu_groups": vcpu_groups(used, system),
        "memory": memory,
        "memory_groups": memory_groups(memory),
    }


def estimate_s(plan: Plan, stacks: list[StackSpec]) -> float:
    """An upper bound of the run's length (ladders usually stop earlier)."""
    per_step = plan.warmup_s + plan.duration_s + STEP_OVERHEAD_S
    work = [w for s in stacks for w in s.work]
    steps = sum(len(rates) + (plan.refine if ladder else 0) for _, rates, ladder in work)
    return len(stacks) * (STACK_OVERHEAD_S + plan.idle_s) + steps * per_step


class Bench:
    """Runs stacks one after the other and keeps everything in one results dict."""

    def __init__(
        self,
        plan: Plan,
        progress: Progress | None = None,
        topology_path: Path = topo.DEFAULT_PATH,
        keep_run_dirs: bool = False,
    ) -> None:
        self.plan = plan
        self.progress = progress or Progress(quiet=True)
        self.topology = topo.load(topology_path)
        if plan.one_replica:
            self.topology = one_replica(self.topology)
        self.keep_run_dirs = keep_run_dirs
        self.results: dict[str, Any] = {
            "kind": "boutique-bench",
            "format": 1,
            "started_at": utc_now(),
            "plan": asdict(plan),
            "machine": machine.describe(_envoy_or_none()),
            "stacks": [],
            "steps": [],
            "disturbed_steps": [],
        }

    def run(self, stacks: list[StackSpec]) -> dict[str, Any]:
        self.progress.estimate_s = estimate_s(self.plan, stacks)
        self.results["kind_of_run"] = "tuning" if any(s.variant for s in stacks) else "bench"
        for spec in stacks:
            self.run_stack(spec)
        self.results["finished_at"] = utc_now()
        return self.results

    def run_stack(self, spec: StackSpec) -> None:
        """Start a stack, measure it, stop it."""
        run_dir = Path(tempfile.mkdtemp(prefix="boutique-bench-"))
        what = "with the mesh" if spec.mesh else "without a mesh"
        tracing = "tracing on" if spec.tracing else "tracing off"
        knobs = spec.knobs.changes() or "default"
        self.progress.line(f"starting {spec.label}: {what}, {tracing}, knobs: {knobs}")
        probe = speed_probe()
        run = self.start(spec, run_dir)
        failed = True
        try:
            info = self.measure_stack(run, spec)
            info["speed_probe_ms"] = probe
            failed = False
        finally:
            run.stop()
            if failed:
                self.progress.line(f"{spec.label} failed; its logs are in {run_dir / 'logs'}")
            elif not self.keep_run_dirs:
                shutil.rmtree(run_dir, ignore_errors=True)

    def measure_stack(self, run: LocalRun, spec: StackSpec) -> dict[str, Any]:
        """Measure a running stack: at rest, then its work (ladders and fixed rates)."""
        plan, say = self.plan, self.progress.line
        target = Target.of(run, spec.label, spec.knobs)
        info: dict[str, Any] = {
            "label": spec.label,
            "mesh": target.mesh,
            "tracing": target.tracing,
            "knobs": spec.knobs.changes(),
            "variant": spec.variant,
            "repeat": spec.repeat,
            "started_s": run.started_s,
            "processes": len(target.pids),
        }
        say(f"{spec.label}: {len(target.pids)} processes healthy in {run.started_s or 0:.1f}s")
        info["idle"] = measure_idle(target, plan.idle_s)
        ids = product_ids(target.base_url)
        paths = [path for path, _, _ in spec.work]
        tokens: list[str] = []
        if "checkout" in paths:
            t0 = time.monotonic()
            tokens = make_users(target.base_url, plan.users)
            info["users"] = len(tokens)
            info["users_s"] = time.monotonic() - t0
        info["hops"] = {p: count_hops(target, p, tokens, ids) for p in dict.fromkeys(paths)}
        for path, rates, is_ladder in spec.work:
            todo = list(rates)
            good: float | None = None
            bad: float | None = None
            refine = plan.refine if is_ladder else 0
            while todo:
                rate = todo.pop(0)
                step = self.undisturbed_step(target, path, rate, ids, tokens)
                check_alive(run)
                step["variant"] = spec.variant
                step["repeat"] = spec.repeat
                self.results["steps"].append(step)
                if not step["failed_because"]:
                    good = rate
                elif is_ladder:
                    bad, todo = rate, []  # a ladder ends at its first failure
                if not todo and refine > 0 and good is not None and bad is not None:
                    # narrow the highest sustained rate down: bisect, geometrically
                    middle = stats.nice((good * bad) ** 0.5)
                    if good < middle < bad:
                        todo, refine = [middle], refine - 1
        after = {n: procstat.memory(pid) for n, pid in target.pids.items()}
        info["after"] = {"memory": after, "memory_groups": memory_groups(after)}
        if target.admin_urls:
            info["envoy_connections"] = connection_counts(target.admin_urls)
        self.results["stacks"].append(info)
        return info

    def start(self, spec: StackSpec, run_dir: Path) -> LocalRun:
        """Start a stack on free ports; once more on other ports if it fails (a port taken
        between choosing it and binding it, by another run on this machine)."""
        for attempt in (1, 2):
            options = stack_options(run_dir, spec.mesh, spec.tracing, spec.knobs, self.topology)
            run = LocalRun(self.topology, options)
            try:
                run.start()
                time.sleep(0.5)
                check_alive(run)
                return run
            except (StartError, RuntimeError) as exc:
                run.stop()
                if attempt == 2:
                    raise
                self.progress.line(f"{spec.label} did not start ({exc}); again on other ports")
        raise AssertionError("unreachable")

    def undisturbed_step(
        self, target: Target, path: str, rate: float, ids: list[str], tokens: list[str]
    ) -> dict[str, Any]:
        """A step, redone (up to ``disturbed_retries`` times) while other processes on the
        machine used more than ``foreign_limit`` vCPU during it; disturbed tries are kept."""
        plan = self.plan
        for attempt in range(plan.disturbed_retries + 1):
            step = run_step(
                target,
                path,
                rate,
                duration_s=plan.duration_s,
                warmup_s=plan.warmup_s,
                ids=ids,
                tokens=tokens,
                p99_bound_ms=plan.p99_bound_ms[path],
                max_inflight=plan.max_inflight,
                timeout_s=plan.timeout_s,
                progress=self.progress,
            )
            foreign = step["vcpu_groups"]["foreign"]
            if foreign is None or foreign <= plan.foreign_limit:
                break
            if attempt == plan.disturbed_retries:
                self.progress.line(f"  still disturbed ({foreign:.2f} vCPU elsewhere); kept")
                break
            self.results["disturbed_steps"].append(step)
            self.progress.line(
                f"  disturbed: other processes used {foreign:.2f} vCPU meanwhile; again in 5 s"
            )
            time.sleep(5)
        return step


def speed_probe(rounds: int = 5) -> float:
    """Milliseconds for a fixed piece of work like the shop's (Python bytecode, JSON, hashing
    a buffer larger than the CPU's caches): the best of a few rounds, taken a second after the
    previous stack stopped, while the machine is quiet. When it differs much between stacks,
    the machine itself ran at different speeds (a busy neighbour on a shared host, a CPU
    clocking down). It does not catch every such change: repeats tell more."""
    time.sleep(1.0)
    doc = {"items": [{"id": f"p{i}", "price_cents": i * 7, "name": "x" * 20} for i in range(400)]}
    buffer = bytes(32 * 1024 * 1024)
    best = math.inf
    for _ in range(rounds):
        t0 = time.perf_counter()
        total = 0
        for i in range(100_000):
            total += i * i % 7
        for _ in range(20):
            json.loads(json.dumps(doc))
        hashlib.sha256(buffer).digest()
        best = min(best, time.perf_counter() - t0)
        time.sleep(0.05)
    return best * 1000


def check_alive(run: LocalRun) -> None:
    """Every process of the stack still runs (one that died may leave its port to another)."""
    gone = run.supervisor.first_exit()
    if gone is not None:
        code = gone.proc.returncode if gone.proc else None
        raise RuntimeError(f"{gone.name} exited (code {code}); end of {gone.log}:\n{gone.tail()}")


def bench_stacks(plan: Plan, knobs: Knobs) -> list[StackSpec]:
    """The stacks of ``boutique bench``: without the mesh, with it, and with it and tracing on
    (each with tracing off unless said), same rates for all."""
    ladders = [(p, plan.rates[p], True) for p in plan.paths]
    stacks = []
    if "no-mesh" in plan.modes:
        stacks.append(StackSpec("no-mesh", mesh=False, tracing=False, knobs=knobs, work=ladders))
    if "mesh" in plan.modes:
        stacks.append(StackSpec("mesh", mesh=True, tracing=False, knobs=knobs, work=ladders))
        if plan.tracing_cost:
            fixed = [(p, plan.tracing_rates[p], False) for p in plan.paths]
            stacks.append(
                StackSpec("mesh+tracing", mesh=True, tracing=True, knobs=knobs, work=fixed)
            )
    return stacks


# The tuning experiments: each a variant of the mesh (tracing off unless it says otherwise).
BSP_BATCHED = {
    "OTEL_BSP_SCHEDULE_DELAY": "5000",
    "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "2048",
    "OTEL_BSP_MAX_QUEUE_SIZE": "8192",
}
VARIANTS: dict[str, tuple[bool, bool, Callable[[], Knobs]]] = {
    # name: (mesh, tracing, knobs)
    "no-mesh": (False, False, Knobs),
    "baseline": (True, False, Knobs),
    "envoy-concurrency-1": (True, False, lambda: Knobs(envoy_concurrency=1)),
    "client-keepalive-off": (True, False, lambda: Knobs(keepalive=False)),
    "sidecar-http2": (True, False, lambda: Knobs(sidecar_http2=True)),
    "sidecar-no-pool": (True, False, lambda: Knobs(sidecar_pool=False)),
    "no-access-log": (True, False, lambda: Knobs(access_log=False)),
    "tracing": (True, True, Knobs),
    "tracing-envoy-batched": (True, True, lambda: Knobs(envoy_min_flush_spans=256)),
    "tracing-bsp-batched": (True, True, lambda: Knobs(env=dict(BSP_BATCHED))),
}


def tuning_stacks(plan: Plan, variants: list[str], repeats: int) -> list[StackSpec]:
    """Every variant at the plan's tuning rates, repeated; repeats interleave (A B C A B C) so
    a slow drift of the machine spreads over all variants instead of landing on one."""
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown tuning variant(s) {unknown}; known: {', '.join(VARIANTS)}")
    stacks = []
    for r in range(1, repeats + 1):
        for name in variants:
            mesh, tracing, knobs = VARIANTS[name]
            work = [(p, plan.tuning_rates[p], False) for p in plan.paths]
            label = name if repeats == 1 else f"{name}#{r}"
            stacks.append(
                StackSpec(label, mesh, tracing, knobs(), work=work, variant=name, repeat=r)
            )
    return stacks


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _envoy_or_none() -> str | None:
    try:
        return envoy_binary()
    except Exception:
        return None
