"""Static types of expressions, and the type errors that can be known before running.

Rules (``ANY`` — a profile or event value — goes with everything, and so does
``null``, whose comparisons are simply false at run time):

- literals have their own type; ``now`` is a timestamp; bare names, ``user.NAME`` and
  ``event.NAME`` are ``ANY``; ``last(E).at``/``first(E).at`` are timestamps, their
  other properties ``ANY``; functions and aggregates give the result of their
  signature (:mod:`journeyc.lang.builtins`);
- ``== !=`` need types that can be equal; ``< <= > >=`` and ``between`` need two
  numbers, strings, durations or timestamps;
- a stored value (a profile attribute, an event's property, ``min``/``max``/``top``
  of a property: :func:`is_stored_value`) is JSON and never a duration or a weekday:
  comparing one (``== != < <= > >= between in``) with a duration, or with a bare
  weekday word (``monday``, which reads a profile attribute), is an error. A time
  of day (``09:00``) is no expression at all: the parser says so;
- arithmetic: numbers with numbers; ``timestamp ± duration`` is a timestamp,
  ``timestamp - timestamp`` a duration, ``duration ± duration`` a duration,
  ``duration * number`` and ``duration / number`` a duration, ``duration / duration``
  a number; ``string + string`` joins the two strings; nothing else on strings, and
  no arithmetic on booleans, lists or events;
- ``in`` needs a list or a string on its right;
- a condition (``if``, ``where``, a segment) must be a boolean.
"""

from __future__ import annotations

from collections.abc import Iterator

from journeyc.lang import ast
from journeyc.lang.builtins import AGGREGATE_RESULTS, FUNCTIONS, Type
from journeyc.lang.depth import expr_children
from journeyc.lang.diagnostics import Diagnostic, did_you_mean, error

T = Type

# Types that take no part in a static verdict: they may hold anything at run time.
_OPEN = frozenset({T.ANY, T.NULL})
_ORDERED = frozenset({T.NUMBER, T.STRING, T.DURATION, T.TIMESTAMP})

_WORDS: dict[Type, str] = {
    T.ANY: "a value",
    T.NUMBER: "a number",
    T.STRING: "a string",
    T.BOOL: "true/false",
    T.DURATION: "a duration",
    T.TIMESTAMP: "a time (timestamp)",
    T.LIST: "a list",
    T.NULL: "null",
    T.EVENT: "an event",
}


def describe(t: Type) -> str:
    """A type in words: ``a duration``, ``true/false``."""
    return _WORDS[t]


def compatible(a: Type, b: Type) -> bool:
    """Whether values of the two types can ever be equal."""
    return a in _OPEN or b in _OPEN or a == b


def is_event_root(expr: ast.Expr) -> bool:
    """Whether ``expr`` is ``event`` or a path under it (``event.product.brand``)."""
    while isinstance(expr, ast.GetAttr):
        expr = expr.obj
    return isinstance(expr, ast.Name) and expr.name == "event"


def subexpressions(expr: ast.Expr, *, into_aggregates: bool = True) -> Iterator[ast.Expr]:
    """``expr`` and every expression inside it, depth first.

    With ``into_aggregates=False`` the ``where`` (and item value) of an aggregate is
    skipped: there ``event`` means each counted event, not the event in focus.
    """
    yield expr
    if isinstance(expr, ast.Aggregate) and not into_aggregates:
        return
    for child in expr_children(expr):
        yield from subexpressions(child, into_aggregates=into_aggregates)


def stray_items(expr: ast.Expr) -> list[ast.Name]:
    """The bare ``item`` names of ``expr`` outside ``any``/``all`` conditions and the
    item values and ``where`` of aggregates over list items: there ``item`` is a
    profile attribute, which is rarely what was meant. In source order."""
    found: list[ast.Name] = []
    todo: list[tuple[ast.Expr, bool]] = [(expr, False)]
    while todo:  # a loop, not recursion: expressions may nest deeply
        e, inside = todo.pop()
        if isinstance(e, ast.Name) and e.name == "item" and not inside:
            found.append(e)
        elif isinstance(e, ast.ItemTest):
            todo += [(e.items, inside), (e.cond, True)]
        elif isinstance(e, ast.Aggregate):
            over = e.item is not None
            todo += [(x, over) for x in (e.item, e.where) if x is not None]
        else:
            todo += [(c, inside) for c in expr_children(e)]
    return sorted(found, key=lambda n: n.span.start)


class TypeChecker:
    """Infers expression types, collecting ``type_error``, ``unknown_function`` and
    ``bad_call`` diagnostics in ``diagnostics``."""

    def __init__(self) -> None:
        self.diagnostics: list[Diagnostic] = []

    def condition(self, expr: ast.Expr, what: str) -> None:
        """Check an expression used as a condition (``what``: "an `if`", "a segment")."""
        t = self.infer(expr)
        if t not in _OPEN and t is not T.BOOL:
            self._type_error(
                f"{what} needs a condition that is true or false, not {describe(t)}",
                expr,
                f"this is {describe(t)}",
                hints=['compare it with something, e.g. `x > 0` or `x == "gold"`'],
            )

    def infer(self, expr: ast.Expr) -> Type:
        """The type of ``expr``; problems go to ``diagnostics``."""
        match expr:
            case ast.Number():
                return T.NUMBER
            case ast.String():
                return T.STRING
            case ast.Bool():
                return T.BOOL
            case ast.Null():
                return T.NULL
            case ast.Duration():
                return T.DURATION
            case ast.Name(name="now"):
                return T.TIMESTAMP
            case ast.Name():
                return T.ANY
            case ast.SegmentRef():
                return T.BOOL
            case ast.ListExpr(items=items):
                for item in items:
                    self.infer(item)
                return T.LIST
            case ast.GetAttr():
                return self._getattr(expr)
            case ast.Unary():
                return self._unary(expr)
            case ast.Binary():
                return self._binary(expr)
            case ast.Between():
                return self._between(expr)
            case ast.Call():
                return self._call(expr)
            case ast.Aggregate():
                if expr.item is not None:
                    self._item_value(expr, expr.item)
                if expr.where is not None:
                    self.condition(expr.where, f"the `where` of `{expr.func}`")
                return AGGREGATE_RESULTS[expr.func]
            case ast.ItemTest():
                self._item_list(expr)
                self.condition(expr.cond, f"the condition of `{expr.func}`")
                return T.BOOL
        raise AssertionError(f"unhandled expression {expr!r}")  # pragma: no cover

    # ------------------------------------------------------------ node kinds
    def _item_value(self, agg: ast.Aggregate, item: ast.Expr) -> None:
        """An item aggregate's value: numbers for ``sum``/``avg``, a value ``min``,
        ``max``, ``distinct`` and ``top`` can tell apart for the others."""
        t = self.infer(item)
        if agg.func in ("sum", "avg"):
            want: frozenset[Type] = frozenset({T.NUMBER})
        else:
            want = frozenset({T.NUMBER, T.STRING}) | (
                frozenset({T.BOOL}) if agg.func in ("distinct", "top") else frozenset()
            )
        if t not in _OPEN and t not in want:
            self._type_error(
                f"`{agg.func}` over items needs {' or '.join(sorted(describe(w) for w in want))} "
                f"for each item, not {describe(t)}",
                item,
                f"this is {describe(t)}",
                hints=[
                    "e.g. `item.price * item.quantity`"
                    if agg.func in ("sum", "avg")
                    else "e.g. `item.category`"
                ],
            )

    def _item_list(self, expr: ast.ItemTest) -> None:
        """The first argument of ``any``/``all`` must be able to hold a list."""
        t = self.infer(expr.items)
        if t not in _OPEN and t is not T.LIST:
            self._type_error(
                f"`{expr.func}` looks at the items of a list, not {describe(t)}",
                expr.items,
                f"this is {describe(t)}",
                hints=[f'e.g. `{expr.func}(event.products, item.category == "watches")`'],
            )

    def _getattr(self, expr: ast.GetAttr) -> Type:
        obj = self.infer(expr.obj)
        if obj is T.EVENT:
            return T.TIMESTAMP if expr.name == "at" else T.ANY
        if obj in _OPEN:
            return T.ANY
        self._type_error(
            f"{describe(obj)} has no property `{expr.name}`",
            expr,
            f"`.{expr.name}` of {describe(obj)}",
        )
        return T.ANY

    def _unary(self, expr: ast.Unary) -> Type:
        t = self.infer(expr.operand)
        if expr.op == "not":
            return T.BOOL
        if t in _OPEN or t in (T.NUMBER, T.DURATION):
            return t
        self._type_error(f"cannot negate {describe(t)}", expr, f"this is {describe(t)}")
        return T.ANY

    def _binary(self, expr: ast.Binary) -> Type:
        left, right = self.infer(expr.left), self.infer(expr.right)
        op = expr.op
        if op in ("and", "or"):
            return T.BOOL
        if op in ("==", "!="):
            if self._never_stored(expr, expr.left, left, expr.right, right):
                return T.BOOL
            if not compatible(left, right):
                self._mismatch(expr, left, right, "is never equal to")
            return T.BOOL
        if op in ("<", "<=", ">", ">="):
            if not self._never_stored(expr, expr.left, left, expr.right, right):
                self._ordered(expr, left, right)
            return T.BOOL
        if op in ("in", "not in"):
            if not self._never_stored_in(expr, left, right):
                self._membership(expr, left, right)
            return T.BOOL
        return self._arith(expr, left, right)

    def _ordered(self, expr: ast.Expr, left: Type, right: Type) -> bool:
        for t, side in ((left, "left"), (right, "right")):
            if t not in _OPEN and t not in _ORDERED:
                self._type_error(
                    f"{describe(t)} cannot be compared with `<`, `>` or `between`",
                    expr,
                    f"the {side} side is {describe(t)}",
                )
                return False
        if not compatible(left, right):
            self._mismatch(expr, left, right, "cannot be compared with")
            return False
        return True

    def _membership(self, expr: ast.Binary, left: Type, right: Type) -> None:
        if right not in _OPEN and right not in (T.LIST, T.STRING):
            self._type_error(
                f"`{expr.op}` needs a list or a string on its right, not {describe(right)}",
                expr.right,
                f"this is {describe(right)}",
                hints=['write a list: `lifecycle in ["new", "dormant"]`'],
            )
        elif right is T.STRING and left not in _OPEN and left is not T.STRING:
            self._type_error(
                f"only a string can be found in a string, not {describe(left)}",
                expr.left,
                f"this is {describe(left)}",
            )

    def _arith(self, expr: ast.Binary, left: Type, right: Type) -> Type:
        op = expr.op
        for t, node in ((left, expr.left), (right, expr.right)):
            if t in (T.BOOL, T.LIST, T.EVENT):
                self._type_error(
                    f"`{op}` does not work on {describe(t)}", node, f"this is {describe(t)}"
                )
                return T.ANY
        if left is T.NULL or right is T.NULL:
            return T.NULL
        if left is T.ANY or right is T.ANY:
            if T.STRING in (left, right) and op != "+":
                self._type_error(
                    f"`{op}` does not work on strings",
                    expr,
                    "one side is a string",
                )
            return T.ANY
        result = _ARITH.get((left, op, right))
        if result is None:
            self._type_error(
                f"`{op}` does not work between {describe(left)} and {describe(right)}",
                expr,
                f"{describe(left)} {op} {describe(right)}",
            )
            return T.ANY
        return result

    def _between(self, expr: ast.Between) -> Type:
        value, low, high = self.infer(expr.value), self.infer(expr.low), self.infer(expr.high)
        if self._never_stored(expr, expr.value, value, expr.low, low) or self._never_stored(
            expr, expr.value, value, expr.high, high
        ):
            return T.BOOL
        ordered = self._ordered(expr, value, low) and self._ordered(expr, value, high)
        if ordered and not compatible(low, high):
            self._type_error(
                f"the bounds of `between` do not match: {describe(low)} and {describe(high)}",
                expr,
                f"{describe(low)} and {describe(high)}",
            )
        return T.BOOL

    def _call(self, expr: ast.Call) -> Type:
        func = FUNCTIONS.get(expr.func)
        arg_types = [self.infer(a) for a in expr.args]
        if func is None:
            known = [*FUNCTIONS, *ast.AGGREGATES, *ast.ITEM_TESTS]
            self.diagnostics.append(
                error(
                    "unknown_function",
                    f"there is no function `{expr.func}`",
                    expr.span.head(len(expr.func)),
                    did_you_mean(expr.func, known) or "unknown function",
                    hints=[f"functions: {', '.join(sorted(known))}"],
                )
            )
            return T.ANY
        if len(expr.args) != len(func.params):
            n = len(func.params)
            self.diagnostics.append(
                error(
                    "bad_call",
                    f"`{func.name}` takes {n} argument{'s' if n != 1 else ''}, "
                    f"not {len(expr.args)}",
                    expr.span,
                    func.doc,
                )
            )
            return func.result
        if func.name == "exists" and not _is_path(expr.args[0]):
            self.diagnostics.append(
                error(
                    "bad_call",
                    "`exists` takes the name of an attribute, like `exists(email)`",
                    expr.args[0].span,
                    "not an attribute name",
                )
            )
        for arg, param, got in zip(expr.args, func.params, arg_types, strict=True):
            if param is not T.ANY and got not in _OPEN and got is not param:
                self._type_error(
                    f"`{func.name}` takes {describe(param)}, not {describe(got)}",
                    arg,
                    f"this is {describe(got)}",
                )
        if func.name == "contains" and arg_types[0] not in (*_OPEN, T.STRING, T.LIST):
            self._type_error(
                f"`contains` looks inside a string or a list, not {describe(arg_types[0])}",
                expr.args[0],
                f"this is {describe(arg_types[0])}",
            )
        return func.result

    # ------------------------------------------------------------ stored values
    def _never_stored(self, expr: ast.Expr, a: ast.Expr, ta: Type, b: ast.Expr, tb: Type) -> bool:
        """Report a comparison of a stored value (:func:`is_stored_value`) with what no
        stored value ever is: a duration, or a weekday written as a bare word. True
        when reported."""
        for value, other, t in ((a, b, tb), (b, a, ta)):
            if not is_stored_value(value):
                continue
            if t is T.DURATION:
                self._stored_vs_duration(expr, value)
                return True
            if _day_word(other) is not None:
                self._stored_vs_weekday(other)
                return True
        return False

    def _never_stored_in(self, expr: ast.Binary, left: Type, right: Type) -> bool:
        """:meth:`_never_stored` for ``in``/``not in``: a stored value looked for in a
        list of durations or bare weekdays, or a duration or weekday looked for in a
        stored value. True when reported."""
        if is_stored_value(expr.right):
            return self._never_stored(expr, expr.right, right, expr.left, left)
        if not (is_stored_value(expr.left) and isinstance(expr.right, ast.ListExpr)):
            return False
        for item in expr.right.items:
            if isinstance(item, ast.Duration):
                self._stored_vs_duration(expr, expr.left)
                return True
            if _day_word(item) is not None:
                self._stored_vs_weekday(item)
                return True
        return False

    def _stored_vs_duration(self, expr: ast.Expr, value: ast.Expr) -> None:
        self._type_error(
            f"{_stored_what(value)} is never a duration: this comparison can never hold",
            expr,
            "a stored value and a duration",
            detail=_STORED,
            hints=(
                "for the time since a timestamp, use `days_since(...)`, `hours_since(...)` "
                "or `minutes_since(...)`: `days_since(event.ordered_at) >= 2`",
                "for an amount of time held as a number, compare a number in its unit: "
                "`event.delay_s > 7200`",
            ),
        )

    def _stored_vs_weekday(self, word: ast.Expr) -> None:
        day = _day_word(word)
        self._type_error(
            f"a weekday (`{day}`) is not a value an expression can compare: "
            "no event or profile value is ever one",
            word,
            f"read as the profile attribute `{day}`",
            detail=_STORED + f"; a bare `{day}` reads the profile attribute of that name",
            hints=(
                f'if the value holds a day name as text, compare it with a string: `"{day}"`',
                "for the time since something, use `days_since(...)`, `hours_since(...)` "
                "or a number",
            ),
        )

    # ------------------------------------------------------------ reporting
    def _mismatch(self, expr: ast.Expr, left: Type, right: Type, verb: str) -> None:
        units = {left, right} == {T.NUMBER, T.DURATION}
        self._type_error(
            f"{describe(left)} {verb} {describe(right)}",
            expr,
            f"{describe(left)} and {describe(right)}",
            hints=(
                "`days_since(...)`, `hours_since(...)` and `minutes_since(...)` count "
                "whole units: compare them with a number (`hours_since(x) >= 2`, not `2h`)",
            )
            if units
            else (),
        )

    def _type_error(
        self,
        summary: str,
        expr: ast.Expr,
        label: str,
        hints: tuple[str, ...] | list[str] = (),
        detail: str = "",
    ) -> None:
        self.diagnostics.append(
            error("type_error", summary, expr.span, label, detail=detail, hints=hints)
        )


_STORED = (
    "event and profile values are JSON: numbers, strings, true/false, lists and "
    "objects, with times as ISO-8601 strings"
)

# Aggregates whose value is a property's value as stored.
_STORED_AGGREGATES = frozenset({"min", "max", "top"})


def is_stored_value(expr: ast.Expr) -> bool:
    """Whether ``expr`` reads a value as the store holds it, which at run time is
    never a duration: a profile attribute (``lifecycle``, ``user.NAME``), a path
    under ``event`` or a list item, a property of ``last(E)``/``first(E)``, ``min``,
    ``max`` or ``top`` of a property, and the negation of one of these. Arithmetic
    is not one (``now - event.at`` is a duration)."""
    while isinstance(expr, ast.Unary) and expr.op == "-":
        expr = expr.operand
    if isinstance(expr, ast.Aggregate):
        return expr.func in _STORED_AGGREGATES and expr.item is None
    root: ast.Expr = expr
    while isinstance(root, ast.GetAttr):
        root = root.obj
    if isinstance(root, ast.Name):
        return root.name != "now"
    return (
        root is not expr
        and isinstance(root, ast.Aggregate)
        and root.func in ("last", "first")
        and not (isinstance(expr, ast.GetAttr) and expr.obj is root and expr.name == "at")
    )


def _day_word(expr: ast.Expr) -> str | None:
    """The weekday a bare name spells (``monday``, ``weekend``), or None."""
    if isinstance(expr, ast.Name) and expr.name in ast.DAY_WORDS:
        return expr.name
    return None


def _stored_what(expr: ast.Expr) -> str:
    """What a stored value is, in words: "`event.delay` (an event value)"."""
    text = _show(expr)
    root = expr
    while isinstance(root, ast.Unary | ast.GetAttr):
        root = root.operand if isinstance(root, ast.Unary) else root.obj
    name = root.name if isinstance(root, ast.Name) else None
    if name is None:
        kind = "an event property"  # of an aggregate
    elif name == "event":
        kind = "an event value"
    elif name == "item":
        kind = "a list item's value"
    else:
        kind = "a profile value"
    return f"`{text}` ({kind})" if text else kind


def _show(expr: ast.Expr) -> str:
    """A stored value's expression as written (canonically); "" when it is long."""
    if isinstance(expr, ast.Name):
        return expr.name
    if isinstance(expr, ast.GetAttr):
        inner = _show(expr.obj)
        return f"{inner}.{expr.name}" if inner else ""
    if isinstance(expr, ast.Unary) and expr.op == "-":
        inner = _show(expr.operand)
        return f"-{inner}" if inner else ""
    if isinstance(expr, ast.Aggregate) and not expr.where and not expr.within:
        return f"{expr.func}({'.'.join((expr.event, *expr.prop))})"
    return ""


def _is_path(expr: ast.Expr) -> bool:
    while isinstance(expr, ast.GetAttr):
        expr = expr.obj
    return isinstance(expr, ast.Name) and expr.name != "now"


_ARITH: dict[tuple[Type, str, Type], Type] = {
    **{(T.NUMBER, op, T.NUMBER): T.NUMBER for op in "+-*/"},
    (T.STRING, "+", T.STRING): T.STRING,
    (T.TIMESTAMP, "+", T.DURATION): T.TIMESTAMP,
    (T.DURATION, "+", T.TIMESTAMP): T.TIMESTAMP,
    (T.TIMESTAMP, "-", T.DURATION): T.TIMESTAMP,
    (T.TIMESTAMP, "-", T.TIMESTAMP): T.DURATION,
    (T.DURATION, "+", T.DURATION): T.DURATION,
    (T.DURATION, "-", T.DURATION): T.DURATION,
    (T.DURATION, "*", T.NUMBER): T.DURATION,
    (T.NUMBER, "*", T.DURATION): T.DURATION,
    (T.DURATION, "/", T.NUMBER): T.DURATION,
    (T.DURATION, "/", T.DURATION): T.NUMBER,
}
