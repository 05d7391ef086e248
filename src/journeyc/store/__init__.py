"""The store: the event log, profiles, journeys, instances and the outbox.

:mod:`journeyc.store.abc` names what the rest of journeyc needs of a store;
:mod:`journeyc.store.sqlite` is the embedded default. Every SQL statement and every
database driver import lives under this package.
"""

from journeyc.store.errors import SchemaVersionError, StoreBusyError, StoreError
from journeyc.store.sqlite import Store, StoredEvent
from journeyc.store.sqlite.schema import SCHEMA_VERSION

__all__ = [
    "SCHEMA_VERSION",
    "SchemaVersionError",
    "Store",
    "StoreBusyError",
    "StoreError",
    "StoredEvent",
]
