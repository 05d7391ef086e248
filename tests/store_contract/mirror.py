"""The same rows in both stores: a SQLite store's tables copied row for row into a
PostgreSQL store (ids kept), so that every read can be asked of both and compared.

The sums the PostgreSQL triggers keep (``outbox_counts``, ``delivery_counts``) are
not copied: the triggers make them again from the outbox and deliveries copied, in
id order; ``action_counts`` (summed by the engine as it logs) is copied as it is.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import psycopg
from psycopg import sql

from journeyc.store.sqlite.schema import TABLES

BY_TRIGGER = ("outbox_counts", "delivery_counts")
"""The sums PostgreSQL's triggers keep."""

ORDER = {"outbox": "id", "deliveries": "id", "events": "seq", "actions": "seq"}
"""Tables copied in id order (the triggers count a message's first report by id)."""


def copy_rows(path: Path | str, url: str) -> dict[str, int]:
    """Copy every table of the SQLite store at ``path`` into the (empty) PostgreSQL
    store at ``url``; the rows copied per table."""
    copied: dict[str, int] = {}
    with closing(sqlite3.connect(path)) as src, psycopg.connect(url) as dst:
        for table in TABLES:
            if table in BY_TRIGGER:
                continue
            types = dict(
                dst.execute(
                    "SELECT column_name, data_type FROM information_schema.columns"
                    " WHERE table_name = %s AND table_schema = current_schema()",
                    (table,),
                ).fetchall()
            )
            columns = [c[1] for c in src.execute(f"PRAGMA table_info({table})") if c[1] in types]
            order = f" ORDER BY {ORDER[table]}" if table in ORDER else ""
            rows = src.execute(f"SELECT {', '.join(columns)} FROM {table}{order}")
            flags = [i for i, c in enumerate(columns) if types[c] == "boolean"]
            # COPY writes identity columns as given (INSERT's OVERRIDING SYSTEM VALUE);
            # row triggers fire as for inserts.
            statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
                sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns))
            )
            n = 0
            with dst.cursor() as cur, cur.copy(statement) as copy:
                for row in rows:
                    n += 1
                    if flags:
                        row = tuple(
                            bool(v) if i in flags and v is not None else v
                            for i, v in enumerate(row)
                        )
                    copy.write_row(row)
            copied[table] = n
    return copied
