"""The daemon's housekeeping of a PostgreSQL store (see :class:`journeyc.store.abc.Upkeep`).

Retention deletes as in SQLite. PostgreSQL copies its write-ahead log itself (its
checkpointer runs beside the writers), so :meth:`PostgresUpkeep.checkpoint` and
:meth:`PostgresUpkeep.defer_checkpoints` have nothing to do.
"""

from __future__ import annotations

from journeyc.store.postgres.schema import Connections

__all__ = ["PostgresUpkeep"]


class PostgresUpkeep:
    """Retention of one PostgreSQL store."""

    def __init__(self, store: Connections) -> None:
        self._store = store

    def remove_old(self, before_ms: int) -> tuple[int, int]:
        """Delete sent and suppressed outbox rows, and actions, older than ``before_ms``."""
        with self._store.writing() as conn:
            outbox = conn.execute(
                "DELETE FROM outbox WHERE (status = 'sent' AND sent_at < %s)"
                " OR (status = 'suppressed' AND created_at < %s)",
                (before_ms, before_ms),
            ).rowcount
            actions = conn.execute("DELETE FROM actions WHERE at < %s", (before_ms,)).rowcount
        return outbox, actions

    def defer_checkpoints(self, pages: int) -> None:
        """Nothing: PostgreSQL's checkpointer runs off the writers' path already."""

    def checkpoint(self) -> None:
        """Nothing: PostgreSQL's checkpointer copies the log itself."""

    def close(self) -> None:
        """Nothing to release."""
