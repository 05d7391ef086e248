"""The reference interpreter against hand-worked scenarios of docs/semantics.md.

Each test writes the expected actions out in full (``content`` is not part of them),
so a change to the reference that changes behaviour shows up here first.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from journeyc.events import Event, parse_event
from journeyc.lang import ast
from journeyc.lang.checker import check_project
from journeyc.lang.parser import parse_source
from journeyc.lang.project import Project
from tests.reference import hash_percent, reference_simulate, step_names

MESSAGES = """
message cart_reminder
  push
    title "Still thinking about {{ event.product_name }}?"
  whatsapp
    body "Your cart is waiting"
  email
    subject "You left {{ event.item_count }} items behind"
    text "Come back"

message discount_offer
  email
    subject "{{ percent }}% off, just for you"
    html "<p>Use <b>{{ coupon }}</b> at checkout.</p>"
"""

FIRST = """when cart_abandoned
wait 30m
if not push_enabled
  send whatsapp cart_reminder
else
  send push cart_reminder
"""

CART_RECOVERY = """journey cart_recovery "Cart abandonment recovery"
  when cart_abandoned where event.cart_value >= 50
  entry once per 7d
  exit when order_completed
  goal order_completed within 3d
  quiet hours 22:00-08:00
  holdout 10%

  wait 30m as first_nudge
  send push or whatsapp or email cart_reminder as reminder
  wait for cart_viewed up to 2d
    on cart_viewed
      send push "Still deciding? Your {{ event.item_count }} items are saved."
    on timeout
      if lifecycle in ["new", "dormant"]
        send email discount_offer with coupon = "COMEBACK10", percent = 10
"""


def ms(text: str) -> int:
    """Epoch milliseconds of ``2026-01-05T10:00`` (UTC)."""
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def track(user: str, name: str, at: str, **props: Any) -> Event:
    obj = {"type": "track", "userId": user, "event": name, "timestamp": at + "Z"}
    return parse_event({**obj, "properties": props}, received_ms=0)


def identify(user: str, at: str, **traits: Any) -> Event:
    obj = {"type": "identify", "userId": user, "timestamp": at + "Z", "traits": traits}
    return parse_event(obj, received_ms=0)


def run(files: dict[str, str], events: list[Event], **kw: Any) -> list[dict[str, Any]]:
    """Check the project (it must have no errors), then simulate it."""
    results = [parse_source(text, name) for name, text in files.items()]
    errors = [d for d in check_project(Project(results)) if d.severity == "error"]
    assert not errors, errors
    return reference_simulate([r.tree for r in results if r.tree is not None], events, **kw)


_COMMON = ("at", "user", "journey", "step", "action")


def brief(actions: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """Each action as (time, journey, step, action, the rest of its keys in order)."""
    out = []
    for a in actions:
        rest = tuple(
            v for k, v in a.items() if k not in ("at", "user", "journey", "step", "action")
        )
        out.append((a["at"][11:16], a["journey"], a["step"], a["action"], *rest))
    return out


def user_where(test: Any, prefix: str = "u") -> str:
    """The first user id ``u0``, ``u1`` … for which ``test(id)`` holds."""
    return next(f"{prefix}{n}" for n in range(10_000) if test(f"{prefix}{n}"))


# ---------------------------------------------------------------- the first journey


def test_first_journey_push_on_sends_push() -> None:
    events = [
        identify("u1", "2026-01-05T09:00:00", push_enabled=True),
        track("u1", "cart_abandoned", "2026-01-05T10:00:00"),
    ]
    out = run({"cart_abandoned.journey": FIRST, "m.journey": MESSAGES}, events)
    assert out == [
        {"at": "2026-01-05T10:00:00Z", "user": "u1", "journey": "cart_abandoned",
         "step": None, "action": "enter"},
        {"at": "2026-01-05T10:30:00Z", "user": "u1", "journey": "cart_abandoned",
         "step": "2.2.1", "action": "send", "channel": "push", "message": "cart_reminder"},
        {"at": "2026-01-05T10:30:00Z", "user": "u1", "journey": "cart_abandoned",
         "step": "2.2.1", "action": "exit", "reason": "completed"},
    ]  # fmt: skip


def test_first_journey_push_off_sends_whatsapp_or_nothing() -> None:
    events = [
        identify("u1", "2026-01-05T09:00:00", phone="+66", whatsapp_opt_in=True),
        track("u1", "cart_abandoned", "2026-01-05T10:00:00"),
        track("u2", "cart_abandoned", "2026-01-05T10:00:00"),
    ]
    out = run({"cart_abandoned.journey": FIRST, "m.journey": MESSAGES}, events)
    assert [(a["user"], *b) for a, b in zip(out, brief(out), strict=True)] == [
        ("u1", "10:00", "cart_abandoned", None, "enter"),
        ("u2", "10:00", "cart_abandoned", None, "enter"),
        ("u1", "10:30", "cart_abandoned", "2.1.1", "send", "whatsapp", "cart_reminder"),
        ("u1", "10:30", "cart_abandoned", "2.1.1", "exit", "completed"),
        ("u2", "10:30", "cart_abandoned", "2.1.1", "suppress", "no_channel"),
        ("u2", "10:30", "cart_abandoned", "2.1.1", "exit", "completed"),
    ]


def test_identify_null_removes_a_trait() -> None:
    events = [
        identify("u1", "2026-01-05T09:00:00", push_enabled=True),
        identify("u1", "2026-01-05T09:30:00", push_enabled=None, phone="+66"),
        track("u1", "cart_abandoned", "2026-01-05T10:00:00"),
    ]
    out = run({"cart_abandoned.journey": FIRST, "m.journey": MESSAGES}, events)
    assert brief(out)[1] == ("10:30", "cart_abandoned", "2.1.1", "suppress", "no_channel")


# ---------------------------------------------------------------- cart recovery


def _not_held_out(user: str) -> bool:
    return hash_percent(f"cart_recovery:holdout:{user}") >= 10


def test_cart_recovery_exit_when_after_goal() -> None:
    u = user_where(_not_held_out)
    events = [
        track(u, "cart_abandoned", "2026-01-05T10:00:00", cart_value=80),
        track(u, "order_completed", "2026-01-05T10:10:00"),
    ]
    out = run({"c.journey": CART_RECOVERY, "m.journey": MESSAGES}, events)
    assert brief(out) == [
        ("10:00", "cart_recovery", None, "enter"),
        ("10:10", "cart_recovery", None, "goal"),
        ("10:10", "cart_recovery", "first_nudge", "exit", "exit_event"),
    ]


def test_cart_recovery_where_keeps_small_carts_out() -> None:
    events = [track("u1", "cart_abandoned", "2026-01-05T10:00:00", cart_value=49.99)]
    assert run({"c.journey": CART_RECOVERY, "m.journey": MESSAGES}, events) == []


def test_cart_recovery_wait_for_event_branch() -> None:
    u = user_where(_not_held_out)
    events = [
        identify(u, "2026-01-05T09:00:00", push_enabled=True),
        track(u, "cart_abandoned", "2026-01-05T10:00:00", cart_value=80),
        track(u, "cart_viewed", "2026-01-05T12:00:00", item_count=2),
    ]
    out = run({"c.journey": CART_RECOVERY, "m.journey": MESSAGES}, events)
    assert brief(out) == [
        ("10:00", "cart_recovery", None, "enter"),
        ("10:30", "cart_recovery", "reminder", "send", "push", "cart_reminder"),
        ("12:00", "cart_recovery", "3.1.1", "send", "push", None),
        ("12:00", "cart_recovery", "3.1.1", "exit", "completed"),
    ]


def test_cart_recovery_wait_for_timeout_branch() -> None:
    u = user_where(_not_held_out)
    events = [
        identify(u, "2026-01-05T09:00:00", email="a@b.c", lifecycle="dormant"),
        track(u, "cart_abandoned", "2026-01-05T10:00:00", cart_value=80),
        # after the goal's 3d: not a goal, and no longer an exit (the entry ended)
        track(u, "order_completed", "2026-01-08T10:30:01"),
    ]
    out = run({"c.journey": CART_RECOVERY, "m.journey": MESSAGES}, events)
    assert [(a["at"], *b[1:]) for a, b in zip(out, brief(out), strict=True)] == [
        ("2026-01-05T10:00:00Z", "cart_recovery", None, "enter"),
        ("2026-01-05T10:30:00Z", "cart_recovery", "reminder", "send", "email", "cart_reminder"),
        ("2026-01-07T10:30:00Z", "cart_recovery", "3.2.1.1.1", "send", "email", "discount_offer"),
        ("2026-01-07T10:30:00Z", "cart_recovery", "3.2.1.1.1", "exit", "completed"),
    ]


def test_cart_recovery_timeout_without_matching_branch_goes_straight_on() -> None:
    u = user_where(_not_held_out)
    events = [
        identify(u, "2026-01-05T09:00:00", email="a@b.c", lifecycle="loyal"),
        track(u, "cart_abandoned", "2026-01-05T10:00:00", cart_value=80),
    ]
    out = run({"c.journey": CART_RECOVERY, "m.journey": MESSAGES}, events)
    # The `if` is the last step run: nothing held, no else.
    assert brief(out)[-1] == ("10:30", "cart_recovery", "3.2.1", "exit", "completed")
    assert out[-1]["at"] == "2026-01-07T10:30:00Z"


def test_cart_recovery_holdout_suppresses_every_send_but_counts_goal() -> None:
    u = user_where(lambda u: not _not_held_out(u))
    events = [
        identify(u, "2026-01-05T09:00:00", push_enabled=True),
        track(u, "cart_abandoned", "2026-01-05T10:00:00", cart_value=80),
        track(u, "cart_viewed", "2026-01-05T11:00:00"),
        track(u, "order_completed", "2026-01-06T10:00:00"),
    ]
    out = run({"c.journey": CART_RECOVERY, "m.journey": MESSAGES}, events)
    assert brief(out) == [
        ("10:00", "cart_recovery", None, "enter"),
        ("10:30", "cart_recovery", "reminder", "suppress", "holdout"),
        ("11:00", "cart_recovery", "3.1.1", "suppress", "holdout"),
        ("11:00", "cart_recovery", "3.1.1", "exit", "completed"),
        ("10:00", "cart_recovery", None, "goal"),
    ]


def test_holdout_share_is_roughly_the_percentage() -> None:
    held = sum(not _not_held_out(f"user{n}") for n in range(2000))
    assert 140 < held < 260


def test_cart_recovery_quiet_hours_defer_to_window_end_in_user_zone() -> None:
    u = user_where(_not_held_out)
    events = [
        identify(u, "2026-01-05T09:00:00", push_enabled=True, timezone="Asia/Bangkok"),
        # 21:40 in Bangkok; the reminder falls at 22:10 local and waits for 08:00 local.
        track(u, "cart_abandoned", "2026-01-05T14:40:00", cart_value=80),
        track(u, "order_completed", "2026-01-05T19:00:00"),  # exits while deferred
    ]
    out = run({"c.journey": CART_RECOVERY, "m.journey": MESSAGES}, events)
    assert brief(out) == [
        ("14:40", "cart_recovery", None, "enter"),
        ("19:00", "cart_recovery", None, "goal"),
        ("19:00", "cart_recovery", "reminder", "exit", "exit_event"),
    ]
    out = run({"c.journey": CART_RECOVERY, "m.journey": MESSAGES}, events[:2])
    assert out[1]["at"] == "2026-01-06T01:00:00Z"  # 08:00 in Bangkok
    assert brief(out)[1][2:] == ("reminder", "send", "push", "cart_reminder")


QUIET = """journey quiet
  when a
  entry always
  quiet hours 22:00-08:00{skip}
  send inapp "hello" as hi
  send push or inapp "again" as again
"""


@pytest.mark.parametrize("skip", [False, True])
def test_quiet_hours_skip_and_defer(skip: bool) -> None:
    events = [track("u1", "a", "2026-01-05T23:00:00"), track("u1", "a", "2026-01-06T08:00:00")]
    out = run({"q.journey": QUIET.format(skip=" skip" if skip else "")}, events)
    if skip:
        assert [(a["at"][5:16], *b[2:]) for a, b in zip(out, brief(out), strict=True)] == [
            ("01-05T23:00", None, "enter"),
            ("01-05T23:00", "hi", "suppress", "quiet_hours"),
            ("01-05T23:00", "again", "suppress", "quiet_hours"),
            ("01-05T23:00", "again", "exit", "completed"),
            ("01-06T08:00", None, "enter"),  # 08:00 is outside the window
            ("01-06T08:00", "hi", "send", "inapp", None),
            ("01-06T08:00", "again", "send", "inapp", None),
            ("01-06T08:00", "again", "exit", "completed"),
        ]
    else:
        # The deferred instance still runs at 08:00, so the 08:00 event finds it in the
        # journey (events before timers) and does not enter again.
        assert [(a["at"][5:16], *b[2:]) for a, b in zip(out, brief(out), strict=True)] == [
            ("01-05T23:00", None, "enter"),
            ("01-06T08:00", "hi", "send", "inapp", None),
            ("01-06T08:00", "again", "send", "inapp", None),
            ("01-06T08:00", "again", "exit", "completed"),
        ]


def test_quiet_hours_project_default_applies_when_journey_has_none() -> None:
    from journeyc.compile.ir import QuietHoursRule

    src = 'journey j\n  when a\n  send inapp "x"\n'
    events = [track("u1", "a", "2026-01-05T23:00:00")]
    out = run({"j.journey": src}, events, quiet_default=QuietHoursRule(start=1320, end=480))
    assert [a["at"] for a in out] == [
        "2026-01-05T23:00:00Z",
        "2026-01-06T08:00:00Z",
        "2026-01-06T08:00:00Z",
    ]
    out = run({"j.journey": src}, events, default_zone="Asia/Bangkok")
    assert [a["action"] for a in out] == ["enter", "send", "exit"]


CAPPED = """journey capped
  when a
  entry always
  cap 1 per 1d
  send inapp "x" as s
"""


def test_cap_per_journey_window() -> None:
    events = [
        track("u1", "a", "2026-01-05T10:00:00"),
        track("u1", "a", "2026-01-06T09:59:59"),  # within 1d of the first send
        track("u1", "a", "2026-01-06T10:00:00"),  # exactly 1d later: the window is (now-1d, now]
        track("u2", "a", "2026-01-05T12:00:00"),  # caps are per user
    ]
    out = run({"c.journey": CAPPED}, events)
    sends = [(a["user"], a["at"][5:19], a["action"], a.get("reason")) for a in out if a["step"]]
    assert [s for s in sends if s[2] != "exit"] == [
        ("u1", "01-05T10:00:00", "send", None),
        ("u2", "01-05T12:00:00", "send", None),
        ("u1", "01-06T09:59:59", "suppress", "cap"),
        ("u1", "01-06T10:00:00", "send", None),
    ]


def test_global_cap_counts_sends_of_every_journey() -> None:
    from journeyc.compile.ir import CapRule

    other = 'journey other\n  when a\n  entry always\n  send inapp "y" as t\n'
    events = [track("u1", "a", "2026-01-05T10:00:00")]
    out = run(
        {"c.journey": CAPPED, "o.journey": other}, events, global_cap=CapRule(count=1, per=3600)
    )
    assert [(a["journey"], a["action"], a.get("reason")) for a in out if a["step"]] == [
        ("capped", "send", None),
        ("capped", "exit", "completed"),
        ("other", "suppress", "cap"),
        ("other", "exit", "completed"),
    ]


# ---------------------------------------------------------------- entry rules


ENTRY = """journey e
  when a
  {entry}
  wait 1h
"""


@pytest.mark.parametrize(
    ("entry", "entered"),
    [
        ("entry once", ["01-05T10:00"]),
        ("entry once per 1d", ["01-05T10:00", "01-06T10:00"]),
        ("entry always", ["01-05T10:00", "01-05T11:00", "01-05T12:00", "01-06T10:00"]),
    ],
)
def test_entry_rules(entry: str, entered: list[str]) -> None:
    times = ["05T10:00", "05T10:30", "05T11:00", "05T12:00", "06T09:59", "06T10:00"]
    events = [track("u1", "a", f"2026-01-{t}:00") for t in times]
    out = run({"e.journey": ENTRY.format(entry=entry)}, events)
    # At 11:00 the first entry's wait ends, but the 11:00 event comes first (events
    # before timers) and finds the user still in the journey.
    if entry == "entry always":
        entered = ["01-05T10:00", "01-05T12:00", "01-06T09:59"]
    assert [a["at"][5:16] for a in out if a["action"] == "enter"] == entered


# ---------------------------------------------------------------- split


SPLIT = """journey welcome_test
  when signed_up
  entry always

  split as welcome_offer
    50% as free_shipping
      send inapp "Your first order ships free."
    30% as coupon
      send inapp "10% off your first order: FIRST10"
    20%
      send inapp "early access"
  wait 1d
"""


def test_split_follows_the_documented_hash_and_is_stable() -> None:
    users = [f"u{n}" for n in range(60)]
    events = [track(u, "signed_up", f"2026-01-0{d}T10:00:00") for d in (5, 7) for u in users]
    out = run({"w.journey": SPLIT}, events)
    arms: dict[str, list[str]] = {}
    for a in out:
        if a["action"] == "send":
            arms.setdefault(a["user"], []).append(a["step"])
    for u in users:
        h = hash_percent(f"welcome_test:welcome_offer:{u}")
        want = "1.1.1" if h < 50 else "1.2.1" if h < 80 else "1.3.1"
        assert arms[u] == [want, want]
    assert len({s for steps in arms.values() for s in steps}) == 3


def test_step_names_by_position_and_label() -> None:
    tree = parse_source(CART_RECOVERY, "c.journey").tree
    assert tree is not None
    j = tree.journeys[0]
    names = step_names(j.steps)
    wait_for = j.steps[2]
    assert isinstance(wait_for, ast.WaitFor)
    assert [names[id(s)] for s in j.steps] == ["first_nudge", "reminder", "3"]
    on_timeout_if = wait_for.branches[1].steps[0]
    assert isinstance(on_timeout_if, ast.If)
    assert names[id(on_timeout_if)] == "3.2.1"
    assert names[id(on_timeout_if.branches[0].steps[0])] == "3.2.1.1.1"


# ---------------------------------------------------------------- track, history, order


def test_track_enters_another_journey_after_the_event_in_hand() -> None:
    a = 'journey a_then_b\n  when a\n  set seen = true\n  track b with n = 2\n  send inapp "a"\n'
    b = (
        "journey b_journey\n  when b where event.n == 2 and seen == true\n"
        '  send inapp "b"\n  unset seen\n'
    )
    # A journey that waits for `b` from before: it resumes on the tracked event.
    w = "journey a_waiter\n  when c\n  wait for b up to 1d\n"
    events = [track("u1", "c", "2026-01-05T09:00:00"), track("u1", "a", "2026-01-05T10:00:00")]
    out = run({"a.journey": a, "b.journey": b, "w.journey": w}, events)
    assert brief(out) == [
        ("09:00", "a_waiter", None, "enter"),
        ("10:00", "a_then_b", None, "enter"),
        ("10:00", "a_then_b", "1", "set", "seen", True),
        ("10:00", "a_then_b", "2", "track", "b"),
        ("10:00", "a_then_b", "3", "send", "inapp", None),
        ("10:00", "a_then_b", "3", "exit", "completed"),
        ("10:00", "a_waiter", "1", "exit", "completed"),
        ("10:00", "b_journey", None, "enter"),
        ("10:00", "b_journey", "1", "send", "inapp", None),
        ("10:00", "b_journey", "2", "unset", "seen"),
        ("10:00", "b_journey", "2", "exit", "completed"),
    ]


def test_history_before_start_is_counted_but_not_reacted_to() -> None:
    src = "journey h\n  when a where count(a within 7d) >= 3 and push_enabled\n  wait 1h\n"
    events = [
        identify("u1", "2026-01-01T09:00:00", push_enabled=True),
        track("u1", "a", "2026-01-02T10:00:00"),
        track("u1", "a", "2026-01-03T10:00:00"),
        track("u1", "a", "2026-01-05T10:00:00"),
        track("u1", "a", "2026-01-05T10:30:00"),
    ]
    start = ms("2026-01-05T00:00:00")
    out = run({"h.journey": src}, events, start_ms=start)
    assert brief(out) == [("10:00", "h", None, "enter"), ("11:00", "h", "1", "exit", "completed")]
    # From the start, the third `a` is still the first with a count of 3.
    assert run({"h.journey": src}, events) == out
    # Only 2 in the window: 2026-01-02 fell out of the 7d window by 2026-01-09T10:00.
    late = [*events[:3], track("u1", "a", "2026-01-09T10:00:00")]
    assert run({"h.journey": src}, late, start_ms=ms("2026-01-09T00:00:00")) == []


def test_until_stops_the_clock() -> None:
    events = [track("u1", "a", "2026-01-05T10:00:00")]
    src = ENTRY.format(entry="entry once")
    assert len(run({"e.journey": src}, events, until_ms=ms("2026-01-05T10:59:59"))) == 1
    assert len(run({"e.journey": src}, events, until_ms=ms("2026-01-05T11:00:00"))) == 2


def test_event_before_timer_at_equal_times() -> None:
    src = """journey w
  when a
  wait for b up to 1h
    on b
      send inapp "b"
    on timeout
      send inapp "late"
"""
    events = [track("u1", "a", "2026-01-05T10:00:00"), track("u1", "b", "2026-01-05T11:00:00")]
    out = run({"w.journey": src}, events)
    assert brief(out)[1] == ("11:00", "w", "1.1.1", "send", "inapp", None)
    out = run({"w.journey": src}, [events[0], track("u1", "b", "2026-01-05T11:00:01")])
    assert brief(out)[1] == ("11:00", "w", "1.2.1", "send", "inapp", None)


def test_timers_at_equal_times_run_in_instance_creation_order() -> None:
    src = "journey {name}\n  when a\n  wait {d}\n"
    files = {
        "z.journey": src.format(name="z_first", d="1h"),
        "y.journey": src.format(name="y_second", d="30m"),
    }
    events = [track("u1", "a", "2026-01-05T10:00:00"), track("u2", "a", "2026-01-05T10:30:00")]
    out = run(files, events)
    # Entries by journey id; the 10:30 event comes before the timer due at 10:30; at
    # 11:00 two timers fall due, in creation order (not by journey id).
    assert [(a["at"][11:16], a["user"], a["journey"], a["action"]) for a in out] == [
        ("10:00", "u1", "y_second", "enter"),
        ("10:00", "u1", "z_first", "enter"),
        ("10:30", "u2", "y_second", "enter"),
        ("10:30", "u2", "z_first", "enter"),
        ("10:30", "u1", "y_second", "exit"),
        ("11:00", "u1", "z_first", "exit"),
        ("11:00", "u2", "y_second", "exit"),
        ("11:30", "u2", "z_first", "exit"),
    ]


def test_goal_once_per_entry_within_inclusive_and_exit_step() -> None:
    src = """journey g
  when a
  entry always
  goal b where event.ok == true within 1h
  wait 10m
  exit
  send inapp "never"
"""
    events = [
        track("u1", "a", "2026-01-05T10:00:00"),
        track("u1", "b", "2026-01-05T10:05:00", ok=False),
        track("u1", "b", "2026-01-05T11:00:00", ok=True),  # exactly 1h: still a goal
        track("u1", "b", "2026-01-05T11:00:00", ok=True, again=1),  # once per entry
        track("u2", "a", "2026-01-05T10:00:00"),
        track("u2", "b", "2026-01-05T11:00:01", ok=True),
    ]
    out = run({"g.journey": src}, events)
    assert [(a["user"], *b) for a, b in zip(out, brief(out), strict=True)] == [
        ("u1", "10:00", "g", None, "enter"),
        ("u2", "10:00", "g", None, "enter"),
        ("u1", "10:10", "g", "2", "exit", "exit_step"),
        ("u2", "10:10", "g", "2", "exit", "exit_step"),
        ("u1", "11:00", "g", None, "goal"),
    ]


def test_goal_without_within_needs_a_running_instance() -> None:
    src = "journey g\n  when a\n  entry always\n  goal b\n  wait 10m\n"
    events = [
        track("u1", "a", "2026-01-05T10:00:00"),
        track("u1", "b", "2026-01-05T10:10:00"),  # the timer is due now, after the event
        track("u1", "b", "2026-01-05T10:20:00"),
    ]
    out = run({"g.journey": src}, events)
    assert [a["action"] for a in out] == ["enter", "goal", "exit"]


def test_a_repeated_message_id_is_ignored() -> None:
    src = 'journey r\n  when a\n  entry always\n  send inapp "x"\n'
    same = track("u1", "a", "2026-01-05T10:00:00", n=1)
    other = track("u1", "a", "2026-01-05T10:00:00", n=2)
    out = run({"r.journey": src}, [same, same])
    assert [a["action"] for a in out] == ["enter", "send", "exit"]
    out = run({"r.journey": src}, [same, other])
    assert [a["action"] for a in out] == ["enter", "send", "exit"] * 2


def test_expressions_follow_the_null_rules() -> None:
    src = """journey x
  when a
  if missing != 5 and not missing and missing == null and not (missing < 1)
    set r = event.n * 2 + count(a within 1h)
  if (missing + 1) == null and last(zzz).at == null and days_since(null) == null
    set ok = true
"""
    out = run({"x.journey": src}, [track("u1", "a", "2026-01-05T10:00:00", n=3)])
    assert [(a["action"], a.get("attr"), a.get("value")) for a in out[1:3]] == [
        ("set", "r", 7),
        ("set", "ok", True),
    ]
