"""The store-wide lock for work one process of a cluster does at a time (retention,
deploys): on PostgreSQL one holder at a time; SQLite's store, which one daemon owns,
always grants it."""

from __future__ import annotations

import contextlib
import threading
import time

from journeyc.store.abc import Store
from journeyc.store.postgres.cluster_lock import lock_key
from tests.store_contract.conftest import Opener


def test_a_cluster_lock_has_one_holder(store: Store, open_again: Opener, target: str) -> None:
    other = open_again()
    with store.cluster_lock("retention") as mine:
        assert mine is True
        with other.cluster_lock("retention") as theirs:
            # SQLite: one daemon per store, nothing to exclude.
            assert theirs is (not target.startswith("postgresql"))
        with other.cluster_lock("deploy") as another:
            assert another is True
    with other.cluster_lock("retention") as theirs:
        assert theirs is True  # freed at the end of the block


def test_a_cluster_lock_is_not_taken_twice_by_one_store(store: Store, target: str) -> None:
    with store.cluster_lock("retention") as first, store.cluster_lock("retention") as second:
        assert first is True
        assert second is (not target.startswith("postgresql"))


def test_a_cluster_lock_is_freed_when_its_store_closes(store: Store, open_again: Opener) -> None:
    with contextlib.ExitStack() as held:
        assert held.enter_context(store.cluster_lock("retention")) is True
        store.close()
        with open_again().cluster_lock("retention") as theirs:
            assert theirs is True
    # leaving the closed store's block raised nothing


def test_a_cluster_lock_waited_for_is_taken_once_freed(
    store: Store, open_again: Opener, target: str
) -> None:
    other = open_again()
    pg = target.startswith("postgresql")
    with store.cluster_lock("deploy") as mine:
        assert mine is True
        started = time.monotonic()
        with other.cluster_lock("deploy", wait_s=0.2) as theirs:
            assert theirs is (not pg)  # PostgreSQL: still held past the wait
        assert not pg or time.monotonic() - started >= 0.2
    # Freed while the other waits: taken then.
    held = store.cluster_lock("deploy")
    assert held.__enter__() is True
    threading.Timer(0.2, held.__exit__, (None, None, None)).start()
    with other.cluster_lock("deploy", wait_s=10) as theirs:
        assert theirs is True


def test_a_lock_key_is_stable_and_names_differ() -> None:
    # Every process and version computes the same key for a name (a journeyc that
    # computed another would take the lock beside an older one's holder).
    assert lock_key("retention") == 7828282715818812582
    assert lock_key("retention") != lock_key("deploy")
    assert -(2**63) <= lock_key("deploy") < 2**63
