"""Put a journey report together from the store's aggregates and the compiled graph.

:func:`build_report` is the one entry point (``journeyc report`` and
``GET /v1/journeys/{id}/report`` call it). The figures and how each is computed are
documented in docs/reports.md; the reads are :class:`journeyc.store.abc.ReportReads`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

from journeyc.compile import ir
from journeyc.engine.actions import iso_ms
from journeyc.lang.diagnostics import closest
from journeyc.reports import stats
from journeyc.reports.model import (
    ArmReport,
    ChannelDelivery,
    Comparison,
    ExperimentReport,
    FunnelPath,
    FunnelStep,
    GoalReport,
    JourneyReport,
    MinimumSample,
    StepReport,
    VersionInfo,
)
from journeyc.store.abc import Store
from journeyc.store.rows import ActionCount, EntryGroup, FeedbackCount, JourneyVersion, OutboxCount

MAX_PATHS = 100
"""The most funnel paths a report lists (``funnel_truncated`` says when there are more)."""

HOLDOUT = "holdout"
"""The name of the holdout group among an experiment's arms."""

MESSAGED = "messaged"
"""The name of the group of a journey with a holdout and no split that is not held
out: everyone the journey messages, compared with the holdout."""

_How = Literal["counted", "inferred"] | None
_ACTING = frozenset({"send", "set", "unset", "track"})
"""Node kinds that log one action (send or suppress, set, unset, track) per visit."""


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """``; did you mean 'x'?`` for the names in ``known`` close to ``name``, else ''."""
    near = closest(name, known)
    return f"; did you mean {' or '.join(map(repr, near))}?" if near else ""


class ReportError(ValueError):
    """A report that cannot be made: an unknown journey or version, a bad range."""

    def __init__(self, message: str, parameter: str) -> None:
        super().__init__(message)
        self.parameter = parameter


class UnknownJourneyError(ReportError):
    """The store has never deployed the journey (``suggestions``: close ids)."""

    def __init__(self, journey_id: str, known: Iterable[str]) -> None:
        known = list(known)
        self.suggestions = closest(journey_id, known)
        hint = did_you_mean(journey_id, known)
        super().__init__(f"the store has no journey {journey_id!r}{hint}", "journey")


def build_report(
    store: Store,
    journey_id: str,
    *,
    version: str | None = None,
    since_ms: int | None = None,
    until_ms: int | None = None,
    iso: Callable[[int], str] = iso_ms,
) -> JourneyReport:
    """The report of ``journey_id`` over ``[since_ms, until_ms)`` (None: unbounded),
    for all its versions or one ``version`` (the time it was the one taking entries).
    ``iso`` writes its times (the HTTP API passes its own form, milliseconds always).

    Raises :class:`UnknownJourneyError` for a journey the store never deployed and
    :class:`ReportError` for an unknown version or an empty range."""
    if since_ms is not None and until_ms is not None and since_ms >= until_ms:
        raise ReportError("the range is empty: `from` must be before `until`", "until")
    with store.report_reads() as q:
        versions = q.deployed_versions(journey_id)
        if not versions:
            raise UnknownJourneyError(journey_id, q.journey_ids())
        graph_row = _graph_version(versions, version)
        lo, hi = since_ms, until_ms
        if version is not None:
            lo, hi = _intersect((lo, hi), _version_span(versions, version))
        journey = ir.JourneyIR.model_validate_json(graph_row.ir_json)
        empty = lo is not None and hi is not None and lo >= hi
        groups = [] if empty else q.entry_groups(journey_id, lo, hi)
        counts = [] if empty else q.action_counts(journey_id, lo, hi)
        converted = sum(g.conversions for g in groups)
        median = q.median_ms_to_goal(journey_id, lo, hi, converted)
        waiting = q.waiting_now(journey_id, version)
        outbox = [] if empty else q.outbox_counts(journey_id, lo, hi)
        feedback = [] if empty else q.feedback_counts(journey_id, lo, hi)
    entries = sum(g.entries for g in groups)
    steps = _steps(journey, counts, waiting, entries, open_ended=hi is None)
    reached = {s.id: s.reached for s in steps}
    paths = list(_paths(journey, MAX_PATHS + 1))
    exits: dict[str, int] = defaultdict(int)
    for c in counts:
        if c.action == "exit":
            exits[c.label] += c.n
    return JourneyReport(
        journey_id=journey_id,
        title=journey.title,
        version=version,
        graph_version=graph_row.version,
        versions=[
            VersionInfo(version=v.version, deployed_at=iso(v.deployed_at), active=v.active)
            for v in versions
        ],
        since=None if since_ms is None else iso(since_ms),
        until=None if until_ms is None else iso(until_ms),
        entries=entries,
        in_flight=sum(waiting.values()),
        exits=dict(sorted(exits.items())),
        steps=steps,
        funnel=[
            FunnelPath(
                steps=[
                    FunnelStep(id=n, kind=journey.nodes[n].kind, reached=reached.get(n), via=via)
                    for via, n in path
                ],
                ends="exit" if journey.nodes[path[-1][1]].kind == "exit" else "completes",
            )
            for path in paths[:MAX_PATHS]
        ],
        funnel_truncated=len(paths) > MAX_PATHS,
        goal=_goal(journey, groups, entries, median),
        experiment=experiment(journey, groups),
        delivery=_delivery(outbox, feedback),
    )


def _graph_version(versions: list[JourneyVersion], version: str | None) -> JourneyVersion:
    """The version asked for, else the active one, else the last deployed."""
    if version is not None:
        for v in versions:
            if v.version == version:
                return v
        known = [v.version for v in versions]
        hint = did_you_mean(version, known)
        raise ReportError(
            f"no version {version!r} of this journey (it has {', '.join(known)}){hint}", "version"
        )
    active = [v for v in versions if v.active]
    return active[-1] if active else versions[-1]


def _version_span(versions: list[JourneyVersion], version: str) -> tuple[int | None, int | None]:
    """When ``version`` took the new entries: from its deployment to the next one's."""
    (start,) = (v.deployed_at for v in versions if v.version == version)
    later = [v.deployed_at for v in versions if v.deployed_at > start]
    return start, (min(later) if later else None)


def _intersect(
    a: tuple[int | None, int | None], b: tuple[int | None, int | None]
) -> tuple[int | None, int | None]:
    los = [x for x in (a[0], b[0]) if x is not None]
    his = [x for x in (a[1], b[1]) if x is not None]
    return (max(los) if los else None, min(his) if his else None)


# ---------------------------------------------------------------- steps and funnel


def _order(journey: ir.JourneyIR) -> list[str]:
    """The graph's nodes from the start, depth first, each once; then any others."""
    seen: dict[str, None] = {}
    stack: list[str | None] = [journey.start]
    while stack:
        node_id = stack.pop()
        if node_id is None or node_id in seen:
            continue
        seen[node_id] = None
        stack.extend(reversed(ir.successors(journey.nodes[node_id])))
    return [*seen, *(n for n in journey.nodes if n not in seen)]


@dataclass(slots=True)
class _Tally:
    sends: dict[str, int]
    suppressed: dict[str, int]
    exits: dict[str, int]
    acted: dict[str, int]


def _tally(counts: list[ActionCount]) -> dict[str, _Tally]:
    out: dict[str, _Tally] = {}
    for c in counts:
        if not c.step:
            continue  # enter and goal: no step
        t = out.setdefault(c.step, _Tally({}, {}, {}, {}))
        part = {"send": t.sends, "suppress": t.suppressed, "exit": t.exits}.get(c.action, t.acted)
        key = c.label if c.action in ("send", "suppress", "exit") else c.action
        part[key] = part.get(key, 0) + c.n
    return out


def _steps(
    journey: ir.JourneyIR,
    counts: list[ActionCount],
    waiting: dict[str, int],
    entries: int,
    *,
    open_ended: bool,
) -> list[StepReport]:
    tallies = _tally(counts)
    nodes = journey.nodes
    preds: dict[str, set[str]] = defaultdict(set)
    for node in nodes.values():
        for s in ir.successors(node):
            if s is not None:
                preds[s].add(node.id)
    known: dict[str, tuple[int | None, _How]] = {}

    def counted(node_id: str) -> int | None:
        kind = nodes[node_id].kind
        t = tallies.get(node_id)
        if kind == "exit":
            return 0 if t is None else t.exits.get("exit_step", 0)
        if kind not in _ACTING:
            return None
        if t is None:
            return 0
        if kind == "send":
            return sum(t.sends.values()) + sum(t.suppressed.values())
        return t.acted.get(kind, 0)

    def reach(node_id: str, visiting: frozenset[str]) -> tuple[int | None, _How]:
        if node_id in known:
            return known[node_id]
        n = counted(node_id)
        result: tuple[int | None, _How] = (n, "counted")
        if n is None:
            result = (None, None)
            if node_id == journey.start and not preds[node_id]:
                result = (entries, "inferred")
            elif open_ended and node_id not in visiting:
                t = tallies.get(node_id)
                total = waiting.get(node_id, 0) + (sum(t.exits.values()) if t else 0)
                for s in dict.fromkeys(ir.successors(nodes[node_id])):
                    if s is None:
                        continue
                    sub, _ = (
                        reach(s, visiting | {node_id}) if preds[s] == {node_id} else (None, None)
                    )
                    if sub is None:
                        total = -1
                        break
                    total += sub
                if total >= 0:
                    result = (total, "inferred")
        known[node_id] = result
        return result

    def step(node_id: str) -> StepReport:
        t = tallies.get(node_id) or _Tally({}, {}, {}, {})
        node = nodes.get(node_id)  # None: a step of another version's graph
        n, how = reach(node_id, frozenset()) if node is not None else (None, None)
        src = journey.source_map.get(node_id)
        return StepReport(
            id=node_id,
            kind=None if node is None else node.kind,
            line=None if src is None or node is None else src.line,
            reached=n,
            reached_how=how,
            waiting_now=waiting.get(node_id, 0),
            sends=dict(sorted(t.sends.items())),
            suppressed=dict(sorted(t.suppressed.items())),
            exits=dict(sorted(t.exits.items())),
        )

    others = sorted((set(tallies) | set(waiting)) - set(nodes))
    return [step(node_id) for node_id in [*_order(journey), *others]]


def _ways(node: ir.Node) -> list[str | None]:
    """The label of each way on from ``node``, in :func:`ir.successors` order."""
    ways: list[str | None] = [None]
    if isinstance(node, ir.ExitNode):
        ways = []
    elif isinstance(node, ir.BranchNode):
        ways = [*(f"case {i}" for i in range(1, len(node.cases) + 1)), "else"]
    elif isinstance(node, ir.SplitNode):
        ways = [a.name for a in node.arms]
    elif isinstance(node, ir.WaitForNode):
        ways = ["event", "timeout"]
    return ways


def _paths(journey: ir.JourneyIR, limit: int) -> Iterator[list[tuple[str | None, str]]]:
    """Up to ``limit`` paths from the start to an end, as (how it got here, node)."""
    if journey.start is None:
        return
    found = 0
    stack: list[list[tuple[str | None, str]]] = [[(None, journey.start)]]
    while stack and found < limit:
        path = stack.pop()
        node = journey.nodes[path[-1][1]]
        onward = [
            (via, s)
            for via, s in zip(_ways(node), ir.successors(node), strict=True)
            if s is None or all(s != p for _, p in path)  # no step twice (no loops)
        ]
        ends = [w for w in onward if w[1] is None] or ([] if onward else [(None, None)])
        if ends:
            found += 1
            yield path
        stack.extend(
            [*path, (via if len(onward) > 1 else None, s)]
            for via, s in reversed(onward)
            if s is not None
        )


# ---------------------------------------------------------------- goal, experiment, delivery


def _goal(
    journey: ir.JourneyIR, groups: list[EntryGroup], entries: int, median_ms: float | None
) -> GoalReport | None:
    if journey.goal is None:
        return None
    conversions = sum(g.conversions for g in groups)
    return GoalReport(
        event=journey.goal.event,
        within_seconds=journey.goal.within,
        conversions=conversions,
        rate=conversions / entries if entries else None,
        median_seconds_to_goal=None if median_ms is None else median_ms / 1000,
    )


def experiment(journey: ir.JourneyIR, groups: list[EntryGroup]) -> ExperimentReport | None:
    """The report's experiment section from the entry ``groups``: the split arms (or
    the ``messaged`` group, for a holdout and no split), the holdout and the lifts;
    None for a journey with neither a split nor a holdout. ``journeyc simulate``'s
    ``a/b:`` lines count with it too."""
    split_arms = [
        a.name for n in journey.nodes.values() if isinstance(n, ir.SplitNode) for a in n.arms
    ]
    has_holdout = journey.holdout > 0 or any(g.holdout for g in groups)
    has_split = bool(split_arms) or any(g.arm for g in groups)
    if not has_split and not has_holdout:
        return None
    tally: dict[str, list[int]] = {name: [0, 0] for name in dict.fromkeys(split_arms)}
    if not has_split:
        # A holdout alone is an experiment too: messaging against doing nothing.
        tally[MESSAGED] = [0, 0]
    unassigned = 0
    for g in groups:
        if g.holdout:
            name = HOLDOUT
        elif g.arm is None and has_split:
            unassigned += g.entries
            continue
        else:
            name = MESSAGED if g.arm is None else g.arm
        pair = tally.setdefault(name, [0, 0])
        pair[0] += g.conversions
        pair[1] += g.entries
    names = [n for n in tally if n != HOLDOUT]
    names = [*(n for n in dict.fromkeys(split_arms)), *sorted(set(names) - set(split_arms))]
    if has_holdout:
        tally.setdefault(HOLDOUT, [0, 0])
        names.append(HOLDOUT)
    arms = []
    for name in names:
        c, n = tally[name]
        r = stats.rate(c, n)
        arms.append(
            ArmReport(
                name=name,
                group="holdout" if name == HOLDOUT else ("arm" if has_split else "messaged"),
                holdout=name == HOLDOUT,
                entries=n,
                conversions=c,
                rate=r.rate,
                ci_low=r.low,
                ci_high=r.high,
            )
        )
    baseline = HOLDOUT if has_holdout else (names[0] if names else None)
    comparisons = []
    for name in names:
        if baseline is None or name == baseline:
            continue
        if journey.goal is None:
            lift = stats.Lift(False, "the journey has no goal to compare")
        else:
            lift = stats.lift(
                tuple(tally[name]),  # type: ignore[arg-type]
                tuple(tally[baseline]),  # type: ignore[arg-type]
                names=(name, baseline),
            )
        comparisons.append(
            Comparison(
                arm=name,
                baseline=baseline,
                enough_data=lift.enough_data,
                note=lift.note,
                lift=lift.lift,
                lift_ci_low=lift.lift_low,
                lift_ci_high=lift.lift_high,
                relative_lift=lift.relative,
                p_value=lift.p_value,
                significant=None if lift.p_value is None else lift.p_value < stats.ALPHA,
            )
        )
    m = stats.MINIMUM
    return ExperimentReport(
        arms=arms,
        unassigned=unassigned,
        baseline=baseline,
        comparisons=comparisons,
        confidence=stats.CONFIDENCE,
        alpha=stats.ALPHA,
        minimum_sample=MinimumSample(
            entries=m.entries, conversions=m.conversions, non_conversions=m.non_conversions
        ),
    )


def _delivery(outbox: list[OutboxCount], feedback: list[FeedbackCount]) -> list[ChannelDelivery]:
    rows: dict[str, dict[str, int]] = defaultdict(dict)
    kinds: dict[str, dict[str, int]] = defaultdict(dict)
    for o in outbox:
        rows[o.channel][o.status] = rows[o.channel].get(o.status, 0) + o.rows
        rows[o.channel]["retried"] = rows[o.channel].get("retried", 0) + o.retried
    for f in feedback:
        kinds[f.channel][f.kind] = f.messages
    return [
        ChannelDelivery(
            channel=ch,
            queued=rows[ch].get("queued", 0),
            sent=rows[ch].get("sent", 0),
            failed=rows[ch].get("failed", 0),
            retried=rows[ch].get("retried", 0),
            feedback=dict(sorted(kinds[ch].items())),
        )
        for ch in sorted(set(rows) | set(kinds))
    ]
