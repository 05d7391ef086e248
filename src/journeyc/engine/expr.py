"""Compiling expression IR into Python closures.

Each ``ir.Expr`` is compiled once, when a journey version or segment is loaded, into
nested closures: evaluating it is a few Python calls with no tree walk. Literal
subtrees are folded at compile time, and the shapes conditions are made of
(``attr == literal``, ``attr in [literals]``, ``attr >= number``, and/or chains) get
closures of their own that test the common types inline and hand anything unusual
to the general rules of :mod:`journeyc.engine.values`, so the fast paths never
change a result.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeAlias

from journeyc.compile import ir
from journeyc.compile.ir import free_event_refs, free_item_refs
from journeyc.engine import values as vals
from journeyc.engine.values import EventView

__all__ = [
    "AggregateSource",
    "CompileError",
    "Compiled",
    "EventView",
    "MissingContextError",
    "Predicate",
    "Scope",
    "compile_expr",
    "compile_predicate",
    "free_event_refs",
    "free_item_refs",
    "item_scope",
]


class AggregateSource(Protocol):
    """Answers the aggregates of compiled expressions for ``scope.user_id``."""

    def value(self, agg: ir.Agg, key: str, scope: Scope) -> Any:
        """The value of ``agg`` at ``scope.now``; ``key`` identifies ``agg`` (equal
        aggregates have equal keys), so a source can cache what it builds for it."""
        ...


@dataclass(slots=True)
class Scope:
    """What an expression is evaluated against.

    ``event`` is the event in focus (None for segment and scheduled entries);
    ``aggregates`` answers ``count(…)`` and kin, ``segments`` answers
    ``segment NAME`` (called with the name and the scope it is asked in); each may
    be None when the expression needs neither. ``item`` is the list item in focus
    inside an item aggregate and ``any``/``all``.
    """

    now: datetime
    profile: Mapping[str, Any] = field(default_factory=dict)
    event: EventView | None = None
    aggregates: AggregateSource | None = None
    segments: Callable[[str, Scope], bool] | None = None
    user_id: str = ""
    item: Any = None


Compiled: TypeAlias = Callable[[Scope], Any]
Predicate: TypeAlias = Callable[[Scope], bool]


class CompileError(ValueError):
    """The IR asks for something the engine does not know (a bug upstream: the
    checker rejects such sources)."""


class MissingContextError(RuntimeError):
    """An expression used aggregates or segments but the scope provides none."""


@dataclass(frozen=True, slots=True)
class _Node:
    """A compiled subtree: its closure, whether it always returns a bool, and its
    value when it is a constant."""

    fn: Compiled
    is_bool: bool = False
    const: bool = False
    value: Any = None
    attr: str | None = None  # set for a one-name profile attribute, read inline by leaves


def _constant(value: Any) -> _Node:
    def f(s: Scope) -> Any:
        return value

    return _Node(f, is_bool=isinstance(value, bool), const=True, value=value)


def _fold_if_constant(node: _Node, *children: _Node) -> _Node:
    """A node whose children are all constants, and which does not read the scope
    itself, is a constant."""
    if all(c.const for c in children):
        return _constant(node.fn(_NO_SCOPE))  # type: ignore[arg-type]
    return node


_NO_SCOPE = None


def compile_expr(e: ir.Expr) -> Compiled:
    """Compile ``e`` once into a function of a :class:`Scope` giving its value."""
    return _compile(e).fn


def compile_predicate(e: ir.Expr) -> Predicate:
    """Compile ``e`` once into a function of a :class:`Scope` giving its truthiness."""
    node = _compile(e)
    if node.is_bool:
        return node.fn
    f = node.fn

    def pred(s: Scope) -> bool:
        return bool(f(s))

    return pred


# ---------------------------------------------------------------- dispatch


def _compile(e: ir.Expr) -> _Node:
    if isinstance(e, ir.Lit):
        return _constant(e.value)
    if isinstance(e, ir.Dur):
        return _constant(timedelta(seconds=e.seconds))
    if isinstance(e, ir.Attr):
        return _Node(_attr(e.path), attr=e.path[0] if len(e.path) == 1 else None)
    if isinstance(e, ir.EventRef):
        return _Node(_event_ref(e.path))
    if isinstance(e, ir.Now):
        return _Node(_now)
    if isinstance(e, ir.Get):
        return _get(e)
    if isinstance(e, ir.ListE):
        return _list(e)
    if isinstance(e, ir.Op):
        return _op(e)
    if isinstance(e, ir.Call):
        return _call(e)
    if isinstance(e, ir.Agg):
        return _Node(_agg(e))
    if isinstance(e, ir.Seg):
        return _Node(_seg(e.name), is_bool=True)
    if isinstance(e, ir.ItemRef):
        return _Node(_item_ref(e.path))
    if isinstance(e, ir.Each):
        return _each(e)
    raise CompileError(f"unknown expression {e!r}")


def _now(s: Scope) -> Any:
    return s.now


def _attr(path: list[str]) -> Compiled:
    if not path:

        def whole(s: Scope) -> Any:
            return s.profile

        return whole
    first, rest = path[0], tuple(path[1:])
    if not rest:

        def one(s: Scope) -> Any:
            return s.profile.get(first)

        return one

    def deep(s: Scope) -> Any:
        return vals.get_path(s.profile.get(first), rest)

    return deep


def _event_ref(path: list[str]) -> Compiled:
    if not path:

        def whole(s: Scope) -> Any:
            return s.event

        return whole
    if len(path) == 1 and path[0] != "at":
        name = path[0]

        def prop(s: Scope) -> Any:
            ev = s.event
            return None if ev is None else ev.props.get(name)

        return prop
    steps = tuple(path)

    def deep(s: Scope) -> Any:
        return vals.get_path(s.event, steps)

    return deep


def _item_ref(path: list[str]) -> Compiled:
    steps = tuple(path)

    def item(s: Scope) -> Any:
        return vals.get_path(s.item, steps)

    return item


def item_scope(scope: Scope, event: EventView | None, item: Any) -> Scope:
    """``scope`` with ``event`` and ``item`` in focus (an item aggregate's value and
    ``where``, the condition of ``any``/``all``)."""
    return Scope(
        now=scope.now,
        profile=scope.profile,
        event=event,
        aggregates=scope.aggregates,
        segments=scope.segments,
        user_id=scope.user_id,
        item=item,
    )


def _each(e: ir.Each) -> _Node:
    """``any(LIST, COND)`` / ``all(LIST, COND)``: null unless LIST is a list."""
    items = _compile(e.items).fn
    cond = _as_bool(_compile(e.cond))
    want_all = e.func == "all"

    def each(s: Scope) -> Any:
        xs = items(s)
        if not isinstance(xs, list):
            return None
        ev = s.event
        for x in xs:
            if cond(item_scope(s, ev, x)) is not want_all:
                return not want_all
        return want_all

    return _Node(each)


def _get(e: ir.Get) -> _Node:
    obj = _compile(e.obj)
    f, name = obj.fn, e.name

    def get(s: Scope) -> Any:
        return vals.get(f(s), name)

    return _fold_if_constant(_Node(get), obj)


def _list(e: ir.ListE) -> _Node:
    items = [_compile(i) for i in e.items]
    fns = tuple(i.fn for i in items)

    def make(s: Scope) -> Any:
        return [f(s) for f in fns]

    return _fold_if_constant(_Node(make), *items)


def _agg(e: ir.Agg) -> Compiled:
    key = e.model_dump_json()

    def agg(s: Scope) -> Any:
        src = s.aggregates
        if src is None:
            raise MissingContextError(f"`{e.func}({e.event} …)` needs an aggregate source")
        return src.value(e, key, s)

    return agg


def _seg(name: str) -> Compiled:
    def seg(s: Scope) -> bool:
        member = s.segments
        if member is None:
            raise MissingContextError(f"`segment {name}` needs a segment resolver")
        return bool(member(name, s))

    return seg


# ---------------------------------------------------------------- functions

_NOW_FUNCS: dict[str, Callable[[datetime, object], Any]] = {
    "days_since": vals.days_since,
    "hours_since": vals.hours_since,
    "minutes_since": vals.minutes_since,
}
_UNARY_FUNCS: dict[str, Callable[[object], Any]] = {
    "exists": vals.exists,
    "lower": vals.lower,
    "upper": vals.upper,
}


def _call(e: ir.Call) -> _Node:
    args = [_compile(a) for a in e.args]
    arity = 2 if e.func == "contains" else 1
    if len(args) != arity:
        raise CompileError(f"{e.func}() takes {arity} argument(s), got {len(args)}")
    a = args[0].fn
    if e.func in _NOW_FUNCS:
        since = _NOW_FUNCS[e.func]

        def f_since(s: Scope) -> Any:
            return since(s.now, a(s))

        return _Node(f_since)
    if e.func in _UNARY_FUNCS:
        fn = _UNARY_FUNCS[e.func]

        def f_unary(s: Scope) -> Any:
            return fn(a(s))

        return _fold_if_constant(_Node(f_unary, is_bool=e.func == "exists"), *args)
    if e.func == "contains":
        b = args[1].fn

        def f_contains(s: Scope) -> Any:
            return vals.contains(a(s), b(s))

        return _fold_if_constant(_Node(f_contains), *args)
    raise CompileError(f"unknown function {e.func}()")


# ---------------------------------------------------------------- operators

_BINARY = vals.BINARY
_COMPARISONS = frozenset({"==", "!=", "<", "<=", ">", ">=", "in", "not in"})
_FLIPPED = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}
_NATIVE_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def _op(e: ir.Op) -> _Node:
    op = e.op
    if op in ("and", "or"):
        return _bool_chain(op, _flatten(op, e))
    args = [_compile(a) for a in e.args]
    want = 3 if op == "between" else 1 if op in ("not", "neg") else 2
    if len(args) != want:
        raise CompileError(f"`{op}` takes {want} operand(s), got {len(args)}")
    if op == "not":
        return _not(args[0])
    if op == "neg":
        a = args[0].fn

        def neg(s: Scope) -> Any:
            return vals.neg(a(s))

        return _fold_if_constant(_Node(neg), *args)
    if op == "between":
        return _between(*args)
    left, right = args
    if op in _COMPARISONS:
        if not left.const and right.const:
            return _compare_const(op, left, right.value)
        if left.const and not right.const and op in _FLIPPED:
            return _compare_const(_FLIPPED[op], right, left.value)
    return _binary(op, left, right)


def _flatten(op: str, e: ir.Expr) -> list[_Node]:
    if isinstance(e, ir.Op) and e.op == op:
        return [n for a in e.args for n in _flatten(op, a)]
    return [_compile(e)]


def _as_bool(n: _Node) -> Predicate:
    if n.is_bool:
        return n.fn
    f = n.fn

    def b(s: Scope) -> bool:
        return bool(f(s))

    return b


def _bool_chain(op: str, nodes: list[_Node]) -> _Node:
    """``a and b and …`` (or ``or``), evaluated left to right, short-circuiting."""
    is_and = op == "and"
    # Expressions are pure, so a constant operand decides (or drops out of) the chain
    # wherever it stands.
    live: list[_Node] = []
    for n in nodes:
        if not n.const:
            live.append(n)
        elif bool(n.value) != is_and:
            return _constant(not is_and)
    if not live:
        return _constant(is_and)
    fns = [_as_bool(n) for n in live]
    if len(fns) == 1:
        return _Node(fns[0], is_bool=True)
    if len(fns) == 2:
        a, b = fns
        if is_and:

            def and2(s: Scope) -> bool:
                return a(s) and b(s)

            return _Node(and2, is_bool=True)

        def or2(s: Scope) -> bool:
            return a(s) or b(s)

        return _Node(or2, is_bool=True)
    if len(fns) == 3:
        a, b, c = fns
        if is_and:

            def and3(s: Scope) -> bool:
                return a(s) and b(s) and c(s)

            return _Node(and3, is_bool=True)

        def or3(s: Scope) -> bool:
            return a(s) or b(s) or c(s)

        return _Node(or3, is_bool=True)
    first, rest = _bool_chain(op, live[:2]), _bool_chain(op, live[2:])
    return _bool_chain(op, [first, rest])


def _not(a: _Node) -> _Node:
    f = a.fn

    def not_(s: Scope) -> bool:
        return not f(s)

    return _fold_if_constant(_Node(not_, is_bool=True), a)


def _between(v: _Node, lo: _Node, hi: _Node) -> _Node:
    fv, flo, fhi = v.fn, lo.fn, hi.fn

    def between(s: Scope) -> bool:
        x = fv(s)
        return vals.ge(x, flo(s)) and vals.le(x, fhi(s))

    return _fold_if_constant(_Node(between, is_bool=True), v, lo, hi)


def _binary(op: str, left: _Node, right: _Node) -> _Node:
    fn = _BINARY[op]
    a, b = left.fn, right.fn

    def binary(s: Scope) -> Any:
        return fn(a(s), b(s))

    return _fold_if_constant(_Node(binary, is_bool=op in _COMPARISONS), left, right)


def _is_plain_number(v: object) -> bool:
    return v.__class__ is int or v.__class__ is float


def _compare_const(op: str, x: _Node, lit: Any) -> _Node:
    """``x OP literal``: the type the literal implies is tested inline; any other
    value goes through the general rule."""
    if op in ("==", "!="):
        pred = _eq_const(x, lit)
        if op == "==":
            return _Node(pred, is_bool=True)

        def ne(s: Scope) -> bool:
            return not pred(s)

        return _Node(ne, is_bool=True)
    if op in _NATIVE_ORDER and _is_plain_number(lit):
        return _Node(_order_num(op, x, lit), is_bool=True)
    if op in ("in", "not in"):
        pred = _in_const(x, lit)
        if op == "in":
            return _Node(pred, is_bool=True)

        def not_in(s: Scope) -> bool:
            return not pred(s)

        return _Node(not_in, is_bool=True)
    general, f = _BINARY[op], x.fn

    def compare(s: Scope) -> bool:
        return general(f(s), lit)  # type: ignore[no-any-return]

    return _Node(compare, is_bool=True)


# The leaves below come in pairs: one reads a profile attribute inline (the common
# case, one call fewer per leaf), the other any compiled operand.


def _order_num(op: str, x: _Node, lit: int | float) -> Predicate:
    native, general, f, name = _NATIVE_ORDER[op], _BINARY[op], x.fn, x.attr
    if name is not None:

        def order_attr(s: Scope) -> bool:
            v = s.profile.get(name)
            c = v.__class__
            if c is int or c is float:
                return native(v, lit)
            return general(v, lit)  # type: ignore[no-any-return]

        return order_attr

    def order_num(s: Scope) -> bool:
        v = f(s)
        c = v.__class__
        if c is int or c is float:
            return native(v, lit)
        return general(v, lit)  # type: ignore[no-any-return]

    return order_num


def _eq_const(x: _Node, lit: Any) -> Predicate:
    f, name = x.fn, x.attr
    if lit is None or lit is True or lit is False:
        if name is not None:

            def is_attr(s: Scope) -> bool:
                return s.profile.get(name) is lit

            return is_attr

        def is_(s: Scope) -> bool:
            return f(s) is lit

        return is_
    if lit.__class__ is str or _is_plain_number(lit):
        t1, t2 = (int, float) if _is_plain_number(lit) else (str, str)
        if name is not None:

            def eq_attr(s: Scope) -> bool:
                v = s.profile.get(name)
                c = v.__class__
                if c is t1 or c is t2:
                    return v == lit  # type: ignore[no-any-return]
                return vals.eq(v, lit)

            return eq_attr

        def eq_scalar(s: Scope) -> bool:
            v = f(s)
            c = v.__class__
            if c is t1 or c is t2:
                return v == lit  # type: ignore[no-any-return]
            return vals.eq(v, lit)

        return eq_scalar

    def eq(s: Scope) -> bool:
        return vals.eq(f(s), lit)

    return eq


def _in_const(x: _Node, container: Any) -> Predicate:
    f, name = x.fn, x.attr
    members: frozenset[Any] | None = None
    t1: type = str
    t2: type = str
    if isinstance(container, list) and container:
        if all(i.__class__ is str for i in container):
            members, t1, t2 = frozenset(container), str, str
        elif all(_is_plain_number(i) for i in container):
            members, t1, t2 = frozenset(container), int, float
    if members is not None:
        if name is not None:

            def in_attr(s: Scope) -> bool:
                v = s.profile.get(name)
                c = v.__class__
                if c is t1 or c is t2:
                    return v in members
                return vals.in_(v, container)

            return in_attr

        def in_members(s: Scope) -> bool:
            v = f(s)
            c = v.__class__
            if c is t1 or c is t2:
                return v in members
            return vals.in_(v, container)

        return in_members
    if container.__class__ is str:

        def in_str(s: Scope) -> bool:
            v = f(s)
            if v.__class__ is str:
                return v in container
            return vals.in_(v, container)

        return in_str

    def in_(s: Scope) -> bool:
        return vals.in_(f(s), container)

    return in_
