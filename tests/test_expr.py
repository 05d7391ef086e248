"""Expressions from source text to values: every operator, function and null rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from journeyc.compile import ir
from journeyc.compile.lower import lower_expr
from journeyc.engine.aggregates import ListAggregates, LoggedEvent
from journeyc.engine.expr import (
    CompileError,
    EventView,
    MissingContextError,
    Scope,
    compile_expr,
    compile_predicate,
)
from journeyc.lang import ast
from journeyc.lang.parser import parse_source

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ORDER_AT = datetime(2026, 2, 20, 9, 30, tzinfo=UTC)

PROFILE: dict[str, Any] = {
    "push_enabled": True,
    "lifecycle": "dormant",
    "total_spend": 150.5,
    "orders": 3,
    "name": "Ann",
    "email": "ann@example.com",
    "nothing": None,
    "tags": ["vip", "beta", 7],
    "address": {"city": "Bangkok", "zip": None},
    "signed_up": "2026-01-01T00:00:00Z",
    "local_signup": "2026-01-01T07:00:00+07:00",
}
EVENT = EventView(
    "order_completed",
    ORDER_AT,
    {"amount": 42, "product": {"brand": "Rolex"}, "items": ["a", "b"]},
)
LOG = [
    LoggedEvent(1, "u1", "order_completed", ORDER_AT, {"amount": 42}),
    LoggedEvent(2, "u1", "order_completed", ORDER_AT - timedelta(days=30), {"amount": 8}),
]


def parse_expr(text: str) -> ir.Expr:
    result = parse_source(f"segment s = {text}\n", "t.journey")
    assert result.tree is not None, result.diagnostics
    seg = result.tree.declarations[0]
    assert isinstance(seg, ast.Segment)
    return lower_expr(seg.expr)


def scope(**kw: Any) -> Scope:
    base: dict[str, Any] = {
        "now": NOW,
        "profile": PROFILE,
        "event": EVENT,
        "aggregates": ListAggregates(LOG),
        "segments": lambda name, _: name == "vip",
        "user_id": "u1",
    }
    return Scope(**(base | kw))


def evaluate(text: str, **kw: Any) -> Any:
    return compile_expr(parse_expr(text))(scope(**kw))


CASES: list[tuple[str, Any]] = [
    # literals and arithmetic
    ("1 + 2", 3),
    ("7 / 2", 3.5),
    ("2 * 3.5", 7.0),
    ("5 - 7", -2),
    ("-3", -3),
    ("-(2 - 5)", 3),
    ("1 / 0", None),
    ('"a" + "b"', "ab"),
    ('"a" + 1', None),
    ('1 + "a"', None),
    ("true + 1", None),
    ("false * 2", None),
    ('-"x"', None),
    ("-true", None),
    ('"a" * 3', None),
    ('"6" / 2', None),
    ("2 * 1d == 2d", True),
    ("1d * 2 == 2d", True),
    ("1d / 2 == 12h", True),
    ("1d / 1h", 24.0),
    ("1d / 0", None),
    ("1h30m + 30m == 2h", True),
    ("1d - 1h == 23h", True),
    ("-1d < 0s", True),
    ("1d + 1", None),
    # arithmetic with null
    ("null + 1", None),
    ("1 + missing", None),
    ("missing - missing", None),
    ("nothing * 2", None),
    ("2 / nothing", None),
    ("-missing", None),
    ('null + "a"', None),
    ("now + null", None),
    # equality
    ("1 == 1.0", True),
    ("1 == 2", False),
    ('"a" == "a"', True),
    ('"1" == 1', False),
    ("true == true", True),
    ("true == 1", False),
    ("false == 0", False),
    ("null == null", True),
    ("missing == null", True),
    ("nothing == missing", True),
    ("missing == 0", False),
    ('missing == ""', False),
    ("missing == false", False),
    ("null != 5", True),
    ("missing != 5", True),
    ("null != null", False),
    ("5 != 5.0", False),
    ('tags == ["vip", "beta", 7.0]', True),
    ('tags == ["vip", "beta"]', False),
    ('[1, "a"] == [1.0, "a"]', True),
    ("[true] == [1]", False),
    ("address == address", True),
    # ordering
    ("1 < 2", True),
    ("2 <= 2", True),
    ("3 > 2.5", True),
    ("2 >= 3", False),
    ('"a" < "b"', True),
    ('"B" < "a"', True),
    ('"10" < 9', False),
    ('9 < "10"', False),
    ("true > false", False),
    ("false < true", False),
    ("missing < 5", False),
    ("missing > 5", False),
    ("missing <= 5", False),
    ("missing >= 5", False),
    ("5 > null", False),
    ("null <= null", False),
    ("null >= null", False),
    ("[1] < [2]", False),
    ("1h < 1d", True),
    ("1h < 5", False),
    ("total_spend >= 100", True),
    ("orders > 2.5", True),
    # in / not in
    ('"a" in ["a", "b"]', True),
    ('"c" in ["a", "b"]', False),
    ("1 in [1.0, 2]", True),
    ("1.0 in [1]", True),
    ("true in [1]", False),
    ("1 in [true]", False),
    ("null in [null]", False),
    ("missing in [null, 1]", False),
    ('missing in ["x"]', False),
    ('missing not in ["x"]', True),
    ('"x" not in ["x"]', False),
    ('"x" in missing', False),
    ('"x" not in missing', True),
    ('"ell" in "hello"', True),
    ('"" in "hello"', True),
    ('"z" in "hello"', False),
    ('1 in "1"', False),
    ("1 in 1", False),
    ('lifecycle in ["new", "dormant"]', True),
    ('lifecycle not in ["new", "dormant"]', False),
    ('"vip" in tags', True),
    ("7 in tags", True),
    ('"7" in tags', False),
    ('"x" in []', False),
    ("[1] in [[1], 2]", True),
    ('now in ["2026-03-01T12:00:00Z"]', True),
    # and / or / not, truthiness
    ('1 and "x"', True),
    ('0 or ""', False),
    ("null or 1", True),
    ("null and true", False),
    ("true and true and false", False),
    ("false or false or 3", True),
    ("not null", True),
    ("not missing", True),
    ("not 0", True),
    ("not 0.5", False),
    ('not ""', True),
    ('not "x"', False),
    ("not []", True),
    ("not [0]", False),
    ("not 0s", True),
    ("not address", False),
    ('push_enabled and lifecycle == "dormant" and total_spend >= 100', True),
    ("push_enabled and not push_enabled", False),
    ("missing or nothing or 0 or push_enabled", True),
    # between
    ("5 between 1 and 10", True),
    ("1 between 1 and 10", True),
    ("10 between 1 and 10", True),
    ("11 between 1 and 10", False),
    ("missing between 1 and 10", False),
    ("5 between missing and 10", False),
    ('"b" between "a" and "c"', True),
    ("not 11 between 1 and 10", True),
    ("now between now - 1d and now + 1d", True),
    # timestamps and ISO strings
    ('now > "2026-01-01T00:00:00Z"', True),
    ('"2026-01-01T00:00:00Z" < now', True),
    ('now == "2026-03-01T12:00:00+00:00"', True),
    ('now == "2026-03-01T19:00:00+07:00"', True),
    ('now != "2026-03-01T12:00:01Z"', True),
    ('now > "not a date"', False),
    ('now == "not a date"', False),
    ("now > 5", False),
    ("now - 1d < now", True),
    ("now + 1h > now", True),
    ("1h + now > now", True),
    ("signed_up + 1d > signed_up", True),
    ('signed_up + 1d == "2026-01-02T00:00:00Z"', True),
    ("signed_up == local_signup", False),
    ("signed_up + 0s == local_signup", True),
    ("now - signed_up == 59d + 12h", True),
    ("signed_up - local_signup == 0s", True),
    ('"garbage" + 1d', None),
    ("now - now == 0s", True),
    ("now + 1", None),
    ("now - true", None),
    # functions
    ("days_since(signed_up)", 59),
    ('days_since("2026-02-28T13:00:00Z")', 0),
    ('hours_since("2026-02-28T13:00:00Z")', 23),
    ('minutes_since("2026-03-01T11:00:30Z")', 59),
    ('days_since("2026-03-02T00:00:00Z")', -1),
    ('days_since("2026-02-01")', 28),
    ("days_since(now - 3d)", 3),
    ("days_since(null)", None),
    ("days_since(missing)", None),
    ('days_since("garbage")', None),
    ("days_since(5)", None),
    ("days_since(true)", None),
    ("days_since(event.at)", 9),
    ("exists(email)", True),
    ("exists(missing)", False),
    ("exists(nothing)", False),
    ("exists(null)", False),
    ("exists(0)", True),
    ("exists(address.zip)", False),
    ('lower("AbC")', "abc"),
    ("upper(name)", "ANN"),
    ("lower(null)", None),
    ("upper(missing)", None),
    ("lower(5)", None),
    ('contains("hello", "ell")', True),
    ('contains("hello", "z")', False),
    ('contains(tags, "vip")', True),
    ("contains(tags, 7.0)", True),
    ('contains(null, "x")', None),
    ("contains(tags, null)", None),
    ("contains(5, 5)", False),
    # paths
    ("user.address.city", "Bangkok"),
    ("address.city", "Bangkok"),
    ("user.name", "Ann"),
    ("address.zip", None),
    ("address.zip.code", None),
    ("missing.x.y", None),
    ("name.x", None),
    ("tags.x", None),
    ("event.amount", 42),
    ("event.product.brand", "Rolex"),
    ("event.product.brand.x", None),
    ("event.missing.x", None),
    ("event.at", ORDER_AT),
    ("event.at.x", None),
    ("event.items", ["a", "b"]),
    ("event.amount * 2", 84),
    # aggregates (ListAggregates) and paths through them
    ("count(order_completed)", 2),
    ("sum(order_completed.amount)", 50),
    ("last(order_completed).at", ORDER_AT),
    ("last(order_completed).amount", 42),
    ("first(order_completed).amount", 8),
    ("days_since(last(order_completed).at)", 9),
    ("last(never_happened)", None),
    ("last(never_happened).at", None),
    ("days_since(last(never_happened).at)", None),
    ("days_since(last(never_happened).at) >= 180", False),
    ("count(order_completed where event.amount > 10)", 1),
    ("count(order_completed where event.amount > total_spend)", 0),
    # segments
    ("segment vip", True),
    ("segment other", False),
    ("not segment other", True),
]


@pytest.mark.parametrize(("text", "expected"), CASES, ids=[c[0] for c in CASES])
def test_expression_value(text: str, expected: Any) -> None:
    got = evaluate(text)
    assert got == expected
    # 1 == 1.0 == True in Python: the type must match as well.
    assert type(got) is type(expected)


@pytest.mark.parametrize(("text", "expected"), CASES, ids=[c[0] for c in CASES])
def test_predicate_is_truthiness(text: str, expected: Any) -> None:
    got = compile_predicate(parse_expr(text))(scope())
    assert got is bool(expected)


def test_event_at_prefers_a_property_named_at() -> None:
    ev = EventView("x", ORDER_AT, {"at": "somewhere"})
    assert evaluate("event.at", event=ev) == "somewhere"
    assert evaluate("event.at", event=EventView("x", ORDER_AT, {})) == ORDER_AT


def test_event_paths_are_null_without_an_event() -> None:
    assert evaluate("event.amount", event=None) is None
    assert evaluate("event.at", event=None) is None
    assert evaluate("event", event=None) is None
    assert evaluate("event.amount == null", event=None) is True


def test_whole_profile_and_whole_event() -> None:
    assert evaluate("user") is PROFILE
    assert evaluate("event") is EVENT


def test_now_is_the_scope_clock() -> None:
    later = NOW + timedelta(days=2)
    assert evaluate("now", now=later) == later
    assert evaluate("days_since(signed_up)", now=later) == 61


def test_profile_values_that_are_timestamps_compare_with_iso_strings() -> None:
    profile = {"seen": datetime(2026, 1, 1, tzinfo=UTC), "naive": datetime(2026, 1, 1)}
    assert evaluate('seen == "2026-01-01T00:00:00Z"', profile=profile) is True
    assert evaluate("seen == naive", profile=profile) is True
    assert evaluate('naive < "2026-01-02"', profile=profile) is True


def test_constant_subtrees_are_folded_at_compile_time() -> None:
    # A folded expression never looks at its scope.
    fn = compile_expr(parse_expr('1 + 2 == 3 and "a" in ["a"] and lower("X") == "x"'))
    assert fn(None) is True  # type: ignore[arg-type]
    assert compile_expr(parse_expr("missing or true"))(scope()) is True
    assert compile_expr(parse_expr("false and missing"))(None) is False  # type: ignore[arg-type]


def test_now_dependent_functions_are_not_folded() -> None:
    fn = compile_expr(parse_expr('days_since("2026-02-28T12:00:00Z")'))
    assert fn(scope()) == 1
    assert fn(scope(now=NOW + timedelta(days=1))) == 2


def test_long_and_or_chains() -> None:
    text = " and ".join(f"orders >= {i}" for i in range(4)) + " and orders < 4"
    assert evaluate(text) is True
    assert evaluate(text.replace("< 4", "< 3")) is False
    ors = " or ".join(f"orders == {i}" for i in range(7))
    assert evaluate(ors) is True
    assert evaluate(ors, profile={"orders": 9}) is False


def test_aggregates_and_segments_need_their_sources() -> None:
    with pytest.raises(MissingContextError):
        evaluate("count(order_completed) > 0", aggregates=None)
    with pytest.raises(MissingContextError):
        evaluate("segment vip", segments=None)


def test_unknown_functions_and_bad_arity_are_compile_errors() -> None:
    with pytest.raises(CompileError):
        compile_expr(ir.Call(func="nope", args=[ir.Lit(value=1)]))
    with pytest.raises(CompileError):
        compile_expr(ir.Call(func="lower", args=[]))
    with pytest.raises(CompileError):
        compile_expr(ir.Op(op="+", args=[ir.Lit(value=1)]))


def test_profile_mapping_need_not_be_a_dict() -> None:
    from types import MappingProxyType

    assert evaluate("address.city", profile=MappingProxyType(PROFILE)) == "Bangkok"
