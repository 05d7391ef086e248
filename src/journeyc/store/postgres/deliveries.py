"""What providers report after a send, in PostgreSQL: the ``deliveries`` table (see
:class:`journeyc.store.abc.Deliveries` and :mod:`journeyc.store.sqlite.deliveries`,
whose rules these follow).

:meth:`PostgresDeliveries.record` inserts a batch in one statement, ``ON CONFLICT DO
NOTHING`` on the report's key (outbox key, kind, provider event id): the rows it
returns are the new ones, whatever other writers insert at the same time; two
writers of the same report queue on the unique index and one of them adds it. Rows
are inserted by message and kind, so writers of overlapping batches queue in one order
rather than deadlock.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from journeyc.fastjson import dumps
from journeyc.store.postgres.schema import Connections
from journeyc.store.rows import Delivery, Send, which_new

__all__ = ["PostgresDeliveries"]


class PostgresDeliveries:
    """The deliveries of one PostgreSQL store (:class:`journeyc.store.abc.Deliveries`)."""

    def __init__(self, store: Connections) -> None:
        self._store = store

    def sends(self, keys: Iterable[str]) -> dict[str, Send]:
        """The outbox rows with these keys, by key (keys no row has are left out); the
        user is the one the send's user id names now (after a merge, the known one)."""
        wanted = sorted(set(keys))
        if not wanted:
            return {}
        with self._store.connection() as conn:
            rows = conn.execute(
                "SELECT o.key, o.journey_id, coalesce(i.user_id, o.user_id), o.step,"
                " o.channel, o.message, o.status FROM outbox o"
                " LEFT JOIN identities i ON i.alias = o.user_id WHERE o.key = ANY(%b)",
                (wanted,),
            ).fetchall()
        return {row[0]: Send(*row) for row in rows}

    def record(self, deliveries: Sequence[Delivery]) -> list[bool]:
        """Insert the reports in one statement (inside the caller's transaction, else
        one of its own); for each, whether it was new. A report the table holds
        already, or that came earlier in ``deliveries``, is not."""
        if not deliveries:
            return []
        with self._store.writing() as conn:
            # By message and kind, so that writers of overlapping batches wait for
            # one another's rows in one order (an insert waits on a conflicting row
            # not yet committed: in any order, two could deadlock); the reports of
            # one message and kind in the batch's order (WITH ORDINALITY), so the
            # first of them gets the smaller id and counts (delivery_counts).
            rows = conn.execute(
                "INSERT INTO deliveries (outbox_key, kind, at, received_at, journey_id,"
                " user_id, channel, provider_event_id, detail)"
                " SELECT k, kd, a, r, j, u, c, p, dt::jsonb FROM unnest(%b::text[],"
                " %b::text[], %b::bigint[], %b::bigint[], %b::text[], %b::text[], %b::text[],"
                " %b::text[], %b::text[]) WITH ORDINALITY AS v (k, kd, a, r, j, u, c, p, dt, n)"
                " ORDER BY k, kd, n ON CONFLICT (outbox_key, kind, provider_event_id) DO NOTHING"
                " RETURNING outbox_key, kind, provider_event_id",
                (
                    [d.outbox_key for d in deliveries],
                    [d.kind for d in deliveries],
                    [d.at_ms for d in deliveries],
                    [d.received_ms for d in deliveries],
                    [d.journey_id for d in deliveries],
                    [d.user_id for d in deliveries],
                    [d.channel for d in deliveries],
                    [d.provider_event_id for d in deliveries],
                    [dumps(dict(d.detail)) for d in deliveries],
                ),
            ).fetchall()
        return which_new(deliveries, set(rows))

    def counts(self) -> dict[tuple[str, str], int]:
        """Reports per ``(kind, channel)`` (channel ``none`` for a send without one)."""
        with self._store.connection() as conn:
            rows = conn.execute(
                "SELECT kind, coalesce(channel, 'none'), count(*) FROM deliveries"
                " GROUP BY 1, 2 ORDER BY 1, 2"
            ).fetchall()
        return {(kind, channel): int(n) for kind, channel, n in rows}
