"""Transactions, busy writers, forgetting and counting, on every store."""

from __future__ import annotations

import threading

import pytest

from journeyc.store.abc import Store
from journeyc.store.errors import StoreBusyError
from tests.store_contract.calls import T0, track
from tests.store_contract.conftest import Opener


class BoomError(Exception):
    pass


def test_a_block_that_raises_leaves_nothing(store: Store) -> None:
    with pytest.raises(BoomError), store.transaction():
        store.append_events([track("a")])
        store.set_traits("u", {"x": 1}, T0)
        store.set_cursor("engine", 5)
        store.put_setting("k", "v")
        raise BoomError
    assert store.events_after(0) == []
    assert store.get_profile("u") == {}
    assert store.get_cursor("engine") == 0
    assert store.get_setting("k") is None


def test_writes_in_a_block_commit_together(store: Store, open_again: Opener) -> None:
    with store.transaction():
        store.append_events([track("a")])
        store.set_cursor("engine", 5)
        with store.transaction():
            store.put_setting("k", "v")
    other = open_again()
    assert [e.message_id for e in other.events_after(0)] == ["a"]
    assert (other.get_cursor("engine"), other.get_setting("k")) == (5, "v")


def test_a_nested_block_that_raises_undoes_only_itself(store: Store) -> None:
    with store.transaction():
        store.set_cursor("outer", 1)
        with pytest.raises(BoomError), store.transaction():
            store.set_cursor("inner", 2)
            store.append_events([track("a")])
            raise BoomError
        store.set_cursor("after", 3)
    assert [store.get_cursor(n) for n in ("outer", "inner", "after")] == [1, 0, 3]
    assert store.events_after(0) == []


def test_a_writer_past_the_lock_timeout_is_busy_and_writes_nothing(
    store: Store, open_again: Opener
) -> None:
    holding = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with store.transaction():
            store.set_traits("u", {"holder": 1}, T0)
            holding.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert holding.wait(30)
        other = open_again(lock_timeout_s=0.2)
        with pytest.raises(StoreBusyError) as info:
            other.set_traits("u", {"waiter": 1}, T0 + 1)
        assert info.value.retry_after_s > 0
        assert str(info.value).startswith(other.path)
    finally:
        release.set()
        holder.join()
    assert store.get_profile("u") == {"holder": 1}
    # once the holder has let go, the same write goes through
    other.set_traits("u", {"waiter": 1}, T0 + 1)
    assert store.get_profile("u") == {"holder": 1, "waiter": 1}


def test_counts_name_every_table(store: Store) -> None:
    store.append_events([track("a"), track("b", user="u2")])
    counts = store.counts()
    assert counts["events"] == 2 and counts["profiles"] == 2
    assert {"outbox", "instances", "cursor", "settings", "identities"} <= set(counts)
