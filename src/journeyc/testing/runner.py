"""Running the tests of test files on the simulator, and comparing actions.

Each test is one simulation, in-process, on a fresh in-memory store: its users'
profiles and its products are loaded as ``journeyc simulate --profiles --catalog``
loads them, its events are replayed by :class:`~journeyc.engine.simulate.Replay`
(the one engine), and the actions it returns are compared with the expectations.
No journey logic lives here: an expectation only filters the actions (and, for
``expect segment``, the store's log of segment changes).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from journeyc.compile import ir
from journeyc.config import Config
from journeyc.engine import values as vals
from journeyc.engine.actions import Action, iso_ms
from journeyc.lang import ast
from journeyc.lang.builtins import CHANNELS
from journeyc.lang.literals import normalize_event
from journeyc.lang.testfile import (
    DEFAULT_START,
    Expectation,
    JourneyTest,
    line_text,
    literal_value,
    parse_timestamp,
)

if TYPE_CHECKING:
    from journeyc.store.abc import SimulationStore


NEAR_MS = 86_400_000
"""How far from an expected time the actions shown beside a failure may be."""
SHOWN = 8
"""At most this many actual actions are shown beside a failure."""


@dataclass(frozen=True)
class Case:
    """A test to run: the file it is in and its AST."""

    file: str
    test: JourneyTest

    @property
    def name(self) -> str:
        """The test's name, as ``--run`` matches it."""
        return self.test.name


@dataclass
class Failure:
    """An expectation that did not hold, with the actions around it."""

    line: int
    column: int
    expectation: str
    message: str
    actual: list[Action] = field(default_factory=list)


@dataclass
class Result:
    """The outcome of one test."""

    case: Case
    failures: list[Failure]
    actions: list[Action]
    seconds: float
    error: str | None = None

    @property
    def passed(self) -> bool:
        """Whether every expectation held (and the run did not fail)."""
        return not self.failures and self.error is None


Visit = tuple[str, str]
"""A step some entry reached: (journey id, node id)."""


@dataclass
class Run:
    """Every test's result, and the steps the runs reached (for ``--coverage``)."""

    results: list[Result]
    visits: set[Visit]

    @property
    def passed(self) -> int:
        """How many tests passed."""
        return sum(1 for r in self.results if r.passed)


def select(cases: Iterable[Case], pattern: str | None) -> list[Case]:
    """The cases whose name ``pattern`` (a regular expression) finds; all without one."""
    if pattern is None:
        return list(cases)
    rx = re.compile(pattern)
    return [c for c in cases if rx.search(c.name)]


class Bench:
    """What the simulations of one run share, so that a test costs its own work only:
    an empty store with the schema made, copied into each test's fresh in-memory
    store (SQLite's backup) instead of created again, and one renderer, whose
    compiled templates serve every test (its recommender reads each test's store in
    turn). Nothing a test writes outlives it."""

    def __init__(self, config: Config | None = None) -> None:
        from journeyc.config import Config
        from journeyc.messages.render import Renderer
        from journeyc.store.open import open_simulation_store

        self.config = config or Config()
        self.template = open_simulation_store(":memory:")
        self.renderer = Renderer.with_catalog(
            self.template.recommendations(), self.config.render.limits
        )

    def store(self) -> SimulationStore:
        """A fresh, empty in-memory store, a copy of the template."""
        store = self.template.copy_in_memory()
        if self.renderer.recommender is not None:
            self.renderer.recommender.rebind(store.recommendations())
        return store

    def close(self) -> None:
        """Close the template store."""
        self.template.close()


def run_cases(
    project: ir.ProjectIR,
    cases: Sequence[Case],
    *,
    config: Config | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Run:
    """Run ``cases`` against ``project``, one simulation each, in this process."""
    visits: set[Visit] = set()
    results = []
    bench = Bench(config)
    try:
        for i, case in enumerate(cases):
            results.append(run_case(project, case, bench=bench, visits=visits))
            if progress is not None:
                progress(i + 1, len(cases))
    finally:
        bench.close()
    return Run(results, visits)


def start_of(test: JourneyTest) -> int:
    """When the test's clock starts (epoch ms)."""
    start = test.start
    if start is not None and start.at_ms is not None:
        return start.at_ms
    at = parse_timestamp(DEFAULT_START)
    assert at is not None
    return at


def _values(args: Iterable[ast.Arg]) -> dict[str, Any]:
    return {a.name: literal_value(a.value) for a in args}


def run_case(
    project: ir.ProjectIR,
    case: Case,
    *,
    bench: Bench | None = None,
    visits: set[Visit] | None = None,
) -> Result:
    """Simulate one test and compare its actions with its expectations. A run that
    fails (a product row the catalog refuses, say) fails the test with ``error``."""
    own = bench is None
    bench = bench or Bench()
    began = time.perf_counter()
    try:
        return _run_case(project, case, bench, visits, began)
    except Exception as exc:  # the test's data, or a failure of the run: one test fails
        return Result(case, [], [], time.perf_counter() - began, error=_why(exc))
    finally:
        if own:
            bench.close()


def _why(exc: Exception) -> str:
    """A failed run in one line: a bad product row names its field."""
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        errors = exc.errors()
        where = ".".join(str(x) for x in errors[0]["loc"]) if errors else ""
        return f"bad product {where}: {errors[0]['msg'] if errors else exc}"
    return f"{type(exc).__name__}: {exc}"


def _run_case(
    project: ir.ProjectIR,
    case: Case,
    bench: Bench,
    visits: set[Visit] | None,
    began: float,
) -> Result:
    from journeyc.catalog import Product
    from journeyc.engine.parallel import fill_store
    from journeyc.engine.simulate import Replay, no_full_collections
    from journeyc.events import Event

    test = case.test
    start_ms = start_of(test)
    until = test.until
    until_ms = until.at.resolve(start_ms) if until is not None else None
    profiles: dict[str, dict[str, object]] = {}
    for u in test.users:
        profiles.setdefault(u.id, {}).update(_values(u.traits))
    products = [Product.model_validate({**_values(p.fields), "id": p.id}) for p in test.products]
    events = []
    for n, e in enumerate(test.events, 1):
        name = normalize_event(e.name)
        events.append(
            Event(
                message_id=f"test-{n}",
                user_id=e.user,
                kind="identify" if name == "identify" else "track",
                name=name,
                at_ms=e.at.resolve(start_ms),
                props=_values(e.props),
                received_ms=0,
            )
        )
    store = bench.store()
    try:
        with no_full_collections(), store.bulk():
            fill_store(store, profiles, products)
            replay = Replay(
                project,
                events,
                store,
                bench.config,
                start_ms,
                until_ms,
                None,
                True,
                True,
                renderer=bench.renderer,
            )
            if visits is not None:
                _watch_steps(replay.engine, visits)
            replay.run()
        actions = replay.actions
        if visits is not None:
            visits.update((a.journey, a.step) for a in actions if a.step is not None)
        segments = _segment_log(store)
    finally:
        store.close()
    failures = [
        f
        for x in test.expectations
        if (f := check(x, actions, segments, project, start_ms)) is not None
    ]
    return Result(case, failures, actions, time.perf_counter() - began)


def _watch_steps(engine: Any, visits: set[Visit]) -> None:
    """Record every step an instance is saved at (a wait, an end): coverage sees the
    steps that take no action. Wraps the runtime's ``save``; the engine is unchanged."""
    rt = engine.rt
    save = rt.save

    def watched(inst: Any) -> None:
        if inst.node:
            visits.add((inst.journey_id, inst.node))
        save(inst)

    rt.save = watched


@dataclass
class _SegmentLog:
    """What the store says of segment membership: each (user, segment)'s changes in
    time order, and its standing at the end."""

    changes: dict[tuple[str, str], list[tuple[int, bool]]]
    final: dict[tuple[str, str], bool]

    def users(self, segment: str) -> list[str]:
        """Every user the store says was ever in ``segment`` or left it: the users an
        expectation naming none asks about (a journey need not have acted on them)."""
        return sorted({u for u, s in (*self.changes, *self.final) if s == segment})

    def member(self, user: str, segment: str, at_ms: int | None) -> bool:
        """Whether ``user`` was in ``segment`` at ``at_ms`` (None: at the end)."""
        key = (user, segment)
        if at_ms is None:
            return self.final.get(key, False)
        changes = self.changes.get(key, [])
        before = [entered for t, entered in changes if t <= at_ms]
        if before:
            return before[-1]
        if changes:
            return not changes[0][1]
        return self.final.get(key, False)


def _segment_log(store: Any) -> _SegmentLog:
    book = store.segment_book()
    changes: dict[tuple[str, str], list[tuple[int, bool]]] = {}
    for seg, user, at, entered in book.changes():
        changes.setdefault((user, seg), []).append((at, entered))
    return _SegmentLog(changes, book.members())


# ---------------------------------------------------------------- matching


def _channel_and_message(x: Expectation) -> tuple[str | None, str | None]:
    names = [w.name for w in x.names]
    if len(names) >= 2:
        return names[0], names[1]
    if len(names) == 1:
        return (names[0], None) if names[0] in CHANNELS else (None, names[0])
    return None, None


def _step_targets(project: ir.ProjectIR, a: Action) -> list[ir.SendTarget]:
    j = project.journeys.get(a.journey)
    node = j.nodes.get(a.step) if j is not None and a.step is not None else None
    return list(node.targets) if isinstance(node, ir.SendNode) else []


def _field(a: Action, name: str) -> tuple[bool, Any]:
    """The value an action has under ``name``: a sent field, else a key of the action
    (``channel``, ``message``, ``attr``, ``value``, ``event`` …), else a tracked
    event's property."""
    content = a.detail.get("content")
    if isinstance(content, dict) and name in content:
        return True, content[name]
    if name in a.detail:
        return True, a.detail[name]
    props = a.detail.get("props")
    if isinstance(props, dict) and name in props:
        return True, props[name]
    return False, None


def matches(x: Expectation, a: Action, project: ir.ProjectIR, start_ms: int) -> bool:
    """Whether action ``a`` is one that expectation ``x`` describes."""
    if a.action != x.kind:
        return False
    if x.user is not None and a.user != x.user.name:
        return False
    if x.journey is not None and a.journey != x.journey.name:
        return False
    if x.step is not None and a.step != x.step.name:
        return False
    if x.at is not None and a.at_ms != x.at.resolve(start_ms):
        return False
    if x.reason is not None and a.detail.get("reason") != x.reason.name:
        return False
    if x.kind in ("send", "suppress"):
        channel, message = _channel_and_message(x)
        if x.kind == "send":
            if channel is not None and a.detail.get("channel") != channel:
                return False
            if message is not None and a.detail.get("message") != message:
                return False
        elif channel is not None or message is not None:
            # A suppressed send names no channel: the step's targets say what it was.
            targets = _step_targets(project, a)
            if not any(
                (channel is None or t.channel == channel)
                and (message is None or t.message == message)
                for t in targets
            ):
                return False
    elif x.names:
        name = x.names[0].name
        key = {"set": "attr", "unset": "attr", "track": "event"}.get(x.kind)
        actual = a.journey if key is None else a.detail.get(key)
        if x.kind == "track":
            name = normalize_event(name)
        if actual != name:
            return False
    for m in x.matches:
        found, value = _field(a, m.name)
        if not found:
            return False
        want = literal_value(m.value)
        if m.contains:
            if not isinstance(value, str) or str(want) not in value:
                return False
        elif not vals.eq(value, want):  # as the language compares: true is not 1
            return False
    return True


def check(
    x: Expectation,
    actions: Sequence[Action],
    segments: _SegmentLog,
    project: ir.ProjectIR,
    start_ms: int,
) -> Failure | None:
    """None when ``x`` holds; else what failed, with the actual actions around it."""
    at_ms = x.at.resolve(start_ms) if x.at is not None else None
    text = line_text(x)
    line, column = x.span.line, x.span.column
    if x.kind == "segment":
        segment = x.names[0].name if x.names else ""
        users = [x.user.name] if x.user is not None else segments.users(segment)
        inside = [u for u in users if segments.member(u, segment, at_ms)]
        when = f"at {iso_ms(at_ms)}" if at_ms is not None else "at the end"
        if x.negated and inside:
            return Failure(line, column, text, f"{', '.join(inside)} in {segment} {when}")
        if not x.negated and not inside:
            if x.user is None:
                return Failure(line, column, text, f"no user in {segment} {when}")
            return Failure(line, column, text, f"{x.user.name} not in {segment} {when}")
        return None
    found = [a for a in actions if matches(x, a, project, start_ms)]
    if x.negated and found:
        return Failure(line, column, text, f"{len(found)} such action(s)", found[:SHOWN])
    if not x.negated and not found:
        return Failure(line, column, text, "no such action", _near(x, actions, at_ms))
    return None


def _near(x: Expectation, actions: Sequence[Action], at_ms: int | None) -> list[Action]:
    """The actual actions to show beside a failed expectation: the user's (every
    user's when it names none), of the same kind first... in time order, nearest the
    expected time when it gives one."""
    pool = [a for a in actions if x.user is None or a.user == x.user.name]
    if at_ms is not None:
        pool = [a for a in pool if abs(a.at_ms - at_ms) <= NEAR_MS]
        pool = sorted(sorted(pool, key=lambda a: abs(a.at_ms - at_ms))[:SHOWN], key=_order)
    return pool[:SHOWN]


def _order(a: Action) -> int:
    return a.at_ms


def describe(a: Action) -> str:
    """One action on one line, as ``journeyc simulate`` shows it, with its user."""
    d = a.detail
    at = f" at {a.step}" if a.step else ""
    if a.action == "send":
        content = d.get("content") or {}
        shown = (
            ", ".join(f"{k}={v!r}" for k, v in content.items()) if isinstance(content, dict) else ""
        )
        what = d.get("message") or "inline message"
        text = f"send {d.get('channel')} {what}{at}" + (f": {shown}" if shown else "")
    elif a.action == "suppress":
        extra = f" ({d['error']})" if d.get("error") else ""
        text = f"suppress{at}: {d.get('reason')}{extra}"
    elif a.action == "exit":
        text = f"exit{at}: {d.get('reason')}"
    elif a.action == "set":
        text = f"set {d.get('attr')} = {d.get('value')!r}{at}"
    elif a.action == "unset":
        text = f"unset {d.get('attr')}{at}"
    elif a.action == "track":
        text = f"track {d.get('event')}{at}"
    else:
        text = f"{a.action}{at}"
    return f"{iso_ms(a.at_ms)}  {a.user}  {a.journey}  {text}"
