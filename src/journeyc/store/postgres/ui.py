"""The dashboard's reads (``/ui``) of a PostgreSQL store: reads by URL that never open
the store (no migration, no pool kept).

As the SQLite dashboard's (:mod:`journeyc.store.sqlite.ui`), each read connects on
its own and reads one snapshot, a ``REPEATABLE READ READ ONLY`` transaction
(:func:`~journeyc.store.postgres.snapshots.connected`, as the metrics scrape): the
dashboard serves a daemon's store beside its writers, waits for none of them, and
changes nothing. Times are epoch milliseconds; text is ordered by code point.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import psycopg_pool

from journeyc.store.dashboard_rows import (
    check_version,
    latest_deployed,
    totals_by_journey,
    user_hits,
    user_record,
)
from journeyc.store.errors import StoreError
from journeyc.store.postgres.action_counts import HOUR_MS
from journeyc.store.postgres.admin import PostgresAdminReads
from journeyc.store.postgres.schema import SCHEMA_VERSION, Connection, schema_version
from journeyc.store.postgres.snapshots import connected
from journeyc.store.postgres.store import CONNECT_TIMEOUT_S, PostgresStore, shown_url
from journeyc.store.rows import Deployed, Entry, InboxRow, JourneyTotals, UserHit, UserRecord
from journeyc.store.sqlite.store import LOCK_TIMEOUT_S

if TYPE_CHECKING:
    from journeyc.store.abc import Store

__all__ = ["PostgresDashboardReads"]


class PostgresDashboardReads:
    """The dashboard's queries over the PostgreSQL store at ``url``, read-only
    (:class:`journeyc.store.abc.DashboardReads`); each method reads one snapshot on a
    connection of its own."""

    def __init__(self, url: str) -> None:
        self._url = url
        self.path = shown_url(url)

    def check(self) -> None:
        """Raise :class:`StoreError` naming the store (its URL without the password)
        when it cannot be reached or is not a journeyc store of this version
        (read-only, it cannot be migrated here)."""
        with connected(self._url) as conn:
            found = schema_version(conn)
            tables = conn.execute("SELECT to_regclass('journeys') IS NOT NULL").fetchone()
        if found == 0 or not (tables and tables[0]):
            raise StoreError(f"{self.path}: not a journeyc store (no journeyc tables)")
        upgrade = "by opening it with journeyc (a daemon, or any command that writes to it)"
        check_version(self.path, found, SCHEMA_VERSION, upgrade)

    @contextmanager
    def store(self) -> Iterator[Store]:
        """The database as a read-only :class:`PostgresStore` (every transaction of
        its connections is read-only: a write through it fails), for reads that take
        a store (journey reports, why-traces); not migrated, closed after the block."""
        pool = psycopg_pool.ConnectionPool(
            self._url,
            min_size=1,
            max_size=2,
            kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT_S},
            configure=_read_only,
            open=False,
            name="journeyc-ui",
        )
        try:
            pool.open(wait=True, timeout=CONNECT_TIMEOUT_S)
        except psycopg_pool.PoolTimeout:
            pool.close()
            raise StoreError(f"{self.path}: cannot read the PostgreSQL store") from None
        try:
            yield PostgresStore(pool, self._url, LOCK_TIMEOUT_S)
        finally:
            pool.close()

    # ------------------------------------------------------------ journeys

    def deployed(self) -> list[Deployed]:
        """Per journey id, the active version (else the latest deployed), by id."""
        with connected(self._url) as conn:
            rows = conn.execute(
                "SELECT id, version, deployed_at, active, ir FROM journeys"
                " ORDER BY id, active, deployed_at"
            ).fetchall()
        return latest_deployed(rows)

    def latest_activity(self) -> int | None:
        """The time of the engine's latest action (None for a store without any): the
        log's last row."""
        with connected(self._url) as conn:
            row = conn.execute("SELECT at FROM actions ORDER BY seq DESC LIMIT 1").fetchone()
        return None if row is None else int(row[0])

    def journey_totals(self, since_ms: int, until_ms: int) -> dict[str, JourneyTotals]:
        """Per journey, over ``[since_ms, until_ms)`` (whole hours: the sums of
        ``action_counts``): entries by UTC day (epoch day number), goals reached,
        messages queued and sends suppressed."""
        with connected(self._url) as conn:
            rows = conn.execute(
                "SELECT journey_id, hour,"
                " coalesce(sum(n) FILTER (WHERE action = 'enter'), 0)::bigint,"
                " coalesce(sum(n) FILTER (WHERE action = 'goal'), 0)::bigint,"
                " coalesce(sum(n) FILTER (WHERE action = 'send'), 0)::bigint,"
                " coalesce(sum(n) FILTER (WHERE action = 'suppress'), 0)::bigint"
                " FROM action_counts WHERE hour >= %s AND hour < %s GROUP BY 1, 2",
                (since_ms // HOUR_MS, -(-until_ms // HOUR_MS)),
            ).fetchall()
        return totals_by_journey(rows)

    # ------------------------------------------------------------ users

    def find_users(self, query: str, limit: int = 20) -> list[UserHit]:
        """Users whose id is ``query`` or starts with it, or whose profile's e-mail
        is ``query`` (in any case); an alias finds its user."""
        email = "CASE WHEN jsonb_typeof(traits -> 'email') = 'string' THEN traits ->> 'email' END"
        with connected(self._url) as conn:
            rows = conn.execute(
                f'SELECT user_id, {email} FROM profiles WHERE user_id COLLATE "C" >= %s'
                ' AND user_id COLLATE "C" < %s ORDER BY user_id COLLATE "C" LIMIT %s',
                (query, query + "\U0010ffff", limit),
            ).fetchall()
            # lower(...) as written in the profiles_email index.
            rows += conn.execute(
                f"SELECT user_id, {email} FROM profiles"
                " WHERE lower(traits ->> 'email') = %s LIMIT %s",
                (query.lower(), limit),
            ).fetchall()
            canonical = PostgresAdminReads(conn).canonical_user(query)
            if canonical != query:
                rows += conn.execute(
                    f"SELECT user_id, {email} FROM profiles WHERE user_id = %s", (canonical,)
                ).fetchall()
        return user_hits(rows, limit)

    def user(self, user_id: str, actions: int = 100, inbox: int = 20) -> UserRecord | None:
        """The user ``user_id`` names (an alias reads the user it was merged into),
        with the latest ``actions`` and ``inbox`` messages; None for a stranger."""
        with connected(self._url) as conn:
            return user_record(_UserReads(conn), user_id, actions, inbox)


class _UserReads(PostgresAdminReads):
    """The user page's reads of one snapshot (:class:`~journeyc.store.dashboard_rows.UserReads`)."""

    def aliases(self, user_id: str) -> list[str]:
        """The ids merged into the user, in the order they were linked."""
        rows = self._all(
            'SELECT alias FROM identities WHERE user_id = %s ORDER BY linked_at, alias COLLATE "C"',
            (user_id,),
        )
        return [str(a) for (a,) in rows]

    def entries(self, user_id: str) -> list[Entry]:
        """The user's entries into journeys, newest first."""
        rows = self._all(
            "SELECT journey_id, entry_no, entered_at, goal_at, arm, holdout FROM entries"
            ' WHERE user_id = %s ORDER BY entered_at DESC, journey_id COLLATE "C"',
            (user_id,),
        )
        return [
            Entry(jid, int(no), int(at), goal, arm, bool(held))
            for jid, no, at, goal, arm, held in rows
        ]

    def inapp_messages(self, user_id: str, limit: int) -> list[InboxRow]:
        """The user's last in-app messages, sent or queued, newest first."""
        rows = self._all(
            "SELECT journey_id, step, message, content, sent_at FROM outbox"
            " WHERE user_id = %s AND channel = 'inapp' AND status IN ('sent', 'queued')"
            " ORDER BY created_at DESC, id DESC LIMIT %s",
            (user_id, limit),
        )
        return [InboxRow(j, s, m, c, t) for j, s, m, c, t in rows]


def _read_only(conn: Connection) -> None:
    """Make every transaction of a new pooled connection read-only."""
    conn.execute("SET default_transaction_read_only = on")
