"""The outbox in SQLite: the dispatcher's queue of sends (see :class:`journeyc.store.abc.Outbox`).

One SQLite file has one writer at a time, so a claim is a plain ``SELECT`` then
``UPDATE`` inside the caller's ``BEGIN IMMEDIATE`` transaction: no other worker can
run between the two. Lists of ids and channels go to SQLite as one JSON array
(``json_each``), one statement however many rows.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection, Sequence

from journeyc.store.abc import Failure, PutOff, QueuedSend, Retry
from journeyc.store.claims import lane_limits

__all__ = ["CLAIM_DUE", "SqliteOutbox"]

_ROW_COLS = "id, key, journey_id, user_id, step, channel, message, content, attempts"

# The queued rows' channels but those in :known, each found by a seek in the index of
# a channel's due rows (a loose index scan: the next channel past the last), so a
# channel's backlog is stepped over, not walked. INDEXED BY: without statistics
# SQLite's planner would take outbox_due (status =) and walk every queued row.
_BY_CHANNEL = "INDEXED BY outbox_channel_due"
_OTHER_CHANNELS = (
    "WITH RECURSIVE ch (c) AS ("
    f" SELECT (SELECT min(channel) FROM outbox {_BY_CHANNEL} WHERE status = 'queued')"
    f" UNION ALL SELECT (SELECT min(channel) FROM outbox {_BY_CHANNEL}"
    " WHERE status = 'queued' AND channel > ch.c) FROM ch WHERE ch.c IS NOT NULL),"
    " other (c) AS (SELECT c FROM ch WHERE c IS NOT NULL"
    " AND c NOT IN (SELECT value FROM json_each(:known)))"
)

CLAIM_DUE = (
    f"SELECT {_ROW_COLS} FROM outbox WHERE status = 'queued'"
    " AND next_attempt_at <= ? AND channel = ? ORDER BY next_attempt_at, id LIMIT ?"
)
"""A channel's earliest due rows (now, channel, limit): what :meth:`SqliteOutbox.claim`
leases. Served by the partial index ``outbox_channel_due`` (schema version 9), so
another channel's backlog is never walked."""


class SqliteOutbox:
    """The ``outbox`` table of one store's connection (:meth:`Store.outbox`)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def next_due(self, skip_channels: Collection[str] = ()) -> int | None:
        """When the earliest queued row is due, leaving out ``skip_channels``' rows."""
        if skip_channels:
            # The earliest of each other channel's (and of no channel's), each one a
            # seek: not a walk through the skipped channels' backlog.
            row = self._conn.execute(
                f"{_OTHER_CHANNELS} SELECT min(m) FROM"
                f" (SELECT (SELECT min(next_attempt_at) FROM outbox {_BY_CHANNEL}"
                " WHERE status = 'queued' AND channel = other.c) AS m FROM other"
                f" UNION ALL SELECT min(next_attempt_at) FROM outbox {_BY_CHANNEL}"
                " WHERE status = 'queued' AND channel IS NULL)",
                {"known": json.dumps(list(skip_channels))},
            ).fetchone()
        else:
            row = self._conn.execute(
                "SELECT MIN(next_attempt_at) FROM outbox WHERE status = 'queued'"
            ).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def undeliverable(self, now_ms: int, channels: Collection[str], limit: int) -> list[QueuedSend]:
        """Due rows without a channel or of a channel not in ``channels``."""
        # The due rows of no channel, then of each other channel (each a seek), in
        # order: not a walk through the known channels' due rows (a backlog).
        rows = self._conn.execute(
            f"{_OTHER_CHANNELS} SELECT {_ROW_COLS}, next_attempt_at FROM outbox {_BY_CHANNEL}"
            " WHERE status = 'queued' AND channel IS NULL AND next_attempt_at <= :now"
            f" UNION ALL SELECT {_ROW_COLS}, next_attempt_at FROM outbox {_BY_CHANNEL}"
            " WHERE status = 'queued' AND channel IN other AND next_attempt_at <= :now"
            " ORDER BY next_attempt_at, id LIMIT :limit",
            {"now": now_ms, "known": json.dumps(sorted(channels)), "limit": limit},
        ).fetchall()
        return [QueuedSend._make(row[:-1]) for row in rows]

    def claim(
        self, channel: str, now_ms: int, limit: int, worker: str, lease_until_ms: int
    ) -> list[QueuedSend]:
        """Lease ``channel``'s due rows to ``worker`` until ``lease_until_ms``."""
        rows = self._conn.execute(CLAIM_DUE, (now_ms, channel, limit)).fetchall()
        if rows:
            self._conn.execute(
                "UPDATE outbox SET next_attempt_at = ?, claimed_by = ?"
                " WHERE id IN (SELECT value FROM json_each(?))",
                (lease_until_ms, worker, json.dumps([r[0] for r in rows])),
            )
        return [QueuedSend._make(row) for row in rows]

    def claim_lanes(
        self, wants: Sequence[tuple[str, int]], now_ms: int, worker: str, lease_until_ms: int
    ) -> dict[str, list[QueuedSend]]:
        """Lease each wanted channel's due rows to ``worker`` until ``lease_until_ms``:
        one :meth:`claim` per channel (one writer and no round trips: nothing to save
        by a single statement)."""
        return {
            channel: self.claim(channel, now_ms, limit, worker, lease_until_ms) if limit > 0 else []
            for channel, limit in lane_limits(wants).items()
        }

    def put_off_channel(self, channel: str, now_ms: int, until_ms: int) -> int:
        """Move ``channel``'s due rows to ``until_ms``, unclaimed."""
        return self._conn.execute(
            "UPDATE outbox SET next_attempt_at = ?, claimed_by = NULL"
            " WHERE status = 'queued' AND next_attempt_at <= ? AND channel = ?",
            (until_ms, now_ms, channel),
        ).rowcount

    def mark_sent(self, sent_at_ms: int, ids: Sequence[int]) -> None:
        """Mark queued rows sent at ``sent_at_ms``, one more attempt counted."""
        self._conn.execute(
            "UPDATE outbox SET status = 'sent', sent_at = ?, attempts = attempts + 1, "
            "next_attempt_at = NULL, error = NULL, claimed_by = NULL "
            # `+status`: look the rows up by id, not by scanning the queue.
            "WHERE id IN (SELECT value FROM json_each(?)) AND +status = 'queued'",
            (sent_at_ms, json.dumps(list(ids))),
        )

    def mark_sent_late(self, rows: Sequence[tuple[int, int]]) -> None:
        """Mark given-up queued rows sent, ``(sent_at_ms, id)``."""
        self._conn.executemany(
            "UPDATE outbox SET status = 'sent', sent_at = ?, next_attempt_at = NULL, "
            "error = NULL, claimed_by = NULL WHERE id = ? AND status = 'queued'",
            rows,
        )

    def retry(self, rows: Sequence[Retry]) -> None:
        """Write failed attempts to try again."""
        self._conn.executemany(
            "UPDATE outbox SET attempts = ?, next_attempt_at = ?, error = ?, "
            "claimed_by = NULL WHERE id = ? AND status = 'queued'",
            rows,
        )

    def fail(self, rows: Sequence[Failure]) -> None:
        """Mark queued rows failed."""
        self._conn.executemany(
            "UPDATE outbox SET status = 'failed', attempts = ?, next_attempt_at = NULL, "
            "error = ?, claimed_by = NULL WHERE id = ? AND status = 'queued'",
            rows,
        )

    def put_off(self, rows: Sequence[PutOff]) -> None:
        """Hand claimed rows back untried."""
        self._conn.executemany(
            "UPDATE outbox SET next_attempt_at = ?, claimed_by = NULL "
            "WHERE id = ? AND status = 'queued'",
            rows,
        )

    def reclaim(self, now_ms: int, alive: Collection[str]) -> int:
        """Make the claims of workers not in ``alive`` due at ``now_ms``."""
        return self._conn.execute(
            "UPDATE outbox SET next_attempt_at = ?, claimed_by = NULL WHERE status = 'queued'"
            " AND claimed_by IS NOT NULL"
            " AND claimed_by NOT IN (SELECT value FROM json_each(?))",
            (now_ms, json.dumps(sorted(alive))),
        ).rowcount
