"""What a PostgreSQL store has deployed, read for ``journeyc plan`` and ``journeyc
deploy`` (:class:`journeyc.store.abc.DeploymentReads`), as the SQLite store's
(:mod:`journeyc.store.sqlite.deployments`) reads them: text in code point order."""

from __future__ import annotations

from journeyc.store.postgres.runtime import PostgresRuntime
from journeyc.store.postgres.schema import Connections
from journeyc.store.rows import DeployedSegment, InFlight, ScheduleRow

__all__ = ["PostgresDeploymentReads"]


class PostgresDeploymentReads:
    """The deployed journeys, segments and schedules of a PostgreSQL store, and the
    users in flight (:meth:`PostgresStore.deployments`)."""

    def __init__(self, store: Connections) -> None:
        self._store = store

    def active_versions(self) -> dict[str, str]:
        """The active version of each deployed journey, by journey id."""
        with self._store.connection() as conn:
            rows = conn.execute(
                'SELECT id, version FROM journeys WHERE active ORDER BY id COLLATE "C"'
            ).fetchall()
        return {str(jid): str(version) for jid, version in rows}

    def journey_ir(self, journey_id: str, version: str) -> str | None:
        """The IR (JSON) of one deployed journey version, None when never deployed."""
        return PostgresRuntime(self._store).journey_ir(journey_id, version)

    def in_flight(self) -> list[InFlight]:
        """The users in flight (running instances) per journey, version and step, in
        that order."""
        with self._store.connection() as conn:
            rows = conn.execute(
                "SELECT journey_id, version, node, count(*) FROM instances"
                " WHERE status IN ('active', 'waiting') GROUP BY 1, 2, 3"
                ' ORDER BY journey_id COLLATE "C", version COLLATE "C", node COLLATE "C"'
            ).fetchall()
        return [InFlight(str(j), str(v), str(n), int(c)) for j, v, n, c in rows]

    def deployed_segments(self) -> dict[str, DeployedSegment]:
        """The segments the store's membership rows were computed with, by name."""
        with self._store.connection() as conn:
            rows = conn.execute(
                'SELECT name, hash, expr FROM segments ORDER BY name COLLATE "C"'
            ).fetchall()
        return {str(n): DeployedSegment(str(n), str(h), str(e)) for n, h, e in rows}

    def schedule_rows(self) -> list[ScheduleRow]:
        """Every schedule row, by journey, trigger and zone."""
        with self._store.connection() as conn:
            rows = conn.execute(
                "SELECT journey_id, trigger, zone, spec, next_at FROM schedules"
                ' ORDER BY journey_id COLLATE "C", trigger, zone COLLATE "C"'
            ).fetchall()
        return [ScheduleRow(str(j), int(t), str(z), str(s), int(n)) for j, t, z, s, n in rows]

    def known_users(self) -> int:
        """How many users the store knows (each has a profile row)."""
        with self._store.connection() as conn:
            row = conn.execute("SELECT count(*) FROM profiles").fetchone()
        return 0 if row is None else int(row[0])
