"""Segments kept in the store: entering and leaving by data and by time alone.

The property at the end is the contract of engine/segments.py: after any sequence of
events, profile changes and clock moves, the stored membership of every user in every
segment equals a direct evaluation of the segment's expression at that moment.
"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from journeyc.engine.aggregates import StoreAggregates, from_ms
from journeyc.engine.core import Engine
from journeyc.engine.expr import Scope, compile_predicate
from journeyc.engine.segments import FALLBACK_MS, Horizon, analyse, segment_resolver
from journeyc.events import Event
from journeyc.store.sqlite import Store
from tests.engine_helpers import (
    DAY,
    HOUR,
    MINUTE,
    TMP_DIR,
    compile_files,
    identify,
    ms,
    run,
    track,
)

T0 = "2026-01-05T09:00:00Z"


def members(store: Store, segment: str) -> set[str]:
    return {
        u
        for (u,) in store.conn.execute(
            "SELECT user_id FROM segment_members WHERE segment = ? AND member = 1", (segment,)
        )
    }


def enters(r: Any, journey: str) -> list[tuple[str, str]]:
    return [(a["at"], a["user"]) for a in r.of(journey=journey, action="enter")]


# ---------------------------------------------------------------- by data


def test_an_event_that_makes_the_user_a_member_enters_at_its_time() -> None:
    project = """
segment big_spender = sum(order_completed.amount within 365d) >= 1000

journey vip
  when entering big_spender
  send inapp "welcome" as hi
"""
    r = run(
        {"s.journey": project},
        [
            track("u1", "order_completed", "2026-01-05T09:00:00", amount=600),
            track("u2", "order_completed", "2026-01-05T10:00:00", amount=100),
            track("u1", "order_completed", "2026-01-05T12:00:00", amount=500),
        ],
    )
    assert enters(r, "vip") == [("2026-01-05T12:00:00Z", "u1")]


def test_a_first_event_evaluates_every_segment() -> None:
    # `new_customer` reads only order_completed, but a user's first event of any kind
    # is when the engine first sees them: they are a member from then on.
    project = """
segment new_customer = count(order_completed) == 0

journey hello
  when entering new_customer
  send inapp "hello" as hi
"""
    r = run({"s.journey": project}, [track("u1", "product_viewed", "2026-01-05T09:00:00")])
    assert enters(r, "hello") == [("2026-01-05T09:00:00Z", "u1")]


def test_identify_and_set_steps_move_users_between_segments() -> None:
    project = """
segment gold = tier == "gold"

journey upgrade
  when order_completed where event.amount >= 1000
  set tier = "gold"

journey gold_welcome
  when entering gold
  send inapp "welcome to gold" as hi

journey gold_bye
  when leaving gold
  send inapp "sorry to see you go" as bye
"""
    r = run(
        {"s.journey": project},
        [
            identify("u1", "2026-01-05T08:00:00", tier="silver"),
            identify("u2", "2026-01-05T08:00:00", tier="gold"),
            track("u1", "order_completed", "2026-01-05T09:00:00", amount=1500),
            identify("u2", "2026-01-05T10:00:00", tier="silver"),
        ],
    )
    assert enters(r, "gold_welcome") == [
        ("2026-01-05T08:00:00Z", "u2"),
        ("2026-01-05T09:00:00Z", "u1"),
    ]
    assert enters(r, "gold_bye") == [("2026-01-05T10:00:00Z", "u2")]


def test_a_segment_using_another_changes_with_it() -> None:
    project = """
segment buyer = count(order_completed) >= 1
segment big_buyer = segment buyer and tier == "gold"

journey big
  when entering big_buyer
  send inapp "hi" as hi
"""
    r = run(
        {"s.journey": project},
        [
            identify("u1", "2026-01-05T08:00:00", tier="gold"),
            track("u1", "order_completed", "2026-01-05T09:00:00"),
        ],
    )
    assert enters(r, "big") == [("2026-01-05T09:00:00Z", "u1")]


# ---------------------------------------------------------------- by time alone


def test_days_since_threshold_is_entered_at_the_exact_time() -> None:
    project = """
segment dormant = days_since(last(order_completed).at) >= 180
segment at_risk = days_since(last(order_completed).at) between 60 and 179

journey winback
  when entering at_risk
  send inapp "we miss you" as nudge

journey lost
  when entering dormant
  send inapp "come back" as nudge

journey lapsing
  when leaving at_risk
  send inapp "last chance" as nudge
"""
    order = ms("2025-06-20T08:30:00Z")
    r = run(
        {"s.journey": project},
        [track("u1", "order_completed", order)],
        until="2026-01-05T00:00:00Z",
    )
    assert enters(r, "winback") == [("2025-08-19T08:30:00Z", "u1")]
    assert enters(r, "lost") == [("2025-12-17T08:30:00Z", "u1")]
    assert enters(r, "lapsing") == [("2025-12-17T08:30:00Z", "u1")]


def test_a_window_that_empties_makes_the_user_leave_when_the_event_ages_out() -> None:
    project = """
segment browser = count(product_viewed within 1d) >= 2 and count(cart_updated within 1d) == 0

journey stopped_browsing
  when leaving browser
  send inapp "still looking?" as nudge
"""
    r = run(
        {"s.journey": project},
        [
            track("u1", "product_viewed", "2026-01-05T09:00:00"),
            track("u1", "product_viewed", "2026-01-05T11:00:00"),
        ],
        until="2026-01-08T00:00:00Z",
    )
    # Two views make a browser at 11:00; the 09:00 view leaves the 1-day window at
    # 09:00 the next day.
    assert enters(r, "stopped_browsing") == [("2026-01-06T09:00:00Z", "u1")]


def test_history_before_from_sets_membership_silently() -> None:
    project = """
segment dormant = days_since(last(order_completed).at) >= 180

journey lost
  when entering dormant
  send inapp "come back" as nudge
"""
    events = [
        track("u1", "order_completed", "2025-01-10T08:00:00"),
        track("u2", "order_completed", "2025-12-01T08:00:00"),
        track("u3", "product_viewed", "2026-01-06T08:00:00"),
    ]
    r = run({"s.journey": project}, events, start="2026-01-05T00:00:00Z", until="2026-06-01")
    # u1 was dormant before the simulation started: no entry. u2 becomes dormant
    # 180 days after their order, inside the run.
    assert enters(r, "lost") == [("2026-05-30T08:00:00Z", "u2")]


def test_membership_is_kept_with_since_and_changes_log() -> None:
    project = compile_files(
        {
            "s.journey": """
segment buyer = count(order_completed within 7d) >= 1

journey j
  when visit
  send inapp "x" as x
"""
        }
    )
    with tempfile.TemporaryDirectory(dir=TMP_DIR) as tmp:
        store = Store.open(Path(tmp) / "s.db")
        engine = Engine(store)
        engine.deploy(project, ms(T0))
        store.append_events([track("u1", "order_completed", T0)])
        engine.advance(ms(T0))
        assert members(store, "buyer") == {"u1"}
        assert engine.next_wake() == ms(T0) + 7 * DAY
        engine.advance(ms(T0) + 7 * DAY)
        assert members(store, "buyer") == set()
        changes = store.conn.execute(
            "SELECT user_id, at, entered FROM segment_changes ORDER BY at"
        ).fetchall()
        assert changes == [("u1", ms(T0), 1), ("u1", ms(T0) + 7 * DAY, 0)]
        store.close()


def test_a_changed_definition_is_evaluated_again_for_everyone_silently() -> None:
    first = compile_files({"s.journey": "segment big = count(order_completed) >= 3\n"})
    second = compile_files({"s.journey": "segment big = count(order_completed) >= 1\n"})
    with tempfile.TemporaryDirectory(dir=TMP_DIR) as tmp:
        store = Store.open(Path(tmp) / "s.db")
        engine = Engine(store)
        engine.deploy(first, ms(T0))
        store.append_events([track("u1", "order_completed", T0)])
        engine.advance(ms(T0))
        assert members(store, "big") == set()
        engine.deploy(second, ms(T0) + HOUR)
        assert members(store, "big") == {"u1"}
        # A silent baseline: no change is logged for a definition change.
        assert store.conn.execute("SELECT count(*) FROM segment_changes").fetchone() == (0,)
        store.close()


# ---------------------------------------------------------------- the horizon


def _horizon_of(expr_src: str, events: list[Event], now: str, **traits: Any) -> int | None:
    project = compile_files({"h.journey": f"segment s = {expr_src}\n"})
    with tempfile.TemporaryDirectory(dir=TMP_DIR) as tmp:
        store = Store.open(Path(tmp) / "h.db")
        store.append_events(events)
        scope = Scope(
            now=from_ms(ms(now)),
            profile=traits,
            aggregates=StoreAggregates(store.aggregates()),
            user_id="u1",
        )
        try:
            return Horizon(store.event_history(), project.segments).next_change(
                project.segments["s"].expr, scope
            )
        finally:
            store.close()


def test_horizon_of_the_usual_forms() -> None:
    order = [track("u1", "order_completed", "2026-01-01T00:00:00")]
    now = "2026-01-10T12:00:00Z"
    assert _horizon_of("days_since(last(order_completed).at) >= 30", order, now) == ms(
        "2026-01-31T00:00:00Z"
    )
    # between 60 and 179: in at day 60, out at day 180.
    assert _horizon_of("days_since(last(order_completed).at) between 60 and 179", order, now) == ms(
        "2026-03-02T00:00:00Z"
    )
    # Already past every threshold: never again by time.
    assert _horizon_of("days_since(last(order_completed).at) >= 2", order, now) is None
    # A window: the order leaves `within 30d` at exactly 30 days.
    assert _horizon_of("count(order_completed within 30d) >= 1", order, now) == ms(
        "2026-01-31T00:00:00Z"
    )
    # No window, no timed form: only data changes it.
    assert _horizon_of('count(order_completed) >= 1 and tier == "x"', order, now) is None
    # now against a timestamp attribute.
    assert _horizon_of(
        "now >= trial_ends_at", order, now, trial_ends_at="2026-02-01T00:00:00Z"
    ) == ms("2026-02-01T00:00:00Z")
    # A form without a closed answer is looked at again within the hour.
    assert _horizon_of("now > last(order_completed).at + 30d", order, now) == ms(
        "2026-01-31T00:00:00Z"
    )
    assert _horizon_of("now == now", order, now) == ms(now) + FALLBACK_MS


# ---------------------------------------------------------------- the property

SEGMENTS = """
segment recent = count(order_completed within 2d) >= 1
segment many_views = count(product_viewed within 6h) >= 3 and count(cart_updated within 6h) == 0
segment lapsed = days_since(last(order_completed).at) >= 3
segment lapsing = hours_since(last(order_completed).at) between 20 and 50
segment spender = sum(order_completed.amount within 3d) >= 100
segment gold = tier == "gold"
segment gold_recent = segment gold and segment recent
segment not_lapsed = not segment lapsed and count(order_completed) >= 1
segment trial_over = now >= trial_ends_at
"""

_STEP = st.one_of(
    st.tuples(
        st.just("track"),
        st.sampled_from(["order_completed", "product_viewed", "cart_updated"]),
        st.integers(0, 80),
    ),
    st.tuples(st.just("identify"), st.sampled_from(["gold", "silver"]), st.integers(0, 3)),
)


@given(
    steps=st.lists(
        st.tuples(
            st.sampled_from(["u1", "u2", "u3"]),
            _STEP,
            st.sampled_from([0, 1, 10 * MINUTE, 5 * HOUR, 19 * HOUR, DAY, 2 * DAY + 1]),
        ),
        max_size=14,
    ),
    history=st.integers(0, 6),
)
def test_stored_membership_equals_direct_evaluation(steps: list[Any], history: int) -> None:
    # The first `history` steps are logged before the segments are deployed (as
    # `simulate --from` does): the deployment's set-based refresh stores them, and
    # the engine goes on from there. A user without a row is out.
    project = compile_files({"seg.journey": SEGMENTS})
    preds = {n: compile_predicate(s.expr) for n, s in project.segments.items()}
    t = ms("2026-01-05T00:00:00Z")
    with tempfile.TemporaryDirectory(dir=TMP_DIR) as tmp:
        store = Store.open(Path(tmp) / "p.db")
        engine = Engine(store)
        aggs = StoreAggregates(store.aggregates())
        trial = datetime(2026, 1, 6, 3, tzinfo=UTC).isoformat()
        for i, (user, step, gap) in enumerate(steps):
            t += gap
            if i == history:
                if history:
                    engine.skip_history()
                engine.deploy(project, t)
            if step[0] == "track":
                store.append_events([track(user, step[1], t, f"m{i}", amount=step[2])])
            else:
                store.append_events(
                    [identify(user, t, f"m{i}", tier=step[1], trial_ends_at=trial)],
                    merge_traits=i < history,
                )
            if i < history:
                continue
            engine.advance(t)
            seen = sorted({u for u, _, _ in steps[: i + 1]})
            stored = {
                (u, s): bool(m)
                for u, s, m in store.conn.execute(
                    "SELECT user_id, segment, member FROM segment_members"
                )
            }
            for u in seen:
                scope = Scope(
                    now=from_ms(t),
                    profile=store.get_profile(u),
                    aggregates=aggs,
                    segments=segment_resolver(preds),
                    user_id=u,
                )
                for name, pred in preds.items():
                    assert stored.get((u, name), False) == pred(scope), (u, name, from_ms(t))
        store.close()


def test_analyse_closes_dependencies_over_used_segments() -> None:
    project = compile_files({"seg.journey": SEGMENTS})
    infos = analyse(project.segments)
    assert infos["gold_recent"].events == frozenset({"order_completed"})
    assert infos["gold_recent"].traits
    assert not infos["recent"].traits
    assert infos["many_views"].events == frozenset({"product_viewed", "cart_updated"})
    # The hash covers the segments used: changing `recent` changes `gold_recent`.
    changed = compile_files(
        {"seg.journey": SEGMENTS.replace("within 2d) >= 1\n", "within 3d) >= 1\n", 1)}
    )
    again = analyse(changed.segments)
    assert again["gold_recent"].hash != infos["gold_recent"].hash
    assert again["gold"].hash == infos["gold"].hash
