"""How a report's time range is read from the hourly sums (both stores): whole hours
from the sums tables (``action_counts``, ``outbox_counts``, ``delivery_counts``), the
partial hours at its edges from the rows themselves, so any range is exact."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from journeyc.store.rows import ActionCount, FeedbackCount, OutboxCount

__all__ = [
    "FAR",
    "HOUR_MS",
    "Cut",
    "action_totals",
    "bounds",
    "cut",
    "feedback_totals",
    "outbox_totals",
]

HOUR_MS = 3_600_000
"""The width of a bucket of the sums: a report's range is exact, its edges read the rows."""

FAR = 1 << 62
"""Past any epoch-millisecond time, either way (and inside a 64-bit integer)."""


def bounds(since_ms: int | None, until_ms: int | None) -> tuple[int, int]:
    """The range ``[since_ms, until_ms)`` with None (no bound) as :data:`FAR`."""
    return (-FAR if since_ms is None else since_ms, FAR if until_ms is None else until_ms)


@dataclass(frozen=True, slots=True)
class Cut:
    """A range as whole hours ``[first_hour, end_hour)`` read from a table of sums,
    plus the partial hours at its edges, ``[lo, head_end)`` and ``[tail_start, hi)``,
    read from the rows themselves."""

    first_hour: int
    end_hour: int
    lo: int
    head_end: int
    tail_start: int
    hi: int

    def args(self, journey_id: str) -> tuple[object, ...]:
        """The parameters of a query of the sums over the whole hours then of the rows
        over each edge, each for ``journey_id`` (see the stores' ``_sums_and_edges``)."""
        return (
            journey_id,
            self.first_hour,
            self.end_hour,
            journey_id,
            self.lo,
            self.head_end,
            journey_id,
            self.tail_start,
            self.hi,
        )


def cut(since_ms: int | None, until_ms: int | None) -> Cut:
    """The range ``[since_ms, until_ms)`` cut into whole hours and edges."""
    lo, hi = bounds(since_ms, until_ms)
    first_hour, end_hour = -(-lo // HOUR_MS), hi // HOUR_MS
    if first_hour < end_hour:
        return Cut(first_hour, end_hour, lo, first_hour * HOUR_MS, end_hour * HOUR_MS, hi)
    return Cut(0, 0, lo, hi, hi, hi)  # no whole hour inside: the rows of the range


# The rows of a sums-and-edges query come in groups that repeat (a group of the whole
# hours, the same group at an edge): these add them up.


def action_totals(rows: Iterable[tuple[Any, ...]]) -> list[ActionCount]:
    """``(step, action, label, n)`` rows added up per step, action and label."""
    total: dict[tuple[str, str, str], int] = {}
    for step, action, label, n in rows:
        key = (str(step), str(action), str(label))
        total[key] = total.get(key, 0) + int(n)
    return [ActionCount(*key, n) for key, n in sorted(total.items())]


def outbox_totals(rows: Iterable[tuple[Any, ...]]) -> list[OutboxCount]:
    """``(channel, status, n, retried)`` rows added up per channel and status (groups
    left with no row out)."""
    total: dict[tuple[str, str], list[int]] = {}
    for channel, status, n, retried in rows:
        pair = total.setdefault((str(channel), str(status)), [0, 0])
        pair[0] += int(n)
        pair[1] += int(retried or 0)
    return [OutboxCount(c, s, n, r) for (c, s), (n, r) in sorted(total.items()) if n]


def feedback_totals(rows: Iterable[tuple[Any, ...]]) -> list[FeedbackCount]:
    """``(channel, kind, n)`` rows added up per channel and kind."""
    total: dict[tuple[str, str], int] = {}
    for channel, kind, n in rows:
        key = (str(channel), str(kind))
        total[key] = total.get(key, 0) + int(n)
    return [FeedbackCount(c, k, n) for (c, k), n in sorted(total.items())]
