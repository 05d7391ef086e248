"""Word of appends to a PostgreSQL store's event log, for engine workers waiting for
events (:class:`journeyc.store.abc.EventWakeups`).

:meth:`PostgresStore.append_events <journeyc.store.postgres.store.PostgresStore.append_events>`
issues ``NOTIFY journeyc_events`` in its transaction when it logged something new;
PostgreSQL delivers it when that transaction commits (never for one rolled back), to
every session that ``LISTEN``\\ s on the channel, on any machine. A waiter listens on
a connection of its own (autocommit: a notification reaches a session between its
transactions), from its creation on, so an append committed between a worker's read
and its next wait is not missed: that wait returns at once.
"""

from __future__ import annotations

from collections.abc import Callable

import psycopg

from journeyc.store.errors import StoreError
from journeyc.store.postgres.errors import converted
from journeyc.store.postgres.schema import Connection

__all__ = ["EVENTS_CHANNEL", "PostgresEventWakeups"]

EVENTS_CHANNEL = "journeyc_events"
"""The channel appends to the log are notified on (no payload: a wake, not data)."""


class PostgresEventWakeups:
    """A listener on :data:`EVENTS_CHANNEL` over a connection of its own, opened with
    ``connect`` (an autocommit connection to the store's database)."""

    def __init__(self, connect: Callable[[], Connection]) -> None:
        self._connect = connect
        self._conn: Connection | None = None
        self._closed = False
        self._listen()

    def _listen(self) -> Connection:
        """A new connection listening on the channel (the store's error if none)."""
        try:
            conn = self._connect()
            conn.execute(f"LISTEN {EVENTS_CHANNEL}")
        except psycopg.Error as exc:
            raise converted(exc) from exc
        self._conn = conn
        return conn

    def wait(self, timeout_s: float) -> bool:
        """Whether events were appended since the last wait, waiting up to ``timeout_s``
        for the first; those already arrived with it are taken too (one wake). A lost
        connection is a wake; the next wait listens again on a new one (raising the
        store's :class:`~journeyc.store.errors.OperationalError` if it cannot)."""
        if self._closed:
            raise StoreError("the event wakeups are closed")
        conn = self._conn if self._conn is not None and not self._conn.closed else None
        if conn is None:
            conn = self._listen()
        try:
            # list(): run each generator to its end, so it gives back the connection's lock.
            woke = bool(list(conn.notifies(timeout=max(0.0, timeout_s), stop_after=1)))
            if woke:
                list(conn.notifies(timeout=0))  # the others waiting: one wake for all
        except psycopg.Error:
            # The server went away (a restart, a failover): what was appended meanwhile
            # is unknown, so the caller reads the log again.
            self._drop()
            return True
        return woke

    def close(self) -> None:
        """Stop listening and close the connection (after the last wait; a wait
        afterwards raises :class:`~journeyc.store.errors.StoreError`)."""
        self._closed = True
        self._drop()

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
