"""Runtime values of the expression language and the rules that combine them.

Values are plain Python objects: ``None`` is null; booleans; ``int``/``float``
numbers; strings; lists (or tuples); dicts; aware UTC ``datetime`` timestamps;
``timedelta`` durations; and :class:`EventView` records (the event in focus, or what
``last()``/``first()`` return).

The rules (LANGUAGE.md, "Expressions"):

- ``null == null`` is true; ``a != b`` is ``not (a == b)``, so ``null != 5`` is true;
  likewise ``a not in b`` is ``not (a in b)``.
- Every other comparison with null (``<``, ``>=``, ``in`` …) is false; ``not null``
  is true; arithmetic with null is null; a path through null is null; a function
  given null returns null, except ``exists``.
- Type mismatches never raise: a comparison is false, arithmetic is null.
- Booleans are not numbers (``true == 1`` is false, ``true + 1`` is null).
- ISO-8601 strings are read as timestamps where a timestamp is needed: compared
  with a timestamp, given to ``days_since``, added to or subtracted from a
  duration or a timestamp.

Every function here is total: whatever it is given, it returns a value.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

__all__ = [
    "DAY",
    "HOUR",
    "MINUTE",
    "EventView",
    "add",
    "contains",
    "days_since",
    "div",
    "eq",
    "exists",
    "ge",
    "get",
    "get_path",
    "gt",
    "hours_since",
    "in_",
    "is_number",
    "json_value",
    "le",
    "lower",
    "lt",
    "minutes_since",
    "mul",
    "ne",
    "neg",
    "not_in",
    "sub",
    "to_timestamp",
    "truthy",
    "upper",
]

DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)

_ARITH_ERRORS = (OverflowError, ValueError, ZeroDivisionError)


@dataclass(slots=True)
class EventView:
    """An event as expressions see it: ``.at`` is its time unless its properties hold
    an ``at`` of their own; any other ``.NAME`` reads its properties."""

    name: str
    at: datetime
    props: Mapping[str, Any] = field(default_factory=dict)


def is_number(v: object) -> bool:
    """Whether ``v`` is a number (booleans are not numbers)."""
    return isinstance(v, int | float) and not isinstance(v, bool)


@lru_cache(maxsize=4096)
def _parse_iso(s: str) -> datetime | None:
    try:
        t = datetime.fromisoformat(s)
    except ValueError:
        return None
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def to_timestamp(v: object) -> datetime | None:
    """``v`` as an aware UTC timestamp: a datetime (naive ones are UTC) or an ISO-8601
    string; None for anything else."""
    if isinstance(v, datetime):
        return v.replace(tzinfo=UTC) if v.tzinfo is None else v
    if isinstance(v, str):
        try:
            return _parse_iso(v)
        except OverflowError:
            return None
    return None


def truthy(v: object) -> bool:
    """Truthiness: null, false, zero, empty strings and lists are false."""
    return bool(v)


# ---------------------------------------------------------------- equality and order


def eq(a: object, b: object) -> bool:
    """``a == b``: null equals only null, booleans only booleans, numbers compare
    across int/float, timestamps with timestamps (or ISO strings), lists and dicts
    item by item; anything else of different types is unequal."""
    ca = a.__class__
    if ca is b.__class__ and (ca is str or ca is int or ca is float or ca is bool):
        return a == b
    if a is None or b is None:
        return a is b
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, datetime) or isinstance(b, datetime):
        ta, tb = to_timestamp(a), to_timestamp(b)
        return ta is not None and tb is not None and ta == tb
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    if isinstance(a, timedelta) and isinstance(b, timedelta):
        return a == b
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(eq(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(eq(a[k], b[k]) for k in a)
    if isinstance(a, EventView) and isinstance(b, EventView):
        return a.name == b.name and a.at == b.at and eq(a.props, b.props)
    return False


def ne(a: object, b: object) -> bool:
    """``a != b``, i.e. ``not (a == b)``: ``null != 5`` is true."""
    return not eq(a, b)


def _orderable(a: object, b: object) -> tuple[Any, Any] | None:
    """The pair to order ``a`` and ``b`` by, or None when they do not order."""
    if a is None or b is None or isinstance(a, bool) or isinstance(b, bool):
        return None
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a, b
    if isinstance(a, str) and isinstance(b, str):
        return a, b
    if isinstance(a, datetime) or isinstance(b, datetime):
        ta, tb = to_timestamp(a), to_timestamp(b)
        return None if ta is None or tb is None else (ta, tb)
    if isinstance(a, timedelta) and isinstance(b, timedelta):
        return a, b
    return None


def lt(a: object, b: object) -> bool:
    """``a < b``; false when either is null or they do not order."""
    ca, cb = a.__class__, b.__class__
    if (ca is int or ca is float) and (cb is int or cb is float):
        return a < b  # type: ignore[operator,no-any-return]
    p = _orderable(a, b)
    return p is not None and p[0] < p[1]


def le(a: object, b: object) -> bool:
    """``a <= b``; false when either is null or they do not order."""
    ca, cb = a.__class__, b.__class__
    if (ca is int or ca is float) and (cb is int or cb is float):
        return a <= b  # type: ignore[operator,no-any-return]
    p = _orderable(a, b)
    return p is not None and p[0] <= p[1]


def gt(a: object, b: object) -> bool:
    """``a > b``; false when either is null or they do not order."""
    ca, cb = a.__class__, b.__class__
    if (ca is int or ca is float) and (cb is int or cb is float):
        return a > b  # type: ignore[operator,no-any-return]
    p = _orderable(a, b)
    return p is not None and p[0] > p[1]


def ge(a: object, b: object) -> bool:
    """``a >= b``; false when either is null or they do not order."""
    ca, cb = a.__class__, b.__class__
    if (ca is int or ca is float) and (cb is int or cb is float):
        return a >= b  # type: ignore[operator,no-any-return]
    p = _orderable(a, b)
    return p is not None and p[0] >= p[1]


def in_(item: object, container: object) -> bool:
    """``item in container``: membership (by ``==``) in a list, or a substring of a
    string; false when either side is null."""
    if item is None:
        return False
    if isinstance(container, list | tuple):
        return any(eq(item, x) for x in container)
    if isinstance(container, str):
        return isinstance(item, str) and item in container
    return False


def not_in(item: object, container: object) -> bool:
    """``item not in container``, i.e. ``not (item in container)``."""
    return not in_(item, container)


# ---------------------------------------------------------------- arithmetic


def add(a: object, b: object) -> Any:
    """``a + b``: numbers add, strings concatenate, a duration moves a timestamp,
    durations add; null otherwise."""
    ca, cb = a.__class__, b.__class__
    try:
        if (ca is int or ca is float) and (cb is int or cb is float):
            return a + b  # type: ignore[operator]
        if ca is str and cb is str:
            return a + b  # type: ignore[operator]
        if a is None or b is None:
            return None
        if is_number(a) and is_number(b):
            return a + b  # type: ignore[operator]
        if isinstance(b, timedelta):
            if isinstance(a, timedelta):
                return a + b
            t = to_timestamp(a)
            return None if t is None else t + b
        if isinstance(a, timedelta):
            t = to_timestamp(b)
            return None if t is None else t + a
    except _ARITH_ERRORS:
        return None
    return None


def sub(a: object, b: object) -> Any:
    """``a - b``: numbers subtract, a duration moves a timestamp back, two timestamps
    give the duration between them, durations subtract; null otherwise."""
    ca, cb = a.__class__, b.__class__
    try:
        if (ca is int or ca is float) and (cb is int or cb is float):
            return a - b  # type: ignore[operator]
        if a is None or b is None:
            return None
        if is_number(a) and is_number(b):
            return a - b  # type: ignore[operator]
        if isinstance(b, timedelta):
            if isinstance(a, timedelta):
                return a - b
            t = to_timestamp(a)
            return None if t is None else t - b
        ta, tb = to_timestamp(a), to_timestamp(b)
        if ta is not None and tb is not None:
            return ta - tb
    except _ARITH_ERRORS:
        return None
    return None


def mul(a: object, b: object) -> Any:
    """``a * b``: numbers multiply, a duration scales by a number; null otherwise."""
    ca, cb = a.__class__, b.__class__
    try:
        if (ca is int or ca is float) and (cb is int or cb is float):
            return a * b  # type: ignore[operator]
        if is_number(a) and is_number(b):
            return a * b  # type: ignore[operator]
        if isinstance(a, timedelta) and is_number(b):
            return a * b  # type: ignore[operator]
        if isinstance(b, timedelta) and is_number(a):
            return b * a  # type: ignore[operator]
    except _ARITH_ERRORS:
        return None
    return None


def div(a: object, b: object) -> Any:
    """``a / b``: true division of numbers, a duration by a number or by a duration;
    division by zero, and anything else, is null."""
    try:
        if is_number(b):
            if is_number(a) or isinstance(a, timedelta):
                return a / b  # type: ignore[operator]
        elif isinstance(a, timedelta) and isinstance(b, timedelta):
            return a / b
    except _ARITH_ERRORS:
        return None
    return None


def neg(a: object) -> Any:
    """``-a`` for a number or a duration; null otherwise."""
    try:
        if is_number(a) or isinstance(a, timedelta):
            return -a  # type: ignore[operator]
    except _ARITH_ERRORS:
        return None
    return None


# ---------------------------------------------------------------- paths


def get(obj: object, name: str) -> Any:
    """``obj.name``: a dict key, an event's property (or its time for ``at``); null
    for anything else, including null."""
    if isinstance(obj, Mapping):
        return obj.get(name)
    if isinstance(obj, EventView):
        props = obj.props
        if name == "at" and "at" not in props:
            return obj.at
        return props.get(name)
    return None


def get_path(obj: object, path: Sequence[str]) -> Any:
    """``obj.a.b.c`` along ``path``; null as soon as a step finds nothing."""
    for name in path:
        if obj is None:
            return None
        obj = get(obj, name)
    return obj


# ---------------------------------------------------------------- functions


def days_since(now: datetime, t: object) -> int | None:
    """Whole days from ``t`` to ``now``, floored; null if ``t`` is not a timestamp."""
    ts = to_timestamp(t)
    return None if ts is None else (now - ts) // DAY


def hours_since(now: datetime, t: object) -> int | None:
    """Whole hours from ``t`` to ``now``, floored; null if ``t`` is not a timestamp."""
    ts = to_timestamp(t)
    return None if ts is None else (now - ts) // HOUR


def minutes_since(now: datetime, t: object) -> int | None:
    """Whole minutes from ``t`` to ``now``, floored; null if ``t`` is not a timestamp."""
    ts = to_timestamp(t)
    return None if ts is None else (now - ts) // MINUTE


def exists(v: object) -> bool:
    """Whether the value is set and not null."""
    return v is not None


def lower(s: object) -> str | None:
    """``s`` lower-cased; null unless ``s`` is a string."""
    return s.lower() if isinstance(s, str) else None


def upper(s: object) -> str | None:
    """``s`` upper-cased; null unless ``s`` is a string."""
    return s.upper() if isinstance(s, str) else None


def contains(container: object, item: object) -> bool | None:
    """``item in container`` as a function: null if either argument is null."""
    if container is None or item is None:
        return None
    return in_(item, container)


BINARY: dict[str, Callable[[object, object], Any]] = {
    "==": eq,
    "!=": ne,
    "<": lt,
    "<=": le,
    ">": gt,
    ">=": ge,
    "in": in_,
    "not in": not_in,
    "+": add,
    "-": sub,
    "*": mul,
    "/": div,
}
"""Each binary operator of the language and the function that gives its value."""


def json_value(value: Any) -> Any:
    """A value as profiles, events and outputs hold it: times as ISO-8601 ``Z``,
    durations as seconds."""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%S") + (
            f".{value.microsecond // 1000:03d}Z" if value.microsecond else "Z"
        )
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, EventView):
        return {"name": value.name, "at": json_value(value.at), **json_value(dict(value.props))}
    return value
