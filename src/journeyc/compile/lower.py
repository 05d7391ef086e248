"""Lowering: a checked project's ASTs into the IR the engine runs.

Each journey becomes a state machine: one node per step, wired by ``next`` and by
the heads of nested blocks. Lowering assumes the project is valid (the checker ran
first); the one thing it can still meet is a template file that cannot be read.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel

from journeyc.compile import ir
from journeyc.lang import ast
from journeyc.lang.depth import MAX_BLOCK_DEPTH, MAX_EXPR_DEPTH
from journeyc.lang.project import Project, inside_project


class LowerError(Exception):
    """A project that cannot be lowered: a message's template file cannot be read."""


def lower_project(project: Project) -> ir.ProjectIR:
    """The IR of a valid project: its journeys, messages and segments, each by name.

    Raises :class:`LowerError` when a template file cannot be read, or (a last line of
    defence: the parser refuses deeper sources) when the project nests too deeply.
    """
    try:
        return _lower_project(project)
    except RecursionError:
        raise LowerError(
            "the project nests too deeply to compile (expressions may nest "
            f"{MAX_EXPR_DEPTH} levels, steps {MAX_BLOCK_DEPTH} blocks deep)"
        ) from None


def _lower_project(project: Project) -> ir.ProjectIR:
    messages: dict[str, ir.MessageIR] = {}
    segments: dict[str, ir.SegmentIR] = {}
    for tree in project.trees:
        base = project.file_dir(tree.path)
        roots = project.template_roots(tree.path)
        for m in tree.messages:
            messages[m.name] = lower_message(m, base, roots)
        for s in tree.segments:
            segments[s.name] = ir.SegmentIR(name=s.name, expr=lower_expr(s.expr))
    journeys: dict[str, ir.JourneyIR] = {}
    for tree in project.trees:
        for j in tree.journeys:
            journeys[j.name] = lower_journey(j, tree.path, messages, segments)
    return ir.ProjectIR(
        journeys=dict(sorted(journeys.items())),
        messages=dict(sorted(messages.items())),
        segments=dict(sorted(segments.items())),
    )


# ---------------------------------------------------------------- expressions


def lower_expr(e: ast.Expr, items: bool = False) -> ir.Expr:
    """The IR of an expression: names become profile or event paths, operators ``Op``.

    ``items``: ``e`` is inside an item aggregate's value or ``where``, or the
    condition of ``any``/``all``, where the name ``item`` is the list item in focus
    (elsewhere it is a profile attribute like any other name). An aggregate inside
    starts afresh: its own ``where`` sees its own events and items only.
    """
    if isinstance(e, ast.Number | ast.String | ast.Bool):
        return ir.Lit(value=e.value)
    if isinstance(e, ast.Null):
        return ir.Lit(value=None)
    if isinstance(e, ast.Duration):
        return ir.Dur(seconds=e.seconds)
    if isinstance(e, ast.Name | ast.GetAttr):
        return _lower_path(e, items)
    if isinstance(e, ast.ListExpr):
        return ir.ListE(items=[lower_expr(i, items) for i in e.items])
    if isinstance(e, ast.Unary):
        return ir.Op(op="not" if e.op == "not" else "neg", args=[lower_expr(e.operand, items)])
    if isinstance(e, ast.Binary):
        return ir.Op(op=e.op, args=[lower_expr(e.left, items), lower_expr(e.right, items)])
    if isinstance(e, ast.Between):
        return ir.Op(
            op="between",
            args=[lower_expr(e.value, items), lower_expr(e.low, items), lower_expr(e.high, items)],
        )
    if isinstance(e, ast.Call):
        return ir.Call(func=e.func, args=[lower_expr(a, items) for a in e.args])
    if isinstance(e, ast.Aggregate):
        over_items = e.item is not None
        return ir.Agg(
            func=e.func,
            event=e.event,
            prop=list(e.prop),
            where=lower_expr(e.where, over_items) if e.where is not None else None,
            within=e.within.seconds if e.within is not None else None,
            item=lower_expr(e.item, True) if e.item is not None else None,
        )
    if isinstance(e, ast.ItemTest):
        return ir.Each(func=e.func, items=lower_expr(e.items, items), cond=lower_expr(e.cond, True))
    return ir.Seg(name=e.name)


def _lower_path(e: ast.Name | ast.GetAttr, items: bool = False) -> ir.Expr:
    """``user.a.b`` → ``Attr([a, b])``, ``x.a`` → ``Attr([x, a])``, ``event.a`` →
    ``EventRef([a])``, ``item.a`` (with ``items``) → ``ItemRef([a])``; a path rooted
    anywhere else (``last(x).at``) → ``Get``."""
    names: list[str] = []
    root: ast.Expr = e
    while isinstance(root, ast.GetAttr):
        names.append(root.name)
        root = root.obj
    names.reverse()
    if isinstance(root, ast.Name):
        if root.name == "user":
            return ir.Attr(path=names)
        if root.name == "event":
            return ir.EventRef(path=names)
        if root.name == "item" and items:
            return ir.ItemRef(path=names)
        if root.name != "now":
            return ir.Attr(path=[root.name, *names])
        out: ir.Expr = ir.Now()
    else:
        out = lower_expr(root, items)
    for n in names:
        out = ir.Get(obj=out, name=n)
    return out


def _opt(e: ast.Expr | None) -> ir.Expr | None:
    return lower_expr(e) if e is not None else None


# ---------------------------------------------------------------- messages


def lower_message(m: ast.Message, base: Path, roots: Sequence[Path]) -> ir.MessageIR:
    """A message's parts; ``file`` fields are read relative to ``base``, and only
    from inside ``roots``."""
    parts: dict[str, dict[str, ir.FieldIR]] = {}
    for part in m.parts:
        fields: dict[str, ir.FieldIR] = {}
        for f in part.fields:
            text = (
                _read_template(base / f.value.value, m.name, roots) if f.is_file else f.value.value
            )
            old = fields.get(f.name, ir.FieldIR())
            if f.locale is None:
                fields[f.name] = old.model_copy(update={"default": text})
            else:
                fields[f.name] = old.model_copy(update={"locales": {**old.locales, f.locale: text}})
        parts[part.channel] = fields
    return ir.MessageIR(name=m.name, parts=parts)


def _read_template(path: Path, message: str, roots: Sequence[Path]) -> str:
    # The checker refuses such a path first (`file_outside_project`); this is the
    # line of defence for callers that lower without checking.
    if not inside_project(path, roots):
        raise LowerError(f"message `{message}`: the template file {path} is outside the project")
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise LowerError(f"message `{message}`: cannot read template {path}: {exc}") from exc


# ---------------------------------------------------------------- journeys


def lower_journey(
    j: ast.Journey,
    file: str,
    messages: dict[str, ir.MessageIR],
    segments: dict[str, ir.SegmentIR],
) -> ir.JourneyIR:
    """One journey's IR, its version hashed over what it does and what it uses."""
    steps = _Steps(file)
    start = steps.block(j.steps, "", None)
    c = _Clauses()
    for clause in j.clauses:
        c.add(clause)
    journey = ir.JourneyIR(
        id=j.name,
        title=j.title,
        file=file,
        triggers=c.triggers,
        entry=c.entry,
        exits=c.exits,
        goal=c.goal,
        quiet_hours=c.quiet_hours,
        cap=c.cap,
        holdout=c.holdout,
        upgrade_in_place=c.upgrade_in_place,
        start=start,
        nodes=steps.nodes(),
        messages=sorted(steps.messages),
        source_map=steps.source_map,
    )
    used = ir.segment_closure(_segment_refs(journey), segments)
    journey = journey.model_copy(update={"segments": sorted(used)})
    return journey.model_copy(update={"version": journey_version(journey, messages, segments)})


def journey_version(
    journey: ir.JourneyIR,
    messages: dict[str, ir.MessageIR],
    segments: dict[str, ir.SegmentIR],
) -> str:
    """The content hash of what a journey does: its IR without layout (``version``,
    ``file``, ``source_map``) or static ``bounds``, and the messages and segments it
    uses."""
    bare = journey.model_copy(update={"version": "", "file": "", "source_map": {}, "bounds": None})
    used_messages = [messages[n] for n in sorted(journey.messages) if n in messages]
    used_segments = [segments[n] for n in sorted(journey.segments) if n in segments]
    return ir.content_hash(bare, *used_messages, *used_segments)


@dataclass
class _Clauses:
    """A journey's clauses, gathered into the IR's triggers and policies."""

    triggers: list[ir.EventTrigger | ir.SegmentTrigger | ir.ScheduleTrigger] = field(
        default_factory=list
    )
    entry: ir.EntryRule = field(default_factory=ir.EntryRule)
    exits: list[ir.EventMatch] = field(default_factory=list)
    goal: ir.GoalRule | None = None
    quiet_hours: ir.QuietHoursRule | None = None
    cap: ir.CapRule | None = None
    holdout: float = 0.0
    upgrade_in_place: bool = False

    def add(self, c: ast.Clause) -> None:
        """Take in one clause."""
        if isinstance(c, ast.WhenEvent):
            self.triggers.append(ir.EventTrigger(event=c.event, where=_opt(c.where)))
        elif isinstance(c, ast.WhenSegment):
            self.triggers.append(ir.SegmentTrigger(edge=c.edge, segment=c.segment))
        elif isinstance(c, ast.Every):
            self.triggers.append(
                ir.ScheduleTrigger(
                    day=c.day if c.at is not None else None,
                    hour=c.at.hour if c.at is not None else None,
                    minute=c.at.minute if c.at is not None else None,
                    interval=c.interval.seconds if c.interval is not None else None,
                    segment=c.segment,
                )
            )
        elif isinstance(c, ast.Entry):
            self.entry = ir.EntryRule(mode=c.mode, per=c.per.seconds if c.per else None)
        elif isinstance(c, ast.ExitWhen):
            self.exits.append(ir.EventMatch(event=c.event, where=_opt(c.where)))
        elif isinstance(c, ast.Goal):
            self.goal = ir.GoalRule(
                event=c.event,
                where=_opt(c.where),
                within=c.within.seconds if c.within else None,
            )
        elif isinstance(c, ast.QuietHours):
            self.quiet_hours = ir.QuietHoursRule(
                start=c.start.hour * 60 + c.start.minute,
                end=c.end.hour * 60 + c.end.minute,
                skip=c.skip,
            )
        elif isinstance(c, ast.Cap):
            self.cap = ir.CapRule(count=c.count, per=c.per.seconds)
        elif isinstance(c, ast.Holdout):
            self.holdout = float(c.percent.value)
        else:
            self.upgrade_in_place = True


class _Steps:
    """Builds a journey's nodes, in source order (a parent before its blocks)."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.order: list[str] = []
        self.built: dict[str, ir.Node] = {}
        self.source_map: dict[str, ir.SourcePos] = {}
        self.messages: set[str] = set()

    def nodes(self) -> dict[str, ir.Node]:
        """The nodes, keyed by id, in source order."""
        return {i: self.built[i] for i in self.order}

    def block(self, steps: tuple[ast.Step, ...], prefix: str, cont: str | None) -> str | None:
        """Lower a block whose last step goes on to ``cont``; return its head's id."""
        ids = [ast.step_label(s) or f"{prefix}{n}" for n, s in enumerate(steps, 1)]
        for n, s in enumerate(steps):
            nxt = ids[n + 1] if n + 1 < len(ids) else cont
            self._step(s, ids[n], f"{prefix}{n + 1}", nxt)
        return ids[0] if ids else None

    def _step(self, s: ast.Step, node_id: str, pos: str, nxt: str | None) -> None:
        self.order.append(node_id)
        self.source_map[node_id] = ir.SourcePos(
            file=self.file, line=s.span.line, column=s.span.column
        )
        self.built[node_id] = self._node(s, node_id, pos, nxt)

    def _node(self, s: ast.Step, node_id: str, pos: str, nxt: str | None) -> ir.Node:
        if isinstance(s, ast.Wait):
            return ir.WaitNode(id=node_id, next=nxt, seconds=s.duration.seconds)
        if isinstance(s, ast.WaitUntil):
            return ir.WaitUntilNode(
                id=node_id, next=nxt, hour=s.at.hour, minute=s.at.minute, day=s.day
            )
        if isinstance(s, ast.WaitFor):
            on_event: str | None = None
            on_timeout: str | None = None
            for b, branch in enumerate(s.branches, 1):
                head = self.block(branch.steps, f"{pos}.{b}.", nxt)
                if branch.event is None:
                    on_timeout = head
                else:
                    on_event = head
            return ir.WaitForNode(
                id=node_id,
                next=nxt,
                event=s.event,
                where=_opt(s.where),
                timeout=s.timeout.seconds,
                on_event=on_event,
                on_timeout=on_timeout,
            )
        if isinstance(s, ast.If):
            cases = [
                ir.Case(cond=lower_expr(b.cond), then=self.block(b.steps, f"{pos}.{n}.", nxt))
                for n, b in enumerate(s.branches, 1)
            ]
            orelse = None
            if s.orelse is not None:
                orelse = self.block(s.orelse, f"{pos}.{len(s.branches) + 1}.", nxt)
            return ir.BranchNode(id=node_id, next=nxt, cases=cases, orelse=orelse)
        if isinstance(s, ast.Split):
            arms = [
                ir.SplitArm(
                    percent=float(a.percent.value),
                    name=a.label.name if a.label else _arm_letter(n),
                    then=self.block(a.steps, f"{pos}.{n + 1}.", nxt),
                )
                for n, a in enumerate(s.arms)
            ]
            return ir.SplitNode(id=node_id, next=nxt, arms=arms)
        if isinstance(s, ast.Send):
            targets = _targets(s.targets)
            self.messages.update(t.message for t in targets if t.message is not None)
            return ir.SendNode(id=node_id, next=nxt, targets=targets, args=_args(s.args))
        if isinstance(s, ast.SetAttr):
            return ir.SetNode(id=node_id, next=nxt, attr=s.name, value=lower_expr(s.value))
        if isinstance(s, ast.UnsetAttr):
            return ir.UnsetNode(id=node_id, next=nxt, attr=s.name)
        if isinstance(s, ast.Track):
            return ir.TrackNode(id=node_id, next=nxt, event=s.event, args=_args(s.args))
        return ir.ExitNode(id=node_id, next=None)


def _arm_letter(n: int) -> str:
    """``A`` … ``Z``, then ``AA``, ``AB`` … like spreadsheet columns."""
    name = ""
    n += 1
    while n:
        n, r = divmod(n - 1, 26)
        name = chr(ord("A") + r) + name
    return name


def _targets(targets: tuple[ast.Target, ...]) -> list[ir.SendTarget]:
    """Each channel takes its own message or the next one written after it."""
    out: list[ir.SendTarget] = []
    following: ast.MessageRef | None = None
    for t in reversed(targets):
        if t.message is not None:
            following = t.message
        ref = following
        if ref is not None and ref.inline is not None:
            out.append(ir.SendTarget(channel=t.channel, inline=ref.inline.value))
        else:
            out.append(ir.SendTarget(channel=t.channel, message=ref.name if ref else None))
    out.reverse()
    return out


def _args(args: tuple[ast.Arg, ...]) -> list[ir.WithArg]:
    return [ir.WithArg(name=a.name, value=lower_expr(a.value)) for a in args]


# ---------------------------------------------------------------- segment references


def _segment_refs(obj: object) -> Iterator[str]:
    """Every segment named anywhere inside an IR model: ``segment X`` expressions and
    segment or scheduled triggers."""
    if isinstance(obj, ir.Seg):
        yield obj.name
    elif isinstance(obj, ir.SegmentTrigger | ir.ScheduleTrigger):
        if obj.segment is not None:
            yield obj.segment
    elif isinstance(obj, BaseModel):
        for name in type(obj).model_fields:
            yield from _segment_refs(getattr(obj, name))
    elif isinstance(obj, list):
        for item in obj:
            yield from _segment_refs(item)
    elif isinstance(obj, dict):
        for item in obj.values():
            yield from _segment_refs(item)
