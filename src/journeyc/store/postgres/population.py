"""Set-based reads of the PostgreSQL store's users (see
:class:`~journeyc.store.abc.PopulationReads`): the users paged from ``profiles`` in
code point order (``COLLATE "C"``, as SQLite and Python order them), their profiles,
and their aggregates, all at once, by the generator of
:mod:`journeyc.store.compiled.population` in PostgreSQL's dialect."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from journeyc.store.compiled.population import CompiledPopulation, user_chunks
from journeyc.store.postgres.aggregates import PostgresRunner
from journeyc.store.postgres.dialect import POSTGRES
from journeyc.store.postgres.schema import Connections

__all__ = ["PostgresPopulation"]


class PostgresPopulation(CompiledPopulation):
    """Set-based reads of the users of ``store`` (see
    :class:`~journeyc.store.abc.PopulationReads`)."""

    def __init__(self, store: Connections) -> None:
        super().__init__(PostgresRunner(store), POSTGRES)
        self._store = store

    def _page(self, after: str | None, size: int) -> list[str]:
        with self._store.connection() as conn:
            if after is None:
                rows = conn.execute(
                    'SELECT user_id FROM profiles ORDER BY user_id COLLATE "C" LIMIT %s', (size,)
                )
            else:
                rows = conn.execute(
                    'SELECT user_id FROM profiles WHERE user_id COLLATE "C" > %s'
                    ' ORDER BY user_id COLLATE "C" LIMIT %s',
                    (after, size),
                )
            return [r[0] for r in rows]

    def _in_range(self, first: str, last: str) -> int:
        with self._store.connection() as conn:
            row = conn.execute(
                'SELECT COUNT(*) FROM profiles WHERE user_id COLLATE "C" BETWEEN %s AND %s',
                (first, last),
            ).fetchone()
        return 0 if row is None else int(row[0])

    def chunks(self, users: Sequence[str] | None, size: int) -> Iterator[tuple[list[str], bool]]:
        """``users`` (default: everyone, the users of ``profiles``) in sorted chunks of
        ``size``, each with whether to read it as an id range (``dense``)."""
        return user_chunks(users, size, self._in_range, self._page)

    def profiles(self, users: Sequence[str], dense: bool) -> dict[str, dict[str, Any]]:
        """The profiles of ``users`` (sorted; for a dense chunk, of those between too)."""
        if not users:
            return {}
        with self._store.connection() as conn:
            if dense:
                rows = conn.execute(
                    'SELECT user_id, traits FROM profiles WHERE user_id COLLATE "C"'
                    " BETWEEN %s AND %s",
                    (users[0], users[-1]),
                ).fetchall()
            else:
                rows = conn.execute(
                    "SELECT user_id, traits FROM profiles WHERE user_id = ANY(%b)", (list(users),)
                ).fetchall()
        return {uid: dict(traits) for uid, traits in rows}
