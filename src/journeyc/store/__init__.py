"""The store: the event log, profiles, journeys, instances and the outbox.

:mod:`journeyc.store.abc` names what the rest of journeyc needs of a store;
:mod:`journeyc.store.sqlite` is the embedded default, :mod:`journeyc.store.postgres`
the one for several writers; :func:`open_store` opens either by where it is. Every SQL
statement and every database driver import lives under this package.
"""

from journeyc.store.errors import SchemaVersionError, StoreBusyError, StoreError
from journeyc.store.open import open_store
from journeyc.store.rows import StoredEvent
from journeyc.store.sqlite import Store
from journeyc.store.sqlite.schema import SCHEMA_VERSION

__all__ = [
    "SCHEMA_VERSION",
    "SchemaVersionError",
    "Store",
    "StoreBusyError",
    "StoreError",
    "StoredEvent",
    "open_store",
]
