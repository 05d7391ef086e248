"""Journey reports (journeyc.reports) against what the engine did.

The property: over generated simulations, a report's per-step sends, suppressions
and exits, its entries, conversions and users in flight equal the same figures
recomputed from the JSON action lines `journeyc simulate` prints. Then the parts a
generated run seldom reaches: time ranges cut inside an hour (the hourly sums plus
the actions at the edges), versions, provider feedback, the outbox, and unknown
journeys.
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given

from journeyc.compile import ir
from journeyc.engine.buckets import bucket
from journeyc.engine.simulate import simulate
from journeyc.reports import stats
from journeyc.reports.build import ReportError, UnknownJourneyError, build_report
from journeyc.reports.model import JourneyReport
from journeyc.store.sqlite import Store
from tests.engine_helpers import (
    TMP_DIR,
    compile_files,
    identify,
    ms,
    reject_runaways,
    track,
)
from tests.journey_strategies import Scenario, scenarios


def _held_out(journey: ir.JourneyIR, user: str) -> bool:
    # The engine's own draw (the action lines do not say who is held out); the
    # suppressions checked in _groups() keep it honest.
    return journey.holdout > 0 and bucket(f"{journey.id}:holdout:{user}") < journey.holdout


def _groups(lines: list[str], journey: ir.JourneyIR) -> dict[str, tuple[int, int]]:
    """(conversions, entries) of the holdout and of everyone else ('messaged'),
    recomputed from the action lines: an `enter` line per entry, a `goal` line per
    conversion, the user held out or not."""
    groups = {"messaged": [0, 0], "holdout": [0, 0]}
    for line in lines:
        a = json.loads(line)
        if a["journey"] != journey.id:
            continue
        held = _held_out(journey, a["user"])
        if a["action"] == "suppress" and a["reason"] == "holdout":
            assert held, a
        if a["action"] == "send":
            assert not held, a
        group = groups["holdout" if held else "messaged"]
        if a["action"] == "enter":
            group[1] += 1
        elif a["action"] == "goal":
            group[0] += 1
    return {name: (c, n) for name, (c, n) in groups.items()}


def _expected(lines: list[str], journey: str) -> dict[str, Any]:
    """The report's figures for ``journey``, recomputed from the JSON action lines."""
    sends: dict[str, Counter[str]] = defaultdict(Counter)
    suppressed: dict[str, Counter[str]] = defaultdict(Counter)
    exits: dict[str, Counter[str]] = defaultdict(Counter)
    counted: Counter[str] = Counter()
    kinds = Counter()
    for line in lines:
        a = json.loads(line)
        if a["journey"] != journey:
            continue
        kinds[a["action"]] += 1
        step = a["step"]
        if a["action"] == "send":
            sends[step][a["channel"]] += 1
            counted[step] += 1
        elif a["action"] == "suppress":
            suppressed[step][a["reason"]] += 1
            counted[step] += 1
        elif a["action"] == "exit":
            exits[step][a["reason"]] += 1
        elif a["action"] in ("set", "unset", "track"):
            counted[step] += 1
    return {
        "sends": {s: dict(c) for s, c in sends.items()},
        "suppressed": {s: dict(c) for s, c in suppressed.items()},
        "exits": {s: dict(c) for s, c in exits.items()},
        "counted": counted,
        "entries": kinds["enter"],
        "goals": kinds["goal"],
        "ended": kinds["exit"],
    }


@pytest.fixture
def store() -> Iterator[Store]:
    with tempfile.TemporaryDirectory(dir=TMP_DIR) as tmp:
        s = Store.open(Path(tmp) / "r.db")
        try:
            yield s
        finally:
            s.close()


def _check(report: JourneyReport, want: dict[str, Any]) -> None:
    steps = {s.id: s for s in report.steps}
    for figure in ("sends", "suppressed", "exits"):
        got = {sid: getattr(s, figure) for sid, s in steps.items() if getattr(s, figure)}
        assert got == want[figure], figure
    for sid, s in steps.items():
        if s.reached_how == "counted" and s.kind != "exit":
            assert s.reached == want["counted"][sid], sid
        if s.kind == "exit":
            assert s.reached == want["exits"].get(sid, {}).get("exit_step", 0), sid
    assert report.entries == want["entries"]
    assert report.in_flight == want["entries"] - want["ended"]
    assert sum(report.exits.values()) == want["ended"]
    if report.goal is not None:
        assert report.goal.conversions == want["goals"]
    # A simulation delivers nothing: every send is an outbox row still queued.
    by_channel: Counter[str] = Counter()
    for channels in want["sends"].values():
        by_channel.update(channels)
    assert {d.channel: d.queued for d in report.delivery} == dict(by_channel)
    assert all(d.sent == d.failed == d.retried == 0 for d in report.delivery)
    if report.experiment is not None:
        e = report.experiment
        assert sum(a.entries for a in e.arms) + e.unassigned == report.entries


@given(scenarios())
def test_reports_agree_with_the_action_lines_of_generated_simulations(scenario: Scenario) -> None:
    reject_runaways(scenario.files, scenario.events, scenario.start_ms, scenario.until_ms)
    project = compile_files(scenario.files)
    with tempfile.TemporaryDirectory(dir=TMP_DIR) as tmp:
        store = Store.open(Path(tmp) / "s.db")
        try:
            actions = simulate(
                project,
                scenario.events,
                store,
                start_ms=scenario.start_ms,
                until_ms=scenario.until_ms,
            )
            lines = [a.to_json() for a in actions]
            for jid, journey in project.journeys.items():
                report = build_report(store, jid)
                _check(report, _expected(lines, jid))
                _check_experiment(report, lines, journey)
        finally:
            store.close()


def _check_experiment(report: JourneyReport, lines: list[str], journey: ir.JourneyIR) -> None:
    """The experiment's groups against the action lines: the holdout's conversions
    always; with a holdout and no split, the messaged group's and its comparison."""
    e = report.experiment
    has_split = any(isinstance(n, ir.SplitNode) for n in journey.nodes.values())
    if not has_split and journey.holdout == 0:
        assert e is None
        return
    assert e is not None
    groups = {a.name: a for a in e.arms}
    want = _groups(lines, journey)
    if journey.holdout > 0:
        h = groups["holdout"]
        assert (h.conversions, h.entries) == want["holdout"]
        assert h.group == "holdout" and h.holdout and e.baseline == "holdout"
    if has_split:
        assert all(a.group == "arm" for a in e.arms if not a.holdout)
        arms = sum(a.entries for a in e.arms if not a.holdout)
        assert arms + e.unassigned == want["messaged"][1]
        return
    assert [a.name for a in e.arms] == ["messaged", "holdout"] and e.unassigned == 0
    m = groups["messaged"]
    assert m.group == "messaged" and not m.holdout
    assert (m.conversions, m.entries) == want["messaged"]
    r = stats.rate(*want["messaged"])
    assert (m.rate, m.ci_low, m.ci_high) == (r.rate, r.low, r.high)
    (c,) = e.comparisons
    assert (c.arm, c.baseline) == ("messaged", "holdout")
    if report.goal is None:
        assert not c.enough_data and c.note == "the journey has no goal to compare"
        return
    lift = stats.lift(want["messaged"], want["holdout"], names=("messaged", "holdout"))
    assert (c.enough_data, c.note, c.lift, c.p_value) == (
        lift.enough_data,
        lift.note,
        lift.lift,
        lift.p_value,
    )


PROMO = """journey promo "Promo"
  when promo_seen
  goal order_completed within 1d
  holdout 20%

  send push "A promo for you" as nudge
"""


def test_a_holdout_without_a_split_compares_the_messaged_group_with_it(store: Store) -> None:
    project = compile_files({"promo.journey": PROMO})
    journey = project.journeys["promo"]
    users = [f"u{i:03d}" for i in range(400)]
    # The messaged convert more than the held out: one in 3 against one in 8.
    converts = [u for i, u in enumerate(users) if i % (8 if _held_out(journey, u) else 3) == 0]
    events = [
        *(identify(u, "2026-01-05T09:00:00Z", push_enabled=True) for u in users),
        # One entry a minute from 10:00; every order within a day of its entry.
        *(
            track(u, "promo_seen", f"2026-01-05T{10 + i // 60}:{i % 60:02d}:00Z")
            for i, u in enumerate(users)
        ),
        *(track(u, "order_completed", "2026-01-06T00:00:00Z") for u in converts),
    ]
    lines = [a.to_json() for a in simulate(project, events, store)]
    report = build_report(store, "promo")
    _check_experiment(report, lines, journey)
    e = report.experiment
    assert e is not None
    messaged, holdout = e.arms
    assert messaged.entries + holdout.entries == 400 and holdout.entries > 30
    assert messaged.conversions + holdout.conversions == len(converts)
    (c,) = e.comparisons
    assert c.enough_data and c.lift is not None and c.lift > 0.1
    assert c.p_value is not None and c.p_value < 0.05 and c.significant
    # The first 20 minutes' entries: too few to compare, the figures still shown.
    early = build_report(store, "promo", until_ms=ms("2026-01-05T10:20:00Z"))
    assert early.experiment is not None
    messaged, holdout = early.experiment.arms
    assert messaged.entries + holdout.entries == 20 and messaged.rate is not None
    (c,) = early.experiment.comparisons
    assert not c.enough_data and c.p_value is None and c.lift is None
    assert c.note == f"not enough data: messaged: {messaged.entries} entries (needs 30); " + (
        f"holdout: {holdout.entries} entries (needs 30)"
    )


CART = """journey cart "Cart"
  when cart_abandoned
  goal order_completed within 1d
  wait 30m as pause
  send push "Your cart is waiting" as first
  wait for order_completed up to 2h as second_look
    on order_completed
      exit
  send email "Last call for your cart" as last
"""


def _run_cart(store: Store) -> list[str]:
    project = compile_files({"cart.journey": CART})
    reachable = {"push_enabled": True, "email": "a@example.com"}
    events = [
        *(identify(u, "2026-01-05T09:00:00Z", **reachable) for u in ("u1", "u2", "u3")),
        track("u1", "cart_abandoned", "2026-01-05T10:10:00Z"),
        track("u2", "cart_abandoned", "2026-01-05T10:50:00Z"),
        track("u3", "cart_abandoned", "2026-01-05T12:20:00Z"),
        track("u2", "order_completed", "2026-01-05T11:40:00Z"),
    ]
    actions = simulate(project, events, store)
    return [a.to_json() for a in actions]


def test_a_range_inside_hours_counts_the_actions_at_its_edges(store: Store) -> None:
    lines = _run_cart(store)
    at = {(a["user"], a["action"], a["step"]): a["at"] for a in map(json.loads, lines)}
    assert at[("u1", "send", "first")] == "2026-01-05T10:40:00Z"
    assert at[("u2", "send", "first")] == "2026-01-05T11:20:00Z"
    # 10:30 to 11:30: no whole hour inside; u1's and u2's first sends.
    r = build_report(
        store, "cart", since_ms=ms("2026-01-05T10:30:00Z"), until_ms=ms("2026-01-05T11:30:00Z")
    )
    steps = {s.id: s for s in r.steps}
    assert steps["first"].sends == {"push": 2}
    assert r.entries == 1  # u2 entered at 10:50
    # 10:45 to 13:00: whole hours 11 and 12 from the sums, 10:45-11:00 from the log.
    r = build_report(
        store, "cart", since_ms=ms("2026-01-05T10:45:00Z"), until_ms=ms("2026-01-05T13:00:00Z")
    )
    steps = {s.id: s for s in r.steps}
    assert steps["first"].sends == {"push": 2}  # u2 at 11:20, u3 at 12:50
    assert steps["second_look"].exits == {}  # u2's exit is at the exit step
    assert steps["3.1.1"].reached == 1 and steps["3.1.1"].exits == {"exit_step": 1}
    assert r.entries == 2 and r.until == "2026-01-05T13:00:00Z"
    assert steps["pause"].reached == 2  # the start: every entry reaches it
    assert steps["second_look"].reached is None  # a closed range: who waits is not known
    # The whole run: u1 and u3 time out into the email.
    r = build_report(store, "cart")
    steps = {s.id: s for s in r.steps}
    assert steps["last"].sends == {"email": 2} and r.exits == {"completed": 2, "exit_step": 1}
    assert steps["pause"].reached == 3 and steps["pause"].reached_how == "inferred"
    assert steps["second_look"].reached == 3
    assert r.goal is not None and r.goal.conversions == 1
    assert r.goal.median_seconds_to_goal == 50 * 60
    assert [[s.id for s in p.steps] for p in r.funnel] == [
        ["pause", "first", "second_look", "3.1.1"],
        ["pause", "first", "second_look", "last"],
    ]
    assert [p.steps[-1].via for p in r.funnel] == ["event", "timeout"]
    assert [p.ends for p in r.funnel] == ["exit", "completes"]


def test_delivery_counts_the_outbox_and_provider_feedback(store: Store) -> None:
    _run_cart(store)
    keys = [k for (k,) in store.conn.execute("SELECT key FROM outbox ORDER BY id")]
    conn = store.conn
    conn.execute("UPDATE outbox SET status = 'sent', attempts = 2 WHERE key = ?", (keys[0],))
    conn.execute("UPDATE outbox SET status = 'failed', attempts = 5 WHERE key = ?", (keys[1],))
    for i, (key, kind) in enumerate(
        [(keys[0], "delivered"), (keys[0], "opened"), (keys[0], "opened"), (keys[2], "bounced")]
    ):
        conn.execute(
            "INSERT INTO deliveries (outbox_key, kind, at, received_at, journey_id, user_id,"
            " channel, provider_event_id) VALUES (?, ?, ?, 0, 'cart', 'u', NULL, ?)",
            (key, kind, ms("2026-01-05T12:00:00Z"), f"e{i}"),
        )
    r = build_report(store, "cart")
    by = {d.channel: d for d in r.delivery}
    assert by["push"].sent == 1 and by["push"].failed == 1 and by["push"].retried == 2
    assert by["push"].queued == 1 and by["email"].queued == 2
    # A report names no channel: the outbox row's; two `opened` of one message count once.
    assert by["push"].feedback == {"delivered": 1, "opened": 1}
    (third,) = store.conn.execute("SELECT channel FROM outbox WHERE key = ?", (keys[2],)).fetchone()
    assert by[third].feedback.get("bounced") == 1
    # The same from the rows themselves: a range inside one hour reads no sums.
    edge = build_report(
        store, "cart", since_ms=ms("2026-01-05T11:59:00Z"), until_ms=ms("2026-01-05T12:01:00Z")
    )
    assert {d.channel: d.feedback for d in edge.delivery} == {
        ch: d.feedback for ch, d in by.items() if d.feedback
    }
    assert all(d.sent == d.queued == d.failed == 0 for d in edge.delivery)
    # A sent row that fails on a retry moves between the sums, it is not counted twice.
    conn.execute("UPDATE outbox SET status = 'failed', attempts = 3 WHERE key = ?", (keys[0],))
    again = {d.channel: d for d in build_report(store, "cart").delivery}
    assert (again["push"].sent, again["push"].failed, again["push"].retried) == (0, 2, 2)


def test_versions_split_the_entries_by_when_each_took_them(store: Store) -> None:
    _run_cart(store)
    (deployed,) = store.conn.execute("SELECT deployed_at FROM journeys").fetchone()
    store.conn.execute(
        "INSERT INTO journeys (id, version, ir, source, deployed_at, active)"
        " SELECT id, 'v2', ir, source, ?, 0 FROM journeys",
        (ms("2026-01-05T11:00:00Z"),),
    )
    (v1,) = store.conn.execute("SELECT version FROM journeys WHERE version != 'v2'").fetchone()
    old = build_report(store, "cart", version=v1)
    assert old.entries == 2  # u1, u2 before 11:00
    # Its time is over: who waited at a step then is not known.
    assert {s.id: s.reached for s in old.steps}["second_look"] is None
    r = build_report(store, "cart", version="v2")
    assert r.entries == 1 and r.version == "v2" and r.graph_version == "v2"
    assert [v.version for v in r.versions] == [v1, "v2"] and deployed < ms("2026-01-05T11:00:00Z")
    with pytest.raises(ReportError, match="no version 'v3'") as err:
        build_report(store, "cart", version="v3")
    assert err.value.parameter == "version"


def test_an_unknown_journey_or_an_empty_range_is_refused(store: Store) -> None:
    _run_cart(store)
    with pytest.raises(UnknownJourneyError, match="did you mean 'cart'") as err:
        build_report(store, "carts")
    assert err.value.suggestions == ["cart"]
    with pytest.raises(ReportError, match="range is empty") as empty:
        build_report(store, "cart", since_ms=10, until_ms=10)
    assert empty.value.parameter == "until"


def test_the_sums_of_a_store_migrated_to_v6_count_what_was_logged_before() -> None:
    from journeyc.store.sqlite.schema import MIGRATIONS, migrate

    with tempfile.TemporaryDirectory(dir=TMP_DIR) as tmp:
        import sqlite3

        conn = sqlite3.connect(Path(tmp) / "old.db", isolation_level=None)
        migrate(conn, MIGRATIONS[:5])
        conn.execute(
            "INSERT INTO actions (at, user_id, journey_id, step, action, detail) VALUES"
            " (7200001, 'u', 'j', 's', 'send', '{\"channel\": \"sms\"}'),"
            " (7200002, 'u', 'j', 's', 'suppress', '{\"reason\": \"cap\"}'),"
            " (7200003, 'u', 'j', NULL, 'enter', '{}')"
        )
        conn.close()
        store = Store.open(Path(tmp) / "old.db")
        try:
            rows = store.conn.execute("SELECT * FROM action_counts ORDER BY action").fetchall()
        finally:
            store.close()
    assert rows == [
        ("j", 2, "", "enter", "", 1),
        ("j", 2, "s", "send", "sms", 1),
        ("j", 2, "s", "suppress", "cap", 1),
    ]


def test_the_median_time_to_goal_is_of_the_conversions_in_the_range(store: Store) -> None:
    _run_cart(store)  # u2 converts 50 minutes after entering, at 10:50
    store.conn.executemany(
        "INSERT INTO entries (journey_id, user_id, entry_no, entered_at, goal_at)"
        " VALUES ('cart', ?, 1, ?, ?)",
        [
            (f"x{m}", ms("2026-01-06T00:00:00Z") + m, ms("2026-01-06T00:00:00Z") + m + m * 60_000)
            for m in (10, 20, 30, 70)
        ],
    )
    whole = build_report(store, "cart").goal
    assert whole is not None and whole.conversions == 5
    assert whole.median_seconds_to_goal == 30 * 60  # of 10, 20, 30, 50, 70 minutes
    day = build_report(store, "cart", since_ms=ms("2026-01-06T00:00:00Z")).goal
    assert day is not None and day.conversions == 4
    assert day.median_seconds_to_goal == 25 * 60 + 0.0  # (20 + 30) / 2
    assert day.rate == 1.0
