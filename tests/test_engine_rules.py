"""LANGUAGE.md "Semantics the engine keeps", rules 1-9, as properties of the engine.

Each test draws event timelines (users u1..u4, a small alphabet of events on a
30-minute grid over four days around the spring-forward of Europe/Berlin, identify
calls that flip reachability and time zone) and runs a few fixed journeys built to
exercise one rule. Where the rule fixes *what* must happen, a small oracle written
from docs/semantics.md predicts it and the test compares; where it only forbids
something, the test checks the actions and the store for it.

Identify calls fall on the quarter hours between the grid's slots so that they
never share a millisecond with a track event or a timer: the oracles can read "the
profile at time t" without caring how equal times order identify calls (a separate
scenario test pins that case down).
"""

from __future__ import annotations

import hashlib
import itertools
import random
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import ExitStack, closing
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import event, given, settings
from hypothesis import strategies as st

from journeyc.engine.core import Engine
from journeyc.events import Event
from journeyc.messages.render import Renderer
from journeyc.store.abc import Store as AnyStore
from journeyc.store.sqlite import Store
from tests.engine_helpers import (
    HOUR,
    MINUTE,
    RUN_LIMIT_S,
    TMP_DIR,
    PostgresStores,
    compile_files,
    identify,
    iso,
    ms,
    run,
    table_rows,
    time_limit,
    track,
)

# Every test runs on both stores (the ``engine_stores`` fixture): SQLite's held
# simulation, and the engine running live on PostgreSQL.
USERS = ("u1", "u2", "u3", "u4")
T0 = ms("2026-03-27T00:00:00Z")  # a Friday; Berlin springs forward on Sunday 2026-03-29
SLOT = 30 * MINUTE
SLOTS = 4 * 48
ZONES = ("UTC", "Asia/Bangkok", "Europe/Berlin", "America/New_York")
CATEGORIES = ("womenswear", "menswear", "bags")

# ---------------------------------------------------------------- timelines

_traits = st.fixed_dictionaries(
    {},
    optional={
        "push_enabled": st.sampled_from([True, False, None]),
        "email": st.sampled_from(["a@example.com", None]),
        "email_unsubscribed": st.booleans(),
        "phone": st.sampled_from(["+66000000", None]),
        "whatsapp_opt_in": st.booleans(),
        "sms_opt_in": st.booleans(),
        "timezone": st.sampled_from([*ZONES, None]),
    },
)

_track_spec = st.tuples(
    st.just("track"),
    st.sampled_from(USERS),
    st.sampled_from(("cart_abandoned", "cart_viewed", "order_completed", "product_viewed")),
    st.integers(0, SLOTS),
    st.fixed_dictionaries({"category": st.sampled_from(CATEGORIES), "n": st.integers(0, 2)}),
)
_identify_spec = st.tuples(
    st.just("identify"), st.sampled_from(USERS), st.just(""), st.integers(0, SLOTS), _traits
)


def _pair(spec: tuple[str, str, int, int, str]) -> list[tuple[Any, ...]]:
    """An entry and a second event `gap` slots later: the collisions rules 3, 4, 7 need."""
    user, first, gap, slot, second = spec
    return [
        ("track", user, first, slot, {"category": "bags", "n": 1}),
        ("track", user, second, slot + gap, {"category": "bags", "n": 1}),
    ]


_pairs = st.tuples(
    st.sampled_from(USERS),
    st.sampled_from(("cart_abandoned", "product_viewed")),
    st.integers(0, 6),
    st.integers(0, SLOTS),
    st.sampled_from(("order_completed", "cart_viewed")),
).map(_pair)

specs = st.builds(
    lambda singles, pairs: singles + [e for p in pairs for e in p],
    st.lists(st.one_of(_track_spec, _track_spec, _identify_spec), max_size=12),
    st.lists(_pairs, max_size=3),
).flatmap(st.permutations)
"""A timeline in file order: (kind, user, event name, slot, props or traits) tuples."""


def build(spec: list[tuple[Any, ...]]) -> list[Event]:
    """The events of a timeline, message ids fixed by position (so shuffles keep them)."""
    out = []
    for i, (kind, user, name, slot, data) in enumerate(spec):
        if kind == "identify":
            out.append(identify(user, T0 + slot * SLOT + 15 * MINUTE, mid=f"m{i}", **data))
        else:
            out.append(track(user, name, T0 + slot * SLOT, mid=f"m{i}", **data))
    return out


timelines = specs.map(build)

_reachable_traits = st.fixed_dictionaries(
    {
        "push_enabled": st.sampled_from([True, True, False]),
        "email": st.sampled_from(["a@example.com", "a@example.com", None]),
        "phone": st.sampled_from(["+66000000", None]),
        "whatsapp_opt_in": st.booleans(),
        "sms_opt_in": st.booleans(),
        "timezone": st.sampled_from(ZONES),
    }
)
profiled_timelines = st.builds(
    lambda first, rest: (
        [("identify", u, "", -1, t) for u, t in zip(USERS, first, strict=True)] + rest
    ),
    st.tuples(*[_reachable_traits] * len(USERS)),
    specs,
).map(build)
"""Timelines that start with a profile for every user, mostly reachable."""

_collisions = st.lists(
    st.tuples(
        st.sampled_from(USERS),
        st.integers(0, SLOTS),
        st.sampled_from(
            [
                ("product_viewed", 2, "order_completed"),  # at exits_open_goal's due time
                ("product_viewed", 6, "cart_viewed"),  # at waitfor's timeout
                ("product_viewed", 6, "order_completed"),
                ("product_viewed", 0, "order_completed"),  # at the entering instant
                ("product_viewed", 0, "cart_viewed"),
            ]
        ),
    ).map(lambda t: _pair((t[0], t[2][0], t[2][1], t[1], t[2][2]))),
    min_size=1,
    max_size=3,
)
colliding_timelines = (
    st.builds(
        lambda singles, pairs: singles + [e for p in pairs for e in p],
        st.lists(st.one_of(_track_spec, _identify_spec), max_size=8),
        _collisions,
    )
    .flatmap(st.permutations)
    .map(build)
)
"""Timelines where events fall exactly on timers' due times and entering instants."""


def ordered(events: list[Event]) -> list[Event]:
    """The events in the order the engine logs them: by time, stable."""
    return sorted(events, key=lambda e: e.at_ms)


def profile_at(events: list[Event], user: str, at_ms: int) -> dict[str, Any]:
    """The user's traits after every identify call up to ``at_ms`` (null removes)."""
    profile: dict[str, Any] = {}
    for e in ordered(events):
        if e.kind == "identify" and e.user_id == user and e.at_ms <= at_ms:
            for k, v in e.props.items():
                if v is None:
                    profile.pop(k, None)
                else:
                    profile[k] = v
    return profile


def zone_at(events: list[Event], user: str, at_ms: int) -> ZoneInfo:
    tz = profile_at(events, user, at_ms).get("timezone")
    return ZoneInfo(tz if tz in ZONES else "UTC")


def wall(at_ms: int, zone: ZoneInfo) -> datetime:
    return datetime.fromtimestamp(at_ms / 1000, UTC).astimezone(zone).replace(tzinfo=None)


def next_local(
    at_ms: int, hour: int, minute: int, zone: ZoneInfo, weekday: int | None = None
) -> int:
    """The first instant after ``at_ms`` at which the wall clock reaches ``hour:minute``
    (on a date with that ``weekday``); a time in a spring-forward gap is reached when
    the gap ends, found by scanning minutes."""
    day = wall(at_ms, zone).date()
    for _ in range(9):
        target = datetime.combine(day, datetime.min.time()).replace(hour=hour, minute=minute)
        day += timedelta(days=1)
        if weekday is not None and target.weekday() != weekday:
            continue
        x = int(target.replace(tzinfo=zone).timestamp() * 1000)
        if wall(x, zone) != target:  # skipped: scan for the first minute past it
            x -= 3 * HOUR
            while wall(x, zone) < target:
                x += MINUTE
        if x > at_ms:
            return x
    raise AssertionError("no such local time within 9 days")


def hash_percent(key: str) -> float:
    """docs/semantics.md: sha256 of the key read as a number in [0, 100)."""
    return int(hashlib.sha256(key.encode()).hexdigest(), 16) / 2**256 * 100


# ---------------------------------------------------------------- entries from actions


@dataclass
class Entry:
    """One entry of a user into a journey, and the actions that followed it."""

    user: str
    enter_at: int
    index: int  # of the enter action in the run's action list
    steps: list[dict[str, Any]] = field(default_factory=list)  # actions other than goals
    goals: list[dict[str, Any]] = field(default_factory=list)

    @property
    def end(self) -> dict[str, Any] | None:
        ex = [a for a in self.steps if a["action"] == "exit"]
        return ex[0] if ex else None

    def at(self, step: str) -> list[int]:
        return [ms(a["at"]) for a in self.steps if a["step"] == step and a["action"] != "exit"]


def entries(actions: list[dict[str, Any]], journey: str) -> list[Entry]:
    """Every entry into ``journey``; each action of it goes to its user's latest entry."""
    out: list[Entry] = []
    latest: dict[str, Entry] = {}
    for i, a in enumerate(actions):
        if a["journey"] != journey:
            continue
        if a["action"] == "enter":
            latest[a["user"]] = Entry(a["user"], ms(a["at"]), i)
            out.append(latest[a["user"]])
            continue
        entry = latest.get(a["user"])
        assert entry is not None, f"{a} before any enter"
        (entry.goals if a["action"] == "goal" else entry.steps).append(a)
    return out


# ---------------------------------------------------------------- rule 1: entry rules

ENTRY_RULES = {
    "j_once.journey": """
when cart_abandoned
exit when order_completed
wait 3h
""",
    "j_per.journey": """
when cart_abandoned
entry once per 1d
exit when order_completed
wait 3h
""",
    "j_always.journey": """
when cart_abandoned
entry always
exit when order_completed
wait 3h
""",
}


def entry_oracle(events: list[Event], mode: str, per_ms: int = 0) -> dict[str, list[int]]:
    """Enter times per user of `when cart_abandoned / exit when order_completed / wait 3h`.

    At an event's time, a timer due strictly before it has fired, one due at the same
    time has not (events first); events at one time go in log order.
    """
    out: dict[str, list[int]] = defaultdict(list)
    live_until: dict[str, int | None] = defaultdict(lambda: None)
    for e in ordered(events):
        if e.kind != "track":
            continue
        u, t = e.user_id, e.at_ms
        until = live_until[u]
        if until is not None and until < t:
            live_until[u] = until = None
        if e.name == "order_completed" and until is not None:
            live_until[u] = None
        elif e.name == "cart_abandoned" and until is None:
            last = out[u][-1] if out[u] else None
            allowed = (
                last is None or mode == "always" or (mode == "once_per" and t >= last + per_ms)
            )
            if allowed:
                out[u].append(t)
                live_until[u] = t + 3 * HOUR
    return dict(out)


@given(timelines)
def test_rule1_entry_rules_are_never_broken(
    engine_stores: PostgresStores | None, events: list[Event]
) -> None:
    r = run(ENTRY_RULES, events, on=engine_stores)
    acts = r.dicts
    for journey, mode, per in (
        ("j_once", "once", 0),
        ("j_per", "once_per", 24 * HOUR),
        ("j_always", "always", 0),
    ):
        # Never two live instances: per user, enter and exit alternate.
        for user in USERS:
            kinds = [a["action"] for a in acts if a["journey"] == journey and a["user"] == user]
            assert all(k in ("enter", "exit") for k in kinds)
            assert kinds[::2] == ["enter"] * len(kinds[::2]), (journey, user, kinds)
            assert kinds[1::2] == ["exit"] * len(kinds[1::2]), (journey, user, kinds)
        enters: dict[str, list[int]] = defaultdict(list)
        for e in entries(acts, journey):
            enters[e.user].append(e.enter_at)
        for times in enters.values():
            if mode == "once":
                assert len(times) == 1
            if mode == "once_per":
                assert all(b - a >= per for a, b in itertools.pairwise(times))
        # Exactly the entries the rule allows: `always` re-enters after every exit.
        assert dict(enters) == entry_oracle(events, mode, per), journey
    live = [row for row in r.instances if row["status"] in ("active", "waiting")]
    assert len({(row["journey_id"], row["user_id"]) for row in live}) == len(live)


# ---------------------------------------------------------------- rule 2: waits

WAITS = {
    "waits.journey": """
when cart_abandoned
entry always
wait 90m
send inapp "a" as after_wait
wait until 02:30
send inapp "b" as after_until
wait until 10:00 on monday
send inapp "c" as after_monday
wait for never_happens up to 1d
send inapp "d" as after_wait_for
"""
}


@given(timelines)
def test_rule2_waits_resume_exactly_when_due(
    engine_stores: PostgresStores | None, events: list[Event]
) -> None:
    r = run(WAITS, events, on=engine_stores)
    for e in entries(r.dicts, "waits"):
        (t1,) = e.at("after_wait")
        assert t1 == e.enter_at + 90 * MINUTE
        (t2,) = e.at("after_until")
        # `wait until` reads the time zone when the wait starts (events before timers:
        # an identify at that instant would count, but they fall between slots).
        assert t2 == next_local(t1, 2, 30, zone_at(events, e.user, t1)), (iso(t1), e.user)
        (t3,) = e.at("after_monday")
        assert t3 == next_local(t2, 10, 0, zone_at(events, e.user, t2), weekday=0)
        (t4,) = e.at("after_wait_for")
        assert t4 == t3 + 24 * HOUR
        assert e.end is not None
        assert (ms(e.end["at"]), e.end["reason"]) == (t4, "completed")


def test_rule2_wait_until_crosses_the_berlin_gap_at_its_end(
    engine_stores: PostgresStores | None,
) -> None:
    # 02:30 does not exist in Berlin on 2026-03-29: the wait ends at 03:00 CEST.
    events = [
        identify("u1", "2026-03-28T12:00:00", timezone="Europe/Berlin"),
        track("u1", "cart_abandoned", "2026-03-28T20:00:00"),
    ]
    r = run(WAITS, events, until="2026-03-29T12:00:00", on=engine_stores)
    assert [a["at"] for a in r.of(step="after_until")] == ["2026-03-29T01:00:00Z"]


# ---------------------------------------------------------------- rules 3, 4, 7: exits, branches

EXITS = {
    "exits.journey": """
when cart_abandoned
entry always
exit when order_completed
goal order_completed within 1d
send inapp "a" as first
wait 1h as w1
set stage = "mid" as mid
wait 2h as w2
send inapp "b" as last
""",
    "exits_open_goal.journey": """
when product_viewed
entry always
exit when order_completed
goal order_completed
wait 1h as w1
send inapp "c" as late
""",
}


def linear_model(
    events: list[Event], trigger: str, length: int
) -> dict[str, list[tuple[int, int, str]]]:
    """(enter, end, reason) per user of an `entry always` journey entered by ``trigger``,
    left by `exit when order_completed`, that otherwise runs ``length`` ms.

    Before an event at t, a timer due before t has fired; one due at t has not (events
    first). Events at one time go in log order.
    """
    out: dict[str, list[tuple[int, int, str]]] = defaultdict(list)
    live: dict[str, tuple[int, int]] = {}
    for e in ordered(events):
        if e.kind != "track":
            continue
        u, t = e.user_id, e.at_ms
        if u in live and live[u][1] < t:
            out[u].append((*live.pop(u), "completed"))
        if e.name == "order_completed" and u in live:
            out[u].append((live.pop(u)[0], t, "exit_event"))
        elif e.name == trigger and u not in live:
            live[u] = (t, t + length)
    for u, (enter, end) in live.items():
        out[u].append((enter, end, "completed"))
    return dict(out)


def _lives(acts: list[dict[str, Any]], journey: str) -> dict[str, list[tuple[int, int, str]]]:
    out: dict[str, list[tuple[int, int, str]]] = defaultdict(list)
    for e in entries(acts, journey):
        assert e.end is not None
        out[e.user].append((e.enter_at, ms(e.end["at"]), e.end["reason"]))
    return dict(out)


@given(timelines)
def test_rule3_exit_when_wins_over_everything(
    engine_stores: PostgresStores | None, events: list[Event]
) -> None:
    r = run(EXITS, events, on=engine_stores)
    acts = r.dicts
    for journey, trigger, length in (
        ("exits", "cart_abandoned", 3 * HOUR),
        ("exits_open_goal", "product_viewed", HOUR),
    ):
        assert _lives(acts, journey) == linear_model(events, trigger, length), journey
        for e in entries(acts, journey):
            end = e.end
            assert end is not None
            event(f"{journey}: {end['reason']}")
            if end["reason"] != "exit_event":
                if journey == "exits_open_goal":
                    assert e.goals == []  # no `within`: only while the entry runs
                continue
            exit_at = ms(end["at"])
            # Nothing of the entry after its exit, and the exit names the waiting step.
            assert e.steps[-1] is end
            assert all(ms(a["at"]) <= exit_at for a in e.steps)
            assert end["step"] in ("w1", "w2")
            # The goal is handled first: recorded at the same instant, before the exit.
            assert [ms(g["at"]) for g in e.goals] == [exit_at]
            assert acts.index(e.goals[0]) < acts.index(end)


WAIT_FOR = {
    "waitfor.journey": """
when product_viewed
entry always
exit when order_completed
wait for cart_viewed where event.n >= 1 up to 3h as w
  on cart_viewed
    send inapp "seen {{ event.n }} {{ event.category }}" as seen
  on timeout
    send inapp "timeout" as timed_out
send inapp "after {{ event.name }}" as after
"""
}


def wait_for_model(events: list[Event]) -> list[tuple[Any, ...]]:
    """Every action of the `waitfor` journey as (user, at, step, action, detail)."""
    out: list[tuple[Any, ...]] = []
    deadline: dict[str, int] = {}

    def done(u: str, t: int, step: str, body: str) -> None:
        out.append((u, t, step, "send", body))
        out.append((u, t, "after", "send", "after product_viewed"))
        out.append((u, t, "after", "exit", "completed"))
        del deadline[u]

    for e in ordered(events):
        if e.kind != "track":
            continue
        u, t = e.user_id, e.at_ms
        for v in sorted(deadline, key=lambda v: deadline[v]):
            if deadline[v] < t:
                done(v, deadline[v], "timed_out", "timeout")
        if u in deadline and e.name == "order_completed":
            out.append((u, t, "w", "exit", "exit_event"))
            del deadline[u]
        elif u in deadline and e.name == "cart_viewed" and e.props["n"] >= 1:
            done(u, t, "seen", f"seen {e.props['n']} {e.props['category']}")
        elif u not in deadline and e.name == "product_viewed":
            out.append((u, t, None, "enter", None))
            deadline[u] = t + 3 * HOUR
    for v in sorted(deadline, key=lambda v: deadline[v]):
        done(v, deadline[v], "timed_out", "timeout")
    return out


def _by_user(actions: list[tuple[Any, ...]]) -> dict[str, list[tuple[Any, ...]]]:
    out: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    for a in actions:
        out[a[0]].append(a)
    return dict(out)


def _actions_of(acts: list[dict[str, Any]], journey: str) -> dict[str, list[tuple[Any, ...]]]:
    """A journey's actions per user as (user, at, step, action, body or reason)."""
    return _by_user(
        [
            (
                a["user"],
                ms(a["at"]),
                a["step"],
                a["action"],
                a["content"]["body"] if a["action"] == "send" else a.get("reason"),
            )
            for a in acts
            if a["journey"] == journey
        ]
    )


@given(timelines)
def test_rule4_wait_for_runs_exactly_one_branch(
    engine_stores: PostgresStores | None, events: list[Event]
) -> None:
    r = run(WAIT_FOR, events, on=engine_stores)
    # Per user the order is exact (across users the engine interleaves by time).
    assert _actions_of(r.dicts, "waitfor") == _by_user(wait_for_model(events))
    for e in entries(r.dicts, "waitfor"):
        assert e.end is not None
        branches = [a for a in e.steps if a["step"] in ("seen", "timed_out")]
        assert len(branches) == (0 if e.end["reason"] == "exit_event" else 1)
        event(branches[0]["step"] if branches else "exited")


@given(colliding_timelines)
def test_rule7_events_before_timers_at_equal_times(
    engine_stores: PostgresStores | None, events: list[Event]
) -> None:
    r = run({**EXITS, **WAIT_FOR}, events, on=engine_stores)
    acts = r.dicts
    # The models hand an event at exactly a due time to the event, not the timer, and
    # events at one instant go in log order.
    assert _lives(acts, "exits_open_goal") == linear_model(events, "product_viewed", HOUR)
    assert _actions_of(acts, "waitfor") == _by_user(wait_for_model(events))
    for e in entries(acts, "exits_open_goal"):
        end = e.end
        assert end is not None
        if end["reason"] == "exit_event":
            assert e.at("late") == []
            if ms(end["at"]) == e.enter_at + HOUR:
                event("order at the due time")
        else:
            assert e.at("late") == [e.enter_at + HOUR]
    for e in entries(acts, "waitfor"):
        if e.at("seen") == [e.enter_at + 3 * HOUR]:
            event("cart view at the timeout")


def test_rule7_order_at_the_due_time_wins_and_file_order_decides_equal_times(
    engine_stores: PostgresStores | None,
) -> None:
    events = [
        track("u1", "product_viewed", "2026-01-05T10:00:00"),
        track("u1", "order_completed", "2026-01-05T11:00:00"),  # = the wait's due time
        # u2: the order comes first in the file at the entering instant: no exit.
        track("u2", "order_completed", "2026-01-05T10:00:00"),
        track("u2", "product_viewed", "2026-01-05T10:00:00"),
        # u3: entry first, then the order at the same instant: exits at once.
        track("u3", "product_viewed", "2026-01-05T10:00:00"),
        track("u3", "order_completed", "2026-01-05T10:00:00"),
    ]
    r = run({"exits_open_goal.journey": EXITS["exits_open_goal.journey"]}, events, on=engine_stores)
    got = [(a["user"], a["at"][11:16], a["step"], a["action"], a.get("reason")) for a in r.dicts]
    assert sorted(got, key=str) == sorted(
        [
            ("u1", "10:00", None, "enter", None),
            ("u1", "11:00", None, "goal", None),
            ("u1", "11:00", "w1", "exit", "exit_event"),
            ("u2", "10:00", None, "enter", None),
            ("u2", "11:00", "late", "send", None),
            ("u2", "11:00", "late", "exit", "completed"),
            ("u3", "10:00", None, "enter", None),
            ("u3", "10:00", None, "goal", None),
            ("u3", "10:00", "w1", "exit", "exit_event"),
        ],
        key=str,
    )


# ---------------------------------------------------------------- rules 5 and 6: sends

SENDS = {
    "sends.journey": """
when cart_abandoned
entry always
cap 2 per 6h
quiet hours 22:00-07:00 skip
holdout 30%
send push or whatsapp "first" as s1
wait 1h
send email or sms "second" as s2
wait 2h
send inapp "third" as s3
""",
    "deferred.journey": """
when cart_viewed
entry always
quiet hours 21:00-08:00
send push or inapp "d" as d1
""",
}


def reachable(channel: str, p: dict[str, Any]) -> bool:
    """docs/semantics.md's default reachability rules."""
    return {
        "push": p.get("push_enabled") is True,
        "email": p.get("email") is not None and not p.get("email_unsubscribed"),
        "sms": p.get("phone") is not None and p.get("sms_opt_in") is True,
        "whatsapp": p.get("phone") is not None and p.get("whatsapp_opt_in") is True,
        "inapp": True,
    }[channel]


def in_quiet(at_ms: int, zone: ZoneInfo, start: int, end: int) -> bool:
    w = wall(at_ms, zone)
    m = w.hour * 60 + w.minute
    return m >= start or m < end


@given(profiled_timelines)
def test_rule5_each_send_step_sends_or_suppresses_once(
    engine_stores: PostgresStores | None, events: list[Event]
) -> None:
    r = run(SENDS, events, on=engine_stores)
    acts = r.dicts
    steps = {"s1": ("push", "whatsapp"), "s2": ("email", "sms"), "s3": ("inapp",)}
    for e in entries(acts, "sends"):
        held = hash_percent(f"sends:holdout:{e.user}") < 30
        for step, channels in steps.items():
            outcomes = [a for a in e.steps if a["step"] == step and a["action"] != "exit"]
            assert len(outcomes) == 1, (step, outcomes)
            (o,) = outcomes
            t = ms(o["at"])
            profile = profile_at(events, e.user, t)
            channel = next((c for c in channels if reachable(c, profile)), None)
            recent = [
                a
                for a in acts[: acts.index(o)]
                if a["journey"] == "sends"
                and a["user"] == e.user
                and a["action"] == "send"
                and ms(a["at"]) > t - 6 * HOUR
            ]
            if held:
                expected = ("suppress", "holdout")
            elif channel is None:
                expected = ("suppress", "no_channel")
            elif in_quiet(t, zone_at(events, e.user, t), 22 * 60, 7 * 60):
                expected = ("suppress", "quiet_hours")
            elif len(recent) >= 2:
                expected = ("suppress", "cap")
            else:
                expected = ("send", channel)
            assert (o["action"], o.get("reason", o.get("channel"))) == expected, (e.user, step)
            event(f"{step}: {expected[1]}")
        # The journey goes on after a suppressed send, to its end.
        assert e.at("s1")[0] + 3 * HOUR == e.at("s3")[0]
        assert e.end is not None
        assert e.end["reason"] == "completed"


def _quiet_end(at_ms: int, zone: ZoneInfo) -> int:
    x = at_ms - at_ms % MINUTE + MINUTE
    while in_quiet(x, zone, 21 * 60, 8 * 60):
        x += MINUTE
    return x


@given(profiled_timelines)
def test_rule5_quiet_hours_defer_to_the_window_end(
    engine_stores: PostgresStores | None, events: list[Event]
) -> None:
    r = run(SENDS, events, on=engine_stores)
    for e in entries(r.dicts, "deferred"):
        # The send runs at the first instant outside the window, in the user's zone
        # as read when it is held (and again when it runs).
        t = e.enter_at
        while in_quiet(t, zone_at(events, e.user, t), 21 * 60, 8 * 60):
            t = _quiet_end(t, zone_at(events, e.user, t))
        outcomes = [a for a in e.steps if a["step"] == "d1" and a["action"] != "exit"]
        assert [(ms(a["at"]), a["action"]) for a in outcomes] == [(t, "send")]
        assert outcomes[0]["channel"] == (
            "push" if reachable("push", profile_at(events, e.user, t)) else "inapp"
        )


ALL = {**ENTRY_RULES, **EXITS, **WAIT_FOR, **SENDS}


@given(profiled_timelines)
def test_rule6_one_outbox_row_per_journey_user_entry_step(
    engine_stores: PostgresStores | None, events: list[Event]
) -> None:
    r = run(ALL, events, on=engine_stores)
    # The entry each send or suppression belongs to, counted from the trace: the
    # rows' keys name exactly those, once each.
    entry_no: Counter[tuple[str, str]] = Counter()
    keys = []
    for a in r.dicts:
        if a["action"] == "enter":
            entry_no[(a["journey"], a["user"])] += 1
        elif a["action"] in ("send", "suppress"):
            keys.append((a["journey"], a["user"], entry_no[(a["journey"], a["user"])], a["step"]))
    assert len(keys) == len(set(keys))
    assert sorted(row["key"] for row in r.outbox) == sorted("{}:{}:{}:{}".format(*k) for k in keys)
    # Each send or suppress action has its row, and nothing else does.
    outcomes = sorted(
        (a["journey"], a["user"], a["step"], ms(a["at"]), a.get("channel"), a["action"])
        for a in r.dicts
        if a["action"] in ("send", "suppress")
    )
    rows = sorted(
        (
            row["journey_id"],
            row["user_id"],
            row["step"],
            row["created_at"],
            row["channel"],
            "suppress" if row["status"] == "suppressed" else "send",
        )
        for row in r.outbox
    )
    assert rows == outcomes


class _CrashingRenderer(Renderer):
    """Raises (like a process dying mid-step) on its ``n``-th render, once."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.left = n

    def render(self, *args: Any, **kwargs: Any) -> dict[str, str]:
        if self.left == 0:
            self.left = -1
            raise _CrashError
        self.left -= 1
        return super().render(*args, **kwargs)


class _CrashError(Exception):
    pass


def _drive(project: Any, events: list[Event], store: AnyStore, crash_at: int | None) -> list[str]:
    """simulate()'s clock loop, with an engine that crashes once and is restarted: a
    new Engine over the same store, the same journeys deployed, the same instant again."""
    live = ordered(events)
    start = live[0].at_ms

    def boot(renderer: Renderer | None) -> Engine:
        engine = Engine(store, None, renderer)
        engine.deploy(project, start)
        return engine

    engine = boot(None if crash_at is None else _CrashingRenderer(crash_at))
    lines: list[str] = []
    i = 0
    while True:
        candidates = (live[i].at_ms if i < len(live) else None, engine.next_wake())
        nxt = [t for t in candidates if t is not None]
        if not nxt:
            return lines
        now = min(nxt)
        if i < len(live) and live[i].at_ms == now:
            j = i
            while j < len(live) and live[j].at_ms == now:
                j += 1
            store.append_events(live[i:j])
            i = j
        try:
            lines += [a.to_json() for a in engine.advance(now)]
        except _CrashError:
            event("crashed and restarted")
            engine = boot(None)
            lines += [a.to_json() for a in engine.advance(now)]


@settings(max_examples=max(10, settings.default.max_examples // 2))
@given(profiled_timelines, st.integers(0, 6))
def test_rule6_a_crash_mid_step_neither_loses_nor_repeats_a_send(
    engine_stores: PostgresStores | None, events: list[Event], crash_at: int
) -> None:
    project = compile_files(ALL)
    with ExitStack() as stack:
        if engine_stores is None:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(dir=TMP_DIR)))
            clean: AnyStore = stack.enter_context(closing(Store.open(tmp / "clean.db")))
            crashed: AnyStore = stack.enter_context(closing(Store.open(tmp / "crashed.db")))
        else:
            clean = stack.enter_context(engine_stores.fresh(0))
            crashed = stack.enter_context(engine_stores.fresh(1))
        with time_limit(2 * RUN_LIMIT_S):
            want = _drive(project, events, clean, None)
            got = _drive(project, events, crashed, crash_at)
        cols = ("key", "journey_id", "user_id", "step", "channel", "content", "status")
        rows = [
            sorted(tuple(row[c] for c in (*cols, "created_at")) for row in table_rows(s, "outbox"))
            for s in (clean, crashed)
        ]
    # The restarted engine redoes the crashed instant from its last commit: the same
    # actions, and one outbox row per send.
    assert got == want
    assert rows[1] == rows[0]
    assert len({r[0] for r in rows[1]}) == len(rows[1])


# ---------------------------------------------------------------- rule 8: splits and holdouts

SPLITS = {
    "ab.journey": """
when cart_abandoned
entry always
holdout 20%
wait 1h
split
  50% as a
    send inapp "A" as sa
  50% as b
    send inapp "B" as sb
""",
    "abc.journey": """
when cart_viewed
entry once per 2h
split
  20% as x
    set arm = "x"
  30% as y
    set arm = "y"
  50% as z
    set arm = "z"
""",
}


def _arms(r: Any) -> dict[tuple[str, str], set[tuple[str | None, int]]]:
    out: dict[tuple[str, str], set[tuple[str | None, int]]] = defaultdict(set)
    for row in r.entries:
        out[(row["journey_id"], row["user_id"])].add((row["arm"], row["holdout"]))
    return out


@settings(max_examples=max(10, settings.default.max_examples // 2))
@given(timelines, timelines)
def test_rule8_arms_and_holdouts_depend_only_on_journey_and_user(
    engine_stores: PostgresStores | None, one: list[Event], two: list[Event]
) -> None:
    r1, r2 = run(SPLITS, one, on=engine_stores), run(SPLITS, two, on=engine_stores)
    arms1, arms2 = _arms(r1), _arms(r2)
    for key, got in arms1.items():
        assert len(got) == 1, (key, got)  # every entry of the user: one arm, one holdout
        if key in arms2:
            assert arms2[key] == got, key
    for r, arms in ((r1, arms1), (r2, arms2)):
        for a in r.dicts:
            if a["journey"] == "ab" and a["step"] in ("sa", "sb") and a["action"] != "exit":
                ((arm, held),) = arms[("ab", a["user"])]
                assert a["step"] == f"s{arm}"
                assert (a["action"] == "suppress") == bool(held)
                assert bool(held) == (hash_percent(f"ab:holdout:{a['user']}") < 20)
            if a["journey"] == "abc" and a["action"] == "set":
                ((arm, _),) = arms[("abc", a["user"])]
                assert a["value"] == arm
    # And the arm is the one docs/semantics.md's hash picks.
    shares = {
        "ab": ("2", [(50, "a"), (100, "b")]),
        "abc": ("1", [(20, "x"), (50, "y"), (100, "z")]),
    }
    for (journey, user), got in arms1.items():
        step, cumulative = shares[journey]
        b = hash_percent(f"{journey}:{step}:{user}")
        ((arm, _),) = got
        assert arm == next(name for top, name in cumulative if b < top)


# ---------------------------------------------------------------- rule 9: determinism

EVERYTHING = {
    **ALL,
    **WAITS,
    **SPLITS,
    "chain.journey": """
when order_completed
entry always
set last_category = event.category
track thank_you with category = event.category
wait 30m
if count(cart_viewed within 1d) >= 2
  send inapp "busy {{ user.last_category }}" as busy
""",
    "thanks.journey": """
when thank_you
entry always
send push or email "thanks for {{ event.category }}" as thanks
""",
}


def _shuffled(events: list[Event], rng: random.Random) -> list[Event]:
    """The events in random order, except that events with equal timestamps keep their
    relative order (which the engine honours)."""
    out = list(events)
    rng.shuffle(out)
    by_time: dict[int, Iterator[Event]] = {}
    for t in {e.at_ms for e in events}:
        by_time[t] = iter([e for e in events if e.at_ms == t])
    return [next(by_time[e.at_ms]) for e in out]


@settings(max_examples=max(10, settings.default.max_examples // 4))
@given(timelines, st.randoms(use_true_random=False))
def test_rule9_same_input_same_lines(
    engine_stores: PostgresStores | None, events: list[Event], rng: random.Random
) -> None:
    project = compile_files(EVERYTHING)
    first = run(project, events, on=engine_stores).lines
    assert run(project, events, on=engine_stores).lines == first
    shuffled = _shuffled(events, rng)
    assert [e.message_id for e in ordered(shuffled)] == [e.message_id for e in ordered(events)]
    assert run(project, shuffled, on=engine_stores).lines == first
    # Something happened worth comparing, most of the time.
    assert first or not [e for e in events if e.kind == "track"]
