"""The store: the event log, profiles, journeys, instances and the outbox.

:class:`Store` is the SQLite implementation; its public methods are the narrow
interface a PostgreSQL store could implement beside it.
"""

from journeyc.store.schema import SCHEMA_VERSION, SchemaVersionError, StoreError
from journeyc.store.sqlite import Store, StoreBusyError, StoredEvent

__all__ = [
    "SCHEMA_VERSION",
    "SchemaVersionError",
    "Store",
    "StoreBusyError",
    "StoreError",
    "StoredEvent",
]
