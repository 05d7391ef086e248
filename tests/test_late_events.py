"""Calls as real clients send them, through the engine: device clocks (Segment's
clock-skew rule), offline queues flushed late, and the profile a call's context
fills (``context.traits``, ``context.timezone``, ``context.locale``).

The late-event tests drive the engine the daemon's way (events logged, then
``advance`` at the wall clock's time, every batch committed); the context tests
simulate, as ``journeyc simulate`` does: one parser and one engine for both.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from journeyc.engine.actions import Action
from journeyc.engine.core import Engine
from journeyc.events import Event, EventError, parse_batch, parse_call, read_events_jsonl
from journeyc.store.sqlite import Store
from tests.engine_helpers import DAY, HOUR, MINUTE, compile_files, config, iso, ms, run

NOW = ms("2026-01-05T12:00:00Z")  # the server's clock when the queue is flushed

LATE = {
    "cart.journey": """journey cart
  when cart_abandoned
  entry always
  wait 30m as pause
  send inapp "Your cart, {{ user.id }}" as nudge

journey morning
  when app_closed
  entry always
  goal order_completed within 1d
  wait until 09:00 as nine
  send inapp "Good morning" as hello

journey review
  when order_shipped
  entry always
  wait for review_written up to 1h
    on review_written
      send inapp "Thanks for the review" as thanks
    on timeout
      send inapp "Tell us what you think" as ask
"""
}


def engine(tmp_path: Path) -> tuple[Store, Engine]:
    store = Store.open(tmp_path / "late.db")
    eng = Engine(store, commit_per_batch=True)
    eng.deploy(compile_files(LATE), NOW - 3 * HOUR)
    return store, eng


def device_batch(calls: list[tuple[str, int]], skew_ms: int) -> dict[str, Any]:
    """A batch as a phone sends it when it flushes its queue at ``NOW``: each call
    ``(event, when it happened)``, stamped by a device clock ``skew_ms`` off."""
    return {
        "batch": [
            {"type": "track", "userId": "u1", "event": name, "timestamp": iso(at + skew_ms)}
            for name, at in calls
        ],
        "sentAt": iso(NOW + skew_ms),
    }


def sends(actions: list[Action]) -> list[tuple[int, str | None]]:
    return [(a.at_ms, a.step) for a in actions if a.action == "send"]


def log(store: Store, events: list[Event]) -> None:
    store.append_events(events, merge_traits=False)


def test_the_device_clock_is_corrected_by_sent_at() -> None:
    # A phone whose clock is a day ahead flushes an event that happened 2 h ago.
    [event] = parse_batch(device_batch([("cart_abandoned", NOW - 2 * HOUR)], 24 * HOUR), NOW)
    assert event.at_ms == NOW - 2 * HOUR
    assert event.received_ms == NOW


def test_a_wait_measured_from_an_event_two_hours_old_ends_at_once(tmp_path: Path) -> None:
    store, eng = engine(tmp_path)
    log(store, parse_batch(device_batch([("cart_abandoned", NOW - 2 * HOUR)], -HOUR), NOW))
    actions = eng.advance(NOW)
    # Entered when handled; the 30 minutes after the event are long over: sent at once.
    assert [(a.at_ms, a.action) for a in actions] == [
        (NOW, "enter"),
        (NOW, "send"),
        (NOW, "exit"),
    ]
    store.close()


def test_a_wait_is_measured_from_the_event_not_from_its_arrival(tmp_path: Path) -> None:
    store, eng = engine(tmp_path)
    log(store, parse_batch(device_batch([("cart_abandoned", NOW - 10 * MINUTE)], 0), NOW))
    assert sends(eng.advance(NOW)) == []
    assert sends(eng.advance(NOW + 20 * MINUTE - 1)) == []
    assert sends(eng.advance(NOW + 20 * MINUTE)) == [(NOW + 20 * MINUTE, "nudge")]
    store.close()


def test_a_late_wait_for_times_out_at_once_unless_its_event_came_in_the_same_flush(
    tmp_path: Path,
) -> None:
    store, eng = engine(tmp_path)
    # The timeout (1 h after a shipping 2 h ago) is over: the timeout branch, now.
    log(store, parse_batch(device_batch([("order_shipped", NOW - 2 * HOUR)], 0), NOW))
    assert sends(eng.advance(NOW)) == [(NOW, "ask")]
    # Both calls in one flush: the review is handled before the timeout (at equal times
    # events go first), so the wait ends on it, whatever its time.
    calls = [("order_shipped", NOW - 3 * HOUR), ("review_written", NOW - 150 * MINUTE)]
    log(store, parse_batch(device_batch(calls, 0), NOW + MINUTE))
    assert sends(eng.advance(NOW + MINUTE)) == [(NOW + MINUTE, "thanks")]
    store.close()


def test_a_review_that_comes_after_the_timeout_ran_changes_nothing(tmp_path: Path) -> None:
    store, eng = engine(tmp_path)
    log(store, parse_batch(device_batch([("order_shipped", NOW - 2 * HOUR)], 0), NOW))
    assert sends(eng.advance(NOW)) == [(NOW, "ask")]
    later = NOW + 5 * MINUTE
    log(store, parse_batch(device_batch([("review_written", NOW - 90 * MINUTE)], 0), later))
    assert sends(eng.advance(later)) == []
    store.close()


def test_a_wait_until_after_a_late_event_counts_from_the_event(tmp_path: Path) -> None:
    store, eng = engine(tmp_path)
    # Closed at 08:30 (UTC, the project's zone), flushed at 12:00: 09:00 is over.
    log(store, parse_batch(device_batch([("app_closed", NOW - 210 * MINUTE)], 0), NOW))
    assert sends(eng.advance(NOW)) == [(NOW, "hello")]
    store.close()


def test_a_goal_queued_with_the_entering_event_does_not_count(tmp_path: Path) -> None:
    # As docs/semantics.md says: the entry is at its handling, the goal event before it.
    store, eng = engine(tmp_path)
    calls = [("app_closed", NOW - 210 * MINUTE), ("order_completed", NOW - HOUR)]
    log(store, parse_batch(device_batch(calls, 0), NOW))
    actions = eng.advance(NOW)
    assert [a.action for a in actions if a.journey == "morning"] == ["enter", "send", "exit"]
    # A goal event that happens after the handling counts.
    log(store, parse_batch(device_batch([("app_closed", NOW + 30 * MINUTE)], 0), NOW + HOUR))
    eng.advance(NOW + HOUR)
    log(store, parse_batch(device_batch([("order_completed", NOW + 2 * HOUR)], 0), NOW + 2 * HOUR))
    goals = [a for a in eng.advance(NOW + 2 * HOUR) if a.action == "goal"]
    assert [(a.journey, a.at_ms) for a in goals] == [("morning", NOW + 2 * HOUR)]
    store.close()


# ---------------------------------------------------------------- the context's profile

CONTEXT = {
    "app.journey": """journey hello
  when app_opened
  entry always
  quiet hours 21:00-08:00
  send push greeting as hi

message greeting
  push
    body "Hello {{ user.first_name }}"
    body fr "Bonjour {{ user.first_name }}"
"""
}


def call(kind: str, at: str, **fields: Any) -> list[Event]:
    obj: dict[str, Any] = {"type": kind, "userId": "u1", "timestamp": at + "Z", **fields}
    if kind == "track":
        obj.setdefault("event", "App Opened")
    return parse_call(obj, received_ms=0)


def test_context_traits_timezone_and_locale_reach_the_simulated_profile() -> None:
    # A RudderStack-style app: identify traits only in context.traits, the device's
    # zone and locale in every call's context, nothing in the profile's own traits.
    device = {"timezone": "Asia/Bangkok", "locale": "fr-FR"}
    events = [
        *call(
            "identify",
            "2026-01-05T10:00:00",
            context={"traits": {"first_name": "Léa", "push_enabled": True}, **device},
        ),
        # 14:30 UTC is 21:30 in Bangkok: quiet hours, in the zone the device sent.
        *call("track", "2026-01-05T14:30:00", context={"traits": {"plan": "pro"}, **device}),
    ]
    r = run(CONTEXT, events, config=config(timezone="UTC"))
    assert r.profiles["u1"] == {
        "first_name": "Léa",
        "push_enabled": True,
        "plan": "pro",
        "timezone": "Asia/Bangkok",
        "locale": "fr-FR",
    }
    [send] = r.of(action="send")
    assert send["at"] == "2026-01-06T01:00:00Z"  # 08:00 in Bangkok
    assert send["content"] == {"body": "Bonjour Léa"}


def test_the_profiles_own_timezone_wins_over_the_devices() -> None:
    events = [
        *call("identify", "2026-01-05T09:00:00", traits={"timezone": "Europe/Paris"}),
        *call(
            "identify",
            "2026-01-05T10:00:00",
            traits={"push_enabled": True},
            context={"timezone": "Asia/Bangkok", "locale": "th-TH"},
        ),
        # A later trait replaces a zone the context filled in; a later context does not
        # replace a trait.
        *call("track", "2026-01-05T11:00:00", context={"timezone": "America/New_York"}),
    ]
    r = run(CONTEXT, events)
    assert r.profiles["u1"]["timezone"] == "Europe/Paris"
    assert r.profiles["u1"]["locale"] == "th-TH"


def test_an_unknown_zone_is_ignored_and_reported_not_refused() -> None:
    ignored: list[str] = []
    body = {
        "batch": [
            {
                "type": "identify",
                "userId": "u1",
                "traits": {"first_name": "Ann"},
                "context": {"timezone": "Mars/Olympus_Mons", "locale": 7},
            },
            {"type": "track", "userId": "u1", "event": "App Opened"},
        ]
    }
    events = parse_batch(body, NOW, on_ignored=ignored.append)
    assert [e.props for e in events] == [{"first_name": "Ann"}, {}]
    assert ignored == ["context.timezone", "context.locale"]


# ---------------------------------------------------------------- recorded files


def test_a_recorded_call_is_corrected_by_its_own_received_at(tmp_path: Path) -> None:
    # A Segment export keeps receivedAt: the rule gives Segment's own timestamp, not one
    # measured from the time the file is read. Without receivedAt, sentAt is not used.
    export = {
        "type": "track",
        "userId": "u1",
        "event": "Cart Abandoned",
        "originalTimestamp": "2026-01-06T10:00:00.000Z",  # a device a day ahead
        "sentAt": "2026-01-06T12:00:00.000Z",
        "receivedAt": "2026-01-05T12:00:00.500Z",
        "timestamp": "2026-01-05T10:00:00.500Z",
    }
    bare = {k: v for k, v in export.items() if k != "receivedAt"}
    path = tmp_path / "events.jsonl"
    path.write_text(json.dumps(export) + "\n" + json.dumps(bare) + "\n", encoding="utf-8")
    first, second = read_events_jsonl(path, received_ms=NOW + DAY)
    assert first.at_ms == ms("2026-01-05T10:00:00.500Z")
    assert second.at_ms == ms("2026-01-05T10:00:00.500Z")  # its timestamp, as given


def test_a_bad_sent_at_is_refused_naming_its_path() -> None:
    body = {
        "sentAt": "yesterday",
        "batch": [
            {"type": "track", "userId": "u1", "event": "A"},
            {"type": "track", "userId": "u1", "event": "B", "sentAt": 5},
        ],
    }
    with pytest.raises(EventError) as info:
        parse_batch(body, NOW)
    assert [p.path for p in info.value.problems] == ["$.sentAt", "$.batch[1].sentAt"]
