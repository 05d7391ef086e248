"""The SQLite store: the event log, profiles and cursors in one WAL-mode file.

One :class:`Store` owns one connection in autocommit mode and opens transactions
itself (``BEGIN IMMEDIATE``, so a writer takes the lock up front instead of failing
to upgrade a read lock later). Writers queue on a lock of their own before SQLite's:
a thread lock, and across processes ``flock`` on a file beside the database, so a
waiting writer wakes within milliseconds of the other's commit instead of polling in
SQLite's busy handler (which sleeps up to 100 ms between tries). The wait is bounded:
a writer that cannot take the lock within the store's ``lock_timeout_s`` raises
:class:`StoreBusyError` (the API answers 503 with ``Retry-After``, the engine process
runs again later), so a writer stuck in a long transaction never hangs the others.
:meth:`Store.transaction` nests with savepoints, so the engine can wrap several store
calls and its own writes to ``store.conn`` in one atomic step: cursor, instances and
outbox change together or not at all.

Hot paths use the raw ``sqlite3`` connection with prepared statements and
``executemany``; sqlite-utils serves the administrative side.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any

from journeyc.events import (
    ALIAS,
    IDENTIFY,
    PREVIOUS_ID,
    Event,
    first_of_each_id,
)
from journeyc.fastjson import dumps, loads
from journeyc.store.errors import SchemaVersionError, StoreBusyError, StoreError
from journeyc.store.identities import IdentityMap, alias_ids, has_alias, link_events
from journeyc.store.rows import Cohort, StoredEvent
from journeyc.store.sqlite.admin import SqliteAdminReads, canonical_user, entry_cohorts, snapshot
from journeyc.store.sqlite.aggregates import SqliteAggregates
from journeyc.store.sqlite.catalog import SqliteCatalog
from journeyc.store.sqlite.deliveries import Deliveries
from journeyc.store.sqlite.deployments import SqliteDeploymentReads
from journeyc.store.sqlite.dump import SqliteTableDump, SqliteTableLoad, dump
from journeyc.store.sqlite.errors import converted
from journeyc.store.sqlite.history import EventHistory
from journeyc.store.sqlite.leases import SqliteLeases
from journeyc.store.sqlite.outbox import SqliteOutbox
from journeyc.store.sqlite.population import SqlitePopulation
from journeyc.store.sqlite.products import PRODUCT_EVENTS, upsert_from_events
from journeyc.store.sqlite.recommendations import SqliteRecommendations
from journeyc.store.sqlite.replays import SqliteReplayReads
from journeyc.store.sqlite.reports import SqliteReportReads, reads
from journeyc.store.sqlite.runtime import Runtime
from journeyc.store.sqlite.schedules import ScheduleRows
from journeyc.store.sqlite.schema import TABLES, migrate, user_version
from journeyc.store.sqlite.segments import SegmentBook
from journeyc.store.sqlite.upkeep import SqliteUpkeep
from journeyc.store.traits import merge_into as _merge_into

BUSY_TIMEOUT_MS = 5000


def _import_sqlite_utils() -> ModuleType:
    """sqlite-utils, imported without pandas and numpy.

    sqlite-utils imports pandas and numpy when it is imported, if they are installed
    (to convert their values); statsmodels (the reports) installs both. journeyc
    hands sqlite-utils neither, and importing them cost every process that opens a
    store ~60 MB of memory and ~0.5 s (the daemon's API process went from 119 MB to
    181 MB). So they are hidden while sqlite-utils is imported, and only then: a
    report still imports them, when it is asked for. Imported with this module, as
    before, so that opening the first store does not pay for it.
    """
    module = sys.modules.get("sqlite_utils")
    if module is not None:
        return module
    hidden = [name for name in ("pandas", "numpy") if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # makes `import name` fail
    try:
        import sqlite_utils
    finally:
        for name in hidden:
            del sys.modules[name]
    return sqlite_utils


sqlite_utils = _import_sqlite_utils()


Connection = sqlite3.Connection
"""The connection a transaction hands its block: modules outside the store name it
by this alias and import no database driver."""

LOCK_TIMEOUT_S = 10.0
"""How long a writer waits for the write lock before :class:`StoreBusyError` (the default
of ``journeyc.toml``'s ``[store] lock_timeout``)."""

LOCK_POLL_S = 0.002
"""The longest sleep between two tries of a held write lock: a waiting writer starts
within this of the holder's commit."""

LOCK_SUFFIX = ".lock"
"""The write lock file beside the database (``journeyc.db.lock``): see
:meth:`Store.transaction`."""


class Store:
    """The journeyc store over one SQLite file. Make one with :meth:`open`.

    Calls from several threads are serialized by a lock held for each transaction;
    a read outside a transaction sees the connection's own uncommitted writes.
    ``lock_timeout_s`` bounds the wait for the write lock (see :meth:`transaction`).
    """

    def __init__(
        self, conn: sqlite3.Connection, path: str, lock_timeout_s: float = LOCK_TIMEOUT_S
    ) -> None:
        self._conn = conn
        self.path = path
        self.lock_timeout_s = lock_timeout_s
        self._lock = threading.RLock()
        self._depth = 0
        # The inter-process write lock (see transaction()); none for :memory:.
        self._lock_fd: int | None = None
        if path not in ("", ":memory:") and not path.startswith("file:"):
            # In a read-only directory there is none: writers meet in the busy handler.
            with contextlib.suppress(OSError):
                self._lock_fd = os.open(path + LOCK_SUFFIX, os.O_RDWR | os.O_CREAT, 0o644)
        # hold_profiles(): profile merges wait here until flush_profiles(), as
        # user → (traits, trait_at, updated_at, the row as read); reads see them.
        self._held: dict[str, _Profile] | None = None
        # While holding: profiles flush_profiles() wrote, as written (the same form),
        # read again without a query; at most CLEAN_PROFILES of them.
        self._clean: dict[str, _Profile] = {}
        # hold_events(): appended events wait here until flush_events().
        self._held_events: list[Event] | None = None
        self._last_seq = 0  # with hold_events(): the seq of the last event appended
        self._profiled: set[str] = set()  # with hold_events(): users given a profile row
        self._products: dict[str, int] = {}  # upsert_from_events' `known`
        self._learn = True  # hold_events(learn=False): held events teach no products
        self._write_events = True  # hold_events(write=False): held events are not logged
        self._identities = False  # some id was merged into another (see _has_identities)

    @classmethod
    def open(
        cls,
        path: Path | str,
        busy_timeout_ms: int = BUSY_TIMEOUT_MS,
        *,
        lock_timeout_s: float = LOCK_TIMEOUT_S,
    ) -> Store:
        """Open (creating and migrating as needed) the store at ``path``; writers
        wait at most ``lock_timeout_s`` for the write lock.

        Raises :class:`StoreError` naming the file when it is not a SQLite
        database, not a journeyc store, or from a newer journeyc.
        """
        name = str(path)
        conn = sqlite3.connect(
            name,
            isolation_level=None,
            check_same_thread=False,
            timeout=busy_timeout_ms / 1000,
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms):d}")
            conn.execute("PRAGMA foreign_keys = ON")
            if name != ":memory:":
                sqlite_utils.Database(conn, execute_plugins=False).enable_wal()
            conn.execute("PRAGMA synchronous = NORMAL")
            migrate(conn)
        except SchemaVersionError as exc:
            conn.close()
            raise SchemaVersionError(exc.found, exc.known, name) from None
        except StoreError as exc:
            conn.close()
            raise StoreError(f"{name}: {exc}") from None
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise StoreError(f"{name}: cannot open the store: {exc}") from exc
        except BaseException:
            conn.close()
            raise
        return cls(conn, name, lock_timeout_s)

    def copy_in_memory(self) -> Store:
        """A new in-memory store holding a copy of this one (SQLite's backup): cheaper
        than :meth:`open` with the schema to make again."""
        conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        self._conn.backup(conn)
        conn.execute("PRAGMA foreign_keys = ON")
        return type(self)(conn, ":memory:")

    @property
    def conn(self) -> sqlite3.Connection:
        """The raw connection, for modules that add their own queries (the engine).

        Write through it only inside :meth:`transaction`.
        """
        return self._conn

    @property
    def schema_version(self) -> int:
        """The schema version of the open file."""
        return user_version(self._conn)

    def close(self) -> None:
        """Close the connection; the store cannot be used afterwards."""
        self._conn.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @contextmanager
    def bulk(self) -> Iterator[None]:
        """Commits inside this block are not synced to disk; leaving it syncs once.

        For a batch job that owns the store from start to end (``simulate``): a
        process that dies keeps a consistent store, as always (SQLite's guarantee),
        but the operating system crashing mid-job may lose or damage the job's
        writes. At 1M events, syncing at every WAL checkpoint cost half the wall
        time of appending them (bench/RESULTS.md). The page cache grows to
        :data:`BULK_CACHE_KIB` for the block, so the indexes a long job writes at
        random places stay in memory. Leaving the block restores both settings and
        checkpoints the WAL, which syncs it.
        """
        conn = self._conn
        (mode,) = conn.execute("PRAGMA synchronous").fetchone()
        (cache,) = conn.execute("PRAGMA cache_size").fetchone()
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute(f"PRAGMA cache_size = {-BULK_CACHE_KIB:d}")
        try:
            yield
        finally:
            conn.execute(f"PRAGMA synchronous = {int(mode):d}")
            conn.execute(f"PRAGMA cache_size = {int(cache):d}")
            if self.path != ":memory:" and not conn.in_transaction:
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Run the block atomically: all its writes commit, or none if it raises.

        Nested blocks become savepoints: an inner block that raises undoes only its
        own writes (if the outer block catches the error).

        The outermost block first takes the store's thread lock, then an exclusive
        ``flock`` on the lock file beside the database, both released after the
        commit: writers in one process (the daemon's API threads) or in several
        (the daemon's API and engine processes, ``journeyc ingest``) queue there and
        start within milliseconds of the holder's commit, instead of meeting in
        SQLite's busy handler, which polls with sleeps of up to 100 ms. A writer that does not
        take it (another program) still meets this one in the busy handler.

        Taking both locks waits at most ``lock_timeout_s`` in all, then raises
        :class:`StoreBusyError` with nothing written. Whoever holds the lock must keep to
        bounded work: the engine renders messages inside its transaction, which the
        render limits keep to milliseconds (journeyc.messages.templates).
        """
        deadline = time.monotonic() + self.lock_timeout_s
        try:
            with self._thread_lock():
                depth = self._depth
                lock_fd = self._lock_fd if depth == 0 else None
                if lock_fd is not None:
                    self._take_file_lock(lock_fd, deadline)
                try:
                    savepoint = f"journeyc_{depth}"
                    self._conn.execute(
                        "BEGIN IMMEDIATE" if depth == 0 else f"SAVEPOINT {savepoint}"
                    )
                    self._depth += 1
                    try:
                        yield self._conn
                    except BaseException:
                        self._depth = depth
                        if self._conn.in_transaction:
                            if depth == 0:
                                self._conn.execute("ROLLBACK")
                            else:
                                self._conn.execute(f"ROLLBACK TO {savepoint}")
                                self._conn.execute(f"RELEASE {savepoint}")
                        raise
                    self._depth = depth
                    if depth == 0:
                        try:
                            self._conn.execute("COMMIT")
                        except BaseException:
                            if self._conn.in_transaction:
                                self._conn.execute("ROLLBACK")
                            raise
                    else:
                        self._conn.execute(f"RELEASE {savepoint}")
                finally:
                    if lock_fd is not None:
                        fcntl.flock(lock_fd, fcntl.LOCK_UN)
        except sqlite3.Error as exc:  # the store's error, not the driver's
            raise converted(exc) from exc

    @contextmanager
    def _thread_lock(self) -> Iterator[None]:
        """Hold the store's thread lock, waiting at most ``lock_timeout_s`` for it
        (:class:`StoreBusyError` after that)."""
        if not self._lock.acquire(timeout=self.lock_timeout_s):
            raise StoreBusyError(self.path, self.lock_timeout_s)
        try:
            yield
        finally:
            self._lock.release()

    def _take_file_lock(self, fd: int, deadline: float) -> None:
        """``flock`` ``fd`` exclusively, trying until ``deadline`` (monotonic).

        A blocking ``flock`` cannot be given a timeout (nor interrupted outside the
        main thread), so a held lock is tried again after short sleeps, growing to
        :data:`LOCK_POLL_S`.
        """
        pause = 0.0002
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                pass
            left = deadline - time.monotonic()
            if left <= 0:
                raise StoreBusyError(self.path, self.lock_timeout_s)
            time.sleep(min(pause, left))
            pause = min(pause * 2, LOCK_POLL_S)

    # ------------------------------------------------------------ parts: leases

    def leases(self) -> SqliteLeases:
        """The engine workers' partition leases (:class:`~journeyc.store.abc.Leases`)."""
        return SqliteLeases(self)

    def cluster_lock(self, name: str, wait_s: float = 0.0) -> AbstractContextManager[bool]:
        """Always taken (yields True): one SQLite store has one daemon, whose write
        lock already keeps its writers apart."""
        return contextlib.nullcontext(True)

    # ------------------------------------------------------------ event log

    def append_events(
        self, events: Sequence[Event], *, merge_traits: bool = True, link: bool = True
    ) -> list[int | None]:
        """Append events in one transaction; return each one's ``seq``, None for a duplicate
        (or an alias event that merges nothing).

        With ``merge_traits=False`` identify calls are only logged: the engine applies
        them when it reaches them in log order (so an identify logged after a track at
        the same instant does not change the profile that track is handled with).

        Each event is logged under the user its id names at that moment (see
        :meth:`link_events`; ``link=False``: the caller has done that already, or
        its events name canonical users only, as the engine's ``track`` steps do).

        A duplicate is an event whose ``message_id`` the log already holds (or that
        came earlier in ``events``); it changes nothing. Seqs grow with arrival and are
        never reused, but may skip numbers. New identify calls merge
        their traits into the profile (see :meth:`set_traits`). New
        ``product_viewed`` and ``order_completed`` events teach the catalog the
        products they name (see :func:`journeyc.store.sqlite.products.upsert_from_events`).
        """
        if not events:
            return []
        with self.transaction() as conn:
            given = events
            linked = self._link(events) if link else events
            if linked is not events:
                events = [e for e in linked if e is not None]
            rows = [
                (e.message_id, e.user_id, e.name, e.at_ms, dumps(e.props), e.received_ms)
                for e in events
            ]
            (last,) = conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()
            # ON CONFLICT names the one constraint a duplicate breaks; any other
            # failure still raises instead of dropping the row silently.
            conn.executemany(
                "INSERT INTO events (message_id, user_id, name, at, props, received_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (message_id) DO NOTHING",
                rows,
            )
            # AUTOINCREMENT: every new row, and only they, lie past the old maximum.
            new: dict[str, int] = dict(
                conn.execute("SELECT message_id, seq FROM events WHERE seq > ?", (last,))
            )
            seqs = [new.pop(e.message_id, None) for e in events]
            changes = [
                (e.user_id, e.props, e.at_ms)
                for e, seq in zip(events, seqs, strict=True)
                if seq is not None and e.kind == "identify"
            ]
            if changes and merge_traits:
                self._merge_traits(changes)
            self._logged([e for e, seq in zip(events, seqs, strict=True) if seq is not None])
        if linked is not given:
            # One seq per event given: None for an alias event that merged nothing.
            kept = iter(seqs)
            seqs = [None if e is None else next(kept) for e in linked]
        return seqs

    # ------------------------------------------------------------ identities

    def link_events(self, events: Sequence[Event]) -> list[Event]:
        """``events`` as :meth:`append_events` would log them, in order, recording the
        merges their alias events make (:func:`~journeyc.store.identities.link_events`):
        for a caller that logs them afterwards with ``link=False``, in this order (a
        simulation, which links its whole file before it runs)."""
        with self.transaction():
            linked = self._link(events)
        if linked is events:
            return events if isinstance(events, list) else list(events)
        return [e for e in linked if e is not None]

    def _link(self, events: Sequence[Event]) -> Sequence[Event | None]:
        """``events`` named by their canonical users, recording the merges their alias
        events make in ``identities`` (inside the caller's transaction); ``events``
        itself when nothing changes (no alias event and no identity in the store)."""
        merged = alias_ids(events) if has_alias(events) else set()
        if not merged and not self._has_identities():
            return events
        ids = {e.user_id for e in events} | merged
        links = self._conn.execute(
            "SELECT alias, user_id FROM identities WHERE alias IN (SELECT value FROM json_each(?))",
            (dumps(sorted(ids)),),
        ).fetchall()
        known = IdentityMap.of(links)
        linked, merges = link_events(events, known)
        at = {e.props[PREVIOUS_ID]: e.at_ms for e in linked if e is not None and e.name == ALIAS}
        for frm, into in merges:
            # Every alias of the merged user, in the table or not, names ``into`` now.
            self._conn.execute("UPDATE identities SET user_id = ? WHERE user_id = ?", (into, frm))
            self._conn.execute(
                "INSERT INTO identities (alias, user_id, linked_at) VALUES (?, ?, ?)"
                " ON CONFLICT (alias) DO UPDATE SET user_id = excluded.user_id",
                (frm, into, at.get(frm, 0)),
            )
        self._identities = self._identities or bool(merges)
        return linked

    def _has_identities(self) -> bool:
        """Whether any id was merged into another (once true, it stays true)."""
        if not self._identities:
            row = self._conn.execute("SELECT EXISTS (SELECT 1 FROM identities)").fetchone()
            self._identities = bool(row[0])
        return self._identities

    def canonical_user(self, user_id: str) -> str:
        """The user ``user_id`` names (itself, unless it was merged into another)."""
        return canonical_user(self._conn, user_id)

    def identities_of(self, user_id: str) -> list[str]:
        """Every id naming the user ``user_id`` names: that user first, then the ids
        merged into it (sorted)."""
        user = self.canonical_user(user_id)
        aliases = [
            a
            for (a,) in self._conn.execute(
                "SELECT alias FROM identities WHERE user_id = ? ORDER BY alias", (user,)
            )
        ]
        return [user, *aliases]

    def merge_users(self, frm: str, into: str) -> None:
        """Make ``frm``'s events and profile ``into``'s, inside the caller's transaction
        (the engine's part of a merge: :meth:`journeyc.engine.core.Engine.merge`).

        The events logged under ``frm`` name ``into``. The profiles merge: a trait
        ``into``'s profile holds wins, ``frm``'s fill the others (with the times they
        were written); ``frm``'s profile row goes (it is no user of its own any more)."""
        self.flush_events()  # held events name users as logged: rename them in the table
        self._conn.execute("UPDATE events SET user_id = ? WHERE user_id = ?", (into, frm))
        self._profiled.discard(frm)
        theirs = self._profile_state(frm)
        mine = self._profile_state(into)
        traits, written, updated, as_read = mine
        traits, written = dict(traits), dict(written)
        for key, value in theirs[0].items():
            if key not in traits:
                traits[key] = value
                if key in theirs[1]:
                    written[key] = theirs[1][key]
        updated = max(updated, theirs[2])
        held = self._held
        if held is not None:
            held[into] = (traits, written, updated, as_read)
            held.pop(frm, None)
            self._clean.pop(frm, None)
        else:
            self._write_profiles([(into, traits, written, updated, as_read)])
        self._conn.execute("DELETE FROM profiles WHERE user_id = ?", (frm,))

    def _profile_state(self, user_id: str) -> _Profile:
        """(traits, trait_at, updated_at, the row as read) of a user, held or stored."""
        known = self._holding(user_id)
        if known is not None:
            return known
        row = self._conn.execute(
            "SELECT traits, trait_at, updated_at FROM profiles WHERE user_id = ?", (user_id,)
        ).fetchone()
        if row is None:
            return {}, {}, 0, None
        return loads(row[0]), loads(row[1]), int(row[2]), (row[0], row[1], row[2])

    def unlogged(self, events: Sequence[Event]) -> list[Event]:
        """``events`` without those the log holds already or that repeat a
        ``message_id`` given earlier in ``events`` (what appending them would skip)."""
        if not self.has_events_after(0):  # an empty log: a simulation's fresh store
            return first_of_each_id(events)
        ids = list(dict.fromkeys(e.message_id for e in events))
        logged: set[str] = set()
        for i in range(0, len(ids), 10_000):
            logged.update(
                mid
                for (mid,) in self._conn.execute(
                    "SELECT message_id FROM events"
                    " WHERE message_id IN (SELECT value FROM json_each(?))",
                    (dumps(ids[i : i + 10_000]),),
                )
            )
        return first_of_each_id(events, logged)

    def hold_events(self, learn: bool = True, write: bool = True) -> int:
        """Hold appended events in memory until :meth:`flush_events` (for a caller
        that is the store's only writer and has left out the duplicates: the
        simulator, see :meth:`unlogged`); return the last ``seq`` logged so far.
        ``learn=False``: the catalog learns no products from them (a scratch store
        whose journeys call no recommendation filter: nothing would read them).
        ``write=False``: they never reach the ``events`` table, only the profile rows
        and products they bring do (for a caller that reads them from nothing but its
        own memory; :meth:`events_after` then refuses)."""
        self._learn = learn
        self._write_events = write
        if self._held_events is None:
            row = self._conn.execute(
                "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'events'),"
                " 0), coalesce((SELECT max(seq) FROM events), 0))"
            ).fetchone()
            self._last_seq = int(row[0])
            self._held_events = []
        return self._last_seq

    def append_held(self, events: Sequence[Event]) -> list[StoredEvent]:
        """Append events none of which the log holds (see :meth:`hold_events`); they
        are written at :meth:`flush_events`. Returns them as :meth:`events_after`
        would read them (sharing their ``props``)."""
        held = self._held_events
        if held is None:
            raise RuntimeError("append_held() needs hold_events() first")
        held.extend(events)
        stored = []
        for e in events:
            self._last_seq += 1
            stored.append(
                StoredEvent(
                    self._last_seq, e.message_id, e.user_id, e.name, e.at_ms, e.props, e.received_ms
                )
            )
        return stored

    def flush_events(self) -> None:
        """Write the events held since :meth:`hold_events`, with the profile rows of
        users new to the log and the products they teach the catalog."""
        held = self._held_events
        if not held:
            return
        self._held_events = []
        first = self._last_seq - len(held) + 1
        with self.transaction() as conn:
            if self._write_events:
                conn.executemany(
                    "INSERT INTO events (seq, message_id, user_id, name, at, props, received_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [
                        (
                            first + k,
                            e.message_id,
                            e.user_id,
                            e.name,
                            e.at_ms,
                            dumps(e.props),
                            e.received_ms,
                        )
                        for k, e in enumerate(held)
                    ],
                )
            self._logged(held, self._profiled, self._products, learn=self._learn)

    def _logged(
        self,
        events: Sequence[Event],
        profiled: set[str] | None = None,
        products: dict[str, int] | None = None,
        *,
        learn: bool = True,
    ) -> None:
        """What logging ``events`` (new to the log) brings with it, inside the caller's
        transaction: a profile row for every user the log names (scheduled audiences
        and segment refreshes read users from there), and the products they teach the
        catalog. ``profiled`` (users known to have a row, kept up to date) and
        ``products`` (see :func:`~journeyc.store.sqlite.products.upsert_from_events`) are for the
        store's only writer; ``learn=False`` teaches the catalog nothing."""
        users = [
            u for u in dict.fromkeys(e.user_id for e in events) if not profiled or u not in profiled
        ]
        self._conn.executemany(
            "INSERT INTO profiles (user_id, traits, updated_at) VALUES (?, '{}', 0)"
            " ON CONFLICT (user_id) DO NOTHING",
            [(u,) for u in users],
        )
        if profiled is not None:
            profiled.update(users)
        if not learn:
            return
        learned = [e for e in events if e.name in PRODUCT_EVENTS]
        if learned:
            upsert_from_events(self._conn, learned, products)

    def has_events_after(self, seq: int) -> bool:
        """Whether the log holds an event with a ``seq`` above ``seq``."""
        row = self._conn.execute("SELECT EXISTS (SELECT 1 FROM events WHERE seq > ?)", (seq,))
        return bool(row.fetchone()[0])

    def events_after(self, seq: int, limit: int = 1000) -> list[StoredEvent]:
        """Up to ``limit`` events with a ``seq`` above ``seq``, in log order."""
        if not self._write_events:
            raise RuntimeError("events held with hold_events(write=False) are not in the log")
        rows = self._conn.execute(
            "SELECT seq, message_id, user_id, name, at, props, received_at FROM events"
            " WHERE seq > ? ORDER BY seq LIMIT ?",
            (seq, limit),
        ).fetchall()
        return [
            StoredEvent(s, mid, uid, name, at, loads(props), rec)
            for s, mid, uid, name, at, props, rec in rows
        ]

    # ------------------------------------------------------------ profiles

    def get_profile(self, user_id: str) -> dict[str, Any]:
        """The user's traits; an empty dict for a user never seen."""
        if self._held is not None:
            known = self._held.get(user_id) or self._clean.get(user_id)
            if known is not None:
                return dict(known[0])
        row = self._conn.execute(
            "SELECT traits FROM profiles WHERE user_id = ?", (user_id,)
        ).fetchone()
        return {} if row is None else dict(loads(row[0]))

    def get_profiles(self, user_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Each user's traits (as :meth:`get_profile`), read with one query."""
        held = self._held or {}
        clean = self._clean
        found = {
            u: dict(known[0])
            for u in user_ids
            if (known := held.get(u) or clean.get(u)) is not None
        }
        user_ids = [u for u in user_ids if u not in found]
        found |= {
            user_id: dict(loads(traits))
            for user_id, traits in self._conn.execute(
                "SELECT user_id, traits FROM profiles"
                " WHERE user_id IN (SELECT value FROM json_each(?))",
                (dumps(list(user_ids)),),
            )
        }
        return {user_id: found.get(user_id, {}) for user_id in [*found, *user_ids]}

    def hold_profiles(self) -> None:
        """Hold profile changes in memory until :meth:`flush_profiles` (for a caller
        that is the store's only writer: the simulator); reads here see them."""
        if self._held is None:
            self._held = {}

    def flush_profiles(self) -> None:
        """Write the profile changes held since :meth:`hold_profiles`."""
        held = self._held
        if not held:
            return
        self._held = {}
        clean = self._clean
        if len(clean) + len(held) > CLEAN_PROFILES:
            clean.clear()
        for user_id, traits, written, updated, row in self._write_profiles(
            (user_id, traits, written, updated, stored)
            for user_id, (traits, written, updated, stored) in held.items()
        ):
            clean[user_id] = (traits, written, updated, row)

    def _holding(self, user_id: str) -> _Profile | None:
        """The user's profile held (or written by flush_profiles and known since, then
        held again), when the store holds profiles."""
        held = self._held
        if held is None:
            return None
        known = held.get(user_id)
        if known is None:
            known = self._clean.pop(user_id, None)
            if known is not None:
                held[user_id] = known
        return known

    def set_traits(self, user_id: str, changes: Mapping[str, Any], at_ms: int) -> None:
        """Merge ``changes`` into the user's profile as of ``at_ms``.

        A shallow merge: each trait is replaced whole, and a trait set to None is
        removed. Per trait, the latest time wins: a change older than that trait's
        last write (an identify that arrived late) is ignored; at equal times, the
        later call wins.
        """
        with self._thread_lock():
            if self._depth:  # inside this thread's transaction: one user's merge writes
                self._merge_traits([(user_id, changes, at_ms)])  # one row, atomically
                return
            with self.transaction():
                self._merge_traits([(user_id, changes, at_ms)])

    def _merge_traits(self, changes: Sequence[tuple[str, Mapping[str, Any], int]]) -> None:
        held = self._held
        if held is not None and len(changes) == 1:
            user_id, traits_in, at_ms = changes[0]
            known = self._holding(user_id)
            if known is not None:
                # The engine's one change to a profile it holds: merged where it is.
                traits, written, updated, as_read = known
                _merge_into(traits, written, traits_in, at_ms)
                held[user_id] = (traits, written, max(updated, at_ms), as_read)
                return
        users = sorted({user_id for user_id, _, _ in changes})
        state: dict[str, tuple[dict[str, Any], dict[str, int], int]] = {
            user_id: ({}, {}, 0) for user_id in users
        }
        stored: dict[str, Any] = {}  # the row as read: a merge that keeps it writes nothing
        for user_id in users:
            known = self._holding(user_id)
            if known is not None:
                traits, written, updated, as_read = known
                state[user_id] = (traits, written, updated)
                stored[user_id] = as_read
                continue
            row = self._conn.execute(
                "SELECT traits, trait_at, updated_at FROM profiles WHERE user_id = ?",
                (user_id,),
            ).fetchone()
            if row is not None:
                state[user_id] = (loads(row[0]), loads(row[1]), row[2])
                stored[user_id] = (row[0], row[1], row[2])
        for user_id, traits_in, at_ms in changes:
            traits, written, updated = state[user_id]
            _merge_into(traits, written, traits_in, at_ms)
            state[user_id] = (traits, written, max(updated, at_ms))
        if held is not None:
            for user_id, (traits, written, updated) in state.items():
                held[user_id] = (traits, written, updated, stored.get(user_id))
            return
        self._write_profiles(
            (user_id, traits, written, updated, stored.get(user_id))
            for user_id, (traits, written, updated) in state.items()
        )

    def _write_profiles(
        self, rows: Iterable[tuple[str, dict[str, Any], dict[str, int], int, Any]]
    ) -> list[tuple[str, dict[str, Any], dict[str, int], int, Any]]:
        """Upsert ``(user, traits, trait_at, updated_at, the row as read)`` rows; return
        them with the row as it now is in place of the row as read."""
        made = [
            (user_id, traits, written, updated, as_read, (dumps(traits), dumps(written), updated))
            for user_id, traits, written, updated, as_read in rows
        ]
        self._conn.executemany(
            "INSERT INTO profiles (user_id, traits, trait_at, updated_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (user_id) DO UPDATE SET traits = excluded.traits,"
            " trait_at = excluded.trait_at, updated_at = excluded.updated_at",
            # A merge that changes nothing (the engine applying an identify that ingest
            # merged already) writes nothing.
            [(user_id, *row) for user_id, _, _, _, as_read, row in made if row != as_read],
        )
        return [(user_id, t, w, u, row) for user_id, t, w, u, _, row in made]

    # ------------------------------------------------------------ cursors

    def get_cursor(self, name: str) -> int:
        """How far the reader ``name`` has read the log (0 before it starts)."""
        row = self._conn.execute("SELECT seq FROM cursor WHERE name = ?", (name,)).fetchone()
        return 0 if row is None else int(row[0])

    def set_cursor(self, name: str, seq: int) -> None:
        """Record that the reader ``name`` has handled every event up to ``seq``."""
        sql = (
            "INSERT INTO cursor (name, seq) VALUES (?, ?)"
            " ON CONFLICT (name) DO UPDATE SET seq = excluded.seq"
        )
        with self._thread_lock():
            if self._depth:  # inside this thread's transaction: one statement is atomic
                self._conn.execute(sql, (name, seq))
                return
            with self.transaction() as conn:
                conn.execute(sql, (name, seq))

    # ------------------------------------------------------------ settings

    def get_setting(self, name: str) -> str | None:
        """A named value the store keeps (None when unset)."""
        row = self._conn.execute("SELECT value FROM settings WHERE name = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    def put_setting(self, name: str, value: str) -> None:
        """Set the named value."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO settings (name, value) VALUES (?, ?)"
                " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (name, value),
            )

    def setting(self, name: str, default: Callable[[], str]) -> str:
        """The named value, set to ``default()`` first when unset (atomically)."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO settings (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
                (name, default()),
            )
            (value,) = conn.execute("SELECT value FROM settings WHERE name = ?", (name,)).fetchone()
        return str(value)

    # ------------------------------------------------------------ compiled reads

    def aggregates(self) -> SqliteAggregates:
        """Aggregates compiled to SQL over the event log (``store.abc.AggregateReads``)."""
        return SqliteAggregates(self._conn)

    def population(self) -> SqlitePopulation:
        """Set-based segment evaluation (``store.abc.PopulationReads``)."""
        return SqlitePopulation(self._conn)

    def recommendations(self) -> SqliteRecommendations:
        """The recommendation filters' reads (``store.abc.RecommendationReads``)."""
        return SqliteRecommendations(self._conn)

    def catalog(self) -> SqliteCatalog:
        """The catalog feed's writes (``store.abc.Catalog``)."""
        return SqliteCatalog(self.transaction)

    # ------------------------------------------------------------ admin

    def forget_user(self, user_id: str) -> dict[str, int]:
        """Erase everything held about a user, under every id that names them (the user
        an id was merged into, and every id merged into that user: forgetting by an
        old anonymous id forgets the person it became); return the rows removed per
        table (``identities``: the links forgotten)."""
        removed: dict[str, int] = {}
        with self.transaction() as conn:
            ids = self.identities_of(user_id)
            # Outbox first: deleting instances first would only null its references.
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
                removed[table] = sum(
                    conn.execute(f"DELETE FROM {table} WHERE user_id = ?", (uid,)).rowcount
                    for uid in ids
                )
            removed["identities"] = conn.execute(
                "DELETE FROM identities WHERE user_id = ?", (ids[0],)
            ).rowcount
        return removed

    def event_names(self) -> set[str]:
        """The names of the track events the log holds (not ``identify`` or ``alias``),
        for ``journeyc validate --db``. One probe of the ``(name, at)`` index per name,
        however many events each name has."""
        names: set[str] = set()
        query = "SELECT min(name) FROM events WHERE name > ?"
        row = self._conn.execute("SELECT min(name) FROM events").fetchone()
        while row is not None and row[0] is not None:
            names.add(row[0])
            row = self._conn.execute(query, (row[0],)).fetchone()
        return names - {IDENTIFY, ALIAS}

    def counts(self) -> dict[str, int]:
        """Rows per table, for status reports."""
        db = sqlite_utils.Database(self._conn, execute_plugins=False)
        return {table: int(db.table(table).count) for table in TABLES}

    # -- the engine's unit of work and its rows (journeyc.store.abc) ----------------

    @property
    def in_transaction(self) -> bool:
        """Whether a transaction is open (the engine's step joins a caller's)."""
        return self._conn.in_transaction

    def has_profile(self, user_id: str) -> bool:
        """Whether the store knows the user (every user it has seen has a profile row)."""
        found = self._conn.execute("SELECT 1 FROM profiles WHERE user_id = ?", (user_id,))
        return found.fetchone() is not None

    def entry_cohorts(self) -> list[Cohort]:
        """Entries and goals per journey and group, for A/B reports (see
        :func:`entry_cohorts`)."""
        return entry_cohorts(self._conn)

    def profile_zones(self) -> dict[str, str]:
        """Each user's profile ``timezone``, as given (see :func:`profile_zones`)."""
        return profile_zones(self._conn)

    def in_use(self, *but_settings: str) -> tuple[bool, bool]:
        """Whether the store holds events, entries, profiles or deployed journeys, and
        whether it holds a setting other than ``but_settings`` (``journeyc simulate``
        asks before it starts an earlier simulation's store over)."""
        used, others = self._conn.execute(
            "SELECT EXISTS (SELECT 1 FROM events) OR EXISTS (SELECT 1 FROM entries)"
            " OR EXISTS (SELECT 1 FROM profiles) OR EXISTS (SELECT 1 FROM journeys),"
            " EXISTS (SELECT 1 FROM settings WHERE name NOT IN (SELECT value FROM json_each(?)))",
            (dumps(list(but_settings)),),
        ).fetchone()
        return bool(used), bool(others)

    def runtime(self) -> Runtime:
        """A new unit of work over this store's instances, entries, outbox and
        actions (:class:`~journeyc.store.abc.UnitOfWork`)."""
        return Runtime(self._conn)

    def event_history(self) -> EventHistory:
        """The engine's reads of the log by user (:class:`~journeyc.store.abc.EventHistory`)."""
        return EventHistory(self._conn)

    def schedule_rows(self) -> ScheduleRows:
        """The schedules' rows (:class:`~journeyc.store.abc.ScheduleRows`)."""
        return ScheduleRows(self._conn)

    def segment_book(self) -> SegmentBook:
        """A new book of the segments' rows (:class:`~journeyc.store.abc.SegmentBook`)."""
        return SegmentBook(self._conn)

    # ------------------------------------------------------------ the daemon's parts

    def outbox(self) -> SqliteOutbox:
        """The outbox on this store's connection, for a dispatcher: its writes join
        this store's transactions (see :class:`journeyc.store.abc.Outbox`)."""
        return SqliteOutbox(self._conn)

    @contextmanager
    def reading(self) -> Iterator[SqliteAdminReads]:
        """Reads of one snapshot of the committed store, on a connection of their own
        (see :class:`journeyc.store.abc.AdminReads`)."""
        with snapshot(self.path) as reads:
            yield reads

    def upkeep(self) -> SqliteUpkeep:
        """The daemon's housekeeping of this store (retention, checkpoints); close it
        after use (see :class:`journeyc.store.abc.Upkeep`)."""
        return SqliteUpkeep(self._conn, self.path, self.transaction)

    # -- reads of what is deployed and of journey reports (#18 interface) -----------

    def deployments(self) -> SqliteDeploymentReads:
        """What the store has deployed and holds in flight (``journeyc plan``)."""
        return SqliteDeploymentReads(self)

    def report_reads(self) -> AbstractContextManager[SqliteReportReads]:
        """A block reading one snapshot of the store for journey reports."""
        return reads(self)

    def deliveries(self) -> Deliveries:
        """The providers' delivery reports (the ``deliveries`` table)."""
        return Deliveries(self)

    def replay_reads(self) -> SqliteReplayReads:
        """The reads of ``journeyc why``'s replay of one user."""
        return SqliteReplayReads(self)

    # -- copying the store's rows (journeyc store copy) -----------------------------

    def table_dump(self) -> AbstractContextManager[SqliteTableDump]:
        """A block reading one snapshot of the store's tables on a connection of its
        own (:class:`~journeyc.store.abc.TableDump`)."""
        return dump(self.path)

    def table_load(self) -> SqliteTableLoad:
        """The writes of a copy into this store (:class:`~journeyc.store.abc.TableLoad`),
        on its connection: inside :meth:`transaction`."""
        return SqliteTableLoad(self._conn, self.path)


_Profile = tuple[dict[str, Any], dict[str, int], int, Any]
"""A profile held in memory: (traits, trait_at, updated_at, the row as read)."""

CLEAN_PROFILES = 200_000
"""Profiles a holding store keeps as written, to read again without a query."""

BULK_CACHE_KIB = 262_144
"""The page cache of a bulk job (256 MiB; SQLite's default is 2 MiB)."""


def profile_zones(conn: sqlite3.Connection) -> dict[str, str]:
    """Each user's profile ``timezone`` in a store, as given (a name the engine does
    not know is there too: see :func:`~journeyc.engine.localtime.user_zone`)."""
    return dict(
        conn.execute(
            "SELECT user_id, traits ->> '$.timezone' FROM profiles"
            " WHERE json_type(traits, '$.timezone') = 'text'"
        )
    )
