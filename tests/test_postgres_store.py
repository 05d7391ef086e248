"""What the PostgreSQL store does beyond the contract suite: writers meet only where
they write the same rows (no store-wide lock), and appends queue on the log's tail."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from journeyc.store import StoreBusyError, open_store
from journeyc.store.postgres import PostgresStore
from tests.store_contract.calls import T0, track


@pytest.fixture
def stores(postgres_url: str) -> Iterator[tuple[PostgresStore, PostgresStore]]:
    holder = open_store(postgres_url)
    other = open_store(postgres_url, lock_timeout_s=0.2)
    assert isinstance(holder, PostgresStore) and isinstance(other, PostgresStore)
    yield holder, other
    holder.close()
    other.close()


def holding(store: PostgresStore, write: object) -> tuple[threading.Event, threading.Event]:
    """Run ``write()`` in a transaction of another thread and keep it open until the
    second event is set; the first is set once the write is done."""
    held, release = threading.Event(), threading.Event()

    def run() -> None:
        with store.transaction():
            write()  # type: ignore[operator]
            held.set()
            release.wait(30)

    threading.Thread(target=run, daemon=True).start()
    assert held.wait(30)
    return held, release


def test_merges_of_other_users_do_not_wait(stores: tuple[PostgresStore, PostgresStore]) -> None:
    holder, other = stores
    _, release = holding(holder, lambda: holder.set_traits("a", {"x": 1}, T0))
    try:
        other.set_traits("b", {"y": 2}, T0)  # another row: no wait
        other.put_setting("k", "v")
        with pytest.raises(StoreBusyError):
            other.set_traits("a", {"y": 2}, T0)  # the held row
    finally:
        release.set()
    assert other.get_profile("b") == {"y": 2}


def test_appends_queue_on_the_logs_tail(stores: tuple[PostgresStore, PostgresStore]) -> None:
    holder, other = stores
    _, release = holding(holder, lambda: holder.append_events([track("a")]))
    try:
        # Another append waits for the held one to commit (so seqs are committed in
        # order); past the lock timeout it is busy, with nothing written.
        with pytest.raises(StoreBusyError):
            other.append_events([track("b", user="u2")])
        other.set_traits("u3", {"x": 1}, T0)  # a profile merge does not wait
    finally:
        release.set()
    other.lock_timeout_s = 10
    other.append_events([track("b", user="u2")])
    assert [e.message_id for e in other.events_after(0)] == ["a", "b"]
