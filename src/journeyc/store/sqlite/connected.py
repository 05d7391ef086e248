"""What the SQLite store's read and write parts need of it: its connection and its
transactions. They take this instead of :class:`~journeyc.store.sqlite.store.Store`,
so that the store can hand them out (``store.deliveries()``, ...) without an import
cycle."""

from __future__ import annotations

import sqlite3
from contextlib import AbstractContextManager
from typing import Protocol

__all__ = ["Connected"]


class Connected(Protocol):
    """A SQLite store, as its parts use it (:class:`~journeyc.store.sqlite.Store` is one)."""

    @property
    def conn(self) -> sqlite3.Connection:
        """The raw connection; write through it only inside :meth:`transaction`."""
        ...

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        """A block whose writes commit together (see ``Store.transaction``)."""
        ...
