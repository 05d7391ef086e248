"""The store an API request that reads much (a journey report, a why-replay) reads.

A SQLite store is opened again for the request, on a connection of its own: the
app's store has one connection, which a long read would hold from the writers (and
a read outside a transaction would hold a snapshot there). A PostgreSQL store is
the app's own: its pool gives each thread a connection, and opening another store
per request would open another pool (three connections, the schema checked) each
time.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing, contextmanager

from fastapi import Request

from journeyc.store.abc import Store
from journeyc.store.open import open_full_store
from journeyc.store.targets import StoreTarget, is_url

__all__ = ["request_store"]


@contextmanager
def request_store(request: Request, target: StoreTarget) -> Iterator[Store]:
    """The store at ``target`` for the block: the app's (``app.state.store``) for a
    URL, else the file opened for the block and closed after it."""
    shared = getattr(request.app.state, "store", None)
    if is_url(target) and shared is not None:
        yield shared
        return
    with closing(open_full_store(target)) as store:
        yield store
