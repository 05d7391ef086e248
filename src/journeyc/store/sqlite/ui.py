"""The dashboard's reads (``/ui``): journeys over a time range, one journey's live
counts per step, a user's profile, identities, segments, journeys, timeline and inbox.

Every read opens its own read-only connection (``mode=ro``): the dashboard serves a
daemon's store beside its writers (WAL lets both run at once) and a simulation's file
that it must never change (``journeyc ui --db sim.db``). Times are epoch milliseconds.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from urllib.parse import quote

from journeyc.fastjson import loads
from journeyc.store.dashboard_rows import (
    check_version,
    latest_deployed,
    totals_by_journey,
    user_hits,
    user_record,
)
from journeyc.store.errors import StoreError
from journeyc.store.rows import Deployed, Entry, InboxRow, JourneyTotals, UserHit, UserRecord
from journeyc.store.sqlite.action_counts import HOUR_MS
from journeyc.store.sqlite.admin import SqliteAdminReads, canonical_user
from journeyc.store.sqlite.schema import SCHEMA_VERSION, user_version
from journeyc.store.sqlite.store import Store

LIVE = "status IN ('active', 'waiting')"


def _uri(path: str) -> str:
    return "file:" + quote(str(Path(path).resolve())) + "?mode=ro"


class DashboardReads:
    """The dashboard's queries over the store file at ``path``, read-only
    (:class:`journeyc.store.abc.DashboardReads`).

    Built from a :class:`~journeyc.store.sqlite.Store` (``DashboardReads(store.path)``)
    or a path; each method reads one snapshot (a transaction of its own).
    """

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)

    def check(self) -> None:
        """Raise :class:`StoreError` naming the file when it is not a journeyc store
        of this version (read-only, it cannot be migrated here)."""
        if not Path(self.path).is_file():
            raise StoreError(f"{self.path}: no such file")
        try:
            with self._reading() as conn:
                conn.execute("SELECT count(*) FROM journeys").fetchone()
                found = user_version(conn)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: not a journeyc store ({exc})") from None
        check_version(self.path, found, SCHEMA_VERSION, f"with `journeyc status --db {self.path}`")

    @contextmanager
    def store(self) -> Iterator[Store]:
        """The file as a read-only :class:`Store`, for reads that take one (journey
        reports, why-traces): a write through it fails, and it makes no lock file."""
        uri = _uri(self.path)
        conn = sqlite3.connect(
            uri, uri=True, timeout=5, isolation_level=None, check_same_thread=False
        )
        try:
            yield Store(conn, uri)
        finally:
            conn.close()

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        with closing(
            sqlite3.connect(_uri(self.path), uri=True, timeout=5, isolation_level=None)
        ) as conn:
            conn.execute("BEGIN")
            yield conn

    # ------------------------------------------------------------ journeys

    def deployed(self) -> list[Deployed]:
        """Per journey id, the active version (else the latest deployed), by id."""
        with self._reading() as conn:
            rows = conn.execute(
                "SELECT id, version, deployed_at, active, ir FROM journeys"
                " ORDER BY id, active, deployed_at"
            ).fetchall()
        return latest_deployed(rows)

    def latest_activity(self) -> int | None:
        """The time of the engine's latest action (None for a store without any): the
        end of the default range, so that a simulation's store shows its own weeks.
        The log's last row, not a scan (actions are logged in time order)."""
        with self._reading() as conn:
            row = conn.execute("SELECT at FROM actions ORDER BY seq DESC LIMIT 1").fetchone()
        return None if row is None else int(row[0])

    def journey_totals(self, since_ms: int, until_ms: int) -> dict[str, JourneyTotals]:
        """Per journey, over ``[since_ms, until_ms)`` (whole hours: the sums of
        ``action_counts``, not the action log): entries by UTC day (epoch day number),
        goals reached, messages queued and sends suppressed."""
        with self._reading() as conn:
            # Grouped in the table's key order (journey, hour): no sort; days in Python.
            rows = conn.execute(
                "SELECT journey_id, hour, sum(CASE action WHEN 'enter' THEN n ELSE 0 END),"
                " sum(CASE action WHEN 'goal' THEN n ELSE 0 END),"
                " sum(CASE action WHEN 'send' THEN n ELSE 0 END),"
                " sum(CASE action WHEN 'suppress' THEN n ELSE 0 END)"
                " FROM action_counts WHERE hour >= ? AND hour < ? GROUP BY 1, 2",
                (since_ms // HOUR_MS, -(-until_ms // HOUR_MS)),
            )
            return totals_by_journey(rows)

    # ------------------------------------------------------------ users

    def find_users(self, query: str, limit: int = 20) -> list[UserHit]:
        """Users whose id is ``query`` or starts with it, or whose profile's e-mail
        is ``query`` (in any case); an alias finds its user."""
        with self._reading() as conn:
            rows = conn.execute(
                "SELECT user_id, traits ->> '$.email' FROM profiles"
                " WHERE user_id >= ? AND user_id < ? ORDER BY user_id LIMIT ?",
                (query, query + "\U0010ffff", limit),
            ).fetchall()
            # lower(...) as written in the profiles_email index (schema v7).
            rows += conn.execute(
                "SELECT user_id, traits ->> '$.email' FROM profiles"
                " WHERE lower(traits ->> '$.email') = ? LIMIT ?",
                (query.lower(), limit),
            ).fetchall()
            canonical = canonical_user(conn, query)
            if canonical != query:
                rows += conn.execute(
                    "SELECT user_id, traits ->> '$.email' FROM profiles WHERE user_id = ?",
                    (canonical,),
                ).fetchall()
        return user_hits(rows, limit)

    def user(self, user_id: str, actions: int = 100, inbox: int = 20) -> UserRecord | None:
        """The user ``user_id`` names (an alias reads the user it was merged into),
        with the latest ``actions`` and ``inbox`` messages; None for a stranger."""
        with self._reading() as conn:
            return user_record(_UserReads(conn), user_id, actions, inbox)


class _UserReads(SqliteAdminReads):
    """The user page's reads of one snapshot (:class:`~journeyc.store.dashboard_rows.UserReads`)."""

    def aliases(self, user_id: str) -> list[str]:
        """The ids merged into the user, in the order they were linked."""
        rows = self._conn.execute(
            "SELECT alias FROM identities WHERE user_id = ? ORDER BY linked_at, alias",
            (user_id,),
        )
        return [str(a) for (a,) in rows]

    def entries(self, user_id: str) -> list[Entry]:
        """The user's entries into journeys, newest first."""
        rows = self._conn.execute(
            "SELECT journey_id, entry_no, entered_at, goal_at, arm, holdout FROM entries"
            " WHERE user_id = ? ORDER BY entered_at DESC, journey_id",
            (user_id,),
        )
        return [Entry(jid, no, at, goal, arm, bool(held)) for jid, no, at, goal, arm, held in rows]

    def inapp_messages(self, user_id: str, limit: int) -> list[InboxRow]:
        """The user's last in-app messages, sent or queued, newest first."""
        rows = self._conn.execute(
            "SELECT journey_id, step, message, content, sent_at FROM outbox"
            " WHERE user_id = ? AND channel = 'inapp' AND status IN ('sent', 'queued')"
            " ORDER BY created_at DESC, id DESC LIMIT ?",
            (user_id, limit),
        )
        return [InboxRow(j, s, m, loads(c), t) for j, s, m, c, t in rows]
