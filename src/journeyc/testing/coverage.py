"""Which steps of each journey some test reached (``journeyc test --coverage``).

The runs report the steps they saw: every action names its step, and every step an
entry waits at or ends at is seen when the engine saves the entry. A step that takes
no action and never waits (an ``if``, a ``split``) is reached whenever a step it
dominates is: every path from the journey's start to that step goes through it. So
the reached steps are the seen ones and all their dominators in the journey's graph
(the IR's nodes). A branch (an ``if``/``elif``/``else`` block, a split arm, an ``on``
branch of a wait) is covered when its first step is reached.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from journeyc.compile import ir

Visit = tuple[str, str]


def successors(node: ir.Node) -> Iterator[str]:
    """The nodes that can run right after ``node``."""
    if isinstance(node, ir.BranchNode):
        for case in node.cases:
            yield case.then if case.then is not None else (node.next or "")
        yield node.orelse if node.orelse is not None else (node.next or "")
    elif isinstance(node, ir.SplitNode):
        for arm in node.arms:
            yield arm.then if arm.then is not None else (node.next or "")
    elif isinstance(node, ir.WaitForNode):
        yield node.on_event if node.on_event is not None else (node.next or "")
        yield node.on_timeout if node.on_timeout is not None else (node.next or "")
    else:
        yield node.next or ""


def dominators(journey: ir.JourneyIR) -> dict[str, set[str]]:
    """Each node's dominators (itself included), from the journey's start."""
    nodes = journey.nodes
    start = journey.start
    if start is None or start not in nodes:
        return {}
    preds: dict[str, set[str]] = {n: set() for n in nodes}
    for nid, node in nodes.items():
        for s in successors(node):
            if s in preds:
                preds[s].add(nid)
    every = set(nodes)
    dom = {n: set(every) for n in nodes}
    dom[start] = {start}
    changed = True
    while changed:
        changed = False
        for n in sorted(nodes):
            if n == start:
                continue
            ps = [dom[p] for p in preds[n]]
            new = set.intersection(*ps) | {n} if ps else {n}
            if new != dom[n]:
                dom[n], changed = new, True
    return dom


def _branch_heads(journey: ir.JourneyIR) -> dict[str, str]:
    """The first node of each branch → how to name the branch."""
    heads: dict[str, str] = {}
    for nid, node in journey.nodes.items():
        if isinstance(node, ir.BranchNode):
            for i, case in enumerate(node.cases):
                if case.then is not None:
                    heads[case.then] = f"{'if' if i == 0 else 'elif'} branch of {nid}"
            if node.orelse is not None:
                heads[node.orelse] = f"else branch of {nid}"
        elif isinstance(node, ir.SplitNode):
            for arm in node.arms:
                if arm.then is not None:
                    heads[arm.then] = f"arm {arm.name} of split {nid}"
        elif isinstance(node, ir.WaitForNode):
            if node.on_event is not None:
                heads[node.on_event] = f"on {node.event} of {nid}"
            if node.on_timeout is not None:
                heads[node.on_timeout] = f"on timeout of {nid}"
    return heads


@dataclass
class Missed:
    """A step no test reached: its id, where it is written, and what it heads."""

    step: str
    line: int | None
    branch: str | None
    kind: str = ""

    def __str__(self) -> str:
        facts = [x for x in (self.kind, f"line {self.line}" if self.line else "") if x]
        where = f" ({', '.join(facts)})" if facts else ""
        what = f", the {self.branch}" if self.branch else ""
        return f"{self.step}{where}{what}"


@dataclass
class JourneyCoverage:
    """One journey's coverage: steps and branches reached of all."""

    journey: str
    file: str
    steps: int
    reached: int
    branches: int
    branches_reached: int
    missed: list[Missed]

    @property
    def percent(self) -> float:
        """Steps reached, in percent of the journey's steps (100 for none)."""
        return 100.0 * self.reached / self.steps if self.steps else 100.0

    def as_dict(self) -> dict[str, object]:
        """The ``--json`` object."""
        return {
            "journey": self.journey,
            "file": self.file,
            "steps": self.steps,
            "reached": self.reached,
            "branches": self.branches,
            "branches_reached": self.branches_reached,
            "percent": round(self.percent, 1),
            "missed": [
                {"step": m.step, "kind": m.kind, "line": m.line, "branch": m.branch}
                for m in self.missed
            ],
        }


def coverage(project: ir.ProjectIR, visits: Iterable[Visit]) -> list[JourneyCoverage]:
    """Each journey's coverage by runs that saw ``visits``, by journey id."""
    seen: dict[str, set[str]] = {}
    for journey, step in visits:
        seen.setdefault(journey, set()).add(step)
    out = []
    for jid, j in sorted(project.journeys.items()):
        dom = dominators(j)
        reached: set[str] = set()
        for step in seen.get(jid, set()):
            reached |= dom.get(step, set())
        heads = _branch_heads(j)
        missed = []
        for nid, node in j.nodes.items():
            if nid not in reached:
                pos = j.source_map.get(nid)
                missed.append(Missed(nid, pos.line if pos else None, heads.get(nid), node.kind))
        missed.sort(key=lambda m: (m.line or 0, m.step))
        out.append(
            JourneyCoverage(
                journey=jid,
                file=j.file,
                steps=len(j.nodes),
                reached=len(reached & set(j.nodes)),
                branches=len(heads),
                branches_reached=len(reached & set(heads)),
                missed=missed,
            )
        )
    return out


def total_percent(rows: Iterable[JourneyCoverage]) -> float:
    """Steps reached across every journey, in percent."""
    rows = list(rows)
    steps = sum(r.steps for r in rows)
    return 100.0 * sum(r.reached for r in rows) / steps if steps else 100.0
