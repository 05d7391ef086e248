"""What a store has deployed, read for ``journeyc plan`` and ``journeyc deploy``.

Reads only: the active journey versions and their IR, the users in flight per
journey, version and step, the segments' definitions as deployed, and the schedule
rows. Writing a deployment is the engine's (:meth:`journeyc.engine.core.Engine.deploy`).
"""

from __future__ import annotations

from dataclasses import dataclass

from journeyc.store.sqlite.store import Store

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


@dataclass(frozen=True, slots=True)
class InFlight:
    """How many users in flight one journey version holds at one step."""

    journey_id: str
    version: str
    step: str
    users: int


@dataclass(frozen=True, slots=True)
class DeployedSegment:
    """A segment as deployed: the hash of its definition (with the segments it uses)
    and its own expression as IR JSON."""

    name: str
    hash: str
    expr_json: str


@dataclass(frozen=True, slots=True)
class ScheduleRow:
    """One row of ``schedules``: a journey's scheduled trigger in one time zone."""

    journey_id: str
    trigger: int
    zone: str
    spec: str
    next_at: int


def active_versions(store: Store) -> dict[str, str]:
    """The active version of each deployed journey, by journey id."""
    rows = store.conn.execute("SELECT id, version FROM journeys WHERE active = 1 ORDER BY id")
    return {str(jid): str(version) for jid, version in rows}


def journey_ir(store: Store, journey_id: str, version: str) -> str | None:
    """The IR (JSON) of one deployed journey version, None when never deployed."""
    return store.runtime().journey_ir(journey_id, version)


def in_flight(store: Store) -> list[InFlight]:
    """The users in flight (running instances) per journey, version and step, in
    that order."""
    rows = store.conn.execute(
        "SELECT journey_id, version, node, count(*) FROM instances"
        " WHERE status IN ('active', 'waiting') GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
    )
    return [InFlight(str(j), str(v), str(n), int(c)) for j, v, n, c in rows]


def deployed_segments(store: Store) -> dict[str, DeployedSegment]:
    """The segments the store's membership rows were computed with, by name."""
    rows = store.conn.execute("SELECT name, hash, expr FROM segments ORDER BY name")
    return {str(n): DeployedSegment(str(n), str(h), str(e)) for n, h, e in rows}


def schedule_rows(store: Store) -> list[ScheduleRow]:
    """Every schedule row, by journey, trigger and zone."""
    rows = store.conn.execute(
        "SELECT journey_id, trigger, zone, spec, next_at FROM schedules ORDER BY 1, 2, 3"
    )
    return [ScheduleRow(str(j), int(t), str(z), str(s), int(n)) for j, t, z, s, n in rows]


def known_users(store: Store) -> int:
    """How many users the store knows (each has a profile row)."""
    (count,) = store.conn.execute("SELECT count(*) FROM profiles").fetchone()
    return int(count)
