"""``action_counts``: the action log summed per journey, hour, step, action and label.

Reports read these sums instead of the actions themselves (millions of rows per
journey): a step's sends by channel, suppressions and exits by reason. The runtime
adds each batch of actions it logs (:func:`add_logged`, in the same transaction);
migration v6 summed the actions already logged. ``label`` is a send's channel, a
suppression's or an exit's reason, else ``''``; ``step`` is ``''`` for actions of no
step (enter, goal). Erasing a user or retention deletes actions but not the sums,
which name nobody.
"""

from __future__ import annotations

import sqlite3

from journeyc.store.report_ranges import HOUR_MS

__all__ = ["HOUR_MS", "LABEL", "SUM_ACTIONS", "add_logged", "last_seq"]

LABEL = (
    "CASE action WHEN 'send' THEN coalesce(json_extract(detail, '$.channel'), '')"
    " WHEN 'suppress' THEN coalesce(json_extract(detail, '$.reason'), '')"
    " WHEN 'exit' THEN coalesce(json_extract(detail, '$.reason'), '') ELSE '' END"
)
"""The label of an action row, in SQL over ``actions``' columns."""

SUM_ACTIONS = (
    "INSERT INTO action_counts (journey_id, hour, step, action, label, n)"
    f" SELECT journey_id, at / {HOUR_MS:d}, coalesce(step, ''), action, {LABEL}, count(*)"
    " FROM actions WHERE seq > ? AND journey_id IS NOT NULL GROUP BY 1, 2, 3, 4, 5"
    " ON CONFLICT (journey_id, hour, step, action, label) DO UPDATE SET n = n + excluded.n"
)
"""Add the actions after seq ``?`` to the sums."""


def last_seq(conn: sqlite3.Connection) -> int:
    """The seq of the newest action (0 when none): pass it to :func:`add_logged`
    after logging more."""
    (seq,) = conn.execute("SELECT coalesce(max(seq), 0) FROM actions").fetchone()
    return int(seq)


def add_logged(conn: sqlite3.Connection, after_seq: int) -> None:
    """Add the actions logged after ``after_seq`` to the sums (one grouped upsert)."""
    conn.execute(SUM_ACTIONS, (after_seq,))
