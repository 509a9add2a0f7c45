"""The spans, in SQLite: insert a batch, find traces, read them back, keep under a size cap.

One row per span. A span's Jaeger JSON is stored as it will be served; beside it sit the
columns a search needs (trace id, service, operation, kind, start, duration) and a ``search``
text with one ``key=value`` line per tag, which a tag condition matches with ``instr``: exact,
and no JSON parsing per row. Resources (Jaeger's "processes") are stored once each.

Tag values match as Jaeger matches them: by their string form (``true``, ``200``, ``1.5``), on
the span's tags, its log fields, or its process's tags.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiosqlite

SCHEMA_VERSION = 1
DEFAULT_MAX_SPANS = 200_000
EVICT_TO = 0.9  # over the cap, the oldest traces go until 90% of it is left: eviction is rare

SCHEMA = """
CREATE TABLE IF NOT EXISTS processes (
    hash TEXT PRIMARY KEY,      -- of the process JSON: one row per distinct resource
    json TEXT NOT NULL,         -- {"serviceName": ..., "tags": [...]}, as served
    search TEXT NOT NULL        -- its tags as key=value lines
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS spans (
    id INTEGER PRIMARY KEY,     -- insertion order: the oldest traces are evicted first
    trace_id TEXT NOT NULL,     -- 32 lower-case hex digits
    span_id TEXT NOT NULL,      -- 16 lower-case hex digits
    service TEXT NOT NULL,
    operation TEXT NOT NULL,
    kind TEXT NOT NULL,         -- server, client, producer, consumer, internal, or ''
    start_us INTEGER NOT NULL,
    duration_us INTEGER NOT NULL,
    process TEXT NOT NULL,      -- processes.hash
    search TEXT NOT NULL,       -- tags and log fields as key=value lines
    json TEXT NOT NULL          -- the Jaeger span without its processID
);
CREATE UNIQUE INDEX IF NOT EXISTS spans_by_trace ON spans (trace_id, span_id);
CREATE INDEX IF NOT EXISTS spans_by_service ON spans (service, start_us);
CREATE INDEX IF NOT EXISTS spans_by_operation ON spans (service, operation, start_us);
CREATE INDEX IF NOT EXISTS spans_by_start ON spans (start_us);
CREATE TABLE IF NOT EXISTS operations (
    service TEXT NOT NULL,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    PRIMARY KEY (service, name, kind)
) WITHOUT ROWID;
"""


@dataclass(frozen=True, slots=True)
class SpanRow:
    """One span, translated: ``span`` and ``process`` are Jaeger JSON (``span`` without
    ``processID``); the other fields are what searches filter on."""

    trace_id: str
    span_id: str
    service: str
    operation: str
    kind: str
    start_us: int
    duration_us: int
    span: dict[str, Any]
    process: dict[str, Any]


@dataclass(frozen=True, slots=True)
class TraceQuery:
    """A search: a trace matches when one of its spans meets every condition."""

    start_us: int
    end_us: int
    service: str | None = None  # None: any service
    operation: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    min_duration_us: int | None = None
    max_duration_us: int | None = None
    limit: int = 20


class Store:
    """The span store. Open with ``await Store.open(path)``; close with ``await close()``."""

    def __init__(self, db: aiosqlite.Connection, max_spans: int, count: int) -> None:
        self._db = db
        self.max_spans = max_spans
        self._count = count
        self._writing = asyncio.Lock()  # one connection: one write transaction at a time

    @classmethod
    async def open(cls, path: str | Path, max_spans: int = DEFAULT_MAX_SPANS) -> Store:
        if max_spans < 1:
            raise ValueError("max_spans must be at least 1")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        db = await aiosqlite.connect(str(path), isolation_level=None)
        try:
            await _prepare(db)
            async with db.execute("SELECT count(*) FROM spans") as cur:
                row = await cur.fetchone()
        except BaseException:
            await db.close()
            raise
        return cls(db, max_spans, row[0] if row else 0)

    async def close(self) -> None:
        """Write everything to the main database file (no WAL left behind) and close."""
        try:
            await self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            await self._db.close()

    @property
    def span_count(self) -> int:
        return self._count

    # -- writing --------------------------------------------------------------------------------

    async def add(self, rows: Sequence[SpanRow]) -> int:
        """Insert ``rows`` in one transaction (a span already stored is skipped); returns how
        many were new. Over the cap, the oldest traces are deleted whole."""
        if not rows:
            return 0
        processes: dict[str, tuple[str, str, str]] = {}
        span_values = []
        operations = set()
        for row in rows:
            process_json = _dumps(row.process)
            digest = hashlib.blake2b(process_json.encode(), digest_size=12).hexdigest()
            if digest not in processes:
                processes[digest] = (digest, process_json, _search_text(row.process["tags"]))
            span_values.append(
                (
                    row.trace_id,
                    row.span_id,
                    row.service,
                    row.operation,
                    row.kind,
                    row.start_us,
                    row.duration_us,
                    digest,
                    _search_text(_span_kvs(row.span)),
                    _dumps(row.span),
                )
            )
            operations.add((row.service, row.operation, row.kind))
        async with self._writing:
            added = await self._insert(processes.values(), span_values, operations)
            self._count += added
            if self._count > self.max_spans:
                await self._evict()
        return added

    async def _insert(
        self, processes: Iterable[tuple], spans: list[tuple], operations: set[tuple]
    ) -> int:
        db = self._db
        await db.execute("BEGIN")
        try:
            await db.executemany(
                "INSERT OR IGNORE INTO processes (hash, json, search) VALUES (?, ?, ?)",
                processes,
            )
            before = db.total_changes
            await db.executemany(
                "INSERT OR IGNORE INTO spans (trace_id, span_id, service, operation, kind,"
                " start_us, duration_us, process, search, json)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                spans,
            )
            added = db.total_changes - before
            await db.executemany(
                "INSERT OR IGNORE INTO operations (service, name, kind) VALUES (?, ?, ?)",
                operations,
            )
            await db.execute("COMMIT")
        except BaseException:
            await db.execute("ROLLBACK")
            raise
        return added

    async def _evict(self) -> None:
        """Delete the oldest traces (by first arrival) until at most 90% of the cap is left."""
        need = self._count - int(self.max_spans * EVICT_TO)
        db = self._db
        await db.execute("BEGIN")
        try:
            before = db.total_changes
            await db.execute(
                "DELETE FROM spans WHERE trace_id IN"
                " (SELECT DISTINCT trace_id FROM (SELECT trace_id FROM spans ORDER BY id LIMIT ?))",
                (need,),
            )
            deleted = db.total_changes - before
            await db.execute(
                "DELETE FROM processes WHERE hash NOT IN (SELECT DISTINCT process FROM spans)"
            )
            await db.execute(
                "DELETE FROM operations WHERE NOT EXISTS (SELECT 1 FROM spans s WHERE"
                " s.service = operations.service AND s.operation = operations.name"
                " AND s.kind = operations.kind)"
            )
            await db.execute("COMMIT")
        except BaseException:
            await db.execute("ROLLBACK")
            raise
        self._count -= deleted

    # -- reading --------------------------------------------------------------------------------

    async def services(self) -> list[str]:
        async with self._db.execute("SELECT DISTINCT service FROM operations ORDER BY 1") as cur:
            return [row[0] for row in await cur.fetchall()]

    async def operations(self, service: str, kind: str | None = None) -> list[tuple[str, str]]:
        """``(name, kind)`` of every operation the service has; only ``kind``'s if given."""
        sql = "SELECT name, kind FROM operations WHERE service = ?"
        params: list[str] = [service]
        if kind is not None:
            sql += " AND kind = ?"
            params.append(kind)
        async with self._db.execute(sql + " ORDER BY name, kind", params) as cur:
            return [(row[0], row[1]) for row in await cur.fetchall()]

    async def find_trace_ids(self, query: TraceQuery) -> list[str]:
        """The ids of the matching traces, the newest first, at most ``query.limit``."""
        where = ["s.start_us >= ?", "s.start_us <= ?"]
        params: list[Any] = [query.start_us, query.end_us]
        if query.service is not None:
            where.append("s.service = ?")
            params.append(query.service)
        if query.operation is not None:
            where.append("s.operation = ?")
            params.append(query.operation)
        if query.min_duration_us is not None:
            where.append("s.duration_us >= ?")
            params.append(query.min_duration_us)
        if query.max_duration_us is not None:
            where.append("s.duration_us <= ?")
            params.append(query.max_duration_us)
        join = ""
        if query.tags:
            join = " JOIN processes p ON p.hash = s.process"
            for key, value in query.tags.items():
                line = "\n" + _line(key, value)
                where.append("(instr(s.search, ?) > 0 OR instr(p.search, ?) > 0)")
                params += [line, line]
        # Walk the matching spans from the newest (an index gives that order) and stop at
        # ``limit`` distinct traces: no need to group every span in the time range.
        sql = (
            f"SELECT s.trace_id FROM spans s{join} WHERE {' AND '.join(where)}"
            " ORDER BY s.start_us DESC"
        )
        found: dict[str, None] = {}
        async with self._db.execute(sql, params) as cur:
            while len(found) < query.limit:
                rows = await cur.fetchmany(1000)
                if not rows:
                    break
                for (trace_id,) in rows:
                    found[trace_id] = None
                    if len(found) == query.limit:
                        break
        return list(found)

    async def traces(
        self, trace_ids: Iterable[str]
    ) -> dict[str, list[tuple[dict[str, Any], dict[str, Any]]]]:
        """Each found trace's spans as ``(span, process)``, by start time; missing ids are left
        out."""
        ids = list(dict.fromkeys(trace_ids))
        found: dict[str, list[tuple[dict[str, Any], dict[str, Any]]]] = {}
        processes: dict[str, dict[str, Any]] = {}
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            marks = ",".join("?" * len(chunk))
            async with self._db.execute(
                "SELECT s.trace_id, s.json, p.hash, p.json FROM spans s"
                " JOIN processes p ON p.hash = s.process"
                f" WHERE s.trace_id IN ({marks}) ORDER BY s.start_us, s.id",
                chunk,
            ) as cur:
                async for trace_id, span_json, digest, process_json in cur:
                    process = processes.get(digest)
                    if process is None:
                        process = processes[digest] = json.loads(process_json)
                    found.setdefault(trace_id, []).append((json.loads(span_json), process))
        return {trace_id: found[trace_id] for trace_id in ids if trace_id in found}


async def _prepare(db: aiosqlite.Connection) -> None:
    await db.execute("PRAGMA journal_mode = WAL")
    await db.execute("PRAGMA synchronous = NORMAL")
    await db.execute("PRAGMA temp_store = MEMORY")
    async with db.execute("PRAGMA user_version") as cur:
        row = await cur.fetchone()
    version = row[0] if row else 0
    if version not in (0, SCHEMA_VERSION):
        # An older store's layout: the traces are a cache of recent requests, start afresh.
        for table in ("spans", "processes", "operations"):
            await db.execute(f"DROP TABLE IF EXISTS {table}")
    await db.executescript(SCHEMA)
    await db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _span_kvs(span: dict[str, Any]) -> list[dict[str, Any]]:
    kvs = list(span["tags"])
    for log in span["logs"]:
        kvs += log["fields"]
    return kvs


def tag_string(kv: dict[str, Any]) -> str:
    """A tag's value as a search compares it, like Jaeger's ``KeyValue.AsString``."""
    kind, value = kv["type"], kv["value"]
    if kind == "bool":
        return "true" if value else "false"
    if kind == "float64":
        return format(value, ".10g")
    if kind == "binary":
        return base64.b64decode(value).hex()
    return str(value)


def _line(key: str, value: str) -> str:
    """``key=value\\n``, escaped so that a line never spans two tags or splits wrongly."""
    key = key.replace("\\", "\\\\").replace("\n", "\\n").replace("=", "\\=")
    value = value.replace("\\", "\\\\").replace("\n", "\\n")
    return f"{key}={value}\n"


def _search_text(kvs: Iterable[dict[str, Any]]) -> str:
    return "\n" + "".join(_line(kv["key"], tag_string(kv)) for kv in kvs)
