"""The PostgreSQL store: the event log, profiles, identities, cursors and settings in
one PostgreSQL database, for several processes (and machines) writing at once.

One :class:`PostgresStore` holds a :class:`psycopg_pool.ConnectionPool` of autocommit
connections. :meth:`PostgresStore.transaction` checks one out for the calling thread
and opens a transaction on it; every store call that thread makes inside the block
runs on that connection, and blocks nest as savepoints. Outside a block, a read
borrows a connection for one statement.

There is no store-wide write lock (SQLite's): writers meet where they write the same
rows. A profile merge locks the user's profile row (``SELECT ... FOR UPDATE``) before
it reads it, so two merges of one user queue and neither loses the other's traits,
while merges of different users run side by side. Appends to the event log are the
one exception: they queue on one advisory lock for the log's tail, held until commit,
so seqs are handed out in commit order and a reader that has read up to seq ``n`` never
misses an event committed later with a smaller seq. Every lock wait is bounded by
``lock_timeout_s`` (PostgreSQL's ``lock_timeout``, set on each of the store's
connections); past it the block raises :class:`StoreBusyError` with nothing written,
as SQLite's does.

Every module of this package passes list parameters in binary (``%b``, read as
``unnest(%b::text[])`` or ``= ANY(%b)``): psycopg escapes each element of a list sent
as text, JSON text above all, which cost an engine batch more than its statements.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from types import TracebackType
from typing import Any

import psycopg
import psycopg_pool
from psycopg import errors, sql

from journeyc.events import ALIAS, IDENTIFY, PREVIOUS_ID, Event, first_of_each_id
from journeyc.fastjson import dumps
from journeyc.store.errors import SchemaVersionError, StoreBusyError, StoreError
from journeyc.store.identities import IdentityMap, alias_ids, has_alias, link_events
from journeyc.store.postgres.admin import PostgresAdminReads
from journeyc.store.postgres.aggregates import PostgresAggregates
from journeyc.store.postgres.catalog import PostgresCatalog
from journeyc.store.postgres.cluster_lock import PostgresClusterLocks
from journeyc.store.postgres.deliveries import PostgresDeliveries
from journeyc.store.postgres.deployments import PostgresDeploymentReads
from journeyc.store.postgres.dump import PostgresTableDump, PostgresTableLoad
from journeyc.store.postgres.errors import converted
from journeyc.store.postgres.history import PostgresEventHistory
from journeyc.store.postgres.leases import PostgresLeases
from journeyc.store.postgres.membership import PostgresMembership
from journeyc.store.postgres.outbox import PostgresOutbox
from journeyc.store.postgres.partition_log import PostgresPartitionLog
from journeyc.store.postgres.population import PostgresPopulation
from journeyc.store.postgres.recommendations import PostgresRecommendations
from journeyc.store.postgres.replays import PostgresReplayReads
from journeyc.store.postgres.reports import PostgresReportReads
from journeyc.store.postgres.runtime import PostgresRuntime
from journeyc.store.postgres.schedules import PostgresScheduleRows
from journeyc.store.postgres.schema import Connection, migrate, schema_version
from journeyc.store.postgres.segments import PostgresSegmentBook
from journeyc.store.postgres.upkeep import PostgresUpkeep
from journeyc.store.postgres.wakeups import EVENTS_CHANNEL, PostgresEventWakeups
from journeyc.store.rows import Cohort, StoredEvent
from journeyc.store.sqlite.products import LEARN, PRODUCT_EVENTS, product_rows
from journeyc.store.sqlite.schema import TABLES  # the same tables (tests/test_postgres_schema.py)
from journeyc.store.sqlite.store import LOCK_TIMEOUT_S
from journeyc.store.targets import hidden, shown_url
from journeyc.store.traits import merge_into

__all__ = ["CONNECT_TIMEOUT_S", "POOL_SIZE", "PostgresStore", "shown_url"]

CONNECT_TIMEOUT_S = 10
"""How long opening the store waits for the server to answer."""

POOL_SIZE = 8
"""The most connections one store holds (one per thread inside a transaction)."""

EVENT_LOG_LOCK = 0x6A6F75726E657902
"""The advisory lock appends to the event log queue on (see the module's docstring)."""

_BUSY = (errors.LockNotAvailable, errors.DeadlockDetected, errors.SerializationFailure)
"""What PostgreSQL raises when a writer could not have its locks: the store is busy."""

_LEARN = LEARN.replace("?", "%s")  # the SQLite store's statement, psycopg's placeholders


class PostgresStore:
    """The journeyc store over one PostgreSQL database. Make one with :meth:`open`.

    Safe to share between threads: each thread's transaction has a connection of its
    own. ``lock_timeout_s`` bounds every lock wait of a writer (see :meth:`transaction`).
    """

    def __init__(self, pool: psycopg_pool.ConnectionPool, url: str, lock_timeout_s: float) -> None:
        self._pool = pool
        self.path = shown_url(url)
        self.lock_timeout_s = lock_timeout_s
        self._local = threading.local()
        # The lock_timeout each pooled connection has (lock_timeout_s may change).
        self._timeouts: weakref.WeakKeyDictionary[Connection, str] = weakref.WeakKeyDictionary()
        self._identities = False  # some id was merged into another (see _has_identities)
        self._url = url  # for the connections of its own a listener or a cluster lock holds
        self._locks = PostgresClusterLocks(self._dedicated)

    @classmethod
    def open(
        cls, url: str, *, lock_timeout_s: float = LOCK_TIMEOUT_S, pool_size: int = POOL_SIZE
    ) -> PostgresStore:
        """Open the store in the database ``url`` names (a ``postgresql://`` URL),
        creating and migrating its tables as needed.

        Raises :class:`StoreError` naming the URL (without its password) when the URL
        is not one, the server cannot be reached, or the database holds other tables;
        :class:`SchemaVersionError` when a newer journeyc wrote it.
        """
        shown = shown_url(url)
        try:
            with psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S) as conn:
                migrate(conn)
        except SchemaVersionError as exc:
            raise SchemaVersionError(exc.found, exc.known, shown) from None
        except StoreError as exc:
            raise StoreError(f"{shown}: {exc}") from None
        except psycopg.Error as exc:
            raise StoreError(
                f"{shown}: cannot open the PostgreSQL store: {hidden(str(exc), url)}"
            ) from None
        pool = psycopg_pool.ConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT_S},
            open=False,
            name="journeyc",
        )
        pool.open()
        return cls(pool, url, lock_timeout_s)

    @property
    def schema_version(self) -> int:
        """The schema version of the open database."""
        with self.connection() as conn:
            return schema_version(conn)

    def close(self) -> None:
        """Close every connection (releasing the cluster locks held); the store cannot be
        used afterwards."""
        self._locks.close()
        self._pool.close()

    def __enter__(self) -> PostgresStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ------------------------------------------------------------ transactions

    @contextmanager
    def _driver_errors(self) -> Iterator[None]:
        """The driver's errors raised in the block as the store's: a lock or deadlock
        past the lock timeout is :class:`StoreBusyError`, bad data what
        :meth:`_refused` says, any other a journeyc ``DatabaseError``."""
        try:
            yield
        except _BUSY as exc:
            raise StoreBusyError(self.path, self.lock_timeout_s) from exc
        except psycopg.DataError as exc:
            raise self._refused(exc) from exc
        except psycopg.Error as exc:
            raise converted(exc) from exc

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Run the block atomically: all its writes commit, or none if it raises.

        Nested blocks (in the same thread) become savepoints: an inner block that
        raises undoes only its own writes. The outermost block checks a connection out
        of the pool for this thread; every store call the thread makes inside runs on
        it. A lock the block waits for longer than ``lock_timeout_s`` (a row another
        writer holds, the log's tail), or a pool with no free connection for that
        long, raises :class:`StoreBusyError`, and the block's writes are undone; a
        value PostgreSQL cannot hold (text with a NUL character) :class:`StoreError`.
        """
        local = self._local
        conn: Connection | None = getattr(local, "conn", None)
        if conn is not None:
            with self._driver_errors(), conn.transaction():
                yield
            return
        try:
            conn = self._pool.getconn(timeout=self.lock_timeout_s)
        except psycopg_pool.PoolTimeout as exc:
            raise StoreBusyError(self.path, self.lock_timeout_s) from exc
        except psycopg.Error as exc:  # a closed pool
            raise converted(exc) from exc
        local.conn = conn
        try:
            with self._driver_errors():
                timeout = f"{max(1, round(self.lock_timeout_s * 1000))}ms"
                if self._timeouts.get(conn) != timeout:
                    # Per connection, once (a round trip per transaction cost 10% of a
                    # merge): the pool's connections serve this store only.
                    conn.execute("SELECT set_config('lock_timeout', %s, false)", (timeout,))
                    self._timeouts[conn] = timeout
                with conn.transaction():
                    yield
        finally:
            local.conn = None
            self._pool.putconn(conn)

    def _refused(self, exc: psycopg.DataError) -> StoreError:
        """A value PostgreSQL cannot hold (text with a NUL character, a number out of
        range), as the error the store's callers handle; nothing was written."""
        # Text goes to the server in binary: a NUL is refused there, as an encoding
        # error whose message names the byte, not the character.
        nul = "0x00" in str(exc) or "NUL" in str(exc)
        message = "text with a NUL character" if nul else " ".join(str(exc).split())
        return StoreError(f"{self.path}: PostgreSQL refused a value: {message}")

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        """This thread's connection inside a transaction, else one from the pool (for
        the modules of this package; none leaves the store)."""
        conn: Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            yield conn  # transaction() converts the errors (a lock: StoreBusyError)
            return
        try:
            with self._pool.connection() as conn:
                yield conn
        except psycopg.Error as exc:  # the pool's timeout too: an OperationalError
            raise converted(exc) from exc

    @contextmanager
    def writing(self) -> Iterator[Connection]:
        """This thread's connection, inside the caller's transaction (no savepoint: an
        error aborts that transaction, so none of its writes can commit) or in a
        transaction of its own (for the modules of this package)."""
        conn: Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            yield conn
            return
        with self.transaction():
            yield self._local.conn

    def _write(self) -> Connection:
        """This thread's connection; only inside :meth:`transaction`."""
        conn: Connection | None = getattr(self._local, "conn", None)
        if conn is None:  # pragma: no cover - a bug in this module
            raise RuntimeError("a write outside transaction()")
        return conn

    # ------------------------------------------------------------ parts

    def leases(self) -> PostgresLeases:
        """The engine workers' partition leases."""
        return PostgresLeases(self)

    # Several engine workers: the log by partition, wakeups, the cluster lock.

    def partition_log(self) -> PostgresPartitionLog:
        """The event log read by partition, with the workers' fence
        (:class:`~journeyc.store.abc.PartitionLog`)."""
        return PostgresPartitionLog(self)

    def event_wakeups(self) -> PostgresEventWakeups:
        """A new listener for appends to the log, on a connection of its own
        (:class:`~journeyc.store.abc.EventWakeups`); close it after use."""
        return PostgresEventWakeups(self._dedicated)

    def membership(self) -> PostgresMembership:
        """The live workers (:class:`~journeyc.store.abc.Membership`)."""
        return PostgresMembership(self)

    def cluster_lock(self, name: str, wait_s: float = 0.0) -> AbstractContextManager[bool]:
        """A block holding the store-wide lock ``name`` if free, or once free within
        ``wait_s`` (a session advisory lock on a connection of its own, see
        :mod:`~journeyc.store.postgres.cluster_lock`); yields whether it was taken."""
        return self._locks.hold(name, wait_s)

    def _dedicated(self) -> Connection:
        """A new autocommit connection outside the pool, for a session of its own."""
        if self._pool.closed:
            raise StoreError(f"{self.path}: the store is closed")
        return psycopg.connect(self._url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)

    def outbox(self) -> PostgresOutbox:
        """The outbox, for a dispatcher: its writes join this thread's transaction
        (see :class:`journeyc.store.abc.Outbox`)."""
        return PostgresOutbox(self)

    @contextmanager
    def reading(self) -> Iterator[PostgresAdminReads]:
        """Reads of one snapshot of the committed store (a ``REPEATABLE READ READ
        ONLY`` transaction on a pooled connection of their own; see
        :class:`journeyc.store.abc.AdminReads`)."""
        try:
            with self._pool.connection() as conn:
                conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                try:
                    yield PostgresAdminReads(conn)
                finally:
                    conn.execute("ROLLBACK")
        except psycopg.Error as exc:  # the store's error, not the driver's
            raise converted(exc) from exc

    def upkeep(self) -> PostgresUpkeep:
        """The daemon's housekeeping of this store (see :class:`journeyc.store.abc.Upkeep`)."""
        return PostgresUpkeep(self)

    def event_history(self) -> PostgresEventHistory:
        """The engine's reads of the log by user (:class:`~journeyc.store.abc.EventHistory`)."""
        return PostgresEventHistory(self)

    def schedule_rows(self) -> PostgresScheduleRows:
        """The schedules' rows (:class:`~journeyc.store.abc.ScheduleRows`)."""
        return PostgresScheduleRows(self)

    def segment_book(self) -> PostgresSegmentBook:
        """A new book of the segments' rows (:class:`~journeyc.store.abc.SegmentBook`)."""
        return PostgresSegmentBook(self)

    def runtime(self) -> PostgresRuntime:
        """A new unit of work over the engine's rows, in this thread's transaction
        (:class:`~journeyc.store.abc.UnitOfWork`; one per engine)."""
        return PostgresRuntime(self)

    def deployments(self) -> PostgresDeploymentReads:
        """What the store has deployed and holds in flight (``journeyc plan``)."""
        return PostgresDeploymentReads(self)

    @contextmanager
    def table_dump(self) -> Iterator[PostgresTableDump]:
        """A block reading one snapshot of the store's tables (:meth:`snapshot`;
        :class:`~journeyc.store.abc.TableDump`)."""
        with self.snapshot() as conn:
            yield PostgresTableDump(conn)

    def table_load(self) -> PostgresTableLoad:
        """The writes of a copy into this store (:class:`~journeyc.store.abc.TableLoad`);
        they join this thread's :meth:`transaction`."""
        return PostgresTableLoad(self, self.path)

    # The compiled reads (aggregates, set-based evaluation) and the catalog's.
    def aggregates(self) -> PostgresAggregates:
        """Aggregates compiled to SQL over the event log (``store.abc.AggregateReads``)."""
        return PostgresAggregates(self)

    def population(self) -> PostgresPopulation:
        """Set-based segment evaluation (``store.abc.PopulationReads``)."""
        return PostgresPopulation(self)

    def recommendations(self) -> PostgresRecommendations:
        """The recommendation filters' reads (``store.abc.RecommendationReads``)."""
        return PostgresRecommendations(self)

    def catalog(self) -> PostgresCatalog:
        """The catalog feed's writes (``store.abc.Catalog``)."""
        return PostgresCatalog(self)

    # ------------------------------------------------------------ reports, replays, deliveries

    @contextmanager
    def snapshot(self) -> Iterator[Connection]:
        """A block in which this thread's reads of the store (through any part of it)
        see one snapshot of the committed store: a ``REPEATABLE READ READ ONLY``
        transaction on a pooled connection, which never waits for a writer (a write
        in the block fails). Inside a transaction already: that one."""
        local = self._local
        conn: Connection | None = getattr(local, "conn", None)
        if conn is not None:
            yield conn
            return
        try:
            with self._pool.connection() as conn:
                conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                local.conn = conn
                try:
                    yield conn
                finally:
                    local.conn = None
                    conn.execute("ROLLBACK")
        except psycopg.Error as exc:  # the store's error, not the driver's
            raise converted(exc) from exc

    @contextmanager
    def report_reads(self) -> Iterator[PostgresReportReads]:
        """The reads of journey reports, all in one snapshot for the block
        (:class:`~journeyc.store.abc.ReportReads`)."""
        with self.snapshot() as conn:
            yield PostgresReportReads(conn)

    def replay_reads(self) -> PostgresReplayReads:
        """The reads of ``journeyc why``'s replay of one user
        (:class:`~journeyc.store.abc.ReplayReads`)."""
        return PostgresReplayReads(self)

    def deliveries(self) -> PostgresDeliveries:
        """The providers' delivery reports; writes join this thread's transaction
        (:class:`~journeyc.store.abc.Deliveries`)."""
        return PostgresDeliveries(self)

    # ------------------------------------------------------------ the engine's reads

    @property
    def in_transaction(self) -> bool:
        """Whether this thread has a transaction open (the engine's step joins it)."""
        return getattr(self._local, "conn", None) is not None

    def has_profile(self, user_id: str) -> bool:
        """Whether the store knows the user (every user it has seen has a profile row)."""
        with self.connection() as conn:
            return bool(
                conn.execute("SELECT 1 FROM profiles WHERE user_id = %s", (user_id,)).fetchall()
            )

    def entry_cohorts(self) -> list[Cohort]:
        """Entries and goals per journey and group, for A/B reports (as the SQLite
        store's)."""
        with self.connection() as conn:
            rows = conn.execute(
                "SELECT journey_id, CASE WHEN holdout THEN NULL ELSE arm END, holdout,"
                " count(*), count(goal_at) FROM entries GROUP BY 1, 2, 3"
                # SQLite's order: by code point, no arm (NULL) first.
                ' ORDER BY journey_id COLLATE "C", holdout,'
                ' CASE WHEN holdout THEN NULL ELSE arm END COLLATE "C" NULLS FIRST'
            ).fetchall()
        return [(jid, arm, bool(held), int(n), int(goals)) for jid, arm, held, n, goals in rows]

    def profile_zones(self) -> dict[str, str]:
        """Each user's profile ``timezone`` when it is a string, as given."""
        with self.connection() as conn:
            rows = conn.execute(
                "SELECT user_id, traits ->> 'timezone' FROM profiles"
                " WHERE jsonb_typeof(traits -> 'timezone') = 'string'"
            ).fetchall()
        return dict(rows)

    def in_use(self, *but_settings: str) -> tuple[bool, bool]:
        """Whether the store holds events, entries, profiles or deployed journeys, and
        whether it holds a setting other than ``but_settings``."""
        with self.connection() as conn:
            row = conn.execute(
                "SELECT EXISTS (SELECT 1 FROM events) OR EXISTS (SELECT 1 FROM entries)"
                " OR EXISTS (SELECT 1 FROM profiles) OR EXISTS (SELECT 1 FROM journeys),"
                " EXISTS (SELECT 1 FROM settings WHERE name <> ALL(%b))",
                (list(but_settings),),
            ).fetchone()
        assert row is not None
        return bool(row[0]), bool(row[1])

    # ------------------------------------------------------------ event log

    def append_events(
        self, events: Sequence[Event], *, merge_traits: bool = True, link: bool = True
    ) -> list[int | None]:
        """Append events in one transaction; return each one's ``seq``, None for a
        duplicate (or an alias event that merges nothing). As the SQLite store's
        :meth:`~journeyc.store.sqlite.store.Store.append_events`."""
        if not events:
            return []
        with self.writing() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (EVENT_LOG_LOCK,))
            given = events
            linked = self._link(events) if link else events
            if linked is not events:
                events = [e for e in linked if e is not None]
            # One statement, its rows in the given order: identity values are handed
            # out in that order, and a messageId met twice is inserted once (the
            # second meets the first's row: DO NOTHING).
            rows = conn.execute(
                "INSERT INTO events (message_id, user_id, name, at, props, received_at)"
                " SELECT m, u, n, a, p::jsonb, r FROM unnest("
                "%b::text[], %b::text[], %b::text[], %b::bigint[], %b::text[], %b::bigint[]"
                ") WITH ORDINALITY AS t (m, u, n, a, p, r, o) ORDER BY o"
                " ON CONFLICT (message_id) DO NOTHING RETURNING message_id, seq",
                (
                    [e.message_id for e in events],
                    [e.user_id for e in events],
                    [e.name for e in events],
                    [e.at_ms for e in events],
                    [dumps(e.props) for e in events],
                    [e.received_ms for e in events],
                ),
            ).fetchall()
            new: dict[str, int] = dict(rows)
            seqs = [new.pop(e.message_id, None) for e in events]
            changes = [
                (e.user_id, e.props, e.at_ms)
                for e, seq in zip(events, seqs, strict=True)
                if seq is not None and e.kind == "identify"
            ]
            self._logged([e for e, seq in zip(events, seqs, strict=True) if seq is not None])
            if changes and merge_traits:
                self._merge_traits(changes)
        if linked is not given:
            kept = iter(seqs)
            seqs = [None if e is None else next(kept) for e in linked]
        return seqs

    def _logged(self, events: Sequence[Event]) -> None:
        """A profile row for every user ``events`` (new to the log) name, and the
        products they teach the catalog, inside the caller's transaction."""
        conn = self._write()
        if events:  # word for waiting workers, delivered when the transaction commits
            conn.execute(f"NOTIFY {EVENTS_CHANNEL}")
        users = sorted({e.user_id for e in events})
        conn.execute(
            "INSERT INTO profiles (user_id, traits, updated_at)"
            " SELECT u, '{}', 0 FROM unnest(%b::text[]) AS u ORDER BY u"
            " ON CONFLICT (user_id) DO NOTHING",
            (users,),
        )
        learned = product_rows(e for e in events if e.name in PRODUCT_EVENTS)
        if learned:
            with conn.cursor() as cur:
                cur.executemany(_LEARN, learned)

    def link_events(self, events: Sequence[Event]) -> list[Event]:
        """``events`` as :meth:`append_events` would log them, recording the merges
        their alias events make (as the SQLite store's)."""
        with self.writing() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (EVENT_LOG_LOCK,))
            linked = self._link(events)
        if linked is events:
            return list(events)
        return [e for e in linked if e is not None]

    def _link(self, events: Sequence[Event]) -> Sequence[Event | None]:
        """``events`` named by their canonical users, recording the merges their alias
        events make (inside the caller's transaction, under the log's lock)."""
        merged = alias_ids(events) if has_alias(events) else set()
        if not merged and not self._has_identities():
            return events
        conn = self._write()
        ids = sorted({e.user_id for e in events} | merged)
        links = conn.execute(
            "SELECT alias, user_id FROM identities WHERE alias = ANY(%b)", (ids,)
        ).fetchall()
        linked, merges = link_events(events, IdentityMap.of(links))
        at = {e.props[PREVIOUS_ID]: e.at_ms for e in linked if e is not None and e.name == ALIAS}
        for frm, into in merges:
            conn.execute("UPDATE identities SET user_id = %s WHERE user_id = %s", (into, frm))
            conn.execute(
                "INSERT INTO identities (alias, user_id, linked_at) VALUES (%s, %s, %s)"
                " ON CONFLICT (alias) DO UPDATE SET user_id = excluded.user_id",
                (frm, into, at.get(frm, 0)),
            )
        self._identities = self._identities or bool(merges)
        return linked

    def _has_identities(self) -> bool:
        """Whether any id was merged into another (once true, it stays true)."""
        if not self._identities:
            with self.connection() as conn:
                row = conn.execute("SELECT EXISTS (SELECT 1 FROM identities)").fetchone()
            self._identities = bool(row and row[0])
        return self._identities

    def unlogged(self, events: Sequence[Event]) -> list[Event]:
        """``events`` without those the log holds already or that repeat a
        ``message_id`` given earlier in ``events``."""
        ids = list(dict.fromkeys(e.message_id for e in events))
        with self.connection() as conn:
            logged = {
                mid
                for (mid,) in conn.execute(
                    "SELECT message_id FROM events WHERE message_id = ANY(%b)", (ids,)
                )
            }
        return first_of_each_id(events, logged)

    def has_events_after(self, seq: int) -> bool:
        """Whether the log holds an event with a ``seq`` above ``seq``."""
        with self.connection() as conn:
            row = conn.execute(
                "SELECT EXISTS (SELECT 1 FROM events WHERE seq > %s)", (seq,)
            ).fetchone()
        return bool(row and row[0])

    def events_after(self, seq: int, limit: int = 1000) -> list[StoredEvent]:
        """Up to ``limit`` events with a ``seq`` above ``seq``, in log order."""
        with self.connection() as conn:
            rows = conn.execute(
                "SELECT seq, message_id, user_id, name, at, props, received_at FROM events"
                " WHERE seq > %s ORDER BY seq LIMIT %s",
                (seq, limit),
            ).fetchall()
        return [StoredEvent(*row) for row in rows]

    def event_names(self) -> set[str]:
        """The names of the track events the log holds (not ``identify`` or
        ``alias``): one probe of the ``(name, at)`` index per name."""
        with self.connection() as conn:
            rows = conn.execute(
                "WITH RECURSIVE n (name) AS (SELECT min(name) FROM events UNION ALL"
                " SELECT (SELECT min(name) FROM events WHERE name > n.name) FROM n"
                " WHERE n.name IS NOT NULL) SELECT name FROM n WHERE name IS NOT NULL"
            ).fetchall()
        return {name for (name,) in rows} - {IDENTIFY, ALIAS}

    # ------------------------------------------------------------ profiles

    def get_profile(self, user_id: str) -> dict[str, Any]:
        """The user's traits; an empty dict for a user never seen."""
        with self.connection() as conn:
            row = conn.execute(
                "SELECT traits FROM profiles WHERE user_id = %s", (user_id,)
            ).fetchone()
        return {} if row is None else dict(row[0])

    def get_profiles(self, user_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Each user's traits (as :meth:`get_profile`), read with one query."""
        with self.connection() as conn:
            found: dict[str, dict[str, Any]] = dict(
                conn.execute(
                    "SELECT user_id, traits FROM profiles WHERE user_id = ANY(%b)",
                    (list(user_ids),),
                ).fetchall()
            )
        return {user_id: found.get(user_id, {}) for user_id in [*found, *user_ids]}

    def set_traits(self, user_id: str, changes: Mapping[str, Any], at_ms: int) -> None:
        """Merge ``changes`` into the user's profile as of ``at_ms`` (the rules of
        :func:`journeyc.store.traits.merge_into`); the user's row is locked meanwhile."""
        with self.writing():
            self._merge_traits([(user_id, changes, at_ms)])

    def _locked_profiles(
        self, users: Sequence[str]
    ) -> dict[str, tuple[dict[str, Any], dict[str, int], int]]:
        """``(traits, trait_at, updated_at)`` of each of ``users``, their rows made
        (empty) when missing and locked until the caller's transaction ends. Rows are
        taken in user order, so two writers of the same users cannot deadlock."""
        # One statement makes the missing rows and locks the others (DO UPDATE locks
        # the row, and returns its latest committed version).
        rows = (
            self._write()
            .execute(
                "INSERT INTO profiles (user_id, traits, updated_at)"
                " SELECT u, '{}', 0 FROM unnest(%b::text[]) AS u ORDER BY u"
                " ON CONFLICT (user_id) DO UPDATE SET user_id = excluded.user_id"
                " RETURNING user_id, traits, trait_at, updated_at",
                (sorted(set(users)),),
            )
            .fetchall()
        )
        return {user: (traits, written, int(updated)) for user, traits, written, updated in rows}

    def _merge_traits(self, changes: Sequence[tuple[str, Mapping[str, Any], int]]) -> None:
        """Merge each ``(user, traits, at)`` in order, inside the caller's transaction."""
        state = self._locked_profiles([user for user, _, _ in changes])
        before = {user: dumps(row) for user, row in state.items()}
        for user_id, traits_in, at_ms in changes:
            traits, written, updated = state[user_id]
            merge_into(traits, written, traits_in, at_ms)
            state[user_id] = (traits, written, max(updated, at_ms))
        self._write_profiles(
            {user: row for user, row in state.items() if dumps(row) != before[user]}
        )

    def _write_profiles(
        self, rows: Mapping[str, tuple[dict[str, Any], dict[str, int], int]]
    ) -> None:
        """Store each user's ``(traits, trait_at, updated_at)`` (rows that exist)."""
        if not rows:
            return
        users = sorted(rows)
        self._write().execute(
            "UPDATE profiles AS p SET traits = v.t::jsonb, trait_at = v.w::jsonb,"
            " updated_at = v.u FROM unnest(%b::text[], %b::text[], %b::text[], %b::bigint[])"
            " AS v (id, t, w, u) WHERE p.user_id = v.id",
            (
                users,
                [dumps(rows[u][0]) for u in users],
                [dumps(rows[u][1]) for u in users],
                [rows[u][2] for u in users],
            ),
        )

    # ------------------------------------------------------------ identities

    def canonical_user(self, user_id: str) -> str:
        """The user ``user_id`` names (itself, unless it was merged into another)."""
        with self.connection() as conn:
            row = conn.execute(
                "SELECT user_id FROM identities WHERE alias = %s", (user_id,)
            ).fetchone()
        return user_id if row is None else str(row[0])

    def identities_of(self, user_id: str) -> list[str]:
        """Every id naming the user ``user_id`` names: that user first, then the ids
        merged into it (sorted)."""
        user = self.canonical_user(user_id)
        with self.connection() as conn:
            rows = conn.execute(
                'SELECT alias FROM identities WHERE user_id = %s ORDER BY alias COLLATE "C"',
                (user,),
            ).fetchall()
        return [user, *(alias for (alias,) in rows)]

    def merge_users(self, frm: str, into: str) -> None:
        """Make ``frm``'s events and profile ``into``'s (as the SQLite store's): a trait
        ``into``'s profile holds wins, ``frm``'s fill the others, with the times they
        were written; ``frm``'s profile row goes. Both rows are locked meanwhile."""
        with self.writing() as conn:
            conn.execute("UPDATE events SET user_id = %s WHERE user_id = %s", (into, frm))
            state = self._locked_profiles([frm, into])
            theirs, their_times, their_update = state[frm]
            traits, written, updated = state[into]
            for key, value in theirs.items():
                if key not in traits:
                    traits[key] = value
                    if key in their_times:
                        written[key] = their_times[key]
            self._write_profiles({into: (traits, written, max(updated, their_update))})
            conn.execute("DELETE FROM profiles WHERE user_id = %s", (frm,))

    # ------------------------------------------------------------ cursors

    def get_cursor(self, name: str) -> int:
        """How far the reader ``name`` has read the log (0 before it starts)."""
        with self.connection() as conn:
            row = conn.execute("SELECT seq FROM cursor WHERE name = %s", (name,)).fetchone()
        return 0 if row is None else int(row[0])

    def set_cursor(self, name: str, seq: int) -> None:
        """Record that the reader ``name`` has handled every event up to ``seq``."""
        with self.writing() as conn:
            conn.execute(
                "INSERT INTO cursor (name, seq) VALUES (%s, %s)"
                " ON CONFLICT (name) DO UPDATE SET seq = excluded.seq",
                (name, seq),
            )

    # ------------------------------------------------------------ settings

    def get_setting(self, name: str) -> str | None:
        """A named value the store keeps (None when unset)."""
        with self.connection() as conn:
            row = conn.execute("SELECT value FROM settings WHERE name = %s", (name,)).fetchone()
        return None if row is None else str(row[0])

    def put_setting(self, name: str, value: str) -> None:
        """Set the named value."""
        with self.writing() as conn:
            conn.execute(
                "INSERT INTO settings (name, value) VALUES (%s, %s)"
                " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (name, value),
            )

    def setting(self, name: str, default: Callable[[], str]) -> str:
        """The named value, set to ``default()`` first when unset: of several callers
        at once, in any process, one sets it and all read that value (a second insert
        waits for the first to commit, then does nothing)."""
        with self.writing() as conn:
            conn.execute(
                "INSERT INTO settings (name, value) VALUES (%s, %s) ON CONFLICT (name) DO NOTHING",
                (name, default()),
            )
            row = conn.execute("SELECT value FROM settings WHERE name = %s", (name,)).fetchone()
        assert row is not None  # inserted above, or there already
        return str(row[0])

    # ------------------------------------------------------------ admin

    def forget_user(self, user_id: str) -> dict[str, int]:
        """Erase everything held about a user, under every id that names them (as the
        SQLite store's); return the rows removed per table."""
        removed: dict[str, int] = {}
        with self.writing() as conn:
            ids = self.identities_of(user_id)
            for table in (
                "outbox",
                "instances",
                "entries",
                "actions",
                "events",
                "profiles",
                "segment_members",
                "segment_changes",
                "deliveries",
            ):
                cur = conn.execute(
                    sql.SQL("DELETE FROM {} WHERE user_id = ANY(%b)").format(sql.Identifier(table)),
                    (ids,),
                )
                removed[table] = cur.rowcount
            cur = conn.execute("DELETE FROM identities WHERE user_id = %s", (ids[0],))
            removed["identities"] = cur.rowcount
        return removed

    def counts(self) -> dict[str, int]:
        """Rows per table, for status reports."""
        query = sql.SQL(" UNION ALL ").join(
            sql.SQL("SELECT {}, count(*) FROM {}").format(sql.Literal(t), sql.Identifier(t))
            for t in TABLES
        )
        with self.connection() as conn:
            return {table: int(n) for table, n in conn.execute(query).fetchall()}
