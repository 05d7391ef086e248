"""A user's events by name, in memory: what the engine asks of the event log while
the simulator holds its writes (see :meth:`journeyc.engine.core.Engine.keep_rows`).

The simulator appends every event through the engine, so an index of what it
appended, plus each user's events from before it started (read once, the first time
the user is looked at), answers aggregates and segment horizons exactly as the
``events`` table would, without a query per question.
"""

from __future__ import annotations

from bisect import bisect_right, insort
from collections.abc import Iterable, Mapping
from typing import Any

from journeyc.compile import ir
from journeyc.engine.aggregates import (
    ItemFns,
    filter_where,
    from_ms,
    reduce_events,
    reduce_items,
    to_ms,
)
from journeyc.engine.expr import Predicate, Scope, compile_predicate
from journeyc.engine.values import EventView
from journeyc.store.abc import EventHistory
from journeyc.store.rows import StoredEvent

# (at, seq, props), sorted by (at, seq) as the log orders a user's events
IndexedEvent = tuple[int, int, Mapping[str, Any]]


def _at(row: IndexedEvent) -> int:
    return row[0]


class EventIndex:
    """The events of each user, per name, in ``(at, seq)`` order.

    Events up to ``through_seq`` are in the store's log only (``history``): a user's
    are read from there the first time the user is looked at. Every later event must
    be given to :meth:`add`.
    """

    def __init__(self, history: EventHistory, through_seq: int) -> None:
        self._history = history
        self._through = through_seq
        self._users: dict[str, dict[str, list[IndexedEvent]]] = {}

    def _user(self, user_id: str) -> dict[str, list[IndexedEvent]]:
        by_name = self._users.get(user_id)
        if by_name is None:
            by_name = self._users[user_id] = {}
            if self._through:
                for seq, name, at, props in self._history.user_events(user_id, self._through):
                    by_name.setdefault(name, []).append((at, seq, props))
        return by_name

    def add(self, events: Iterable[StoredEvent]) -> None:
        """Index events logged after ``through_seq``."""
        for ev in events:
            rows = self._user(ev.user_id).setdefault(ev.name, [])
            row = (ev.at_ms, ev.seq, ev.props)
            if rows and (rows[-1][0], rows[-1][1]) > (ev.at_ms, ev.seq):
                insort(rows, row, key=lambda r: (r[0], r[1]))
            else:
                rows.append(row)

    def merge(self, frm: str, into: str) -> None:
        """Make ``frm``'s events ``into``'s (an identity merge), before the table's rows
        are renamed: both users' events are read first."""
        theirs = self._user(frm)
        mine = self._user(into)
        for name, rows in theirs.items():
            kept = mine.get(name)
            mine[name] = sorted([*kept, *rows], key=lambda r: (r[0], r[1])) if kept else rows
        self._users[frm] = {}

    def window(
        self, user_id: str, name: str, since_ms: int | None, now_ms: int
    ) -> list[IndexedEvent]:
        """The user's ``name`` events with ``since_ms < at <= now_ms``."""
        rows = self._user(user_id).get(name)
        if not rows:
            return []
        lo = 0 if since_ms is None else bisect_right(rows, since_ms, key=_at)
        return rows[lo : bisect_right(rows, now_ms, key=_at)]

    def times(
        self, user_id: str, name: str, after_ms: int, now_ms: int
    ) -> tuple[int | None, int | None]:
        """Of the user's ``name`` events after ``after_ms`` (not after ``now_ms``):
        the earliest time past ``now_ms``, and the earliest time up to it."""
        rows = self._user(user_id).get(name)
        if not rows:
            return None, None
        lo = bisect_right(rows, after_ms, key=_at)
        hi = bisect_right(rows, now_ms, key=_at)
        return (rows[hi][0] if hi < len(rows) else None), (rows[lo][0] if lo < hi else None)


class IndexedAggregates:
    """Aggregates answered from an :class:`EventIndex` (the contract of
    :class:`~journeyc.engine.aggregates.AggregateSource`, as ``SqlAggregates``)."""

    def __init__(self, index: EventIndex) -> None:
        self._index = index
        self._where: dict[str, Predicate | None] = {}
        self._items: dict[str, ItemFns] = {}

    def value(self, agg: ir.Agg, key: str, scope: Scope) -> Any:
        """The value of ``agg`` for ``scope.user_id`` at ``scope.now``."""
        if key in self._where:
            where = self._where[key]
        else:
            where = self._where[key] = None if agg.where is None else compile_predicate(agg.where)
        now_ms = to_ms(scope.now)
        since = None if agg.within is None else now_ms - agg.within * 1000
        rows = self._index.window(scope.user_id, agg.event, since, now_ms)
        if agg.item is not None:
            items = self._items.get(key)
            if items is None:
                items = self._items[key] = ItemFns.of(agg)
            views = [(seq, EventView(agg.event, from_ms(at), props)) for at, seq, props in rows]
            return reduce_items(agg, items, scope, views)
        if where is None and agg.func == "count":
            return len(rows)
        views = [(seq, EventView(agg.event, from_ms(at), props)) for at, seq, props in rows]
        return reduce_events(agg.func, agg.prop, filter_where(where, scope, views))
