"""The admin reads in PostgreSQL (see :class:`journeyc.store.abc.AdminReads`).

:meth:`PostgresStore.reading` runs them in one ``REPEATABLE READ READ ONLY``
transaction on a pooled connection of their own: every read of the block sees the
same committed snapshot, and none waits for a writer (MVCC) or holds one up.
:func:`journeyc.store.postgres.snapshots.snapshot` does the same on a connection of
its own, without opening the store (a ``/metrics`` scrape of the daemon).
"""

from __future__ import annotations

from typing import Any

from journeyc.store.abc import ActionRecord, FailedSend, InboxRecord, LiveInstance
from journeyc.store.postgres.schema import Connection

__all__ = ["PostgresAdminReads"]


class PostgresAdminReads:
    """The admin reads over one connection inside a snapshot transaction."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def _one(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        row = self._conn.execute(sql, params).fetchone()
        assert row is not None  # an aggregate answers one row
        return row[0]

    def _all(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return self._conn.execute(sql, params).fetchall()

    def canonical_user(self, user_id: str) -> str:
        """The user ``user_id`` names."""
        rows = self._all("SELECT user_id FROM identities WHERE alias = %s", (user_id,))
        return user_id if not rows else str(rows[0][0])

    def ping(self) -> None:
        """Answer a trivial query."""
        self._one("SELECT count(*) FROM cursor")

    def count_events(self) -> int:
        """Events in the log."""
        return int(self._one("SELECT count(*) FROM events"))

    def count_profiles(self) -> int:
        """Users with a profile."""
        return int(self._one("SELECT count(*) FROM profiles"))

    def last_seq(self) -> int:
        """The seq of the log's last event."""
        return int(self._one("SELECT coalesce(max(seq), 0) FROM events"))

    def cursor(self, name: str) -> int:
        """The named cursor's seq."""
        rows = self._all("SELECT seq FROM cursor WHERE name = %s", (name,))
        return int(rows[0][0]) if rows else 0

    def traits(self, user_id: str) -> dict[str, Any] | None:
        """The user's traits, None without a profile."""
        rows = self._all("SELECT traits FROM profiles WHERE user_id = %s", (user_id,))
        return None if not rows else dict(rows[0][0])

    def live_instances(self, user_id: str) -> list[LiveInstance]:
        """The user's running instances, by journey."""
        rows = self._all(
            "SELECT journey_id, version, entry_no, node, status, entered_at, wake_at,"
            " waiting_for FROM instances"
            " WHERE user_id = %s AND status IN ('active', 'waiting')"
            ' ORDER BY journey_id COLLATE "C"',
            (user_id,),
        )
        return [LiveInstance._make(r) for r in rows]

    def memberships(self, user_id: str) -> list[tuple[str, int]]:
        """``(segment, since_ms)`` of the user's segments."""
        rows = self._all(
            "SELECT segment, since FROM segment_members WHERE user_id = %s AND member"
            ' ORDER BY segment COLLATE "C"',
            (user_id,),
        )
        return [(segment, int(since)) for segment, since in rows]

    def recent_actions(self, user_id: str, limit: int) -> list[ActionRecord]:
        """The user's last actions, newest first."""
        rows = self._all(
            "SELECT at, journey_id, step, action, detail FROM actions"
            " WHERE user_id = %s ORDER BY seq DESC LIMIT %s",
            (user_id, limit),
        )
        return [ActionRecord._make(r) for r in rows]

    def has_events(self, user_id: str) -> bool:
        """Whether the log holds an event of the user."""
        return bool(self._all("SELECT 1 FROM events WHERE user_id = %s LIMIT 1", (user_id,)))

    def journey_versions(self) -> list[tuple[str, str, int, bool]]:
        """Every deployed version, by journey then deployment time."""
        rows = self._all(
            "SELECT id, version, deployed_at, active FROM journeys"
            ' ORDER BY id COLLATE "C", deployed_at'
        )
        return [(jid, version, int(at), bool(active)) for jid, version, at, active in rows]

    def live_per_step(self) -> list[tuple[str, str, str, int]]:
        """Running instances per journey, version and step."""
        rows = self._all(
            "SELECT journey_id, version, node, count(*) FROM instances"
            " WHERE status IN ('active', 'waiting') GROUP BY 1, 2, 3"
            ' ORDER BY journey_id COLLATE "C", node COLLATE "C"'
        )
        return [(jid, version, node, int(count)) for jid, version, node, count in rows]

    def entry_cohorts(self) -> list[tuple[str, str | None, bool, int, int]]:
        """Entries and goals per journey and group."""
        rows = self._all(
            "SELECT journey_id, CASE WHEN holdout THEN NULL ELSE arm END, holdout, count(*),"
            " count(goal_at) FROM entries GROUP BY 1, 2, 3"
            # SQLite's order: by code point, no arm (NULL) first.
            ' ORDER BY journey_id COLLATE "C", holdout,'
            ' CASE WHEN holdout THEN NULL ELSE arm END COLLATE "C" NULLS FIRST'
        )
        return [(jid, arm, bool(held), int(n), int(goals)) for jid, arm, held, n, goals in rows]

    def sends_per_journey(self) -> list[tuple[str, str, str, int]]:
        """Outbox rows per journey, status and channel (or suppression reason)."""
        rows = self._all(
            "SELECT j, s, l, n FROM (SELECT journey_id AS j, status AS s,"
            " CASE status WHEN 'suppressed' THEN coalesce(error, 'unknown')"
            " ELSE coalesce(channel, 'none') END AS l, count(*) AS n"
            ' FROM outbox GROUP BY 1, 2, 3) AS t ORDER BY j COLLATE "C", s, l COLLATE "C"'
        )
        return [(jid, status, label, int(count)) for jid, status, label, count in rows]

    def sends_per_channel(self) -> list[tuple[str, str, int]]:
        """Outbox rows per channel and status."""
        rows = self._all(
            "SELECT c, s, n FROM (SELECT coalesce(channel, 'none') AS c, status AS s,"
            ' count(*) AS n FROM outbox GROUP BY 1, 2) AS t ORDER BY c COLLATE "C", s'
        )
        return [(channel, status, int(count)) for channel, status, count in rows]

    def outbox_statuses(self) -> dict[str, int]:
        """Outbox rows per status."""
        return {
            status: int(n)
            for status, n in self._all("SELECT status, count(*) FROM outbox GROUP BY 1")
        }

    def backlog(self) -> int:
        """Queued outbox rows."""
        return int(self._one("SELECT count(*) FROM outbox WHERE status = 'queued'"))

    def recent_failures(self, limit: int) -> list[FailedSend]:
        """The last failed sends, newest first."""
        rows = self._all(
            "SELECT key, journey_id, user_id, step, channel, attempts, created_at, error"
            " FROM outbox WHERE status = 'failed' ORDER BY created_at DESC, id DESC LIMIT %s",
            (limit,),
        )
        return [FailedSend._make(r) for r in rows]

    def inbox(self, user_id: str, limit: int) -> list[InboxRecord]:
        """The user's last delivered in-app messages, newest first."""
        rows = self._all(
            "SELECT id, journey_id, step, message, content, sent_at FROM outbox"
            " WHERE user_id = %s AND channel = 'inapp' AND status = 'sent'"
            " ORDER BY sent_at DESC, id DESC LIMIT %s",
            (user_id, limit),
        )
        return [InboxRecord._make(r) for r in rows]

    def scheduled_triggers(self) -> list[tuple[str, int, str, str]]:
        """Every scheduled trigger and zone the engine keeps a row for."""
        rows = self._all("SELECT journey_id, trigger, zone, spec FROM schedules")
        return [(jid, int(trigger), zone, spec) for jid, trigger, zone, spec in rows]
