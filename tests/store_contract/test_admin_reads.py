"""The admin reads (one snapshot per block) and the daemon's upkeep, on every store."""

from __future__ import annotations

import time

from journeyc.store.abc import Failure, Store
from tests.store_contract.calls import alias, identify, read_rows, track, write_rows
from tests.store_contract.test_outbox import T, claim, ids, queue, state


def test_reads_of_a_block_see_one_snapshot(store: Store) -> None:
    store.append_events([track("a"), identify("b", plan="pro"), alias("c", "anon", "u1")])
    store.set_cursor("engine", 2)
    with store.reading() as r:
        r.ping()
        assert (r.count_events(), r.count_profiles(), r.cursor("engine")) == (3, 1, 2)
        last = r.last_seq()
        store.append_events([track("d", user="u2")])  # committed after the block began
        assert (r.count_events(), r.last_seq(), r.count_profiles()) == (3, last, 1)
        assert r.traits("u1") == {"plan": "pro"} and r.traits("nobody") is None
        assert r.canonical_user("anon") == "u1" and r.canonical_user("u1") == "u1"
        assert r.has_events("u1") and not r.has_events("anon")
    with store.reading() as r:
        assert r.count_events() == 4 and r.has_events("u2")


def test_outbox_reads(target: str, store: Store) -> None:
    queue(target, ("a", "inapp", T), ("b", "email", T), ("c", "email", T), ("d", None, T))
    n = ids(target)
    claim(store, "w", T)
    box = store.outbox()
    with store.transaction():
        box.mark_sent(T + 3, [n["a"]])
        box.fail([Failure(1, "bounced", n["b"])])
    with store.reading() as r:
        assert r.outbox_statuses() == {"sent": 1, "failed": 1, "queued": 2}
        assert r.backlog() == 2
        assert [f.key for f in r.recent_failures(10)] == ["b"]
        assert r.recent_failures(10)[0].error == "bounced"
        assert [(m.message, m.content, m.sent_at) for m in r.inbox("u", 10)] == [
            ("m", {"body": "hi"}, T + 3)
        ]
        assert r.sends_per_channel() == [
            ("email", "failed", 1),
            ("email", "queued", 1),
            ("inapp", "sent", 1),
            ("none", "queued", 1),
        ]


def test_upkeep_removes_what_retention_lets_go(target: str, store: Store) -> None:
    queue(target, ("old", "email", T), ("new", "email", T), ("kept", "email", T))
    n = ids(target)
    claim(store, "w", T)
    with store.transaction():
        store.outbox().mark_sent(T + 10, [n["old"]])
        store.outbox().mark_sent(T + 90, [n["new"]])
    upkeep = store.upkeep()
    try:
        upkeep.defer_checkpoints(10_000)
        assert upkeep.remove_old(T + 50) == (1, 0)
        upkeep.checkpoint()
    finally:
        upkeep.close()
    assert sorted(state(target)) == ["kept", "new"]


def test_statistics_are_refreshed_once_a_table_grew(target: str, store: Store) -> None:
    """A young PostgreSQL store's tables are analyzed once they grew past the
    threshold (their prepared plans are made again from row counts, not from the
    empty table), once; SQLite's planner needs nothing."""
    upkeep = store.upkeep()
    try:
        assert upkeep.refresh_statistics() == []  # nothing grew yet
        store.append_events([track(f"e{n}", user=f"u{n}") for n in range(1_000)])
        if not target.startswith("postgresql"):
            assert upkeep.refresh_statistics() == []
            return
        analyzed: list[str] = []
        deadline = time.monotonic() + 20  # the server publishes row counts within ~1 s
        while "events" not in analyzed and time.monotonic() < deadline:
            analyzed += upkeep.refresh_statistics()
            time.sleep(0.2)
        assert "events" in analyzed and "profiles" in analyzed
        assert "outbox" not in analyzed  # unchanged tables are left alone
        assert upkeep.refresh_statistics() == []  # fresh now
        rows = read_rows(target, "SELECT reltuples FROM pg_class WHERE relname = 'events'")
        assert rows == [(1_000,)]
    finally:
        upkeep.close()


def test_cohorts_and_sends_in_sqlites_order(target: str, store: Store) -> None:
    """Text by code point, no arm first (PostgreSQL sorts NULL last by default)."""
    write_rows(
        target,
        "INSERT INTO entries (journey_id, user_id, entry_no, entered_at, goal_at, arm, holdout)"
        " VALUES (?, ?, 1, 0, ?, ?, ?)",
        [
            ("j", "a", None, "b", False),
            ("j", "b", 5, None, False),
            ("j", "c", None, "B", False),
            ("j", "d", None, "b", True),
            ("J", "e", None, None, False),
        ],
    )
    queue(target, ("k1", "sms", T), ("k2", "Email", T), ("k3", None, T), ("k4", "email", T))
    with store.reading() as r:
        cohorts = r.entry_cohorts()
        assert cohorts == [
            ("J", None, False, 1, 0),
            ("j", None, False, 1, 1),
            ("j", "B", False, 1, 0),
            ("j", "b", False, 1, 0),
            ("j", None, True, 1, 0),
        ]
        assert [c for c, _, _ in r.sends_per_channel()] == ["Email", "email", "none", "sms"]
    assert store.entry_cohorts() == cohorts
