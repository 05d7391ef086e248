"""The providers' delivery reports (store/abc.py's Deliveries) on every store: the
sends they name, reports kept once whoever records them, in the caller's transaction."""

from __future__ import annotations

import threading

import pytest

from journeyc.store.abc import Store
from journeyc.store.rows import Delivery, Send
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
    stores = [open_again() for _ in range(3)]
    outbox(target, [(f"k{n}", "j", "email", "sent", 1, T0) for n in range(20)])
    reports = [report(f"k{n}", pid=str(n % 3)) for n in range(20)]
    results: list[list[bool]] = []
    start = threading.Barrier(len(stores))

    def record(store: Store, order: list[Delivery]) -> None:
        start.wait()
        with store.transaction():
            new = store.deliveries().record(order)
        results.append([new[order.index(r)] for r in reports])

    threads = [
        threading.Thread(target=record, args=(s, reports[n:] + reports[:n]))
        for n, s in enumerate(stores)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == len(stores)
    # Each report is new to exactly one writer.
    assert [sum(r[i] for r in results) for i in range(len(reports))] == [1] * len(reports)
    assert stores[0].deliveries().counts() == {("opened", "none"): 20}
