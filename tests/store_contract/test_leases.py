"""Partition leases of the engine's workers: one holder per partition; a lease not
renewed expires and another worker takes it, on every store."""

from __future__ import annotations

import threading
import time

from journeyc.store.abc import Store
from tests.store_contract.conftest import Opener

LONG = 60.0  # a time to live no test outlasts


def expire(ttl_s: float) -> None:
    """Let a lease of ``ttl_s`` run out (the store's clock is the wall clock)."""
    time.sleep(ttl_s + 0.05)


def test_a_partition_has_one_holder(store: Store, open_again: Opener) -> None:
    mine, theirs = store.leases(), open_again().leases()
    assert mine.acquire("w1", [2, 0, 1], LONG) == [0, 1, 2]
    assert theirs.acquire("w2", [1, 2, 3], LONG) == [3]
    assert mine.acquire("w1", [0, 3], LONG) == [0]  # its own again (renewed), not w2's
    workers = store.leases().workers()
    assert [(w.worker_id, w.partitions) for w in workers] == [("w1", (0, 1, 2)), ("w2", (3,))]
    for w in workers:
        assert w.heartbeat_ms < w.expires_ms <= w.heartbeat_ms + LONG * 1000


def test_a_released_partition_is_free(store: Store) -> None:
    leases = store.leases()
    leases.acquire("w1", [0, 1], LONG)
    leases.release("w1", [1])
    leases.release("w2", [0])  # not w2's: nothing happens
    assert leases.acquire("w2", [0, 1], LONG) == [1]
    assert leases.renew("w1", [0, 1], LONG) == [0]


def test_an_expired_lease_is_handed_over_and_its_old_holder_learns_it(store: Store) -> None:
    leases = store.leases()
    assert leases.acquire("w1", [0, 1], 0.2) == [0, 1]
    assert leases.renew("w1", [0], 0.2) == [0]
    expire(0.2)
    assert leases.workers() == []
    assert leases.acquire("w2", [0], LONG) == [0]
    assert leases.renew("w1", [0, 1], LONG) == []  # both lost: expired, one taken
    assert [(w.worker_id, w.partitions) for w in leases.workers()] == [("w2", (0,))]


def test_workers_racing_for_partitions_each_get_their_own(store: Store, open_again: Opener) -> None:
    stores = [store, open_again(), open_again()]
    start = threading.Barrier(6)
    got: dict[str, list[int]] = {}

    def race(k: int) -> None:
        start.wait()
        got[f"w{k}"] = stores[k % 3].leases().acquire(f"w{k}", range(16), LONG)

    threads = [threading.Thread(target=race, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    held = [p for ps in got.values() for p in ps]
    assert sorted(held) == list(range(16))  # every partition, each once
    listed = {w.worker_id: list(w.partitions) for w in store.leases().workers()}
    assert listed == {w: ps for w, ps in got.items() if ps}
    assert store.counts()["leases"] == 16
