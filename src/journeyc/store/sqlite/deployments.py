"""What a store has deployed, read for ``journeyc plan`` and ``journeyc deploy``.

Reads only: the active journey versions and their IR, the users in flight per
journey, version and step, the segments' definitions as deployed, and the schedule
rows. Writing a deployment is the engine's (:meth:`journeyc.engine.core.Engine.deploy`).
"""

from __future__ import annotations

from journeyc.store.rows import DeployedSegment, InFlight, ScheduleRow
from journeyc.store.sqlite.connected import Connected
from journeyc.store.sqlite.runtime import Runtime

__all__ = [
    "DeployedSegment",
    "InFlight",
    "ScheduleRow",
    "active_versions",
    "deployed_segments",
    "in_flight",
    "journey_ir",
    "known_users",
    "schedule_rows",
]


def active_versions(store: Connected) -> dict[str, str]:
    """The active version of each deployed journey, by journey id."""
    rows = store.conn.execute("SELECT id, version FROM journeys WHERE active = 1 ORDER BY id")
    return {str(jid): str(version) for jid, version in rows}


def journey_ir(store: Connected, journey_id: str, version: str) -> str | None:
    """The IR (JSON) of one deployed journey version, None when never deployed."""
    return Runtime(store.conn).journey_ir(journey_id, version)


def in_flight(store: Connected) -> list[InFlight]:
    """The users in flight (running instances) per journey, version and step, in
    that order."""
    rows = store.conn.execute(
        "SELECT journey_id, version, node, count(*) FROM instances"
        " WHERE status IN ('active', 'waiting') GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
    )
    return [InFlight(str(j), str(v), str(n), int(c)) for j, v, n, c in rows]


def deployed_segments(store: Connected) -> dict[str, DeployedSegment]:
    """The segments the store's membership rows were computed with, by name."""
    rows = store.conn.execute("SELECT name, hash, expr FROM segments ORDER BY name")
    return {str(n): DeployedSegment(str(n), str(h), str(e)) for n, h, e in rows}


def schedule_rows(store: Connected) -> list[ScheduleRow]:
    """Every schedule row, by journey, trigger and zone."""
    rows = store.conn.execute(
        "SELECT journey_id, trigger, zone, spec, next_at FROM schedules ORDER BY 1, 2, 3"
    )
    return [ScheduleRow(str(j), int(t), str(z), str(s), int(n)) for j, t, z, s, n in rows]


def known_users(store: Connected) -> int:
    """How many users the store knows (each has a profile row)."""
    (count,) = store.conn.execute("SELECT count(*) FROM profiles").fetchone()
    return int(count)


class SqliteDeploymentReads:
    """:class:`journeyc.store.abc.DeploymentReads` over one SQLite store: the functions
    above, bound to it."""

    def __init__(self, store: Connected) -> None:
        self._store = store

    def active_versions(self) -> dict[str, str]:
        """See :func:`active_versions`."""
        return active_versions(self._store)

    def journey_ir(self, journey_id: str, version: str) -> str | None:
        """See :func:`journey_ir`."""
        return journey_ir(self._store, journey_id, version)

    def in_flight(self) -> list[InFlight]:
        """See :func:`in_flight`."""
        return in_flight(self._store)

    def deployed_segments(self) -> dict[str, DeployedSegment]:
        """See :func:`deployed_segments`."""
        return deployed_segments(self._store)

    def schedule_rows(self) -> list[ScheduleRow]:
        """See :func:`schedule_rows`."""
        return schedule_rows(self._store)

    def known_users(self) -> int:
        """See :func:`known_users`."""
        return known_users(self._store)
