"""``action_counts`` in PostgreSQL: the action log summed per journey, hour, step,
action and label (as :mod:`journeyc.store.sqlite.action_counts` keeps it in SQLite).

The table is made by the PostgreSQL schema (v7, beside the triggers that sum the
outbox and the providers' reports); the engine's unit of work
(:meth:`PostgresRuntime.log_actions <journeyc.store.postgres.runtime.PostgresRuntime.log_actions>`)
adds the actions it logs in the statement that logs them, from the rows it inserts
(not "every action past seq n" as SQLite's does: with several writers, another
transaction's actions could be counted twice). ``label`` is a send's channel, a
suppression's or an exit's reason, else ``''``; ``step`` is ``''`` for actions of no
step (enter, goal). Reports read the actions themselves at a range's edges with the
same :data:`LABEL`.

Since schema v11 ``action_counts`` is a view over ``action_counts_totals`` and
``action_counts_deltas``: the runtime inserts its sums as deltas (no worker waits for
another to add to the same hour), and the daemon folds them into the totals
(:meth:`PostgresUpkeep.fold_sums <journeyc.store.postgres.upkeep.PostgresUpkeep.fold_sums>`).
"""

from __future__ import annotations

from journeyc.store.report_ranges import HOUR_MS

__all__ = ["HOUR_MS", "LABEL"]

LABEL = (
    "CASE action WHEN 'send' THEN coalesce(detail ->> 'channel', '')"
    " WHEN 'suppress' THEN coalesce(detail ->> 'reason', '')"
    " WHEN 'exit' THEN coalesce(detail ->> 'reason', '') ELSE '' END"
)
"""The label of an action row, in SQL over ``actions``' columns (SQLite's, with
``->>`` for ``json_extract``)."""
