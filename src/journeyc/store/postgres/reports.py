"""The queries of journey reports in PostgreSQL (see
:class:`journeyc.store.abc.ReportReads` and :mod:`journeyc.store.sqlite.reports`, whose
rules these follow: the same sums of whole hours, the rows themselves at the edges).

:meth:`PostgresStore.report_reads <journeyc.store.postgres.store.PostgresStore.report_reads>`
runs them in one ``REPEATABLE READ READ ONLY`` transaction, so a report's figures are
of one moment while the engine goes on writing. Text is ordered by code point
(``COLLATE "C"``), as SQLite orders it.
"""

from __future__ import annotations

from typing import Any

from journeyc.store.postgres.action_counts import LABEL
from journeyc.store.postgres.schema import Connection
from journeyc.store.report_ranges import (
    Cut,
    action_totals,
    bounds,
    cut,
    feedback_totals,
    outbox_totals,
)
from journeyc.store.rows import (
    ActionCount,
    EntryGroup,
    FeedbackCount,
    JourneyVersion,
    OutboxCount,
)

__all__ = ["PostgresReportReads"]


class PostgresReportReads:
    """:class:`journeyc.store.abc.ReportReads` over one connection inside a snapshot
    transaction."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def _all(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return self._conn.execute(sql, params).fetchall()

    def journey_ids(self) -> list[str]:
        """Every journey id the store has deployed, sorted."""
        rows = self._all('SELECT id FROM journeys GROUP BY id ORDER BY id COLLATE "C"')
        return [str(r[0]) for r in rows]

    def deployed_versions(self, journey_id: str) -> list[JourneyVersion]:
        """The journey's deployed versions, oldest first."""
        rows = self._all(
            "SELECT version, deployed_at, active, ir FROM journeys WHERE id = %s"
            ' ORDER BY deployed_at, version COLLATE "C"',
            (journey_id,),
        )
        return [JourneyVersion(str(v), int(d), bool(a), str(i)) for v, d, a, i in rows]

    def entry_groups(
        self, journey_id: str, since_ms: int | None, until_ms: int | None
    ) -> list[EntryGroup]:
        """Entries made in the range per (holdout, arm), with their conversions (in
        SQLite's order: not held out first, no arm first)."""
        lo, hi = bounds(since_ms, until_ms)
        rows = self._all(
            "SELECT holdout, arm, count(*), count(goal_at) FROM entries"
            " WHERE journey_id = %s AND entered_at >= %s AND entered_at < %s GROUP BY 1, 2"
            ' ORDER BY holdout, arm COLLATE "C" NULLS FIRST',
            (journey_id, lo, hi),
        )
        return [
            EntryGroup(bool(h), None if a is None else str(a), int(n), int(c))
            for h, a, n, c in rows
        ]

    def median_ms_to_goal(
        self, journey_id: str, since_ms: int | None, until_ms: int | None, conversions: int
    ) -> float | None:
        """The median of goal_at - entered_at over the range's ``conversions``
        converted entries (the mean of the two middle ones for an even count), read
        at an offset of the ``entries_to_goal`` index; None when none converted."""
        if conversions <= 0:
            return None
        lo, hi = bounds(since_ms, until_ms)
        rows = self._all(
            "SELECT avg(d) FROM (SELECT goal_at - entered_at AS d FROM entries"
            " WHERE journey_id = %s AND goal_at IS NOT NULL AND entered_at >= %s"
            " AND entered_at < %s ORDER BY goal_at - entered_at LIMIT %s OFFSET %s) AS m",
            (journey_id, lo, hi, 2 - conversions % 2, (conversions - 1) // 2),
        )
        median = rows[0][0]
        return None if median is None else float(median)

    def _sums_and_edges(
        self, journey_id: str, cut: Cut, sums: str, rows: str
    ) -> list[tuple[Any, ...]]:
        """The rows of ``sums`` over the whole hours, then those of ``rows`` over each
        edge (as :func:`journeyc.store.sqlite.reports._sums_and_edges`)."""
        return self._all(f"{sums} UNION ALL {rows} UNION ALL {rows}", cut.args(journey_id))

    def action_counts(
        self, journey_id: str, since_ms: int | None, until_ms: int | None
    ) -> list[ActionCount]:
        """The journey's actions in the range per step, action and label: the sums of
        the whole hours inside it, plus the actions of the partial hours at its edges."""
        rows = self._sums_and_edges(
            journey_id,
            cut(since_ms, until_ms),
            "SELECT step, action, label, sum(n) FROM action_counts"
            " WHERE journey_id = %s AND hour >= %s AND hour < %s GROUP BY 1, 2, 3",
            f"SELECT coalesce(step, ''), action, {LABEL}, count(*) FROM actions"
            " WHERE journey_id = %s AND at >= %s AND at < %s GROUP BY 1, 2, 3",
        )
        return action_totals(rows)

    def waiting_now(self, journey_id: str, version: str | None) -> dict[str, int]:
        """Users in the journey now (of one version, or all) by the step they are at."""
        sql = (
            "SELECT node, count(*) FROM instances WHERE journey_id = %s"
            " AND status IN ('active', 'waiting')"
        )
        args: tuple[str, ...] = (journey_id,)
        if version is not None:
            sql, args = sql + " AND version = %s", (journey_id, version)
        return {str(node): int(n) for node, n in self._all(sql + " GROUP BY 1", args)}

    def outbox_counts(
        self, journey_id: str, since_ms: int | None, until_ms: int | None
    ) -> list[OutboxCount]:
        """Outbox rows queued in the range per channel and status (suppressions left
        out): the sums of the whole hours, the rows at the edges."""
        rows = self._sums_and_edges(
            journey_id,
            cut(since_ms, until_ms),
            "SELECT channel, status, sum(n), coalesce(sum(n) FILTER (WHERE retried), 0)"
            " FROM outbox_counts WHERE journey_id = %s AND hour >= %s AND hour < %s"
            " GROUP BY 1, 2",
            "SELECT channel, status, count(*), count(*) FILTER (WHERE attempts > 1) FROM outbox"
            " WHERE journey_id = %s AND created_at >= %s AND created_at < %s"
            " AND channel IS NOT NULL AND status <> 'suppressed' GROUP BY 1, 2",
        )
        return outbox_totals(rows)

    def feedback_counts(
        self, journey_id: str, since_ms: int | None, until_ms: int | None
    ) -> list[FeedbackCount]:
        """Messages with a provider report of each kind per channel, each counted when
        the first report of that kind for it arrived, if that report is dated in the
        range; a report that names no channel takes its outbox row's."""
        first = (
            "NOT EXISTS (SELECT 1 FROM deliveries e WHERE e.outbox_key = d.outbox_key"
            " AND e.kind = d.kind AND e.id < d.id)"
        )
        rows = self._sums_and_edges(
            journey_id,
            cut(since_ms, until_ms),
            "SELECT channel, kind, sum(n) FROM delivery_counts"
            " WHERE journey_id = %s AND hour >= %s AND hour < %s GROUP BY 1, 2",
            "SELECT coalesce(d.channel,"
            " (SELECT o.channel FROM outbox o WHERE o.key = d.outbox_key), ''), d.kind,"
            f" count(*) FROM deliveries d WHERE d.journey_id = %s AND d.at >= %s"
            f" AND d.at < %s AND {first} GROUP BY 1, 2",
        )
        return feedback_totals(rows)
