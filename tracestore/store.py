"""The spans, in SQLite: insert a batch, find traces, read them back, keep under a size cap.

One row per span: the span as it came (OTLP protobuf bytes, with its scope), and beside it
the columns a search filters on in SQL (trace id, service, operation, kind, start, duration).
A span is turned into Jaeger's JSON only when it is read (``translate.jaeger_span``), and into
``key=value`` lines (one per tag, each after a newline) only when a search has tag conditions:
those are matched exactly, as substrings, on the spans the SQL conditions left, newest first;
the SQL conditions include a prefilter on the stored bytes (``tagfilter``), so a search that
matches nothing decodes (next to) nothing.
Ingest is the hot path; reads and tag searches are rare. Resources (Jaeger's "processes") are
stored once each, as served, with their tags' lines.

Tag values match as Jaeger matches them: by their string form (``true``, ``200``, ``1.5``), on
the span's tags, its log fields, or its process's tags.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from .tagfilter import needle_sql
from .translate import SpanRow, jaeger_span, line, span_search_text

SCHEMA_VERSION = 3
DEFAULT_MAX_SPANS = 200_000
WAL_FRAMES = 20_000
EVICT_TO = 0.9  # over the cap, the oldest traces go until 90% of it is left: eviction is rare
T = TypeVar("T")

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
    scope_name TEXT NOT NULL,   -- the instrumentation scope
    scope_version TEXT NOT NULL,
    data BLOB NOT NULL          -- the OTLP span, protobuf
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
    """The span store. Open with ``await Store.open(path)``; close with ``await close()``.

    Two SQLite connections (WAL lets them work side by side): the writer inserts each batch in
    the event loop, one short transaction, without handing it to a thread (a hand-over cost
    more CPU than the insert); the reader answers queries, which may be long, in a thread of
    their own, and sees only committed batches. Evicting the oldest traces (a long delete) is
    done by the writer in that thread, while new batches wait for it."""

    def __init__(
        self,
        writer: sqlite3.Connection,
        reader: sqlite3.Connection,
        pool: ThreadPoolExecutor,
        max_spans: int,
        count: int,
    ) -> None:
        self._writer = writer
        self._reader = reader
        self._pool = pool
        self.max_spans = max_spans
        self._count = count
        self._writing = asyncio.Lock()

    @classmethod
    async def open(cls, path: str | Path, max_spans: int = DEFAULT_MAX_SPANS) -> Store:
        if max_spans < 1:
            raise ValueError("max_spans must be at least 1")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        writer = _connect(path)
        try:
            _prepare(writer)
            count = writer.execute("SELECT count(*) FROM spans").fetchone()[0]
            reader = _connect(path)
        except BaseException:
            writer.close()
            raise
        pool = ThreadPoolExecutor(1, thread_name_prefix="tracestore-sqlite")
        return cls(writer, reader, pool, max_spans, count)

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def close(self) -> None:
        """Write everything to the main database file (no WAL left behind) and close."""
        async with self._writing:
            self._pool.shutdown()
            self._reader.close()
            try:
                self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                self._writer.close()

    @property
    def span_count(self) -> int:
        return self._count

    # -- writing --------------------------------------------------------------------------------

    async def add(self, rows: Sequence[SpanRow]) -> int:
        """Insert ``rows`` in one transaction (a span already stored is skipped); returns how
        many were new. Over the cap, the oldest traces are deleted whole."""
        if not rows:
            return 0
        processes = {}
        span_values = []
        operations = set()
        for row in rows:
            process = row.process
            processes[process.digest] = (process.digest, process.json, process.search)
            # the row's columns in the table's order, the process by its key
            span_values.append(row[:7] + (process.digest,) + row[8:])
            operations.add(row[2:5])  # service, operation, kind
        async with self._writing:
            added = _insert(self._writer, list(processes.values()), span_values, operations)
            self._count += added
            if self._count > self.max_spans:
                need = self._count - int(self.max_spans * EVICT_TO)
                self._count -= await self._run(_evict, self._writer, need)
        return added

    # -- reading --------------------------------------------------------------------------------

    async def services(self) -> list[str]:
        sql = "SELECT DISTINCT service FROM operations ORDER BY 1"
        return await self._run(lambda: [row[0] for row in self._reader.execute(sql)])

    async def operations(self, service: str, kind: str | None = None) -> list[tuple[str, str]]:
        """``(name, kind)`` of every operation the service has; only ``kind``'s if given."""
        sql = "SELECT name, kind FROM operations WHERE service = ?"
        params: list[str] = [service]
        if kind is not None:
            sql += " AND kind = ?"
            params.append(kind)
        sql += " ORDER BY name, kind"
        return await self._run(lambda: [(r[0], r[1]) for r in self._reader.execute(sql, params)])

    async def find_trace_ids(self, query: TraceQuery) -> list[str]:
        """The ids of the matching traces, the newest first, at most ``query.limit``."""
        return await self._run(_find_trace_ids, self._reader, query)

    async def traces(
        self, trace_ids: Iterable[str]
    ) -> dict[str, list[tuple[dict[str, Any], dict[str, Any]]]]:
        """Each found trace's spans as ``(span, process)``, by start time; missing ids are left
        out."""
        return await self._run(_traces, self._reader, list(dict.fromkeys(trace_ids)))


# -- statements -------------------------------------------------------------------------------


def _insert(
    db: sqlite3.Connection,
    processes: list[tuple],
    spans: list[tuple],
    operations: set[tuple],
) -> int:
    db.execute("BEGIN")
    try:
        db.executemany(
            "INSERT OR IGNORE INTO processes (hash, json, search) VALUES (?, ?, ?)",
            processes,
        )
        before = db.total_changes
        db.executemany(
            "INSERT OR IGNORE INTO spans (trace_id, span_id, service, operation, kind,"
            " start_us, duration_us, process, scope_name, scope_version, data)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            spans,
        )
        added = db.total_changes - before
        db.executemany(
            "INSERT OR IGNORE INTO operations (service, name, kind) VALUES (?, ?, ?)",
            operations,
        )
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return added


def _evict(db: sqlite3.Connection, need: int) -> int:
    """Delete the oldest traces (by first arrival) until ``need`` spans are gone; returns how
    many were."""
    db.execute("BEGIN")
    try:
        before = db.total_changes
        db.execute(
            "DELETE FROM spans WHERE trace_id IN"
            " (SELECT DISTINCT trace_id FROM (SELECT trace_id FROM spans ORDER BY id LIMIT ?))",
            (need,),
        )
        deleted = db.total_changes - before
        db.execute("DELETE FROM processes WHERE hash NOT IN (SELECT DISTINCT process FROM spans)")
        db.execute(
            "DELETE FROM operations WHERE NOT EXISTS (SELECT 1 FROM spans s WHERE"
            " s.service = operations.service AND s.operation = operations.name"
            " AND s.kind = operations.kind)"
        )
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return deleted


def _find_trace_ids(db: sqlite3.Connection, query: TraceQuery) -> list[str]:
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
    # Walk the matching spans from the newest (an index gives that order) and stop at
    # ``limit`` distinct traces: no need to group every span in the time range.
    order = " ORDER BY s.start_us DESC"
    if not query.tags:
        sql = f"SELECT s.trace_id FROM spans s WHERE {' AND '.join(where)}{order}"
        return _first_traces((trace_id for (trace_id,) in db.execute(sql, params)), query.limit)
    needles = ["\n" + line(key, value) for key, value in query.tags.items()]
    process_lines = dict(db.execute("SELECT hash, search FROM processes"))
    for (key, value), needle in zip(query.tags.items(), needles, strict=True):
        having = [digest for digest, text in process_lines.items() if needle in text]
        condition, more = needle_sql(key, value, having)
        where.append(condition)
        params += more
    sql = (
        "SELECT s.trace_id, s.process, s.scope_name, s.scope_version, s.data FROM spans s"
        f" WHERE {' AND '.join(where)}{order}"
    )

    def matching() -> Iterator[str]:
        seen: set[str] = set()
        for trace_id, process, scope_name, scope_version, data in db.execute(sql, params):
            if trace_id in seen:
                continue
            own = process_lines.get(process, "")
            wanted = [needle for needle in needles if needle not in own]
            if wanted:
                lines = span_search_text(data, scope_name, scope_version)
                if not all(needle in lines for needle in wanted):
                    continue
            seen.add(trace_id)
            yield trace_id

    return _first_traces(matching(), query.limit)


def _first_traces(trace_ids: Iterable[str], limit: int) -> list[str]:
    found: dict[str, None] = {}
    for trace_id in trace_ids:
        found[trace_id] = None
        if len(found) == limit:
            break
    return list(found)


def _traces(
    db: sqlite3.Connection, ids: list[str]
) -> dict[str, list[tuple[dict[str, Any], dict[str, Any]]]]:
    found: dict[str, list[tuple[dict[str, Any], dict[str, Any]]]] = {}
    processes: dict[str, dict[str, Any]] = {}
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        marks = ",".join("?" * len(chunk))
        rows = db.execute(
            "SELECT s.trace_id, s.data, s.scope_name, s.scope_version, p.hash, p.json"
            " FROM spans s JOIN processes p ON p.hash = s.process"
            f" WHERE s.trace_id IN ({marks}) ORDER BY s.start_us, s.id",
            chunk,
        )
        for trace_id, data, scope_name, scope_version, digest, process_json in rows:
            process = processes.get(digest)
            if process is None:
                process = processes[digest] = json.loads(process_json)
            span = jaeger_span(data, scope_name, scope_version)
            found.setdefault(trace_id, []).append((span, process))
    return {trace_id: found[trace_id] for trace_id in ids if trace_id in found}


def _connect(path: str | Path) -> sqlite3.Connection:
    # autocommit (transactions are explicit); used from the loop and from the pool's thread
    return sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)


def _prepare(db: sqlite3.Connection) -> None:
    db.execute("PRAGMA journal_mode = WAL")
    # Each batch's spans land on random pages of the trace-id index. Checkpointed every 1000
    # frames (the default), the WAL held each page about once, so every insert cost a second
    # page write; at 20,000 frames (80 MB of WAL) a page is checkpointed once for several
    # batches: about a quarter less CPU per span in a full store.
    db.execute(f"PRAGMA wal_autocheckpoint = {WAL_FRAMES}")
    db.execute("PRAGMA synchronous = NORMAL")
    db.execute("PRAGMA temp_store = MEMORY")
    row = db.execute("PRAGMA user_version").fetchone()
    version = row[0] if row else 0
    if version not in (0, SCHEMA_VERSION):
        # An older store's layout: the traces are a cache of recent requests, start afresh.
        for table in ("spans", "processes", "operations"):
            db.execute(f"DROP TABLE IF EXISTS {table}")
    db.executescript(SCHEMA)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
