"""Retail scenarios from PRACTICE.md, run through the engine and checked action by action.

Each test is a short journey and a handful of events, written so that a marketer can
read what should happen; the assertions name the times, steps and contents.
"""

from __future__ import annotations

from typing import Any

import pytest

from journeyc.events import Event
from tests.engine_helpers import config, identify, run, select, track

MESSAGES = """
message cart_reminder
  push
    title "Still thinking about {{ event.product_name }}?"
    body "Your cart is waiting{% if user.first_name %}, {{ user.first_name }}{% endif %}."
  whatsapp
    body "Hi {{ user.first_name | default: 'there' }}, your cart is waiting: {{ event.cart_url }}"
  email
    subject "You left {{ event.item_count }} items behind"
    text "Come back"

message discount_offer
  email
    subject "{{ percent }}% off, just for you"
    html "<p>Use <b>{{ coupon }}</b> at checkout.</p>"
"""

CART = """
journey cart
  when cart_abandoned
  entry once per 7d
  exit when order_completed
  goal order_completed within 3d
  wait 30m as first_nudge
  send push or whatsapp or email cart_reminder as reminder
"""

DAY0 = "2026-01-05"  # a Monday


def at(hhmm: str, day: str = DAY0) -> str:
    return f"{day}T{hhmm}:00"


def brief(actions: list[dict[str, Any]], *keys: str) -> list[tuple[Any, ...]]:
    """(HH:MM, journey, step, action, then the given keys) of each action."""
    return [
        (a["at"][11:16], a["journey"], a["step"], a["action"], *(a.get(k) for k in keys))
        for a in actions
    ]


def cart_run(traits: dict[str, Any], **kw: Any) -> Any:
    events: list[Event] = [
        identify("u1", at("09:00"), **traits),
        track(
            "u1",
            "Cart Abandoned",
            at("10:00"),
            product_name="Silk wrap dress",
            cart_url="https://shop/c/1",
            item_count=2,
        ),
    ]
    return run({"cart.journey": CART, "messages.journey": MESSAGES}, events, **kw)


# ---------------------------------------------------------------- abandonment


def test_cart_abandoned_push_30_minutes_later_names_the_product() -> None:
    r = cart_run({"push_enabled": True, "first_name": "Ann"})
    assert brief(r.dicts, "channel", "reason") == [
        ("10:00", "cart", None, "enter", None, None),
        ("10:30", "cart", "reminder", "send", "push", None),
        ("10:30", "cart", "reminder", "exit", None, "completed"),
    ]
    (send,) = r.of(action="send")
    assert send["message"] == "cart_reminder"
    assert send["content"]["title"] == "Still thinking about Silk wrap dress?"
    assert send["content"]["body"] == "Your cart is waiting, Ann."
    # The outbox holds the rendered message, queued at the send's time.
    (row,) = r.outbox
    assert (row["channel"], row["status"], row["key"]) == ("push", "queued", "cart:u1:1:reminder")


def test_push_off_goes_by_whatsapp() -> None:
    r = cart_run({"push_enabled": False, "phone": "+66123", "whatsapp_opt_in": True})
    (send,) = r.of(action="send")
    assert send["channel"] == "whatsapp"
    assert send["content"] == {"body": "Hi there, your cart is waiting: https://shop/c/1"}


def test_push_off_and_no_whatsapp_falls_through_to_email() -> None:
    r = cart_run({"push_enabled": False, "phone": "+66123", "email": "a@example.com"})
    (send,) = r.of(action="send")
    assert (send["channel"], send["content"]["subject"]) == ("email", "You left 2 items behind")


def test_nothing_reachable_suppresses_no_channel_and_the_journey_ends_normally() -> None:
    r = cart_run({"push_enabled": False, "email": "a@example.com", "email_unsubscribed": True})
    assert brief(r.dicts, "reason") == [
        ("10:00", "cart", None, "enter", None),
        ("10:30", "cart", "reminder", "suppress", "no_channel"),
        ("10:30", "cart", "reminder", "exit", "completed"),
    ]
    assert [(row["status"], row["error"]) for row in r.outbox] == [("suppressed", "no_channel")]


CATEGORY = """
journey category_copy
  when cart_abandoned
  wait 25m
  if event.category == "womenswear"
    send push "{{ event.product_name }} is still in your bag. HER15 for 15% off." as women
  elif event.category == "menswear"
    send push "Your {{ event.product_name }} is ready. HIM10 takes 10% off." as men
  else
    send push "Your cart is waiting." as other
"""


def test_category_copy_by_if_elif_on_the_entry_event() -> None:
    events = [identify(u, at("09:00"), push_enabled=True) for u in ("u1", "u2", "u3")] + [
        track("u1", "cart_abandoned", at("10:00"), category="womenswear", product_name="Dress"),
        track("u2", "cart_abandoned", at("10:00"), category="menswear", product_name="Blazer"),
        track("u3", "cart_abandoned", at("10:00"), product_name="Tote"),  # no category: null
    ]
    r = run({"c.journey": CATEGORY}, events)
    sends = {
        a["user"]: (a["at"][11:16], a["step"], a["content"]["body"]) for a in r.of(action="send")
    }
    assert sends == {
        "u1": ("10:25", "women", "Dress is still in your bag. HER15 for 15% off."),
        "u2": ("10:25", "men", "Your Blazer is ready. HIM10 takes 10% off."),
        "u3": ("10:25", "other", "Your cart is waiting."),
    }


WAIT_FOR = """
journey second_look
  when cart_abandoned
  send inapp "Your cart is saved" as saved
  wait for cart_viewed up to 1d as look
    on cart_viewed
      send inapp "Still deciding? Your {{ event.item_count }} items are saved." as deciding
    on timeout
      send inapp "Last call for your {{ event.item_count }} items" as last_call
  send inapp "bye" as bye
"""


def test_wait_for_cart_viewed_runs_the_on_branch_with_that_event_in_focus() -> None:
    events = [
        track("u1", "cart_abandoned", at("10:00"), item_count=2),
        track("u1", "cart_viewed", at("15:00"), item_count=3),
        track("u1", "cart_viewed", at("16:00"), item_count=4),  # after the branch: ignored
    ]
    r = run({"w.journey": WAIT_FOR}, events)
    assert brief(r.dicts) == [
        ("10:00", "second_look", None, "enter"),
        ("10:00", "second_look", "saved", "send"),
        ("15:00", "second_look", "deciding", "send"),
        ("15:00", "second_look", "bye", "send"),
        ("15:00", "second_look", "bye", "exit"),
    ]
    assert r.of(step="deciding")[0]["content"]["body"] == "Still deciding? Your 3 items are saved."


def test_wait_for_times_out_into_the_timeout_branch_with_the_entry_event() -> None:
    events = [
        track("u1", "cart_abandoned", at("10:00"), item_count=2),
        track("u1", "cart_viewed", at("09:00", "2026-01-07"), item_count=3),  # too late
    ]
    r = run({"w.journey": WAIT_FOR}, events)
    steps = [(a["at"][:16], a["step"], a["action"]) for a in r.dicts if a["action"] != "enter"]
    assert steps == [
        ("2026-01-05T10:00", "saved", "send"),
        ("2026-01-06T10:00", "last_call", "send"),
        ("2026-01-06T10:00", "bye", "send"),
        ("2026-01-06T10:00", "bye", "exit"),
    ]
    assert r.of(step="last_call")[0]["content"]["body"] == "Last call for your 2 items"


DISCOUNT = """
journey visit_discount
  when product_viewed
  exit when order_completed
  wait 2d as give_them_time
  if lifecycle in ["new", "dormant"]
    send email discount_offer with coupon = "COMEBACK10", percent = 10 as discount
"""


def test_discount_for_new_and_dormant_after_two_days_without_an_order() -> None:
    users = {"new": "u1", "dormant": "u2", "active": "u3"}
    events = [identify(u, at("09:00"), lifecycle=lc, email=f"{u}@x") for lc, u in users.items()]
    events += [identify("u4", at("09:00"), lifecycle="new", email="u4@x")]
    events += [track(u, "product_viewed", at("10:00")) for u in ("u1", "u2", "u3", "u4")]
    events += [track("u4", "order_completed", at("12:00", "2026-01-06"))]
    r = run({"d.journey": DISCOUNT, "m.journey": MESSAGES}, events)
    sends = r.of(action="send")
    assert sorted(a["user"] for a in sends) == ["u1", "u2"]
    for a in sends:
        assert a["at"] == "2026-01-07T10:00:00Z"
        assert a["content"] == {
            "subject": "10% off, just for you",
            "html": "<p>Use <b>COMEBACK10</b> at checkout.</p>",
        }
    # The active user completes quietly; the one who ordered left at the order.
    assert brief(select(r.dicts, user="u3"), "reason")[-1] == (
        "10:00",
        "visit_discount",
        "2",
        "exit",
        "completed",
    )
    assert brief(select(r.dicts, user="u4"), "reason")[-1] == (
        "12:00",
        "visit_discount",
        "give_them_time",
        "exit",
        "exit_event",
    )


def test_order_exits_the_journey_before_the_nudge_and_records_the_goal() -> None:
    events = [
        identify("u1", at("09:00"), push_enabled=True),
        track("u1", "cart_abandoned", at("10:00")),
        track("u1", "Order Completed", at("10:20"), order_id="o1"),
    ]
    r = run({"cart.journey": CART, "messages.journey": MESSAGES}, events)
    assert brief(r.dicts, "reason") == [
        ("10:00", "cart", None, "enter", None),
        ("10:20", "cart", None, "goal", None),
        ("10:20", "cart", "first_nudge", "exit", "exit_event"),
    ]
    assert r.outbox == []
    assert [e["goal_at"] is not None for e in r.entries] == [True]


def test_goal_within_3d_is_recorded_after_the_journey_completed_but_not_later() -> None:
    events = [
        identify("u1", at("09:00"), push_enabled=True),
        identify("u2", at("09:00"), push_enabled=True),
        track("u1", "cart_abandoned", at("10:00")),
        track("u2", "cart_abandoned", at("10:00")),
        track("u1", "order_completed", at("09:00", "2026-01-08")),  # 2d23h after entry
        track("u1", "order_completed", at("09:30", "2026-01-08")),  # once per entry
        track("u2", "order_completed", at("10:01", "2026-01-08")),  # 3d1m: too late
    ]
    r = run({"cart.journey": CART, "messages.journey": MESSAGES}, events)
    assert [(a["at"], a["user"]) for a in r.of(action="goal")] == [("2026-01-08T09:00:00Z", "u1")]
    assert [a["reason"] for a in r.of(action="exit")] == ["completed", "completed"]


# ---------------------------------------------------------------- timing: quiet hours

QUIET = """
journey night_owl
  when cart_abandoned
  entry always
  quiet hours 22:00-08:00
  send push "Your cart is waiting" as nudge
  send inapp "after" as after
"""

QUIET_SKIP = """
journey night_skip
  when cart_abandoned
  entry always
  quiet hours 22:00-08:00 skip
  send push "Your cart is waiting" as nudge
  send inapp "after" as after
"""


@pytest.mark.parametrize(
    ("zone", "abandoned", "sent"),
    [
        # Bangkok (UTC+7): 23:30 local → 08:00 local the next day.
        ("Asia/Bangkok", "2026-01-05T16:30:00", "2026-01-06T01:00:00Z"),
        # Bangkok: 15:00 local, outside the window → at once.
        ("Asia/Bangkok", "2026-01-05T08:00:00", "2026-01-05T08:00:00Z"),
        # Berlin, spring forward (2026-03-29): 00:30 CET → 08:00 CEST = 06:00 UTC.
        ("Europe/Berlin", "2026-03-28T23:30:00", "2026-03-29T06:00:00Z"),
        # Berlin, fall back (2026-10-25): 23:30 CEST → 08:00 CET = 07:00 UTC.
        ("Europe/Berlin", "2026-10-24T21:30:00", "2026-10-25T07:00:00Z"),
        # No time zone on the profile: the project default, UTC.
        (None, "2026-01-05T23:00:00", "2026-01-06T08:00:00Z"),
    ],
)
def test_quiet_hours_defer_the_send_to_the_window_end_in_local_time(
    zone: str | None, abandoned: str, sent: str
) -> None:
    traits: dict[str, Any] = {"push_enabled": True}
    if zone:
        traits["timezone"] = zone
    events = [
        identify("u1", "2026-01-01T00:00:00", **traits),
        track("u1", "cart_abandoned", abandoned),
    ]
    r = run({"q.journey": QUIET}, events)
    assert [(a["at"], a["step"], a["action"]) for a in r.dicts if a["action"] != "enter"] == [
        (sent, "nudge", "send"),
        (sent, "after", "send"),
        (sent, "after", "exit"),
    ]


def test_quiet_hours_defer_reads_the_time_zone_when_it_runs_again() -> None:
    # Held at 23:00 UTC until 08:00 UTC; by then the user lives in Bangkok, where
    # 08:00 UTC is 15:00: the send goes out.
    events = [
        identify("u1", "2026-01-01T00:00:00", push_enabled=True),
        track("u1", "cart_abandoned", "2026-01-05T23:00:00"),
        identify("u1", "2026-01-06T03:00:00", timezone="Asia/Bangkok"),
    ]
    r = run({"q.journey": QUIET}, events)
    assert r.of(action="send", step="nudge")[0]["at"] == "2026-01-06T08:00:00Z"


def test_quiet_hours_skip_suppresses_and_goes_on() -> None:
    events = [
        identify("u1", "2026-01-01T00:00:00", push_enabled=True, timezone="Asia/Bangkok"),
        track("u1", "cart_abandoned", "2026-01-05T16:30:00"),  # 23:30 in Bangkok
        track("u1", "cart_abandoned", "2026-01-06T03:00:00"),  # 10:00 in Bangkok
    ]
    r = run({"q.journey": QUIET_SKIP}, events)
    assert brief(r.dicts, "channel", "reason") == [
        ("16:30", "night_skip", None, "enter", None, None),
        ("16:30", "night_skip", "nudge", "suppress", None, "quiet_hours"),
        ("16:30", "night_skip", "after", "suppress", None, "quiet_hours"),  # in-app too
        ("16:30", "night_skip", "after", "exit", None, "completed"),
        ("03:00", "night_skip", None, "enter", None, None),
        ("03:00", "night_skip", "nudge", "send", "push", None),
        ("03:00", "night_skip", "after", "send", "inapp", None),
        ("03:00", "night_skip", "after", "exit", None, "completed"),
    ]


def test_project_default_quiet_hours_apply_to_journeys_without_their_own() -> None:
    journey = """
journey plain
  when cart_abandoned
  send push "hi" as nudge
"""
    events = [
        identify("u1", "2026-01-01T00:00:00", push_enabled=True),
        track("u1", "cart_abandoned", "2026-01-05T23:00:00"),
    ]
    deferred = run(
        {"p.journey": journey}, events, config=config(quiet_hours={"window": "22:00-08:00"})
    )
    assert [a["at"] for a in deferred.of(action="send")] == ["2026-01-06T08:00:00Z"]
    skipped = run(
        {"p.journey": journey},
        events,
        config=config(quiet_hours={"window": "22:00-08:00", "skip": True}),
    )
    assert [a.get("reason") for a in skipped.of(step="nudge", action="suppress")] == ["quiet_hours"]
    # The project time zone stands in for users without one: 23:00 UTC is 06:00 in Bangkok.
    bangkok = run(
        {"p.journey": journey},
        events,
        config=config(timezone="Asia/Bangkok", quiet_hours={"window": "22:00-08:00"}),
    )
    assert [a["at"] for a in bangkok.of(action="send")] == ["2026-01-06T01:00:00Z"]


# ---------------------------------------------------------------- frequency: caps

CAPPED = """
journey capped
  when product_viewed
  entry always
  cap 2 per 1d
  send inapp "Seen {{ event.product_name }}?" as nudge
"""

OTHER = """
journey other
  when cart_abandoned
  entry always
  send inapp "cart" as nudge
"""


def test_journey_cap_suppresses_with_reason_cap() -> None:
    events = [
        track("u1", "product_viewed", at("10:00"), product_name="A"),
        track("u1", "product_viewed", at("11:00"), product_name="B"),
        track("u1", "product_viewed", at("12:00"), product_name="C"),  # third in a day
        track("u1", "cart_abandoned", at("12:30")),  # another journey: not capped
        track("u1", "product_viewed", at("10:30", "2026-01-06")),  # 10:00 left the window
    ]
    r = run({"c.journey": CAPPED, "o.journey": OTHER}, events)
    got = [(a["at"][5:16], a["journey"], a["action"], a.get("reason")) for a in r.dicts]
    assert [g for g in got if g[2] in ("send", "suppress")] == [
        ("01-05T10:00", "capped", "send", None),
        ("01-05T11:00", "capped", "send", None),
        ("01-05T12:00", "capped", "suppress", "cap"),
        ("01-05T12:30", "other", "send", None),
        ("01-06T10:30", "capped", "send", None),
    ]


def test_global_cap_counts_sends_of_every_journey() -> None:
    events = [
        track("u1", "product_viewed", at("10:00"), product_name="A"),
        track("u1", "cart_abandoned", at("11:00")),
        track("u1", "cart_abandoned", at("11:30")),  # over the global cap of 2 per 1d
        track("u2", "cart_abandoned", at("11:30")),  # another user: own count
    ]
    r = run(
        {"c.journey": CAPPED, "o.journey": OTHER},
        events,
        config=config(global_cap={"count": 2, "per": "1d"}),
    )
    got = [(a["user"], a["at"][11:16], a["journey"], a["action"], a.get("reason")) for a in r.dicts]
    assert [g for g in got if g[3] in ("send", "suppress")] == [
        ("u1", "10:00", "capped", "send", None),
        ("u1", "11:00", "other", "send", None),
        ("u1", "11:30", "other", "suppress", "cap"),
        ("u2", "11:30", "other", "send", None),
    ]


def test_suppressed_sends_do_not_count_towards_the_cap() -> None:
    journey = """
journey capped_push
  when product_viewed
  entry always
  cap 1 per 1d
  send push "hi" as nudge
"""
    events = [
        track("u1", "product_viewed", at("10:00")),  # push off: no_channel
        identify("u1", at("10:30"), push_enabled=True),
        track("u1", "product_viewed", at("11:00")),
        track("u1", "product_viewed", at("12:00")),
    ]
    r = run({"j.journey": journey}, events)
    assert [
        a.get("reason", a["action"])
        for a in r.dicts
        if a["step"] == "nudge" and a["action"] != "exit"
    ] == [
        "no_channel",
        "send",
        "cap",
    ]


# ---------------------------------------------------------------- holdout

HOLDOUT = """
journey held
  when cart_abandoned
  holdout {pct}
  goal order_completed within 1d
  send inapp "hi" as nudge
  set nudged = true as mark
"""


@pytest.mark.parametrize(("pct", "held"), [("99.99%", True), ("0%", False)])
def test_holdout_suppresses_every_send_but_runs_every_step(pct: str, held: bool) -> None:
    users = ("u1", "u2", "u3", "u4", "u5")
    events = [track(u, "cart_abandoned", at("10:00")) for u in users]
    events += [track("u1", "order_completed", at("12:00"))]
    r = run({"h.journey": HOLDOUT.format(pct=pct)}, events)
    nudges = r.of(step="nudge")
    assert len(nudges) == len(users)
    if held:
        assert {(a["action"], a.get("reason")) for a in nudges} == {("suppress", "holdout")}
    else:
        assert {a["action"] for a in nudges} == {"send"}
    assert [row["holdout"] for row in r.entries] == [int(held)] * len(users)
    # Held out or not, the journey runs on and the goal is measured.
    assert len(r.of(action="set", attr="nudged")) == len(users)
    assert [a["user"] for a in r.of(action="goal")] == ["u1"]


# ---------------------------------------------------------------- profile changes and chaining

SET_UNSET = """
journey tier
  when order_completed
  entry always
  set vip = event.amount >= 1000 as mark
  if vip
    send inapp "Welcome to VIP" as welcome
  wait 1d
  unset vip as clear
  if not vip
    send inapp "VIP ended" as ended
"""

VIP_CHECK = """
journey vip_check
  when cart_abandoned
  entry always
  if vip == true
    send inapp "VIP cart" as vip_cart
  else
    send inapp "cart" as plain_cart
"""


def test_set_and_unset_are_seen_by_later_steps_and_by_other_journeys() -> None:
    events = [
        track("u1", "order_completed", at("10:00"), amount=1500),
        track("u1", "cart_abandoned", at("12:00")),
        track("u1", "cart_abandoned", at("12:00", "2026-01-06")),  # after the unset
    ]
    r = run({"t.journey": SET_UNSET, "v.journey": VIP_CHECK}, events)
    got = [(a["at"][5:16], a["journey"], a["step"], a["action"]) for a in r.dicts]
    assert [g for g in got if g[3] in ("set", "unset", "send")] == [
        ("01-05T10:00", "tier", "mark", "set"),
        ("01-05T10:00", "tier", "welcome", "send"),
        ("01-05T12:00", "vip_check", "vip_cart", "send"),
        ("01-06T10:00", "tier", "clear", "unset"),
        ("01-06T10:00", "tier", "ended", "send"),
        ("01-06T12:00", "vip_check", "plain_cart", "send"),
    ]
    assert r.of(action="set")[0]["value"] is True
    assert "vip" not in r.profiles["u1"]


def test_set_false_value_is_kept_and_read() -> None:
    events = [
        track("u1", "order_completed", at("10:00"), amount=10),
        track("u1", "cart_abandoned", at("12:00")),
    ]
    r = run({"t.journey": SET_UNSET, "v.journey": VIP_CHECK}, events)
    assert r.of(action="set")[0]["value"] is False
    assert r.of(step="welcome") == []
    assert [a["step"] for a in r.of(journey="vip_check", action="send")] == ["plain_cart"]


TRACKER = """
journey thank
  when order_completed
  track review_requested with product = event.product_name, source = "thank"
  send inapp "thanks" as thanks
"""

REVIEW = """
journey review
  when review_requested where event.source == "thank"
  wait 2d
  send inapp "How is your {{ event.product }}?" as ask
"""


def test_track_step_triggers_another_journey_with_its_properties() -> None:
    events = [track("u1", "order_completed", at("10:00"), product_name="Tote")]
    r = run({"t.journey": TRACKER, "r.journey": REVIEW}, events)
    got = [(a["at"][5:16], a["journey"], a["step"], a["action"]) for a in r.dicts]
    assert got == [
        ("01-05T10:00", "thank", None, "enter"),
        ("01-05T10:00", "thank", "1", "track"),
        ("01-05T10:00", "thank", "thanks", "send"),
        ("01-05T10:00", "thank", "thanks", "exit"),
        # The tracked event is handled after the event in hand.
        ("01-05T10:00", "review", None, "enter"),
        ("01-07T10:00", "review", "ask", "send"),
        ("01-07T10:00", "review", "ask", "exit"),
    ]
    assert r.of(step="ask")[0]["content"]["body"] == "How is your Tote?"


PINGER = """
journey a_pinger
  when visit
  wait 1h
  track ping
"""

LISTENER = """
journey b_listener
  when visit
  exit when ping
  wait 1h
  send inapp "still here" as still_here
"""


def test_an_event_tracked_by_a_timer_comes_before_the_next_timer_of_that_instant() -> None:
    # Both journeys wake at 11:00; a_pinger's instance was created first and tracks
    # `ping`, which is handled (and exits b_listener) before b_listener's timer runs.
    r = run({"a.journey": PINGER, "b.journey": LISTENER}, [track("u1", "visit", at("10:00"))])
    assert brief(r.dicts, "reason") == [
        ("10:00", "a_pinger", None, "enter", None),
        ("10:00", "b_listener", None, "enter", None),
        ("11:00", "a_pinger", "2", "track", None),
        ("11:00", "a_pinger", "2", "exit", "completed"),
        ("11:00", "b_listener", "1", "exit", "exit_event"),
    ]


def test_timers_due_at_one_instant_run_in_the_order_their_instances_were_created() -> None:
    journey = """
journey j
  when visit
  wait 1h
  send inapp "{{ event.n }}" as s
"""
    events = [track(u, "visit", at("10:00"), n=u) for u in ("u3", "u1", "u2")]
    r = run({"j.journey": journey}, events)
    assert [a["content"]["body"] for a in r.of(action="send")] == ["u3", "u1", "u2"]


def test_an_exit_while_a_send_is_held_by_quiet_hours_drops_the_send() -> None:
    journey = """
journey j
  when cart_abandoned
  exit when order_completed
  quiet hours 22:00-08:00
  send inapp "hi" as nudge
"""
    events = [
        track("u1", "cart_abandoned", at("23:00")),
        track("u1", "order_completed", at("02:00", "2026-01-06")),
    ]
    r = run({"j.journey": journey}, events)
    assert [(a["at"][5:16], a["step"], a["action"], a.get("reason")) for a in r.dicts] == [
        ("01-05T23:00", None, "enter", None),
        ("01-06T02:00", "nudge", "exit", "exit_event"),
    ]
    assert r.outbox == []


def test_entry_once_per_counts_from_the_last_entry() -> None:
    journey = """
journey j
  when cart_abandoned
  entry once per 1d
  send inapp "hi" as nudge
"""
    events = [
        track("u1", "cart_abandoned", at("10:00")),
        track("u1", "cart_abandoned", at("09:59", "2026-01-06")),  # 23h59m later: no
        track("u1", "cart_abandoned", at("10:00", "2026-01-06")),  # exactly 1d: yes
    ]
    r = run({"j.journey": journey}, events)
    assert [a["at"] for a in r.of(action="enter")] == [
        "2026-01-05T10:00:00Z",
        "2026-01-06T10:00:00Z",
    ]


# ---------------------------------------------------------------- history (--from)

FREQUENT = """
journey frequent_viewer
  when product_viewed
  entry always
  if count(product_viewed within 7d) >= 3
    send inapp "You keep coming back: {{ event.product_name }}" as loyal
  else
    send inapp "Welcome" as first_visits
"""


def test_history_before_from_is_counted_but_not_reacted_to() -> None:
    events = [
        identify("u1", at("08:00", "2026-01-01"), first_name="Ann"),
        track("u1", "product_viewed", at("10:00", "2026-01-01")),  # history
        track("u1", "product_viewed", at("10:00", "2026-01-03")),  # history
        track("u1", "product_viewed", at("10:00", "2025-12-20")),  # history, too old for 7d
        track("u1", "product_viewed", at("10:00", "2026-01-05"), product_name="Tote"),
        track("u2", "product_viewed", at("10:00", "2026-01-05"), product_name="Tote"),
    ]
    r = run({"f.journey": FREQUENT}, events, start=at("00:00", "2026-01-05"))
    assert [(a["user"], a["at"][:10], a["step"]) for a in r.of(action="send")] == [
        ("u1", "2026-01-05", "loyal"),
        ("u2", "2026-01-05", "first_visits"),
    ]
    assert len(r.of(action="enter")) == 2  # nothing before --from entered
    assert r.profiles["u1"] == {"first_name": "Ann"}  # history identify calls apply


def test_until_stops_the_clock_before_later_timers() -> None:
    events = [
        identify("u1", at("09:00"), push_enabled=True),
        track("u1", "cart_abandoned", at("10:00")),
    ]
    r = run({"cart.journey": CART, "messages.journey": MESSAGES}, events, until=at("10:29"))
    assert [a["action"] for a in r.dicts] == ["enter"]
    assert [row["status"] for row in r.instances] == ["waiting"]


LOCALIZED = """
message hello
  push
    title "Still thinking about {{ event.product_name }}?"
    title th "ยังคิดถึง {{ event.product_name }} อยู่ไหม?"

journey hello_journey
  when cart_abandoned
  send push hello as nudge
"""


def test_the_locale_attribute_picks_the_field_variant() -> None:
    events = [
        identify("u1", at("09:00"), push_enabled=True, locale="th"),
        identify("u2", at("09:00"), push_enabled=True, locale="de"),
        track("u1", "cart_abandoned", at("10:00"), product_name="กระเป๋า"),
        track("u2", "cart_abandoned", at("10:00"), product_name="Tote"),
    ]
    r = run({"l.journey": LOCALIZED}, events)
    titles = {a["user"]: a["content"]["title"] for a in r.of(action="send")}
    assert titles == {"u1": "ยังคิดถึง กระเป๋า อยู่ไหม?", "u2": "Still thinking about Tote?"}


# ---------------------------------------------------------------- rendering errors

RENDER = """
message shouty
  inapp
    body "{{ user.first_name | top_sellers: -1 }}"

journey render
  when cart_abandoned
  send inapp shouty as bad_filter
  send inapp "{{ event.total | divided_by: event.items }}" as bad_math
  send inapp "fine" as fine
"""


def test_render_error_suppresses_with_its_reason_and_the_journey_goes_on() -> None:
    events = [
        identify("u1", at("09:00"), first_name="Ann"),
        track("u1", "cart_abandoned", at("10:00"), total=10, items=0),
    ]
    r = run({"r.journey": RENDER}, events)
    got = [(a["step"], a["action"], a.get("reason")) for a in r.dicts]
    assert got == [
        (None, "enter", None),
        ("bad_filter", "suppress", "render_error"),
        ("bad_math", "suppress", "render_error"),
        ("fine", "send", None),
        ("fine", "exit", "completed"),
    ]
    bad = r.of(step="bad_filter")[0]
    # An unknown filter is refused by the checker; a bad argument only shows at send time.
    assert "top_sellers" in bad["error"] and "-1" in bad["error"]
    assert {row["step"]: row["status"] for row in r.outbox} == {
        "bad_filter": "suppressed",
        "bad_math": "suppressed",
        "fine": "queued",
    }


# ---------------------------------------------------------------- null rules

NULLS = """
journey nulls
  when cart_abandoned
  if tier == null
    send inapp "missing is null" as is_null
  if tier != "gold"
    send inapp "!= with null is true" as ne_null
  if tier == "gold" or tier < 3 or tier > 3 or tier in ["gold"]
    send inapp "comparisons with null are false" as compared
  if not tier
    send inapp "not null is true" as not_null
  if (tier + 1) == null and (event.amount * 2) == null
    send inapp "arithmetic with null is null" as arith
  if last(order_completed).at == null and days_since(last(order_completed).at) == null
    send inapp "a path through null is null" as path
  if exists(tier)
    send inapp "exists" as exists
  if event.amount != null
    send inapp "amount {{ event.amount }}" as has_amount
"""


def test_null_rules_inside_conditions() -> None:
    events = [
        track("u1", "cart_abandoned", at("10:00")),
        identify("u2", at("09:00"), tier="gold"),
        track("u2", "cart_abandoned", at("10:00"), amount=5),
        track("u2", "order_completed", at("09:30")),
    ]
    r = run({"n.journey": NULLS}, events)
    sent = {u: [a["step"] for a in r.of(action="send", user=u)] for u in ("u1", "u2")}
    assert sent["u1"] == ["is_null", "ne_null", "not_null", "arith", "path"]
    assert sent["u2"] == ["compared", "exists", "has_amount"]


# ---------------------------------------------------------------- ordering at one instant


def test_identify_after_a_track_at_the_same_instant_does_not_affect_it() -> None:
    journey = """
journey j
  when cart_abandoned
  send push or email "hi" as nudge
"""
    events = [
        identify("u1", at("09:00"), push_enabled=False, email="a@example.com"),
        track("u1", "cart_abandoned", at("10:00")),
        identify("u1", at("10:00"), push_enabled=True),  # later in the log
    ]
    r = run({"j.journey": journey}, events)
    assert [a["channel"] for a in r.of(action="send")] == ["email"]


def test_when_entering_a_segment_enters_when_the_user_becomes_a_member() -> None:
    project = """
segment big_spender = sum(order_completed.amount within 365d) >= 1000

journey vip
  when entering big_spender
  send inapp "welcome" as hi
"""
    events = [
        track("u1", "order_completed", at("09:00"), amount=600),
        track("u1", "order_completed", at("12:00"), amount=500),
    ]
    r = run({"s.journey": project}, events)
    assert [(a["at"], a["action"]) for a in r.dicts][:1] == [("2026-01-05T12:00:00Z", "enter")]


def test_every_day_at_enters_known_users_on_schedule() -> None:
    project = """
journey daily
  every day at 10:00 for everyone
  send inapp "daily" as d
"""
    events = [track("u1", "visit", at("09:00")), track("u1", "visit", at("12:00", "2026-01-06"))]
    r = run({"d.journey": project}, events)
    assert [(a["at"], a["action"]) for a in r.dicts][:1] == [("2026-01-05T10:00:00Z", "enter")]


def test_journeys_waiting_for_one_event_resume_in_the_order_they_were_entered() -> None:
    """A purchase resumes the post-browse journey entered at 09:00 before the cart
    journey entered at 10:00, though `abandoned_cart` sorts before `browsed` by id:
    the user's instances take an event in the order they were created."""
    project = {
        "j.journey": """
journey browsed
  when product_viewed
  wait for order_completed up to 1d
    on order_completed
      send inapp "Thanks for buying what you looked at" as thanks_browse

journey abandoned_cart
  when cart_abandoned
  wait for order_completed up to 1d
    on order_completed
      send inapp "Thanks for coming back to your cart" as thanks_cart
"""
    }
    events = [
        track("u1", "product_viewed", at("09:00")),
        track("u1", "cart_abandoned", at("10:00")),
        track("u1", "order_completed", at("11:00")),
    ]
    sends = run(project, events).of(action="send")
    assert [(a["journey"], a["step"]) for a in sends] == [
        ("browsed", "thanks_browse"),
        ("abandoned_cart", "thanks_cart"),
    ]
