"""The ``schedules`` table: one row per (journey, scheduled trigger, time zone in use)
with the next time it fires there and how far its audience got, and the reads that
find an audience. When a schedule fires, and in which zones, is the engine's
(:mod:`journeyc.engine.schedules`)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from journeyc.store.rows import ScheduleRowValues

__all__ = ["ScheduleRows"]

_COLUMNS = "journey_id, trigger, zone, spec, next_at, after_user"


class ScheduleRows:
    """The ``schedules`` table (:class:`~journeyc.store.abc.ScheduleRows`)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def replace(self, rows: Sequence[ScheduleRowValues]) -> None:
        """Make ``rows`` the table's rows."""
        self.conn.execute("DELETE FROM schedules")
        self.conn.executemany(
            f"INSERT INTO schedules ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )

    def add(self, rows: Sequence[tuple[str, int, str, str, int]]) -> None:
        """Add ``(journey, trigger, zone, spec, next_at)`` rows, each unless its
        (journey, trigger, zone) has one."""
        self.conn.executemany(
            f"INSERT INTO schedules ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, NULL)"
            " ON CONFLICT DO NOTHING",
            rows,
        )

    def rows(self) -> list[ScheduleRowValues]:
        """Every row."""
        return self.conn.execute(f"SELECT {_COLUMNS} FROM schedules").fetchall()

    def zone_names(self) -> set[str]:
        """Every time zone name profiles give (their ``timezone`` trait, when a string)."""
        return {
            name
            for (name,) in self.conn.execute(
                "SELECT DISTINCT json_extract(traits, '$.timezone') FROM profiles"
            )
            if isinstance(name, str)
        }

    def next_at(self) -> int | None:
        """The earliest ``next_at``."""
        (t,) = self.conn.execute("SELECT min(next_at) FROM schedules").fetchone()
        return None if t is None else int(t)

    def due(self, now_ms: int) -> ScheduleRowValues | None:
        """The earliest row due by ``now_ms`` (ties: by journey, trigger, zone)."""
        row: ScheduleRowValues | None = self.conn.execute(
            f"SELECT {_COLUMNS} FROM schedules"
            " WHERE next_at <= ? ORDER BY next_at, journey_id, trigger, zone LIMIT 1",
            (now_ms,),
        ).fetchone()
        return row

    def audience(
        self, segment: str | None, after_user: str | None, limit: int
    ) -> list[tuple[str, Any]]:
        """The next ``limit`` users after ``after_user`` (by id) of ``segment``'s members
        (None: every user with a profile), with their ``timezone`` trait (any JSON
        value, None when absent)."""
        if segment is None:
            return self.conn.execute(
                "SELECT user_id, json_extract(traits, '$.timezone') FROM profiles"
                " WHERE user_id > ? ORDER BY user_id LIMIT ?",
                (after_user or "", limit),
            ).fetchall()
        return self.conn.execute(
            "SELECT m.user_id, json_extract(p.traits, '$.timezone')"
            " FROM segment_members m LEFT JOIN profiles p ON p.user_id = m.user_id"
            " WHERE m.segment = ? AND m.member = 1 AND m.user_id > ?"
            " ORDER BY m.user_id LIMIT ?",
            (segment, after_user or "", limit),
        ).fetchall()

    def set_after_user(self, journey_id: str, trigger: int, zone: str, after_user: str) -> None:
        """Record how far a firing's audience got."""
        self.conn.execute(
            "UPDATE schedules SET after_user = ? WHERE journey_id = ? AND trigger = ? AND zone = ?",
            (after_user, journey_id, trigger, zone),
        )

    def set_next_at(self, journey_id: str, trigger: int, zone: str, next_at: int) -> None:
        """Move a row to its next firing, its audience not started."""
        self.conn.execute(
            "UPDATE schedules SET next_at = ?, after_user = NULL WHERE journey_id = ?"
            " AND trigger = ? AND zone = ?",
            (next_at, journey_id, trigger, zone),
        )
