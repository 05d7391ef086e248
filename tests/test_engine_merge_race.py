"""An identity merge racing a timer, with two workers on one PostgreSQL store.

Worker 1 owns the known user A's partition, worker 2 the anonymous user B's. An alias
event makes B into A: worker 1 moves B's instances, entries and sends into A (the
engine's ``merge``). Meanwhile worker 2 may be running B's due timers: its ``due()``
read B's instances, and it writes them back at the end of its batch. The tests force
each interleaving of the two transactions and check that the outcome is one a single
engine gives (run on SQLite in one of the two orders): every timer fires once, no
instance is lost or left behind, and the sends and entries end up A's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from journeyc.engine.actions import Action
from journeyc.engine.core import Engine
from journeyc.engine.deploy import deploy_project
from journeyc.events import Event
from journeyc.store import open_store
from journeyc.store.abc import PartitionedStore, Store
from journeyc.store.errors import StoreBusyError
from journeyc.store.partitions import PARTITIONS
from journeyc.store.postgres import PostgresStore
from journeyc.store.sqlite import Store as SqliteStore
from tests.engine_helpers import DAY, HOUR, MINUTE, compile_files, table_rows, track
from tests.test_engine_partitions import PROJECT as PARTITIONS_PROJECT
from tests.test_engine_partitions import T0, alias, outcome, rounds, worker

PROJECT = {
    # The timer ends the instance: the worker deletes its row.
    "ping.journey": PARTITIONS_PROJECT["ping.journey"],
    # The timer moves the instance to a second wait: the worker updates its row.
    "nudge.journey": """journey nudge "Two nudges"
  when ping
  entry once

  wait 1h as first_wait
  send inapp "First" as first
  wait 1d as second_wait
  send inapp "Second" as second
""",
}

CLOCK = [T0 + MINUTE, T0 + 31 * MINUTE]  # when the pings are handled: four instances wait
ALIAS_AT = T0 + HOUR + MINUTE
NOW = T0 + HOUR + 5 * MINUTE  # B's timers (T0 + 1h01) are due, A's (T0 + 1h31) not
END = T0 + 2 * DAY  # every wait is over
WAIT_S = 30.0  # a bound on every wait for another thread: a hang fails, never blocks


def users(store: Store) -> tuple[str, str]:
    """A known user and an anonymous one in different partitions."""
    assert isinstance(store, PartitionedStore)
    plog = store.partition_log()
    known = "known-0"
    for n in range(100):
        anon = f"anon-{n}"
        if plog.partition_of(anon) != plog.partition_of(known):
            return known, anon
    raise AssertionError("no anonymous id outside the known user's partition")


def pings(known: str, anon: str) -> list[list[Event]]:
    """B pings first, A half an hour later, each handled when it comes (at
    :data:`CLOCK`): B's instances entered first, so where both users are in a
    journey the merge keeps B's."""
    return [
        [track(anon, "ping", T0, mid="b-ping", n=1)],
        [track(known, "ping", T0 + 30 * MINUTE, mid="a-ping", n=2)],
    ]


@dataclass
class Final:
    """What a run did and left, comparable between SQLite and PostgreSQL."""

    actions: list[tuple[object, ...]]
    outbox: list[tuple[str, str]]  # (key, user)
    entries: list[tuple[str, str, int, int]]  # (journey, user, entry_no, entered_at)
    live_at_now: list[tuple[object, ...]]  # instances after the race, at NOW
    live_at_end: list[tuple[object, ...]]


def live(store: Store) -> list[tuple[object, ...]]:
    """The live instances: (journey, user, entry_no, node, wake_at)."""
    return sorted(
        (r["journey_id"], r["user_id"], r["entry_no"], r["node"], r["wake_at"])
        for r in table_rows(store, "instances")
    )


def final(store: Store, actions: list[Action], live_at_now: list[tuple[object, ...]]) -> Final:
    """The run's actions and the rows it left."""
    return Final(
        outcome(actions),
        sorted((r["key"], r["user_id"]) for r in table_rows(store, "outbox")),
        sorted(
            (r["journey_id"], r["user_id"], r["entry_no"], r["entered_at"])
            for r in table_rows(store, "entries")
        ),
        live_at_now,
        live(store),
    )


def reference(tmp: str, known: str, anon: str, *, timers_first: bool) -> Final:
    """One engine alone on SQLite: the alias handled before B's timers run (what
    one engine does when both are due) or after (when it ran before the alias)."""
    store = SqliteStore.open(f"{tmp}/alone.db")
    try:
        engine = Engine(store, commit_per_batch=True)
        deploy_project(engine, compile_files(PROJECT), T0 - 1)
        actions = []
        for events, at in zip(pings(known, anon), CLOCK, strict=True):
            store.append_events(events)
            actions += engine.advance(at)
        if timers_first:
            actions += engine.advance(NOW)
        store.append_events([alias(anon, known, ALIAS_AT, "merge")])
        actions += engine.advance(NOW)
        at_now = live(store)
        actions += engine.advance(END)
        return final(store, actions, at_now)
    finally:
        store.close()


@dataclass
class Run:
    """An engine's ``advance`` in a thread of its own: what it returned or raised."""

    engine: Engine
    now: int
    actions: list[Action] = field(default_factory=list)
    error: BaseException | None = None
    thread: threading.Thread | None = None

    def start(self) -> Run:
        def target() -> None:
            try:
                self.actions = self.engine.advance(self.now)
            except BaseException as exc:  # handed to the test's thread
                self.error = exc

        self.thread = threading.Thread(target=target, daemon=True)
        self.thread.start()
        return self

    def join(self) -> Run:
        assert self.thread is not None
        self.thread.join(WAIT_S)
        assert not self.thread.is_alive(), "a worker hung (a deadlock the database missed?)"
        return self


def pause_after(
    monkeypatch: pytest.MonkeyPatch, target: object, name: str
) -> tuple[threading.Event, threading.Event]:
    """Make the first call of ``target.name`` that returns other than an empty list
    (``due()`` with timers due; ``log_actions()``, which returns None) wait, once
    done, until the test says go: (reached, go)."""
    reached, go = threading.Event(), threading.Event()
    original: Callable[..., Any] = getattr(target, name)

    def paused(*args: Any, **kwargs: Any) -> Any:
        got = original(*args, **kwargs)
        if not reached.is_set() and (got or got is None):
            reached.set()
            assert go.wait(WAIT_S), "the test never let the worker go on"
        return got

    monkeypatch.setattr(target, name, paused)
    return reached, go


def wait_for_lock_wait(store: Store) -> None:
    """Return once a backend of the store's database waits for a row lock (the other
    worker's transaction holds it)."""
    assert isinstance(store, PostgresStore)
    for _ in range(int(WAIT_S / 0.01)):
        with store.connection() as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock'"
            ).fetchone()
        if row is not None and row[0]:
            return
        time.sleep(0.01)
    raise AssertionError("no worker ever waited for the other's row lock")


def hold_then_race(
    monkeypatch: pytest.MonkeyPatch, store: Store, holder: Engine, other: Engine
) -> tuple[Run, Run]:
    """``holder`` runs at NOW until its first batch has written its rows and stops
    before it commits; ``other`` runs until it waits for one of those rows; then
    ``holder`` goes on and both finish: (holder's run, other's run)."""
    written, go = pause_after(monkeypatch, holder.rt, "log_actions")
    first = Run(holder, NOW).start()
    assert written.wait(WAIT_S)
    second = Run(other, NOW).start()
    wait_for_lock_wait(store)
    go.set()
    return first.join(), second.join()


@dataclass
class Cluster:
    """Two workers on one PostgreSQL store, set up up to the race."""

    w1: Engine  # A's partition (and every other but B's)
    w2: Engine  # B's partition only
    store: Store
    known: str
    anon: str
    actions: list[Action]


@pytest.fixture
def cluster(postgres_url: str) -> Iterator[Cluster]:
    stores = [open_store(postgres_url) for _ in range(3)]
    one, other, watch = stores
    deploy_project(Engine(one), compile_files(PROJECT), T0 - 1)
    known, anon = users(one)
    assert isinstance(one, PartitionedStore)
    b_part = one.partition_log().partition_of(anon)
    w1 = worker(one, "w1", [p for p in range(PARTITIONS) if p != b_part])
    w2 = worker(other, "w2", [b_part])
    actions = []
    for events, at in zip(pings(known, anon), CLOCK, strict=True):
        one.append_events(events)
        actions += rounds([w1, w2], at)
    assert len(table_rows(one, "instances")) == 4
    one.append_events([alias(anon, known, ALIAS_AT, "merge")])
    yield Cluster(w1, w2, watch, known, anon, actions)
    for s in stores:
        s.close()


def finish(c: Cluster, *runs: Run) -> Final:
    """Both workers' actions of the race, then every wait run out."""
    actions = list(c.actions)
    for run in runs:
        actions += run.actions
    actions += rounds([c.w1, c.w2], NOW)
    at_now = live(c.store)
    actions += rounds([c.w1, c.w2], END)
    return final(c.store, actions, at_now)


def assert_once_each(got: Final) -> None:
    """Each timer fired once: here no two instances' timers run at one instant (B's
    at NOW, A's half an hour later), so two sends of one journey's step at one time
    are one timer fired twice (once as B's, once as A's); and every send has one
    outbox row."""
    sends = [a for a in got.actions if a[4] == "send"]
    assert len(sends) == len({(a[2], a[3], a[0]) for a in sends}), sends
    assert len(got.outbox) == len(sends)


@pytest.mark.parametrize("merge_batches", [1, None], ids=["merge-only", "merge-and-timers"])
def test_a_merge_committed_while_the_timers_run(
    cluster: Cluster,
    tmp_path: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    merge_batches: int | None,
) -> None:
    """Worker 2 has read B's due instances; worker 1 merges B into A and commits
    (and, with ``merge-and-timers``, runs them as A's) before worker 2 writes them
    back. Worker 2's batch must not write an instance that moved: it fails, nothing
    of it is written, and its retry finds nothing of B to run. The outcome: the
    alias first, as one engine does when both are due."""
    c = cluster
    read, go = pause_after(monkeypatch, c.w2.rt, "due")
    timers = Run(c.w2, NOW).start()
    assert read.wait(WAIT_S)
    merged = c.w1.advance(NOW, max_batches=merge_batches)
    assert any(a.action == "exit" for a in merged)  # A's own instances exit, merged
    go.set()
    timers.join()
    got = finish(c, timers, Run(c.w1, NOW, merged))
    assert_once_each(got)
    assert got == reference(str(tmp_path), c.known, c.anon, timers_first=False)
    assert isinstance(timers.error, StoreBusyError), timers.error  # a plain retry


def test_timers_committed_while_the_merge_waits(
    cluster: Cluster, tmp_path: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Worker 2 has run B's timers and written their rows, not committed yet; worker
    1's merge waits for those rows, then merges what worker 2 left: B's ended
    instance no longer counts, so A's own instance of that journey goes on. The
    outcome: B's timers first, then the alias."""
    c = cluster
    timers, merge = hold_then_race(monkeypatch, c.store, c.w2, c.w1)
    assert timers.error is None and merge.error is None, (timers.error, merge.error)
    got = finish(c, timers, merge)
    assert_once_each(got)
    assert got == reference(str(tmp_path), c.known, c.anon, timers_first=True)


def test_timers_written_while_the_merge_holds_the_rows(
    cluster: Cluster, tmp_path: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Worker 1 has merged, not committed yet; worker 2 reads B's instances as they
    were and runs them; its writes wait for worker 1's rows, then find them moved:
    its batch fails and its retry finds nothing of B to run. The outcome: the alias
    first."""
    c = cluster
    merge, timers = hold_then_race(monkeypatch, c.store, c.w1, c.w2)
    assert merge.error is None, merge.error
    got = finish(c, timers, merge)
    assert_once_each(got)
    assert got == reference(str(tmp_path), c.known, c.anon, timers_first=False)
    assert isinstance(timers.error, StoreBusyError), timers.error
