"""The PostgreSQL store: the tables of the SQLite store in a PostgreSQL database, for
several processes writing at once (docs/postgres.md).

:class:`~journeyc.store.postgres.store.PostgresStore` is the entry point; open one with
:func:`journeyc.store.open_store` and a ``postgresql://`` URL.
"""

from journeyc.store.postgres.schema import MIGRATIONS, SCHEMA_VERSION, migrate
from journeyc.store.postgres.store import PostgresStore, shown_url

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "PostgresStore", "migrate", "shown_url"]
