"""Open a store by where it is: a file path (or ``:memory:``) opens the SQLite store,
a ``postgresql://`` (or ``postgres://``) URL the PostgreSQL store."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from journeyc.store import abc
from journeyc.store.sqlite.store import LOCK_TIMEOUT_S
from journeyc.store.sqlite.store import Store as SqliteStore

if TYPE_CHECKING:
    from journeyc.store.postgres.admin import PostgresAdminReads
    from journeyc.store.postgres.history import PostgresEventHistory
    from journeyc.store.postgres.leases import PostgresLeases
    from journeyc.store.postgres.outbox import PostgresOutbox
    from journeyc.store.postgres.schedules import PostgresScheduleRows
    from journeyc.store.postgres.segments import PostgresSegmentBook
    from journeyc.store.postgres.store import PostgresStore
    from journeyc.store.postgres.upkeep import PostgresUpkeep

    # mypy checks each store against the interfaces it implements here: the SQLite
    # store is a whole abc.Store; the PostgreSQL store every part but the engine's
    # unit of work (runtime()) and the compiled reads (aggregates(), population(),
    # recommendations(), catalog(): a PostgreSQL dialect of sqlite/dialect.py), not
    # built yet.
    _SQLITE: type[abc.Store] = SqliteStore
    _EVENT_LOG: type[abc.EventLog] = PostgresStore
    _PROFILES: type[abc.Profiles] = PostgresStore
    _IDENTITIES: type[abc.Identities] = PostgresStore
    _CURSORS: type[abc.Cursors] = PostgresStore
    _SETTINGS: type[abc.Settings] = PostgresStore
    _LEASES: type[abc.Leases] = PostgresLeases
    _HISTORY: type[abc.EventHistory] = PostgresEventHistory
    _SCHEDULES: type[abc.ScheduleRows] = PostgresScheduleRows
    _SEGMENTS: type[abc.SegmentBook] = PostgresSegmentBook
    _OUTBOX: type[abc.Outbox] = PostgresOutbox
    _ADMIN: type[abc.AdminReads] = PostgresAdminReads
    _UPKEEP: type[abc.Upkeep] = PostgresUpkeep

__all__ = ["URL_SCHEMES", "is_url", "open_store"]

URL_SCHEMES = ("postgresql://", "postgres://")
"""The beginnings of a target that names a PostgreSQL database."""


def is_url(target: Path | str) -> bool:
    """Whether ``target`` names a PostgreSQL database (else a SQLite file)."""
    return isinstance(target, str) and target.lower().startswith(URL_SCHEMES)


def open_store(
    target: Path | str, *, lock_timeout_s: float = LOCK_TIMEOUT_S
) -> SqliteStore | PostgresStore:
    """The store at ``target``: a SQLite file (created when missing) or ``:memory:``,
    or the PostgreSQL database a ``postgresql://`` URL names. Writers wait at most
    ``lock_timeout_s`` for a lock.

    The SQLite store implements all of :class:`journeyc.store.abc.Store`, the
    PostgreSQL store all but the engine's unit of work and the compiled reads (mypy
    checks both here).
    Raises :class:`~journeyc.store.errors.StoreError` with the reason, naming the
    target (a URL without its password), when it cannot be opened as a store.
    """
    if is_url(target):
        # Imported here: a SQLite user never loads the PostgreSQL driver.
        from journeyc.store.postgres.store import PostgresStore

        return PostgresStore.open(str(target), lock_timeout_s=lock_timeout_s)
    return SqliteStore.open(target, lock_timeout_s=lock_timeout_s)
