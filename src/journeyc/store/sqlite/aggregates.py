"""Aggregates compiled to SQL over the SQLite store's ``events`` table: the generator
of :mod:`journeyc.store.compiled.aggregates` in SQLite's dialect, on a ``sqlite3``
connection."""

from __future__ import annotations

import sqlite3

from journeyc.store.compiled.aggregates import CompiledAggregates
from journeyc.store.compiled.dialect import Dialect
from journeyc.store.sqlite.dialect import SQLITE, SqliteRunner

__all__ = ["SqliteAggregates"]


class SqliteAggregates(CompiledAggregates):
    """Aggregates compiled to SQL over the ``events`` table of ``conn`` (see
    :class:`~journeyc.store.abc.AggregateReads`); ``dialect`` SQLite's unless a test
    respells it."""

    def __init__(self, conn: sqlite3.Connection, dialect: Dialect = SQLITE) -> None:
        super().__init__(SqliteRunner(conn), dialect)
