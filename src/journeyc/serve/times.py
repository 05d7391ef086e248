"""Times as the daemon reads and shows them: the wall clock in epoch milliseconds, and
the one ISO-8601 form of every time in the HTTP API's answers and ``/v1/status``."""

from __future__ import annotations

import time
from typing import overload

__all__ = ["iso", "now_ms"]


def now_ms() -> int:
    """The wall clock in UTC epoch milliseconds: the engine's ``now`` when serving."""
    return time.time_ns() // 1_000_000


@overload
def iso(ms: int) -> str: ...
@overload
def iso(ms: None) -> None: ...
@overload
def iso(ms: int | None) -> str | None: ...
def iso(ms: int | None) -> str | None:
    """Epoch milliseconds as ISO-8601 UTC, ``2026-01-05T10:31:00.000Z`` (None stays
    None): the one form of every time in the HTTP API's answers and ``/v1/status``.

    Milliseconds are always written, so the strings have one width and sort as the
    times do; the store keeps the integers. Worked out in integers (no float to round
    a millisecond down, no datetime to overflow): a year outside 0000-9999 (a timer of
    `wait 99999999d`) is written as ECMAScript's ``toISOString`` writes it, a sign and
    six digits (``+275760-09-13T00:00:00.000Z``)."""
    if ms is None:
        return None
    days, rest = divmod(ms, 86_400_000)
    year, month, day = _civil(days)
    seconds, milli = divmod(rest, 1000)
    minutes, second = divmod(seconds, 60)
    hour, minute = divmod(minutes, 60)
    shown = f"{year:04d}" if 0 <= year <= 9999 else f"{year:+07d}"
    return f"{shown}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}.{milli:03d}Z"


def _civil(days: int) -> tuple[int, int, int]:
    """(year, month, day) of the proleptic Gregorian date ``days`` after 1970-01-01,
    for any number of days (H. Hinnant's ``civil_from_days``)."""
    z = days + 719_468
    era = z // 146_097
    doe = z - era * 146_097  # day of the 400-year era, 0 to 146096
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)  # day of the year from March 1
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (month <= 2), month, day
