"""What any store raises: the errors the engine, the daemon and the CLI handle without
knowing which store they talk to."""

from __future__ import annotations


class StoreError(Exception):
    """A store that cannot be opened or used as asked."""


class SchemaVersionError(StoreError):
    """The store was written by a newer journeyc than this one."""

    def __init__(self, found: int, known: int, path: str = "") -> None:
        where = f"{path}: " if path else ""
        super().__init__(
            f"{where}the store has schema version {found}, newer than this journeyc knows "
            f"({known}); upgrade journeyc to open it"
        )
        self.found = found
        self.known = known
        self.path = path


class StoreBusyError(StoreError):
    """The store's write lock was not free within the lock timeout: another writer
    holds it (a long transaction, or a process stopped while holding it). Nothing
    was written; trying again later is safe. ``retry_after_s`` is a fair wait."""

    def __init__(self, path: str, waited_s: float) -> None:
        super().__init__(
            f"{path}: the store is busy: another writer held its write lock for "
            f"{waited_s:g} s (the lock timeout, [store] lock_timeout); try again later"
        )
        self.path = path
        self.waited_s = waited_s
        self.retry_after_s = 1


class StoreConflictError(StoreBusyError):
    """Another writer changed rows this transaction read and was about to write back
    (an engine worker's instances, moved by another worker's identity merge, or
    already run by it). Nothing was written; trying again reads them afresh."""

    def __init__(self, what: str) -> None:
        StoreError.__init__(self, f"{what}; nothing was written, try again")
        self.path = ""
        self.waited_s = 0.0
        self.retry_after_s = 1


class DatabaseError(StoreError):
    """Anything the database itself raised, whichever store: each store converts its
    driver's errors into this (or :class:`OperationalError`) where they leave it, the
    driver's error as ``__cause__``, so callers survive it without importing a driver."""


class OperationalError(DatabaseError):
    """The database could not do it now (locked, disk I/O, connection lost, a table
    missing), as opposed to a wrong statement: the API answers it 503."""
