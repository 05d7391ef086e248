"""Property tests of compiled expressions: the null rules, the identities the language
promises, and a differential test against a naive tree-walking interpreter.

The interpreter below walks the IR on every evaluation and applies the rules of
``journeyc.engine.values`` directly, with none of the compiler's constant folding,
and/or flattening or inline fast paths; the compiled closures must agree with it on
every expression and scope.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from journeyc.compile import ir
from journeyc.engine import values as vals
from journeyc.engine.expr import EventView, Scope, compile_expr

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
NAMES = ["a", "b", "c", "missing"]

# ---------------------------------------------------------------- values

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.integers(min_value=-3, max_value=3),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, -0.0, 1.0, 0.5, 2.5]),
    st.text(max_size=4),
    st.sampled_from(["", "a", "b", "ab", "1", "true", "null"]),
    st.sampled_from(
        ["2026-01-01T00:00:00Z", "2026-03-01T12:00:00+00:00", "2026-02-28", "2026-13-01"]
    ),
)
runtime_values = st.one_of(
    scalars,
    st.datetimes(
        min_value=datetime(1990, 1, 1), max_value=datetime(2060, 1, 1), timezones=st.just(UTC)
    ),
    st.timedeltas(min_value=timedelta(days=-400), max_value=timedelta(days=400)),
    st.lists(scalars, max_size=3),
    st.dictionaries(st.sampled_from(["x", "y", "at"]), scalars, max_size=2),
)
profiles = st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), runtime_values, max_size=4)
events = st.one_of(
    st.none(),
    st.builds(
        EventView,
        st.just("e"),
        st.just(NOW - timedelta(hours=1)),
        st.dictionaries(st.sampled_from(["p", "q", "at"]), runtime_values, max_size=3),
    ),
)

# ---------------------------------------------------------------- expressions

leaves = st.one_of(
    st.builds(ir.Lit, value=scalars),
    st.builds(ir.Dur, seconds=st.integers(min_value=-(10**7), max_value=10**7)),
    st.builds(ir.Attr, path=st.lists(st.sampled_from([*NAMES, "d", "x"]), min_size=1, max_size=2)),
    st.builds(ir.EventRef, path=st.lists(st.sampled_from(["p", "q", "at", "x"]), max_size=2)),
    st.just(ir.Now()),
)
BINARY_OPS = ["or", "and", "==", "!=", "<", "<=", ">", ">=", "in", "not in", "+", "-", "*", "/"]
FUNCS_1 = ["days_since", "hours_since", "minutes_since", "exists", "lower", "upper"]


def _extend(children: st.SearchStrategy[ir.Expr]) -> st.SearchStrategy[ir.Expr]:
    return st.one_of(
        st.builds(
            lambda op, a, b: ir.Op(op=op, args=[a, b]),
            st.sampled_from(BINARY_OPS),
            children,
            children,
        ),
        st.builds(
            lambda op, a, b, c: ir.Op(op=op, args=[a, b, c]),
            st.just("between"),
            children,
            children,
            children,
        ),
        st.builds(lambda op, a: ir.Op(op=op, args=[a]), st.sampled_from(["not", "neg"]), children),
        st.builds(lambda f, a: ir.Call(func=f, args=[a]), st.sampled_from(FUNCS_1), children),
        st.builds(lambda a, b: ir.Call(func="contains", args=[a, b]), children, children),
        st.builds(lambda o, n: ir.Get(obj=o, name=n), children, st.sampled_from(["x", "at", "p"])),
        st.builds(lambda items: ir.ListE(items=items), st.lists(children, max_size=3)),
    )


expressions = st.recursive(leaves, _extend, max_leaves=12)

_BIN = vals.BINARY


def interpret(e: ir.Expr, s: Scope) -> Any:
    """The naive reference: walk the tree on every evaluation."""
    if isinstance(e, ir.Lit):
        return e.value
    if isinstance(e, ir.Dur):
        return timedelta(seconds=e.seconds)
    if isinstance(e, ir.Attr):
        return vals.get_path(s.profile, e.path)
    if isinstance(e, ir.EventRef):
        return vals.get_path(s.event, e.path)
    if isinstance(e, ir.Now):
        return s.now
    if isinstance(e, ir.Get):
        return vals.get(interpret(e.obj, s), e.name)
    if isinstance(e, ir.ListE):
        return [interpret(i, s) for i in e.items]
    if isinstance(e, ir.Call):
        args = [interpret(a, s) for a in e.args]
        if e.func in ("days_since", "hours_since", "minutes_since"):
            return getattr(vals, e.func)(s.now, args[0])
        return getattr(vals, e.func)(*args)
    assert isinstance(e, ir.Op)
    args = [interpret(a, s) for a in e.args]
    if e.op == "and":
        return bool(args[0]) and bool(args[1])
    if e.op == "or":
        return bool(args[0]) or bool(args[1])
    if e.op == "not":
        return not args[0]
    if e.op == "neg":
        return vals.neg(args[0])
    if e.op == "between":
        return vals.ge(args[0], args[1]) and vals.le(args[0], args[2])
    return _BIN[e.op](args[0], args[1])


def same(a: Any, b: Any) -> bool:
    """Equal values of the same types (``1 == 1.0 == True`` in Python)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


def make_scope(profile: dict[str, Any], event: EventView | None = None) -> Scope:
    return Scope(now=NOW, profile=profile, event=event)


@given(st.lists(expressions, min_size=1, max_size=8), profiles, events)
def test_compiled_matches_naive_interpreter(
    exprs: list[ir.Expr], profile: dict[str, Any], event: EventView | None
) -> None:
    s = make_scope(profile, event)
    for e in exprs:
        assert same(compile_expr(e)(s), interpret(e, s)), e


# ---------------------------------------------------------------- null rules

ARITH = ["+", "-", "*", "/"]
ORDER = ["<", "<=", ">", ">="]
NULLS = [ir.Lit(value=None), ir.Attr(path=["missing"]), ir.Attr(path=["missing", "x"])]


def operand(v: Any) -> st.SearchStrategy[ir.Expr]:
    """``v`` as an attribute, or as a literal when it is one."""
    options: list[ir.Expr] = [ir.Attr(path=["a"])]
    if v is None or isinstance(v, bool | int | float | str):
        options.append(ir.Lit(value=v))
    return st.sampled_from(options)


@given(st.sampled_from(ARITH), runtime_values, st.sampled_from(NULLS), st.booleans(), st.data())
def test_arithmetic_with_null_is_null(
    op: str, v: Any, null: ir.Expr, null_first: bool, data: st.DataObject
) -> None:
    other = data.draw(operand(v))
    args = [null, other] if null_first else [other, null]
    assert compile_expr(ir.Op(op=op, args=args))(make_scope({"a": v})) is None
    assert compile_expr(ir.Op(op="neg", args=[null]))(make_scope({"a": v})) is None


@given(st.sampled_from([*ORDER, "in"]), runtime_values, st.sampled_from(NULLS), st.booleans())
def test_ordering_and_membership_with_null_are_false(
    op: str, v: Any, null: ir.Expr, null_first: bool
) -> None:
    other = ir.Attr(path=["a"])
    args = [null, other] if null_first else [other, null]
    assert compile_expr(ir.Op(op=op, args=args))(make_scope({"a": v})) is False


@given(runtime_values, st.sampled_from(NULLS))
def test_null_equals_only_null(v: Any, null: ir.Expr) -> None:
    s = make_scope({"a": v})
    for a, b in ([null, ir.Attr(path=["a"])], [ir.Attr(path=["a"]), null]):
        assert compile_expr(ir.Op(op="==", args=[a, b]))(s) is (v is None)
        assert compile_expr(ir.Op(op="!=", args=[a, b]))(s) is (v is not None)


@given(st.sampled_from(["days_since", "hours_since", "minutes_since", "lower", "upper"]))
def test_functions_given_null_return_null(func: str) -> None:
    for null in NULLS:
        assert compile_expr(ir.Call(func=func, args=[null]))(make_scope({})) is None
        assert compile_expr(ir.Call(func="exists", args=[null]))(make_scope({})) is False


@given(runtime_values, st.sampled_from(NULLS), st.booleans())
def test_contains_given_null_returns_null(v: Any, null: ir.Expr, null_first: bool) -> None:
    args = [null, ir.Attr(path=["a"])] if null_first else [ir.Attr(path=["a"]), null]
    assert compile_expr(ir.Call(func="contains", args=args))(make_scope({"a": v})) is None


# ---------------------------------------------------------------- identities


def _attr(n: str) -> ir.Expr:
    return ir.Attr(path=[n])


@given(runtime_values, runtime_values, runtime_values, st.data())
def test_between_is_two_comparisons(x: Any, lo: Any, hi: Any, data: st.DataObject) -> None:
    a, b, c = data.draw(operand(x)), _attr("b"), data.draw(operand(hi))
    s = make_scope({"a": x, "b": lo, "c": hi})
    between = ir.Op(op="between", args=[a, b, c])
    both = ir.Op(op="and", args=[ir.Op(op=">=", args=[a, b]), ir.Op(op="<=", args=[a, c])])
    assert compile_expr(between)(s) is compile_expr(both)(s)


@given(runtime_values, runtime_values, st.data())
def test_not_equal_is_not_equal(x: Any, y: Any, data: st.DataObject) -> None:
    a, b = data.draw(operand(x)), _attr("b")
    s = make_scope({"a": x, "b": y})
    ne = compile_expr(ir.Op(op="!=", args=[a, b]))(s)
    assert ne is compile_expr(ir.Op(op="not", args=[ir.Op(op="==", args=[a, b])]))(s)
    assert ne is compile_expr(ir.Op(op="!=", args=[b, a]))(s), "equality is symmetric"


@given(runtime_values, runtime_values, st.data())
def test_not_in_is_not_in(x: Any, y: Any, data: st.DataObject) -> None:
    a, b = _attr("a"), data.draw(operand(y))
    s = make_scope({"a": x, "b": y})
    not_in = compile_expr(ir.Op(op="not in", args=[a, b]))(s)
    assert not_in is compile_expr(ir.Op(op="not", args=[ir.Op(op="in", args=[a, b])]))(s)


@given(runtime_values, runtime_values, st.sampled_from(ORDER), st.data())
def test_orderings_mirror(x: Any, y: Any, op: str, data: st.DataObject) -> None:
    flipped = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}[op]
    a, b = data.draw(operand(x)), _attr("b")
    s = make_scope({"a": x, "b": y})
    assert compile_expr(ir.Op(op=op, args=[a, b]))(s) is compile_expr(
        ir.Op(op=flipped, args=[b, a])
    )(s)


@given(runtime_values)
def test_every_value_equals_itself(v: Any) -> None:
    s = make_scope({"a": v, "b": v})
    assert compile_expr(ir.Op(op="==", args=[_attr("a"), _attr("b")]))(s) is True


@given(st.sampled_from(["and", "or"]), runtime_values, runtime_values)
def test_and_or_return_booleans_by_truthiness(op: str, x: Any, y: Any) -> None:
    s = make_scope({"a": x, "b": y})
    got = compile_expr(ir.Op(op=op, args=[_attr("a"), _attr("b")]))(s)
    assert got is ((bool(x) and bool(y)) if op == "and" else (bool(x) or bool(y)))


COMPARISONS = ["==", "!=", "<", "<=", ">", ">=", "in", "not in"]
literal_lists = st.lists(scalars, max_size=3).map(
    lambda xs: ir.ListE(items=[ir.Lit(value=x) for x in xs])
)


@given(
    st.sampled_from(COMPARISONS),
    runtime_values,
    st.one_of(scalars.map(lambda v: ir.Lit(value=v)), literal_lists),
    st.sampled_from([["a"], ["d", "x"]]),
    st.booleans(),
)
def test_fast_paths_for_literals_follow_the_rules(
    op: str, v: Any, lit: ir.Expr, path: list[str], lit_first: bool
) -> None:
    """The specialised leaves (attribute or path against a literal) agree with the
    general rules whatever the attribute holds."""
    profile = {"a": v, "d": {"x": v}}
    target: ir.Expr = ir.Attr(path=path)
    args = [lit, target] if lit_first else [target, lit]
    s = make_scope(profile)
    literal = interpret(lit, s)
    expected = _BIN[op](*([literal, v] if lit_first else [v, literal]))
    assert compile_expr(ir.Op(op=op, args=args))(s) is expected
    # Through a computed operand (no inline attribute read) as well.
    wrapped = ir.Op(op="or", args=[ir.Lit(value=False), target])
    if not lit_first and op in ("==", "!=") and isinstance(lit, ir.Lit):
        got = compile_expr(ir.Op(op=op, args=[ir.Get(obj=ir.Attr(path=["d"]), name="x"), lit]))
        assert got(s) is expected
    assert isinstance(compile_expr(ir.Op(op=op, args=[wrapped, lit]))(s), bool)


TRICKY_VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    1,
    1.0,
    0.0,
    -1,
    2.5,
    2**64,
    "",
    "a",
    "b",
    "1",
    "true",
    "2026-03-01T12:00:00Z",
    "2026-03-01T12:00:00+00:00",
    NOW,
    timedelta(0),
    [1],
    ["a"],
    [None],
    {"x": 1},
]
TRICKY_LITERALS: list[Any] = [None, True, False, 0, 1, 1.0, 2.5, "", "a", "1", NOW.isoformat()]
TRICKY_LISTS: list[list[Any]] = [[], ["a", "b"], [1, 2.5], [1, "a"], [None], [True], ["1"]]


def test_fast_paths_exhaustively_on_tricky_values() -> None:
    """Every comparison, attribute (inline or not) against every tricky literal, on
    every tricky value, agrees with the general rules."""
    lits: list[tuple[ir.Expr, Any]] = [(ir.Lit(value=x), x) for x in TRICKY_LITERALS]
    lits += [(ir.ListE(items=[ir.Lit(value=x) for x in xs]), xs) for xs in TRICKY_LISTS]
    targets: list[ir.Expr] = [
        ir.Attr(path=["a"]),
        ir.Attr(path=["d", "x"]),
        ir.Get(obj=ir.Attr(path=["d"]), name="x"),
    ]
    compiled = {
        (op, i, j, first): compile_expr(
            ir.Op(op=op, args=[lit, target] if first else [target, lit])
        )
        for op in COMPARISONS
        for i, (lit, _) in enumerate(lits)
        for j, target in enumerate(targets)
        for first in (False, True)
    }
    for v in TRICKY_VALUES:
        s = make_scope({"a": v, "d": {"x": v}})
        for (op, i, _, first), fn in compiled.items():
            literal = lits[i][1]
            expected = _BIN[op](*([literal, v] if first else [v, literal]))
            assert fn(s) is expected, (op, v, literal, first)
