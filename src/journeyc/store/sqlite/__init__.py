"""The SQLite store, the embedded default: one WAL-mode file (or memory) holds the
event log, profiles, journeys, instances and the outbox.

:class:`~journeyc.store.sqlite.store.Store` is the entry point; the modules beside it
hold the SQL of one part each.
"""

from journeyc.store.errors import DatabaseError, OperationalError, StoreBusyError
from journeyc.store.rows import Cohort, StoredEvent
from journeyc.store.sqlite.admin import canonical_user, entry_cohorts
from journeyc.store.sqlite.store import (
    BULK_CACHE_KIB,
    LOCK_SUFFIX,
    LOCK_TIMEOUT_S,
    Connection,
    Store,
    profile_zones,
)

__all__ = [
    "BULK_CACHE_KIB",
    "LOCK_SUFFIX",
    "LOCK_TIMEOUT_S",
    "Cohort",
    "Connection",
    "DatabaseError",
    "OperationalError",
    "Store",
    "StoreBusyError",
    "StoredEvent",
    "canonical_user",
    "entry_cohorts",
    "profile_zones",
]
