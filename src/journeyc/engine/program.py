"""A deployed journey version, ready to run: its IR with every expression compiled once."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from journeyc.compile import ir
from journeyc.engine.expr import Compiled, Predicate, compile_expr, compile_predicate


def _pred(e: ir.Expr | None) -> Predicate | None:
    return compile_predicate(e) if e is not None else None


@dataclass
class Program:
    """One journey version. ``focus_of[node]`` is the ``wait for`` whose ``on EVENT``
    branch holds the node (innermost), whose event is ``event`` there."""

    journey: ir.JourneyIR
    triggers: list[tuple[str, Predicate | None]] = field(default_factory=list)
    exits: dict[str, list[Predicate | None]] = field(default_factory=dict)
    goal_where: Predicate | None = None
    preds: dict[str, list[Predicate]] = field(default_factory=dict)
    wait_where: dict[str, Predicate | None] = field(default_factory=dict)
    values: dict[str, Compiled] = field(default_factory=dict)
    args: dict[str, list[tuple[str, Compiled]]] = field(default_factory=dict)
    focus_of: dict[str, str] = field(default_factory=dict)

    @property
    def id(self) -> str:
        """The journey id."""
        return self.journey.id

    @property
    def version(self) -> str:
        """The version hash."""
        return self.journey.version

    @classmethod
    def build(cls, j: ir.JourneyIR) -> Program:
        """Compile every expression of ``j``."""
        p = cls(j)
        p.triggers = [
            (t.event, _pred(t.where)) for t in j.triggers if isinstance(t, ir.EventTrigger)
        ]
        exits: dict[str, list[Predicate | None]] = defaultdict(list)
        for x in j.exits:
            exits[x.event].append(_pred(x.where))
        p.exits = dict(exits)
        p.goal_where = _pred(j.goal.where) if j.goal else None
        for node in j.nodes.values():
            if isinstance(node, ir.BranchNode):
                p.preds[node.id] = [compile_predicate(c.cond) for c in node.cases]
            elif isinstance(node, ir.WaitForNode):
                p.wait_where[node.id] = _pred(node.where)
            elif isinstance(node, ir.SetNode):
                p.values[node.id] = compile_expr(node.value)
            elif isinstance(node, ir.SendNode | ir.TrackNode):
                p.args[node.id] = [(a.name, compile_expr(a.value)) for a in node.args]
        p.focus_of = _focus_map(j)
        return p


def _successors(node: ir.Node) -> list[str | None]:
    out: list[str | None] = [node.next]
    if isinstance(node, ir.BranchNode):
        out += [c.then for c in node.cases] + [node.orelse]
    elif isinstance(node, ir.SplitNode):
        out += [a.then for a in node.arms]
    elif isinstance(node, ir.WaitForNode):
        out += [node.on_event, node.on_timeout]
    return out


def _focus_map(j: ir.JourneyIR) -> dict[str, str]:
    """For each node inside an ``on EVENT`` branch, the innermost such ``wait for``."""
    members: dict[str, set[str]] = {}
    for node in j.nodes.values():
        if isinstance(node, ir.WaitForNode) and node.on_event is not None:
            seen: set[str] = set()
            todo = [node.on_event]
            while todo:
                nid = todo.pop()
                if nid in seen or nid == node.next:
                    continue
                seen.add(nid)
                todo += [s for s in _successors(j.nodes[nid]) if s is not None]
            members[node.id] = seen
    focus: dict[str, str] = {}
    for wid, nodes in sorted(members.items(), key=lambda kv: -len(kv[1])):
        for nid in nodes:
            focus[nid] = wid  # smaller (inner) branches come later and win
    return focus
