"""``action_counts`` in PostgreSQL: the action log summed per journey, hour, step,
action and label (as :mod:`journeyc.store.sqlite.action_counts` keeps it in SQLite).

The table is made by the PostgreSQL schema (v7, beside the triggers that sum the
outbox and the providers' reports); the actions are summed by whoever logs them: the
engine's unit of work passes each batch it logs to :func:`add_actions`, in the same
transaction. ``label`` is a send's channel, a suppression's or an exit's reason, else
``''``; ``step`` is ``''`` for actions of no step (enter, goal).

Unlike SQLite's, the sums are made from the rows a writer logs, not from the actions
past a seq: with several writers, actions of another transaction may commit between
reading the last seq and summing what lies past it, and would be counted twice.
"""

from __future__ import annotations

from collections.abc import Iterable

from journeyc.store.postgres.schema import Connection
from journeyc.store.report_ranges import HOUR_MS

__all__ = ["HOUR_MS", "LABEL", "LOG_ACTIONS", "SUM_ACTIONS", "add_actions", "log_actions"]

LABEL = (
    "CASE action WHEN 'send' THEN coalesce(detail ->> 'channel', '')"
    " WHEN 'suppress' THEN coalesce(detail ->> 'reason', '')"
    " WHEN 'exit' THEN coalesce(detail ->> 'reason', '') ELSE '' END"
)
"""The label of an action row, in SQL over ``actions``' columns (SQLite's, with
``->>`` for ``json_extract``)."""

_ADD = (
    "INSERT INTO action_counts (journey_id, hour, step, action, label, n)"
    f" SELECT journey_id, at / {HOUR_MS:d}, coalesce(step, ''), action, {LABEL}, count(*)"
    " FROM {rows} WHERE journey_id IS NOT NULL GROUP BY 1, 2, 3, 4, 5"
    # Sorted: two transactions adding to the same sums lock their rows in one order.
    " ORDER BY 1, 2, 3, 4, 5"
    " ON CONFLICT (journey_id, hour, step, action, label)"
    " DO UPDATE SET n = action_counts.n + excluded.n"
)

SUM_ACTIONS = _ADD.replace(
    "{rows}",
    "unnest(%s::bigint[], %s::text[], %s::text[], %s::text[], %s::jsonb[])"
    " AS a (at, journey_id, step, action, detail)",
)
"""Add the actions of the arrays ``(at, journey, step, action, detail)`` to the sums."""

LOG_ACTIONS = (
    "WITH logged AS (INSERT INTO actions (at, user_id, journey_id, step, action, detail)"
    " SELECT at, user_id, journey_id, step, action, detail FROM unnest(%s::bigint[],"
    " %s::text[], %s::text[], %s::text[], %s::text[], %s::jsonb[])"
    " WITH ORDINALITY AS a (at, user_id, journey_id, step, action, detail, n)"
    # In the rows' order: their seqs follow it.
    " ORDER BY n RETURNING at, journey_id, step, action, detail) "
) + _ADD.replace("{rows}", "logged")
"""Log the actions of the arrays ``(at, user, journey, step, action, detail)`` and add
them to the sums, in one statement."""


def add_actions(
    conn: Connection, rows: Iterable[tuple[int, str, str | None, str | None, str, str]]
) -> None:
    """Add logged actions, ``(at, user, journey, step, action, detail JSON)`` as
    :meth:`journeyc.store.abc.UnitOfWork.log_actions` takes them, to the sums (one
    grouped upsert), inside the caller's transaction."""
    rows = list(rows)
    if rows:
        conn.execute(
            SUM_ACTIONS,
            (
                [r[0] for r in rows],
                [r[2] for r in rows],
                [r[3] for r in rows],
                [r[4] for r in rows],
                [r[5] for r in rows],
            ),
        )


def log_actions(
    conn: Connection, rows: Iterable[tuple[int, str, str | None, str | None, str, str]]
) -> None:
    """Append ``(at, user, journey, step, action, detail JSON)`` rows to the action log,
    in order, and add them to the sums: one statement (one round trip), inside the
    caller's transaction."""
    rows = list(rows)
    if rows:
        conn.execute(LOG_ACTIONS, tuple([r[i] for r in rows] for i in range(6)))
