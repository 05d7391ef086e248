"""Aggregates compiled to SQL over the PostgreSQL store's ``events`` table: the
generator of :mod:`journeyc.store.compiled.aggregates` in PostgreSQL's dialect
(:mod:`journeyc.store.postgres.dialect`), run through psycopg.

Each statement borrows this thread's connection (the one of its transaction, else a
pooled one) for the time it runs. The dialect's statements do not fail on any value
the ``events`` table holds, so they run in the caller's transaction as they are (no
savepoint, no extra round trip); should one fail on the data all the same
(:class:`StatementFailedError`: the engine takes its Python path), the transaction
is aborted and its next statement raises.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import psycopg

from journeyc.store.compiled.aggregates import CompiledAggregates
from journeyc.store.postgres.dialect import POSTGRES
from journeyc.store.postgres.schema import Connections

__all__ = ["Connections", "PostgresAggregates", "PostgresRunner", "StatementFailedError"]


class StatementFailedError(Exception):
    """A generated statement failed on the data (psycopg's ``DataError``)."""


class _Fetched(list[Any]):
    """A statement's rows, read before its connection went back."""

    def fetchone(self) -> Any:
        return self[0] if self else None

    def fetchall(self) -> list[Any]:
        return list(self)


class PostgresRunner:
    """The generated statements on ``store``'s connections (see
    :class:`~journeyc.store.compiled.dialect.Runner`)."""

    errors: tuple[type[BaseException], ...] = (StatementFailedError,)

    def __init__(self, store: Connections) -> None:
        self._store = store

    def execute(self, sql: str, params: Mapping[str, object] | Sequence[object] = ()) -> _Fetched:
        """Run ``sql``; a failure on the data raises :class:`StatementFailedError`."""
        with self._store.connection() as conn:
            try:
                return _Fetched(conn.execute(sql, params).fetchall())
            except psycopg.DataError as exc:
                raise StatementFailedError(str(exc).strip()) from exc

    def in_index_order(self, sql: str, params: Mapping[str, object]) -> bool:
        """Always: PostgreSQL's sums and extremes order their input themselves."""
        return True


class PostgresAggregates(CompiledAggregates):
    """Aggregates compiled to SQL over the ``events`` table of ``store`` (see
    :class:`~journeyc.store.abc.AggregateReads`)."""

    def __init__(self, store: Connections) -> None:
        super().__init__(PostgresRunner(store), POSTGRES)
