"""Static bounds: what a journey can do at most, proved from its compiled graph.

Pure functions over the IR (no store, no engine). For each journey:

- the most sends one entry can make: the most ``send`` nodes on any path;
- the longest one entry can stay: the longest path, a ``wait`` counting its
  duration, ``wait for … up to D`` at most D, ``wait until HH:MM`` at most a day
  (``on DAY``: the longest gap between two such days, a week for one weekday), and
  quiet hours (the journey's, else the configured default, unless ``skip``) at most
  the window's length for the sends between two waits: once a held send goes out,
  the clock is at the window's end and the sends after it at that instant are out
  of the window too;
- with the entry rule, the triggers and the cap, the most sends to one user in any
  day and any week (rolling windows, as ``cap`` counts them).

Times are local clock time: a daylight-saving change during a ``wait until`` or a
quiet-hours hold can add its shift (an hour in most zones), and a user whose time
zone changes while a send is held may be held again; schedules are counted as firing
on time in one zone. The rules are in
docs/language.md ("Static bounds"), and tests/test_bounds.py checks them against
the simulator.

Besides the bounds, three warnings: a branch whose condition contradicts the
branches before it (``unreachable_branch``), a ``wait for`` whose event always
ends the journey first (``wait_for_exits_first``), and a journey that alone can
send more than the configured global cap lets through (``over_global_cap``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from journeyc.compile import ir
from journeyc.compile.graph import expr_to_text
from journeyc.lang import ast
from journeyc.lang.diagnostics import Diagnostic, warning
from journeyc.lang.literals import format_duration
from journeyc.lang.project import Project
from journeyc.lang.span import Span

DAY = 86_400
WEEK = 7 * DAY

# The weekdays (Monday = 0) each `on DAY` / `every DAY at` word matches; the same
# table as journeyc.engine.localtime.DAY_WORDS, kept here so that this module does
# not import the engine.
DAY_WORDS: dict[str, frozenset[int]] = {
    "day": frozenset(range(7)),
    "weekday": frozenset(range(5)),
    "weekend": frozenset({5, 6}),
    **{name: frozenset({i}) for i, name in enumerate(ast.DAYS)},
}

INF = math.inf


class LoopError(Exception):
    """The graph has a cycle (the compiler never makes one; a hand-written IR may)."""

    def __init__(self, node: str) -> None:
        super().__init__(node)
        self.node = node


# ---------------------------------------------------------------- the graph


def successors(node: ir.Node) -> list[str | None]:
    """Where a node can go on to (None: the journey ends), every way it can
    (:func:`ir.successors`); not into a branch that can never be taken
    (:func:`unreachable_cases`)."""
    outs = ir.successors(node)
    if isinstance(node, ir.BranchNode):
        dead = set(unreachable_cases(node))
        return [o for k, o in enumerate(outs) if k not in dead] or outs
    return outs


def topological_order(journey: ir.JourneyIR) -> list[str]:
    """The nodes reachable from the start, each after every node that leads to it.

    Raises :class:`LoopError` naming a node on a cycle."""
    order: list[str] = []
    state: dict[str, int] = {}  # 1: on the path being explored, 2: done
    if journey.start is None or journey.start not in journey.nodes:
        return order
    stack: list[tuple[str, Iterator[str | None]]] = [
        (journey.start, iter(successors(journey.nodes[journey.start])))
    ]
    state[journey.start] = 1
    while stack:
        node_id, it = stack[-1]
        for nxt in it:
            if nxt is None or nxt not in journey.nodes:
                continue
            if state.get(nxt) == 1:
                raise LoopError(nxt)
            if nxt not in state:
                state[nxt] = 1
                stack.append((nxt, iter(successors(journey.nodes[nxt]))))
                break
        else:
            stack.pop()
            state[node_id] = 2
            order.append(node_id)
    order.reverse()
    return order


def wait_until_seconds(day: str | None) -> int:
    """The longest a ``wait until HH:MM [on DAY]`` can last: the longest gap between
    two matching days (a day for every day, three for ``weekday``: Friday to Monday,
    a week for one weekday)."""
    days = sorted(DAY_WORDS.get((day or "day").lower(), DAY_WORDS["day"]))
    gaps = [(b - a) % 7 or 7 for a, b in zip(days, days[1:] + days[:1], strict=True)]
    return max(gaps) * DAY


def quiet_seconds(rule: ir.QuietHoursRule | None) -> int:
    """The longest quiet hours can hold a send: the window's length (0 with ``skip``,
    which drops the send instead, or without a window)."""
    if rule is None or rule.skip:
        return 0
    return ((rule.end - rule.start) % (24 * 60)) * 60


# ---------------------------------------------------------------- per entry


@dataclass(frozen=True)
class EntryBounds:
    """Per-entry bounds; ``loop`` names a node on a cycle when there is one (then
    every bound is unbounded)."""

    sends: float
    seconds: float
    last_send: float  # from entering to the last send going out (-inf: none)
    loop: str | None = None


def entry_bounds(
    journey: ir.JourneyIR, default_quiet: ir.QuietHoursRule | None = None
) -> EntryBounds:
    """The most sends one entry makes and the longest it stays (seconds)."""
    try:
        order = topological_order(journey)
    except LoopError as exc:
        return EntryBounds(INF, INF, INF, exc.node)
    hold = quiet_seconds(journey.quiet_hours or default_quiet)
    nodes = journey.nodes
    sends: dict[str | None, float] = {None: 0}
    # By whether a send since the last wait already took its quiet-hours hold.
    time: dict[tuple[str | None, bool], float] = {(None, False): 0, (None, True): 0}
    last: dict[tuple[str | None, bool], float] = {(None, False): -INF, (None, True): -INF}

    def known(n: str | None) -> str | None:
        return n if n is None or n in nodes else None

    for node_id in reversed(order):
        node = nodes[node_id]
        outs = [known(n) for n in successors(node)]
        here = 1 if isinstance(node, ir.SendNode) else 0
        sends[node_id] = here + max((sends[n] for n in outs), default=0)
        for paid in (False, True):
            if isinstance(node, ir.WaitNode | ir.WaitUntilNode | ir.WaitForNode):
                if isinstance(node, ir.WaitNode):
                    dur = node.seconds
                elif isinstance(node, ir.WaitUntilNode):
                    dur = wait_until_seconds(node.day)
                else:
                    dur = node.timeout
                time[node_id, paid] = dur + max(time[n, False] for n in outs)
                last[node_id, paid] = dur + max(last[n, False] for n in outs)
            elif isinstance(node, ir.SendNode):
                delay = 0 if paid else hold
                (n,) = outs
                time[node_id, paid] = delay + time[n, True]
                last[node_id, paid] = delay + max(0, last[n, True])
            else:
                # A new time zone can put the clock back in the window: hold again.
                rezoned = isinstance(node, ir.SetNode | ir.UnsetNode) and node.attr == "timezone"
                after = paid and not rezoned
                time[node_id, paid] = max((time[n, after] for n in outs), default=0)
                last[node_id, paid] = max((last[n, after] for n in outs), default=-INF)
    if journey.start is None or journey.start not in nodes:
        return EntryBounds(0, 0, -INF)
    return EntryBounds(sends[journey.start], time[journey.start, False], last[journey.start, False])


# ---------------------------------------------------------------- per user


def _firings(trigger: ir.ScheduleTrigger, length: float) -> float:
    """The most times a schedule fires for one user in a window of ``length``
    seconds (half-open)."""
    if length == INF:
        return INF
    if trigger.interval is not None:
        return math.ceil(length / trigger.interval)
    days = DAY_WORDS.get((trigger.day or "day").lower(), DAY_WORDS["day"])
    span = math.ceil(length / DAY)  # the days a window can touch a firing on
    weeks, rest = divmod(span, 7)
    return weeks * len(days) + max(
        sum(1 for k in range(rest) if (first + k) % 7 in days) for first in range(7)
    )


def _starts(journey: ir.JourneyIR, length: float) -> tuple[float, str]:
    """The most entries one user can start in a window of ``length`` seconds, and
    why, when that is unbounded."""
    if not journey.triggers:
        return 0, ""
    rule = journey.entry
    if rule.mode == "once":
        by_rule: float = 1
    elif rule.mode == "once_per" and rule.per:
        by_rule = INF if length == INF else math.ceil(length / rule.per)
    else:
        by_rule = INF
    by_trigger: float = 0
    why = ""
    for t in journey.triggers:
        if isinstance(t, ir.ScheduleTrigger):
            by_trigger += _firings(t, length)
        else:
            by_trigger = INF
            if isinstance(t, ir.EventTrigger):
                why = f"as often as `{t.event}` arrives"
            else:
                why = f"as often as users go on {t.edge} `{t.segment}`"
            break
    return min(by_rule, by_trigger), why


def sends_per_window(journey: ir.JourneyIR, entry: EntryBounds, window: int) -> tuple[float, str]:
    """The most sends from ``journey`` to one user in any window of ``window``
    seconds, and why, when that is unbounded.

    Entries do not overlap (a user is in a journey once at a time), so at most one
    entry started before the window sends in it; the others start in it. And an
    entry sends only within ``last_send`` of its start, so only entries started in
    the window or that long before it count."""
    if entry.sends == 0:
        return 0, ""
    if entry.loop is not None:
        return INF, f"the steps loop through `{entry.loop}`"
    reach = max(entry.last_send, 0)
    before, why = _starts(journey, window + reach)
    inside, why_inside = _starts(journey, window)
    entries = min(before, 1 + inside)
    total = entries * entry.sends
    if journey.cap is not None:
        total = min(total, journey.cap.count * math.ceil(window / journey.cap.per))
    if total == INF:
        mode = {"once": "entry once", "once_per": "entry once per", "always": "entry always"}
        return INF, f"{mode[journey.entry.mode]} with no cap: {why or why_inside}"
    return total, ""


def journey_bounds(
    journey: ir.JourneyIR, default_quiet: ir.QuietHoursRule | None = None
) -> ir.JourneyBounds:
    """Every bound of one journey (``default_quiet``: journeyc.toml's quiet hours,
    for a journey that sets none)."""
    entry = entry_bounds(journey, default_quiet)
    unbounded: dict[str, str] = {}
    if entry.loop is not None:
        unbounded["sends_per_entry"] = f"the steps loop through `{entry.loop}`"
        unbounded["seconds_per_entry"] = f"the steps loop through `{entry.loop}`"
    per: dict[str, int | None] = {}
    for name, window in (("sends_per_user_per_day", DAY), ("sends_per_user_per_week", WEEK)):
        value, why = sends_per_window(journey, entry, window)
        per[name] = None if value == INF else int(value)
        if value == INF:
            unbounded[name] = why
    return ir.JourneyBounds(
        sends_per_entry=None if entry.sends == INF else int(entry.sends),
        seconds_per_entry=None if entry.seconds == INF else int(entry.seconds),
        sends_per_user_per_day=per["sends_per_user_per_day"],
        sends_per_user_per_week=per["sends_per_user_per_week"],
        unbounded=unbounded,
    )


def with_bounds(
    project: ir.ProjectIR, default_quiet: ir.QuietHoursRule | None = None
) -> ir.ProjectIR:
    """The project with each journey's ``bounds`` filled in (versions unchanged)."""
    journeys = {
        name: j.model_copy(update={"bounds": journey_bounds(j, default_quiet)})
        for name, j in project.journeys.items()
    }
    return project.model_copy(update={"journeys": journeys})


def summary_line(journey_id: str, b: ir.JourneyBounds) -> str:
    """``cart_recovery: ≤ 2 sends per entry, ≤ 1d20h30m in the journey, ≤ 2
    sends/user/day, ≤ 4/week``; where there is no bound, ``unbounded`` and why."""
    return f"{journey_id}: {summary(b)}"


def summary(b: ir.JourneyBounds) -> str:
    """The bounds as text: ``≤ 2 sends per entry, ≤ 1d20h30m in the journey, …``."""

    def show(name: str, value: int | None, text: str) -> str:
        if value is None:
            what = name.replace("_per_", "/").replace("sends/entry", "sends per entry")
            return f"unbounded {what} ({b.unbounded.get(name, 'unknown')})"
        if value == 1 and text.startswith(" sends"):
            text = " send" + text[len(" sends") :]
        return f"≤ {value}{text}"

    time = (
        f"unbounded time in the journey ({b.unbounded.get('seconds_per_entry', 'unknown')})"
        if b.seconds_per_entry is None
        else f"≤ {format_duration(b.seconds_per_entry)} in the journey"
    )
    parts = [
        show("sends_per_entry", b.sends_per_entry, " sends per entry"),
        time,
        show("sends_per_user_per_day", b.sends_per_user_per_day, " sends/user/day"),
        show("sends_per_user_per_week", b.sends_per_user_per_week, "/week"),
    ]
    return ", ".join(parts)


# ---------------------------------------------------------------- contradicting branches
#
# A condition becomes a formula over literals: a comparison of a term (any
# expression but a literal) with a literal, or any other condition as an opaque
# proposition keyed by its JSON (the same text twice is the same truth value: every
# case of an `if` is asked at one instant, in one scope). Case k is reachable when
# `case_k and not case_1 … and not case_k-1` can hold; the `else` when none of the
# cases needs to. Satisfiability: DNF, then per term the values a term can take.
# The language's null rules decide the negations: `x > 10` is true only for a number
# above 10, so `not (x > 10)` holds for null, strings, booleans and numbers ≤ 10.

_Value = tuple[str, object]  # ("num", 3.0), ("str", "gold"), ("bool", True), ("null", None)


@dataclass(frozen=True)
class _Atom:
    """``term OP value``, OP one of ``< <= > >= ==`` (``!=`` is a negated ``==``);
    or an opaque proposition (``op`` ``"?"``, ``term`` its key)."""

    term: str
    op: str
    value: _Value | None = None


_Lit = tuple[_Atom, bool]  # an atom and whether it holds
_Formula = list[list[_Lit]]  # DNF: any of all of
MAX_CONJUNCTS = 256
_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}


def _key(e: ir.Expr) -> str:
    return json.dumps(e.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))


def _literal(e: ir.Expr) -> _Value | None:
    """A literal's value for reasoning, or None (a string that could be read as a
    timestamp equals other spellings of that time: left alone)."""
    if not isinstance(e, ir.Lit):
        return None
    v = e.value
    if v is None:
        return ("null", None)
    if isinstance(v, bool):
        return ("bool", v)
    if isinstance(v, int | float):
        return ("num", float(v))
    try:
        datetime.fromisoformat(v)
    except ValueError:
        return ("str", v)
    return None


def _opaque(e: ir.Expr) -> _Formula:
    return [[(_Atom(_key(e), "?"), True)]]


def _and(a: _Formula, b: _Formula) -> _Formula | None:
    out = [x + y for x in a for y in b]
    return out if len(out) <= MAX_CONJUNCTS else None


def _formula(e: ir.Expr, positive: bool = True) -> _Formula | None:
    """``e`` (or ``not e``) in DNF; None when it grows too big to look at."""
    if isinstance(e, ir.Lit):
        holds = bool(e.value) == positive
        return [[]] if holds else []
    if isinstance(e, ir.Op):
        if e.op == "not":
            return _formula(e.args[0], not positive)
        if e.op in ("and", "or"):
            conj = (e.op == "and") == positive
            parts = [_formula(a, positive) for a in e.args]
            if any(p is None for p in parts):
                return None
            if conj:
                out: _Formula | None = [[]]
                for p in parts:
                    assert p is not None and out is not None
                    out = _and(out, p)
                    if out is None:
                        return None
                return out
            joined = [c for p in parts if p is not None for c in p]
            return joined if len(joined) <= MAX_CONJUNCTS else None
        if e.op == "between":
            value, low, high = e.args
            lo, hi = _literal(low), _literal(high)
            if lo is not None and hi is not None and lo[0] == hi[0] == "num":
                both = ir.Op(
                    op="and",
                    args=[ir.Op(op=">=", args=[value, low]), ir.Op(op="<=", args=[value, high])],
                )
                return _formula(both, positive)
        if e.op in ("in", "not in") and len(e.args) == 2 and isinstance(e.args[1], ir.ListE):
            # `x in [a, b]` is `x == a or x == b`, but for null: `in` never finds it.
            term, items = e.args[0], e.args[1].items
            values = [_literal(i) for i in items]
            if _literal(term) is None and not isinstance(term, ir.Lit) and None not in values:
                eqs: list[ir.Expr] = [
                    ir.Op(op="==", args=[term, i])
                    for i, v in zip(items, values, strict=True)
                    if v is not None and v[0] != "null"
                ]
                found = ir.Op(op="or", args=eqs) if eqs else ir.Lit(value=False)
                return _formula(found, positive if e.op == "in" else not positive)
        if e.op in _FLIP and len(e.args) == 2:
            atom = _comparison(e.op, e.args[0], e.args[1])
            if atom is not None:
                holds = positive if e.op != "!=" else not positive
                return [[(atom, holds)]]
    return [[(_Atom(_key(e), "?"), positive)]]


def _comparison(op: str, left: ir.Expr, right: ir.Expr) -> _Atom | None:
    """``term OP literal`` (either way round) as an atom, ``!=`` as ``==``."""
    lv, rv = _literal(left), _literal(right)
    if rv is not None and lv is None:
        term, value = left, rv
    elif lv is not None and rv is None:
        term, value, op = right, lv, _FLIP[op]
    else:
        return None
    if op == "!=":
        op = "=="
    if op != "==" and value[0] != "num":
        return None  # orders of strings: not reasoned about
    return _Atom(_key(term), op, value)


@dataclass
class _Interval:
    lo: float
    lo_closed: bool
    hi: float
    hi_closed: bool

    def empty(self) -> bool:
        return self.lo > self.hi or (self.lo == self.hi and not (self.lo_closed and self.hi_closed))


def _interval(op: str, c: float) -> _Interval:
    return {
        "<": _Interval(-INF, False, c, False),
        "<=": _Interval(-INF, False, c, True),
        ">": _Interval(c, False, INF, False),
        ">=": _Interval(c, True, INF, False),
        "==": _Interval(c, True, c, True),
    }[op]


def _intersect(a: _Interval, b: _Interval) -> _Interval:
    lo, lo_closed = (a.lo, a.lo_closed) if a.lo > b.lo else (b.lo, b.lo_closed)
    if a.lo == b.lo:
        lo_closed = a.lo_closed and b.lo_closed
    hi, hi_closed = (a.hi, a.hi_closed) if a.hi < b.hi else (b.hi, b.hi_closed)
    if a.hi == b.hi:
        hi_closed = a.hi_closed and b.hi_closed
    return _Interval(lo, lo_closed, hi, hi_closed)


def _minus(a: _Interval, b: _Interval) -> list[_Interval]:
    """``a`` without ``b``: up to two intervals."""
    if _intersect(a, b).empty():
        return [a]
    out = [
        _Interval(a.lo, a.lo_closed, b.lo, not b.lo_closed),
        _Interval(b.hi, not b.hi_closed, a.hi, a.hi_closed),
    ]
    return [_intersect(x, a) for x in out if not x.empty() and not _intersect(x, a).empty()]


def _term_can_be(lits: Sequence[tuple[str, _Value, bool]]) -> bool:
    """Whether one value satisfies every ``(op, literal, holds)`` about a term."""
    numeric = [(op, v, h) for op, v, h in lits if h and v[0] == "num"]
    equal = {v for op, v, h in lits if h and op == "=="}
    unequal = {v for op, v, h in lits if not h and op == "=="}
    if numeric or any(v[0] == "num" for v in equal):
        # A number: in every interval that holds, out of every one that does not.
        if any(v[0] != "num" for v in equal):
            return False
        pieces = [_Interval(-INF, False, INF, False)]
        for op, v, h in lits:
            if v[0] != "num":
                continue
            iv = _interval(op, float(v[1]))  # type: ignore[arg-type]
            if h:
                pieces = [_intersect(p, iv) for p in pieces]
            else:
                pieces = [q for p in pieces for q in _minus(p, iv)]
            pieces = [p for p in pieces if not p.empty()]
        return bool(pieces)
    # Not a number: any value the equalities allow (there are always more strings).
    if len(equal) > 1:
        return False
    return not (equal and equal <= unequal)


def _satisfiable(conj: Iterable[_Lit]) -> bool:
    facts: dict[str, list[tuple[str, _Value, bool]]] = {}
    props: dict[str, bool] = {}
    for atom, holds in conj:
        if atom.op == "?":
            if props.setdefault(atom.term, holds) != holds:
                return False
        else:
            assert atom.value is not None
            facts.setdefault(atom.term, []).append((atom.op, atom.value, holds))
    return all(_term_can_be(lits) for lits in facts.values())


def never_holds(cond: ir.Expr) -> bool:
    """Whether a condition is false for every user (as far as the reasoning above
    goes: False when unsure)."""
    f = _formula(cond)
    return f is not None and not any(_satisfiable(c) for c in f)


def unreachable_cases(node: ir.BranchNode) -> list[int]:
    """The cases of a branch that can never be taken, by index; ``len(node.cases)``
    stands for the ``else`` (or the way on when there is none, which is not
    reported). A condition too big to reason about is taken as reachable."""
    out: list[int] = []
    before: _Formula | None = [[]]  # none of the cases so far held
    for k, case in enumerate([*node.cases, None]):
        if before is None:
            break
        this = _formula(case.cond) if case is not None else [[]]
        both = _and(before, this) if this is not None else None
        if both is not None and not any(_satisfiable(c) for c in both):
            out.append(k)
        if case is not None:
            negated = _formula(case.cond, positive=False)
            before = _and(before, negated) if negated is not None else None
            if before is not None:
                before = [c for c in before if _satisfiable(c)]
    return out


# ---------------------------------------------------------------- diagnostics


def _journey_asts(project_trees: Iterable[ast.SourceFile]) -> dict[str, ast.Journey]:
    return {j.name: j for t in project_trees for j in t.journeys}


def _node_step(journey: ir.JourneyIR, node_id: str, tree: ast.Journey) -> ast.Step | None:
    """A node's step, found by its position."""
    pos = journey.source_map.get(node_id)
    if pos is not None:
        for s in ast.walk_steps(tree.steps):
            if s.span.line == pos.line and s.span.column == pos.column:
                return s
    return None


def _node_span(journey: ir.JourneyIR, node_id: str, tree: ast.Journey) -> Span:
    """The span of a node's step, else of the journey."""
    step = _node_step(journey, node_id, tree)
    return step.span if step is not None else _journey_span(tree)


def _journey_span(tree: ast.Journey) -> Span:
    """Where a journey is named: its name, or all of a bare journey (it has none)."""
    return tree.span if tree.bare else tree.name_span


def project_warnings(
    project: Project,
    global_cap: ir.CapRule | None = None,
    default_quiet: ir.QuietHoursRule | None = None,
) -> list[Diagnostic]:
    """The bounds warnings of a valid project (:func:`bounds_diagnostics` of its IR);
    none when it cannot be compiled (a template file that cannot be read: the
    checker reports that)."""
    from journeyc.compile.lower import LowerError, lower_project

    try:
        compiled = lower_project(project)
    except LowerError:
        return []
    return bounds_diagnostics(compiled, project.trees, global_cap, default_quiet)


def bounds_diagnostics(
    compiled: ir.ProjectIR,
    trees: Iterable[ast.SourceFile],
    global_cap: ir.CapRule | None = None,
    default_quiet: ir.QuietHoursRule | None = None,
) -> list[Diagnostic]:
    """The warnings of the bounds analysis: ``unreachable_branch`` and
    ``wait_for_exits_first`` always, ``over_global_cap`` when a global cap is given."""
    asts = _journey_asts(trees)
    out: list[Diagnostic] = []
    for j in compiled.journeys.values():
        tree = asts.get(j.id)
        if tree is None:
            continue
        out += _branch_warnings(j, tree)
        out += _wait_for_warnings(j, tree)
    if global_cap is not None:
        out += global_cap_warnings(compiled, trees, global_cap, default_quiet)
    return out


def global_cap_warnings(
    compiled: ir.ProjectIR,
    trees: Iterable[ast.SourceFile],
    global_cap: ir.CapRule,
    default_quiet: ir.QuietHoursRule | None = None,
) -> list[Diagnostic]:
    """``over_global_cap`` for each journey that alone can send one user more than
    ``global_cap`` lets through in its window."""
    asts = _journey_asts(trees)
    out: list[Diagnostic] = []
    for j in compiled.journeys.values():
        tree = asts.get(j.id)
        if tree is not None:
            out += _global_cap_warnings(j, tree, global_cap, default_quiet)
    return out


def _branch_warnings(j: ir.JourneyIR, tree: ast.Journey) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for node in j.nodes.values():
        if not isinstance(node, ir.BranchNode):
            continue
        dead = unreachable_cases(node)
        if not dead:
            continue
        step = _node_span(j, node.id, tree)
        if_ast = _node_step(j, node.id, tree)
        for k in dead:
            if k == len(node.cases):
                if node.orelse is None:
                    continue
                head = _node_span(j, node.orelse, tree)
                summary = "this `else` is never taken: one of the conditions above always holds"
                label = "never runs"
            else:
                cond = expr_to_text(node.cases[k].cond)
                kw = "if" if k == 0 else "elif"
                head = (
                    if_ast.branches[k].span
                    if isinstance(if_ast, ast.If) and k < len(if_ast.branches)
                    else step
                )
                if never_holds(node.cases[k].cond):
                    summary = f"`{kw} {cond}` can never hold"
                else:
                    summary = (
                        f"`{kw} {cond}` is never taken: the branches above it take every "
                        "user it matches"
                    )
                label = "never taken"
            out.append(
                warning(
                    "unreachable_branch",
                    summary,
                    head,
                    label,
                    detail="Its condition contradicts itself or the conditions before "
                    "it (compared: one value against numbers, or by == against other "
                    "literals, and a condition written twice); its steps never run.",
                )
            )
    return out


def _wait_for_warnings(j: ir.JourneyIR, tree: ast.Journey) -> list[Diagnostic]:
    exits = {e.event: e for e in j.exits if e.where is None}
    if not exits:
        return []
    out: list[Diagnostic] = []
    for node in j.nodes.values():
        if isinstance(node, ir.WaitForNode) and node.event in exits:
            out.append(
                warning(
                    "wait_for_exits_first",
                    f"`wait for {node.event}` never sees its event: "
                    f"`exit when {node.event}` ends the journey first",
                    _node_span(j, node.id, tree),
                    "only the timeout can end this wait",
                    detail="`exit when` wins over everything: the event takes the user out "
                    "of the journey before the `wait for` can see it.",
                    hints=(
                        f"give `exit when {node.event}` a `where` that tells the two apart, "
                        "or wait for another event",
                    ),
                )
            )
    return out


def _global_cap_warnings(
    j: ir.JourneyIR,
    tree: ast.Journey,
    cap: ir.CapRule,
    default_quiet: ir.QuietHoursRule | None,
) -> list[Diagnostic]:
    entry = entry_bounds(j, default_quiet)
    most, why = sends_per_window(j, entry, cap.per)
    if most <= cap.count:
        return []
    span = next((c.span for c in tree.clauses if isinstance(c, ast.Cap)), _journey_span(tree))
    shown = "without bound" if most == INF else f"up to {int(most)} messages"
    return [
        warning(
            "over_global_cap",
            f"journey `{j.id}` can send one user {shown} in {format_duration(cap.per)}, "
            f"more than the global cap of {cap.count} per {format_duration(cap.per)}",
            span,
            "the global cap will suppress some of its sends",
            detail=why,
            hints=(f"add `cap {cap.count} per {format_duration(cap.per)}` to the journey",),
        )
    ]
