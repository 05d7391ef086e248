"""The providers' delivery reports (store/abc.py's Deliveries) on every store: the
sends they name, reports kept once whoever records them, in the caller's transaction."""

from __future__ import annotations

import threading

import psycopg
import pytest

from journeyc.store.abc import Store
from journeyc.store.open import open_store
from journeyc.store.rows import Delivery, Send
from tests.daemon_helpers import poll
from tests.store_contract.calls import T0, alias, track
from tests.store_contract.conftest import Opener
from tests.store_contract.test_report_reads import outbox


def report(key: str, kind: str = "opened", pid: str = "p", channel: str | None = None) -> Delivery:
    return Delivery(key, kind, T0, T0 + 1, "j", "u", channel, pid, {"why": pid})


def test_sends_name_the_user_a_merge_made_of_them(target: str, store: Store) -> None:
    outbox(target, [("a", "j", "email", "sent", 1, T0), ("b", "j", None, "suppressed", 0, T0)])
    assert store.deliveries().sends([]) == {}
    assert store.deliveries().sends(["a", "b", "zz", "a"]) == {
        "a": Send("a", "j", "u", "s", "email", "m", "sent"),
        "b": Send("b", "j", "u", "s", None, "m", "suppressed"),
    }
    store.append_events([track("1", "known"), alias("2", "u", "known")])
    assert store.deliveries().sends(["a"])["a"].user_id == "known"


def test_a_report_is_kept_once(target: str, store: Store) -> None:
    outbox(target, [("a", "j", "email", "sent", 1, T0), ("b", "j", "push", "sent", 1, T0)])
    table = store.deliveries()
    assert table.record([]) == []
    with store.transaction():
        first = table.record(
            [report("a"), report("a"), report("a", pid="q"), report("a", "clicked"), report("b")]
        )
    assert first == [True, False, True, True, True]
    assert table.record([report("a"), report("b", "bounced", channel="push")]) == [False, True]
    assert table.counts() == {("opened", "none"): 3, ("clicked", "none"): 1, ("bounced", "push"): 1}


def test_reports_of_a_transaction_rolled_back_are_not_kept(target: str, store: Store) -> None:
    outbox(target, [("a", "j", "email", "sent", 1, T0)])
    with pytest.raises(RuntimeError), store.transaction():
        assert store.deliveries().record([report("a")]) == [True]
        raise RuntimeError
    assert store.deliveries().counts() == {}
    assert store.deliveries().record([report("a")]) == [True]


def test_writers_at_once_keep_each_report_once(target: str, open_again: Opener) -> None:
    """Three writers record the same reports at once, each batch in another order
    (rotated): each report is new to exactly one of them, and none waits forever on
    another (PostgreSQL: inserted in one order, so overlapping batches cannot
    deadlock)."""
    stores = [open_again() for _ in range(3)]
    n = 300
    outbox(target, [(f"k{i:03}", "j", "email", "sent", 1, T0) for i in range(n)])
    reports = [report(f"k{i:03}", pid=str(i % 3)) for i in range(n)]
    results: list[list[bool]] = []
    errors: list[BaseException] = []
    start = threading.Barrier(len(stores))

    def record(store: Store, order: list[Delivery]) -> None:
        try:
            start.wait()
            with store.transaction():
                new = store.deliveries().record(order)
            results.append([new[order.index(r)] for r in reports])
        except BaseException as exc:
            errors.append(exc)

    step = n // len(stores)
    threads = [
        threading.Thread(target=record, args=(s, reports[k * step :] + reports[: k * step]))
        for k, s in enumerate(stores)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    # Each report is new to exactly one writer.
    assert [sum(r[i] for r in results) for i in range(n)] == [1] * n
    assert stores[0].deliveries().counts() == {("opened", "none"): n}


def test_a_batch_waiting_on_another_cannot_deadlock_it(postgres_url: str) -> None:
    """PostgreSQL: writer A holds k1 uncommitted; B's batch [k2, k1] waits for it; A
    then adds k2. B inserts by message (k1 first), so it waits before taking k2: A
    goes on and commits, B then finds both kept. (Inserted in the batch's order, B
    would hold k2 while waiting for k1, and A, waiting for k2, would deadlock.)"""
    a, b = open_store(postgres_url), open_store(postgres_url)
    try:
        outbox(
            postgres_url, [("k1", "j", "email", "sent", 1, T0), ("k2", "j", "email", "sent", 1, T0)]
        )
        got: list[object] = []

        def second() -> None:
            try:
                with b.transaction():
                    got.append(b.deliveries().record([report("k2"), report("k1")]))
            except Exception as exc:
                got.append(exc)

        with a.transaction():
            assert a.deliveries().record([report("k1")]) == [True]
            waiter = threading.Thread(target=second)
            waiter.start()
            poll(lambda: _waiting_on_a_lock(postgres_url), 10, "B to wait for A's row")
            assert a.deliveries().record([report("k2")]) == [True]
        waiter.join(10)
        assert got == [[False, False]]
    finally:
        a.close()
        b.close()


def _waiting_on_a_lock(url: str) -> bool:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock'"
        ).fetchone()
    return bool(row and row[0])
