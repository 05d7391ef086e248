"""The queries of journey reports (:mod:`journeyc.reports`): set-based aggregates only.

Every function reads one journey over a time range ``[since_ms, until_ms)`` (None: no
bound) and returns a few rows whatever the store holds: entries per split group
(from the ``entries_report`` index), the action sums of ``action_counts`` (its whole
hours, plus the actions of the partial hours at the edges), the outbox per channel
and status, provider feedback per channel and kind. Run them inside
:func:`snapshot` so they all see one state of the store.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from journeyc.store.report_ranges import (
    Cut,
    action_totals,
    bounds,
    cut,
    feedback_totals,
    outbox_totals,
)
from journeyc.store.rows import ActionCount, EntryGroup, FeedbackCount, OutboxCount
from journeyc.store.rows import JourneyVersion as DeployedVersion
from journeyc.store.sqlite.action_counts import LABEL
from journeyc.store.sqlite.connected import Connected

__all__ = [
    "ActionCount",
    "DeployedVersion",
    "EntryGroup",
    "FeedbackCount",
    "OutboxCount",
    "action_counts",
    "deployed_versions",
    "entry_groups",
    "feedback_counts",
    "journey_ids",
    "median_ms_to_goal",
    "outbox_counts",
    "snapshot",
    "waiting_now",
]


@contextmanager
def snapshot(store: Connected) -> Iterator[Connected]:
    """Read ``store`` at one point in time (a read transaction) for the block."""
    conn = store.conn
    conn.execute("BEGIN")
    try:
        yield store
    finally:
        conn.execute("ROLLBACK")


def journey_ids(store: Connected) -> list[str]:
    """Every journey id the store has deployed, sorted."""
    return [str(r[0]) for r in store.conn.execute("SELECT DISTINCT id FROM journeys ORDER BY 1")]


def deployed_versions(store: Connected, journey_id: str) -> list[DeployedVersion]:
    """The journey's deployed versions, oldest first."""
    rows = store.conn.execute(
        "SELECT version, deployed_at, active, ir FROM journeys WHERE id = ?"
        " ORDER BY deployed_at, version",
        (journey_id,),
    )
    return [DeployedVersion(str(v), int(d), bool(a), str(i)) for v, d, a, i in rows]


def entry_groups(
    store: Connected, journey_id: str, since_ms: int | None, until_ms: int | None
) -> list[EntryGroup]:
    """Entries made in the range per (holdout, arm), with their conversions (goal_at
    set: the engine sets it only within the goal's window)."""
    lo, hi = bounds(since_ms, until_ms)
    rows = store.conn.execute(
        "SELECT holdout, arm, count(*), count(goal_at) FROM entries"
        " WHERE journey_id = ? AND entered_at >= ? AND entered_at < ? GROUP BY 1, 2",
        (journey_id, lo, hi),
    )
    return [
        EntryGroup(bool(h), None if a is None else str(a), int(n), int(c)) for h, a, n, c in rows
    ]


def median_ms_to_goal(
    store: Connected, journey_id: str, since_ms: int | None, until_ms: int | None, conversions: int
) -> float | None:
    """The median of goal_at - entered_at over the range's ``conversions`` converted
    entries (the mean of the two middle ones for an even count), read at an offset of
    the ``entries_to_goal`` index; None when none converted."""
    if conversions <= 0:
        return None
    lo, hi = bounds(since_ms, until_ms)
    (median,) = store.conn.execute(
        "SELECT avg(d) FROM (SELECT goal_at - entered_at AS d FROM entries"
        " WHERE journey_id = ? AND goal_at IS NOT NULL AND entered_at >= ? AND entered_at < ?"
        " ORDER BY goal_at - entered_at LIMIT ? OFFSET ?)",
        (journey_id, lo, hi, 2 - conversions % 2, (conversions - 1) // 2),
    ).fetchone()
    return None if median is None else float(median)


def _sums_and_edges(
    store: Connected, journey_id: str, cut: Cut, sums: str, rows: str
) -> list[tuple[Any, ...]]:
    """The rows of ``sums`` (a grouped SELECT over a sums table for the journey, its
    ``hour`` between two ``?``) over the whole hours, then those of ``rows`` (the same
    groups over the rows themselves, their time between two ``?``) over each edge;
    the caller adds up the groups."""
    sql = f"{sums} UNION ALL {rows} UNION ALL {rows}"
    return list(store.conn.execute(sql, cut.args(journey_id)))


def action_counts(
    store: Connected, journey_id: str, since_ms: int | None, until_ms: int | None
) -> list[ActionCount]:
    """The journey's actions in the range per step, action and label: the sums of the
    whole hours inside it, plus the actions of the partial hours at its edges."""
    rows = _sums_and_edges(
        store,
        journey_id,
        cut(since_ms, until_ms),
        "SELECT step, action, label, sum(n) FROM action_counts"
        " WHERE journey_id = ? AND hour >= ? AND hour < ? GROUP BY 1, 2, 3",
        f"SELECT coalesce(step, ''), action, {LABEL}, count(*) FROM actions"
        " WHERE journey_id = ? AND at >= ? AND at < ? GROUP BY 1, 2, 3",
    )
    return action_totals(rows)


def waiting_now(store: Connected, journey_id: str, version: str | None) -> dict[str, int]:
    """Users in the journey now (of one version, or all) by the step they are at."""
    sql = (
        "SELECT node, count(*) FROM instances WHERE journey_id = ?"
        " AND status IN ('active', 'waiting')"
    )
    args: tuple[str, ...] = (journey_id,)
    if version is not None:
        sql, args = sql + " AND version = ?", (journey_id, version)
    return {str(node): int(n) for node, n in store.conn.execute(sql + " GROUP BY 1", args)}


def outbox_counts(
    store: Connected, journey_id: str, since_ms: int | None, until_ms: int | None
) -> list[OutboxCount]:
    """Outbox rows queued in the range per channel and status (suppressions, which
    the actions count, left out): the sums of the whole hours, the rows at the edges."""
    rows = _sums_and_edges(
        store,
        journey_id,
        cut(since_ms, until_ms),
        "SELECT channel, status, sum(n), sum(n * retried) FROM outbox_counts"
        " WHERE journey_id = ? AND hour >= ? AND hour < ? GROUP BY 1, 2",
        "SELECT channel, status, count(*), sum(attempts > 1) FROM outbox"
        " WHERE journey_id = ? AND created_at >= ? AND created_at < ?"
        " AND channel IS NOT NULL AND status != 'suppressed' GROUP BY 1, 2",
    )
    return outbox_totals(rows)


def feedback_counts(
    store: Connected, journey_id: str, since_ms: int | None, until_ms: int | None
) -> list[FeedbackCount]:
    """Messages with a provider report of each kind per channel, each counted when
    the first report of that kind for it arrived, if that report is dated in the
    range; a report that names no channel takes its outbox row's."""
    first = (
        "NOT EXISTS (SELECT 1 FROM deliveries e WHERE e.outbox_key = d.outbox_key"
        " AND e.kind = d.kind AND e.id < d.id)"
    )
    rows = _sums_and_edges(
        store,
        journey_id,
        cut(since_ms, until_ms),
        "SELECT channel, kind, sum(n) FROM delivery_counts"
        " WHERE journey_id = ? AND hour >= ? AND hour < ? GROUP BY 1, 2",
        "SELECT coalesce(d.channel,"
        " (SELECT o.channel FROM outbox o WHERE o.key = d.outbox_key), ''), d.kind, count(*)"
        f" FROM deliveries d WHERE d.journey_id = ? AND d.at >= ? AND d.at < ? AND {first}"
        " GROUP BY 1, 2",
    )
    return feedback_totals(rows)


class SqliteReportReads:
    """:class:`journeyc.store.abc.ReportReads` over one SQLite store: the functions
    above, bound to it (read inside :func:`reads`)."""

    def __init__(self, store: Connected) -> None:
        self._store = store

    def journey_ids(self) -> list[str]:
        """See :func:`journey_ids`."""
        return journey_ids(self._store)

    def deployed_versions(self, journey_id: str) -> list[DeployedVersion]:
        """See :func:`deployed_versions`."""
        return deployed_versions(self._store, journey_id)

    def entry_groups(
        self, journey_id: str, since_ms: int | None, until_ms: int | None
    ) -> list[EntryGroup]:
        """See :func:`entry_groups`."""
        return entry_groups(self._store, journey_id, since_ms, until_ms)

    def median_ms_to_goal(
        self, journey_id: str, since_ms: int | None, until_ms: int | None, conversions: int
    ) -> float | None:
        """See :func:`median_ms_to_goal`."""
        return median_ms_to_goal(self._store, journey_id, since_ms, until_ms, conversions)

    def action_counts(
        self, journey_id: str, since_ms: int | None, until_ms: int | None
    ) -> list[ActionCount]:
        """See :func:`action_counts`."""
        return action_counts(self._store, journey_id, since_ms, until_ms)

    def waiting_now(self, journey_id: str, version: str | None) -> dict[str, int]:
        """See :func:`waiting_now`."""
        return waiting_now(self._store, journey_id, version)

    def outbox_counts(
        self, journey_id: str, since_ms: int | None, until_ms: int | None
    ) -> list[OutboxCount]:
        """See :func:`outbox_counts`."""
        return outbox_counts(self._store, journey_id, since_ms, until_ms)

    def feedback_counts(
        self, journey_id: str, since_ms: int | None, until_ms: int | None
    ) -> list[FeedbackCount]:
        """See :func:`feedback_counts`."""
        return feedback_counts(self._store, journey_id, since_ms, until_ms)


@contextmanager
def reads(store: Connected) -> Iterator[SqliteReportReads]:
    """The report reads of ``store``, all in one snapshot for the block."""
    with snapshot(store):
        yield SqliteReportReads(store)
