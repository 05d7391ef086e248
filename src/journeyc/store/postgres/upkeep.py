"""The daemon's housekeeping of a PostgreSQL store (see :class:`journeyc.store.abc.Upkeep`).

Retention deletes as in SQLite. :meth:`PostgresUpkeep.fold_sums` folds the reports'
sums written as deltas (schema v11) into their totals. PostgreSQL copies its
write-ahead log itself (its checkpointer runs beside the writers), so
:meth:`PostgresUpkeep.checkpoint` and :meth:`PostgresUpkeep.defer_checkpoints` have
nothing to do.

:meth:`PostgresUpkeep.refresh_statistics` is what a young store needs instead. The
engine's statements are prepared (psycopg prepares a statement at its fifth run), and
PostgreSQL keeps a prepared statement's generic plan until the statistics of its
tables change. A plan made while a table was small and never analyzed reads it whole
(``entries WHERE user_id = ANY(…)`` as a sequential scan) and keeps doing so as the
table grows: an engine step of 50 events took 13 ms over the first 100 steps and
52 ms over steps 500–600, 14 ms with the refresh (``python bench/bench_plans.py``).
Autovacuum would analyze the table, but looks only once a minute
(``autovacuum_naptime``) and by default only after 10% of the rows changed; the
daemon asks every few seconds and analyzes a table each time it doubled, so a store's
first minutes run on index plans too. ANALYZE reads a sample (3,000 rows a table at
the target of 10 used here), and a table is analyzed less and less often as it grows
(about 11 times up to a million rows).
"""

from __future__ import annotations

from psycopg import sql

from journeyc.store.postgres.schema import SUMMED, Connections

__all__ = ["ANALYZE_BASE", "ANALYZE_FRACTION", "PostgresUpkeep"]

ANALYZE_BASE = 500
"""Rows changed since the last ANALYZE (by us or autovacuum) that make a table's
statistics stale, beside :data:`ANALYZE_FRACTION` of its rows."""

ANALYZE_FRACTION = 1.0
"""The part of a table's rows that must have changed since its last ANALYZE: with 1,
a table is analyzed each time it doubled (at 500 rows, 1,000, 2,000, ...), about 11
times on its way to a million rows, and autovacuum's own rule (10% changed) takes
over from there. What the planner needs of a young table is its size: index plans,
once chosen, stay right as it grows."""

_TABLES = (
    "events",
    "profiles",
    "identities",
    "instances",
    "entries",
    "outbox",
    "segment_members",
    "deliveries",
)
"""The tables the engine, the API and the dispatcher read by key as they grow (not
``actions``: written on every batch, read only by reports and ``why``, over indexes
whatever its size; its ANALYZE was the costliest, JSON details and all)."""

_SAMPLE_TARGET = 10
"""The statistics target of these ANALYZEs (PostgreSQL's default is 100): a sample of
3,000 rows a table rather than 30,000, ten times cheaper, and enough to tell the
planner a table's size, which is what a young table's plans need; autovacuum's own
ANALYZE, at the server's target, comes once the table changed by 10%."""

_STATISTICS_LOCK = 0x6A63_5354  # "jcST": one worker refreshes at a time
_FOLD_LOCK = 0x6A63_464F  # "jcFO": one worker folds at a time (another would wait)


class PostgresUpkeep:
    """Retention, the sums' folding and the planner statistics of one PostgreSQL store."""

    def __init__(self, store: Connections) -> None:
        self._store = store

    def remove_old(self, before_ms: int) -> tuple[int, int]:
        """Delete sent and suppressed outbox rows, and actions, older than ``before_ms``."""
        with self._store.writing() as conn:
            outbox = conn.execute(
                "DELETE FROM outbox WHERE (status = 'sent' AND sent_at < %s)"
                " OR (status = 'suppressed' AND created_at < %s)",
                (before_ms, before_ms),
            ).rowcount
            actions = conn.execute("DELETE FROM actions WHERE at < %s", (before_ms,)).rowcount
        return outbox, actions

    def fold_sums(self) -> int:
        """Move the delta rows of every sums view (:data:`~journeyc.store.postgres.schema.SUMMED`)
        into its totals, in one transaction; the delta rows moved. Readers see the
        same sums before and after (the view adds both). Rows logged meanwhile stay
        for the next fold. One worker folds at a time: another that finds the lock
        taken does nothing (its ``DELETE`` would wait for the first fold's rows)."""
        moved = 0
        with self._store.writing() as conn:
            row = conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (_FOLD_LOCK,)).fetchone()
            if row is None or not row[0]:
                return 0  # another worker is folding: the rows are its
            for name, key in SUMMED.items():
                ident = sql.Identifier
                row = conn.execute(
                    sql.SQL(
                        "WITH moved AS (DELETE FROM {deltas} RETURNING {key}, n),"
                        " folded AS (INSERT INTO {totals} ({key}, n)"
                        " SELECT {key}, sum(n) FROM moved GROUP BY {key} ORDER BY {key}"
                        # In key order: two folds lock the totals' rows in one order.
                        " ON CONFLICT ({key}) DO UPDATE SET n = {totals}.n + excluded.n)"
                        " SELECT count(*) FROM moved"
                    ).format(
                        deltas=ident(f"{name}_deltas"),
                        totals=ident(f"{name}_totals"),
                        key=sql.SQL(key),
                    )
                ).fetchone()
                moved += int(row[0]) if row else 0
        return moved

    def refresh_statistics(self) -> list[str]:
        """ANALYZE each of the engine's tables whose rows changed by more than
        :data:`ANALYZE_BASE` + :data:`ANALYZE_FRACTION` × its rows since its last
        ANALYZE (ours or autovacuum's); the tables analyzed. One worker does it at a
        time: another that finds the lock taken does nothing."""
        with self._store.writing() as conn:
            row = conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (_STATISTICS_LOCK,))
            taken = row.fetchone()
            if taken is None or not taken[0]:
                return []
            stale = [
                str(name)
                for (name,) in conn.execute(
                    "SELECT s.relname FROM pg_stat_user_tables AS s"
                    " JOIN pg_class AS c ON c.oid = s.relid"
                    " WHERE s.schemaname = current_schema() AND s.relname = ANY(%b)"
                    " AND s.n_mod_since_analyze > %s + %s * greatest(c.reltuples, 0)"
                    " ORDER BY s.relname",
                    (list(_TABLES), ANALYZE_BASE, ANALYZE_FRACTION),
                ).fetchall()
            ]
            if stale:
                conn.execute(
                    "SELECT set_config('default_statistics_target', %s, true)",
                    (str(_SAMPLE_TARGET),),
                )
            for name in stale:
                conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(name)))
        return stale

    def defer_checkpoints(self, pages: int) -> None:
        """Nothing: PostgreSQL's checkpointer runs off the writers' path already."""

    def checkpoint(self) -> None:
        """Nothing: PostgreSQL's checkpointer copies the log itself."""

    def close(self) -> None:
        """Nothing to release."""
