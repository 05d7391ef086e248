"""A SQLite store's tables read and written by ``journeyc store copy``
(:class:`journeyc.store.abc.TableDump`, :class:`journeyc.store.abc.TableLoad`).

The dump reads on a connection of its own inside one read transaction: under WAL it
sees one committed snapshot and never holds a writer up. Loads run on the store's
connection inside its :meth:`~journeyc.store.sqlite.Store.transaction`.

Two things are SQLite's own: ``segment_changes`` has no ``id`` column (its rowid
orders the changes of one instant, and is copied as the ``id``), and the numbering
of an AUTOINCREMENT table lives in ``sqlite_sequence``, which keeps the highest
number handed out after its row is deleted.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from pathlib import Path

from journeyc.store.errors import StoreError
from journeyc.store.sqlite.admin import open_reader
from journeyc.store.sqlite.errors import converted
from journeyc.store.tables import Row, Table

__all__ = ["SqliteTableDump", "SqliteTableLoad", "dump"]

ROWID_IDS = frozenset({"segment_changes"})
"""Tables whose ``id`` is SQLite's rowid (no AUTOINCREMENT: never numbered past max+1)."""


def _column(table: Table, column: str) -> str:
    if column == "id" and table.name in ROWID_IDS:
        return "rowid"
    return f'"{column}"'


def _columns(table: Table) -> str:
    return ", ".join(_column(table, c) for c in table.columns)


def _key(table: Table) -> str:
    return ", ".join(_column(table, c) for c in table.key)


@contextmanager
def dump(path: Path | str) -> Iterator[SqliteTableDump]:
    """Reads of one snapshot of the store file at ``path`` (see the module)."""
    try:
        with closing(open_reader(path)) as conn:
            conn.execute("BEGIN")
            # The snapshot starts at the first read, not at BEGIN: read now.
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            yield SqliteTableDump(conn)
    except sqlite3.Error as exc:  # the store's error, not the driver's
        raise converted(exc) from exc


class SqliteTableDump:
    """The rows of a SQLite store's tables, in the neutral form of
    :mod:`journeyc.store.tables`."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def count(self, table: Table) -> int:
        """The rows ``table`` holds."""
        (n,) = self._conn.execute(f'SELECT count(*) FROM "{table.name}"').fetchone()
        return int(n)

    def rows(self, table: Table, after: Row | None, limit: int) -> list[Row]:
        """Up to ``limit`` rows past the key ``after``, in key order (row values
        compare as the key's order does)."""
        key = _key(table)
        where = "" if after is None else f" WHERE ({key}) > ({', '.join('?' * len(table.key))})"
        found = self._conn.execute(
            f'SELECT {_columns(table)} FROM "{table.name}"{where} ORDER BY {key} LIMIT ?',
            (*(after or ()), limit),
        ).fetchall()
        flags = [i for i, c in enumerate(table.columns) if c in table.flags]
        if not flags:
            return found
        rows = []
        for row in found:
            values = list(row)
            for i in flags:
                values[i] = None if values[i] is None else bool(values[i])
            rows.append(tuple(values))
        return rows

    def last_id(self, table: Table) -> int:
        """The highest number handed out: ``sqlite_sequence``'s, or the highest held."""
        if table.identity is None:
            return 0
        (held,) = self._conn.execute(
            f'SELECT coalesce(max({_column(table, table.identity)}), 0) FROM "{table.name}"'
        ).fetchone()
        row = self._conn.execute(
            "SELECT seq FROM sqlite_sequence WHERE name = ?", (table.name,)
        ).fetchone()
        return max(int(held), int(row[0]) if row else 0)


class SqliteTableLoad:
    """Writes of a copy into a SQLite store, on its connection (inside the caller's
    transaction)."""

    def __init__(self, conn: sqlite3.Connection, path: str) -> None:
        self._conn = conn
        self._path = path

    def count(self, table: Table) -> int:
        """The rows ``table`` holds."""
        return SqliteTableDump(self._conn).count(table)

    def clear(self, table: Table) -> None:
        """Delete every row of ``table``."""
        self._conn.execute(f'DELETE FROM "{table.name}"')

    def load(self, table: Table, rows: Sequence[Row]) -> None:
        """Insert ``rows``; ``sqlite3`` stores a ``bool`` as 0 or 1."""
        marks = ", ".join("?" * len(table.columns))
        try:
            self._conn.executemany(
                f'INSERT INTO "{table.name}" ({_columns(table)}) VALUES ({marks})', rows
            )
        except sqlite3.IntegrityError as exc:
            raise StoreError(f"{self._path}: {table.name}: a row was refused: {exc}") from None

    def analyze(self, table: Table) -> None:
        """Nothing: SQLite plans the store's statements from its indexes alone."""

    def continue_ids(self, table: Table, after: int) -> None:
        """Raise ``sqlite_sequence``'s number for ``table`` to ``after`` (rowid
        tables number past their highest row by themselves)."""
        if table.identity is None or table.name in ROWID_IDS or after <= 0:
            return
        self._conn.execute(
            "UPDATE sqlite_sequence SET seq = max(seq, ?) WHERE name = ?", (after, table.name)
        )
        self._conn.execute(
            "INSERT INTO sqlite_sequence (name, seq) SELECT ?, ?"
            " WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = ?)",
            (table.name, after, table.name),
        )
