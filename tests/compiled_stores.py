"""The event log and profiles of the SQL compiled from the IR, on PostgreSQL: the
aggregate and set-based tests (tests/test_aggregates.py, tests/test_bulk.py,
tests/test_sql_dialect.py) load their rows into a database of the session's server
(one per module, :func:`rows_on`) as they load them into SQLite, and read what
the database made of them (``jsonb`` writes ``1e+16`` as ``10000000000000000``, and
``json.loads`` reads that back as an int: the Python reference must start from the
same values as the SQL)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from journeyc.engine.aggregates import LoggedEvent, from_ms, to_ms
from journeyc.store.abc import EventHistory
from journeyc.store.postgres import PostgresStore
from journeyc.store.postgres.aggregates import PostgresAggregates
from journeyc.store.postgres.population import PostgresPopulation
from tests.postgres_server import PostgresServer, unavailable

Row = tuple[int, str, str, int, dict[str, Any]]  # seq, user, name, at, props


@contextlib.contextmanager
def rows_on(server: PostgresServer | str) -> Iterator[PostgresRows]:
    """A fresh database on the session's server (``postgres_server``: a module's tests
    share it, each load replacing the rows), dropped afterwards."""
    if isinstance(server, str):
        unavailable(server)
    with server.database() as url:
        rows = PostgresRows(url)
        try:
            yield rows
        finally:
            rows.close()


class PostgresRows:
    """The rows of the database ``url``, and the store over it (close after use)."""

    def __init__(self, url: str) -> None:
        self.conn = psycopg.connect(url, autocommit=True)
        self.store = PostgresStore.open(url)

    def close(self) -> None:
        """Close the connection and the store."""
        self.conn.close()
        self.store.close()

    def load(self, events: Sequence[Row], profiles: Mapping[str, dict[str, Any]] = {}) -> None:
        """Replace the events and profiles; every user the log names gets a profile
        (as the store keeps it)."""
        with self.conn.cursor() as cur:
            cur.execute("TRUNCATE events, profiles")
            cur.executemany(
                "INSERT INTO events (seq, message_id, user_id, name, at, props, received_at)"
                " OVERRIDING SYSTEM VALUE VALUES (%s, %s, %s, %s, %s, %s, 0)",
                [(seq, f"m{seq}", u, n, at, Jsonb(p)) for seq, u, n, at, p in events],
            )
            cur.executemany(
                "INSERT INTO profiles (user_id, traits, updated_at) VALUES (%s, %s, 0)",
                [(u, Jsonb(t)) for u, t in profiles.items()],
            )
            cur.execute(
                "INSERT INTO profiles (user_id, traits, updated_at)"
                " SELECT DISTINCT user_id, CAST('{}' AS jsonb), 0 FROM events"
                " ON CONFLICT DO NOTHING"
            )

    def load_events(self, events: Sequence[LoggedEvent]) -> list[LoggedEvent]:
        """Replace the events with ``events``; the events as the database holds them."""
        self.load([(e.seq, e.user_id, e.name, to_ms(e.at), dict(e.props)) for e in events])
        return self.logged()

    def logged(self) -> list[LoggedEvent]:
        """The events as the database holds them, in ``seq`` order."""
        rows = self.conn.execute(
            "SELECT seq, user_id, name, at, props FROM events ORDER BY seq"
        ).fetchall()
        return [LoggedEvent(s, u, n, from_ms(at), p) for s, u, n, at, p in rows]

    def profile(self, uid: str) -> dict[str, Any]:
        """The user's traits ({} without a profile)."""
        row = self.conn.execute("SELECT traits FROM profiles WHERE user_id = %s", (uid,)).fetchone()
        return {} if row is None else dict(row[0])

    def aggregates(self) -> PostgresAggregates:
        """The store's per-user aggregates."""
        return self.store.aggregates()

    def history(self) -> EventHistory:
        """The store's reads of the log by user."""
        return self.store.event_history()

    def population(self) -> PostgresPopulation:
        """The store's set-based reads."""
        return self.store.population()

    def everyone(self) -> list[str]:
        """Every user of the profiles and the log, sorted."""
        rows = self.conn.execute("SELECT user_id FROM profiles UNION SELECT user_id FROM events")
        return sorted(r[0] for r in rows)
