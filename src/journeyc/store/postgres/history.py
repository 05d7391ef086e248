"""The engine's reads of the event log by user, in PostgreSQL (see
:class:`journeyc.store.abc.EventHistory`)."""

from __future__ import annotations

from typing import Any

from journeyc.store.postgres.schema import Connections

__all__ = ["PostgresEventHistory"]


class PostgresEventHistory:
    """The ``events`` table, read per user."""

    def __init__(self, store: Connections) -> None:
        self._store = store

    def user_events(
        self, user_id: str, through_seq: int
    ) -> list[tuple[int, str, int, dict[str, Any]]]:
        """The user's events up to ``through_seq`` as ``(seq, name, at, props)``, in
        ``(at, seq)`` order (props that are not an object read as ``{}``)."""
        with self._store.connection() as conn:
            rows = conn.execute(
                "SELECT seq, name, at, props FROM events WHERE user_id = %s AND seq <= %s"
                " ORDER BY at, seq",
                (user_id, through_seq),
            ).fetchall()
        return [
            (seq, name, at, props if isinstance(props, dict) else {})
            for seq, name, at, props in rows
        ]

    def times(
        self, user_id: str, name: str, after_ms: int, now_ms: int
    ) -> tuple[int | None, int | None]:
        """Of the user's ``name`` events after ``after_ms``: the earliest time past
        ``now_ms``, and the earliest time up to it."""
        with self._store.connection() as conn:
            row = conn.execute(
                "SELECT min(at) FILTER (WHERE at > %(now)s), min(at) FILTER (WHERE at <= %(now)s)"
                " FROM events WHERE user_id = %(user)s AND name = %(name)s AND at > %(after)s",
                {"now": now_ms, "user": user_id, "name": name, "after": after_ms},
            ).fetchone()
        assert row is not None
        return row[0], row[1]

    def last_seq(self) -> int:
        """The seq of the last event logged (0 when none is)."""
        with self._store.connection() as conn:
            row = conn.execute("SELECT max(seq) FROM events").fetchone()
        return int(row[0] or 0) if row else 0
