"""The outbox as the dispatchers work it: unique keys, exclusive claims and leases,
outcomes only on queued rows, reclaiming dead workers' rows, on every store.

The engine queues rows in its unit of work; here they are written with the database's
own driver (``queue``), and read back the same way (``state``)."""

from __future__ import annotations

import itertools
import sqlite3
import threading
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from journeyc.store.abc import Failure, PutOff, Retry, Store
from journeyc.store.open import is_url
from journeyc.store.postgres import PostgresStore
from journeyc.store.postgres.outbox import CLAIM_LANES
from journeyc.store.sqlite.outbox import CLAIM_DUE
from tests.store_contract.conftest import Opener

T = 1_700_000_000_000
COLS = (
    "key, journey_id, user_id, step, channel, message, content, status, next_attempt_at, created_at"
)


def queue(target: str, *rows: tuple[str, str | None, int]) -> None:
    """Queue ``(key, channel, due at)`` rows (journey ``j``, user ``u``, step ``s``)."""
    values = [
        (k, "j", "u", "s", ch, "m", '{"body": "hi"}', "queued", due, T) for k, ch, due in rows
    ]
    if is_url(target):
        with psycopg.connect(target) as conn:
            conn.cursor().executemany(
                f"INSERT INTO outbox ({COLS})"
                " VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s, %s)",
                values,
            )
    else:
        with sqlite3.connect(target) as conn:
            conn.executemany(
                f"INSERT INTO outbox ({COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", values
            )


def state(target: str) -> dict[str, tuple[Any, ...]]:
    """key → (status, attempts, next_attempt_at, claimed_by, sent_at, error)."""
    query = "SELECT key, status, attempts, next_attempt_at, claimed_by, sent_at, error FROM outbox"
    if is_url(target):
        with psycopg.connect(target) as conn:
            rows = conn.execute(query).fetchall()
    else:
        with sqlite3.connect(target) as conn:
            rows = conn.execute(query).fetchall()
    return {r[0]: tuple(r[1:]) for r in rows}


def ids(target: str) -> dict[str, int]:
    query = "SELECT key, id FROM outbox"
    if is_url(target):
        with psycopg.connect(target) as conn:
            return dict(conn.execute(query).fetchall())
    with sqlite3.connect(target) as conn:
        return dict(conn.execute(query).fetchall())


def claim(
    store: Store,
    worker: str,
    now: int,
    limit: int = 100,
    until: int = T + 60_000,
    channel: str = "email",
) -> list[str]:
    """``worker``'s claim of ``channel``'s rows due at ``now``: their keys."""
    with store.transaction():
        return [r.key for r in store.outbox().claim(channel, now, limit, worker, until)]


def test_a_key_is_queued_once(target: str, store: Store) -> None:
    queue(target, ("k1", "email", T))
    with pytest.raises((sqlite3.IntegrityError, psycopg.errors.UniqueViolation)):
        queue(target, ("k1", "sms", T + 5))
    assert list(state(target)) == ["k1"]
    assert [r.channel for r in store.outbox().claim("email", T, 10, "w", T + 1)] == ["email"]


def test_a_claim_leases_the_earliest_due_rows_to_one_worker(target: str, store: Store) -> None:
    queue(
        target,
        *[(f"k{i}", "email", T + i) for i in range(6)],
        ("later", "email", T + 99),
        ("sms", "sms", T),
    )
    assert claim(store, "w1", T + 10, limit=4) == ["k0", "k1", "k2", "k3"]
    assert claim(store, "w2", T + 10) == ["k4", "k5"]  # w1's are leased: not due
    assert claim(store, "w2", T + 10) == []
    row = store.outbox()
    got = state(target)
    assert got["k0"][2:4] == (T + 60_000, "w1") and got["k4"][3] == "w2"
    assert row.next_due() == T  # the sms row
    assert row.next_due(skip_channels=["sms"]) == T + 99
    # when the lease ends, the rows are due again: another worker takes them
    assert claim(store, "w3", T + 60_000, limit=3) == ["later", "k0", "k1"]


def test_claims_of_racing_workers_are_disjoint_and_take_every_row(
    target: str, store: Store, open_again: Opener
) -> None:
    queue(target, *[(f"k{i:02d}", "email", T + i) for i in range(60)])
    stores = [store, open_again(), open_again()]
    got: dict[str, list[str]] = {f"w{k}": [] for k in range(6)}
    start = threading.Barrier(6)

    def work(k: int) -> None:
        start.wait()
        while batch := claim(stores[k % 3], f"w{k}", T + 100, limit=3):
            got[f"w{k}"].extend(batch)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    taken = [key for keys in got.values() for key in keys]
    assert sorted(taken) == [f"k{i:02d}" for i in range(60)]  # each once
    held = state(target)
    assert all(held[key][3] == w for w, keys in got.items() for key in keys)


def test_outcomes_touch_only_queued_rows(target: str, store: Store) -> None:
    queue(target, ("a", "email", T), ("b", "email", T), ("c", "email", T), ("d", "email", T))
    claim(store, "w1", T)
    n = ids(target)
    box = store.outbox()
    with store.transaction():
        box.mark_sent(T + 1, [n["a"]])
        box.retry([Retry(1, T + 500, "timeout", n["b"])])
        box.fail([Failure(3, "bounced", n["c"])])
        box.put_off([PutOff(T + 900, n["d"])])
    with store.transaction():  # a late outcome for rows already settled changes nothing
        box.retry([Retry(9, T + 5, "late", n["a"]), Retry(9, T + 5, "late", n["c"])])
        box.fail([Failure(9, "late", n["a"])])
        box.mark_sent_late([(T + 7, n["c"])])
    got = state(target)
    assert got["a"] == ("sent", 1, None, None, T + 1, None)
    assert got["b"] == ("queued", 1, T + 500, None, None, "timeout")
    assert got["c"] == ("failed", 3, None, None, None, "bounced")
    assert got["d"] == ("queued", 0, T + 900, None, None, None)
    with store.transaction():
        box.mark_sent_late([(T + 8, n["b"])])
    assert state(target)["b"][0] == "sent"


def test_reclaim_frees_only_the_dead_workers_rows(target: str, store: Store) -> None:
    queue(target, ("a", "email", T), ("b", "email", T + 1), ("c", "email", T + 2))
    claim(store, "dead", T + 5, limit=2)
    claim(store, "alive", T + 5)
    with store.transaction():
        assert store.outbox().reclaim(T + 7, ["alive"]) == 2
    got = state(target)
    assert got["a"][2:4] == (T + 7, None) and got["b"][2:4] == (T + 7, None)
    assert got["c"][3] == "alive"


def test_undeliverable_rows_and_a_channel_put_off(target: str, store: Store) -> None:
    queue(
        target,
        ("none", None, T),
        ("fax", "fax", T + 1),
        ("mail", "email", T + 2),
        ("soon", "fax", T + 50),
    )
    box = store.outbox()
    with store.transaction():
        assert [r.key for r in box.undeliverable(T + 10, ["email"], 10)] == ["none", "fax"]
        assert box.put_off_channel("email", T + 10, T + 1000) == 1
    assert state(target)["mail"][2] == T + 1000
    assert box.next_due(skip_channels=["fax"]) == T


_runs = itertools.count()


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.tuples(st.sampled_from("abc"), st.integers(0, 180_000), st.integers(1, 4)),
        max_size=12,
    )
)
def test_no_row_is_leased_to_two_workers_at_once(
    target: str, store: Store, claims: list[tuple[str, int, int]]
) -> None:
    # (worker, time step, limit) claims with 60 s leases: a row is claimed again only
    # once its lease has ended. Each example queues rows of a channel of its own.
    run = next(_runs)
    channel = f"c{run}"
    queue(target, *[(f"r{run}-{i}", channel, T + i) for i in range(6)])
    held: dict[str, tuple[str, int]] = {}  # key → (worker, lease end)
    now = T
    for worker, step, limit in claims:
        now += step
        for key in claim(store, worker, now, limit, until=now + 60_000, channel=channel):
            if key in held:
                other, until = held[key]
                assert until <= now, f"{key} leased to {other} until {until}, {worker} at {now}"
            held[key] = (worker, now + 60_000)


def claim_lanes(
    store: Store, worker: str, now: int, wants: list[tuple[str, int]], until: int = T + 60_000
) -> dict[str, list[str]]:
    """``worker``'s claim for several channels at once: channel → the keys it got."""
    with store.transaction():
        got = store.outbox().claim_lanes(wants, now, worker, until)
    return {channel: [r.key for r in rows] for channel, rows in got.items()}


def test_a_claim_for_several_channels_leases_each_ones_earliest_rows(
    target: str, store: Store
) -> None:
    queue(
        target,
        *[(f"e{i}", "email", T + 5 - i) for i in range(5)],  # due in reverse insertion order
        ("s0", "sms", T + 3),
        ("s1", "sms", T + 3),  # same due time as s0: by id
        ("s-later", "sms", T + 99),
        ("p0", "push", T),
        ("f0", "fax", T),
        ("none", None, T),
    )
    before = state(target)
    got = claim_lanes(store, "w1", T + 10, [("email", 3), ("sms", 5), ("push", 0), ("web", 2)])
    assert got == {"email": ["e4", "e3", "e2"], "sms": ["s0", "s1"], "push": [], "web": []}
    after = state(target)
    for key in ["e4", "e3", "e2", "s0", "s1"]:
        assert after[key] == ("queued", 0, T + 60_000, "w1", None, None)
    # rows of channels not wanted (or wanted 0), not due, or past a limit: untouched
    for key in ["e1", "e0", "s-later", "p0", "f0", "none"]:
        assert after[key] == before[key]
    # the leased rows are not due for another worker; the rest are
    got = claim_lanes(store, "w2", T + 10, [("sms", 5), ("email", 5), ("push", 1)])
    assert got == {"sms": [], "email": ["e1", "e0"], "push": ["p0"]}
    assert claim_lanes(store, "w3", T + 10, []) == {}
    with pytest.raises(ValueError, match="'sms' is wanted twice"):
        store.outbox().claim_lanes([("sms", 1), ("email", 1), ("sms", 2)], T, "w", T + 1)


def test_a_claim_for_several_channels_skips_rows_another_transaction_locks(
    postgres_url: str, open_postgres: Callable[..., PostgresStore]
) -> None:
    # Another worker in the middle of its claim holds row locks: they are skipped,
    # never waited for (a wait would end in StoreBusyError after the lock timeout).
    queue(
        postgres_url,
        ("e0", "email", T),
        ("e1", "email", T + 1),
        ("s0", "sms", T),
        ("s1", "sms", T + 1),
    )
    store = open_postgres(lock_timeout_s=5)
    with psycopg.connect(postgres_url) as other:
        other.execute("SELECT id FROM outbox WHERE key IN ('e0', 's1') FOR UPDATE").fetchall()
        got = claim_lanes(store, "w1", T + 10, [("email", 2), ("sms", 2)])
        assert got == {"email": ["e1"], "sms": ["s0"]}
        other.rollback()
    got = claim_lanes(store, "w2", T + 10, [("email", 2), ("sms", 2)])
    assert got == {"email": ["e0"], "sms": ["s1"]}
    held = state(postgres_url)
    assert {k: held[k][3] for k in ["e0", "e1", "s0", "s1"]} == {
        "e0": "w2",
        "e1": "w1",
        "s0": "w1",
        "s1": "w2",
    }


BACKLOG = 3_000


def claim_plan(target: str) -> str:
    """The plan of the store's own claim statement for ``email`` rows due at ``T``
    (SQLite: ``EXPLAIN QUERY PLAN``; PostgreSQL: ``EXPLAIN``, after ``ANALYZE``)."""
    if is_url(target):
        with psycopg.connect(target, autocommit=True) as conn:
            conn.execute("ANALYZE outbox")
            params = (["email", "sms"], [10, 10], T, T + 60_000, "w")
            plan = conn.execute(f"EXPLAIN {CLAIM_LANES}", params).fetchall()
    else:
        with sqlite3.connect(target) as conn:
            plan = conn.execute(f"EXPLAIN QUERY PLAN {CLAIM_DUE}", (T, "email", 10)).fetchall()
    return "\n".join(str(row[-1]) for row in plan)


def test_a_channels_claim_reads_its_own_due_rows_beside_another_channels_backlog(
    target: str, store: Store
) -> None:
    # A slow provider's backlog of due push rows, due before the e-mails: the e-mail
    # claim is served by the channel's own index (never walking the push rows, as
    # outbox_due (status, next_attempt_at) made it), and takes the earliest e-mails.
    queue(target, *[(f"p{i}", "push", T - BACKLOG + i) for i in range(BACKLOG)])
    queue(target, *[(f"e{i}", "email", T - i) for i in range(12)], ("sent", "email", T - 99))
    queue(target, ("fax", "fax", T - 5), ("none", None, T - 3), ("fax-later", "fax", T + 9))
    if is_url(target):
        with psycopg.connect(target) as conn:
            conn.execute("UPDATE outbox SET status = 'sent' WHERE key = 'sent'")
    else:
        with sqlite3.connect(target) as conn:
            conn.execute("UPDATE outbox SET status = 'sent' WHERE key = 'sent'")
    plan = claim_plan(target)
    assert "outbox_channel_due" in plan, plan
    assert "outbox_due" not in plan.replace("outbox_channel_due", ""), plan
    assert "Seq Scan" not in plan, plan  # PostgreSQL's UPDATE finds the rows by id
    assert claim(store, "w", T, limit=10) == [f"e{i}" for i in range(11, 1, -1)]
    # The pump's other reads step over the backlog too (each channel by the index):
    # the rows of channels without a lane, and the next due row of a lane with room.
    outbox = store.outbox()
    with store.transaction():
        assert [r.key for r in outbox.undeliverable(T, ["email", "push"], 10)] == ["fax", "none"]
    assert outbox.next_due(["push"]) == T - 5  # the fax; the claimed e-mails are leased
    assert outbox.next_due(["push", "fax"]) == T - 3
    assert outbox.next_due(["push", "fax", "email"]) == T - 3
    assert outbox.next_due() == T - BACKLOG


_lanes_runs = itertools.count()


@settings(max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(st.tuples(st.sampled_from("abc"), st.integers(0, 20)), max_size=15),
    wants=st.dictionaries(st.sampled_from("abcd"), st.integers(-1, 6)),
    now=st.integers(0, 20),
)
def test_a_claim_for_several_channels_is_each_channels_claim(
    target: str,
    store: Store,
    rows: list[tuple[str, int]],
    wants: dict[str, int],
    now: int,
) -> None:
    # Whatever the rows and wants: each wanted channel gets the rows one claim of its
    # own would (its earliest due ones, by due time then id, at most its limit), and
    # every other row is untouched. Each example has channels of its own.
    run = next(_lanes_runs)
    ch = {c: f"l{run}{c}" for c in "abcd"}
    queue(target, *[(f"l{run}-{i}", ch[c], T + due) for i, (c, due) in enumerate(rows)])
    before = state(target)
    got = claim_lanes(store, "w", T + now, [(ch[c], n) for c, n in wants.items()])
    expected: dict[str, list[str]] = {}
    for c, n in wants.items():
        due = [(d, i) for i, (rc, d) in enumerate(rows) if rc == c and d <= now]
        expected[ch[c]] = [f"l{run}-{i}" for _, i in sorted(due)[: max(n, 0)]]
    assert got == expected
    leased = {key for keys in got.values() for key in keys}
    after = state(target)
    for key, was in before.items():
        if key in leased:
            assert after[key] == ("queued", 0, T + 60_000, "w", None, None)
        else:
            assert after[key] == was
