"""Segment membership: who is in each segment, since when, and when to look again.

A segment is a condition on one user. The engine keeps, for every user it has seen
and every segment of the project, a row of ``segment_members``: in or out, since
when, and ``recheck_at``, the earliest time the clock alone can change the answer.
Membership is evaluated again

- when the user's data changes: an event whose name the segment's aggregates read
  (directly or through the segments it uses), or a profile change when it reads
  profile attributes; a user's first event evaluates every segment;
- at ``recheck_at``, worked out from the expression by :class:`Horizon`, so that a
  segment that changes by time alone (``days_since(last(order_completed).at) >= 180``,
  ``count(product_viewed within 1d) >= 5``) changes exactly when it should, without
  reading every user on every tick.

Each change in or out is logged in ``segment_changes``; the engine enters the journeys
that wait for it (``when entering`` / ``when leaving``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from journeyc.compile import ir
from journeyc.engine import values as vals
from journeyc.engine.expr import Compiled, Predicate, Scope, compile_expr, compile_predicate
from journeyc.store.abc import EventHistory

__all__ = [
    "FALLBACK_MS",
    "Horizon",
    "SegmentInfo",
    "Term",
    "analyse",
    "explain",
    "segment_resolver",
]

FALLBACK_MS = 3_600_000
"""How soon a segment is looked at again when its time dependence has a form the
:class:`Horizon` cannot bound (``now`` inside arithmetic, say): within the hour."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
_SINCE_UNITS: dict[str, timedelta] = {
    "days_since": timedelta(days=1),
    "hours_since": timedelta(hours=1),
    "minutes_since": timedelta(minutes=1),
}
_COMPARISONS = frozenset({"==", "!=", "<", "<=", ">", ">=", "between"})


# ---------------------------------------------------------------- the expressions


def segment_resolver(preds: Mapping[str, Predicate]) -> Callable[[str, Scope], bool]:
    """``segment NAME`` asked in a scope: the segment's predicate on the scope's user
    at the same moment, with no event in focus; an unknown segment is false.

    The scope is an argument, not captured: one resolver serves every scope, and a
    scope holding a closure over itself would be a reference cycle, left for the
    garbage collector, for every scope the engine makes."""

    def in_segment(name: str, scope: Scope) -> bool:
        pred = preds.get(name)
        if pred is None:
            return False
        return pred(
            Scope(
                now=scope.now,
                profile=scope.profile,
                aggregates=scope.aggregates,
                segments=scope.segments,
                user_id=scope.user_id,
            )
        )

    return in_segment


@dataclass(frozen=True, slots=True)
class SegmentInfo:
    """A segment ready to evaluate: its predicate, the hash of its definition (with the
    segments it uses), and what can change it: the events its aggregates read and
    whether it reads profile attributes."""

    name: str
    expr: ir.Expr
    pred: Predicate
    hash: str
    events: frozenset[str]
    traits: bool
    timed: bool


def analyse(segments: Mapping[str, ir.SegmentIR]) -> dict[str, SegmentInfo]:
    """Every segment of a project, with its dependencies closed over the segments it
    uses (the checker has refused cycles)."""
    infos: dict[str, SegmentInfo] = {}
    for name in sorted(segments):
        used = ir.segment_closure([name], segments) - {name}
        group = [segments[name]] + [segments[n] for n in sorted(used) if n in segments]
        events: set[str] = set()
        traits = timed = False
        for seg in group:
            for x in ir.walk(seg.expr):
                if isinstance(x, ir.Agg):
                    events.add(x.event)
                    timed = timed or x.within is not None
                elif isinstance(x, ir.Attr):
                    traits = True
                elif isinstance(x, ir.Now) or (isinstance(x, ir.Call) and x.func in _SINCE_UNITS):
                    timed = True
        infos[name] = SegmentInfo(
            name=name,
            expr=segments[name].expr,
            pred=compile_predicate(segments[name].expr),
            hash=ir.content_hash(*group),
            events=frozenset(events),
            traits=traits,
            timed=timed,
        )
    return infos


# ---------------------------------------------------------------- when time changes it


def _ceil_ms(t: datetime) -> int:
    return -((_EPOCH - t) // _MS)


def _now_offset(e: ir.Expr) -> int | None:
    """``now`` → 0, ``now + D`` → D, ``now - D`` → -D (milliseconds); None otherwise."""
    if isinstance(e, ir.Now):
        return 0
    if (
        isinstance(e, ir.Op)
        and e.op in ("+", "-")
        and len(e.args) == 2
        and isinstance(e.args[0], ir.Now)
        and isinstance(e.args[1], ir.Dur)
    ):
        d = e.args[1].seconds * 1000
        return d if e.op == "+" else -d
    return None


class Horizon:
    """Works out the earliest time at which the clock alone may change an
    expression's value for one user, from the user's data at ``scope.now``.

    Exact for the forms segments are written in:

    - ``days_since(T)`` / ``hours_since(T)`` / ``minutes_since(T)`` compared with
      numbers: a whole-unit step function, so only the steps that cross one of the
      numbers matter (``days_since(x) >= 180`` changes once, at ``x + 180d``);
    - ``now`` (or ``now ± D``) compared with a timestamp;
    - aggregates: an event of the window leaving it (``at + within``), an event
      logged with a future time entering it;
    - ``and``/``or``/``not``, and everything else, as the earliest of their parts.

    The answer is never later than a real change (it may be earlier: the engine then
    evaluates, finds nothing changed, and asks again). ``now`` in any other form is
    looked at again after :data:`FALLBACK_MS`.
    """

    def __init__(self, history: EventHistory, segments: Mapping[str, ir.SegmentIR]) -> None:
        self._segments = segments
        self._reads = _Reads(history)
        # Each expression's answer as a function of (scope, now_ms), made once (None:
        # time alone never changes it), keyed by id() with the expression kept alive.
        # The plans hold no reference back to the horizon: no cycles to collect.
        self._plans: dict[int, tuple[ir.Expr, _Plan | None]] = {}

    @property
    def times(self) -> _Times:
        """The event log's answer to a window's question: the store's
        (``EventHistory.times``), or from memory (``EventIndex.times``) when the
        simulator holds its writes."""
        return self._reads.times

    @times.setter
    def times(self, times: _Times) -> None:
        self._reads.times = times

    def next_change(self, e: ir.Expr, scope: Scope) -> int | None:
        """Epoch ms of the earliest possible change of ``e`` after ``scope.now``;
        None when only the user's data can change it."""
        plan = self._plan(e)
        return None if plan is None else plan(scope, -((_EPOCH - scope.now) // _MS))

    def _plan(self, e: ir.Expr) -> _Plan | None:
        hit = self._plans.get(id(e))
        if hit is None or hit[0] is not e:
            hit = self._plans[id(e)] = (e, self._make(e))
        return hit[1]

    def _make(self, e: ir.Expr) -> _Plan | None:
        """The plan of ``e``, by its form (see the class)."""
        # By exact class: isinstance() on the IR's pydantic classes is slow (this runs
        # once per expression now, not once per recheck, but it is as exact).
        if type(e) in _TIMELESS:
            return None
        if type(e) is ir.Now:
            return _fallback
        if type(e) is ir.Seg:
            seg = self._segments.get(e.name)
            return None if seg is None else self._plan(seg.expr)
        if type(e) is ir.Agg:
            return _window_plan(e, self._reads)
        if type(e) is ir.Op and e.op in _COMPARISONS:
            compared = self._comparison_plan(e)
            if compared is not None:
                return compared
        if type(e) is ir.Call and e.func in _SINCE_UNITS:
            return _since_plan(e, self._plan(e.args[0]), self._reads)
        plans = [self._plan(c) for c in ir.sub_exprs(e)]
        if type(e) is ir.Each and (
            _reads_clock(e.cond) or any(type(x) is ir.Agg for x in ir.walk(e.cond))
        ):
            plans.append(_fallback)  # a condition per item that the clock may change
        return _earliest_plan(plans)

    def _comparison_plan(self, e: ir.Op) -> _Plan | None:
        """The next crossing of a comparison between one time-driven side and the
        others; at a recheck where another side may change with time too, the earliest
        of every side's own changes. None when the comparison has another shape."""
        moving = [
            i
            for i, a in enumerate(e.args)
            if (type(a) is ir.Call and a.func in _SINCE_UNITS) or _now_offset(a) is not None
        ]
        if len(moving) != 1:
            return None
        (i,) = moving
        side = e.args[i]
        others = [a for j, a in enumerate(e.args) if j != i]
        other_plans = [p for p in map(self._plan, others) if p is not None]
        generic = _earliest_plan([self._plan(a) for a in e.args])
        offset = _now_offset(side)
        call = side if type(side) is ir.Call else None  # else now ± D (offset)
        inner = None if call is None else self._plan(call.args[0])
        reads = self._reads

        def crossing(scope: Scope, now_ms: int) -> int | None:
            if any(p(scope, now_ms) is not None for p in other_plans):
                return None if generic is None else generic(scope, now_ms)
            bounds = [reads.value(a, scope) for a in others]
            if offset is not None:
                # now + offset crosses a timestamp X at X - offset (and one ms later).
                times = []
                for b in bounds:
                    ts = vals.to_timestamp(b) if not vals.is_number(b) else None
                    if ts is not None:
                        x = _ceil_ms(ts) - offset
                        times += [x, x + 1]
                return min((t for t in times if t > now_ms), default=None)
            assert call is not None
            numbers = [b for b in bounds if vals.is_number(b)]
            step = reads.step(call, scope, now_ms, numbers)
            return step if inner is None else _earliest(inner(scope, now_ms), step)

        return crossing


class _Reads:
    """What plans read besides the scope: values of expressions (compiled once) and
    the event log."""

    def __init__(self, history: EventHistory) -> None:
        self.times: _Times = history.times
        self._compiled: dict[int, tuple[ir.Expr, Compiled]] = {}

    def value(self, e: ir.Expr, scope: Scope) -> Any:
        """The value of ``e`` in ``scope``."""
        hit = self._compiled.get(id(e))
        if hit is None or hit[0] is not e:
            hit = self._compiled[id(e)] = (e, compile_expr(e))
        return hit[1](scope)

    def step(
        self, call: ir.Call, scope: Scope, now_ms: int, numbers: Sequence[float] | None
    ) -> int | None:
        """When ``days_since(T)`` (or kin) next reaches a value that matters: the next
        whole unit, or — compared with ``numbers`` — the next value that crosses one."""
        t = vals.to_timestamp(self.value(call.args[0], scope))
        if t is None:
            return None
        unit = _SINCE_UNITS[call.func]
        current = (scope.now - t) // unit
        if numbers is None:
            targets = [current + 1]
        else:
            steps = {s for n in numbers for s in (math.ceil(n), math.floor(n) + 1)}
            targets = sorted(s for s in steps if s > current)
        if not targets:
            return None
        return max(_ceil_ms(t + targets[0] * unit), now_ms + 1)

    def window(
        self, user_id: str, event: str, lo: int, now_ms: int
    ) -> tuple[int | None, int | None]:
        """Of the user's ``event`` events after ``lo``: the earliest time past
        ``now_ms``, and the earliest time up to it."""
        return self.times(user_id, event, lo, now_ms)


def _fallback(scope: Scope, now_ms: int) -> int | None:
    """``now`` in a form without a closed answer: looked at again after a while."""
    return now_ms + FALLBACK_MS


def _earliest_plan(plans: Sequence[_Plan | None]) -> _Plan | None:
    """The earliest answer of ``plans`` (None when none has one)."""
    present = [p for p in plans if p is not None]
    if not present:
        return None
    if len(present) == 1:
        return present[0]
    return lambda scope, now_ms: _earliest(*(p(scope, now_ms) for p in present))


def _since_plan(call: ir.Call, arg: _Plan | None, reads: _Reads) -> _Plan:
    """``days_since(T)`` (or kin) on its own: its next whole unit, or a change of T."""

    def since(scope: Scope, now_ms: int) -> int | None:
        step = reads.step(call, scope, now_ms, None)
        return step if arg is None else _earliest(arg(scope, now_ms), step)

    return since


def _window_plan(agg: ir.Agg, reads: _Reads) -> _Plan:
    """An aggregate: an event of its window leaving it, or one logged with a future
    time entering it; a ``where`` that reads the clock, within the fallback."""
    within_ms = None if agg.within is None else agg.within * 1000
    event = agg.event
    timed_where = any(_reads_clock(x) for x in (agg.where, agg.item) if x is not None)

    def window(scope: Scope, now_ms: int) -> int | None:
        lo = now_ms if within_ms is None else now_ms - within_ms
        future, oldest = reads.window(scope.user_id, event, lo, now_ms)
        leaves = None if within_ms is None or oldest is None else oldest + within_ms
        return _earliest(future, leaves, now_ms + FALLBACK_MS if timed_where else None)

    return window


def _reads_clock(e: ir.Expr) -> bool:
    """Whether ``e`` reads ``now`` anywhere (``days_since`` and kin included)."""
    return any(
        type(x) is ir.Now or (type(x) is ir.Call and x.func in _SINCE_UNITS) for x in ir.walk(e)
    )


_Plan = Callable[[Scope, int], int | None]
_Times = Callable[[str, str, int, int], tuple[int | None, int | None]]
"""(user, event, after_ms, now_ms) → the earliest time of the user's ``event`` events
after ``after_ms`` past ``now_ms``, and the earliest up to it."""
_TIMELESS: frozenset[type] = frozenset((ir.Lit, ir.Dur, ir.Attr, ir.EventRef, ir.ItemRef))


def _earliest(*times: int | None) -> int | None:
    present = [t for t in times if t is not None]
    return min(present) if present else None


# ---------------------------------------------------------------- why a user is in


@dataclass(frozen=True, slots=True)
class Term:
    """One part of a segment's condition for one user: its text, its value, and how
    deep it sits (the parts of ``and``/``or``/``not`` and of used segments are
    indented under them)."""

    text: str
    value: Any
    depth: int


def explain(
    e: ir.Expr, scope: Scope, segments: Mapping[str, ir.SegmentIR], depth: int = 0
) -> list[Term]:
    """The terms of ``e`` with their values for the user of ``scope``: each
    ``and``/``or``/``not`` and comparison with its truth, and under a comparison the
    values of its sides that are not literals (``sum(order_completed.amount within
    365d)`` = 6200); a used segment is explained in turn."""
    from journeyc.compile.graph import expr_to_text

    value = compile_expr(e)(scope)
    out = [Term(expr_to_text(e), value, depth)]
    if isinstance(e, ir.Op) and e.op in ("and", "or", "not"):
        for a in e.args:
            out += explain(a, scope, segments, depth + 1)
    elif isinstance(e, ir.Op) and e.op in _COMPARISONS | {"in", "not in"}:
        for a in e.args:
            if not isinstance(a, ir.Lit | ir.Dur | ir.ListE):
                out.append(Term(expr_to_text(a), compile_expr(a)(scope), depth + 1))
    elif isinstance(e, ir.Seg) and e.name in segments:
        out += explain(segments[e.name].expr, scope, segments, depth + 1)
    return out
