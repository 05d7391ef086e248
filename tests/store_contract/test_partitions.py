"""Several engine workers on one store: the log read by partition, the fence on the
workers' leases, the segment book's rechecks by partition (PostgreSQL's parts; the
SQLite store has no partitions: its book accepts every user only)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from journeyc.store.abc import PartitionedStore, PartitionLog, SegmentBook, Store
from journeyc.store.errors import StoreError
from journeyc.store.partitions import PARTITIONS
from journeyc.store.postgres import PostgresStore
from journeyc.store.rows import SegmentRow, StoredEvent
from tests.store_contract.calls import T0, track

OpenPostgres = Callable[..., PostgresStore]
LONG = 60.0
USERS = [f"user-{i}" for i in range(40)]


def by_partition(log: PartitionLog) -> dict[int, list[str]]:
    """``USERS`` by the partition the store puts them in."""
    parts: dict[int, list[str]] = {}
    for user in USERS:
        parts.setdefault(log.partition_of(user), []).append(user)
    return parts


def ids(events: list[StoredEvent]) -> list[str]:
    return [e.message_id for e in events]


def test_the_postgres_store_is_partitioned_and_sqlite_is_not(store: Store, target: str) -> None:
    assert isinstance(store, PartitionedStore) == target.startswith("postgresql")


def test_partitions_are_in_range_and_spread(open_postgres: OpenPostgres) -> None:
    log = open_postgres().partition_log()
    parts = by_partition(log)
    assert all(0 <= p < PARTITIONS for p in parts)
    assert len(parts) > 10  # 40 users fill many of the 64
    assert log.partition_of("user-1") == log.partition_of("user-1")


def test_events_after_reads_only_the_given_partitions_in_log_order(
    open_postgres: OpenPostgres,
) -> None:
    store = open_postgres()
    log = store.partition_log()
    parts = by_partition(log)
    store.append_events([track(f"m{i}", user=USERS[i % 40], at=T0 + i) for i in range(200)])
    mine = sorted(parts)[:3]
    theirs = {u for p in mine for u in parts[p]}
    expected = [e for e in store.events_after(0) if e.user_id in theirs]
    assert 0 < len(expected) < 200
    assert log.events_after(mine) == expected
    assert log.events_after(mine, limit=7) == expected[:7]
    assert log.events_after(range(PARTITIONS)) == store.events_after(0)  # all, each once
    assert log.events_after([]) == []
    with pytest.raises(ValueError, match="0 to 63"):
        log.events_after([PARTITIONS])


def two_partitions(store: PostgresStore) -> tuple[PartitionLog, int, int, dict[int, list[str]]]:
    """Ten events of one user of each of two partitions, taking turns; the partition
    log, the two partitions, and ``USERS`` by partition."""
    log = store.partition_log()
    parts = by_partition(log)
    a, b = sorted(parts)[:2]
    store.append_events([track(f"m{i}", user=parts[(a, b)[i % 2]][0]) for i in range(10)])
    return log, a, b, parts


def test_each_partition_reads_on_from_its_own_cursor(open_postgres: OpenPostgres) -> None:
    store = open_postgres()
    log, a, b, parts = two_partitions(store)
    events = log.events_after([a, b])
    assert len(events) == 10
    log.advance([a], events[5].seq)
    after = [e for e in events if e.user_id in parts[b] or e.seq > events[5].seq]
    assert log.events_after([a, b]) == after
    log.advance([a], events[0].seq)  # never back
    assert log.events_after([a, b]) == after
    assert store.get_cursor(f"engine/{a}") == events[5].seq
    log.advance([a, b], events[-1].seq)
    assert log.events_after([a, b]) == []


def test_a_partition_without_a_cursor_starts_at_the_engines(open_postgres: OpenPostgres) -> None:
    # A store one engine ran moves to several workers without replaying.
    store = open_postgres()
    log, a, b, parts = two_partitions(store)
    events = store.events_after(0)
    store.set_cursor("engine", events[6].seq)
    assert log.events_after([a, b]) == events[7:]
    log.advance([b], events[2].seq)  # behind the engine's: starts there, never behind
    assert store.get_cursor(f"engine/{b}") == events[6].seq
    store.set_cursor(f"engine/{a}", events[0].seq)  # its own, behind the engine's, wins
    starts = {parts[a][0]: events[0].seq, parts[b][0]: events[6].seq}
    assert log.events_after([a, b]) == [e for e in events if e.seq > starts[e.user_id]]


@pytest.fixture
def pg_store(open_postgres: OpenPostgres) -> PostgresStore:
    """One PostgreSQL store for all the examples of a property test."""
    return open_postgres()


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    users=st.lists(st.sampled_from(USERS[:12]), min_size=1, max_size=30),
    picks=st.lists(st.integers(0, 11), max_size=5),
    cursors=st.dictionaries(st.integers(0, 11), st.integers(0, 30), max_size=4),
    engine=st.none() | st.integers(0, 30),
    limit=st.integers(1, 40),
    advance_to=st.integers(0, 30),
)
def test_events_after_is_the_logs_events_of_those_partitions_past_their_cursors(
    postgres_url: str,
    pg_store: PostgresStore,
    users: list[str],
    picks: list[int],
    cursors: dict[int, int],
    engine: int | None,
    limit: int,
    advance_to: int,
) -> None:
    # Positions in the example's log stand for seqs (an example's log is new, its seqs
    # are not): cursor k is the seq of the k-th event (0: before the first).
    store = pg_store
    with psycopg.connect(postgres_url) as conn:
        conn.execute("TRUNCATE events, cursor")
    store.append_events([track(f"m{i}", user=u) for i, u in enumerate(users)])
    log = store.partition_log()
    logged = store.events_after(0)
    seq = [0] + [e.seq for e in logged] + [logged[-1].seq + 100] * 30
    part_of = {u: log.partition_of(u) for u in USERS[:12]}
    parts = [part_of[USERS[k]] for k in picks]
    for k, at in cursors.items():
        store.set_cursor(f"engine/{part_of[USERS[k]]}", seq[at])
    if engine is not None:
        store.set_cursor("engine", seq[engine])
    own = {part_of[USERS[k]]: seq[at] for k, at in cursors.items()}  # the last one set wins

    def start(p: int) -> int:
        return own.get(p, seq[engine] if engine is not None else 0)

    def model() -> list[StoredEvent]:
        return [
            e for e in logged if part_of[e.user_id] in parts and e.seq > start(part_of[e.user_id])
        ]

    assert log.events_after(parts, limit) == model()[:limit]
    log.advance(parts, seq[advance_to])
    for p in parts:
        own[p] = max(start(p), seq[advance_to])
    assert log.events_after(parts, 1000) == model()


# -- the fence ---------------------------------------------------------------------


def expire(ttl_s: float) -> None:
    """Let a lease of ``ttl_s`` run out (the store's clock is the wall clock)."""
    time.sleep(ttl_s + 0.05)


def test_the_fence_answers_the_partitions_still_held(open_postgres: OpenPostgres) -> None:
    store = open_postgres()
    leases, log = store.leases(), store.partition_log()
    leases.acquire("w1", [0, 1], LONG)
    leases.acquire("w1", [2], 0.2)
    leases.acquire("w2", [3], LONG)
    expire(0.2)
    with store.transaction():
        assert log.fence("w1", [3, 2, 1, 0, 4]) == [0, 1]
        assert log.fence("w2", [0, 1, 2, 3]) == [3]
        assert log.fence("w3", [0, 1, 2, 3]) == []
    assert log.fence("w1", []) == []


def lock_waiters(url: str) -> int:
    """How many sessions of the database wait for a lock now."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_a_takeover_waits_for_the_fenced_batch_to_commit(
    postgres_url: str, open_postgres: OpenPostgres
) -> None:
    worker, other = open_postgres(), open_postgres()
    assert worker.leases().acquire("w1", [5, 6], 1.0) == [5, 6]
    taken: list[int] = []
    takeover = threading.Thread(
        target=lambda: taken.extend(other.leases().acquire("w2", [5], LONG))
    )
    with worker.transaction():
        assert worker.partition_log().fence("w1", [5, 6]) == [5, 6]
        worker.set_cursor("batch", 1)  # the batch's writes
        expire(1.0)
        takeover.start()
        deadline = time.monotonic() + 30
        while lock_waiters(postgres_url) == 0:  # the takeover queues on the lease row
            assert time.monotonic() < deadline, "the takeover never waited"
            time.sleep(0.02)
        assert takeover.is_alive() and taken == []
        assert other.leases().workers() == []  # reads do not wait: both expired
    takeover.join(30)
    assert taken == [5]
    assert worker.get_cursor("batch") == 1
    assert [(w.worker_id, w.partitions) for w in other.leases().workers()] == [("w2", (5,))]
    with worker.transaction():
        assert worker.partition_log().fence("w1", [5, 6]) == []  # it works on nothing now


def test_an_expired_lease_is_not_fenced_and_is_taken_over_at_once(
    open_postgres: OpenPostgres,
) -> None:
    worker, other = open_postgres(), open_postgres(lock_timeout_s=2.0)
    worker.leases().acquire("w1", [7], 0.2)
    expire(0.2)
    with worker.transaction():
        assert worker.partition_log().fence("w1", [7]) == []
        # Were the row locked, this would wait and fail after the 2 s lock timeout.
        assert other.leases().acquire("w2", [7], LONG) == [7]


# -- segment rechecks by partition ---------------------------------------------------


def recheck_rows(book: SegmentBook, users: list[str]) -> None:
    """A row per user in segment ``s``, rechecked at T0 + its position."""
    for i, user in enumerate(users):
        book.write(user, [("s", SegmentRow(True, T0, T0 + i))], [], T0)


def test_every_store_rechecks_every_user_and_sqlite_has_no_partitions(store: Store) -> None:
    book = store.segment_book()
    recheck_rows(book, USERS[:5])
    book.only(None)
    assert book.due(T0 + 2, 10) == [(u, "s") for u in USERS[:3]]
    assert book.next_recheck() == T0
    if not isinstance(store, PartitionedStore):
        with pytest.raises(StoreError, match="no partitions"):
            book.only([0])


def test_the_segment_book_rechecks_the_partitions_it_is_given(
    open_postgres: OpenPostgres,
) -> None:
    store = open_postgres()
    parts = by_partition(store.partition_log())
    book = store.segment_book()
    recheck_rows(book, USERS)
    mine = sorted(parts)[1:4]
    theirs = [u for u in USERS if u in {v for p in mine for v in parts[p]}]
    book.only(mine)
    assert book.due(T0 + 100, 100) == [(u, "s") for u in theirs]
    assert book.due(T0 + 100, 2) == [(u, "s") for u in theirs[:2]]
    assert book.next_recheck() == T0 + USERS.index(theirs[0])
    book.only([p for p in range(PARTITIONS) if p not in parts])
    assert book.due(T0 + 100, 100) == []
    assert book.next_recheck() is None
    book.only(None)
    assert len(book.due(T0 + 100, 100)) == 40
    book.only(mine)
    with pytest.raises(StoreError, match="cannot hold"):
        book.hold()
    book.only(None)
    book.hold()
    with pytest.raises(StoreError, match="every partition"):
        book.only(mine)


def test_workers_of_disjoint_partitions_read_the_log_once_while_it_grows(
    open_postgres: OpenPostgres,
) -> None:
    # Two workers lease half the partitions each and read as engines would (fence,
    # read, advance in one transaction; wait for word of appends) while a third store
    # appends: together they read every event once, each its own in log order.
    writer = open_postgres()
    done = threading.Event()
    read: dict[str, list[StoredEvent]] = {"w0": [], "w1": []}

    def work(worker_id: str, half: int) -> None:
        store = open_postgres()
        log, wakeups = store.partition_log(), store.event_wakeups()
        parts = store.leases().acquire(worker_id, range(half, PARTITIONS, 2), LONG)
        try:
            while True:
                finished = done.is_set()  # before the read: a last read follows it
                with store.transaction():
                    held = log.fence(worker_id, parts)
                    events = log.events_after(held, 25)
                    if events:
                        log.advance(held, events[-1].seq)
                read[worker_id] += events
                if not events and finished:
                    return
                if not events:
                    wakeups.wait(0.5)
        finally:
            wakeups.close()

    workers = [threading.Thread(target=work, args=(f"w{k}", k)) for k in (0, 1)]
    for t in workers:
        t.start()
    for call in range(30):
        writer.append_events(
            [track(f"m{call}-{i}", user=USERS[(call * 7 + i) % 40]) for i in range(10)]
        )
    done.set()
    for t in workers:
        t.join(60)
    assert not any(t.is_alive() for t in workers)
    logged = writer.events_after(0)
    assert len(logged) == 300
    assert sorted(ids(read["w0"] + read["w1"])) == sorted(ids(logged))  # each once
    log = writer.partition_log()
    for k, events in enumerate(read.values()):
        assert [e.seq for e in events] == sorted(e.seq for e in events)
        assert {log.partition_of(e.user_id) % 2 for e in events} <= {k}
