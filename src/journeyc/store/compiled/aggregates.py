"""Aggregates compiled to SQL: one statement per aggregate over the ``events`` table
(the SQL side of :class:`~journeyc.engine.aggregates.StoreAggregates`).

Each aggregate becomes one SQL statement over the ``(user_id, name, at)`` index, built
once per aggregate (the driver keeps it prepared: sqlite3 in its statement cache,
psycopg once it ran a few times). Its ``where``
is translated to SQL when every part of it has a SQL form with exactly the null and
type rules of :mod:`journeyc.engine.values`; values from the outer scope (profile
attributes, ``now``) are computed by the engine and bound as parameters. Otherwise,
and whenever a bound value has no exact SQL form (a timestamp, a list, a 65-bit
integer), the statement raises :class:`~journeyc.store.abc.NoExactFormError` and the
engine reads the window's rows and filters them with the compiled Python predicate.
The meaning of each aggregate is written in :mod:`journeyc.engine.aggregates`.

Over list items (``ir.Agg.item`` set), the window's events are joined to the items
of their list (SQLite's ``json_each``, PostgreSQL's ``jsonb_array_elements``).
Events count when ``now - within < at <= now``.

The pieces that differ between databases (JSON functions, parameters, truth values,
exact sums) come from a :class:`~journeyc.store.compiled.dialect.Dialect`, and the
statements run on a :class:`~journeyc.store.compiled.dialect.Runner`;
:mod:`journeyc.store.compiled.population` reuses the ``where`` translation for
set-based evaluation.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from journeyc.compile import ir
from journeyc.compile.ir import free_event_refs, free_item_refs
from journeyc.store.abc import NoExactFormError
from journeyc.store.compiled.dialect import Dialect, Runner

__all__ = [
    "AggregateStatement",
    "CompiledAggregates",
    "WhereSql",
    "item_select",
    "prop_select",
    "props_of",
    "types_in",
]

# ---------------------------------------------------------------- SQL

_INT64 = 2**63


def _tag_of(d: Dialect, json_type: str) -> str:
    """SQL mapping a (never NULL) ``json_type`` to its value class."""
    whens = " ".join(f"WHEN '{t}' THEN '{c}'" for c, ts in d.json_types.items() for t in ts)
    return f"CASE {json_type} {whens} END"


def _bind(v: object) -> tuple[str, object]:
    """A value as (class, SQL value), or :class:`~journeyc.store.abc.NoExactFormError`."""
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
            raise NoExactFormError from None
        return "text", v
    raise NoExactFormError


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
    cond: str | None = None  # a predicate's value: its condition


def _is(d: Dialect, v: _Val, cls: str) -> str:
    """SQL testing that ``v`` is of class ``cls`` (true/false when known)."""
    if v.cls is not None:
        return d.true if v.cls == cls else d.false
    if v.jt is not None:
        return f"{v.jt} IN ({', '.join(repr(t) for t in d.json_types[cls])})"
    return f"{v.tag} = '{cls}'"


def _and(d: Dialect, *parts: str) -> str:
    t, f = d.true, d.false
    if f in parts:
        return f
    live = [p for p in parts if p != t]
    return t if not live else live[0] if len(live) == 1 else f"({' AND '.join(live)})"


def _or(d: Dialect, *parts: str) -> str:
    t, f = d.true, d.false
    if t in parts:
        return t
    live = [p for p in parts if p != f]
    return f if not live else live[0] if len(live) == 1 else f"({' OR '.join(live)})"


def _not(d: Dialect, p: str) -> str:
    return {d.false: d.true, d.true: d.false}.get(p, f"(NOT {p})")


def _eq(d: Dialect, a: _Val, b: _Val) -> str:
    if b.cls is None:
        a, b = b, a
    if b.cls is not None and a.cls is None:
        if b.cls == "null":
            return _is(d, a, "null")
        return _and(d, _is(d, a, b.cls), f"{a.val} = {b.val}")
    return (
        f"(CASE WHEN {a.tag} = 'null' OR {b.tag} = 'null' THEN {a.tag} = {b.tag}"
        f" WHEN {a.tag} <> {b.tag} OR {a.tag} IN ('array', 'object') THEN {d.false}"
        f" ELSE {a.val} = {b.val} END)"
    )


def _order(d: Dialect, op: str, a: _Val, b: _Val) -> str:
    both = {c: _and(d, _is(d, a, c), _is(d, b, c)) for c in ("num", "text")}
    return _and(d, _or(d, *both.values()), d.compare(op, a.val, b.val, both["num"]))


def _truthy(d: Dialect, v: _Val) -> str:
    if v.cls == "bool" and v.jt is None:
        return v.cond if v.cond is not None else d.is_true(v.val)
    return d.truthy(v.tag, v.val)


class WhereSql:
    """Translates a ``where`` to a SQL condition that is never NULL, or gives up.

    Values of the outer scope (``profile.x``, ``now``: anything that reads neither the
    counted event nor a list item) become parameters: :attr:`outer` lists them, and
    :meth:`bindings` binds the values the caller computed for them, in that order.
    """

    def __init__(self, dialect: Dialect, prefix: str = "", item: str | None = None) -> None:
        # ``prefix`` keeps parameter names apart when several conditions share a
        # statement (the set-based evaluation of :mod:`journeyc.store.compiled.population`).
        self.prefix = prefix
        self.d = dialect
        self.params: dict[str, object] = {}  # constant parameters
        self.outer: list[ir.Expr] = []  # values of the outer scope, computed per call
        self.outer_names: list[str] = []  # their parameters' names (+ t: class, v: value)
        # The json_each aliases of the list items in focus, innermost last: ``item``
        # (an item aggregate's row), then those of nested ``any``/``all``.
        self._items: list[str] = [item] if item is not None else []
        self._n_items = 0

    def _param(self, value: object) -> str:
        name = f"{self.prefix}c{len(self.params)}"
        self.params[name] = value
        return f":{name}"

    def _path(self, path: Sequence[str]) -> str | None:
        jp = self.d.json_path(path)
        return None if jp is None else self._param(jp)

    def _json(self, jt: str, val: str) -> _Val:
        """A value read from the counted row (``jt`` its never-NULL JSON type)."""
        d = self.d
        return _Val(_tag_of(d, jt), val, jt=jt, from_row=True)

    def pred(self, e: ir.Expr) -> str | None:
        """A never-NULL SQL condition (SQLite: 0/1) for the truthiness of ``e``."""
        d = self.d
        if isinstance(e, ir.Op):
            if e.op in ("and", "or"):
                parts = [self.pred(a) for a in e.args]
                if any(p is None for p in parts):
                    return None
                return (_and if e.op == "and" else _or)(d, *(p for p in parts if p is not None))
            if e.op == "not":
                p = self.pred(e.args[0])
                return None if p is None else _not(d, p)
            if e.op in ("==", "!="):
                a, b = self.value(e.args[0]), self.value(e.args[1])
                if a is None or b is None or (a.from_row and b.from_row):
                    return None
                return _eq(d, a, b) if e.op == "==" else _not(d, _eq(d, a, b))
            if e.op in ("<", "<=", ">", ">="):
                a, b = self.value(e.args[0]), self.value(e.args[1])
                return None if a is None or b is None else _order(d, e.op, a, b)
            if e.op == "between":
                x, lo, hi = (self.value(a) for a in e.args)
                if x is None or lo is None or hi is None:
                    return None
                return _and(d, _order(d, ">=", x, lo), _order(d, "<=", x, hi))
            if e.op in ("in", "not in"):
                p = self._in(e.args[0], e.args[1])
                return p if p is None or e.op == "in" else _not(d, p)
        if isinstance(e, ir.Call) and e.func == "exists" and len(e.args) == 1:
            v = self.value(e.args[0])
            return None if v is None else _not(d, _is(d, v, "null"))
        if isinstance(e, ir.Each):
            return self._each(e)
        v = self.value(e)
        return None if v is None else _truthy(d, v)

    def _list_source(self, e: ir.Expr) -> tuple[str, str, str] | None:
        """A list read from the row: (JSON document, path parameter, the condition
        under which the document is JSON), or None."""
        if isinstance(e, ir.EventRef) and e.path and e.path != ["at"]:
            p = self._path(e.path)
            return None if p is None else ("props", p, self.d.true)
        if isinstance(e, ir.ItemRef) and e.path and self._items:
            a = self._items[-1]
            p = self._path(e.path)
            obj = f"{self.d.item_type(a)} = '{self.d.json_types['object'][0]}'"
            return None if p is None else (self.d.item_value(a), p, obj)
        return None

    def _each(self, e: ir.Each) -> str | None:
        """``any``/``all`` over a list of the row: an EXISTS over its items."""
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
        d = self.d
        rows = f"SELECT 1 FROM {d.json_each(doc, p, alias)}"
        if e.func == "any":
            test = f"EXISTS ({rows} WHERE {cond})"
        else:
            test = f"NOT EXISTS ({rows} WHERE {_not(d, cond)})"
        # CASE, not AND: SQL does not promise to test the guard first.
        array_type = d.ifnull(d.json_type(doc, p), "''")
        return (
            f"(CASE WHEN {guard} THEN {array_type}"
            f" = '{d.json_types['array'][0]}' AND {test} ELSE {d.false} END)"
        )

    def value(self, e: ir.Expr) -> _Val | None:
        """``e`` as a SQL value, or None."""
        d = self.d
        if not free_event_refs(e) and not free_item_refs(e):
            if isinstance(e, ir.Lit):
                try:
                    cls, val = _bind(e.value)
                    val = d.bind(e.value, val)
                except NoExactFormError:
                    return None
                return _Val(f"'{cls}'", self._param(val), cls=cls)
            name = f"{self.prefix}d{len(self.outer)}"
            self.outer.append(e)
            self.outer_names.append(name)
            return _Val(f":{name}t", f":{name}v")
        if isinstance(e, ir.EventRef) and e.path != ["at"]:
            p = self._path(e.path)
            if p is None:
                return None
            return self._json(d.ifnull(d.json_type("props", p), "'null'"), d.json_value("props", p))
        if isinstance(e, ir.ItemRef):
            return self._item(e.path)
        if isinstance(e, ir.Op) and e.op == "*":
            return self._times(e)
        if isinstance(e, ir.Op | ir.Call):
            p = self.pred(e) if _is_predicate(e) else None
            return None if p is None else _Val("'bool'", d.bool_value(p), cls="bool", cond=p)
        return None

    def _item(self, path: Sequence[str]) -> _Val | None:
        """A path into the list item in focus (a ``json_each`` row)."""
        if not self._items:
            return None
        d, a = self.d, self._items[-1]
        if not path:
            # The value, not the atom: an array or object item is its JSON text.
            return self._json(d.item_type(a), d.item_value(a))
        p = self._path(path)
        if p is None:
            return None
        # Only an object has properties (a string item is not JSON to json_extract).
        obj = f"{d.item_type(a)} = '{d.json_types['object'][0]}'"
        doc = d.item_value(a)
        found = d.ifnull(d.json_type(doc, p), "'null'")
        jt = f"(CASE WHEN {obj} THEN {found} ELSE 'null' END)"
        return self._json(jt, f"(CASE WHEN {obj} THEN {d.json_value(doc, p)} END)")

    def _times(self, e: ir.Op) -> _Val | None:
        """``a * b``: the product of two numbers, else null (as ``values.mul``: no
        durations come from JSON). A product SQL would round or overflow where Python
        is exact (int64 overflow, infinities) raises an error instead, and the
        aggregate is computed in Python."""
        d = self.d
        if not d.products:
            return None
        a, b = self.value(e.args[0]), self.value(e.args[1])
        if a is None or b is None:
            return None
        nums = _and(d, _is(d, a, "num"), _is(d, b, "num"))
        if nums == d.false:
            return _Val("'null'", "NULL", cls="null")
        x, y = a.val, b.val
        if len(x) + len(y) > _MAX_PRODUCT_SQL:
            return None  # each operand is written three times: nested products grow fast
        # Factors up to 3037000499 (the square root of 2**63) multiply exactly as
        # integers and without overflow as reals; larger ones go to Python.
        exact = f"abs({x}) <= 3037000499 AND abs({y}) <= 3037000499"
        val = f"(CASE WHEN {nums} THEN (CASE WHEN {exact} THEN {x} * {y} ELSE {d.fail()} END) END)"
        return _Val(f"(CASE WHEN {val} IS NULL THEN 'null' ELSE 'num' END)", val, numeric=True)

    def _in(self, item_e: ir.Expr, container_e: ir.Expr) -> str | None:
        item = self.value(item_e)
        if item is None:
            return None
        if isinstance(container_e, ir.ListE):
            items = [self.value(i) for i in container_e.items]
            if any(i is None or (i.from_row and item.from_row) for i in items):
                return None
            eqs = (_eq(self.d, item, i) for i in items if i)
            return _and(self.d, _not(self.d, _is(self.d, item, "null")), _or(self.d, *eqs))
        c = self.value(container_e)
        if c is None:
            return None
        d = self.d
        substring = _and(d, _is(d, item, "text"), _is(d, c, "text"), d.contains(c.val, item.val))
        if not c.from_row:
            return substring  # a bound list is unbindable, so the container is a string
        if item.from_row or not isinstance(container_e, ir.EventRef):
            return None
        p = self._path(container_e.path)
        assert p is not None  # c, read from the same path, has one
        jt = d.item_type("j")
        elem = _Val(_tag_of(d, jt), d.item_atom("j"), jt=jt)
        member = f"EXISTS (SELECT 1 FROM {d.json_each('props', p, 'j')} WHERE {_eq(d, item, elem)})"
        member = _and(d, _is(d, c, "array"), member)
        return _and(d, _not(d, _is(d, item, "null")), _or(d, substring, member))

    def bindings(self, values: Sequence[object]) -> dict[str, object]:
        """The parameters for one evaluation, ``values`` those of :attr:`outer` (raises
        :class:`~journeyc.store.abc.NoExactFormError`)."""
        out = dict(self.params)
        for name, v in zip(self.outer_names, values, strict=True):
            cls, bound = _bind(v)
            out[name + "t"], out[name + "v"] = cls, self.d.bind(v, bound)
        return out


def _item_key(d: Dialect, v: _Val) -> str:
    """SQL telling item values apart as ``distinct`` and ``top`` do (NULL: skipped)."""
    return d.value_key(v.val, _is(d, v, "num"), _is(d, v, "text"), _is(d, v, "bool"))


ITEM_ORDER = "at, seq, {key}"
"""The order list items are reduced in: by event, then by place in the list."""


def item_select(d: Dialect, func: str, v: _Val, order: str) -> tuple[str, ...]:
    """The SELECT columns of an item aggregate (not ``top``) over item value ``v``:
    the sum (and ``COUNT`` for ``avg``), the minimum or maximum, ``COUNT(DISTINCT …)``;
    ``order`` the order the items are reduced in."""
    num = _is(d, v, "num")
    if func in ("sum", "avg"):
        x = v.val if v.numeric else f"CASE WHEN {num} THEN {v.val} END"
        sums = d.sum_columns(x, order)
        return (*sums, f"COUNT({x})") if func == "avg" else sums
    if func in ("min", "max"):
        x = f"CASE WHEN {_or(d, num, _is(d, v, 'text'))} THEN {v.val} END"
        return (d.min_max(func, x, order),)
    return (f"COUNT(DISTINCT {_item_key(d, v)})",)


def _is_predicate(e: ir.Op | ir.Call) -> bool:
    if isinstance(e, ir.Call):
        return e.func == "exists"
    return e.op not in ("neg", "+", "-", "*", "/")


_MAX_PRODUCT_SQL = 4000  # characters of SQL for the two operands of one `*`


def types_in(d: Dialect, *classes: str) -> str:
    """The SQL list of the dialect's JSON type names of value ``classes``."""
    return f"({', '.join(repr(t) for c in classes for t in d.json_types[c])})"


def prop_select(
    d: Dialect, func: str, jp: str, cond: str | None = None, order: str = "at, seq"
) -> tuple[str, ...]:
    """The SELECT columns of ``func`` (not ``count``, ``last``, ``first``, ``top``) over
    the counted events' property at JSON path parameter ``jp``; with ``cond``, only
    over the rows where it holds; ``order`` the order the events are reduced in."""
    jt, v = d.json_type("props", jp), d.json_value("props", jp)
    when = "" if cond is None else f"{cond} AND "
    if func in ("sum", "avg"):
        # avg divides in Python: SQLite's AVG sums integers as floats.
        num = f"CASE WHEN {when}{jt} IN {types_in(d, 'num')} THEN {v} END"
        sums = d.sum_columns(num, order)
        return (*sums, f"COUNT({num})") if func == "avg" else sums
    if func in ("min", "max"):
        num = f"CASE WHEN {when}{jt} IN {types_in(d, 'num', 'text')} THEN {v} END"
        return (d.min_max(func, num, order),)
    key = d.distinct_key(jt, v)
    return (f"COUNT(DISTINCT {key if cond is None else f'CASE WHEN {cond} THEN {key} END'})",)


class AggregateStatement:
    """One aggregate compiled to SQL, answered for one user at a time (see
    :class:`~journeyc.store.abc.AggregateQuery`)."""

    __slots__ = (
        "_bools",
        "_const",
        "_errors",
        "_execute",
        "_func",
        "_items",
        "_sum_of",
        "_width",
        "_ws",
        "outer",
        "rows_sql",
        "sql",
    )

    def __init__(
        self,
        runner: Runner,
        dialect: Dialect,
        agg: ir.Agg,
        sql: str | None,
        rows_sql: str,
        const: dict[str, object],
        ws: WhereSql | None = None,
    ) -> None:
        self._execute = runner.execute
        self._errors = runner.errors
        self._bools = dialect.json_types["bool"]
        # The dialect's sum over several columns (PostgreSQL's exact and float sums).
        self._width = dialect.sum_width
        self._sum_of = dialect.sum_of
        self._func = agg.func
        self._items = agg.item is not None
        self._const = const
        self._ws = ws
        self.sql = sql
        """The statement of the aggregate; None: the engine reduces :meth:`rows`."""
        self.rows_sql = rows_sql
        self.outer: Sequence[ir.Expr] = () if ws is None else tuple(ws.outer)
        """The values of the outer scope :meth:`answer` takes, in order."""

    def answer(
        self, user_id: str, now_ms: int, since_ms: int | None, outer: Sequence[object]
    ) -> Any:
        """The aggregate's value (for ``last``/``first``: the event's ``(at_ms, props)``,
        or None); :class:`~journeyc.store.abc.NoExactFormError` when a value of ``outer``,
        or the statement's arithmetic, has no exact SQL form."""
        assert self.sql is not None
        params = dict(self._const, uid=user_id, now=now_ms, since=since_ms)
        if self._ws is not None:
            params.update(self._ws.bindings(outer))
        try:
            row = self._execute(self.sql, params).fetchone()
        except self._errors:
            raise NoExactFormError from None
        func = self._func
        if func in ("last", "first"):
            if row is None:
                return None
            return row[1], props_of(row[2])
        if func == "top":
            if row is None:
                return None
            if self._items:
                b, v = row
                return v == 1 if b == 1 else v
            jt, v = row
            return v == 1 if jt in self._bools else v
        if func == "sum":
            value = row[0] if self._width == 1 else self._total(row)
            return 0 if value is None else value
        if func == "avg":
            n = row[self._width]
            return None if not n else (row[0] if self._width == 1 else self._total(row)) / n
        return row[0]

    def _total(self, row: Sequence[Any]) -> Any:
        """The dialect's sum over several columns (PostgreSQL's exact and float sums)."""
        try:
            return self._sum_of(row)
        except (ValueError, OverflowError):
            raise NoExactFormError from None

    def rows(
        self, user_id: str, now_ms: int, since_ms: int | None
    ) -> list[tuple[int, int, Mapping[str, Any]]]:
        """The user's events of the aggregate's window, ``(seq, at_ms, props)`` in
        ``(at, seq)`` order."""
        params = dict(self._const, uid=user_id, now=now_ms, since=since_ms)
        return [
            (seq, at, props_of(props)) for seq, at, props in self._execute(self.rows_sql, params)
        ]


class CompiledAggregates:
    """Aggregates compiled to SQL in ``dialect`` over the ``events`` table ``runner``
    reads (see :class:`~journeyc.store.abc.AggregateReads`)."""

    def __init__(self, runner: Runner, dialect: Dialect) -> None:
        self._runner = runner
        self._d = dialect

    def compile(self, agg: ir.Agg, *, translate_where: bool = True) -> AggregateStatement:
        """``agg`` as one statement; ``translate_where=False`` leaves every ``where``
        to the engine (the reference the SQL translation is tested against)."""
        d = self._d
        const: dict[str, object] = {"name": agg.event}
        window = "user_id = :uid AND name = :name AND at <= :now"
        if agg.within is not None:
            window += " AND at > :since"
        rows_sql = d.placeholders(
            f"SELECT seq, at, props FROM events WHERE {window} ORDER BY at, seq"
        )
        if agg.item is not None:
            return self._compile_items(agg, window, rows_sql, const, translate_where)
        jp: object | None = "$"
        if agg.func not in ("count", "last", "first"):
            jp = d.json_path(agg.prop)
            const["path"] = jp
        where_sql: WhereSql | None = None
        cond: str | None = ""
        if agg.where is not None:
            where_sql = WhereSql(d) if translate_where else None
            cond = where_sql.pred(agg.where) if where_sql is not None else None
            if where_sql is not None and cond is not None:
                const.update(where_sql.params)
                cond = f" AND {cond}"
        python = AggregateStatement(self._runner, d, agg, None, rows_sql, const)
        if jp is None or cond is None:
            return python
        filtered = f"FROM events WHERE {window}{cond}"
        path = ":path"
        if agg.func == "count":
            sql = f"SELECT COUNT(*) {filtered}"
        elif agg.func in ("last", "first"):
            order = "DESC" if agg.func == "last" else "ASC"
            sql = f"SELECT seq, at, props {filtered} ORDER BY at {order}, seq {order} LIMIT 1"
        elif agg.func == "top":
            jt, v = d.json_type("props", path), d.json_value("props", path)
            sql = (
                f"SELECT jt, v FROM (SELECT {jt} AS jt, {v} AS v, at, seq,"
                f" COUNT(*) OVER (PARTITION BY {d.distinct_key(jt, v)}) AS c"
                f" {filtered} AND {jt} IN {types_in(d, 'num', 'text', 'bool')}) AS t"
                " ORDER BY c DESC, at DESC, seq DESC LIMIT 1"
            )
        else:
            sql = f"SELECT {', '.join(prop_select(d, agg.func, path))} {filtered}"
        return AggregateStatement(
            self._runner, d, agg, d.placeholders(sql), rows_sql, const, where_sql
        )

    def _compile_items(
        self,
        agg: ir.Agg,
        window: str,
        rows_sql: str,
        const: dict[str, object],
        translate_where: bool,
    ) -> AggregateStatement:
        """An item aggregate: one statement joining the window's events to the items
        of their list, when its value and ``where`` have SQL forms."""
        assert agg.item is not None
        d = self._d
        python = AggregateStatement(self._runner, d, agg, None, rows_sql, const)
        lp = d.json_path(agg.prop)
        if lp is None or not translate_where:
            return python
        const = dict(const, list=lp)
        ws = WhereSql(d, item="it")
        v = ws.value(agg.item)
        cond = d.true if agg.where is None else ws.pred(agg.where)
        if v is None or cond is None:
            return python
        const.update(ws.params)
        lst = ":list"
        filtered = (
            f"FROM events, {d.json_each('events.props', lst, 'it')}"
            f" WHERE {window} AND {d.json_type('events.props', lst)}"
            f" = '{d.json_types['array'][0]}' AND {cond}"
        )
        if agg.func == "top":  # the latest of the most frequent, items by their place
            key = _item_key(d, v)
            sql = (
                f"SELECT b, v FROM (SELECT {_is(d, v, 'bool')} AS b, {v.val} AS v, at, seq,"
                f" {d.item_key('it')} AS ik, COUNT(*) OVER (PARTITION BY {key}) AS c"
                f" {filtered} AND ({key}) IS NOT NULL) AS t"
                " ORDER BY c DESC, at DESC, seq DESC, ik DESC LIMIT 1"
            )
        else:
            order = ITEM_ORDER.format(key=d.item_key("it"))
            sql = f"SELECT {', '.join(item_select(d, agg.func, v, order))} {filtered}"
        return AggregateStatement(self._runner, d, agg, d.placeholders(sql), rows_sql, const, ws)


def props_of(props: str | Mapping[str, Any] | None) -> Mapping[str, Any]:
    """An event's ``props`` column as a mapping (empty when absent or not an object):
    JSON text (SQLite), or what the driver decoded (PostgreSQL's ``jsonb``)."""
    if not props:
        return {}
    loaded = json.loads(props) if isinstance(props, str) else props
    return loaded if isinstance(loaded, dict) else {}
