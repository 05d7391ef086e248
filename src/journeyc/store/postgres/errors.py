"""psycopg's errors as the store's (:mod:`journeyc.store.errors`), converted where
they leave the PostgreSQL store."""

from __future__ import annotations

import psycopg
from psycopg import errors

from journeyc.store.errors import DatabaseError, OperationalError

_OPERATIONAL = (psycopg.OperationalError, errors.UndefinedTable, errors.UndefinedColumn)
"""What the database could not do now: the server gone, out of resources, a lock, a
table missing (SQLite's ``no such table`` is an OperationalError too)."""


def converted(exc: psycopg.Error) -> DatabaseError:
    """The store's error for psycopg's ``exc``, with its message."""
    if isinstance(exc, _OPERATIONAL):
        return OperationalError(str(exc).strip())
    return DatabaseError(str(exc).strip())
