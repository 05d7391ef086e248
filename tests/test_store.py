from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from journeyc.events import Event, parse_event
from journeyc.store import SCHEMA_VERSION, SchemaVersionError, Store, StoreBusyError, StoreError
from journeyc.store.errors import DatabaseError
from journeyc.store.sqlite import BULK_CACHE_KIB, LOCK_SUFFIX
from journeyc.store.sqlite.schema import TABLES, Migration, migrate, user_version

T0 = 1_700_000_000_000


def track(
    mid: str, user: str = "u1", name: str = "Product Viewed", at: int = T0, **props: Any
) -> Event:
    return parse_event(
        {"type": "track", "userId": user, "event": name, "messageId": mid, "properties": props},
        at,
    )


def identify(mid: str, at: int, user: str = "u1", **traits: Any) -> Event:
    return parse_event({"type": "identify", "userId": user, "messageId": mid, "traits": traits}, at)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "journeyc.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[Store]:
    with Store.open(db_path) as s:
        yield s


def tables(conn: sqlite3.Connection) -> set[str]:
    rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return {r[0] for r in rows} - {"sqlite_sequence"}


def add_journey(store: Store, journey: str = "cart") -> None:
    with store.transaction() as conn:
        conn.execute(
            "INSERT INTO journeys (id, version, ir, source, deployed_at, active)"
            " VALUES (?, 'v1', '{}', '', ?, 1)",
            (journey, T0),
        )


def add_instance(store: Store, user: str, status: str = "waiting", journey: str = "cart") -> int:
    with store.transaction() as conn:
        cur = conn.execute(
            "INSERT INTO instances (journey_id, version, user_id, entry_no, node, status,"
            " entered_at, wake_at) VALUES (?, 'v1', ?, 1, '1', ?, ?, ?)",
            (journey, user, status, T0, T0 + 60_000),
        )
        assert cur.lastrowid is not None
        return cur.lastrowid


# ---------------------------------------------------------------- opening and schema


def test_open_creates_the_schema_and_reopen_keeps_data(db_path: Path) -> None:
    with Store.open(db_path) as s:
        assert s.schema_version == SCHEMA_VERSION
        assert tables(s.conn) == set(TABLES)
        s.append_events([track("m1")])
    with Store.open(db_path) as s:
        assert s.schema_version == SCHEMA_VERSION
        assert [e.message_id for e in s.events_after(0)] == ["m1"]


def test_connection_settings(store: Store) -> None:
    conn = store.conn
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] > 0


def test_bulk_commits_unsynced_and_leaves_the_store_synced_and_whole(db_path: Path) -> None:
    with Store.open(db_path) as s:
        (cache,) = s.conn.execute("PRAGMA cache_size").fetchone()
        with pytest.raises(RuntimeError), s.bulk():
            assert s.conn.execute("PRAGMA synchronous").fetchone()[0] == 0  # OFF
            assert s.conn.execute("PRAGMA cache_size").fetchone()[0] == -BULK_CACHE_KIB
            s.append_events([track("m1")])
            raise RuntimeError("the job failed")
        # Restored even when the job failed, and its commits kept.
        assert s.conn.execute("PRAGMA synchronous").fetchone()[0] == 1
        assert s.conn.execute("PRAGMA cache_size").fetchone()[0] == cache
        with s.bulk():
            s.append_events([track("m2")])
        # The checkpoint on leaving moved the WAL into the database file itself.
        alone = db_path.with_name("alone.db")
        alone.write_bytes(db_path.read_bytes())
        with sqlite3.connect(alone) as copy:
            assert copy.execute("SELECT message_id FROM events ORDER BY seq").fetchall() == [
                ("m1",),
                ("m2",),
            ]
    with Store.open(db_path) as s:
        assert [e.message_id for e in s.events_after(0)] == ["m1", "m2"]


def test_a_newer_store_is_refused(db_path: Path) -> None:
    Store.open(db_path).close()
    with sqlite3.connect(db_path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(SchemaVersionError) as info:
        Store.open(db_path)
    message = str(info.value)
    assert str(db_path) in message
    assert f"schema version {SCHEMA_VERSION + 1}" in message
    assert "upgrade journeyc" in message


def test_a_foreign_database_is_refused(db_path: Path) -> None:
    with sqlite3.connect(db_path) as conn:
        conn.execute("CREATE TABLE stuff (x)")
    with pytest.raises(StoreError, match="not a journeyc store"):
        Store.open(db_path)
    with sqlite3.connect(db_path) as conn:
        assert tables(conn) == {"stuff"}  # left as it was


def test_a_file_that_is_not_sqlite_is_refused(db_path: Path) -> None:
    db_path.write_bytes(b"hello, this is not a database" * 100)
    with pytest.raises(StoreError, match=rf"^{db_path}: cannot open the store"):
        Store.open(db_path)


def autocommit(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


M1 = Migration("a", ("CREATE TABLE a (x INTEGER)",))
M2 = Migration("b", ("CREATE TABLE b (y INTEGER)", "INSERT INTO a VALUES (1)"))
BROKEN = Migration("c", ("CREATE TABLE c (z INTEGER)", "INSERT INTO nowhere VALUES (1)"))


def test_migrations_run_in_order_and_only_once(db_path: Path) -> None:
    conn = autocommit(db_path)
    assert migrate(conn, [M1]) == 1
    assert migrate(conn, [M1, M2]) == 2  # M1 would fail if it ran again
    assert migrate(conn, [M1, M2]) == 2
    assert user_version(conn) == 2
    assert tables(conn) == {"a", "b"}
    assert conn.execute("SELECT x FROM a").fetchall() == [(1,)]


def test_a_failing_migration_leaves_the_file_as_it_was(db_path: Path) -> None:
    conn = autocommit(db_path)
    migrate(conn, [M1])
    with pytest.raises(sqlite3.OperationalError, match="nowhere"):
        migrate(conn, [M1, M2, BROKEN])
    assert user_version(conn) == 1
    assert tables(conn) == {"a"}
    assert not conn.in_transaction


def test_v2_gives_every_user_a_v1_store_logged_a_profile_row(db_path: Path) -> None:
    from journeyc.store.sqlite.schema import MIGRATIONS

    conn = autocommit(db_path)
    migrate(conn, MIGRATIONS[:1])
    conn.executemany(
        "INSERT INTO events (message_id, user_id, name, at, props, received_at)"
        " VALUES (?, ?, 'visit', 0, '{}', 0)",
        [("m1", "only-events"), ("m2", "both"), ("m3", "only-events")],
    )
    conn.execute(
        "INSERT INTO profiles (user_id, traits, updated_at) VALUES ('both', '{\"a\": 1}', 5)"
    )
    assert migrate(conn) == SCHEMA_VERSION
    assert conn.execute("SELECT user_id, traits FROM profiles ORDER BY user_id").fetchall() == [
        ("both", '{"a": 1}'),
        ("only-events", "{}"),
    ]


def test_v3_keeps_live_instances_and_every_outbox_row_and_id(db_path: Path) -> None:
    from journeyc.store.sqlite.schema import MIGRATIONS

    conn = autocommit(db_path)
    migrate(conn, MIGRATIONS[:2])
    conn.execute(
        "INSERT INTO journeys (id, version, ir, source, deployed_at) VALUES ('j', 'v', '{}', '', 0)"
    )
    for status in ("waiting", "completed", "exited", "active"):
        conn.execute(
            "INSERT INTO instances (journey_id, version, user_id, entry_no, node, status,"
            " entered_at) VALUES ('j', 'v', ?, 1, 'n', ?, 0)",
            (f"u-{status}", status),
        )
    outbox = (
        "INSERT INTO outbox (key, instance_id, journey_id, user_id, step, message, status,"
        " created_at, claimed_by) VALUES (?, ?, 'j', 'u', 's', 'm', 'queued', 5, 'd1')"
    )
    for key, instance in (("k1", 1), ("k2", 2), ("k3", None)):
        conn.execute(outbox, (key, instance))
    conn.execute("DELETE FROM outbox WHERE key = 'k3'")  # the newest id is gone
    assert migrate(conn) == SCHEMA_VERSION
    assert conn.execute("SELECT user_id FROM instances ORDER BY id").fetchall() == [
        ("u-waiting",),
        ("u-active",),
    ]
    assert conn.execute("SELECT id, key, instance_id, claimed_by FROM outbox").fetchall() == [
        (1, "k1", 1, "d1"),
        (2, "k2", 2, "d1"),
    ]
    # The row of an instance that is gone is not refused, and id 3 is not reused.
    conn.execute(outbox, ("k4", 2))
    assert conn.execute("SELECT id FROM outbox WHERE key = 'k4'").fetchone() == (4,)


# ---------------------------------------------------------------- event log


def test_append_is_idempotent(store: Store) -> None:
    first = store.append_events([track("m1"), track("m2")])
    assert first[0] is not None and first[1] is not None
    assert store.append_events([track("m1")]) == [None]
    # a duplicate inside one call: the first occurrence is kept
    again = store.append_events([track("m3", path="/a"), track("m3", path="/b"), track("m2")])
    assert again[0] is not None and again[1:] == [None, None]
    stored = store.events_after(0)
    assert [e.message_id for e in stored] == ["m1", "m2", "m3"]
    assert stored[2].props == {"path": "/a"}


def test_unlogged_leaves_out_what_appending_would_skip(store: Store) -> None:
    calls = [track("m1", path="/a"), track("m2"), track("m1", path="/b"), track("m3")]
    # An empty log: the repeat within the calls goes, the first of its id stays.
    assert [(e.message_id, e.props) for e in store.unlogged(calls)] == [
        ("m1", {"path": "/a"}),
        ("m2", {}),
        ("m3", {}),
    ]
    store.append_events([track("m2")])
    assert [e.message_id for e in store.unlogged(calls)] == ["m1", "m3"]


def test_replaying_a_file_dedups(store: Store) -> None:
    raw = {"type": "track", "userId": "u1", "event": "Signed Up"}
    assert store.append_events([parse_event(raw, T0)])[0] is not None
    assert store.append_events([parse_event(raw, T0 + 5000)]) == [None]


def test_events_come_back_in_log_order(store: Store) -> None:
    # log order is arrival order, whatever the events' own times
    seqs = store.append_events([track(f"m{i}", at=T0 - i * 1000) for i in range(10)])
    known = [s for s in seqs if s is not None]
    assert len(known) == 10
    assert known == sorted(known)
    stored = store.events_after(0, limit=4)
    assert [e.message_id for e in stored] == ["m0", "m1", "m2", "m3"]
    rest = store.events_after(stored[-1].seq, limit=100)
    assert [e.message_id for e in rest] == [f"m{i}" for i in range(4, 10)]
    assert store.events_after(rest[-1].seq) == []
    e = rest[0]
    assert (e.user_id, e.name, e.at_ms, e.received_ms, e.kind) == (
        "u1",
        "product_viewed",
        T0 - 4000,
        T0 - 4000,
        "track",
    )


def test_seq_is_never_reused(store: Store) -> None:
    store.append_events([track("a", user="keep"), track("b", user="gone")])
    last = store.events_after(0)[-1].seq
    store.set_cursor("engine", last)
    store.forget_user("gone")
    (seq,) = store.append_events([track("c", user="keep")])
    assert seq is not None and seq > last
    assert [e.message_id for e in store.events_after(store.get_cursor("engine"))] == ["c"]


def test_two_stores_on_one_file_dedup(db_path: Path) -> None:
    with Store.open(db_path) as a, Store.open(db_path) as b:
        assert a.append_events([track("m1")])[0] is not None
        assert b.append_events([track("m1"), track("m2")])[0] is None
        assert [e.message_id for e in a.events_after(0)] == ["m1", "m2"]


# ---------------------------------------------------------------- profiles


def test_identify_merges_shallowly_and_null_removes(store: Store) -> None:
    store.append_events(
        [
            identify(
                "i1", T0, plan="free", email="a@x.io", address={"city": "BKK", "zip": "10110"}
            ),
            identify("i2", T0 + 1, plan="pro", email=None, address={"city": "CNX"}),
        ]
    )
    assert store.get_profile("u1") == {"plan": "pro", "address": {"city": "CNX"}}
    assert store.get_profile("nobody") == {}
    # identify calls are in the log too
    assert [e.kind for e in store.events_after(0)] == ["identify", "identify"]


def test_later_timestamps_win_per_trait(store: Store) -> None:
    store.append_events([identify("new", T0 + 10_000, plan="pro", gone=None)])
    # arrives later, happened earlier: its plan and gone are stale, its city is news
    store.append_events([identify("old", T0, plan="free", city="BKK", gone="back")])
    assert store.get_profile("u1") == {"plan": "pro", "city": "BKK"}
    # at equal times, the later call wins
    store.append_events([identify("same", T0 + 10_000, plan="team")])
    assert store.get_profile("u1") == {"plan": "team", "city": "BKK"}


def test_duplicate_identify_does_not_merge_again(store: Store) -> None:
    store.append_events([identify("i1", T0, plan="free")])
    store.set_traits("u1", {"plan": "pro"}, T0 + 1)
    assert store.append_events([identify("i1", T0 + 5, plan="free")]) == [None]
    assert store.get_profile("u1") == {"plan": "pro"}


def test_set_traits(store: Store) -> None:
    store.set_traits("u2", {"vip": True, "score": 3}, T0)
    store.set_traits("u2", {"score": None}, T0 + 1)
    store.set_traits("u2", {"vip": False}, T0 - 1)  # older than the last write of vip
    assert store.get_profile("u2") == {"vip": True}


def test_a_holding_store_writes_every_change_and_reads_what_it_wrote_from_memory(
    store: Store,
) -> None:
    """The simulator's store holds profile changes between chunks (hold_profiles):
    what it wrote is read again without a query, and a change back to a value
    written before is written too."""
    queries: list[str] = []
    store.conn.set_trace_callback(queries.append)
    store.hold_profiles()

    def stored() -> dict[str, Any]:
        (text,) = store.conn.execute("SELECT traits FROM profiles WHERE user_id = 'u1'").fetchone()
        return dict(json.loads(text))

    with store.transaction():
        store.set_traits("u1", {"tier": "gold", "n": 1}, T0)
        store.flush_profiles()
    assert stored() == {"tier": "gold", "n": 1}
    for step, traits in enumerate([{"tier": "silver"}, {"tier": "gold"}, {"n": None}], 1):
        queries.clear()
        with store.transaction():
            store.set_traits("u1", traits, T0 + step)
            profile = store.get_profile("u1")
            store.flush_profiles()
        assert not [q for q in queries if q.startswith("SELECT")], queries
        assert stored() == profile
    assert profile == {"tier": "gold"}


# ---------------------------------------------------------------- cursors


def test_cursors(store: Store) -> None:
    assert store.get_cursor("engine") == 0
    store.set_cursor("engine", 5)
    store.set_cursor("segments", 2)
    store.set_cursor("engine", 9)
    assert (store.get_cursor("engine"), store.get_cursor("segments")) == (9, 2)


# ---------------------------------------------------------------- instances


def test_one_live_instance_per_journey_and_user(store: Store) -> None:
    add_journey(store)
    add_instance(store, "u1", "waiting")
    with pytest.raises(DatabaseError):
        add_instance(store, "u1", "waiting")
    with pytest.raises(DatabaseError):
        add_instance(store, "u1", "active")
    # finished instances do not count; another user or journey is independent
    add_instance(store, "u1", "completed")
    add_instance(store, "u1", "exited")
    add_instance(store, "u2", "waiting")
    add_journey(store, "welcome")
    add_instance(store, "u1", "active", journey="welcome")
    live = store.conn.execute(
        "SELECT count(*) FROM instances WHERE status IN ('active', 'waiting')"
    ).fetchone()[0]
    assert live == 3


def test_instances_need_a_deployed_journey(store: Store) -> None:
    with pytest.raises(DatabaseError, match="FOREIGN KEY"):
        add_instance(store, "u1", journey="never_deployed")


def test_unknown_status_is_refused(store: Store) -> None:
    add_journey(store)
    with pytest.raises(DatabaseError, match="CHECK"):
        add_instance(store, "u1", "sleeping")


# ---------------------------------------------------------------- forgetting


def test_forget_user_removes_every_row_of_the_user(store: Store) -> None:
    add_journey(store)
    store.append_events([track("a", user="u1"), track("b", user="u2"), identify("c", T0)])
    store.set_traits("u2", {"plan": "pro"}, T0)
    for user in ("u1", "u2"):
        instance = add_instance(store, user)
        with store.transaction() as conn:
            conn.execute(
                "INSERT INTO entries (journey_id, user_id, entry_no, entered_at)"
                " VALUES ('cart', ?, 1, ?)",
                (user, T0),
            )
            conn.execute(
                "INSERT INTO outbox (key, instance_id, journey_id, user_id, step, channel,"
                " message, content, status, created_at) VALUES (?, ?, 'cart', ?, '2', 'push',"
                " 'cart_reminder', '{}', 'queued', ?)",
                (f"k-{user}", instance, user, T0),
            )
            conn.execute(
                "INSERT INTO actions (at, user_id, journey_id, step, action)"
                " VALUES (?, ?, 'cart', '1', 'entered')",
                (T0, user),
            )
            conn.execute(
                "INSERT INTO segment_members (user_id, segment, member, since)"
                " VALUES (?, 'buyer', 1, ?)",
                (user, T0),
            )
            conn.execute(
                "INSERT INTO segment_changes (segment, user_id, at, entered)"
                " VALUES ('buyer', ?, ?, 1)",
                (user, T0),
            )
            conn.execute(
                "INSERT INTO deliveries (outbox_key, kind, at, received_at, journey_id,"
                " user_id, channel, provider_event_id) VALUES (?, 'opened', ?, ?, 'cart', ?,"
                " 'push', 'p1')",
                (f"k-{user}", T0, T0, user),
            )

    removed = store.forget_user("u1")

    assert removed == {
        "outbox": 1,
        "instances": 1,
        "entries": 1,
        "actions": 1,
        "events": 2,
        "profiles": 1,
        "segment_members": 1,
        "segment_changes": 1,
        "deliveries": 1,
        "identities": 0,
    }
    for table in (
        "events",
        "profiles",
        "instances",
        "entries",
        "outbox",
        "actions",
        "segment_members",
        "segment_changes",
        "deliveries",
    ):
        users = {r[0] for r in store.conn.execute(f"SELECT user_id FROM {table}")}
        assert users == {"u2"}, table
    assert store.get_profile("u1") == {}
    assert store.get_profile("u2") == {"plan": "pro"}


# ---------------------------------------------------------------- atomicity


def test_a_transaction_that_raises_leaves_nothing(db_path: Path) -> None:
    with Store.open(db_path) as s:
        with pytest.raises(RuntimeError), s.transaction():
            s.append_events([track("m1"), identify("i1", T0, plan="pro")])
            s.set_cursor("engine", 1)
            raise RuntimeError("crash before commit")
        assert s.events_after(0) == []
        assert s.get_profile("u1") == {}
        assert s.get_cursor("engine") == 0
        # the store is usable afterwards
        assert s.append_events([track("m1")])[0] is not None
    with Store.open(db_path) as s:
        assert [e.message_id for e in s.events_after(0)] == ["m1"]


def test_a_nested_block_that_raises_undoes_only_itself(store: Store) -> None:
    with store.transaction():
        store.append_events([track("outer")])
        with pytest.raises(ValueError), store.transaction():
            store.append_events([track("inner")])
            raise ValueError("inner fails")
        store.set_cursor("engine", 1)
    assert [e.message_id for e in store.events_after(0)] == ["outer"]
    assert store.get_cursor("engine") == 1


def test_a_killed_process_commits_nothing(db_path: Path) -> None:
    Store.open(db_path).close()
    script = textwrap.dedent(
        f"""
        import os
        from journeyc.events import parse_event
        from journeyc.store import Store
        s = Store.open({str(db_path)!r})
        s.append_events([parse_event(
            {{"type": "track", "userId": "u", "event": "kept", "messageId": "m0"}}, 1)])
        with s.transaction():
            s.append_events([parse_event(
                {{"type": "track", "userId": "u", "event": "lost", "messageId": "m1"}}, 1)])
            s.set_cursor("engine", 99)
            os._exit(3)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert proc.returncode == 3, proc.stderr.decode()
    with Store.open(db_path) as s:
        assert [e.name for e in s.events_after(0)] == ["kept"]
        assert s.get_cursor("engine") == 0


def test_counts(store: Store) -> None:
    store.append_events([track("m1"), identify("i1", T0, plan="pro")])
    counts = store.counts()
    assert set(counts) == set(TABLES)
    assert (counts["events"], counts["profiles"], counts["instances"]) == (2, 1, 0)


# ---------------------------------------------------------------- the write lock's wait


@contextmanager
def file_lock_held(db_path: Path) -> Iterator[None]:
    """The store's write lock, held as another process would hold it (an open file
    description of its own)."""
    fd = os.open(str(db_path) + LOCK_SUFFIX, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def test_a_writer_waits_a_bounded_time_for_a_held_lock_and_writes_nothing(
    db_path: Path,
) -> None:
    with Store.open(db_path, lock_timeout_s=0.3) as store:
        assert store.lock_timeout_s == 0.3
        with file_lock_held(db_path):
            started = time.monotonic()
            with pytest.raises(StoreBusyError) as info:
                store.append_events([track("m1")])
            waited = time.monotonic() - started
        assert waited >= 0.3  # it waited; the StoreBusyError shows the wait was bounded
        assert "busy" in str(info.value) and info.value.retry_after_s >= 1
        assert isinstance(info.value, StoreError)
        assert store.events_after(0) == []
        store.append_events([track("m1")])  # released: the same write goes through
        assert [e.message_id for e in store.events_after(0)] == ["m1"]


def test_a_writer_starts_soon_after_the_holder_lets_go(db_path: Path) -> None:
    with Store.open(db_path, lock_timeout_s=10) as store:
        released = threading.Event()

        def hold() -> None:
            with file_lock_held(db_path):
                released.wait(5)
                time.sleep(0.2)
            released.set()  # now truly released

        holder = threading.Thread(target=hold)
        holder.start()
        try:
            time.sleep(0.05)
            released.set()
            store.append_events([track("m1")])  # waits ~0.2 s, then goes through
            assert [e.message_id for e in store.events_after(0)] == ["m1"]
        finally:
            holder.join()


def test_a_thread_holding_a_transaction_does_not_hang_the_others(db_path: Path) -> None:
    with Store.open(db_path, lock_timeout_s=0.2) as store:
        inside, leave = threading.Event(), threading.Event()

        def long_transaction() -> None:
            with store.transaction():
                inside.set()
                leave.wait(5)

        holder = threading.Thread(target=long_transaction)
        holder.start()
        try:
            assert inside.wait(5)
            # Raised, not waited out: the holder would let go only after 5 s.
            with pytest.raises(StoreBusyError):
                store.set_cursor("engine", 7)
        finally:
            leave.set()
            holder.join()
        store.set_cursor("engine", 7)
        assert store.get_cursor("engine") == 7


def test_ingest_reports_a_busy_store_and_exits_1(tmp_path: Path, db_path: Path) -> None:
    from click.testing import CliRunner

    from journeyc.cli import main

    Store.open(db_path).close()
    events = tmp_path / "events.jsonl"
    events.write_text(json.dumps({"type": "track", "userId": "u", "event": "e", "messageId": "m"}))
    config = tmp_path / "journeyc.toml"
    config.write_text('[store]\nlock_timeout = "1s"\n')
    args = ["ingest", str(events), "--db", str(db_path), "--config", str(config)]
    with file_lock_held(db_path):  # held all along: exit 1 "busy" proves the bounded wait
        result = CliRunner().invoke(main, args)
    assert result.exit_code == 1, result.output
    assert "the store is busy" in result.output and "load the file again" in result.output
    with Store.open(db_path) as store:
        assert store.events_after(0) == []
    assert CliRunner().invoke(main, args).exit_code == 0
