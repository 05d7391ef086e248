"""The engine's reads of the event log by user: a user's events up to a seq (the
simulator's index reads each user's history once), the earliest times of one event
around a moment (when a segment may change), and the last seq logged."""

from __future__ import annotations

import sqlite3
from typing import Any

from journeyc.fastjson import loads

__all__ = ["EventHistory"]


class EventHistory:
    """The ``events`` table, read per user (:class:`~journeyc.store.abc.EventHistory`)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def user_events(
        self, user_id: str, through_seq: int
    ) -> list[tuple[int, str, int, dict[str, Any]]]:
        """The user's events up to ``through_seq`` as ``(seq, name, at, props)``, in
        ``(at, seq)`` order (props that are not an object read as ``{}``)."""
        out = []
        for seq, name, at, props in self.conn.execute(
            "SELECT seq, name, at, props FROM events WHERE user_id = ? AND seq <= ?"
            " ORDER BY at, seq",
            (user_id, through_seq),
        ):
            loaded = loads(props) if props else {}
            out.append((seq, name, at, loaded if isinstance(loaded, dict) else {}))
        return out

    def times(
        self, user_id: str, name: str, after_ms: int, now_ms: int
    ) -> tuple[int | None, int | None]:
        """Of the user's ``name`` events after ``after_ms``: the earliest time past
        ``now_ms``, and the earliest time up to it."""
        row = self.conn.execute(
            "SELECT min(CASE WHEN at > ?1 THEN at END), min(CASE WHEN at <= ?1 THEN at END)"
            " FROM events WHERE user_id = ?2 AND name = ?3 AND at > ?4",
            (now_ms, user_id, name, after_ms),
        ).fetchone()
        return row[0], row[1]

    def last_seq(self) -> int:
        """The seq of the last event logged (0 when none is)."""
        (seq,) = self.conn.execute("SELECT MAX(seq) FROM events").fetchone()
        return int(seq or 0)
