"""Bringing an existing database up to the tables' current shape at start-up.

A store made by an older version of a service lacks the columns added since (issue 16 gave
orders a shipping line and a tracking id). ``create_all`` creates missing tables only, so each
missing column is added here when it may be empty (nullable, or with a server default); a new
column that may not be empty cannot be filled in, and the service refuses to start with an
error that says so, rather than failing on every request.
"""

from __future__ import annotations

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.schema import CreateColumn, MetaData


class OutdatedStore(RuntimeError):
    """The database predates a required column; it has to be started afresh."""


def add_missing_columns(conn: Connection, metadata: MetaData) -> list[str]:
    """Add every missing, fillable column of ``metadata``'s tables; the ``table.column`` added."""
    existing = inspect(conn)
    added: list[str] = []
    for table in metadata.sorted_tables:
        have = {column["name"] for column in existing.get_columns(table.name)}
        for column in table.columns:
            if column.name in have:
                continue
            where = f"{table.name}.{column.name}"
            if not column.nullable and column.server_default is None:
                raise OutdatedStore(
                    f"the database lacks the required column {where} (made by an older "
                    "version): start with a fresh store (`boutique up --fresh`)"
                )
            ddl = CreateColumn(column).compile(dialect=conn.dialect)
            conn.execute(text(f'ALTER TABLE "{table.name}" ADD COLUMN {ddl}'))
            added.append(where)
    return added
