"""Aggregates over a user's events: ``count``, ``sum``, ``avg``, ``min``, ``max``,
``distinct``, ``top``, ``last`` and ``first``.

:class:`~journeyc.engine.expr.AggregateSource` is what compiled expressions ask; two
implementations keep the same contract:

- :class:`SqlAggregates` answers from the ``events`` table. Each aggregate becomes
  one SQL statement over the ``(user_id, name, at)`` index, built once per
  aggregate (sqlite3 keeps it prepared in its statement cache). Its ``where`` is
  translated to SQL when every part of it has a SQL form with exactly the null and
  type rules of :mod:`journeyc.engine.values`; values from the outer scope (profile
  attributes, ``now``) are computed in Python and bound as parameters. Otherwise,
  and whenever a bound value has no exact SQL form (a timestamp, a list, a 65-bit
  integer), the window's rows are read and filtered with the compiled Python
  predicate.
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

import json
import math
import re
import sqlite3
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
    free_event_refs,
    free_item_refs,
    item_scope,
)
from journeyc.engine.values import EventView

__all__ = [
    "AggregateSource",
    "ItemFns",
    "ListAggregates",
    "LoggedEvent",
    "SqlAggregates",
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


# ---------------------------------------------------------------- SQL

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_INT64 = 2**63


def _json_path(path: Sequence[str]) -> str | None:
    """The JSON path of a property path, or None when a name would need quoting."""
    if not path or not all(_IDENT.match(p) for p in path):
        return None
    return "$." + ".".join(path)


# The value classes of the where translation, and the json_type()s of each.
_JSON_TYPES = {
    "num": ("integer", "real"),
    "text": ("text",),
    "bool": ("true", "false"),
    "null": ("null",),
    "array": ("array",),
    "object": ("object",),
}


def _tag_of(json_type: str) -> str:
    """SQL mapping a (never NULL) ``json_type`` to its value class."""
    whens = " ".join(f"WHEN '{t}' THEN '{c}'" for c, ts in _JSON_TYPES.items() for t in ts)
    return f"CASE {json_type} {whens} END"


class _UnbindableError(Exception):
    """A runtime value with no exact SQL form: evaluate this aggregate in Python."""


def _bind(v: object) -> tuple[str, object]:
    """A value as (class, SQL value), or :class:`_UnbindableError`."""
    c = v.__class__
    if v is None:
        return "null", None
    if c is bool:
        return "bool", int(v)  # type: ignore[call-overload]
    if c is int:
        if -_INT64 <= v < _INT64:  # type: ignore[operator]
            return "num", v
    elif c is float:
        if not math.isnan(v):  # type: ignore[arg-type]
            return "num", v
    elif c is str and "\x00" not in v:  # type: ignore[operator]
        try:
            v.encode("utf-8")  # type: ignore[attr-defined]
        except UnicodeEncodeError:
            raise _UnbindableError from None
        return "text", v
    raise _UnbindableError


@dataclass(frozen=True, slots=True)
class _Val:
    """A value in SQL: ``val`` its value, ``tag`` an expression giving its class.

    ``cls`` is the class when known at compile time (literals, predicates); ``jt``
    the never-NULL ``json_type`` expression of a value read from JSON, which
    ``from_row`` marks as the counted event's (two of those may be arrays or
    objects, whose equality SQL cannot decide).
    """

    tag: str
    val: str
    cls: str | None = None
    jt: str | None = None
    from_row: bool = False
    numeric: bool = False  # ``val`` is a number, or NULL exactly when the value is null


def _is(v: _Val, cls: str) -> str:
    """SQL testing that ``v`` is of class ``cls`` (``1``/``0`` when known)."""
    if v.cls is not None:
        return "1" if v.cls == cls else "0"
    if v.jt is not None:
        return f"{v.jt} IN ({', '.join(repr(t) for t in _JSON_TYPES[cls])})"
    return f"{v.tag} = '{cls}'"


def _and(*parts: str) -> str:
    if "0" in parts:
        return "0"
    live = [p for p in parts if p != "1"]
    return "1" if not live else live[0] if len(live) == 1 else f"({' AND '.join(live)})"


def _or(*parts: str) -> str:
    if "1" in parts:
        return "1"
    live = [p for p in parts if p != "0"]
    return "0" if not live else live[0] if len(live) == 1 else f"({' OR '.join(live)})"


def _not(p: str) -> str:
    return {"0": "1", "1": "0"}.get(p, f"(NOT {p})")


def _eq(a: _Val, b: _Val) -> str:
    if b.cls is None:
        a, b = b, a
    if b.cls is not None and a.cls is None:
        if b.cls == "null":
            return _is(a, "null")
        return _and(_is(a, b.cls), f"{a.val} = {b.val}")
    return (
        f"(CASE WHEN {a.tag} = 'null' OR {b.tag} = 'null' THEN {a.tag} = {b.tag}"
        f" WHEN {a.tag} <> {b.tag} OR {a.tag} IN ('array', 'object') THEN 0"
        f" ELSE {a.val} = {b.val} END)"
    )


def _order(op: str, a: _Val, b: _Val) -> str:
    same_class = _or(*(_and(_is(a, c), _is(b, c)) for c in ("num", "text")))
    return _and(same_class, f"{a.val} {op} {b.val}")


def _truthy(v: _Val) -> str:
    if v.cls == "bool" and v.jt is None:
        return v.val
    return (
        f"(CASE {v.tag} WHEN 'bool' THEN {v.val} WHEN 'num' THEN {v.val} <> 0"
        f" WHEN 'text' THEN {v.val} <> '' WHEN 'array' THEN {v.val} <> '[]'"
        f" WHEN 'object' THEN {v.val} <> '{{}}' ELSE 0 END)"
    )


class _WhereSql:
    """Translates a ``where`` to a SQL condition that is never NULL, or gives up."""

    def __init__(self, prefix: str = "", item: str | None = None) -> None:
        # ``prefix`` keeps parameter names apart when several conditions share a
        # statement (the set-based evaluation of :mod:`journeyc.engine.bulk`).
        self.prefix = prefix
        self.params: dict[str, object] = {}  # constant parameters
        self.dynamic: list[tuple[str, Compiled]] = []  # evaluated per call on the scope
        # The json_each aliases of the list items in focus, innermost last: ``item``
        # (an item aggregate's row), then those of nested ``any``/``all``.
        self._items: list[str] = [item] if item is not None else []
        self._n_items = 0

    def _param(self, value: object) -> str:
        name = f"{self.prefix}c{len(self.params)}"
        self.params[name] = value
        return f":{name}"

    def _path(self, path: Sequence[str]) -> str | None:
        jp = _json_path(path)
        return None if jp is None else self._param(jp)

    def pred(self, e: ir.Expr) -> str | None:
        """A 0/1 SQL expression for the truthiness of ``e``."""
        if isinstance(e, ir.Op):
            if e.op in ("and", "or"):
                parts = [self.pred(a) for a in e.args]
                if any(p is None for p in parts):
                    return None
                return (_and if e.op == "and" else _or)(*(p for p in parts if p is not None))
            if e.op == "not":
                p = self.pred(e.args[0])
                return None if p is None else _not(p)
            if e.op in ("==", "!="):
                a, b = self.value(e.args[0]), self.value(e.args[1])
                if a is None or b is None or (a.from_row and b.from_row):
                    return None
                return _eq(a, b) if e.op == "==" else _not(_eq(a, b))
            if e.op in ("<", "<=", ">", ">="):
                a, b = self.value(e.args[0]), self.value(e.args[1])
                return None if a is None or b is None else _order(e.op, a, b)
            if e.op == "between":
                x, lo, hi = (self.value(a) for a in e.args)
                if x is None or lo is None or hi is None:
                    return None
                return _and(_order(">=", x, lo), _order("<=", x, hi))
            if e.op in ("in", "not in"):
                p = self._in(e.args[0], e.args[1])
                return p if p is None or e.op == "in" else _not(p)
        if isinstance(e, ir.Call) and e.func == "exists" and len(e.args) == 1:
            v = self.value(e.args[0])
            return None if v is None else _not(_is(v, "null"))
        if isinstance(e, ir.Each):
            return self._each(e)
        v = self.value(e)
        return None if v is None else _truthy(v)

    def _list_source(self, e: ir.Expr) -> tuple[str, str, str] | None:
        """A list read from the row: (JSON document, path parameter, the condition
        under which the document is JSON), or None."""
        if isinstance(e, ir.EventRef) and e.path and e.path != ["at"]:
            p = self._path(e.path)
            return None if p is None else ("props", p, "1")
        if isinstance(e, ir.ItemRef) and e.path and self._items:
            a = self._items[-1]
            p = self._path(e.path)
            return None if p is None else (f"{a}.value", p, f"{a}.type = 'object'")
        return None

    def _each(self, e: ir.Each) -> str | None:
        """``any``/``all`` over a list of the row: an EXISTS over its ``json_each``."""
        src = self._list_source(e.items)
        if src is None:
            return None
        doc, p, guard = src
        alias = f"{self.prefix}i{self._n_items}"
        self._n_items += 1
        self._items.append(alias)
        try:
            cond = self.pred(e.cond)
        finally:
            self._items.pop()
        if cond is None:
            return None
        rows = f"SELECT 1 FROM json_each({doc}, {p}) AS {alias}"
        if e.func == "any":
            test = f"EXISTS ({rows} WHERE {cond})"
        else:
            test = f"NOT EXISTS ({rows} WHERE {_not(cond)})"
        # CASE, not AND: SQL does not promise to test the guard first.
        return (
            f"(CASE WHEN {guard} THEN IFNULL(json_type({doc}, {p}), '') = 'array'"
            f" AND {test} ELSE 0 END)"
        )

    def value(self, e: ir.Expr) -> _Val | None:
        """``e`` as a SQL value, or None."""
        if not free_event_refs(e) and not free_item_refs(e):
            if isinstance(e, ir.Lit):
                try:
                    cls, val = _bind(e.value)
                except _UnbindableError:
                    return None
                return _Val(f"'{cls}'", self._param(val), cls=cls)
            name = f"{self.prefix}d{len(self.dynamic)}"
            self.dynamic.append((name, compile_expr(e)))
            return _Val(f":{name}t", f":{name}v")
        if isinstance(e, ir.EventRef) and e.path != ["at"]:
            p = self._path(e.path)
            if p is None:
                return None
            jt = f"IFNULL(json_type(props, {p}), 'null')"
            return _Val(_tag_of(jt), f"json_extract(props, {p})", jt=jt, from_row=True)
        if isinstance(e, ir.ItemRef):
            return self._item(e.path)
        if isinstance(e, ir.Op) and e.op == "*":
            return self._times(e)
        if isinstance(e, ir.Op | ir.Call):
            p = self.pred(e) if _is_predicate(e) else None
            return None if p is None else _Val("'bool'", p, cls="bool")
        return None

    def _item(self, path: Sequence[str]) -> _Val | None:
        """A path into the list item in focus (a ``json_each`` row)."""
        if not self._items:
            return None
        a = self._items[-1]
        if not path:
            # ``value``, not ``atom``: an array or object item is its JSON text.
            return _Val(_tag_of(f"{a}.type"), f"{a}.value", jt=f"{a}.type", from_row=True)
        p = self._path(path)
        if p is None:
            return None
        # Only an object has properties (a string item is not JSON to json_extract).
        jt = (
            f"(CASE WHEN {a}.type = 'object' THEN IFNULL(json_type({a}.value, {p}), 'null')"
            " ELSE 'null' END)"
        )
        val = f"(CASE WHEN {a}.type = 'object' THEN json_extract({a}.value, {p}) END)"
        return _Val(_tag_of(jt), val, jt=jt, from_row=True)

    def _times(self, e: ir.Op) -> _Val | None:
        """``a * b``: the product of two numbers, else null (as ``values.mul``: no
        durations come from JSON). A product SQL would round or overflow where Python
        is exact (int64 overflow, infinities) raises an error instead, and the
        aggregate is computed in Python."""
        a, b = self.value(e.args[0]), self.value(e.args[1])
        if a is None or b is None:
            return None
        nums = _and(_is(a, "num"), _is(b, "num"))
        if nums == "0":
            return _Val("'null'", "NULL", cls="null")
        x, y = a.val, b.val
        if len(x) + len(y) > _MAX_PRODUCT_SQL:
            return None  # each operand is written three times: nested products grow fast
        # Factors up to 3037000499 (the square root of 2**63) multiply exactly as
        # integers and without overflow as reals; larger ones go to Python.
        exact = f"abs({x}) <= 3037000499 AND abs({y}) <= 3037000499"
        val = (
            f"(CASE WHEN {nums} THEN (CASE WHEN {exact} THEN {x} * {y}"
            f" ELSE json_extract('!', '$') END) END)"
        )
        return _Val(f"(CASE WHEN {val} IS NULL THEN 'null' ELSE 'num' END)", val, numeric=True)

    def _in(self, item_e: ir.Expr, container_e: ir.Expr) -> str | None:
        item = self.value(item_e)
        if item is None:
            return None
        if isinstance(container_e, ir.ListE):
            items = [self.value(i) for i in container_e.items]
            if any(i is None or (i.from_row and item.from_row) for i in items):
                return None
            return _and(_not(_is(item, "null")), _or(*(_eq(item, i) for i in items if i)))
        c = self.value(container_e)
        if c is None:
            return None
        substring = _and(_is(item, "text"), _is(c, "text"), f"instr({c.val}, {item.val}) > 0")
        if not c.from_row:
            return substring  # a bound list is unbindable, so the container is a string
        if item.from_row or not isinstance(container_e, ir.EventRef):
            return None
        p = self._path(container_e.path)
        elem = _Val(_tag_of("j.type"), "j.atom", jt="j.type")
        member = f"EXISTS (SELECT 1 FROM json_each(props, {p}) AS j WHERE {_eq(item, elem)})"
        return _and(_not(_is(item, "null")), _or(substring, _and(_is(c, "array"), member)))

    def bindings(self, scope: Scope) -> dict[str, object]:
        """The parameters for one evaluation (raises :class:`_UnbindableError`)."""
        out = dict(self.params)
        for name, fn in self.dynamic:
            out[name + "t"], out[name + "v"] = _bind(fn(scope))
        return out


def _item_key(v: _Val) -> str:
    """SQL telling item values apart as ``distinct`` and ``top`` do (NULL: skipped)."""
    return (
        f"CASE WHEN {_is(v, 'num')} THEN {v.val} WHEN {_is(v, 'text')} THEN 's' || {v.val}"
        f" WHEN {_is(v, 'bool')} THEN (CASE WHEN {v.val} THEN 'T' ELSE 'F' END) END"
    )


def item_select(func: str, v: _Val) -> tuple[str, ...]:
    """The SELECT columns of an item aggregate (not ``top``) over item value ``v``:
    ``SUM`` (and ``COUNT`` for ``avg``), ``MIN``/``MAX``, ``COUNT(DISTINCT …)``."""
    num = _is(v, "num")
    if func in ("sum", "avg"):
        x = v.val if v.numeric else f"CASE WHEN {num} THEN {v.val} END"
        return (f"SUM({x})", f"COUNT({x})") if func == "avg" else (f"SUM({x})",)
    if func in ("min", "max"):
        return (f"{func.upper()}(CASE WHEN {_or(num, _is(v, 'text'))} THEN {v.val} END)",)
    return (f"COUNT(DISTINCT {_item_key(v)})",)


def _is_predicate(e: ir.Op | ir.Call) -> bool:
    if isinstance(e, ir.Call):
        return e.func == "exists"
    return e.op not in ("neg", "+", "-", "*", "/")


_MAX_PRODUCT_SQL = 4000  # characters of SQL for the two operands of one `*`
_SCALAR_TYPES = "('integer', 'real', 'text', 'true', 'false')"


def _select(func: str, jp: str) -> str:
    """The SELECT list of ``func`` over JSON path parameter ``jp``."""
    jt, v = f"json_type(props, {jp})", f"json_extract(props, {jp})"
    if func == "count":
        return "COUNT(*)"
    if func in ("sum", "avg"):
        # avg divides in Python: SQLite's AVG sums integers as floats.
        num = f"CASE WHEN {jt} IN ('integer', 'real') THEN {v} END"
        return f"SUM({num}), COUNT({num})"
    if func in ("min", "max"):
        return f"{func.upper()}(CASE WHEN {jt} IN ('integer', 'real', 'text') THEN {v} END)"
    return f"COUNT(DISTINCT {_distinct_key(jt, v)})"


def _distinct_key(jt: str, v: str) -> str:
    return (
        f"CASE {jt} WHEN 'integer' THEN {v} WHEN 'real' THEN {v} WHEN 'text' THEN 's' || {v}"
        f" WHEN 'true' THEN 'T' WHEN 'false' THEN 'F' END"
    )


@dataclass(slots=True)
class _Plan:
    """What one aggregate compiled to."""

    agg: ir.Agg
    sql: str | None  # the aggregate in SQL; None: read the rows and reduce in Python
    where_sql: _WhereSql | None
    rows_sql: str  # the window's rows, for the Python path
    where: Predicate | None  # the compiled where, for the Python path
    const: dict[str, object]
    items: ItemFns | None = None  # an item aggregate's compiled parts, for the Python path


class SqlAggregates:
    """Aggregates answered from the ``events`` table of ``conn``.

    ``sql_where=False`` filters every ``where`` in Python (the reference the SQL
    translation is tested against).
    """

    def __init__(self, conn: sqlite3.Connection, *, sql_where: bool = True) -> None:
        self._conn = conn
        self._sql_where = sql_where
        self._plans: dict[str, _Plan] = {}

    def value(self, agg: ir.Agg, key: str, scope: Scope) -> Any:
        """The value of ``agg`` for ``scope.user_id`` at ``scope.now``."""
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = self._compile(agg)
        now_ms, since = _window(scope, agg.within)
        params = dict(plan.const, uid=scope.user_id, now=now_ms, since=since)
        if plan.sql is not None:
            try:
                if plan.where_sql is not None:
                    params.update(plan.where_sql.bindings(scope))
                return self._run(plan, params)
            except (_UnbindableError, sqlite3.OperationalError, OverflowError):
                pass  # no exact SQL form this time: the Python path below decides
        rows = [
            (seq, EventView(agg.event, from_ms(at), _props(props)))
            for seq, at, props in self._conn.execute(plan.rows_sql, params)
        ]
        if plan.items is not None:
            return reduce_items(agg, plan.items, scope, rows)
        return reduce_events(agg.func, agg.prop, filter_where(plan.where, scope, rows))

    def plan_sql(self, agg: ir.Agg) -> str | None:
        """The SQL ``agg`` is answered with, or None when it is filtered in Python."""
        return self._compile(agg).sql

    def _compile(self, agg: ir.Agg) -> _Plan:
        const: dict[str, object] = {"name": agg.event}
        window = "user_id = :uid AND name = :name AND at <= :now"
        if agg.within is not None:
            window += " AND at > :since"
        rows_sql = f"SELECT seq, at, props FROM events WHERE {window} ORDER BY at, seq"
        if agg.item is not None:
            return self._compile_items(agg, window, rows_sql, const)
        where_fn = None if agg.where is None else compile_predicate(agg.where)
        jp: str | None = "$"
        if agg.func not in ("count", "last", "first"):
            jp = _json_path(agg.prop)
            const["path"] = jp
        where_sql: _WhereSql | None = None
        cond: str | None = ""
        if agg.where is not None:
            where_sql = _WhereSql() if self._sql_where else None
            cond = where_sql.pred(agg.where) if where_sql is not None else None
            if where_sql is not None and cond is not None:
                const.update(where_sql.params)
                cond = f" AND {cond}"
        if jp is None or cond is None:
            return _Plan(agg, None, None, rows_sql, where_fn, const)
        filtered = f"FROM events WHERE {window}{cond}"
        if agg.func in ("last", "first"):
            order = "DESC" if agg.func == "last" else "ASC"
            sql = f"SELECT seq, at, props {filtered} ORDER BY at {order}, seq {order} LIMIT 1"
        elif agg.func == "top":
            jt, v = "json_type(props, :path)", "json_extract(props, :path)"
            sql = (
                f"SELECT jt, v FROM (SELECT {jt} AS jt, {v} AS v, at, seq,"
                f" COUNT(*) OVER (PARTITION BY {_distinct_key(jt, v)}) AS c"
                f" {filtered} AND {jt} IN {_SCALAR_TYPES})"
                " ORDER BY c DESC, at DESC, seq DESC LIMIT 1"
            )
        else:
            sql = f"SELECT {_select(agg.func, ':path')} {filtered}"
        return _Plan(agg, sql, where_sql, rows_sql, where_fn, const)

    def _compile_items(
        self, agg: ir.Agg, window: str, rows_sql: str, const: dict[str, object]
    ) -> _Plan:
        """An item aggregate: one statement joining the window's events to the
        ``json_each`` of their list, when its value and ``where`` have SQL forms."""
        assert agg.item is not None
        fns = ItemFns.of(agg)
        python = _Plan(agg, None, None, rows_sql, fns.where, const, fns)
        lp = _json_path(agg.prop)
        if lp is None or not self._sql_where:
            return python
        const = dict(const, list=lp)
        ws = _WhereSql(item="it")
        v = ws.value(agg.item)
        cond = "1" if agg.where is None else ws.pred(agg.where)
        if v is None or cond is None:
            return python
        const.update(ws.params)
        filtered = (
            "FROM events, json_each(events.props, :list) AS it"
            f" WHERE {window} AND json_type(events.props, :list) = 'array' AND {cond}"
        )
        if agg.func == "top":  # the latest of the most frequent, items by their place
            key = _item_key(v)
            sql = (
                f"SELECT b, v FROM (SELECT {_is(v, 'bool')} AS b, {v.val} AS v, at, seq,"
                f" it.key AS ik, COUNT(*) OVER (PARTITION BY {key}) AS c"
                f" {filtered} AND ({key}) IS NOT NULL)"
                " ORDER BY c DESC, at DESC, seq DESC, ik DESC LIMIT 1"
            )
        else:
            sql = f"SELECT {', '.join(item_select(agg.func, v))} {filtered}"
        return _Plan(agg, sql, ws, rows_sql, fns.where, const, fns)

    def _run(self, plan: _Plan, params: dict[str, object]) -> Any:
        assert plan.sql is not None
        row = self._conn.execute(plan.sql, params).fetchone()
        func = plan.agg.func
        if func in ("last", "first"):
            if row is None:
                return None
            return EventView(plan.agg.event, from_ms(row[1]), _props(row[2]))
        if func == "top":
            if row is None:
                return None
            if plan.items is not None:
                b, v = row
                return v == 1 if b == 1 else v
            jt, v = row
            return v == 1 if jt in ("true", "false") else v
        value = row[0]
        if func == "sum":
            return 0 if value is None else value
        if func == "avg":
            return None if not row[1] else value / row[1]
        return value


def _props(text: str | None) -> Mapping[str, Any]:
    if not text:
        return {}
    loaded = json.loads(text)
    return loaded if isinstance(loaded, dict) else {}
