"""The segments' rows in PostgreSQL (see :class:`journeyc.store.abc.SegmentBook`): which
segments are deployed, who is in each (in or out, since when, when to look again) and
every change in or out, as the SQLite store's book keeps them
(:mod:`journeyc.store.sqlite.segments`), ``keep`` mode included."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from journeyc.store.abc import SegmentDefinition
from journeyc.store.dueheap import DueHeap
from journeyc.store.errors import StoreError
from journeyc.store.postgres.partition_log import filtered_partitions
from journeyc.store.postgres.schema import Connections
from journeyc.store.rows import SegmentRow
from journeyc.store.standing import merged_standing, segment_deploy

__all__ = ["PostgresSegmentBook"]

_UPSERT_ROW = (
    "INSERT INTO segment_members (user_id, segment, member, since, recheck_at)"
    " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (user_id, segment) DO UPDATE SET"
    " member = excluded.member, since = excluded.since, recheck_at = excluded.recheck_at"
)
_CHANGE = "INSERT INTO segment_changes (segment, user_id, at, entered) VALUES (%s, %s, %s, %s)"

_Member = tuple[str, str, bool, int, int | None]
"""A ``segment_members`` row as written: user, segment, member, since, recheck_at."""


class PostgresSegmentBook:
    """The ``segments``, ``segment_members`` and ``segment_changes`` tables."""

    def __init__(self, store: Connections) -> None:
        self._store = store
        # keep (see hold()): this book makes every change to segment_members (the
        # simulator): rows once read stay known, and writes wait in memory until
        # flush(), with the rechecks of (user, segment) pairs kept in a DueHeap.
        self.keep = False
        self._rows: dict[str, dict[str, SegmentRow]] = {}
        self._held: dict[tuple[str, str], _Member] = {}
        self._changes: list[tuple[str, str, int, bool]] = []
        self._rechecks: DueHeap[tuple[str, str]] = DueHeap()
        self._parts: list[int] | None = None  # only(): the partitions due() reads

    def _many(self, query: str, rows: Sequence[tuple[object, ...]]) -> None:
        if rows:
            with self._store.writing() as conn, conn.cursor() as cur:
                cur.executemany(query, rows)

    def hold(self) -> None:
        """Start ``keep``: for a caller that is the store's only writer."""
        if self._parts is not None:
            raise StoreError("a segment book reading some partitions only cannot hold")
        self.keep = True
        with self._store.connection() as conn:
            rows = conn.execute(
                "SELECT user_id, segment, recheck_at FROM segment_members"
                " WHERE recheck_at IS NOT NULL"
            ).fetchall()
        self._rechecks = DueHeap((int(t), (u, s)) for u, s, t in rows)

    def flush(self) -> None:
        """Write the rows and changes held with ``keep``."""
        held, self._held = list(self._held.values()), {}
        changes, self._changes = self._changes, []
        self._many(_UPSERT_ROW, held)
        self._many(_CHANGE, changes)

    def forget(self) -> None:
        """Write what is held and drop the rows kept with ``keep``."""
        self.flush()
        self._rows.clear()

    def kept_users(self) -> int:
        """How many users' rows are kept in memory."""
        return len(self._rows)

    def deployed(self) -> dict[str, str]:
        """The definition hash each segment's rows were computed with."""
        with self._store.connection() as conn:
            return dict(conn.execute("SELECT name, hash FROM segments").fetchall())

    def define(
        self, infos: Mapping[str, SegmentDefinition], changed: Iterable[str], at_ms: int
    ) -> None:
        """Record the project's segments; forget the rows of segments no longer in it
        and of ``changed`` ones (evaluated again from scratch)."""
        self.forget()
        plan = segment_deploy(self.deployed(), infos, changed, at_ms)
        with self._store.writing() as conn:
            conn.execute(
                "DELETE FROM segment_members WHERE segment = ANY(%b)",
                ([*plan.gone, *plan.changed],),
            )
            conn.execute("DELETE FROM segments WHERE name = ANY(%b)", (plan.gone,))
        self._many(
            "INSERT INTO segments (name, hash, expr, refreshed_at) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (name) DO UPDATE SET hash = excluded.hash, expr = excluded.expr,"
            " refreshed_at = excluded.refreshed_at",
            plan.definitions,
        )

    def rows(self, user_id: str) -> dict[str, SegmentRow]:
        """The user's row in each segment evaluated for them."""
        kept = self._rows.get(user_id)
        if kept is not None:
            return dict(kept)
        with self._store.connection() as conn:
            found = conn.execute(
                "SELECT segment, member, since, recheck_at FROM segment_members WHERE user_id = %s",
                (user_id,),
            ).fetchall()
        rows = {seg: SegmentRow(bool(m), int(since), recheck) for seg, m, since, recheck in found}
        if self.keep:
            self._rows[user_id] = dict(rows)
        return rows

    def write(
        self,
        user_id: str,
        rows: Sequence[tuple[str, SegmentRow]],
        changes: Sequence[tuple[str, bool]],
        at_ms: int,
    ) -> None:
        """Store the user's rows and log their changes (``(segment, entered)``)."""
        if self.keep:
            kept = self._rows.get(user_id)
            if kept is not None:
                kept.update(rows)
            for s, r in rows:
                self._held[(user_id, s)] = (user_id, s, r.member, r.since, r.recheck_at)
                self._rechecks.set((user_id, s), r.recheck_at)
            self._changes += [(s, user_id, at_ms, entered) for s, entered in changes]
            return
        self._many(_UPSERT_ROW, [(user_id, s, r.member, r.since, r.recheck_at) for s, r in rows])
        self._many(_CHANGE, [(s, user_id, at_ms, entered) for s, entered in changes])

    def write_baseline(self, rows: Sequence[tuple[str, str, bool, int | None]], at_ms: int) -> None:
        """Store ``(user, segment, member, recheck_at)`` rows of a silent evaluation
        (no change logged)."""
        self.forget()
        self._many(_UPSERT_ROW, [(u, s, m, at_ms, r) for u, s, m, r in rows])

    def merge(self, frm: str, into: str, at_ms: int) -> None:
        """Make ``frm``'s standing ``into``'s (as the SQLite store's book)."""
        theirs = self.rows(frm)
        new = merged_standing(theirs, self.rows(into))
        if new:
            self.write(into, new, [], at_ms)
        if self.keep:
            self._rows.pop(frm, None)
            for seg in theirs:
                self._held.pop((frm, seg), None)
                self._rechecks.set((frm, seg), None)
        with self._store.writing() as conn:
            conn.execute("DELETE FROM segment_members WHERE user_id = %s", (frm,))

    def member_counts(self) -> dict[str, int]:
        """Members per segment (segments without any are left out)."""
        with self._store.connection() as conn:
            rows = conn.execute(
                "SELECT segment, count(*) FROM segment_members WHERE member GROUP BY segment"
            ).fetchall()
        return {seg: int(n) for seg, n in rows}

    def change_counts(self, since_ms: int, until_ms: int) -> dict[str, tuple[int, int]]:
        """Per segment, how many users entered it and how many left it at times from
        ``since_ms`` to ``until_ms`` (segments without a change are left out)."""
        with self._store.connection() as conn:
            rows = conn.execute(
                "SELECT segment, count(*) FILTER (WHERE entered),"
                " count(*) FILTER (WHERE NOT entered) FROM segment_changes"
                " WHERE at >= %s AND at <= %s GROUP BY segment",
                (since_ms, until_ms),
            ).fetchall()
        return {seg: (int(entered), int(left)) for seg, entered, left in rows}

    def changes(self) -> list[tuple[str, str, int, bool]]:
        """Every change in or out of a segment logged, as ``(segment, user, at,
        entered)``, in the order they happened."""
        with self._store.connection() as conn:
            rows = conn.execute(
                "SELECT segment, user_id, at, entered FROM segment_changes ORDER BY at, id"
            ).fetchall()
        return [(seg, user, int(at), bool(entered)) for seg, user, at, entered in rows]

    def members(self) -> dict[tuple[str, str], bool]:
        """Whether each ``(user, segment)`` with a row is a member now."""
        with self._store.connection() as conn:
            rows = conn.execute("SELECT user_id, segment, member FROM segment_members").fetchall()
        return {(user, seg): bool(member) for user, seg, member in rows}

    def only(self, parts: Sequence[int] | None) -> None:
        """Make :meth:`due` and :meth:`next_recheck` read the users of ``parts`` only
        (None: every user); not in ``keep`` mode (the store's only writer)."""
        if parts is not None and self.keep:
            raise StoreError("a segment book that holds its rows reads every partition")
        self._parts = filtered_partitions(parts)

    def due(self, now_ms: int, limit: int) -> list[tuple[str, str]]:
        """``(user, segment)`` pairs whose ``recheck_at`` has come, earliest first, of
        the partitions :meth:`only` names."""
        if self.keep:
            return [pair for _, pair in self._rechecks.pop_due(now_ms, limit)]
        order = 'recheck_at, user_id COLLATE "C", segment COLLATE "C"'
        with self._store.connection() as conn:
            if self._parts is None:
                rows = conn.execute(
                    "SELECT user_id, segment FROM segment_members WHERE recheck_at <= %s"
                    f" ORDER BY {order} LIMIT %s",
                    (now_ms, limit),
                ).fetchall()
            else:
                # Per partition its first `limit` off the (part, recheck_at) index, then
                # the first `limit` of those (as the partition log reads events).
                rows = conn.execute(
                    "SELECT m.user_id, m.segment FROM unnest(%b::smallint[]) AS p (part)"
                    " CROSS JOIN LATERAL (SELECT user_id, segment, recheck_at"
                    " FROM segment_members WHERE part = p.part AND recheck_at <= %s"
                    f" ORDER BY {order} LIMIT %s) AS m ORDER BY {order} LIMIT %s",
                    (self._parts, now_ms, limit, limit),
                ).fetchall()
        return [(u, s) for u, s in rows]

    def next_recheck(self) -> int | None:
        """The earliest ``recheck_at`` of the partitions :meth:`only` names."""
        if self.keep:
            return self._rechecks.next()
        with self._store.connection() as conn:
            if self._parts is None:
                row = conn.execute(
                    "SELECT min(recheck_at) FROM segment_members WHERE recheck_at IS NOT NULL"
                ).fetchone()
            else:
                row = conn.execute(
                    "SELECT min(m.recheck_at) FROM unnest(%b::smallint[]) AS p (part)"
                    " CROSS JOIN LATERAL (SELECT recheck_at FROM segment_members"
                    " WHERE part = p.part AND recheck_at IS NOT NULL"
                    " ORDER BY recheck_at LIMIT 1) AS m",
                    (self._parts,),
                ).fetchone()
        return None if row is None or row[0] is None else int(row[0])
