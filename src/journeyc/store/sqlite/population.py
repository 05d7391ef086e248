"""Set-based reads of the SQLite store's users (see
:class:`~journeyc.store.abc.PopulationReads`): the users paged from ``profiles``,
their profiles, and their aggregates, all at once, by the generator of
:mod:`journeyc.store.compiled.population` in SQLite's dialect."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from functools import partial
from typing import Any

from journeyc.store.compiled.dialect import Dialect
from journeyc.store.compiled.population import CompiledPopulation, user_chunks
from journeyc.store.sqlite.dialect import SQLITE, SqliteRunner

__all__ = ["SqlitePopulation"]


def _page(conn: sqlite3.Connection, after: str | None, size: int) -> list[str]:
    """The next ``size`` users of ``profiles`` after ``after``."""
    select = "SELECT user_id FROM profiles"
    args: tuple[object, ...] = (size,)
    sql = f"{select} ORDER BY user_id LIMIT ?"
    if after is not None:
        sql, args = f"{select} WHERE user_id > ? ORDER BY user_id LIMIT ?", (after, size)
    return [r[0] for r in conn.execute(sql, args)]


def _in_range(conn: sqlite3.Connection, first: str, last: str) -> int:
    """How many profiles there are from ``first`` to ``last``."""
    sql = "SELECT COUNT(*) FROM profiles WHERE user_id BETWEEN ? AND ?"
    return int(conn.execute(sql, (first, last)).fetchone()[0])


def _profiles(
    conn: sqlite3.Connection, part: Sequence[str], dense: bool
) -> dict[str, dict[str, Any]]:
    """The profiles of ``part`` (and, for a dense part, of the users between)."""
    if dense:
        sql = "SELECT user_id, traits FROM profiles WHERE user_id BETWEEN ? AND ?"
        rows = conn.execute(sql, (part[0], part[-1]))
    else:
        sql = (
            "SELECT user_id, traits FROM profiles WHERE user_id IN (SELECT value FROM json_each(?))"
        )
        rows = conn.execute(sql, (json.dumps(list(part)),))
    return {uid: dict(json.loads(traits)) for uid, traits in rows}


class SqlitePopulation(CompiledPopulation):
    """Set-based reads of the users of ``conn`` (see
    :class:`~journeyc.store.abc.PopulationReads`); ``dialect`` SQLite's unless a test
    respells it."""

    def __init__(self, conn: sqlite3.Connection, dialect: Dialect = SQLITE) -> None:
        super().__init__(SqliteRunner(conn), dialect)
        self._conn = conn

    def chunks(self, users: Sequence[str] | None, size: int) -> Iterator[tuple[list[str], bool]]:
        """``users`` (default: everyone, the users of ``profiles``) in sorted chunks of
        ``size``, each with whether to read it as an id range (``dense``)."""
        conn = self._conn
        return user_chunks(users, size, partial(_in_range, conn), partial(_page, conn))

    def profiles(self, users: Sequence[str], dense: bool) -> dict[str, dict[str, Any]]:
        """The profiles of ``users`` (sorted; for a dense chunk, of those between too)."""
        return _profiles(self._conn, users, dense)
