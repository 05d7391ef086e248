"""The segments' rows: which segments are deployed (``segments``), who is in each
(``segment_members``: in or out, since when, when to look again) and every change in
or out (``segment_changes``). What membership is, and when to look again, is the
engine's (:mod:`journeyc.engine.segments`); this module keeps its answers."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping, Sequence

from journeyc.store.abc import SegmentDefinition
from journeyc.store.dueheap import DueHeap
from journeyc.store.errors import StoreError
from journeyc.store.rows import SegmentRow
from journeyc.store.standing import merged_standing, segment_deploy

__all__ = ["SegmentBook"]

_UPSERT_ROW = (
    "INSERT INTO segment_members (user_id, segment, member, since, recheck_at)"
    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (user_id, segment) DO UPDATE SET"
    " member = excluded.member, since = excluded.since, recheck_at = excluded.recheck_at"
)


class SegmentBook:
    """The ``segments``, ``segment_members`` and ``segment_changes`` tables."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        # keep (see hold()): this book makes every change to segment_members (the
        # simulator): rows once read stay known, and writes wait in memory until
        # flush(), with the rechecks of (user, segment) pairs kept in a DueHeap.
        self.keep = False
        self._rows: dict[str, dict[str, SegmentRow]] = {}
        self._held: dict[tuple[str, str], tuple[str, str, int, int, int | None]] = {}
        self._changes: list[tuple[str, str, int, int]] = []
        self._rechecks: DueHeap[tuple[str, str]] = DueHeap()

    def hold(self) -> None:
        """Start ``keep``: for a caller that is the store's only writer."""
        self.keep = True
        self._rechecks = DueHeap(
            (int(t), (u, s))
            for u, s, t in self.conn.execute(
                "SELECT user_id, segment, recheck_at FROM segment_members"
                " WHERE recheck_at IS NOT NULL"
            )
        )

    def flush(self) -> None:
        """Write the rows and changes held with ``keep``."""
        if self._held:
            self.conn.executemany(_UPSERT_ROW, list(self._held.values()))
            self._held.clear()
        if self._changes:
            self.conn.executemany(
                "INSERT INTO segment_changes (segment, user_id, at, entered) VALUES (?, ?, ?, ?)",
                self._changes,
            )
            self._changes = []

    def forget(self) -> None:
        """Write what is held and drop the rows kept with ``keep``."""
        self.flush()
        self._rows.clear()

    def kept_users(self) -> int:
        """How many users' rows are kept in memory."""
        return len(self._rows)

    def deployed(self) -> dict[str, str]:
        """The definition hash each segment's rows were computed with."""
        return dict(self.conn.execute("SELECT name, hash FROM segments"))

    def define(
        self, infos: Mapping[str, SegmentDefinition], changed: Iterable[str], at_ms: int
    ) -> None:
        """Record the project's segments; forget the rows of segments no longer in it
        and of ``changed`` ones (evaluated again from scratch)."""
        self.forget()
        plan = segment_deploy(self.deployed(), infos, changed, at_ms)
        self.conn.executemany(
            "DELETE FROM segment_members WHERE segment = ?",
            [(n,) for n in [*plan.gone, *plan.changed]],
        )
        self.conn.executemany("DELETE FROM segments WHERE name = ?", [(n,) for n in plan.gone])
        self.conn.executemany(
            "INSERT INTO segments (name, hash, expr, refreshed_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (name) DO UPDATE SET hash = excluded.hash, expr = excluded.expr,"
            " refreshed_at = excluded.refreshed_at",
            plan.definitions,
        )

    def rows(self, user_id: str) -> dict[str, SegmentRow]:
        """The user's row in each segment evaluated for them."""
        kept = self._rows.get(user_id)
        if kept is not None:
            return dict(kept)
        rows = {
            seg: SegmentRow(bool(member), since, recheck)
            for seg, member, since, recheck in self.conn.execute(
                "SELECT segment, member, since, recheck_at FROM segment_members WHERE user_id = ?",
                (user_id,),
            )
        }
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
                self._held[(user_id, s)] = (user_id, s, int(r.member), r.since, r.recheck_at)
                self._rechecks.set((user_id, s), r.recheck_at)
            self._changes += [(s, user_id, at_ms, int(entered)) for s, entered in changes]
            return
        self.conn.executemany(
            _UPSERT_ROW,
            [(user_id, s, int(r.member), r.since, r.recheck_at) for s, r in rows],
        )
        if changes:
            self.conn.executemany(
                "INSERT INTO segment_changes (segment, user_id, at, entered) VALUES (?, ?, ?, ?)",
                [(s, user_id, at_ms, int(entered)) for s, entered in changes],
            )

    def write_baseline(self, rows: Sequence[tuple[str, str, bool, int | None]], at_ms: int) -> None:
        """Store ``(user, segment, member, recheck_at)`` rows of a silent evaluation
        (no change logged)."""
        self.forget()
        self.conn.executemany(
            _UPSERT_ROW,
            [(u, s, int(m), at_ms, r) for u, s, m, r in rows],
        )

    def merge(self, frm: str, into: str, at_ms: int) -> None:
        """Make ``frm``'s standing ``into``'s (an identity merge), no change logged: per
        segment, a member row of either (the earlier ``since`` when both are in),
        else ``into``'s row, else ``frm``'s. ``frm``'s rows go; its logged changes stay
        (history, forgotten with the user). The caller evaluates the segments again."""
        theirs = self.rows(frm)
        new = merged_standing(theirs, self.rows(into))
        if new:
            self.write(into, new, [], at_ms)
        if self.keep:
            self._rows.pop(frm, None)
            for seg in theirs:
                self._held.pop((frm, seg), None)
                self._rechecks.set((frm, seg), None)
        self.conn.execute("DELETE FROM segment_members WHERE user_id = ?", (frm,))

    def member_counts(self) -> dict[str, int]:
        """Members per segment (segments without any are left out)."""
        return dict(
            self.conn.execute(
                "SELECT segment, count(*) FROM segment_members WHERE member = 1 GROUP BY segment"
            )
        )

    def change_counts(self, since_ms: int, until_ms: int) -> dict[str, tuple[int, int]]:
        """Per segment, how many users entered it and how many left it at times from
        ``since_ms`` to ``until_ms`` (segments without a change are left out)."""
        return {
            seg: (int(entered), int(left))
            for seg, entered, left in self.conn.execute(
                "SELECT segment, sum(entered), sum(1 - entered) FROM segment_changes"
                " WHERE at >= ? AND at <= ? GROUP BY segment",
                (since_ms, until_ms),
            )
        }

    def changes(self) -> list[tuple[str, str, int, bool]]:
        """Every change in or out of a segment logged, as ``(segment, user, at,
        entered)``, in the order they happened."""
        rows = self.conn.execute(
            "SELECT segment, user_id, at, entered FROM segment_changes ORDER BY at, rowid"
        )
        return [(seg, user, int(at), bool(entered)) for seg, user, at, entered in rows]

    def members(self) -> dict[tuple[str, str], bool]:
        """Whether each ``(user, segment)`` with a row is a member now."""
        rows = self.conn.execute("SELECT user_id, segment, member FROM segment_members")
        return {(user, seg): bool(member) for user, seg, member in rows}

    def only(self, parts: Sequence[int] | None) -> None:
        """Every user's rechecks (None): a SQLite store has no partitions."""
        if parts is not None:
            raise StoreError("a SQLite store has no partitions: its segment book reads them all")

    def due(self, now_ms: int, limit: int) -> list[tuple[str, str]]:
        """``(user, segment)`` pairs whose ``recheck_at`` has come, earliest first."""
        if self.keep:
            return [pair for _, pair in self._rechecks.pop_due(now_ms, limit)]
        return [
            (u, s)
            for u, s in self.conn.execute(
                "SELECT user_id, segment FROM segment_members WHERE recheck_at <= ?"
                " ORDER BY recheck_at, user_id, segment LIMIT ?",
                (now_ms, limit),
            )
        ]

    def next_recheck(self) -> int | None:
        """The earliest ``recheck_at``."""
        if self.keep:
            return self._rechecks.next()
        # The WHERE lets SQLite read the partial index instead of scanning every row.
        (t,) = self.conn.execute(
            "SELECT min(recheck_at) FROM segment_members WHERE recheck_at IS NOT NULL"
        ).fetchone()
        return None if t is None else int(t)
