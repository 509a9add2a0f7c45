"""``boutique traces``: recent traces as a table, or one trace as a tree, in the terminal.

Reads Jaeger's HTTP query API only, so it works against the local trace store and against a
real Jaeger alike.

    boutique traces                      the last hour's traces, the newest first
    boutique traces --service cart -n 5  the five newest traces through cart
    boutique traces 4bf92f35...          one trace as an indented tree
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .jaeger import BadParam, parse_duration

DEFAULT_URL = "http://127.0.0.1:16686"


class TraceStoreError(RuntimeError):
    """The trace store is not reachable or refused the request; the message says which."""


class TraceNotFound(TraceStoreError):
    pass


# -- reading the API ------------------------------------------------------------------------


def _get(query_url: str, path: str, params: dict[str, Any] | None = None) -> Any:
    base = query_url.rstrip("/")
    url = base + path + ("?" + urllib.parse.urlencode(params, doseq=True) if params else "")
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            body = resp.read()
    except urllib.error.HTTPError as exc:
        msg = _error_msg(exc.read()) or exc.reason
        if exc.code == 404:
            raise TraceNotFound(msg) from None
        raise TraceStoreError(f"{base} answered {exc.code}: {msg}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TraceStoreError(
            f"no trace store at {base}: is `boutique up` running? ({reason})"
        ) from None
    try:
        return json.loads(body)["data"]
    except (ValueError, KeyError, TypeError):
        raise TraceStoreError(f"{url} did not answer with Jaeger's JSON") from None


def _error_msg(body: bytes) -> str:
    try:
        return str(json.loads(body)["errors"][0]["msg"])
    except (ValueError, KeyError, IndexError, TypeError):
        return ""


# -- a trace, as a tree ---------------------------------------------------------------------


@dataclass
class Node:
    span: dict[str, Any]
    service: str
    children: list[Node]
    orphan: bool = False  # its parent is not in the store (yet)

    def tag(self, key: str) -> Any:
        return next((t["value"] for t in self.span["tags"] if t["key"] == key), None)

    @property
    def network(self) -> bool:
        """Envoy's spans carry ``component: proxy``."""
        return self.tag("component") == "proxy"

    @property
    def error(self) -> bool:
        return self.tag("error") in (True, "true")

    @property
    def status(self) -> Any:
        code = self.tag("http.status_code")
        return code if code is not None else self.tag("http.response.status_code")

    @property
    def request(self) -> str:
        """``PUT /api/cart/items/mug`` from Envoy's or the SDK's HTTP tags ('' if none)."""
        method = self.tag("http.method") or self.tag("http.request.method") or ""
        target = next(
            (
                str(v)
                for k in ("http.url", "url.full", "url.path", "http.target", "http.route")
                if (v := self.tag(k))
            ),
            "",
        )
        if "://" in target:
            parts = urllib.parse.urlsplit(target)
            target = parts.path + (f"?{parts.query}" if parts.query else "")
        return f"{method} {target}".strip()


@dataclass
class Trace:
    trace_id: str
    roots: list[Node]
    nodes: list[Node]
    start_us: int
    duration_us: int

    @property
    def root(self) -> Node:
        return self.roots[0]

    @property
    def errors(self) -> int:
        return sum(n.error for n in self.nodes)

    @property
    def services(self) -> list[str]:
        return sorted({n.service for n in self.nodes})


def build(trace: dict[str, Any]) -> Trace:
    """Jaeger's trace JSON as a tree: children by CHILD_OF, each level by start time."""
    processes = trace["processes"]
    nodes = {
        s["spanID"]: Node(s, processes[s["processID"]]["serviceName"], []) for s in trace["spans"]
    }
    roots = []
    for node in nodes.values():
        parents = [r["spanID"] for r in node.span["references"] if r["refType"] == "CHILD_OF"]
        parent = nodes.get(parents[0]) if parents else None
        if parent is not None:
            parent.children.append(node)
        else:
            node.orphan = bool(parents)
            roots.append(node)

    def start(n: Node) -> int:
        return n.span["startTime"]

    for node in nodes.values():
        node.children.sort(key=start)
    roots.sort(key=lambda n: (n.orphan, start(n)))
    begin = min(start(n) for n in nodes.values())
    end = max(start(n) + n.span["duration"] for n in nodes.values())
    return Trace(trace["traceID"], roots, list(nodes.values()), begin, end - begin)


def fmt_duration(us: float) -> str:
    if us == 0:
        return "0ms"
    if us < 1000:
        return f"{us:.0f}µs"
    if us < 1_000_000:
        return f"{us / 1000:.2f}ms"
    return f"{us / 1_000_000:.2f}s"


def fmt_time(us: int) -> str:
    t = datetime.fromtimestamp(us / 1_000_000)
    if t.date() == datetime.now().date():
        return t.strftime("%H:%M:%S.") + f"{t.microsecond // 1000:03d}"
    return t.strftime("%Y-%m-%d %H:%M:%S")


def tree(query_url: str, trace_id: str) -> str:
    """The trace as an indented tree: offset, duration, service: operation, [net]/[app], the
    HTTP status and an error mark."""
    found = _get(query_url, f"/api/traces/{urllib.parse.quote(trace_id.strip())}")
    if not found:
        raise TraceNotFound(f"trace {trace_id} not found")
    t = build(found[0])
    head = (
        f"trace {t.trace_id}  {datetime.fromtimestamp(t.start_us / 1e6):%Y-%m-%d %H:%M:%S}"
        f"  {fmt_duration(t.duration_us)}  {len(t.nodes)} spans"
        f"  services: {', '.join(t.services)}"
    )
    if t.errors:
        head += f"  ERRORS: {t.errors}"
    lines = [head]
    if t.root.request:
        status = f" (HTTP {t.root.status})" if t.root.status is not None else ""
        lines.append(f"request {t.root.request}{status}")
    lines.append("")

    def walk(node: Node, lead: str, branch: str) -> None:
        span = node.span
        offset = "+" + fmt_duration(span["startTime"] - t.start_us)
        text = f"{offset:>10} {fmt_duration(span['duration']):>9}  {lead}{branch}"
        text += f"{node.service}: {span['operationName']}  "
        text += "[net]" if node.network else "[app]"
        if node.status is not None:
            text += f" HTTP {node.status}"
        if node.error:
            text += "  ERROR"
        if node.orphan:
            text += "  (parent not in the store)"
        lines.append(text)
        below = lead + ("" if not branch else "   " if branch == "└─ " else "│  ")
        for i, child in enumerate(node.children):
            walk(child, below, "└─ " if i == len(node.children) - 1 else "├─ ")

    for root in t.roots:
        walk(root, "", "")
    return "\n".join(lines)


# -- recent traces, as a table --------------------------------------------------------------


def recent(
    query_url: str, service: str | None = None, limit: int = 20, lookback: str = "1h"
) -> str:
    """The newest traces (of ``service``, or of every service) in the last ``lookback``."""
    end = int(time.time() * 1_000_000)
    start = end - parse_duration(lookback, "lookback", days=True)
    services = [service] if service else _get(query_url, "/api/services") or []
    traces: dict[str, dict[str, Any]] = {}
    for name in services:  # Jaeger searches one service at a time
        params = {"service": name, "start": start, "end": end, "limit": limit}
        for trace in _get(query_url, "/api/traces", params) or []:
            traces[trace["traceID"]] = trace
    built = sorted((build(t) for t in traces.values()), key=lambda t: -t.start_us)[:limit]
    if not built:
        where = f" through {service}" if service else ""
        return f"no traces{where} in the last {lookback}"
    rows = [("TRACE ID", "START", "DURATION", "SPANS", "ROOT", "REQUEST", "")]
    for t in built:
        root = t.root
        rows.append(
            (
                t.trace_id,
                fmt_time(t.start_us),
                fmt_duration(t.duration_us),
                str(len(t.nodes)),
                f"{root.service}: {root.span['operationName']}",
                " ".join(str(x) for x in (root.request, root.status) if x not in ("", None)),
                f"ERROR ({t.errors})" if t.errors else "",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(6)]
    lines = []
    for r in rows:
        cells = [
            r[0].ljust(widths[0]),
            r[1].ljust(widths[1]),
            r[2].rjust(widths[2]),
            r[3].rjust(widths[3]),
            r[4].ljust(widths[4]),
            r[5].ljust(widths[5]),
            r[6],
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


# -- the command ----------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = "Recent traces as a table, or one trace as a tree (Jaeger's API)."
    parser.add_argument("trace_id", nargs="?", help="show this trace as a tree")
    parser.add_argument("-s", "--service", help="only traces through this service")
    parser.add_argument("-n", "--limit", type=int, default=20, help="how many traces (20)")
    parser.add_argument("--lookback", default="1h", help="how far back: 15m, 1h, 2d (1h)")
    parser.add_argument(
        "--url", default=DEFAULT_URL, help=f"the trace store or Jaeger query URL ({DEFAULT_URL})"
    )


def main(args: argparse.Namespace) -> int:
    try:
        if args.trace_id:
            text = tree(args.url, args.trace_id)
        else:
            text = recent(args.url, args.service, args.limit, args.lookback)
    except BadParam as exc:
        print(f"boutique traces: {exc}", file=sys.stderr)
        return 2
    except TraceNotFound:
        print(
            f"boutique traces: trace {args.trace_id} not found at {args.url}"
            " (its spans may not have arrived yet, or it was evicted)",
            file=sys.stderr,
        )
        return 1
    except TraceStoreError as exc:
        print(f"boutique traces: {exc}", file=sys.stderr)
        return 1
    print(text)
    return 0
