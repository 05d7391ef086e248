"""The SQLite driver's errors as the store's (:mod:`journeyc.store.errors`), converted
where they leave the SQLite store."""

from __future__ import annotations

import sqlite3

from journeyc.store.errors import DatabaseError, OperationalError


def converted(exc: sqlite3.Error) -> DatabaseError:
    """The store's error for the driver's ``exc``, with its message."""
    if isinstance(exc, sqlite3.OperationalError):
        return OperationalError(str(exc))
    return DatabaseError(str(exc))
