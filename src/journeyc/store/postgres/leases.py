"""The engine workers' partition leases in a PostgreSQL store
(:class:`journeyc.store.abc.Leases`).

Times are the server's clock (``clock_timestamp()``), so workers on machines whose
clocks disagree still agree on when a lease expires. Taking a partition is one
``INSERT ... ON CONFLICT DO UPDATE ... WHERE``: the row is locked while the condition
(free, expired, or the worker's own) is checked against its latest version, so of two
workers asking at once exactly one gets it.
"""

from __future__ import annotations

from collections.abc import Sequence

from journeyc.store.leases import WorkerLeases
from journeyc.store.postgres.schema import Connections

__all__ = ["PostgresLeases"]

NOW_MS = "(extract(epoch FROM clock_timestamp()) * 1000)::bigint"
"""The server's clock in epoch milliseconds, as SQL: the time leases are kept by."""


class PostgresLeases:
    """Partition leases over a :class:`~journeyc.store.postgres.store.PostgresStore`."""

    def __init__(self, store: Connections) -> None:
        self._store = store

    def acquire(self, worker_id: str, partitions: Sequence[int], ttl_s: float) -> list[int]:
        """Take the free, expired or own ``partitions`` (:class:`~journeyc.store.abc.Leases`)."""
        with self._store.writing() as conn:
            conn.execute(
                "INSERT INTO leases (partition, worker_id, heartbeat_at, expires_at)"
                " SELECT p, %s, t.now, t.now + %s FROM unnest(%b::integer[]) AS p,"
                f" (SELECT {NOW_MS} AS now) AS t ORDER BY p"
                " ON CONFLICT (partition) DO UPDATE SET worker_id = excluded.worker_id,"
                " heartbeat_at = excluded.heartbeat_at, expires_at = excluded.expires_at"
                " WHERE leases.worker_id = excluded.worker_id"
                " OR leases.expires_at <= excluded.heartbeat_at",
                (worker_id, round(ttl_s * 1000), sorted(set(partitions))),
            )
            return self._held(worker_id, partitions)

    def renew(self, worker_id: str, partitions: Sequence[int], ttl_s: float) -> list[int]:
        """Extend the worker's live leases of ``partitions``; those it still holds."""
        with self._store.writing() as conn:
            rows = conn.execute(
                f"WITH t AS (SELECT {NOW_MS} AS now) UPDATE leases"
                " SET heartbeat_at = t.now, expires_at = t.now + %s FROM t"
                " WHERE worker_id = %s AND expires_at > t.now AND partition = ANY(%b)"
                " RETURNING partition",
                (round(ttl_s * 1000), worker_id, sorted(set(partitions))),
            ).fetchall()
        return sorted(int(p) for (p,) in rows)

    def _held(self, worker_id: str, partitions: Sequence[int]) -> list[int]:
        with self._store.connection() as conn:
            rows = conn.execute(
                f"SELECT partition FROM leases WHERE worker_id = %s AND expires_at > {NOW_MS}"
                " AND partition = ANY(%b) ORDER BY partition",
                (worker_id, sorted(set(partitions))),
            ).fetchall()
        return [int(p) for (p,) in rows]

    def release(self, worker_id: str, partitions: Sequence[int]) -> None:
        """Give up the worker's leases of ``partitions``."""
        with self._store.writing() as conn:
            conn.execute(
                "DELETE FROM leases WHERE worker_id = %s AND partition = ANY(%b)",
                (worker_id, sorted(set(partitions))),
            )

    def workers(self) -> list[WorkerLeases]:
        """Each worker holding a live lease, by worker id."""
        with self._store.connection() as conn:
            rows = conn.execute(
                "SELECT worker_id, array_agg(partition ORDER BY partition), max(heartbeat_at),"
                f" min(expires_at) FROM leases WHERE expires_at > {NOW_MS}"
                ' GROUP BY worker_id ORDER BY worker_id COLLATE "C"'
            ).fetchall()
        return [
            WorkerLeases(w, tuple(int(p) for p in held), int(beat), int(expires))
            for w, held, beat, expires in rows
        ]
