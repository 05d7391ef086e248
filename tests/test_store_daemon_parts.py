"""The daemon's parts of the store (store/abc.py: Outbox, AdminReads, Upkeep) over a
real SQLite file: leases, reclaims, outcomes only on queued rows, one snapshot per
read block, retention."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from journeyc.events import Event
from journeyc.store import Store
from journeyc.store.abc import AdminReads, Failure, Outbox, Retry, Upkeep

T0 = 1_700_000_000_000
LEASE = 60_000
_files = itertools.count()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "journeyc.db") as opened:
        yield opened


def queue(store: Store, key: str, channel: str | None = "email", at: int = T0) -> None:
    # Rows as the engine queues them (tests may write SQL to set a store up).
    with store.transaction() as conn:
        conn.execute(
            "INSERT INTO outbox (key, journey_id, user_id, step, channel, message, content, "
            "status, next_attempt_at, created_at) VALUES (?, 'j', 'u1', 's', ?, 'm', ?, "
            "'queued', ?, ?)",
            (key, channel, json.dumps({"body": key}), at, at),
        )


def status_of(store: Store, key: str) -> tuple[str, int, str | None]:
    row = store.conn.execute(
        "SELECT status, attempts, claimed_by FROM outbox WHERE key = ?", (key,)
    ).fetchone()
    return row[0], row[1], row[2]


def claim(outbox: Outbox, store: Store, worker: str, now: int, limit: int = 10) -> list[str]:
    with store.transaction():
        return [r.key for r in outbox.claim("email", now, limit, worker, now + LEASE)]


def test_a_claim_is_a_lease_no_other_worker_takes_until_it_ends(store: Store) -> None:
    outbox: Outbox = store.outbox()
    for i in range(3):
        queue(store, f"k{i}", at=T0 + i)
    assert claim(outbox, store, "a", T0 + 10, limit=2) == ["k0", "k1"]
    assert claim(outbox, store, "b", T0 + 10) == ["k2"]
    assert claim(outbox, store, "b", T0 + 20) == []
    assert status_of(store, "k0") == ("queued", 0, "a")
    # The lease ran out: the rows are due again, for any worker.
    assert claim(outbox, store, "b", T0 + 10 + LEASE) == ["k0", "k1", "k2"]


def test_reclaim_frees_only_the_claims_of_workers_not_alive(store: Store) -> None:
    outbox = store.outbox()
    queue(store, "dead")
    queue(store, "live")
    claim(outbox, store, "d", T0, limit=1)
    claim(outbox, store, "l", T0, limit=1)
    with store.transaction():
        assert outbox.reclaim(T0 + 5, ["l"]) == 1
    assert status_of(store, "dead") == ("queued", 0, None)
    assert status_of(store, "live") == ("queued", 0, "l")
    assert outbox.next_due() == T0 + 5
    assert claim(outbox, store, "l", T0 + 5) == ["dead"]


def test_outcomes_touch_only_rows_still_queued(store: Store) -> None:
    outbox = store.outbox()
    queue(store, "a")
    queue(store, "b")
    ids = {
        key: store.conn.execute("SELECT id FROM outbox WHERE key = ?", (key,)).fetchone()[0]
        for key in ("a", "b")
    }
    with store.transaction():
        outbox.fail([Failure(1, "refused", ids["a"])])
        outbox.mark_sent(T0, [ids["a"], ids["b"]])  # a failed already: stays failed
        outbox.retry([Retry(2, T0 + 9, "late", ids["b"])])  # b sent already
    assert status_of(store, "a") == ("failed", 1, None)
    assert status_of(store, "b") == ("sent", 1, None)


def test_undeliverable_rows_are_those_no_channel_of_the_worker_sends(store: Store) -> None:
    outbox = store.outbox()
    queue(store, "none", channel=None)
    queue(store, "sms", channel="sms")
    queue(store, "email")
    queue(store, "later", channel=None, at=T0 + 100)
    found = outbox.undeliverable(T0, ["email"], 10)
    assert [r.key for r in found] == ["none", "sms"]
    assert outbox.next_due(["sms", "email"]) == T0  # the row without a channel counts
    assert outbox.next_due(["sms", "email"]) == outbox.next_due()


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.tuples(st.sampled_from("abc"), st.integers(0, 3 * LEASE), st.integers(1, 4)),
        max_size=12,
    )
)
def test_no_row_is_leased_to_two_workers_at_once(
    tmp_path: Path, claims: list[tuple[str, int, int]]
) -> None:
    with Store.open(tmp_path / f"p{next(_files)}.db") as store:
        outbox = store.outbox()
        for i in range(6):
            queue(store, f"k{i}", at=T0 + i)
        held: dict[str, tuple[str, int]] = {}  # key → (worker, lease end)
        now = T0
        for worker, step, limit in claims:
            now += step
            for key in claim(outbox, store, worker, now, limit):
                if key in held:
                    other, until = held[key]
                    assert until <= now, f"{key} leased to {other} until {until}, {worker} at {now}"
                held[key] = (worker, now + LEASE)


def test_reads_in_one_block_see_one_snapshot(store: Store) -> None:
    store.append_events([Event("m1", "u1", "track", "ping", T0, {}, T0)])
    reads: AdminReads
    with store.reading() as reads:
        before = reads.count_events(), reads.last_seq()
        store.append_events([Event("m2", "u1", "track", "ping", T0 + 1, {}, T0 + 1)])
        assert (reads.count_events(), reads.last_seq()) == before
    with store.reading() as reads:
        assert reads.count_events() == 2
        assert reads.has_events("u1") and not reads.has_events("u2")


def test_retention_removes_old_sent_rows_and_keeps_failed_ones(store: Store) -> None:
    outbox = store.outbox()
    queue(store, "sent")
    queue(store, "failed")
    ids = [r[0] for r in store.conn.execute("SELECT id FROM outbox ORDER BY key DESC")]
    with store.transaction():
        outbox.mark_sent(T0, [ids[0]])
        outbox.fail([Failure(1, "no", ids[1])])
    upkeep: Upkeep = store.upkeep()
    try:
        assert upkeep.remove_old(T0) == (0, 0)  # not older than the cutoff
        assert upkeep.remove_old(T0 + 1) == (1, 0)
        upkeep.checkpoint()
    finally:
        upkeep.close()
    with store.reading() as reads:
        assert reads.outbox_statuses() == {"failed": 1}
        assert [f.key for f in reads.recent_failures(5)] == ["failed"]
