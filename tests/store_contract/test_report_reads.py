"""The reads of journey reports (store/abc.py's ReportReads) on every store: the
hourly sums plus the rows at a range's edges against the rows themselves (a
hypothesis property), entry groups and the median time to goal, the outbox and the
providers' reports, one snapshot per block.

The engine's rows are written with the database's own driver (calls.write_rows), the
actions through each store's engine unit of work, which keeps the sums
(calls.log_actions); the providers'
reports through the store's Deliveries."""

from __future__ import annotations

import itertools
from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from journeyc.fastjson import dumps
from journeyc.store.abc import Store
from journeyc.store.report_ranges import HOUR_MS
from journeyc.store.rows import ActionCount, Delivery, EntryGroup, FeedbackCount, OutboxCount
from tests.store_contract.calls import ActionRow, log_actions, write_rows

H0 = 493_000 * HOUR_MS  # an hour's start in 2026
JOURNEY_COLUMNS = "id, version, ir, source, deployed_at, active"
OUTBOX_COLUMNS = "key, journey_id, user_id, step, channel, message, status, attempts, created_at"

_journeys = itertools.count()


def deploy(target: str, journey: str, *versions: tuple[str, int, bool]) -> None:
    write_rows(
        target,
        f"INSERT INTO journeys ({JOURNEY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
        [(journey, v, f'{{"v": "{v}"}}', "", at, active) for v, at, active in versions],
    )


def entries(target: str, rows: list[tuple[str, str, int, int | None, str | None, bool]]) -> None:
    """``(journey, user, entered_at, goal_at, arm, holdout)`` entries (entry 1)."""
    write_rows(
        target,
        "INSERT INTO entries (journey_id, user_id, entry_no, entered_at, goal_at, arm, holdout)"
        " VALUES (?, ?, 1, ?, ?, ?, ?)",
        rows,
    )


def outbox(target: str, rows: list[tuple[str, str, str | None, str, int, int]]) -> None:
    """``(key, journey, channel, status, attempts, created_at)`` rows."""
    write_rows(
        target,
        f"INSERT INTO outbox ({OUTBOX_COLUMNS}) VALUES (?, ?, 'u', 's', ?, 'm', ?, ?, ?)",
        [(k, j, ch, st, n, at) for k, j, ch, st, n, at in rows],
    )


def action(at: int, journey: str | None, step: str | None, kind: str, **detail: str) -> ActionRow:
    return (at, "u", journey, step, kind, dumps(detail))


# ---------------------------------------------------------------- actions


LABELS = {"send": "channel", "suppress": "reason", "exit": "reason"}

actions_st = st.lists(
    st.tuples(
        st.integers(0, 5 * HOUR_MS),
        st.sampled_from(["j", "other"]),
        st.sampled_from([None, "s1", "s2"]),
        st.sampled_from(["enter", "send", "suppress", "exit", "set", "goal"]),
        st.sampled_from(["email", "push", "cap"]),
    ),
    max_size=40,
)
bound = st.none() | st.integers(-HOUR_MS, 6 * HOUR_MS)


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=actions_st, since=bound, until=bound, split=st.integers(0, 40))
def test_action_counts_are_the_sums_of_the_actions_in_the_range(
    target: str,
    store: Store,
    rows: list[tuple[int, str, str | None, str, str]],
    since: int | None,
    until: int | None,
    split: int,
) -> None:
    # A journey of its own per example: the store is the test's, not the example's.
    jid = f"j{next(_journeys)}"
    logged = [
        action(
            H0 + at,
            jid if j == "j" else f"{jid}-other",
            step,
            kind,
            **({LABELS[kind]: label} if kind in LABELS else {}),
        )
        for at, j, step, kind, label in rows
    ]
    # In two batches (the sums add up across them), one action of no journey; the
    # daemon's upkeep folds sums written as deltas (PostgreSQL) in between.
    log_actions(target, [*logged[:split], action(H0, None, None, "set")])
    upkeep = store.upkeep()
    upkeep.fold_sums()
    upkeep.close()
    if logged[split:]:
        log_actions(target, logged[split:])
    lo = None if since is None else H0 + since
    hi = None if until is None else H0 + until
    want = Counter(
        (step or "", kind, label if kind in LABELS else "")
        for at, j, step, kind, label in rows
        if j == "j" and (lo is None or H0 + at >= lo) and (hi is None or H0 + at < hi)
    )
    with store.report_reads() as q:
        got = q.action_counts(jid, lo, hi)
    assert got == [ActionCount(*key, n) for key, n in sorted(want.items())]


# ---------------------------------------------------------------- entries


def test_journeys_and_versions_in_order(target: str, store: Store) -> None:
    deploy(target, "b", ("v2", H0 + 5, True), ("v1", H0, False))
    deploy(target, "a", ("v1", H0, True))
    deploy(target, "B", ("v1", H0, True))
    with store.report_reads() as q:
        assert q.journey_ids() == ["B", "a", "b"]  # by code point
        assert [(v.version, v.deployed_at, v.active) for v in q.deployed_versions("b")] == [
            ("v1", H0, False),
            ("v2", H0 + 5, True),
        ]
        assert q.deployed_versions("b")[0].ir_json == '{"v": "v1"}'
        assert q.deployed_versions("nope") == []


def test_entry_groups_and_the_median_time_to_goal(target: str, store: Store) -> None:
    entries(
        target,
        [
            ("j", "u1", H0, H0 + 10, "B", False),
            ("j", "u2", H0 + 1, None, "B", False),
            ("j", "u3", H0 + 2, H0 + 40, "A", False),
            ("j", "u4", H0 + 3, H0 + 23, None, True),
            ("j", "u5", H0 + 4, H0 + 8, "A", True),
            ("j", "u6", H0 + 5, H0 + 105, None, False),
            ("k", "u7", H0 + 1, H0 + 2, None, False),
        ],
    )
    with store.report_reads() as q:
        groups = q.entry_groups("j", None, None)
        assert groups == [
            EntryGroup(False, None, 1, 1),
            EntryGroup(False, "A", 1, 1),
            EntryGroup(False, "B", 2, 1),
            EntryGroup(True, None, 1, 1),
            EntryGroup(True, "A", 1, 1),
        ]
        # Times to goal 10, 40, 20, 4, 100: the median of five is 20; of the four
        # entered in [H0 + 1, H0 + 5): 40, 20, 4 (u2 did not convert) the middle one.
        assert q.median_ms_to_goal("j", None, None, 5) == 20.0
        assert q.entry_groups("j", H0 + 1, H0 + 5) == [
            EntryGroup(False, "A", 1, 1),
            EntryGroup(False, "B", 1, 0),
            EntryGroup(True, None, 1, 1),
            EntryGroup(True, "A", 1, 1),
        ]
        assert q.median_ms_to_goal("j", H0 + 1, H0 + 5, 3) == 20.0
        # An even count: the mean of the two middle ones (10 and 20 of 4, 10, 20, 40).
        assert q.median_ms_to_goal("j", None, H0 + 5, 4) == 15.0
        assert q.median_ms_to_goal("j", None, None, 0) is None
        assert q.entry_groups("j", H0 + 6, None) == []


def test_waiting_now_per_step_and_version(target: str, store: Store) -> None:
    deploy(target, "j", ("v1", H0, False), ("v2", H0 + 1, True))
    write_rows(
        target,
        "INSERT INTO instances (journey_id, version, user_id, entry_no, node, status,"
        " entered_at) VALUES ('j', ?, ?, 1, ?, ?, 0)",
        [
            ("v1", "a", "wait1", "waiting"),
            ("v2", "b", "wait1", "active"),
            ("v2", "c", "send2", "waiting"),
            ("v2", "d", "end", "completed"),
        ],
    )
    with store.report_reads() as q:
        assert q.waiting_now("j", None) == {"wait1": 2, "send2": 1}
        assert q.waiting_now("j", "v2") == {"wait1": 1, "send2": 1}
        assert q.waiting_now("k", None) == {}


def test_a_block_reads_one_snapshot(target: str, store: Store) -> None:
    entries(target, [("j", "u1", H0, None, None, False)])
    with store.report_reads() as q:
        assert q.entry_groups("j", None, None) == [EntryGroup(False, None, 1, 0)]
        entries(target, [("j", "u2", H0, H0 + 1, None, False)])  # committed meanwhile
        assert q.entry_groups("j", None, None) == [EntryGroup(False, None, 1, 0)]
    with store.report_reads() as q:
        assert q.entry_groups("j", None, None) == [EntryGroup(False, None, 2, 1)]


# ---------------------------------------------------------------- outbox and feedback


def test_outbox_counts_by_channel_and_status_over_hours_and_edges(
    target: str, store: Store
) -> None:
    outbox(
        target,
        [
            ("a", "j", "email", "queued", 0, H0 + 10),
            ("b", "j", "email", "sent", 1, H0 + HOUR_MS + 5),
            ("c", "j", "email", "sent", 3, H0 + 2 * HOUR_MS - 1),
            ("d", "j", "push", "failed", 2, H0 + 3 * HOUR_MS + 7),
            ("e", "j", None, "queued", 0, H0 + 20),  # no channel: not counted
            ("f", "j", "email", "suppressed", 0, H0 + 30),  # the actions count these
            ("g", "k", "email", "sent", 1, H0 + 10),
        ],
    )
    with store.report_reads() as q:
        assert q.outbox_counts("j", None, None) == [
            OutboxCount("email", "queued", 1, 0),
            OutboxCount("email", "sent", 2, 1),
            OutboxCount("push", "failed", 1, 1),
        ]
        # Cut inside the first and the fourth hour: b, c from the sums, a and d not.
        assert q.outbox_counts("j", H0 + 11, H0 + 3 * HOUR_MS + 7) == [
            OutboxCount("email", "sent", 2, 1)
        ]
        assert q.outbox_counts("j", H0 + 5, H0 + 11) == [OutboxCount("email", "queued", 1, 0)]
    # A send's outcome moves it between the sums (the stores' triggers).
    write_rows(target, "UPDATE outbox SET status = 'sent', attempts = 2 WHERE key = 'a'", [()])
    with store.report_reads() as q:
        assert q.outbox_counts("j", H0, H0 + HOUR_MS) == [OutboxCount("email", "sent", 1, 1)]


def test_feedback_counts_each_message_once_per_kind_at_its_first_report(
    target: str, store: Store
) -> None:
    outbox(
        target,
        [
            ("a", "j", "email", "sent", 1, H0),
            ("b", "j", "push", "sent", 1, H0),
            ("c", "k", "email", "sent", 1, H0),
        ],
    )

    def report(key: str, kind: str, at: int, pid: str, channel: str | None = "email") -> Delivery:
        return Delivery(key, kind, at, at, "k" if key == "c" else "j", "u", channel, pid)

    with store.transaction():
        new = store.deliveries().record(
            [
                report("a", "opened", H0 + 10, "p1"),
                report("a", "opened", H0 + 2 * HOUR_MS, "p2"),  # again: not counted
                report("a", "delivered", H0 + HOUR_MS + 1, "p3"),
                report("b", "opened", H0 + 3 * HOUR_MS + 5, "p4", channel=None),  # push's
                report("c", "opened", H0 + 10, "p5"),
            ]
        )
    assert new == [True] * 5
    with store.report_reads() as q:
        assert q.feedback_counts("j", None, None) == [
            FeedbackCount("email", "delivered", 1),
            FeedbackCount("email", "opened", 1),
            FeedbackCount("push", "opened", 1),
        ]
        # a's first open lies before the range: its second one does not count.
        assert q.feedback_counts("j", H0 + 11, H0 + 3 * HOUR_MS + 5) == [
            FeedbackCount("email", "delivered", 1)
        ]
        assert q.feedback_counts("j", H0 + 3 * HOUR_MS + 5, H0 + 3 * HOUR_MS + 6) == [
            FeedbackCount("push", "opened", 1)
        ]
