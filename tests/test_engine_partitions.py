"""The engine's partition mode (Engine.work_on): two workers on one PostgreSQL store,
each on its own partitions, do together exactly what one engine does alone, merges
of users across their partitions included; and a worker whose leases are gone does
nothing."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence

import pytest

from journeyc.engine.actions import Action
from journeyc.engine.core import Engine
from journeyc.engine.deploy import deploy_project, deployed_project
from journeyc.events import Event
from journeyc.store import open_store
from journeyc.store.abc import PartitionedStore, Store
from journeyc.store.partitions import PARTITIONS
from journeyc.store.sqlite import Store as SqliteStore
from tests.engine_helpers import HOUR, MINUTE, compile_files, ms, table_rows, track

T0 = ms("2026-03-02T09:00:00Z")

PROJECT = {
    "ping.journey": """journey ping "Pong an hour after a ping"
  when ping
  entry once

  wait 1h as pause
  send inapp "Pong {{ event.n }}" as pong
""",
    "bought.journey": """journey bought "Thanks at once"
  when bought
  entry always

  send inapp "Thanks" as thanks
""",
}


def alias(previous: str, user: str, at: int, mid: str) -> Event:
    """An alias call: ``previous`` is ``user`` from now on."""
    return Event(mid, user, "alias", "alias", at, {"previousId": previous}, at)


def stream() -> list[Event]:
    """Pings of known and anonymous users; the anonymous ones are then known (an alias
    merges them, often across partitions); purchases after."""
    events: list[Event] = []
    for n in range(40):
        events.append(track(f"u{n:02d}", "ping", T0 + n * 1000, mid=f"p{n}", n=n))
    for n in range(12):
        events.append(track(f"anon{n:02d}", "ping", T0 + n * 1000 + 500, mid=f"a{n}", n=100 + n))
    for n in range(12):
        events.append(alias(f"anon{n:02d}", f"u{n:02d}", T0 + 10 * MINUTE + n, f"m{n}"))
        events.append(track(f"anon{n:02d}", "bought", T0 + 11 * MINUTE + n, mid=f"b{n}"))
    return events


def outcome(actions: Sequence[Action]) -> list[tuple[object, ...]]:
    """What the actions did, in an order that does not depend on who did it."""
    return sorted((a.at_ms, a.user, a.journey, a.step or "", a.action) for a in actions)


def alone(tmp: str) -> tuple[list[tuple[object, ...]], set[str]]:
    """One engine on a SQLite store: the reference."""
    store = SqliteStore.open(f"{tmp}/alone.db")
    try:
        engine = Engine(store, commit_per_batch=True)
        deploy_project(engine, compile_files(PROJECT), T0 - 1)
        store.append_events(stream())
        actions = engine.advance(T0 + 20 * MINUTE)
        actions += engine.advance(T0 + 3 * HOUR)
        keys = {k for (k,) in store.conn.execute("SELECT key FROM outbox")}
        return outcome(actions), keys
    finally:
        store.close()


@pytest.fixture
def two(postgres_url: str) -> Iterator[tuple[Store, Store]]:
    stores = [open_store(postgres_url) for _ in range(2)]
    yield stores[0], stores[1]
    for s in stores:
        s.close()


def worker(store: Store, worker_id: str, parts: list[int], ttl_s: float = 60.0) -> Engine:
    """An engine that works on ``parts``, leased by ``worker_id``."""
    assert isinstance(store, PartitionedStore)
    engine = Engine(store, commit_per_batch=True)
    project = deployed_project(store)
    assert project is not None
    engine.deploy(project, T0 - 1)  # take the deployment, as a worker's poll does
    held = store.leases().acquire(worker_id, parts, ttl_s)
    assert held == sorted(parts)
    engine.work_on(worker_id, held, store.partition_log())
    return engine


def rounds(engines: Sequence[Engine], now: int) -> list[Action]:
    """Advance every engine at ``now`` in turns until none has work left."""
    actions: list[Action] = []
    for _ in range(20):
        got = [e.advance(now) for e in engines]
        if not any(got):
            return actions
        for a in got:
            actions += a
    raise AssertionError("the workers never settled")


def test_two_workers_do_what_one_engine_does(
    two: tuple[Store, Store], tmp_path: pytest.TempPathFactory
) -> None:
    want, want_keys = alone(str(tmp_path))
    one, other = two
    deploy_project(Engine(one), compile_files(PROJECT), T0 - 1)
    evens = [p for p in range(PARTITIONS) if p % 2 == 0]
    odds = [p for p in range(PARTITIONS) if p % 2 == 1]
    w1, w2 = worker(one, "w1", evens), worker(other, "w2", odds)
    one.append_events(stream())
    plog = one.partition_log()  # type: ignore[attr-defined]
    # The barrier matters for a merge by w1 (evens, which runs first) of a user of
    # w2's (odds): w1 must wait until w2 has handled that user's earlier events.
    crossing = [
        n
        for n in range(12)
        if plog.partition_of(f"u{n:02d}") % 2 == 0 and plog.partition_of(f"anon{n:02d}") % 2 == 1
    ]
    assert crossing, "no merge by w1 of a user of w2's partitions: pick other ids"
    actions = rounds([w1, w2], T0 + 20 * MINUTE)
    actions += rounds([w2, w1], T0 + 3 * HOUR)
    assert outcome(actions) == want
    assert {r["key"] for r in table_rows(one, "outbox")} == want_keys


def test_a_worker_whose_leases_are_gone_does_nothing(two: tuple[Store, Store]) -> None:
    one, other = two
    deploy_project(Engine(one), compile_files(PROJECT), T0 - 1)
    everything = list(range(PARTITIONS))
    w1 = worker(one, "w1", everything, ttl_s=0.3)
    time.sleep(0.4)  # its leases expire
    assert other.leases().acquire("w2", everything, 60.0) == everything
    one.append_events(stream())
    assert w1.advance(T0 + 20 * MINUTE) == []
    assert w1.partitions == []
    with one.reading() as reads:
        assert reads.outbox_statuses().get("queued", 0) == 0
    w2 = Engine(other, commit_per_batch=True)
    w2.deploy(compile_files(PROJECT), T0 - 1)
    assert isinstance(other, PartitionedStore)
    w2.work_on("w2", everything, other.partition_log())
    assert w2.advance(T0 + 20 * MINUTE)  # the new holder does the work
