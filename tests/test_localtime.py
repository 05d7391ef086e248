"""Local wall-clock schedules: fixed cases around DST in several zones, and
properties checked against a brute-force minute-by-minute walk of the wall clock."""

from __future__ import annotations

import functools
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from journeyc.engine.localtime import (
    DAY_WORDS,
    in_window,
    next_interval_time,
    next_local_time,
    user_zone,
    window_end,
)

MINUTE = timedelta(minutes=1)
DAY = timedelta(days=1)
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
BANGKOK = ZoneInfo("Asia/Bangkok")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")
CHATHAM = ZoneInfo("Pacific/Chatham")
SANTIAGO = ZoneInfo("America/Santiago")
UTC_ZONE = ZoneInfo("UTC")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc, arg-type]


# --- user_zone ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("profile", "expected"),
    [
        ({"timezone": "Asia/Bangkok"}, "Asia/Bangkok"),
        ({"timezone": "Pacific/Chatham"}, "Pacific/Chatham"),
        ({}, "Europe/Berlin"),
        ({"timezone": None}, "Europe/Berlin"),
        ({"timezone": 7}, "Europe/Berlin"),
        ({"timezone": ["Asia/Bangkok"]}, "Europe/Berlin"),
        ({"timezone": ""}, "Europe/Berlin"),
        ({"timezone": "Mars/Olympus_Mons"}, "Europe/Berlin"),
        ({"timezone": "asia/bangkok"}, "Europe/Berlin"),
        ({"timezone": " Asia/Bangkok"}, "Europe/Berlin"),
        ({"timezone": "../../etc/passwd"}, "Europe/Berlin"),
        ({"timezone": "/etc/localtime"}, "Europe/Berlin"),
        ({"timezone": "America"}, "Europe/Berlin"),  # a directory of zones
        ({"timezone": "zone.tab"}, "Europe/Berlin"),  # a file that is not a zone
        ({"timezone": "localtime"}, "Europe/Berlin"),  # the server's zone, not IANA
        ({"timezone": "Asia/Bang\x00kok"}, "Europe/Berlin"),
    ],
)
def test_user_zone(profile: dict[str, Any], expected: str) -> None:
    assert user_zone(profile, BERLIN).key == expected


def test_user_zone_returns_the_cached_zone_object() -> None:
    first = user_zone({"timezone": "America/New_York"}, BERLIN)
    assert user_zone({"timezone": "America/New_York"}, BERLIN) is first
    assert user_zone({"timezone": "nope"}, BANGKOK) is BANGKOK


@given(st.text(max_size=40))
def test_user_zone_never_raises(name: str) -> None:
    assert isinstance(user_zone({"timezone": name}, BERLIN), ZoneInfo)


# --- next_local_time: fixed cases ----------------------------------------------------


def test_next_local_time_later_today_and_tomorrow() -> None:
    now = utc(2026, 3, 4, 12, 0)  # 19:00 in Bangkok (UTC+7), a Wednesday
    assert next_local_time(now, 20, 0, BANGKOK) == utc(2026, 3, 4, 13, 0)
    assert next_local_time(now, 9, 0, BANGKOK) == utc(2026, 3, 5, 2, 0)
    assert next_local_time(now, 9, 0, BANGKOK, "day") == utc(2026, 3, 5, 2, 0)


def test_next_local_time_is_strictly_after_now() -> None:
    now = utc(2026, 3, 4, 12, 0)  # exactly 19:00 Bangkok
    assert next_local_time(now, 19, 0, BANGKOK) == utc(2026, 3, 5, 12, 0)
    just_before = now - timedelta(microseconds=1)
    assert next_local_time(just_before, 19, 0, BANGKOK) == now


@pytest.mark.parametrize(
    ("day", "local_date"),
    [
        # From Wednesday 2026-03-04 19:00 Bangkok, for 09:00.
        ("monday", date(2026, 3, 9)),
        ("tuesday", date(2026, 3, 10)),
        ("wednesday", date(2026, 3, 11)),  # today's 09:00 has passed
        ("thursday", date(2026, 3, 5)),
        ("friday", date(2026, 3, 6)),
        ("saturday", date(2026, 3, 7)),
        ("sunday", date(2026, 3, 8)),
        ("weekday", date(2026, 3, 5)),
        ("weekend", date(2026, 3, 7)),
        ("day", date(2026, 3, 5)),
        (None, date(2026, 3, 5)),
        ("Monday", date(2026, 3, 9)),
    ],
)
def test_next_local_time_day_words(day: str | None, local_date: date) -> None:
    result = next_local_time(utc(2026, 3, 4, 12, 0), 9, 0, BANGKOK, day)
    assert result.tzinfo is UTC
    assert result.astimezone(BANGKOK).replace(tzinfo=None) == datetime.combine(
        local_date, time(9, 0)
    )


def test_weekday_and_weekend_skip_the_other_days() -> None:
    friday_evening = utc(2026, 3, 6, 12, 0)  # Friday 19:00 Bangkok
    assert next_local_time(friday_evening, 18, 30, BANGKOK, "weekday") == utc(2026, 3, 9, 11, 30)
    sunday_evening = utc(2026, 3, 8, 12, 0)
    assert next_local_time(sunday_evening, 10, 0, BANGKOK, "weekend") == utc(2026, 3, 14, 3, 0)
    # Today matches when the time is still ahead.
    assert next_local_time(friday_evening, 20, 0, BANGKOK, "friday") == utc(2026, 3, 6, 13, 0)


@pytest.mark.parametrize(
    ("zone", "now", "hour", "minute", "expected"),
    [
        # Europe/Berlin springs forward on 2026-03-29, 02:00 CET -> 03:00 CEST (01:00 UTC).
        (BERLIN, utc(2026, 3, 28, 12), 2, 30, utc(2026, 3, 29, 1, 0)),
        (BERLIN, utc(2026, 3, 28, 12), 2, 0, utc(2026, 3, 29, 1, 0)),
        (BERLIN, utc(2026, 3, 28, 12), 2, 59, utc(2026, 3, 29, 1, 0)),
        (BERLIN, utc(2026, 3, 28, 12), 3, 0, utc(2026, 3, 29, 1, 0)),
        (BERLIN, utc(2026, 3, 28, 12), 1, 59, utc(2026, 3, 29, 0, 59)),
        (BERLIN, utc(2026, 3, 28, 12), 3, 1, utc(2026, 3, 29, 1, 1)),
        # The day after, 02:30 exists again (CEST).
        (BERLIN, utc(2026, 3, 29, 1, 0), 2, 30, utc(2026, 3, 30, 0, 30)),
        # Falls back on 2026-10-25, 03:00 CEST -> 02:00 CET (01:00 UTC): the first 02:30.
        (BERLIN, utc(2026, 10, 24, 12), 2, 30, utc(2026, 10, 25, 0, 30)),
        (BERLIN, utc(2026, 10, 24, 12), 2, 0, utc(2026, 10, 25, 0, 0)),
        (BERLIN, utc(2026, 10, 24, 12), 3, 0, utc(2026, 10, 25, 2, 0)),
        # At its first occurrence, or during the repeat, the next is the day after's.
        (BERLIN, utc(2026, 10, 25, 0, 30), 2, 30, utc(2026, 10, 26, 1, 30)),
        (BERLIN, utc(2026, 10, 25, 1, 10), 2, 30, utc(2026, 10, 26, 1, 30)),
        # During the repeat, a time after the repeat is still today.
        (BERLIN, utc(2026, 10, 25, 1, 10), 3, 0, utc(2026, 10, 25, 2, 0)),
        # America/New_York: 2026-03-08 02:00 EST -> 03:00 EDT (07:00 UTC).
        (NEW_YORK, utc(2026, 3, 7, 12), 2, 30, utc(2026, 3, 8, 7, 0)),
        (NEW_YORK, utc(2026, 3, 8, 6), 9, 0, utc(2026, 3, 8, 13, 0)),
        # 2026-11-01 02:00 EDT -> 01:00 EST (06:00 UTC): the first 01:30 is EDT.
        (NEW_YORK, utc(2026, 10, 31, 12), 1, 30, utc(2026, 11, 1, 5, 30)),
        (NEW_YORK, utc(2026, 11, 1, 5, 45), 1, 30, utc(2026, 11, 2, 6, 30)),
        # Australia/Lord_Howe moves by 30 minutes: 2026-10-04 02:00 -> 02:30 (+11).
        (LORD_HOWE, utc(2026, 10, 3, 0), 2, 15, utc(2026, 10, 3, 15, 30)),
        (LORD_HOWE, utc(2026, 10, 3, 0), 2, 30, utc(2026, 10, 3, 15, 30)),
        (LORD_HOWE, utc(2026, 10, 3, 0), 1, 59, utc(2026, 10, 3, 15, 29)),
        # 2026-04-05 02:00 (+11) -> 01:30 (+10:30): the first 01:45 is at +11.
        (LORD_HOWE, utc(2026, 4, 4, 0), 1, 45, utc(2026, 4, 4, 14, 45)),
        (LORD_HOWE, utc(2026, 4, 4, 15, 0), 1, 45, utc(2026, 4, 5, 15, 15)),
        # Pacific/Chatham (+12:45/+13:45): 2026-09-27 02:45 -> 03:45.
        (CHATHAM, utc(2026, 9, 26, 0), 3, 0, utc(2026, 9, 26, 14, 0)),
        (CHATHAM, utc(2026, 9, 26, 0), 2, 44, utc(2026, 9, 26, 13, 59)),
        # 2026-04-05 03:45 (+13:45) -> 02:45 (+12:45): the first 03:00 is at +13:45.
        (CHATHAM, utc(2026, 4, 4, 0), 3, 0, utc(2026, 4, 4, 13, 15)),
        # America/Santiago springs forward at midnight: 2026-09-06 00:00 -> 01:00 (-03).
        (SANTIAGO, utc(2026, 9, 5, 12), 0, 30, utc(2026, 9, 6, 4, 0)),
        (SANTIAGO, utc(2026, 9, 5, 12), 0, 0, utc(2026, 9, 6, 4, 0)),
        # and falls back at midnight: 2026-04-05 00:00 (-03) -> 2026-04-04 23:00 (-04).
        (SANTIAGO, utc(2026, 4, 4, 12), 23, 30, utc(2026, 4, 5, 2, 30)),
        (SANTIAGO, utc(2026, 4, 5, 3, 10), 23, 30, utc(2026, 4, 6, 3, 30)),
        (SANTIAGO, utc(2026, 4, 4, 12), 0, 0, utc(2026, 4, 5, 4, 0)),
    ],
)
def test_next_local_time_across_dst(
    zone: ZoneInfo, now: datetime, hour: int, minute: int, expected: datetime
) -> None:
    assert next_local_time(now, hour, minute, zone) == expected


def test_a_gap_time_counts_for_its_date_and_day_word() -> None:
    # 2026-03-29 is a Sunday; 02:30 does not exist and fires at 03:00 CEST.
    assert next_local_time(utc(2026, 3, 23, 12), 2, 30, BERLIN, "sunday") == utc(2026, 3, 29, 1)
    assert next_local_time(utc(2026, 3, 23, 12), 2, 30, BERLIN, "weekend") == utc(
        2026, 3, 28, 1, 30
    )


def test_next_local_time_accepts_any_aware_now_and_rejects_bad_input() -> None:
    in_bangkok = datetime(2026, 3, 4, 19, 0, tzinfo=BANGKOK)
    assert next_local_time(in_bangkok, 20, 0, BANGKOK) == utc(2026, 3, 4, 13, 0)
    with pytest.raises(ValueError, match="aware"):
        next_local_time(datetime(2026, 3, 4, 12), 9, 0, BANGKOK)
    with pytest.raises(ValueError, match="time of day"):
        next_local_time(in_bangkok, 24, 0, BANGKOK)
    with pytest.raises(ValueError, match="time of day"):
        next_local_time(in_bangkok, 9, 60, BANGKOK)
    with pytest.raises(ValueError, match="unknown day"):
        next_local_time(in_bangkok, 9, 0, BANGKOK, "someday")


# --- quiet hours: fixed cases --------------------------------------------------------

NIGHT = (22 * 60, 8 * 60)


@pytest.mark.parametrize(
    ("local", "inside", "end"),
    [
        # Bangkok wall times on 2026-03-04, quiet hours 22:00-08:00.
        (datetime(2026, 3, 4, 23, 0), True, datetime(2026, 3, 5, 8, 0)),
        (datetime(2026, 3, 4, 7, 0), True, datetime(2026, 3, 4, 8, 0)),
        (datetime(2026, 3, 4, 0, 0), True, datetime(2026, 3, 4, 8, 0)),
        (datetime(2026, 3, 4, 22, 0), True, datetime(2026, 3, 5, 8, 0)),
        (datetime(2026, 3, 4, 7, 59, 59), True, datetime(2026, 3, 4, 8, 0)),
        (datetime(2026, 3, 4, 8, 0), False, None),
        (datetime(2026, 3, 4, 21, 59, 59), False, None),
        (datetime(2026, 3, 4, 12, 0), False, None),
    ],
)
def test_quiet_hours_across_midnight(local: datetime, inside: bool, end: datetime | None) -> None:
    now = local.replace(tzinfo=BANGKOK).astimezone(UTC)
    assert in_window(now, *NIGHT, BANGKOK) is inside
    result = window_end(now, *NIGHT, BANGKOK)
    expected = None if end is None else end.replace(tzinfo=BANGKOK).astimezone(UTC)
    assert result == expected


def test_quiet_hours_within_a_day_and_empty() -> None:
    noon = datetime(2026, 3, 4, 12, 30, tzinfo=BANGKOK)
    assert in_window(noon, 12 * 60, 14 * 60, BANGKOK)
    assert window_end(noon, 12 * 60, 14 * 60, BANGKOK) == utc(2026, 3, 4, 7, 0)
    assert not in_window(noon, 13 * 60, 14 * 60, BANGKOK)
    assert not in_window(noon, 10 * 60, 12 * 60, BANGKOK)
    assert not in_window(noon, 12 * 60 + 30, 12 * 60 + 30, BANGKOK)
    assert window_end(noon, 12 * 60 + 30, 12 * 60 + 30, BANGKOK) is None


def test_quiet_hours_use_the_users_zone() -> None:
    now = utc(2026, 3, 4, 23, 0)  # 06:00 in Bangkok, 00:00 in Berlin, 18:00 in New York
    assert in_window(now, *NIGHT, BANGKOK)
    assert in_window(now, *NIGHT, BERLIN)
    assert not in_window(now, *NIGHT, NEW_YORK)
    assert window_end(now, *NIGHT, BERLIN) == utc(2026, 3, 5, 7, 0)


def test_quiet_hours_reject_bad_minutes() -> None:
    now = utc(2026, 3, 4, 12)
    for start, end in [(-1, 60), (0, 1440), (1440, 0)]:
        with pytest.raises(ValueError, match="minute of the day"):
            in_window(now, start, end, BANGKOK)
        with pytest.raises(ValueError, match="minute of the day"):
            window_end(now, start, end, BANGKOK)


@pytest.mark.parametrize(
    ("zone", "window", "now", "end"),
    [
        # Berlin's night across spring-forward is one hour shorter in real time.
        (BERLIN, NIGHT, utc(2026, 3, 28, 22, 0), utc(2026, 3, 29, 6, 0)),
        # and across fall-back one hour longer.
        (BERLIN, NIGHT, utc(2026, 10, 24, 22, 0), utc(2026, 10, 25, 7, 0)),
        # A gap that jumps over the end ends the window at the first instant after it.
        (BERLIN, (60, 150), utc(2026, 3, 29, 0, 30), utc(2026, 3, 29, 1, 0)),
        # In the repeated hour the end is the repeat's 02:30, not tomorrow's.
        (BERLIN, (0, 150), utc(2026, 10, 25, 1, 10), utc(2026, 10, 25, 1, 30)),
        (BERLIN, (0, 150), utc(2026, 10, 25, 0, 10), utc(2026, 10, 25, 0, 30)),
        # Falling back to before the start ends the window at the transition.
        (BERLIN, (150, 210), utc(2026, 10, 25, 0, 40), utc(2026, 10, 25, 1, 0)),
        # and it starts again at 02:30 CET.
        (BERLIN, (150, 210), utc(2026, 10, 25, 1, 30), utc(2026, 10, 25, 2, 30)),
        # Falling back inside the window makes it last longer: 01:00 EDT to 02:00 EST.
        (NEW_YORK, (60, 120), utc(2026, 11, 1, 5, 30), utc(2026, 11, 1, 7, 0)),
        # Lord Howe's half-hour shift.
        (LORD_HOWE, (60, 150), utc(2026, 10, 3, 15, 0), utc(2026, 10, 3, 15, 30)),
        (LORD_HOWE, NIGHT, utc(2026, 4, 4, 12, 0), utc(2026, 4, 4, 21, 30)),
        # Chatham's 45-minute offsets: 02:45 -> 03:45 skips 03:00.
        (CHATHAM, (120, 180), utc(2026, 9, 26, 13, 30), utc(2026, 9, 26, 14, 0)),
    ],
)
def test_window_end_across_dst(
    zone: ZoneInfo, window: tuple[int, int], now: datetime, end: datetime
) -> None:
    assert in_window(now, *window, zone)
    assert window_end(now, *window, zone) == end


def test_window_end_across_a_gap_agrees_with_next_local_time() -> None:
    now = utc(2026, 3, 29, 0, 30)  # 01:30 CET, the end 02:30 is skipped
    assert window_end(now, 60, 150, BERLIN) == next_local_time(now, 2, 30, BERLIN)


# --- every N -------------------------------------------------------------------------


def test_next_interval_time() -> None:
    anchor = utc(2026, 1, 1, 0, 0)
    six_hours = 6 * 3600
    assert next_interval_time(utc(2026, 3, 4, 13, 15), six_hours, anchor) == utc(2026, 3, 4, 18)
    # On the grid: strictly after, so the next one.
    assert next_interval_time(utc(2026, 3, 4, 12), six_hours, anchor) == utc(2026, 3, 4, 18)
    assert next_interval_time(utc(2026, 3, 4, 11, 59, 59, 999999), six_hours, anchor) == utc(
        2026, 3, 4, 12
    )
    # The grid extends before the anchor.
    assert next_interval_time(utc(2025, 12, 31, 19), six_hours, anchor) == anchor
    assert next_interval_time(utc(2025, 12, 31, 17), six_hours, anchor) == utc(2025, 12, 31, 18)
    # An odd interval and an anchor off the hour, given in another zone.
    anchor_bkk = datetime(2026, 3, 4, 9, 7, 30, tzinfo=BANGKOK)  # 02:07:30 UTC
    assert next_interval_time(utc(2026, 3, 4, 3, 0), 7 * 60, anchor_bkk) == utc(
        2026, 3, 4, 3, 3, 30
    )
    with pytest.raises(ValueError, match="positive"):
        next_interval_time(anchor, 0, anchor)
    with pytest.raises(ValueError, match="aware"):
        next_interval_time(anchor, 60, datetime(2026, 1, 1))


@given(
    now=st.datetimes(datetime(2020, 1, 1), datetime(2030, 12, 31)),
    anchor=st.datetimes(datetime(2020, 1, 1), datetime(2030, 12, 31)),
    interval_s=st.one_of(st.integers(1, 600), st.integers(1, 30 * 86400)),
)
def test_next_interval_time_is_the_next_grid_point(
    now: datetime, anchor: datetime, interval_s: int
) -> None:
    now, anchor = now.replace(tzinfo=UTC), anchor.replace(tzinfo=UTC)
    step = timedelta(seconds=interval_s)
    result = next_interval_time(now, interval_s, anchor)
    assert result.tzinfo is UTC
    assert now < result <= now + step
    assert (result - anchor) % step == timedelta(0)


# --- properties against a brute-force walk of the wall clock --------------------------

ZONES = [
    "Europe/Berlin",
    "America/New_York",
    "Asia/Bangkok",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "America/Santiago",  # transitions at midnight
    "America/Havana",  # transitions at midnight
    "Africa/Casablanca",  # four transitions a year around Ramadan
    "Antarctica/Troll",  # a two-hour shift
    "America/St_Johns",
    "Asia/Kathmandu",
    "Asia/Tehran",
    "Europe/Dublin",  # "negative" DST in winter
    "Pacific/Apia",
    "UTC",
]
START = datetime(2020, 1, 1, tzinfo=UTC)
STOP = datetime(2031, 1, 1, tzinfo=UTC)


@functools.cache
def transitions(name: str) -> tuple[datetime, ...]:
    """Every instant in 2020-2030 at which the zone's UTC offset changes."""
    zone = ZoneInfo(name)
    found: list[datetime] = []
    step = timedelta(hours=6)
    at, offset = START, START.astimezone(zone).utcoffset()
    while at < STOP:
        nxt = at + step
        if nxt.astimezone(zone).utcoffset() != offset:
            lo, hi = at, nxt  # offset(lo) is the old one, offset(hi) the new one
            while hi - lo > timedelta(seconds=1):
                mid = lo + (hi - lo) / 2
                mid = mid.replace(microsecond=0)
                if mid.astimezone(zone).utcoffset() == offset:
                    lo = mid
                else:
                    hi = mid
            found.append(hi)
            offset = nxt.astimezone(zone).utcoffset()
        at = nxt
    return tuple(found)


def wall(instant: datetime, zone: ZoneInfo) -> datetime:
    return instant.astimezone(zone).replace(tzinfo=None)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[ZoneInfo, datetime, datetime]:
    """A zone, an instant in 2020-2030 (often within days of a DST change) and a
    wall time of interest (often one close to the change)."""
    name = draw(st.sampled_from(ZONES))
    zone = ZoneInfo(name)
    changes = transitions(name)
    if changes and draw(st.integers(0, 3)) > 0:
        change = draw(st.sampled_from(changes))
        # Hypothesis favours the bound nearest 0; a few hours before the change keeps
        # the wall times around it ahead, the other ranges put `now` in a repeated hour
        # or days away.
        seconds = draw(
            st.sampled_from(
                [
                    st.integers(-27 * 3600, -3 * 3600),
                    st.integers(-2 * 3600, 2 * 3600),
                    st.integers(-3 * 86400, 3 * 86400),
                ]
            ).flatmap(lambda s: s)
        )
        now = change + timedelta(seconds=seconds)
        # Naive arithmetic on the wall clock, so that times inside a gap come up too.
        interesting = wall(change, zone) + timedelta(minutes=draw(st.integers(-90, 90)))
    else:
        now = draw(st.datetimes(datetime(2020, 1, 1), datetime(2030, 12, 31))).replace(tzinfo=UTC)
        interesting = draw(st.datetimes(datetime(2020, 1, 1), datetime(2030, 12, 31)))
    if draw(st.booleans()):
        now = now.replace(second=0, microsecond=0)
    return zone, now, interesting


def kind(local: datetime, zone: ZoneInfo) -> str:
    """Whether a wall time happens once, twice or never (a gap) in ``zone``."""
    early, late = (local.replace(tzinfo=zone, fold=f).astimezone(UTC) for f in (0, 1))
    if early == late:
        return "once"
    return "twice" if wall(early, zone) == local else "gap"


def first_crossing(
    now: datetime, hour: int, minute: int, zone: ZoneInfo, days: frozenset[int], limit: datetime
) -> datetime | None:
    """Walk the wall clock minute by minute from ``now`` up to ``limit`` and return
    the first instant at which it passes ``hour:minute`` of a matching date for the
    first time (not during a fall-back's repeat, where ``fold`` is 1)."""
    clock = time(hour, minute)
    prev = wall(now, zone)
    at = now.replace(second=0, microsecond=0) + MINUTE
    while at <= limit:
        local = at.astimezone(zone)
        cur = local.replace(tzinfo=None)
        if local.fold == 0:
            d = prev.date()
            while d <= cur.date():
                target = datetime.combine(d, clock)
                if d.weekday() in days and prev < target <= cur:
                    return at
                d += DAY
        prev = cur
        at += MINUTE
    return None


ALL_DAYS = DAY_WORDS["day"]
DAY_CHOICES = st.one_of(st.none(), st.sampled_from([None, *DAY_WORDS]))


@given(scenario=scenarios(), day=DAY_CHOICES, exact=st.integers(0, 3), data=st.data())
def test_next_local_time_properties(
    scenario: tuple[ZoneInfo, datetime, datetime], day: str | None, exact: int, data: st.DataObject
) -> None:
    zone, now, interesting = scenario
    if exact > 0:
        hour, minute = interesting.hour, interesting.minute
    else:
        hour, minute = data.draw(st.integers(0, 23)), data.draw(st.integers(0, 59))
    result = next_local_time(now, hour, minute, zone, day)
    days = DAY_WORDS["day" if day is None else day]

    assert result.tzinfo is UTC
    assert result > now
    local = result.astimezone(zone)
    if (local.hour, local.minute) == (hour, minute):
        # An ordinary time, or the first of two occurrences.
        event(kind(local.replace(tzinfo=None), zone))
        assert local.second == 0
        assert local.microsecond == 0
        assert local.fold == 0
        assert local.weekday() in days
    else:
        # The first instant after a gap that skipped hour:minute on a matching date.
        before = wall(result - timedelta(microseconds=1), zone)
        target = datetime.combine(before.date(), time(hour, minute))
        if target <= before:
            target += DAY
        event(kind(target, zone))
        assert before < target < local.replace(tzinfo=None)
        assert target.weekday() in days
    # No matching instant in between: a minute-by-minute walk finds this one first.
    assert first_crossing(now, hour, minute, zone, days, result) == result


def check_window(now: datetime, start: int, end: int, zone: ZoneInfo) -> None:
    """in_window against a direct minute-of-day computation; window_end is the first
    instant, at minute resolution, at which the wall clock is outside the window."""

    def inside(at: datetime) -> bool:
        local = at.astimezone(zone)
        m = local.hour * 60 + local.minute
        return (m - start) % 1440 < (end - start) % 1440

    assert in_window(now, start, end, zone) is inside(now)
    result = window_end(now, start, end, zone)
    if not inside(now):
        assert result is None
        return
    assert result is not None
    assert result.tzinfo is UTC
    assert result > now
    assert not inside(result)
    at = now
    while at < result:
        assert inside(at), at
        at += MINUTE
    # Without a DST change on the way, nor a repeated hour at `now`, the end is the
    # next local end time.
    if now.astimezone(zone).fold == 0 and not any(
        now < change <= result for change in transitions(str(zone.key))
    ):
        assert result == next_local_time(now, end // 60, end % 60, zone)


@given(scenario=scenarios(), data=st.data())
def test_quiet_hours_properties(
    scenario: tuple[ZoneInfo, datetime, datetime], data: st.DataObject
) -> None:
    zone, now, interesting = scenario
    minute_of_day = st.integers(0, 1439)
    interesting_minute = interesting.hour * 60 + interesting.minute
    start = data.draw(st.one_of(minute_of_day, st.just(interesting_minute)), label="start")
    end = data.draw(st.one_of(minute_of_day, st.just(interesting_minute)), label="end")
    check_window(now, start, end, zone)


def changes_in(name: str, first_year: int, last_year: int) -> list[datetime]:
    return [change for change in transitions(name) if first_year <= change.year <= last_year]


# Windows around a change, as minutes relative to the change's wall time.
AROUND = [(-60, -30), (-60, 30), (-30, 90), (0, 60), (-120, 0), (30, 120), (-90, -89)]


@pytest.mark.parametrize("name", [name for name in ZONES if changes_in(name, 2025, 2026)])
def test_every_dst_change_2025_2026(name: str) -> None:
    """Every change of every zone in 2025-2026 (the years around are alike), checked
    against the minute-by-minute walks: wall times from 90 minutes before to 90 after
    the change's wall time (so inside any gap or repeat) and windows starting or
    ending there, from before and from inside the change."""
    zone = ZoneInfo(name)
    kinds: set[str] = set()
    for change in changes_in(name, 2025, 2026):
        pivot = wall(change, zone)
        for delta in range(-90, 91, 15):
            target = pivot + timedelta(minutes=delta)
            kinds.add(kind(target, zone))
            for now in (change - timedelta(hours=3), change + timedelta(minutes=10, seconds=5)):
                result = next_local_time(now, target.hour, target.minute, zone)
                assert result > now
                walked = first_crossing(now, target.hour, target.minute, zone, ALL_DAYS, result)
                assert walked == result, (now, target)
        pivot_minute = pivot.hour * 60 + pivot.minute
        for start, end in AROUND:
            for now in (change - timedelta(minutes=45), change + timedelta(minutes=10)):
                check_window(now, (pivot_minute + start) % 1440, (pivot_minute + end) % 1440, zone)
    assert kinds >= {"gap", "twice"}
