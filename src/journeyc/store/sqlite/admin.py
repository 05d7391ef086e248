"""The admin reads in SQLite (see :class:`journeyc.store.abc.AdminReads`).

:func:`snapshot` reads on a short-lived connection of its own: under WAL it sees
committed data only and never waits for the writer, so the daemon's API threads,
``/metrics`` scrapes and ``journeyc status`` read beside the engine's writes.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

from journeyc.store.abc import ActionRecord, FailedSend, InboxRecord, LiveInstance
from journeyc.store.rows import Cohort
from journeyc.store.sqlite.errors import converted

__all__ = [
    "SqliteAdminReads",
    "canonical_user",
    "entry_cohorts",
    "open_reader",
    "snapshot",
]


def open_reader(store_path: Path | str) -> sqlite3.Connection:
    """A connection for reads beside the store's writer (WAL lets both run at once).

    ``query_only`` guards against a stray write; the caller closes it.
    """
    conn = sqlite3.connect(str(store_path), timeout=5, isolation_level=None)
    conn.execute("PRAGMA query_only = ON")
    return conn


@contextmanager
def snapshot(store_path: Path | str) -> Iterator[SqliteAdminReads]:
    """Reads of the store at ``store_path`` that all see one snapshot of it."""
    try:
        with closing(open_reader(store_path)) as conn:
            conn.execute("BEGIN")
            yield SqliteAdminReads(conn)
    except sqlite3.Error as exc:  # the store's error, not the driver's
        raise converted(exc) from exc


class SqliteAdminReads:
    """The admin reads over one connection (see :func:`snapshot`)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def _one(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        (value,) = self._conn.execute(sql, params).fetchone()
        return value

    def canonical_user(self, user_id: str) -> str:
        """The user ``user_id`` names."""
        return canonical_user(self._conn, user_id)

    def ping(self) -> None:
        """Answer a trivial query."""
        self._conn.execute("SELECT count(*) FROM cursor").fetchone()

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
        row = self._conn.execute("SELECT seq FROM cursor WHERE name = ?", (name,)).fetchone()
        return int(row[0]) if row else 0

    def traits(self, user_id: str) -> dict[str, Any] | None:
        """The user's traits, None without a profile."""
        row = self._conn.execute(
            "SELECT traits FROM profiles WHERE user_id = ?", (user_id,)
        ).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def live_instances(self, user_id: str) -> list[LiveInstance]:
        """The user's running instances, by journey."""
        rows = self._conn.execute(
            "SELECT journey_id, version, entry_no, node, status, entered_at, wake_at,"
            " waiting_for FROM instances"
            " WHERE user_id = ? AND status IN ('active', 'waiting') ORDER BY journey_id",
            (user_id,),
        )
        return [LiveInstance._make(r) for r in rows]

    def memberships(self, user_id: str) -> list[tuple[str, int]]:
        """``(segment, since_ms)`` of the user's segments."""
        rows = self._conn.execute(
            "SELECT segment, since FROM segment_members WHERE user_id = ? AND member = 1"
            " ORDER BY segment",
            (user_id,),
        )
        return [(segment, since) for segment, since in rows]

    def recent_actions(self, user_id: str, limit: int) -> list[ActionRecord]:
        """The user's last actions, newest first."""
        rows = self._conn.execute(
            "SELECT at, journey_id, step, action, detail FROM actions"
            " WHERE user_id = ? ORDER BY seq DESC LIMIT ?",
            (user_id, limit),
        )
        return [ActionRecord(r[0], r[1], r[2], r[3], json.loads(r[4])) for r in rows]

    def has_events(self, user_id: str) -> bool:
        """Whether the log holds an event of the user."""
        row = self._conn.execute(
            "SELECT 1 FROM events WHERE user_id = ? LIMIT 1", (user_id,)
        ).fetchone()
        return row is not None

    def journey_versions(self) -> list[tuple[str, str, int, bool]]:
        """Every deployed version, by journey then deployment time."""
        rows = self._conn.execute(
            "SELECT id, version, deployed_at, active FROM journeys ORDER BY id, deployed_at"
        )
        return [(jid, version, at, bool(active)) for jid, version, at, active in rows]

    def live_per_step(self) -> list[tuple[str, str, str, int]]:
        """Running instances per journey, version and step."""
        rows = self._conn.execute(
            "SELECT journey_id, version, node, count(*) FROM instances"
            " WHERE status IN ('active', 'waiting') GROUP BY 1, 2, 3 ORDER BY 1, 3"
        )
        return [(jid, version, node, count) for jid, version, node, count in rows]

    def entry_cohorts(self) -> list[Cohort]:
        """Entries and goals per journey and group."""
        return entry_cohorts(self._conn)

    def sends_per_journey(self) -> list[tuple[str, str, str, int]]:
        """Outbox rows per journey, status and channel (or suppression reason)."""
        rows = self._conn.execute(
            "SELECT journey_id, status,"
            " CASE status WHEN 'suppressed' THEN coalesce(error, 'unknown')"
            " ELSE coalesce(channel, 'none') END, count(*)"
            " FROM outbox GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
        )
        return [(jid, status, label, count) for jid, status, label, count in rows]

    def sends_per_channel(self) -> list[tuple[str, str, int]]:
        """Outbox rows per channel and status."""
        rows = self._conn.execute(
            "SELECT coalesce(channel, 'none'), status, count(*) FROM outbox"
            " GROUP BY 1, 2 ORDER BY 1, 2"
        ).fetchall()
        return [(channel, status, count) for channel, status, count in rows]

    def outbox_statuses(self) -> dict[str, int]:
        """Outbox rows per status."""
        rows = self._conn.execute("SELECT status, count(*) FROM outbox GROUP BY 1")
        return {status: count for status, count in rows}

    def backlog(self) -> int:
        """Queued outbox rows."""
        return int(self._one("SELECT count(*) FROM outbox WHERE status = 'queued'"))

    def recent_failures(self, limit: int) -> list[FailedSend]:
        """The last failed sends, newest first."""
        rows = self._conn.execute(
            "SELECT key, journey_id, user_id, step, channel, attempts, created_at, error"
            " FROM outbox WHERE status = 'failed' ORDER BY created_at DESC, id DESC LIMIT ?",
            (limit,),
        )
        return [FailedSend._make(r) for r in rows]

    def inbox(self, user_id: str, limit: int) -> list[InboxRecord]:
        """The user's last delivered in-app messages, newest first."""
        rows = self._conn.execute(
            "SELECT id, journey_id, step, message, content, sent_at FROM outbox"
            " WHERE user_id = ? AND channel = 'inapp' AND status = 'sent'"
            " ORDER BY sent_at DESC, id DESC LIMIT ?",
            (user_id, limit),
        ).fetchall()
        return [InboxRecord(r[0], r[1], r[2], r[3], json.loads(r[4]), r[5]) for r in rows]


def canonical_user(conn: sqlite3.Connection, user_id: str) -> str:
    """The user ``user_id`` names in the store ``conn`` reads (itself, unless it was
    merged into another): :meth:`~journeyc.store.sqlite.Store.canonical_user` for a
    reader's connection."""
    row = conn.execute("SELECT user_id FROM identities WHERE alias = ?", (user_id,)).fetchone()
    return user_id if row is None else str(row[0])


def entry_cohorts(conn: sqlite3.Connection) -> list[Cohort]:
    """Entries and goals per journey and group, for A/B reports: ``(journey, arm, held
    out, entries, goals)``, the held-out entries together whatever their arm (``arm``
    None), the others by the split arm they took (None: no split), by journey."""
    rows = conn.execute(
        "SELECT journey_id, CASE WHEN holdout THEN NULL ELSE arm END, holdout, count(*),"
        " count(goal_at) FROM entries GROUP BY 1, 2, 3 ORDER BY 1, 3, 2"
    )
    return [(jid, arm, bool(held), int(n), int(goals)) for jid, arm, held, n, goals in rows]
