"""Scheduled entries (`every … for SEGMENT`): each user at the local time of their own
zone, across DST changes, in batches for large audiences, kept across redeploys."""

from __future__ import annotations

import itertools
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from journeyc.compile import ir
from journeyc.engine.core import BATCH, Engine
from journeyc.engine.schedules import next_fire
from journeyc.store.sqlite import Store
from tests.engine_helpers import DAY, HOUR, TMP_DIR, compile_files, config, identify, ms, run, track


def enters(r: object, journey: str) -> list[tuple[str, str]]:
    return [(a["at"], a["user"]) for a in r.of(journey=journey, action="enter")]  # type: ignore[attr-defined]


def test_every_day_enters_each_user_at_ten_in_their_own_zone() -> None:
    project = """
journey daily
  every day at 10:00 for everyone
  entry always
  send inapp "good morning" as hi
"""
    events = [
        identify("bkk", "2026-01-05T00:00:00", timezone="Asia/Bangkok"),
        identify("ldn", "2026-01-05T00:00:00", timezone="Europe/London"),
        identify("ny", "2026-01-05T00:00:00", timezone="America/New_York"),
        track("plain", "visit", "2026-01-05T00:00:00"),
    ]
    r = run(
        {"d.journey": project},
        events,
        config=config(timezone="Europe/Berlin"),
        until="2026-01-06T23:59:00Z",
    )
    assert enters(r, "daily") == [
        ("2026-01-05T03:00:00Z", "bkk"),
        ("2026-01-05T09:00:00Z", "plain"),  # no timezone: the project's (Berlin)
        ("2026-01-05T10:00:00Z", "ldn"),
        ("2026-01-05T15:00:00Z", "ny"),
        ("2026-01-06T03:00:00Z", "bkk"),
        ("2026-01-06T09:00:00Z", "plain"),
        ("2026-01-06T10:00:00Z", "ldn"),
        ("2026-01-06T15:00:00Z", "ny"),
    ]


def test_a_segment_schedule_enters_only_its_members_with_the_entry_rule() -> None:
    project = """
segment buyer = count(order_completed) >= 1

journey weekly
  every monday at 09:00 for buyer
  entry once per 7d
  send inapp "weekly picks" as picks
"""
    events = [
        track("u1", "order_completed", "2026-01-04T12:00:00"),
        track("u2", "product_viewed", "2026-01-04T12:00:00"),
        track("u2", "order_completed", "2026-01-12T12:00:00"),
    ]
    r = run({"w.journey": project}, events, until="2026-01-20T00:00:00Z")
    assert enters(r, "weekly") == [
        ("2026-01-05T09:00:00Z", "u1"),
        ("2026-01-12T09:00:00Z", "u1"),
        ("2026-01-19T09:00:00Z", "u1"),
        ("2026-01-19T09:00:00Z", "u2"),
    ]


def test_weekday_and_interval_schedules() -> None:
    project = """
journey evening
  every weekday at 18:30 for everyone
  entry always
  send inapp "evening" as e

journey sync
  every 6h for everyone
  entry always
  track synced
"""
    r = run(
        {"s.journey": project},
        [track("u1", "visit", "2026-01-09T00:00:00")],  # a Friday
        until="2026-01-12T23:00:00Z",
    )
    assert [a for a, _ in enters(r, "evening")] == [
        "2026-01-09T18:30:00Z",
        "2026-01-12T18:30:00Z",  # Monday; not the weekend
    ]
    sync = [a for a, _ in enters(r, "sync")]
    # The grid runs from local midnight; the run starts at 00:00, which counts.
    assert sync[:5] == [
        "2026-01-09T00:00:00Z",
        "2026-01-09T06:00:00Z",
        "2026-01-09T12:00:00Z",
        "2026-01-09T18:00:00Z",
        "2026-01-10T00:00:00Z",
    ]


def test_a_zone_that_appears_later_gets_its_own_firing() -> None:
    project = """
journey daily
  every day at 10:00 for everyone
  entry always
  send inapp "hi" as hi
"""
    events = [
        track("u1", "visit", "2026-01-05T00:00:00"),
        identify("u2", "2026-01-05T05:00:00", timezone="Asia/Tokyo"),
    ]
    r = run({"d.journey": project}, events, until="2026-01-06T12:00:00Z")
    assert enters(r, "daily") == [
        ("2026-01-05T10:00:00Z", "u1"),
        ("2026-01-06T01:00:00Z", "u2"),  # 10:00 in Tokyo; 01-05's had passed when known
        ("2026-01-06T10:00:00Z", "u1"),
    ]


def test_a_large_audience_is_entered_in_batches_at_the_same_time() -> None:
    n = BATCH * 2 + 37
    project = compile_files(
        {
            "d.journey": """
journey daily
  every day at 10:00 for everyone
  send inapp "hi" as hi
"""
        }
    )
    t0 = ms("2026-01-05T00:00:00Z")
    with tempfile.TemporaryDirectory(dir=TMP_DIR) as tmp:
        store = Store.open(Path(tmp) / "s.db")
        engine = Engine(store, commit_per_batch=True)
        engine.deploy(project, t0)
        store.append_events([track(f"u{i:05d}", "visit", t0, f"m{i}") for i in range(n)])
        engine.advance(t0)
        fire = engine.next_wake()
        assert fire == ms("2026-01-05T10:00:00Z")
        actions = engine.advance(fire)
        entered = [a.user for a in actions if a.action == "enter"]
        assert len(entered) == n and len(set(entered)) == n
        assert {a.at_ms for a in actions} == {fire}
        # The firing moved on to the next day, its progress cleared.
        row = store.conn.execute("SELECT next_at, after_user FROM schedules").fetchone()
        assert row == (fire + DAY, None)
        store.close()


def test_a_redeploy_keeps_unchanged_schedules_and_resets_changed_ones() -> None:
    a = compile_files(
        {"d.journey": "journey daily\n  every day at 10:00 for everyone\n  track x\n"}
    )
    b = compile_files(
        {"d.journey": "journey daily\n  every day at 11:00 for everyone\n  track x\n"}
    )
    t0 = ms("2026-01-05T00:00:00Z")
    with tempfile.TemporaryDirectory(dir=TMP_DIR) as tmp:
        store = Store.open(Path(tmp) / "s.db")
        engine = Engine(store)
        engine.deploy(a, t0)
        store.conn.execute("UPDATE schedules SET after_user = 'u5'")  # a firing under way
        engine.deploy(a, t0 + HOUR)
        assert store.conn.execute("SELECT next_at, after_user FROM schedules").fetchall() == [
            (ms("2026-01-05T10:00:00Z"), "u5")
        ]
        engine.deploy(b, t0 + HOUR)
        assert store.conn.execute("SELECT next_at, after_user FROM schedules").fetchall() == [
            (ms("2026-01-05T11:00:00Z"), None)
        ]
        store.close()


ZONES = [
    "Europe/Berlin",
    "America/New_York",
    "Australia/Sydney",
    "Asia/Bangkok",
    "America/Sao_Paulo",
    "Asia/Kolkata",
    "Pacific/Chatham",
]


@given(
    zone=st.sampled_from(ZONES),
    hour=st.integers(0, 23),
    minute=st.sampled_from([0, 15, 30, 45]),
    start=st.datetimes(
        min_value=datetime(2025, 1, 1), max_value=datetime(2026, 12, 1), timezones=st.just(UTC)
    ),
)
def test_daily_firings_land_on_the_local_time_once_per_local_date(
    zone: str, hour: int, minute: int, start: datetime
) -> None:
    tz = ZoneInfo(zone)
    trigger = ir.ScheduleTrigger(day="day", hour=hour, minute=minute, segment=None)
    t = int(start.timestamp() * 1000)
    dates = []
    for _ in range(40):
        t = next_fire(trigger, tz, t)
        local = datetime.fromtimestamp(t / 1000, UTC).astimezone(tz)
        wall = (local.hour, local.minute)
        if wall != (hour, minute):
            # Only in a DST gap: the first instant after it, the same date.
            naive = local.replace(tzinfo=None, hour=hour, minute=minute)
            assert (
                naive.replace(tzinfo=tz).astimezone(UTC).astimezone(tz).replace(tzinfo=None)
                != naive
            ), (zone, local)
        dates.append(local.date())
    # One firing per local date, none skipped.
    assert all(b - a == timedelta(days=1) for a, b in itertools.pairwise(dates))
