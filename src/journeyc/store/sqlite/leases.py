"""The engine workers' partition leases in a SQLite store (:class:`journeyc.store.abc.Leases`).

A SQLite store has one engine worker in practice (one writer at a time, one machine),
which holds every partition; the rows are kept all the same, so ``workers()`` shows
who holds them and since when, and a second worker started by mistake gets nothing
until the first stops renewing.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Protocol

from journeyc.fastjson import dumps, loads
from journeyc.store.leases import WorkerLeases

__all__ = ["SqliteLeases"]


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class _Store(Protocol):
    """What the leases need of :class:`~journeyc.store.sqlite.store.Store` (named so,
    not imported: the store imports this module)."""

    @property
    def conn(self) -> sqlite3.Connection: ...

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]: ...


class SqliteLeases:
    """Partition leases over a SQLite :class:`~journeyc.store.sqlite.store.Store`."""

    def __init__(self, store: _Store) -> None:
        self._store = store

    def acquire(self, worker_id: str, partitions: Sequence[int], ttl_s: float) -> list[int]:
        """Take the free, expired or own ``partitions`` (:class:`~journeyc.store.abc.Leases`)."""
        now = _now_ms()
        with self._store.transaction() as conn:
            # The update's WHERE: an expired lease, or the worker's own, is taken over;
            # a live lease of another worker stays.
            conn.execute(
                "INSERT INTO leases (partition, worker_id, heartbeat_at, expires_at)"
                " SELECT value, ?, ?, ? FROM json_each(?) WHERE true"
                " ON CONFLICT (partition) DO UPDATE SET worker_id = excluded.worker_id,"
                " heartbeat_at = excluded.heartbeat_at, expires_at = excluded.expires_at"
                " WHERE leases.worker_id = excluded.worker_id"
                " OR leases.expires_at <= excluded.heartbeat_at",
                (worker_id, now, now + round(ttl_s * 1000), dumps(sorted(set(partitions)))),
            )
            return self._held(worker_id, partitions, now)

    def renew(self, worker_id: str, partitions: Sequence[int], ttl_s: float) -> list[int]:
        """Extend the worker's live leases of ``partitions``; those it still holds."""
        now = _now_ms()
        with self._store.transaction() as conn:
            conn.execute(
                "UPDATE leases SET heartbeat_at = ?, expires_at = ? WHERE worker_id = ?"
                " AND expires_at > ? AND partition IN (SELECT value FROM json_each(?))",
                (now, now + round(ttl_s * 1000), worker_id, now, dumps(sorted(set(partitions)))),
            )
            return self._held(worker_id, partitions, now)

    def _held(self, worker_id: str, partitions: Sequence[int], now: int) -> list[int]:
        rows = self._store.conn.execute(
            "SELECT partition FROM leases WHERE worker_id = ? AND expires_at > ?"
            " AND partition IN (SELECT value FROM json_each(?)) ORDER BY partition",
            (worker_id, now, dumps(sorted(set(partitions)))),
        )
        return [int(p) for (p,) in rows]

    def release(self, worker_id: str, partitions: Sequence[int]) -> None:
        """Give up the worker's leases of ``partitions``."""
        with self._store.transaction() as conn:
            conn.execute(
                "DELETE FROM leases WHERE worker_id = ?"
                " AND partition IN (SELECT value FROM json_each(?))",
                (worker_id, dumps(sorted(set(partitions)))),
            )

    def workers(self) -> list[WorkerLeases]:
        """Each worker holding a live lease, by worker id."""
        rows = self._store.conn.execute(
            "SELECT worker_id, json_group_array(partition), max(heartbeat_at), min(expires_at)"
            " FROM (SELECT * FROM leases WHERE expires_at > ? ORDER BY partition)"
            " GROUP BY worker_id ORDER BY worker_id",
            (_now_ms(),),
        ).fetchall()
        return [
            WorkerLeases(w, tuple(sorted(int(p) for p in loads(held))), int(beat), int(expires))
            for w, held, beat, expires in rows
        ]
