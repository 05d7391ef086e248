"""What a deployed project is to the engine: its journeys compiled and indexed by what
starts them, and its segments by what changes them.

:class:`Programs` keeps every journey version the engine runs, compiled once.
:class:`Deployment` is one deployed project, looked up on every event: the active
versions by the event that may enter them (:class:`Triggers`), by their goal's event
and by the segment edge that enters them, and the segments by the events and traits
they read. :func:`deploy_segments` takes a project's segments into the store's book,
evaluating a new or changed definition for every known user at once.

:meth:`journeyc.engine.core.Engine.deploy` writes a deployment into the store and
builds these; :mod:`journeyc.engine.deploy` records the project it deployed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from journeyc.compile import ir
from journeyc.engine.expr import Predicate, Scope
from journeyc.engine.program import Program
from journeyc.engine.reads import shared_reads
from journeyc.engine.segments import SegmentInfo, analyse, segment_resolver
from journeyc.store.abc import SegmentBook, Store, UnitOfWork
from journeyc.store.rows import Instance

__all__ = ["Candidate", "Deployment", "Programs", "Triggers", "deploy_segments", "no_segment"]

Candidate = tuple[int, Program, list[Predicate | None]]
"""A journey an event may enter: its position among the event's journeys (by id), its
program and the conditions of its ``when`` lines for the event."""


def no_segment(name: str, scope: Scope) -> bool:
    """``segment NAME`` where no segment is deployed: false."""
    return False


def _leading_key(where: ir.Expr | None) -> tuple[str, str] | None:
    """``(K, V)`` when ``where`` is ``event.K == "V"``, or an ``and`` chain that starts
    with it: for an event whose ``K`` is a string other than ``V`` it is false, without
    evaluating anything after that first test."""
    while isinstance(where, ir.Op) and where.op == "and" and where.args:
        where = where.args[0]
    if not (isinstance(where, ir.Op) and where.op == "==" and len(where.args) == 2):
        return None
    ref, lit = where.args
    if isinstance(ref, ir.Lit):
        ref, lit = lit, ref
    if (
        isinstance(ref, ir.EventRef)
        and len(ref.path) == 1
        and ref.path[0] != "at"
        and isinstance(lit, ir.Lit)
        and lit.value.__class__ is str
    ):
        return ref.path[0], str(lit.value)
    return None


class Triggers:
    """The journeys (by id) that a track event of one name may enter. Journeys with one
    ``when`` for it whose condition starts with ``event.K == "V"`` are looked up by the
    event's ``K``; the others are always candidates. Every candidate's conditions are
    still evaluated: the index only leaves out journeys whose condition is false."""

    __slots__ = ("always", "keyed")

    def __init__(self, event: str, journeys: list[tuple[Program, list[Predicate | None]]]):
        self.always: list[Candidate] = []
        # K → (V → journeys testing event.K == V, every journey keyed by K)
        self.keyed: dict[str, tuple[dict[str, list[Candidate]], list[Candidate]]] = {}
        for pos, (prog, preds) in enumerate(journeys):
            wheres = [
                t.where
                for t in prog.journey.triggers
                if isinstance(t, ir.EventTrigger) and t.event == event
            ]
            key = _leading_key(wheres[0]) if len(wheres) == 1 == len(preds) else None
            if key is None:
                self.always.append((pos, prog, preds))
            else:
                by_value, every = self.keyed.setdefault(key[0], ({}, []))
                by_value.setdefault(key[1], []).append((pos, prog, preds))
                every.append((pos, prog, preds))

    def candidates(self, props: dict[str, Any]) -> list[Candidate]:
        """The journeys to evaluate for an event with ``props``, by journey id."""
        if not self.keyed:
            return self.always
        out = list(self.always)
        for key, (by_value, every) in self.keyed.items():
            value = props.get(key)
            if value.__class__ is str:
                out += by_value.get(value, ())
            else:
                out += every  # not a string: the general rules decide
        out.sort(key=lambda c: c[0])
        return out


class Programs:
    """Every journey version the engine runs, compiled once, by journey id and version:
    the deployed ones, and the older versions users in flight are still on, read back
    from the store the first time one of their instances runs."""

    __slots__ = ("_by_version", "_rt")

    def __init__(self, rt: UnitOfWork) -> None:
        self._rt = rt
        self._by_version: dict[tuple[str, str], Program] = {}

    def of(self, inst: Instance) -> Program:
        """The version ``inst`` runs on."""
        key = (inst.journey_id, inst.version)
        prog = self._by_version.get(key)
        if prog is None:
            text = self._rt.journey_ir(*key)
            assert text is not None, key  # an instance's version was deployed
            prog = Program.build(ir.JourneyIR.model_validate_json(text))
            self._by_version[key] = prog
        return prog

    def compiled(self, journey_id: str, journey: ir.JourneyIR) -> Program:
        """``journey`` (deployed as ``journey_id``) compiled, once per version."""
        key = (journey_id, journey.version)
        prog = self._by_version.get(key) or Program.build(journey)
        self._by_version[key] = prog
        return prog


@dataclass(frozen=True, slots=True)
class Deployment:
    """One deployed project, as the engine looks it up (the default: nothing
    deployed).

    ``active``: the journeys' versions by id. ``by_trigger``: for each event name, the
    journeys a ``when`` names it in (by id) with the conditions of those lines, and
    ``triggers`` the same indexed by the conditions' leading test. ``by_goal``: the
    journeys whose goal is the event (by id). ``by_segment``: for each
    ``(segment, "entering" | "leaving")``, the journeys it enters (by id).
    ``segments``: the segments, ready to evaluate; ``in_segment`` answers ``segment
    NAME`` in a scope; ``segments_by_event`` the segments an event's aggregates may
    change and ``segments_by_traits`` those that read profile attributes.
    ``reads_catalog``: whether a message may call a recommendation filter (which
    reads the event log's table)."""

    active: dict[str, Program] = field(default_factory=dict)
    by_trigger: dict[str, list[tuple[Program, list[Predicate | None]]]] = field(
        default_factory=dict
    )
    triggers: dict[str, Triggers] = field(default_factory=dict)
    by_goal: dict[str, list[Program]] = field(default_factory=dict)
    by_segment: dict[tuple[str, str], list[Program]] = field(default_factory=dict)
    segments: dict[str, SegmentInfo] = field(default_factory=dict)
    in_segment: Callable[[str, Scope], bool] = no_segment
    segments_by_event: dict[str, list[str]] = field(default_factory=dict)
    segments_by_traits: list[str] = field(default_factory=list)
    reads_catalog: bool = True

    @classmethod
    def build(cls, project: ir.ProjectIR, programs: Programs) -> Deployment:
        """``project``'s deployment, its journeys compiled through ``programs``."""
        active: dict[str, Program] = {}
        for jid, j in sorted(project.journeys.items()):
            active[jid] = programs.compiled(jid, j)
        by_trigger: dict[str, list[tuple[Program, list[Predicate | None]]]] = {}
        by_goal: dict[str, list[Program]] = {}
        for prog in active.values():
            per_event: dict[str, list[Predicate | None]] = {}
            for event, pred in prog.triggers:
                per_event.setdefault(event, []).append(pred)
            for event, preds in per_event.items():
                by_trigger.setdefault(event, []).append((prog, preds))
            if prog.journey.goal is not None:
                by_goal.setdefault(prog.journey.goal.event, []).append(prog)
        for progs in by_goal.values():
            progs.sort(key=lambda p: p.id)
        by_segment: dict[tuple[str, str], list[Program]] = {}
        for prog in sorted(active.values(), key=lambda p: p.id):
            for t in prog.journey.triggers:
                if isinstance(t, ir.SegmentTrigger):
                    by_segment.setdefault((t.segment, t.edge), []).append(prog)
        infos = analyse(project.segments)
        seg_preds = {n: i.pred for n, i in infos.items()}
        by_event: dict[str, list[str]] = {}
        for name, info in infos.items():
            for event in info.events:
                by_event.setdefault(event, []).append(name)
        return cls(
            active=active,
            by_trigger=by_trigger,
            triggers={event: Triggers(event, js) for event, js in by_trigger.items()},
            by_goal=by_goal,
            by_segment=by_segment,
            segments=infos,
            in_segment=segment_resolver(seg_preds) if seg_preds else no_segment,
            segments_by_event=by_event,
            segments_by_traits=[n for n, i in infos.items() if i.traits],
            reads_catalog=shared_reads(project) is not None,
        )


def deploy_segments(
    store: Store,
    book: SegmentBook,
    segments: Mapping[str, ir.SegmentIR],
    infos: dict[str, SegmentInfo],
    now_ms: int,
) -> None:
    """Take a project's ``segments`` (``infos``: as analysed) into ``book``. A segment
    whose definition is new or changed is evaluated for every known user at once,
    silently: users who already match it are members from now on, and enter no ``when
    entering`` journey for it."""
    deployed = book.deployed()
    changed = [n for n, i in infos.items() if deployed.get(n) != i.hash]
    book.define(infos, changed, now_ms)
    if not changed:
        return
    # Set-based: every user's answer at once (engine/bulk.py). Only the members are
    # stored: no row is "out" (1.2M rows instead of 10M for 1M users and ten
    # segments). When time can change a segment, each user has a row due for a recheck
    # now; the engine's batches then evaluate all the user's segments, storing the
    # "out" rows and each horizon, without holding up deployment.
    from journeyc.engine.bulk import evaluate_population

    timed = sorted(n for n in changed if infos[n].timed)
    recheck = now_ms if timed else None
    rows: list[tuple[str, str, bool, int | None]] = []
    for user, membership in evaluate_population(
        store.population(), segments, now_ms, names=changed
    ):
        mine = [(user, n, True, recheck) for n, m in membership.items() if m]
        if not mine and timed:
            mine = [(user, timed[0], False, now_ms)]
        rows += mine
        if len(rows) >= 10_000:
            book.write_baseline(rows, now_ms)
            rows = []
    book.write_baseline(rows, now_ms)
