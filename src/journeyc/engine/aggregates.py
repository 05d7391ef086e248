"""Aggregates over a user's events: ``count``, ``sum``, ``avg``, ``min``, ``max``,
``distinct``, ``top``, ``last`` and ``first``.

:class:`~journeyc.engine.expr.AggregateSource` is what compiled expressions ask; two
implementations keep the same contract:

- :class:`StoreAggregates` answers from the store's event log: the store compiles
  each aggregate to one statement of its query language
  (:class:`~journeyc.store.abc.AggregateReads`; SQLite's in
  :mod:`journeyc.store.compiled.aggregates`), translating its ``where`` when every
  part of it has an exact form there; values from the outer scope (profile
  attributes, ``now``) are computed here and bound. Otherwise, and whenever a bound
  value has no exact form (a timestamp, a list, a 65-bit integer), the window's rows
  are read and filtered with the compiled Python predicate.
- :class:`ListAggregates` answers from events held in memory (tests, and the
  reference interpreter).

The meaning of each aggregate, shared by both (properties are read from the
event's properties only; ``.at`` there is a property like any other):

- ``count``: matching events. ``sum``: of the numeric values (0 when there are
  none), exact over integers and in floating point, in event order, once a float
  takes part (SQLite 3.43+ compensates float sums, so the last bits may differ
  there). ``avg``: that sum over how many, null when there are none.
- ``min``/``max``: over numbers and strings, numbers ranking below strings (SQLite's
  order); null when there are none.
- ``distinct``: how many different numbers, strings and booleans (``1`` and ``1.0``
  are one value; ``true`` and ``1`` two).
- ``top``: the most frequent of those values; among equally frequent ones, the one
  seen most recently (by time, then log order).
- ``last``/``first``: the matching event with the greatest/least ``(at, seq)``.

Over list items (``ir.Agg.item`` set: ``sum(order_completed.products, item.price
where …)``), ``sum`` … ``top`` reduce the item value of every item of the list at
``prop`` in every windowed event for which ``where`` holds (both see the item as
``item``, the event as ``event``), by the rules above, items ordered after their
event by their place in its list. In SQL: the window's events joined to ``json_each``
of their list.

Events count when ``now - within < at <= now``: a simulation replaying history
never sees its future.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from journeyc.compile import ir
from journeyc.engine import values as vals
from journeyc.engine.expr import (
    AggregateSource,
    Compiled,
    Predicate,
    Scope,
    compile_expr,
    compile_predicate,
    item_scope,
)
from journeyc.engine.values import EventView
from journeyc.store.abc import AggregateQuery, AggregateReads, NoExactFormError

__all__ = [
    "AggregateSource",
    "ItemFns",
    "ListAggregates",
    "LoggedEvent",
    "StoreAggregates",
    "filter_where",
    "reduce_events",
    "reduce_items",
]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    """An event as the log holds it: ``seq`` orders events of equal ``at``."""

    seq: int
    user_id: str
    name: str
    at: datetime
    props: Mapping[str, Any] = field(default_factory=dict)


def to_ms(t: datetime) -> int:
    """Epoch milliseconds of an aware timestamp, floored."""
    return (t - EPOCH) // _MS


@lru_cache(maxsize=1 << 16)  # a replay converts the same event and clock times again
def from_ms(ms: int) -> datetime:
    """The aware UTC timestamp of epoch milliseconds."""
    return EPOCH + ms * _MS  # exact for an int; half the time of timedelta(milliseconds=)


# ---------------------------------------------------------------- the shared reduction


def _scalar_key(v: object) -> tuple[str, object] | None:
    """What ``distinct`` and ``top`` tell values apart by; None for values they skip."""
    if isinstance(v, bool):
        return ("b", v)
    if isinstance(v, int | float):
        return ("n", v)
    if isinstance(v, str):
        return ("s", v)
    return None


def _sum(nums: Sequence[int | float]) -> int | float:
    """SQLite's SUM: exact over integers; once a float takes part, every term is added
    as a float, in event order."""
    if all(n.__class__ is int for n in nums):
        return sum(nums)
    total = 0.0
    for n in nums:
        total += n
    return total


def reduce_events(func: str, prop: Sequence[str], events: Sequence[tuple[int, EventView]]) -> Any:
    """Aggregate ``events`` (``(seq, event)`` pairs sorted by ``(at, seq)``, already
    matched and windowed) with ``func`` over property path ``prop``."""
    if func == "count":
        return len(events)
    if func == "last":
        return events[-1][1] if events else None
    if func == "first":
        return events[0][1] if events else None
    picked = [(seq, ev.at, vals.get_path(ev.props, prop)) for seq, ev in events]
    return _reduce_picked(func, picked)


def _reduce_picked(func: str, picked: Sequence[tuple[object, datetime, Any]]) -> Any:
    """``func`` over values ``(order, at, value)`` in ``(at, order)`` order; ``order``
    (a ``seq``, or ``(seq, index)`` for list items) breaks ties among times."""
    if func == "count":
        return len(picked)
    if func in ("sum", "avg"):
        nums = [v for _, _, v in picked if vals.is_number(v)]
        total = _sum(nums)
        if func == "sum":
            return total
        return total / len(nums) if nums else None
    if func in ("min", "max"):
        numbers = [v for _, _, v in picked if vals.is_number(v)]
        strings = [v for _, _, v in picked if isinstance(v, str)]
        if func == "min":
            return min(numbers) if numbers else min(strings) if strings else None
        return max(strings) if strings else max(numbers) if numbers else None
    keyed = [(k, o, at, v) for o, at, v in picked if (k := _scalar_key(v)) is not None]
    if func == "distinct":
        return len({k for k, _, _, _ in keyed})
    if func == "top":
        counts: dict[tuple[str, object], int] = {}
        for k, _, _, _ in keyed:
            counts[k] = counts.get(k, 0) + 1
        best = max(keyed, key=lambda r: (counts[r[0]], r[2], r[1]), default=None)
        return None if best is None else best[3]
    raise ValueError(f"unknown aggregate {func}")


@dataclass(frozen=True, slots=True)
class ItemFns:
    """The compiled parts of an item aggregate: its item value and ``where``."""

    value: Compiled
    where: Predicate | None

    @classmethod
    def of(cls, agg: ir.Agg) -> ItemFns:
        """Compile ``agg``'s item value and ``where`` (``agg.item`` must be set)."""
        assert agg.item is not None
        where = None if agg.where is None else compile_predicate(agg.where)
        return cls(compile_expr(agg.item), where)


def reduce_items(
    agg: ir.Agg, fns: ItemFns, scope: Scope, events: Iterable[tuple[int, EventView]]
) -> Any:
    """An item aggregate over ``events`` (``(seq, event)`` pairs sorted by
    ``(at, seq)``, windowed): each item of the list at ``agg.prop`` of each event
    for which ``where`` holds gives its value; the values are reduced as
    :func:`reduce_events` reduces properties, items of one event ordered by their
    place in its list. A property that is not a list has no items."""
    picked: list[tuple[object, datetime, Any]] = []
    value, where, prop = fns.value, fns.where, agg.prop
    for seq, ev in events:
        xs = vals.get_path(ev.props, prop)
        if not isinstance(xs, list):
            continue
        for i, x in enumerate(xs):
            inner = item_scope(scope, ev, x)
            if where is None or where(inner):
                picked.append(((seq, i), ev.at, value(inner)))
    return _reduce_picked(agg.func, picked)


def _window(scope: Scope, within: int | None) -> tuple[int, int | None]:
    now_ms = to_ms(scope.now)
    return now_ms, None if within is None else now_ms - within * 1000


def filter_where(
    where: Predicate | None, scope: Scope, rows: Iterable[tuple[int, EventView]]
) -> list[tuple[int, EventView]]:
    """The ``(seq, event)`` rows for which an aggregate's ``where`` holds."""
    if where is None:
        return list(rows)
    return [(seq, ev) for seq, ev in rows if where(item_scope(scope, ev, None))]


# ---------------------------------------------------------------- in memory


class ListAggregates:
    """Aggregates over events held in memory (their ``at`` whole milliseconds, as
    the log stores them)."""

    def __init__(self, events: Sequence[LoggedEvent]) -> None:
        self._events = sorted(events, key=lambda e: (e.at, e.seq))
        self._where: dict[str, Predicate | None] = {}
        self._items: dict[str, ItemFns] = {}

    def value(self, agg: ir.Agg, key: str, scope: Scope) -> Any:
        """The value of ``agg`` for ``scope.user_id`` at ``scope.now``."""
        if agg.item is not None and key not in self._items:
            self._items[key] = ItemFns.of(agg)
        if key not in self._where:
            self._where[key] = None if agg.where is None else compile_predicate(agg.where)
        now, since = scope.now, None
        if agg.within is not None:
            since = now - timedelta(seconds=agg.within)
        rows = (
            (e.seq, EventView(e.name, e.at, e.props))
            for e in self._events
            if e.user_id == scope.user_id
            and e.name == agg.event
            and e.at <= now
            and (since is None or e.at > since)
        )
        if agg.item is not None:
            return reduce_items(agg, self._items[key], scope, rows)
        return reduce_events(agg.func, agg.prop, filter_where(self._where[key], scope, rows))


# ---------------------------------------------------------------- from the store


@dataclass(slots=True)
class _Plan:
    """What one aggregate compiled to: the store's query, and the Python parts."""

    query: AggregateQuery
    sql: bool  # whether the query answers it (else: its rows are reduced here)
    outer: list[Compiled]  # the values the query binds, from the caller's scope
    where: Predicate | None  # the compiled where, for the Python path
    items: ItemFns | None = None  # an item aggregate's compiled parts, for the Python path


class StoreAggregates:
    """Aggregates answered by a store's compiled reads (``store.aggregates()``).

    ``sql_where=False`` filters every ``where`` in Python (the reference the
    store's translation is tested against).
    """

    def __init__(self, reads: AggregateReads, *, sql_where: bool = True) -> None:
        self._reads = reads
        self._sql_where = sql_where
        self._plans: dict[str, _Plan] = {}

    def value(self, agg: ir.Agg, key: str, scope: Scope) -> Any:
        """The value of ``agg`` for ``scope.user_id`` at ``scope.now``."""
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = self._compile(agg)
        now_ms, since = _window(scope, agg.within)
        query = plan.query
        if plan.sql:
            try:
                got = query.answer(scope.user_id, now_ms, since, [f(scope) for f in plan.outer])
            except NoExactFormError:
                pass  # no exact form this time: the Python path below decides
            else:
                if got is not None and agg.func in ("last", "first"):
                    return EventView(agg.event, from_ms(got[0]), got[1])
                return got
        rows = [
            (seq, EventView(agg.event, from_ms(at), props))
            for seq, at, props in query.rows(scope.user_id, now_ms, since)
        ]
        if plan.items is not None:
            return reduce_items(agg, plan.items, scope, rows)
        return reduce_events(agg.func, agg.prop, filter_where(plan.where, scope, rows))

    def plan_sql(self, agg: ir.Agg) -> str | None:
        """The statement ``agg`` is answered with, or None when it is filtered in Python."""
        return self._compile(agg).query.sql

    def _compile(self, agg: ir.Agg) -> _Plan:
        query = self._reads.compile(agg, translate_where=self._sql_where)
        outer = [compile_expr(e) for e in query.outer]
        if agg.item is not None:
            fns = ItemFns.of(agg)
            return _Plan(query, query.sql is not None, outer, fns.where, fns)
        where = None if agg.where is None else compile_predicate(agg.where)
        return _Plan(query, query.sql is not None, outer, where)
