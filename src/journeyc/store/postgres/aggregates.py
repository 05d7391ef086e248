"""Aggregates compiled to SQL over the PostgreSQL store's ``events`` table: the
generator of :mod:`journeyc.store.compiled.aggregates` in PostgreSQL's dialect
(:mod:`journeyc.store.postgres.dialect`), run through psycopg.

Each statement borrows this thread's connection (the one of its transaction, else a
pooled one) for the time it runs. Inside a transaction it runs in a savepoint of its
own: a statement that fails on the data (a number out of float range) must leave the
caller's transaction usable, since the engine then answers in Python and goes on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import psycopg

from journeyc.store.compiled.aggregates import CompiledAggregates
from journeyc.store.postgres.dialect import POSTGRES
from journeyc.store.postgres.schema import Connections

__all__ = ["PostgresAggregates", "PostgresRunner", "StatementFailedError", "Statements"]


class Statements(Connections, Protocol):
    """What the compiled reads need of the store (named, not imported: the store
    imports them)."""

    @property
    def in_transaction(self) -> bool:
        """Whether this thread has a transaction open."""
        ...


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

    def __init__(self, store: Statements) -> None:
        self._store = store

    def execute(self, sql: str, params: Mapping[str, object] | Sequence[object] = ()) -> _Fetched:
        """Run ``sql``; a failure on the data raises :class:`StatementFailedError`."""
        store = self._store
        with store.connection() as conn:
            try:
                if store.in_transaction:
                    with conn.transaction():  # a savepoint
                        return _Fetched(conn.execute(sql, params).fetchall())
                return _Fetched(conn.execute(sql, params).fetchall())
            except psycopg.DataError as exc:
                raise StatementFailedError(str(exc).strip()) from exc

    def in_index_order(self, sql: str, params: Mapping[str, object]) -> bool:
        """Always: PostgreSQL's sums and extremes order their input themselves."""
        return True


class PostgresAggregates(CompiledAggregates):
    """Aggregates compiled to SQL over the ``events`` table of ``store`` (see
    :class:`~journeyc.store.abc.AggregateReads`)."""

    def __init__(self, store: Statements) -> None:
        super().__init__(PostgresRunner(store), POSTGRES)
