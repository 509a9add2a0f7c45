"""The untimed parts of a stack's measurement: plain HTTP to set it up (products, users), the
Envoys' counters read around single requests (hops) and over a run (connections), and a probe
of the machine's own speed."""

from __future__ import annotations

import hashlib
import json
import math
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from mesh.admin import Admin

from .loadgen import CARD, ENVOY_REQUESTS
from .model import Hops
from .stack import Target

PASSWORD = "bench-pass-1234"
CONNECTION_STATS = (
    r"^(cluster\.[a-z]+\.upstream_(cx_total|cx_http1_total|cx_http2_total|rq_total)"
    r"|listener\.[0-9.:_]+\.ssl\.handshake)$"
)


def http(
    method: str, url: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    """One request, untimed: its status and its body (JSON where it is)."""
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
    status, data = http("GET", f"{base_url}/api/products")
    if status != 200:
        raise RuntimeError(f"GET /api/products answered {status}: {data}")
    return [p["id"] for p in data["products"]]


def make_users(base_url: str, count: int, threads: int = 4) -> list[str]:
    """``count`` signed-up, signed-in users; their bearer tokens. Not timed: each sign-up and
    each login costs a deliberately slow password hash (scrypt)."""
    api = f"{base_url}/api"
    tag = uuid.uuid4().hex[:8]

    def signing(path: str, creds: dict[str, str]) -> tuple[int, Any]:
        """The edge rate-limits sign-up and sign-in (429, Retry-After): wait it out."""
        for _ in range(60):
            status, data = http("POST", f"{api}/auth/{path}", creds)
            if status != 429:
                break
            time.sleep(1)
        return status, data

    def one(i: int) -> str:
        creds = {"email": f"bench-{tag}-{i}@example.com", "password": PASSWORD}
        status, data = signing("register", creds)
        if status != 201:
            raise RuntimeError(f"sign-up answered {status}: {data}")
        status, data = signing("login", creds)
        if status != 200:
            raise RuntimeError(f"login answered {status}: {data}")
        return data["token"]

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, range(count)))


def envoy_counts(urls: dict[str, str]) -> Counter[tuple[str, str]]:
    """Requests taken so far by each Envoy's HTTP listeners, by (Envoy, listener)."""
    out: Counter[tuple[str, str]] = Counter()
    for name, url in urls.items():
        for stat, value in Admin(url).stats(ENVOY_REQUESTS).items():
            out[(name, stat.split(".")[1])] = value
    return out


def connection_counts(urls: dict[str, str]) -> dict[str, int]:
    """Upstream connections the Envoys opened (all, HTTP/1.1, HTTP/2), upstream requests they
    sent, and TLS handshakes their listeners took, summed over every Envoy and peer cluster
    (the app's socket and the trace collector left out)."""
    out: Counter[str] = Counter()
    for url in urls.values():
        for stat, value in Admin(url).stats(CONNECTION_STATS).items():
            parts = stat.split(".")
            if parts[0] == "cluster" and parts[1] in ("app", "otel_collector"):
                continue
            out[parts[-1] if parts[0] == "cluster" else "tls_handshakes"] += value
    return dict(out)


def _one_request(target: Target, path: str, tokens: list[str], product: str) -> Counter:
    """What one request of ``path`` added to the Envoys' request counters."""
    api = f"{target.base_url}/api"
    if path == "checkout":
        auth = {"Authorization": f"Bearer {tokens[0]}"}
        http("PUT", f"{api}/cart/items/{product}", {"quantity": 1}, auth)
        before = envoy_counts(target.admin_urls)
        key = {"Idempotency-Key": uuid.uuid4().hex}
        status, data = http("POST", f"{api}/checkout", {"card": CARD}, {**auth, **key})
        expected = 201
    else:
        before = envoy_counts(target.admin_urls)
        url = f"{api}/products" if path == "browse" else f"{api}/products/{product}"
        status, data = http("GET", url)
        expected = 200
    after = envoy_counts(target.admin_urls)
    if status != expected:
        raise RuntimeError(f"{path} answered {status} while counting hops: {data}")
    return Counter({key: after[key] - before.get(key, 0) for key in after})


def count_hops(
    target: Target, path: str, tokens: list[str], ids: list[str], samples: int = 4
) -> Hops:
    """How many times one request of ``path`` passes through Envoy, counted from the Envoys'
    own request counters around a few requests sent one at a time.

    ``hops``: calls the mesh carries (each ends at one sidecar's inbound listener: the edge
    call from the ingress to the gateway, and every call between services); each is a
    client-side proxy plus a server-side proxy, as in Istio. ``proxy_traversals``: every
    listener the request passes (ingress, inbound and outbound), about twice the hops.
    """
    if not target.admin_urls:
        return Hops()
    total: Counter[tuple[str, str]] = Counter()
    for k in range(samples):
        total.update(_one_request(target, path, tokens, ids[k % len(ids)]))
    per_envoy: dict[str, dict[str, float]] = {}
    for (name, listener), count in sorted(total.items()):
        if count:
            per_envoy.setdefault(name, {})[listener] = count / samples
    return Hops(
        hops=sum(v.get("inbound", 0.0) for v in per_envoy.values()),
        proxy_traversals=sum(sum(v.values()) for v in per_envoy.values()),
        per_envoy=per_envoy,
    )


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
