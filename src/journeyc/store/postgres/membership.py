"""The engine workers alive on a PostgreSQL store (:class:`journeyc.store.abc.Membership`):
one row per worker in ``workers``, renewed by its heartbeat, by the server's clock."""

from __future__ import annotations

from journeyc.store.leases import Member
from journeyc.store.postgres.leases import NOW_MS
from journeyc.store.postgres.schema import Connections

__all__ = ["PostgresMembership"]


class PostgresMembership:
    """Worker memberships over a :class:`~journeyc.store.postgres.store.PostgresStore`."""

    def __init__(self, store: Connections) -> None:
        self._store = store

    def join(self, worker_id: str, ttl_s: float, about: str) -> None:
        """Renew the worker's membership for ``ttl_s``."""
        with self._store.writing() as conn:
            conn.execute(
                "INSERT INTO workers (worker_id, heartbeat_at, expires_at, about)"
                f" SELECT %s, t.now, t.now + %s, %s::jsonb FROM (SELECT {NOW_MS} AS now) AS t"
                " ON CONFLICT (worker_id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at,"
                " expires_at = excluded.expires_at, about = excluded.about",
                (worker_id, round(ttl_s * 1000), about),
            )

    def members(self) -> list[Member]:
        """The live workers, by worker id."""
        with self._store.connection() as conn:
            rows = conn.execute(
                "SELECT worker_id, heartbeat_at, expires_at, about::text FROM workers"
                f' WHERE expires_at > {NOW_MS} ORDER BY worker_id COLLATE "C"'
            ).fetchall()
        return [Member(w, int(beat), int(expires), about) for w, beat, expires, about in rows]

    def leave(self, worker_id: str) -> None:
        """Drop the worker's membership and its leases, in one transaction."""
        with self._store.writing() as conn:
            conn.execute("DELETE FROM leases WHERE worker_id = %s", (worker_id,))
            conn.execute("DELETE FROM workers WHERE worker_id = %s", (worker_id,))
