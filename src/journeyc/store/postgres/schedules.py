"""The ``schedules`` table in PostgreSQL (see :class:`journeyc.store.abc.ScheduleRows`).
Users are walked in code point order (``COLLATE "C"``), as SQLite walks them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from journeyc.store.postgres.schema import Connections
from journeyc.store.rows import ScheduleRowValues

__all__ = ["PostgresScheduleRows"]

_COLUMNS = "journey_id, trigger, zone, spec, next_at, after_user"


class PostgresScheduleRows:
    """The ``schedules`` table."""

    def __init__(self, store: Connections) -> None:
        self._store = store

    def replace(self, rows: Sequence[ScheduleRowValues]) -> None:
        """Make ``rows`` the table's rows."""
        with self._store.writing() as conn:
            conn.execute("DELETE FROM schedules")
            with conn.cursor() as cur:
                cur.executemany(
                    f"INSERT INTO schedules ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s)", rows
                )

    def add(self, rows: Sequence[tuple[str, int, str, str, int]]) -> None:
        """Add ``(journey, trigger, zone, spec, next_at)`` rows, each unless its
        (journey, trigger, zone) has one."""
        with self._store.writing() as conn, conn.cursor() as cur:
            cur.executemany(
                f"INSERT INTO schedules ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s, NULL)"
                " ON CONFLICT DO NOTHING",
                rows,
            )

    def rows(self) -> list[ScheduleRowValues]:
        """Every row."""
        with self._store.connection() as conn:
            rows = conn.execute(f"SELECT {_COLUMNS} FROM schedules").fetchall()
        return [(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows]

    def zone_names(self) -> set[str]:
        """Every time zone name profiles give (their ``timezone`` trait, when a string)."""
        with self._store.connection() as conn:
            rows = conn.execute(
                "SELECT DISTINCT traits ->> 'timezone' FROM profiles"
                " WHERE jsonb_typeof(traits -> 'timezone') = 'string'"
            ).fetchall()
        return {name for (name,) in rows}

    def next_at(self) -> int | None:
        """The earliest ``next_at``."""
        with self._store.connection() as conn:
            row = conn.execute("SELECT min(next_at) FROM schedules").fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def due(self, now_ms: int) -> ScheduleRowValues | None:
        """The earliest row due by ``now_ms`` (ties: by journey, trigger, zone)."""
        with self._store.connection() as conn:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM schedules WHERE next_at <= %s"
                ' ORDER BY next_at, journey_id COLLATE "C", trigger, zone COLLATE "C" LIMIT 1',
                (now_ms,),
            ).fetchone()
        return None if row is None else (row[0], row[1], row[2], row[3], row[4], row[5])

    def audience(
        self, segment: str | None, after_user: str | None, limit: int
    ) -> list[tuple[str, Any]]:
        """The next ``limit`` users after ``after_user`` (by id) of ``segment``'s members
        (None: every user with a profile), with their ``timezone`` trait."""
        with self._store.connection() as conn:
            if segment is None:
                rows = conn.execute(
                    "SELECT user_id, traits -> 'timezone' FROM profiles"
                    ' WHERE user_id COLLATE "C" > %s ORDER BY user_id COLLATE "C" LIMIT %s',
                    (after_user or "", limit),
                ).fetchall()
            else:
                rows = conn.execute(
                    "SELECT m.user_id, p.traits -> 'timezone'"
                    " FROM segment_members m LEFT JOIN profiles p ON p.user_id = m.user_id"
                    ' WHERE m.segment = %s AND m.member AND m.user_id COLLATE "C" > %s'
                    ' ORDER BY m.user_id COLLATE "C" LIMIT %s',
                    (segment, after_user or "", limit),
                ).fetchall()
        return [(user, zone) for user, zone in rows]

    def set_after_user(self, journey_id: str, trigger: int, zone: str, after_user: str) -> None:
        """Record how far a firing's audience got."""
        with self._store.writing() as conn:
            conn.execute(
                "UPDATE schedules SET after_user = %s"
                " WHERE journey_id = %s AND trigger = %s AND zone = %s",
                (after_user, journey_id, trigger, zone),
            )

    def set_next_at(self, journey_id: str, trigger: int, zone: str, next_at: int) -> None:
        """Move a row to its next firing, its audience not started."""
        with self._store.writing() as conn:
            conn.execute(
                "UPDATE schedules SET next_at = %s, after_user = NULL"
                " WHERE journey_id = %s AND trigger = %s AND zone = %s",
                (next_at, journey_id, trigger, zone),
            )
