"""The outbox in PostgreSQL: the dispatcher's queue of sends (see
:class:`journeyc.store.abc.Outbox`).

Several dispatchers may work one outbox at once, on several machines. A claim selects
the due rows ``FOR UPDATE SKIP LOCKED`` and moves them to the lease's end in the same
statement: rows another worker is claiming at that moment are skipped, never waited
for, and once its transaction commits they are no longer due. Outcomes are written only
to rows still ``queued`` (a row another worker sent after a lease ran out stays sent).
A dispatcher's pump claims for all its channels in one such statement
(:meth:`PostgresOutbox.claim_lanes`).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from journeyc.store.abc import Failure, PutOff, QueuedSend, Retry
from journeyc.store.claims import lane_limits
from journeyc.store.postgres.schema import Connections

__all__ = ["CLAIM_LANES", "PostgresOutbox"]

_ROW_COLS = (
    "o.id, o.key, o.journey_id, o.user_id, o.step, o.channel, o.message, o.content::text,"
    " o.attempts"
)

# The queued rows' channels but those in %(known)s, each found by a seek in the index of
# a channel's due rows (a loose index scan: the next channel past the last), so a
# channel's backlog is stepped over, not walked.
_OTHER_CHANNELS = (
    "WITH RECURSIVE ch (c) AS ("
    " SELECT (SELECT min(channel) FROM outbox WHERE status = 'queued')"
    " UNION ALL SELECT (SELECT min(channel) FROM outbox WHERE status = 'queued'"
    " AND channel > ch.c) FROM ch WHERE ch.c IS NOT NULL),"
    " other (c) AS (SELECT c FROM ch WHERE c IS NOT NULL AND NOT c = ANY(%(known)b))"
)
# The earliest queued row's due time of the channel the placeholder selects. Ordered
# by (next_attempt_at, id) rather than min(): only outbox_channel_due yields that order,
# where min() let the planner walk outbox_due, guessing half its rows are the channel's.
_EARLIEST = (
    "SELECT next_attempt_at FROM outbox WHERE status = 'queued' AND channel {}"
    " ORDER BY next_attempt_at, id LIMIT 1"
)

# One statement for every channel (it was one per channel, each a round trip and the
# costliest statement of a busy server): a LATERAL subquery per wanted channel picks
# its earliest due rows up to its limit and locks them SKIP LOCKED (a locking clause
# is allowed there: each channel's LIMIT applies to the rows it could lock), then one
# UPDATE leases them all. Each subquery reads the partial index outbox_channel_due
# (schema version 11): another channel's backlog is never walked. The UPDATE finds
# its rows by id (= ANY of the chosen ids: the primary key), not by joining ``due``
# alone: the planner cannot tell how many rows ``LIMIT w.n`` keeps (it guesses a
# tenth of the channel's), and for that many it hashed the join over a scan of the
# whole outbox, backlog included.
CLAIM_LANES = (
    "WITH due AS (SELECT w.channel, d.id, d.next_attempt_at"
    " FROM unnest(%b::text[], %b::integer[]) AS w (channel, n)"
    " CROSS JOIN LATERAL (SELECT id, next_attempt_at FROM outbox"
    " WHERE status = 'queued' AND next_attempt_at <= %s AND channel = w.channel"
    " ORDER BY next_attempt_at, id LIMIT w.n FOR UPDATE SKIP LOCKED) AS d)"
    " UPDATE outbox AS o SET next_attempt_at = %s, claimed_by = %s FROM due"
    " WHERE o.id = ANY(ARRAY(SELECT id FROM due)) AND o.id = due.id"
    f" RETURNING due.channel, due.next_attempt_at, {_ROW_COLS}"
)
"""The claim of :meth:`PostgresOutbox.claim_lanes`: parameters channels, their limits,
now, the lease's end, the worker."""


class PostgresOutbox:
    """The ``outbox`` table of a PostgreSQL store (:meth:`PostgresStore.outbox`)."""

    def __init__(self, store: Connections) -> None:
        self._store = store

    def next_due(self, skip_channels: Collection[str] = ()) -> int | None:
        """When the earliest queued row is due, leaving out ``skip_channels``' rows."""
        with self._store.connection() as conn:
            if skip_channels:
                # The earliest of each other channel's (and of no channel's), each one
                # a seek: not a walk through the skipped channels' backlog.
                row = conn.execute(
                    f"{_OTHER_CHANNELS} SELECT min(m) FROM"
                    f" (SELECT ({_EARLIEST.format('= other.c')}) AS m FROM other"
                    f" UNION ALL SELECT ({_EARLIEST.format('IS NULL')})) AS t",
                    {"known": sorted(skip_channels)},
                ).fetchone()
            else:  # one probe of outbox_due
                row = conn.execute(
                    "SELECT min(next_attempt_at) FROM outbox WHERE status = 'queued'"
                ).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def undeliverable(self, now_ms: int, channels: Collection[str], limit: int) -> list[QueuedSend]:
        """Due rows without a channel or of a channel not in ``channels`` (rows another
        worker has locked are skipped)."""
        # The earliest due rows of no channel and of each other channel (each a seek),
        # then those rows locked by id: not a walk through the known channels' due rows
        # (a backlog). A candidate another worker has locked is skipped: that worker
        # is failing it.
        with self._store.writing() as conn:
            rows = conn.execute(
                f"{_OTHER_CHANNELS}, picked AS ((SELECT id FROM outbox WHERE status = 'queued'"
                " AND channel IS NULL AND next_attempt_at <= %(now)s"
                " ORDER BY next_attempt_at, id LIMIT %(limit)s)"
                " UNION ALL SELECT d.id FROM other CROSS JOIN LATERAL (SELECT id FROM outbox"
                " WHERE status = 'queued' AND channel = other.c AND next_attempt_at <= %(now)s"
                " ORDER BY next_attempt_at, id LIMIT %(limit)s) AS d)"
                f" SELECT {_ROW_COLS} FROM outbox AS o"
                " WHERE o.id = ANY(ARRAY(SELECT id FROM picked))"
                " AND o.status = 'queued' AND o.next_attempt_at <= %(now)s"
                " ORDER BY o.next_attempt_at, o.id LIMIT %(limit)s FOR UPDATE OF o SKIP LOCKED",
                {"now": now_ms, "known": sorted(channels), "limit": limit},
            ).fetchall()
        return [QueuedSend._make(row) for row in rows]

    def claim(
        self, channel: str, now_ms: int, limit: int, worker: str, lease_until_ms: int
    ) -> list[QueuedSend]:
        """Lease ``channel``'s due rows to ``worker`` until ``lease_until_ms``."""
        return self.claim_lanes([(channel, limit)], now_ms, worker, lease_until_ms)[channel]

    def claim_lanes(
        self, wants: Sequence[tuple[str, int]], now_ms: int, worker: str, lease_until_ms: int
    ) -> dict[str, list[QueuedSend]]:
        """Lease each wanted channel's due rows to ``worker``, in one statement."""
        limits = lane_limits(wants)
        got: dict[str, list[QueuedSend]] = {channel: [] for channel in limits}
        asked = [(channel, n) for channel, n in limits.items() if n > 0]
        if not asked:
            return got
        with self._store.writing() as conn:
            rows = conn.execute(
                CLAIM_LANES,
                ([c for c, _ in asked], [n for _, n in asked], now_ms, lease_until_ms, worker),
            ).fetchall()
        # RETURNING keeps no order: earliest due first, then by id, as selected.
        rows.sort(key=lambda r: (r[1], r[2]))
        for channel, _, *send in rows:
            got[channel].append(QueuedSend._make(send))
        return got

    def put_off_channel(self, channel: str, now_ms: int, until_ms: int) -> int:
        """Move ``channel``'s due rows to ``until_ms``, unclaimed."""
        with self._store.writing() as conn:
            return conn.execute(
                "UPDATE outbox SET next_attempt_at = %s, claimed_by = NULL"
                " WHERE status = 'queued' AND next_attempt_at <= %s AND channel = %s",
                (until_ms, now_ms, channel),
            ).rowcount

    def mark_sent(self, sent_at_ms: int, ids: Sequence[int]) -> None:
        """Mark queued rows sent at ``sent_at_ms``, one more attempt counted."""
        with self._store.writing() as conn:
            conn.execute(
                "UPDATE outbox SET status = 'sent', sent_at = %s, attempts = attempts + 1,"
                " next_attempt_at = NULL, error = NULL, claimed_by = NULL"
                " WHERE id = ANY(%b) AND status = 'queued'",
                (sent_at_ms, list(ids)),
            )

    def mark_sent_late(self, rows: Sequence[tuple[int, int]]) -> None:
        """Mark given-up queued rows sent, ``(sent_at_ms, id)``."""
        self._many(
            "UPDATE outbox SET status = 'sent', sent_at = %s, next_attempt_at = NULL,"
            " error = NULL, claimed_by = NULL WHERE id = %s AND status = 'queued'",
            rows,
        )

    def retry(self, rows: Sequence[Retry]) -> None:
        """Write failed attempts to try again."""
        self._many(
            "UPDATE outbox SET attempts = %s, next_attempt_at = %s, error = %s,"
            " claimed_by = NULL WHERE id = %s AND status = 'queued'",
            rows,
        )

    def fail(self, rows: Sequence[Failure]) -> None:
        """Mark queued rows failed."""
        self._many(
            "UPDATE outbox SET status = 'failed', attempts = %s, next_attempt_at = NULL,"
            " error = %s, claimed_by = NULL WHERE id = %s AND status = 'queued'",
            rows,
        )

    def put_off(self, rows: Sequence[PutOff]) -> None:
        """Hand claimed rows back untried."""
        self._many(
            "UPDATE outbox SET next_attempt_at = %s, claimed_by = NULL"
            " WHERE id = %s AND status = 'queued'",
            rows,
        )

    def reclaim(self, now_ms: int, alive: Collection[str]) -> int:
        """Make the claims of workers not in ``alive`` due at ``now_ms``."""
        with self._store.writing() as conn:
            return conn.execute(
                "UPDATE outbox SET next_attempt_at = %s, claimed_by = NULL"
                " WHERE status = 'queued' AND claimed_by IS NOT NULL"
                " AND NOT claimed_by = ANY(%b)",
                (now_ms, sorted(alive)),
            ).rowcount

    def _many(self, query: str, rows: Sequence[tuple[object, ...]]) -> None:
        if not rows:
            return
        with self._store.writing() as conn, conn.cursor() as cur:
            cur.executemany(query, rows)  # psycopg pipelines them: one round trip
