"""The daemon's housekeeping of a SQLite store (see :class:`journeyc.store.abc.Upkeep`).

By default the commit that takes the write-ahead log past 1,000 pages copies it into
the database, ~20 ms inside that commit (about once a second at 500 events/s), which
then delays the engine run or the request making it. The daemon raises that
threshold on its connections (:meth:`SqliteUpkeep.defer_checkpoints`) and copies the
log from a connection of its own (:meth:`SqliteUpkeep.checkpoint`), off that path,
while the writers go on (WAL).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import AbstractContextManager

from journeyc.store.sqlite.errors import converted

__all__ = ["SqliteUpkeep"]


class SqliteUpkeep:
    """Retention and checkpoints of one :class:`~journeyc.store.sqlite.Store`: its
    connection, its file's path and its :meth:`~journeyc.store.sqlite.Store.transaction`."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        path: str,
        transaction: Callable[[], AbstractContextManager[object]],
    ) -> None:
        self._conn = conn
        self._path = path
        self._transaction = transaction
        self._checkpoint_conn: sqlite3.Connection | None = None

    def remove_old(self, before_ms: int) -> tuple[int, int]:
        """Delete sent and suppressed outbox rows, and actions, older than ``before_ms``."""
        with self._transaction():
            outbox = self._conn.execute(
                "DELETE FROM outbox WHERE (status = 'sent' AND sent_at < ?)"
                " OR (status = 'suppressed' AND created_at < ?)",
                (before_ms, before_ms),
            ).rowcount
            actions = self._conn.execute("DELETE FROM actions WHERE at < ?", (before_ms,)).rowcount
        return outbox, actions

    def defer_checkpoints(self, pages: int) -> None:
        """Set ``wal_autocheckpoint`` on the store's connection."""
        self._conn.execute(f"PRAGMA wal_autocheckpoint = {int(pages):d}")

    def fold_sums(self) -> int:
        """Nothing: the store's one writer adds to its sums in place."""
        return 0

    def refresh_statistics(self) -> list[str]:
        """Nothing: the engine's SQLite statements are planned from the schema's
        indexes, and no plan is kept from when a table was small."""
        return []

    def checkpoint(self) -> None:
        """``PRAGMA wal_checkpoint(PASSIVE)`` on the upkeep's own connection (opened at
        the first call, usable from any thread but one at a time)."""
        try:
            if self._checkpoint_conn is None:
                self._checkpoint_conn = sqlite3.connect(
                    self._path, timeout=5, isolation_level=None, check_same_thread=False
                )
            self._checkpoint_conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as exc:  # the store's error, not the driver's
            raise converted(exc) from exc

    def close(self) -> None:
        """Close the checkpoint connection, if one was opened."""
        if self._checkpoint_conn is not None:
            self._checkpoint_conn.close()
            self._checkpoint_conn = None
