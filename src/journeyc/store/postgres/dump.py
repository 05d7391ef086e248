"""A PostgreSQL store's tables read and written by ``journeyc store copy``
(:class:`journeyc.store.abc.TableDump`, :class:`journeyc.store.abc.TableLoad`).

The dump reads in one ``REPEATABLE READ READ ONLY`` transaction on a pooled
connection: one committed snapshot, and no writer waits for it. ``jsonb`` comes back
as compact JSON text (the SQLite store's form; ``jsonb`` keeps no key order, so keys
may come in another order than they were written).

Loads run ``COPY … FROM STDIN`` inside the caller's transaction: the fastest way in,
and it writes an identity column's values as given (``INSERT`` would need
``OVERRIDING SYSTEM VALUE`` for the ``GENERATED ALWAYS`` ones), firing the reports'
triggers as an insert does. Afterwards each identity's sequence is set past the
highest number the source handed out (``setval``), so the store never hands out a
copied number again.
"""

from __future__ import annotations

from collections.abc import Sequence

import psycopg
from psycopg import sql
from psycopg.abc import Buffer
from psycopg.adapt import Loader

from journeyc.fastjson import dumps, loads
from journeyc.store.errors import StoreError
from journeyc.store.postgres.schema import SUMMED, Connection, Connections
from journeyc.store.tables import Row, Table

__all__ = ["PostgresTableDump", "PostgresTableLoad"]


def _columns(table: Table, names: Sequence[str] | None = None) -> sql.Composed:
    return sql.SQL(", ").join(sql.Identifier(c) for c in (names or table.columns))


def _stored(table: Table) -> list[str]:
    """The tables that hold ``table``'s rows: a sums view's totals, then its deltas
    (schema v11, :data:`~journeyc.store.postgres.schema.SUMMED`), else the table."""
    if table.name in SUMMED:
        return [f"{table.name}_totals", f"{table.name}_deltas"]
    return [table.name]


class PostgresTableDump:
    """The rows of a PostgreSQL store's tables, in the neutral form of
    :mod:`journeyc.store.tables`."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def count(self, table: Table) -> int:
        """The rows ``table`` holds."""
        return _count(self._conn, table)

    def rows(self, table: Table, after: Row | None, limit: int) -> list[Row]:
        """Up to ``limit`` rows past the key ``after``, in key order (a row
        comparison over the primary key's columns: its index serves it)."""
        key = _columns(table, table.key)
        where: sql.Composable = sql.SQL("")
        if after is not None:
            marks = sql.SQL(", ").join(sql.Placeholder() * len(table.key))
            where = sql.SQL(" WHERE ({}) > ({})").format(key, marks)
        query = sql.SQL("SELECT {} FROM {}{} ORDER BY {} LIMIT %s").format(
            _columns(table), sql.Identifier(table.name), where, key
        )
        with self._conn.cursor() as cur:
            cur.adapters.register_loader("jsonb", _JsonText)  # this cursor's only
            return cur.execute(query, (*(after or ()), limit)).fetchall()

    def last_id(self, table: Table) -> int:
        """The highest number handed out: the identity sequence's last value, or the
        highest held."""
        if table.identity is None:
            return 0
        row = self._conn.execute(
            sql.SQL(
                "SELECT greatest(coalesce(max({}), 0), coalesce(pg_sequence_last_value("
                "pg_get_serial_sequence(%s, %s)::regclass), 0)) FROM {}"
            ).format(sql.Identifier(table.identity), sql.Identifier(table.name)),
            (table.name, table.identity),
        ).fetchone()
        return int(row[0]) if row else 0


class _JsonText(Loader):
    """``jsonb`` as compact JSON text: a JSON ``null`` stays the text ``null``, apart
    from SQL's NULL (the driver's own loader gives ``None`` for both)."""

    def load(self, data: Buffer) -> str:
        return dumps(loads(bytes(data).decode()))


def _count(conn: Connection, table: Table) -> int:
    row = conn.execute(
        sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table.name))
    ).fetchone()
    return int(row[0]) if row else 0


class PostgresTableLoad:
    """Writes of a copy into a PostgreSQL store, inside the caller's transaction
    (``store.writing()``); ``path`` names the store in errors."""

    def __init__(self, store: Connections, path: str) -> None:
        self._store = store
        self._path = path

    def count(self, table: Table) -> int:
        """The rows ``table`` holds."""
        with self._store.connection() as conn:
            return _count(conn, table)

    def clear(self, table: Table) -> None:
        """Delete every row of ``table`` (of a sums view: its totals and deltas)."""
        with self._store.writing() as conn:
            for name in _stored(table):
                conn.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(name)))

    def load(self, table: Table, rows: Sequence[Row]) -> None:
        """``COPY`` ``rows`` in; a value PostgreSQL cannot hold (text with a NUL
        character) is a :class:`StoreError` naming the table."""
        copy = sql.SQL("COPY {} ({}) FROM STDIN").format(  # a sums view's: its totals
            sql.Identifier(_stored(table)[0]), _columns(table)
        )
        with self._store.writing() as conn:
            try:
                with conn.cursor() as cur, cur.copy(copy) as into:
                    for row in rows:
                        into.write_row(row)
            except (psycopg.DataError, psycopg.IntegrityError) as exc:
                message = " ".join(str(exc).split())
                raise StoreError(
                    f"{self._path}: {table.name}: PostgreSQL refused a row: {message}"
                ) from None

    def analyze(self, table: Table) -> None:
        """``ANALYZE`` the table (a sums view's totals): a copied store's first
        statements are planned from its rows, not as for an empty table (see
        :mod:`journeyc.store.postgres.upkeep`)."""
        with self._store.writing() as conn:
            conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(_stored(table)[0])))

    def continue_ids(self, table: Table, after: int) -> None:
        """Set ``table``'s identity sequence past ``after`` and every number held."""
        if table.identity is None:
            return
        with self._store.writing() as conn:
            row = conn.execute(
                sql.SQL("SELECT greatest(%s, coalesce(max({}), 0)) FROM {}").format(
                    sql.Identifier(table.identity), sql.Identifier(table.name)
                ),
                (after,),
            ).fetchone()
            last = int(row[0]) if row else 0
            if last > 0:
                conn.execute(
                    "SELECT setval(pg_get_serial_sequence(%s, %s), %s, true)",
                    (table.name, table.identity, last),
                )
