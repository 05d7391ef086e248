"""Open a store by where it is: a file path (or ``:memory:``) opens the SQLite store,
a ``postgresql://`` (or ``postgres://``) URL the PostgreSQL store."""

from __future__ import annotations

from pathlib import Path

from journeyc.store.abc import Store
from journeyc.store.sqlite.store import LOCK_TIMEOUT_S
from journeyc.store.sqlite.store import Store as SqliteStore

__all__ = ["URL_SCHEMES", "is_url", "open_store"]

URL_SCHEMES = ("postgresql://", "postgres://")
"""The beginnings of a target that names a PostgreSQL database."""


def is_url(target: Path | str) -> bool:
    """Whether ``target`` names a PostgreSQL database (else a SQLite file)."""
    return isinstance(target, str) and target.lower().startswith(URL_SCHEMES)


def open_store(target: Path | str, *, lock_timeout_s: float = LOCK_TIMEOUT_S) -> Store:
    """The store at ``target``: a SQLite file (created when missing) or ``:memory:``,
    or the PostgreSQL database a ``postgresql://`` URL names. Writers wait at most
    ``lock_timeout_s`` for a lock.

    Both stores implement :class:`journeyc.store.abc.Store` (mypy checks it here).
    Raises :class:`~journeyc.store.errors.StoreError` with the reason, naming the
    target (a URL without its password), when it cannot be opened as a store.
    """
    if is_url(target):
        # Imported here: a SQLite user never loads the PostgreSQL driver.
        from journeyc.store.postgres.store import PostgresStore

        return PostgresStore.open(str(target), lock_timeout_s=lock_timeout_s)
    return SqliteStore.open(target, lock_timeout_s=lock_timeout_s)
