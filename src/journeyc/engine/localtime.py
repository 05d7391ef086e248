"""Local wall-clock time for schedules: ``wait until``, ``quiet hours`` and ``every``.

Every function takes and returns aware UTC :class:`~datetime.datetime` values (an
aware value in another zone is accepted and converted; a naive one is a
:class:`ValueError`). Zones are :class:`zoneinfo.ZoneInfo`.

Daylight saving time, decided once for the whole engine:

- A wall time is *reached* at the first instant at which the local wall clock reads
  that date and time **or later**. For an ordinary time this is the instant it reads
  exactly that. A time skipped by a spring-forward gap is reached at the first
  instant after the gap (02:30 in Europe/Berlin on the spring-forward day: 03:00
  CEST, 01:00 UTC). A time that happens twice at a fall-back is reached at its first
  occurrence; the repeat does not count again, so a schedule fires once per date.
- Quiet hours compare the wall clock's minute of day with the window, whatever the
  offset; the window containing an instant ends at the first later instant whose
  wall clock is outside it, so a fall-back can end a window early (and start it
  again) and a gap can jump over its end.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "DAY_WORDS",
    "in_window",
    "next_interval_time",
    "next_local_time",
    "user_zone",
    "window_end",
]

_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

#: The day words ``next_local_time`` accepts, with the ISO weekdays (Monday = 0) each matches.
DAY_WORDS: Mapping[str, frozenset[int]] = {
    "day": frozenset(range(7)),
    "weekday": frozenset(range(5)),
    "weekend": frozenset({5, 6}),
    **{name: frozenset({i}) for i, name in enumerate(_WEEKDAYS)},
}

_MINUTES_PER_DAY = 24 * 60
_ONE_DAY = timedelta(days=1)
_ONE_SECOND = timedelta(seconds=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# --- zones -------------------------------------------------------------------------


@functools.lru_cache(maxsize=2048)
def _load_zone(name: str) -> ZoneInfo | None:
    # "localtime" is the server's own zone under TZPATH, not an IANA name.
    if name == "localtime":
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def user_zone(profile: Mapping[str, Any], default: ZoneInfo) -> ZoneInfo:
    """The zone named by the profile's ``timezone`` attribute, else ``default``.

    The name must be an exact IANA key (``"Asia/Bangkok"``); a missing, non-string or
    unknown value gives ``default`` and never raises. Lookups, failed ones included,
    are cached.
    """
    name = profile.get("timezone")
    if not isinstance(name, str):
        return default
    zone = _load_zone(name)
    return default if zone is None else zone


# --- helpers -----------------------------------------------------------------------


def _utc(value: datetime, what: str = "now") -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be an aware datetime, got {value!r}")
    return value.astimezone(UTC)


def _wall(instant: datetime, zone: ZoneInfo) -> datetime:
    """The naive local wall-clock reading at ``instant``."""
    return instant.astimezone(zone).replace(tzinfo=None)


def _day_filter(day: str | None) -> frozenset[int]:
    word = "day" if day is None else day.lower()
    try:
        return DAY_WORDS[word]
    except KeyError:
        raise ValueError(f"unknown day {day!r}; expected one of {', '.join(DAY_WORDS)}") from None


def _check_clock(hour: int, minute: int) -> None:
    if not (0 <= hour <= 23 and 0 <= minute <= 59):
        raise ValueError(f"invalid time of day {hour:02d}:{minute:02d}")


def _check_minute_of_day(value: int, what: str) -> None:
    if not 0 <= value < _MINUTES_PER_DAY:
        raise ValueError(f"{what} must be a minute of the day (0..1439), got {value}")


def _first_instant(lo: datetime, hi: datetime, is_after: Callable[[datetime], bool]) -> datetime:
    """The first whole UTC second in ``(lo, hi]`` for which ``is_after`` holds.

    ``is_after`` must be false at ``lo``, true at ``hi`` and flip once in between; zone
    transitions fall on whole seconds, so the answer is exact.
    """
    lo_s = (lo - _EPOCH) // _ONE_SECOND
    hi_s = -((_EPOCH - hi) // _ONE_SECOND)  # ceiling
    while hi_s - lo_s > 1:
        mid = (lo_s + hi_s) // 2
        if is_after(_EPOCH + timedelta(seconds=mid)):
            hi_s = mid
        else:
            lo_s = mid
    return _EPOCH + timedelta(seconds=hi_s)


def _reached(wall: datetime, zone: ZoneInfo) -> datetime:
    """The first instant (UTC) at which the wall clock in ``zone`` reads ``wall`` or later."""
    early = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if _wall(early, zone) == wall:
        # It exists; fold=0 is its first occurrence when it happens twice.
        return early
    # Skipped by a gap: fold=0 and fold=1 map it with the offsets before and after the
    # transition, which brackets the transition instant.
    late = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    lo, hi = min(early, late), max(early, late)
    # Out of precaution for odd historical data, widen until the bracket holds.
    while _wall(lo, zone) >= wall:
        lo -= _ONE_DAY
    while _wall(hi, zone) < wall:
        hi += _ONE_DAY
    return _first_instant(lo, hi, lambda t: _wall(t, zone) >= wall)


# --- wait until / every day at -----------------------------------------------------


def next_local_time(
    now: datetime, hour: int, minute: int, zone: ZoneInfo, day: str | None = None
) -> datetime:
    """The first instant strictly after ``now`` at which the wall clock in ``zone``
    reaches ``hour:minute`` on a local date matching ``day``.

    ``day`` is None or ``"day"`` (any date), ``"monday"`` … ``"sunday"``,
    ``"weekday"`` (Monday to Friday) or ``"weekend"`` (Saturday and Sunday); the date
    is the one the time belongs to.

    DST: when ``hour:minute`` does not exist on a date (a spring-forward gap), that
    date's instant is the first one after the gap (02:30 in Europe/Berlin on
    2026-03-29 gives 03:00 CEST = 01:00 UTC). When it happens twice (a fall-back),
    only its first occurrence counts, so it fires once per date; at ``now`` inside
    the repeated hour, after the first occurrence, the next date's time is returned.

    Raises ValueError for a naive ``now``, an out-of-range time or an unknown day.
    """
    now = _utc(now)
    _check_clock(hour, minute)
    days = _day_filter(day)
    clock = time(hour, minute)
    on: date = _wall(now, zone).date()
    # Dates before the local date of `now` were reached before it: their wall time
    # precedes the wall clock at `now`.
    while True:
        if on.weekday() in days:
            instant = _reached(datetime.combine(on, clock), zone)
            if instant > now:
                return instant
        on += _ONE_DAY


# --- quiet hours -------------------------------------------------------------------


def _minute_in_window(minute_of_day: int, start_min: int, end_min: int) -> bool:
    if start_min <= end_min:
        return start_min <= minute_of_day < end_min
    return minute_of_day >= start_min or minute_of_day < end_min


def in_window(now: datetime, start_min: int, end_min: int, zone: ZoneInfo) -> bool:
    """Whether the wall clock in ``zone`` at ``now`` is inside quiet hours.

    The window is ``[start_min, end_min)`` in minutes after local midnight, compared
    with the wall clock's hour and minute (seconds do not matter). When ``end_min <
    start_min`` it wraps midnight (22:00-08:00 is ``1320, 480``); when they are
    equal the window is empty.
    """
    _check_minute_of_day(start_min, "start_min")
    _check_minute_of_day(end_min, "end_min")
    local = _wall(_utc(now), zone)
    return _minute_in_window(local.hour * 60 + local.minute, start_min, end_min)


def window_end(now: datetime, start_min: int, end_min: int, zone: ZoneInfo) -> datetime | None:
    """The instant the quiet-hours window containing ``now`` ends, or None when ``now``
    is outside the window (see :func:`in_window`).

    This is the first instant after ``now`` at which the wall clock is outside the
    window. Without a DST change it is the next local ``end_min`` strictly after
    ``now``: for 22:00-08:00, at 23:00 tomorrow 08:00, at 07:00 today 08:00. A gap
    that jumps over the end ends the window at the first instant after the gap (as
    :func:`next_local_time` does); a fall-back that sets the clock back to before
    the window's start ends it at the transition (and a fall-back that stays inside
    the window makes it last longer).
    """
    if not in_window(now, start_min, end_min, zone):
        return None
    at = _utc(now)
    end_clock = time(end_min // 60, end_min % 60)
    while True:
        wall = _wall(at, zone)
        # The next wall-clock reading of the end after `wall`; `wall` is inside the
        # window, so its minute differs from the end's and this is strictly later.
        target = datetime.combine(wall.date(), end_clock)
        if target <= wall:
            target += _ONE_DAY
        guess = at + (target - wall)
        offset = at.astimezone(zone).utcoffset()
        if guess.astimezone(zone).utcoffset() == offset:
            # Same offset at both ends means no transition between: real zones change
            # offset months apart, never twice within a day.
            return guess

        def changed(t: datetime, offset: timedelta | None = offset) -> bool:
            return t.astimezone(zone).utcoffset() != offset

        # The offset changes on the way: go to the transition and look again.
        at = _first_instant(at, guess, changed)
        local = _wall(at, zone)
        if not _minute_in_window(local.hour * 60 + local.minute, start_min, end_min):
            return at


# --- every 6h ----------------------------------------------------------------------


def next_interval_time(now: datetime, interval_s: int, anchor: datetime) -> datetime:
    """The first instant strictly after ``now`` on the grid ``anchor + k * interval_s``
    seconds, for any integer ``k`` (the grid extends before ``anchor`` too).

    Exact to the microsecond. Raises ValueError for a non-positive interval or a
    naive datetime.
    """
    if interval_s <= 0:
        raise ValueError(f"interval must be positive, got {interval_s}")
    now = _utc(now)
    anchor = _utc(anchor, "anchor")
    step = timedelta(seconds=interval_s)
    return anchor + ((now - anchor) // step + 1) * step
