"""What providers report after a send: the ``deliveries`` table (schema version 5).

A provider tells journeyc that a message was delivered, opened, clicked, bounced,
complained about or unsubscribed from, naming the send by its outbox key (the
idempotency key it was given with the message). :class:`Deliveries` looks the sends
up and records the reports; a report the table holds already (same key, kind and
provider event id) adds nothing. Call it inside the caller's
:meth:`Store.transaction <journeyc.store.sqlite.Store.transaction>` to record the
reports together with what they bring (the webhook logs events in the same one).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from journeyc.fastjson import dumps
from journeyc.store.rows import KINDS, Delivery, Kind, Send, which_new
from journeyc.store.sqlite.connected import Connected

__all__ = ["KINDS", "Deliveries", "Delivery", "Kind", "Send"]


class Deliveries:
    """The deliveries of one :class:`~journeyc.store.sqlite.Store`
    (:class:`journeyc.store.abc.Deliveries`)."""

    def __init__(self, store: Connected) -> None:
        self._store = store

    def sends(self, keys: Iterable[str]) -> dict[str, Send]:
        """The outbox rows with these keys, by key (keys no row has are left out)."""
        wanted = sorted(set(keys))
        if not wanted:
            return {}
        # The user an id was merged into since the send (anonymous to known) is the
        # send's user now.
        rows = self._store.conn.execute(
            "SELECT o.key, o.journey_id, coalesce(i.user_id, o.user_id), o.step, o.channel,"
            " o.message, o.status FROM outbox o LEFT JOIN identities i ON i.alias = o.user_id"
            " WHERE o.key IN (SELECT value FROM json_each(?))",
            (dumps(wanted),),
        )
        return {row[0]: Send(*row) for row in rows}

    def record(self, deliveries: Sequence[Delivery]) -> list[bool]:
        """Insert the reports in one transaction (a savepoint inside the caller's);
        return for each whether it was new. A report the table holds already, or that
        came earlier in ``deliveries`` (same key, kind and provider event id), is not."""
        if not deliveries:
            return []
        with self._store.transaction() as conn:
            (last,) = conn.execute("SELECT coalesce(max(id), 0) FROM deliveries").fetchone()
            conn.executemany(
                "INSERT INTO deliveries (outbox_key, kind, at, received_at, journey_id,"
                " user_id, channel, provider_event_id, detail)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (outbox_key, kind, provider_event_id) DO NOTHING",
                [
                    (
                        d.outbox_key,
                        d.kind,
                        d.at_ms,
                        d.received_ms,
                        d.journey_id,
                        d.user_id,
                        d.channel,
                        d.provider_event_id,
                        dumps(dict(d.detail)),
                    )
                    for d in deliveries
                ],
            )
            # AUTOINCREMENT: the new rows, and only they, lie past the old maximum.
            new = set(
                conn.execute(
                    "SELECT outbox_key, kind, provider_event_id FROM deliveries WHERE id > ?",
                    (last,),
                )
            )
        return which_new(deliveries, new)

    def counts(self) -> dict[tuple[str, str], int]:
        """Reports per ``(kind, channel)`` (channel ``none`` for a send without one)."""
        rows = self._store.conn.execute(
            "SELECT kind, coalesce(channel, 'none'), count(*) FROM deliveries"
            " GROUP BY 1, 2 ORDER BY 1, 2"
        )
        return {(kind, channel): int(n) for kind, channel, n in rows}
