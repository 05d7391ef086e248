"""The checker: everything wrong with a project that parses, reported all at once.

A project is one namespace per kind of declaration: journey names are unique among
journeys, message names among messages, segment names among segments, across all
files (a journey and a message may share a name, as `cart_reminder` often does).

The checker resolves names (messages, segments, channels, fields, step names), checks
expression types (:mod:`journeyc.lang.types`), parses every Liquid template, and
looks at the shape of journeys (duplicate clauses, splits, ``on`` branches,
unreachable steps). It never raises on user input.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TypeAlias, TypeVar

from journeyc.lang import ast
from journeyc.lang.builtins import CHANNEL_FIELDS, CHANNELS
from journeyc.lang.depth import (
    MAX_SEGMENT_DEPTH,
    depth_and_segment_refs,
    whole_file_too_deep,
)
from journeyc.lang.diagnostics import (
    Diagnostic,
    closest,
    did_you_mean,
    edit_distance,
    error,
    sort_key,
    suggest,
    warning,
)
from journeyc.lang.literals import LiteralError, unescape_string
from journeyc.lang.project import Project, inside_project
from journeyc.lang.span import Span
from journeyc.lang.types import TypeChecker, stray_items, subexpressions
from journeyc.messages.templates import (
    DEFAULT_LIMITS,
    FilterProblem,
    TemplateError,
    big_loops,
    filter_problems,
    template_errors,
    template_globals,
    with_values,
)

# Clauses a journey may hold once; `when`/`every` and `exit when` may repeat.
_SINGLE_CLAUSES: dict[type, str] = {
    ast.Entry: "entry",
    ast.Goal: "goal",
    ast.QuietHours: "quiet hours",
    ast.Cap: "cap",
    ast.Holdout: "holdout",
    ast.UpgradeInPlace: "upgrade in place",
}
_RESERVED = ("user", "event", "now")

_D = TypeVar("_D", ast.Journey, ast.Message, ast.Segment)


def check_project(project: Project, seen_events: Collection[str] | None = None) -> list[Diagnostic]:
    """Every diagnostic of the project, sorted by file and position.

    Parse diagnostics always; the semantic checks only when every file parsed (a file
    with syntax errors would only echo them as unknown names). ``seen_events`` are
    the event names a store has seen (``journeyc validate --db``): the project's
    event names are compared with them too (see :meth:`_Checker._similar_events`).
    """
    diagnostics = list(project.parse_diagnostics)
    if not project.has_syntax_errors:
        try:
            diagnostics += _Checker(project, seen_events).run()
        except RecursionError:
            # A last line of defence: the parser refuses trees nested past the limits
            # of journeyc.lang.depth, well inside what the checker's recursion handles.
            first = project.files[0]
            diagnostics.append(whole_file_too_deep(first.path, first.text))
        if not any(d.is_error for d in diagnostics):
            # The bounds analysis reads the compiled graph: only a valid project has one.
            from journeyc.compile.bounds import project_warnings

            diagnostics += project_warnings(project)
    return sorted(diagnostics, key=sort_key)


@dataclass(frozen=True, slots=True)
class _Scope:
    """Where a step stands: its journey, and whether an event is in focus there."""

    journey: ast.Journey
    event_entry: bool
    event_in_focus: bool = False


class _Checker:
    def __init__(self, project: Project, seen_events: Collection[str] | None = None) -> None:
        self.project = project
        self.seen_events = frozenset(seen_events) if seen_events is not None else None
        # Every use of an event name, in the order checked: name → the clauses, steps
        # and aggregates that name it.
        self.event_uses: dict[str, list[_EventUse]] = defaultdict(list)
        # (message, channel) → the `with` values its part needs → the field reading it.
        self.part_values: dict[tuple[str, str], dict[str, str]] = {}
        self.texts = {f.path: f.text for f in project.files}
        self.diags: list[Diagnostic] = []
        self.types = TypeChecker()
        trees = project.trees
        self.journeys = self._index("journey", [j for t in trees for j in t.journeys])
        self.messages = self._index("message", [m for t in trees for m in t.messages])
        self.segments = self._index("segment", [s for t in trees for s in t.segments])
        self.templates: dict[Path, tuple[str | None, str]] = {}

    def run(self) -> list[Diagnostic]:
        for tree in self.project.trees:
            for decl in tree.declarations:
                if isinstance(decl, ast.Journey):
                    self._journey(decl)
                elif isinstance(decl, ast.Message):
                    self._message(decl)
                else:
                    self._segment(decl)
        self._segment_cycles()
        self._similar_events()
        return self.diags + self.types.diagnostics

    # ------------------------------------------------------------ names
    def _index(self, kind: str, decls: Sequence[_D]) -> dict[str, _D]:
        seen: dict[str, _D] = {}
        for d in decls:
            first = seen.get(d.name)
            if first is None:
                seen[d.name] = d
                continue
            where = f"{first.name_span.file}:{first.name_span.line}"
            bare = isinstance(d, ast.Journey) and d.bare
            self.diags.append(
                error(
                    "duplicate_name",
                    f"there is already a {kind} named `{d.name}` ({where})",
                    d.span if bare else d.name_span,
                    f"a second {kind} `{d.name}`",
                    detail=f"{kind} names are unique across all files of the project",
                    hints=["a file of top-level statements is a journey named after the file"]
                    if bare
                    else [],
                )
            )
        return seen

    def _segment_name(self, name: str, span: Span) -> None:
        """Report ``name`` if no segment has it; ``span`` ends with the name."""
        if name in self.segments:
            return
        self.diags.append(
            error(
                "unknown_segment",
                f"no segment named `{name}`",
                _tail(span, len(name)),
                did_you_mean(name, self.segments) or "unknown segment",
                hints=["declare it: `segment NAME = CONDITION`"],
            )
        )

    def _segment_refs(self, expr: ast.Expr) -> None:
        """Check the segments ``expr`` names, and note the events its aggregates use."""
        for sub in subexpressions(expr):
            if isinstance(sub, ast.SegmentRef):
                self._segment_name(sub.name, sub.span)
            elif isinstance(sub, ast.Aggregate):
                self.event_uses[sub.event].append(sub)

    # ------------------------------------------------------------ expressions
    def _expr(self, expr: ast.Expr, scope: _Scope | None) -> None:
        self.types.infer(expr)
        self._expr_names(expr, scope)

    def _condition(self, expr: ast.Expr, what: str, scope: _Scope | None) -> None:
        self.types.condition(expr, what)
        self._expr_names(expr, scope)

    def _expr_names(self, expr: ast.Expr, scope: _Scope | None) -> None:
        self._segment_refs(expr)
        for name in stray_items(expr):
            self.diags.append(
                warning(
                    "item_outside_list",
                    "`item` here is a profile attribute: it names a list item only inside "
                    "`any`/`all` and aggregates over list items",
                    name.span,
                    "read from the profile",
                    hints=[
                        'e.g. `any(event.products, item.category == "watches")`; '
                        "write `user.item` for a profile attribute named `item`"
                    ],
                )
            )
        if scope is None or scope.event_in_focus or scope.event_entry:
            return
        for sub in subexpressions(expr, into_aggregates=False):
            if isinstance(sub, ast.Name) and sub.name == "event":
                self._event_warning(sub.span, scope)

    def _event_warning(self, span: Span, scope: _Scope) -> None:
        self.diags.append(
            warning(
                "event_without_event_entry",
                f"`event` is always null here: journey `{scope.journey.name}` has no "
                "`when EVENT` entry",
                span,
                "no event in focus",
                detail="users enter this journey from a segment or a schedule, not an event",
                hints=[
                    "use a profile attribute (`user.NAME`), or an aggregate like `last(EVENT).NAME`"
                ],
            )
        )

    # ------------------------------------------------------------ segments
    def _segment(self, seg: ast.Segment) -> None:
        self._condition(seg.expr, f"segment `{seg.name}`", None)
        for sub in subexpressions(seg.expr, into_aggregates=False):
            if isinstance(sub, ast.Name) and sub.name == "event":
                self.diags.append(
                    warning(
                        "event_in_segment",
                        "`event` is always null in a segment: a segment is a condition on "
                        "the user alone",
                        sub.span,
                        "no event in focus",
                        hints=["look at events with an aggregate: `count(EVENT where …)`"],
                    )
                )

    def _segment_cycles(self) -> None:
        """Segments that use themselves, and segments nested too deeply with the
        segments they use written out in place (``MAX_SEGMENT_DEPTH``).

        One depth-first walk with an explicit stack: linear in the segments and their
        references, whatever their shape (following every path, as this once did,
        took exponential time on a lattice of segments that use two segments each),
        and no recursion however long a chain of segments is.
        """
        own: dict[str, int] = {}
        graph: dict[str, list[tuple[str, int]]] = {}
        for name, seg in self.segments.items():
            own[name], refs = depth_and_segment_refs(seg.expr)
            graph[name] = [(r.name, d) for r, d in refs if r.name in self.segments]
        on_path: dict[str, int] = {}  # name → its index in `path`
        done: set[str] = set()
        inlined: dict[str, int] = {}  # the depth with the segments used written out
        via: dict[str, str] = {}  # the segment that makes a segment that deep
        reported: set[frozenset[str]] = set()
        for root in self.segments:
            if root in done:
                continue
            path = [root]
            on_path[root] = 0
            todo = [iter(graph[root])]
            while todo:
                step = next(todo[-1], None)
                if step is None:
                    name = path.pop()
                    todo.pop()
                    del on_path[name]
                    done.add(name)
                    deepest = own[name]
                    for ref, depth in graph[name]:
                        # The used segment's expression goes under its `segment NAME`
                        # (each hop costs the engine frames too). A reference into a
                        # cycle counts as nothing more: the cycle is reported.
                        d = depth + inlined.get(ref, 0)
                        if d > deepest:
                            deepest, via[name] = d, ref
                    inlined[name] = deepest
                    continue
                ref = step[0]
                if ref in on_path:
                    cycle = path[on_path[ref] :]
                    key = frozenset(cycle)
                    if key not in reported:
                        reported.add(key)
                        self._cycle(cycle)
                elif ref not in done:
                    on_path[ref] = len(path)
                    path.append(ref)
                    todo.append(iter(graph[ref]))
        if not reported:
            self._segments_too_deep(inlined, via)

    def _segments_too_deep(self, inlined: dict[str, int], via: dict[str, str]) -> None:
        """Report where a chain of segments first goes past ``MAX_SEGMENT_DEPTH``: the
        least deep of the segments that are too deep (the others use it)."""
        over = [name for name, d in inlined.items() if d > MAX_SEGMENT_DEPTH]
        if not over:
            return
        name = min(over, key=lambda n: (inlined[n], _position(self.segments[n].name_span)))
        chain = [name]
        while chain[-1] in via and len(chain) < 6:
            chain.append(via[chain[-1]])
        shown = " → ".join(f"`{n}`" for n in chain) + (" → …" if chain[-1] in via else "")
        self.diags.append(
            error(
                "too_deep",
                f"segment `{name}` nests {inlined[name]} levels deep with the segments it "
                f"uses written out (the limit is {MAX_SEGMENT_DEPTH})",
                self.segments[name].name_span,
                shown,
                detail=(
                    "a segment that uses a segment is as deep as both together: the "
                    "engine works out when a segment can change with the segments it "
                    "uses written out in place"
                ),
                hints=["use fewer layers of segments, or shorter conditions in them"],
            )
        )

    def _cycle(self, cycle: list[str]) -> None:
        first = min(cycle, key=lambda n: _position(self.segments[n].name_span))
        i = cycle.index(first)
        ring = [*cycle[i:], *cycle[:i], first]
        seg = self.segments[first]
        shown = " → ".join(f"`{n}`" for n in ring)
        summary = (
            f"segment `{first}` refers to itself"
            if len(cycle) == 1
            else f"segments refer to each other in a circle: {shown}"
        )
        self.diags.append(
            error(
                "segment_cycle",
                summary,
                seg.name_span,
                shown,
                detail="a segment cannot be defined in terms of itself",
            )
        )

    # ------------------------------------------------------------ messages
    def _message(self, msg: ast.Message) -> None:
        parts: dict[str, ast.Part] = {}
        for part in msg.parts:
            head = part.span.head(len(part.channel))
            if part.channel not in CHANNELS:
                self.diags.append(
                    error(
                        "unknown_channel",
                        f"`{part.channel}` is not a channel",
                        head,
                        did_you_mean(part.channel, CHANNELS) or "unknown channel",
                        hints=[f"channels: {', '.join(CHANNELS)}"],
                    )
                )
            elif part.channel in parts:
                self.diags.append(
                    error(
                        "duplicate_part",
                        f"message `{msg.name}` has two `{part.channel}` parts",
                        head,
                        _first_at(parts[part.channel].span, head),
                        hints=["put all the fields of a channel in one part"],
                    )
                )
            else:
                parts[part.channel] = part
            self._fields(msg, part)

    def _fields(self, msg: ast.Message, part: ast.Part) -> None:
        known = CHANNEL_FIELDS.get(part.channel)
        seen: dict[tuple[str, str | None], ast.Field] = {}
        for f in part.fields:
            head = f.span.head(len(f.name))
            if known is not None and f.name not in known:
                self.diags.append(
                    error(
                        "unknown_field",
                        f"a message's `{part.channel}` part has no field `{f.name}`",
                        head,
                        did_you_mean(f.name, known) or "unknown field",
                        hints=[f"`{part.channel}` fields: {', '.join(known)}"],
                    )
                )
            key = (f.name, f.locale)
            if key in seen:
                which = f"`{f.name} {f.locale}`" if f.locale else f"`{f.name}`"
                self.diags.append(
                    error(
                        "duplicate_field",
                        f"the `{part.channel}` part of `{msg.name}` has {which} twice",
                        head,
                        _first_at(seen[key].span, head),
                    )
                )
            else:
                seen[key] = f
            if f.is_file:
                self._template_file(f.value)
            else:
                self._liquid(f.value)

    def _liquid(self, s: ast.String) -> list[int] | None:
        """Report Liquid errors of a string literal; the source offset of each of its
        characters (plus one past the end), or None when it holds a bad escape."""
        text = self.texts.get(s.span.file, "")
        try:
            value, offsets = unescape_string(text[s.span.start : s.span.end])
        except LiteralError:
            return None  # the parser has reported the escape
        for offset, length, report in _template_problems(value):
            if offset is None:
                span = s.span
            else:
                start = offsets[min(offset, len(offsets) - 1)]
                end = offsets[min(offset + length, len(offsets) - 1)]
                span = Span.point(s.span.file, text, s.span.start + start, max(1, end - start))
            self.diags.append(report(span))
        return [s.span.start + o for o in offsets]

    def _template_file(self, s: ast.String) -> None:
        path = self.project.file_dir(s.span.file) / s.value
        roots = self.project.template_roots(s.span.file)
        if not inside_project(path, roots):
            where = " or ".join(f"`{r.as_posix()}`" for r in roots)
            self.diags.append(
                error(
                    "file_outside_project",
                    f"the template file `{s.value}` is outside the project",
                    s.span,
                    f"resolves to {path.resolve().as_posix()}",
                    hints=[
                        f"template files must be inside {where} (after `..` and "
                        "symbolic links are followed)"
                    ],
                )
            )
            return
        text, reason = self._template(path)
        if text is None:
            self.diags.append(
                error(
                    "missing_file",
                    f"cannot read the template file `{s.value}`: {reason}",
                    s.span,
                    f"looked for {path.as_posix()}",
                    hints=["a template path is relative to the journey file's directory"],
                )
            )

    def _template(self, path: Path) -> tuple[str | None, str]:
        """The text of a template file (None and why when it cannot be read); the
        first time, its Liquid errors are reported in that file."""
        if path in self.templates:
            return self.templates[path]
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            self.templates[path] = (None, "it is not UTF-8 text")
            return self.templates[path]
        except OSError as exc:
            reason = "no such file" if not path.exists() else exc.strerror or "cannot read it"
            self.templates[path] = (None, reason)
            return self.templates[path]
        self.templates[path] = (text, "")
        name = path.as_posix()
        self.project.extra_sources[name] = text
        for offset, length, report in _template_problems(text):
            span = (
                Span.whole_file(name) if offset is None else Span.point(name, text, offset, length)
            )
            self.diags.append(report(span))
        return self.templates[path]

    def _part_sources(self, msg: ast.Message, channel: str) -> Iterator[tuple[str, str]]:
        """Each field of the message's part for ``channel`` with its template text
        (a ``file`` field's file, when it is inside the project and readable)."""
        for part in msg.parts:
            if part.channel != channel:
                continue
            for f in part.fields:
                source: str | None = f.value.value
                if f.is_file:
                    path = self.project.file_dir(f.span.file) / f.value.value
                    roots = self.project.template_roots(f.span.file)
                    source = self._template(path)[0] if inside_project(path, roots) else None
                if source is not None:
                    yield f.name, source

    def _uses_event(self, msg: ast.Message, channel: str) -> bool:
        """Whether the message's part for ``channel`` reads ``event``."""
        return any(
            "event" in template_globals(source) for _, source in self._part_sources(msg, channel)
        )

    # ------------------------------------------------------------ journeys
    def _journey(self, j: ast.Journey) -> None:
        event_entry = any(isinstance(c, ast.WhenEvent) for c in j.clauses)
        if not any(isinstance(c, ast.WhenEvent | ast.WhenSegment | ast.Every) for c in j.clauses):
            self.diags.append(
                warning(
                    "no_entry",
                    f"journey `{j.name}` has no entry: nobody will ever enter it",
                    self._first_line(j.span) if j.bare else j.name_span,
                    "no `when` or `every` clause",
                    hints=["add `when EVENT`, `when entering SEGMENT` or `every … for …`"],
                )
            )
        outer = _Scope(j, event_entry)
        focused = _Scope(j, event_entry, event_in_focus=True)
        first: dict[type, ast.Clause] = {}
        for c in j.clauses:
            kind = type(c)
            if kind in _SINGLE_CLAUSES:
                if kind in first:
                    self.diags.append(
                        error(
                            "duplicate_clause",
                            f"journey `{j.name}` has two `{_SINGLE_CLAUSES[kind]}` clauses",
                            c.span,
                            _first_at(first[kind].span, c.span),
                            hints=["keep one of them"],
                        )
                    )
                else:
                    first[kind] = c
            if isinstance(c, ast.WhenEvent | ast.ExitWhen | ast.Goal):
                self.event_uses[c.event].append(c)
            if isinstance(c, ast.WhenEvent | ast.ExitWhen | ast.Goal) and c.where is not None:
                self._condition(c.where, "a `where`", focused)
            elif isinstance(c, ast.WhenSegment | ast.Every):
                self._clause_segment(c)
        self._step_names(j)
        self._block(j.steps, outer)

    def _clause_segment(self, c: ast.WhenSegment | ast.Every) -> None:
        name = c.segment
        if name is not None:
            self._segment_name(name, c.span)

    def _step_names(self, j: ast.Journey) -> None:
        seen: dict[str, ast.Label] = {}
        for step in ast.walk_steps(j.steps):
            label = step.label
            if label is None:
                continue
            if label.name in seen:
                self.diags.append(
                    error(
                        "duplicate_step",
                        f"journey `{j.name}` has two steps named `{label.name}`",
                        label.span,
                        _first_at(seen[label.name].span, label.span),
                        detail="step names must be unique in a journey: reports and "
                        "upgrades find steps by them",
                    )
                )
            else:
                seen[label.name] = label

    def _block(self, steps: Sequence[ast.Step], scope: _Scope) -> None:
        exit_at: ast.Step | None = None
        reported = False
        for step in steps:
            if exit_at is not None and not reported:
                reported = True
                self.diags.append(
                    warning(
                        "unreachable_step",
                        "this step never runs",
                        self._first_line(step.span),
                        f"it follows the `exit` on line {exit_at.span.line}"
                        if isinstance(exit_at, ast.ExitStep)
                        else f"every path through line {exit_at.span.line} ends in `exit`",
                    )
                )
            self._step(step, scope)
            if exit_at is None and _always_exits(step):
                exit_at = step

    def _step(self, step: ast.Step, scope: _Scope) -> None:
        if isinstance(step, ast.WaitFor):
            self._wait_for(step, scope)
        elif isinstance(step, ast.If):
            for branch in step.branches:
                self._condition(branch.cond, "an `if`", scope)
                self._block(branch.steps, scope)
            if step.orelse is not None:
                self._block(step.orelse, scope)
        elif isinstance(step, ast.Split):
            self._split(step, scope)
        elif isinstance(step, ast.Send):
            self._send(step, scope)
        elif isinstance(step, ast.SetAttr | ast.UnsetAttr):
            if step.name in _RESERVED:
                self.diags.append(
                    error(
                        "bad_set",
                        f"`{step.name}` is not a profile attribute and cannot be changed",
                        self._first_line(step.span),
                        "`user`, `event` and `now` are names of their own",
                    )
                )
            if isinstance(step, ast.SetAttr):
                self._expr(step.value, scope)
        elif isinstance(step, ast.Track):
            self.event_uses[step.event].append(step)
            self._args(step.args, scope)

    def _wait_for(self, step: ast.WaitFor, scope: _Scope) -> None:
        self.event_uses[step.event].append(step)
        focused = _Scope(scope.journey, scope.event_entry, event_in_focus=True)
        if step.where is not None:
            self._condition(step.where, "a `where`", focused)
        seen: dict[str | None, ast.OnBranch] = {}
        for b in step.branches:
            head = self._first_line(b.span)
            if b.event is not None and b.event != step.event:
                # `on timout` is read as an event: suggest what the wait can end on.
                near = closest(b.event, {step.event, "timeout"})
                self.diags.append(
                    error(
                        "bad_on_branch",
                        f"`on {b.event}` names another event than the wait (`{step.event}`)",
                        head,
                        suggest(f"on {n}" for n in near)
                        or f"this wait only ends on `{step.event}` or `timeout`",
                        hints=[f"write `on {step.event}` or `on timeout`"],
                    )
                )
            elif b.event in seen:
                what = "on timeout" if b.event is None else f"on {b.event}"
                self.diags.append(
                    error(
                        "bad_on_branch",
                        f"`{what}` is given twice",
                        head,
                        _first_at(seen[b.event].span, head),
                    )
                )
            else:
                seen[b.event] = b
            self._block(b.steps, focused if b.event is not None else scope)

    def _split(self, step: ast.Split, scope: _Scope) -> None:
        head = self._first_line(step.span)
        if len(step.arms) < 2:
            self.diags.append(
                error(
                    "bad_split",
                    "a split needs at least 2 arms",
                    head,
                    f"this split has {len(step.arms)}",
                    hints=["add an arm, e.g. `50% as control`"],
                )
            )
        total = round(sum(a.percent.value for a in step.arms), 6)
        if total != 100:
            self.diags.append(
                error(
                    "bad_split",
                    f"the arms of this split add up to {total:g}%, not 100%",
                    head,
                    " + ".join(f"{a.percent.raw}%" for a in step.arms) + f" = {total:g}%",
                )
            )
        names: dict[str, ast.Label] = {}
        for arm in step.arms:
            if arm.label is not None:
                if arm.label.name in names:
                    self.diags.append(
                        error(
                            "bad_split",
                            f"two arms of this split are named `{arm.label.name}`",
                            arm.label.span,
                            _first_at(names[arm.label.name].span, arm.label.span),
                        )
                    )
                else:
                    names[arm.label.name] = arm.label
            self._block(arm.steps, scope)

    def _send(self, step: ast.Send, scope: _Scope) -> None:
        targets = step.targets
        checked: set[int] = set()
        passed = {a.name for a in step.args}
        missing: set[str] = set()  # the `with` values reported at this send
        for i, t in enumerate(targets):
            if t.channel not in CHANNELS:
                self.diags.append(
                    error(
                        "unknown_channel",
                        f"`{t.channel}` is not a channel",
                        t.span.head(len(t.channel)),
                        did_you_mean(t.channel, CHANNELS) or "unknown channel",
                        hints=[f"channels: {', '.join(CHANNELS)}"],
                    )
                )
            ref = t.message or next((u.message for u in targets[i + 1 :] if u.message), None)
            if ref is None:
                if i == len(targets) - 1:
                    self._missing_message(step, t)
                continue
            first = id(ref) not in checked
            checked.add(id(ref))
            if ref.inline is not None:
                if first:
                    self._inline(ref.inline, scope, passed)
            elif ref.name is not None:
                self._named(ref, t, scope, first)
                self._with_values(ref, t.channel, passed, missing)
        self._args(step.args, scope)

    def _named(self, ref: ast.MessageRef, t: ast.Target, scope: _Scope, first: bool) -> None:
        """Check a send target's declared message; ``first`` is false when an earlier
        target of the send uses the same message."""
        name = ref.name or ""
        msg = self.messages.get(name)
        if msg is None:
            if first:
                self.diags.append(
                    error(
                        "unknown_message",
                        f"no message named `{name}`",
                        ref.span,
                        did_you_mean(name, self.messages) or "unknown message",
                        hints=["declare it with `message NAME` and a part per channel"],
                    )
                )
        elif t.channel not in CHANNELS:
            return
        elif t.channel not in {p.channel for p in msg.parts}:
            self._missing_part(msg, t)
        elif not (scope.event_entry or scope.event_in_focus) and self._uses_event(msg, t.channel):
            self.diags.append(
                warning(
                    "event_without_event_entry",
                    f"message `{msg.name}` uses `event` in its `{t.channel}` part, which is "
                    f"always null in journey `{scope.journey.name}`",
                    ref.span,
                    f"this message reads `event` when sent on `{t.channel}`",
                    detail="users enter this journey from a segment or a schedule, not an event",
                )
            )

    def _missing_part(self, msg: ast.Message, t: ast.Target) -> None:
        has = ", ".join(
            f"`{c}`" for c in dict.fromkeys(p.channel for p in msg.parts) if c in CHANNELS
        )
        self.diags.append(
            error(
                "unknown_channel_part",
                f"message `{msg.name}` has no `{t.channel}` part",
                t.span.head(len(t.channel)),
                f"`{msg.name}` has parts for: {has or 'no channel'}",
                hints=[f"add a `{t.channel}` part to `{msg.name}`, or send on another channel"],
            )
        )

    def _missing_message(self, step: ast.Send, last: ast.Target) -> None:
        bare = [t.channel for t in step.targets if t.message is None]
        self.diags.append(
            error(
                "missing_message",
                f"no message to send on `{last.channel}`: "
                f"`send {' or '.join(t.channel for t in step.targets)}` names none after it",
                last.span,
                "no message after this channel",
                detail="each channel uses the message written after it, or the next one written",
                hints=[f'name a message: `send {bare[-1]} MESSAGE` or `send {bare[-1]} "Hi"`'],
            )
        )

    def _with_values(
        self, ref: ast.MessageRef, channel: str, passed: set[str], missing: set[str]
    ) -> None:
        """Warn when the part of the declared message ``ref`` for ``channel`` reads a
        ``with`` value that the send does not pass (once per value and send)."""
        msg = self.messages.get(ref.name or "")
        if msg is None or channel not in CHANNELS:
            return
        for name, where in self._part_values(msg, channel).items():
            if name in passed or name in missing:
                continue
            missing.add(name)
            self.diags.append(_missing_value(name, f"`{msg.name}` ({where})", ref.span))

    def _part_values(self, msg: ast.Message, channel: str) -> dict[str, str]:
        """The ``with`` values the message's ``channel`` part needs
        (:func:`~journeyc.messages.templates.with_values`), each with the first
        field that reads it (``"its push title"``)."""
        key = (msg.name, channel)
        found = self.part_values.get(key)
        if found is not None:
            return found
        found = {}
        for field_name, source in self._part_sources(msg, channel):
            for name in with_values(source):
                found.setdefault(name, f"its {channel} {field_name}")
        self.part_values[key] = found
        return found

    def _inline(self, s: ast.String, scope: _Scope, passed: Collection[str] = ()) -> None:
        offsets = self._liquid(s)
        if offsets is None:
            return
        text = self.texts.get(s.span.file, "")
        for name, index in with_values(s.value).items():
            if name not in passed:
                start = offsets[min(index, len(offsets) - 1)]
                span = Span.point(s.span.file, text, start, len(name))
                self.diags.append(_missing_value(name, "this message", span))
        if scope.event_entry or scope.event_in_focus:
            return
        for index in template_globals(s.value).get("event", []):
            start = offsets[min(index, len(offsets) - 1)]
            self._event_warning(
                Span.point(s.span.file, self.texts.get(s.span.file, ""), start, 5), scope
            )

    def _args(self, args: Iterable[ast.Arg], scope: _Scope) -> None:
        seen: dict[str, ast.Arg] = {}
        for a in args:
            if a.name in seen:
                self.diags.append(
                    error(
                        "duplicate_arg",
                        f"`{a.name}` is given twice",
                        a.span.head(len(a.name)),
                        _first_at(seen[a.name].span, a.span),
                    )
                )
            else:
                seen[a.name] = a
            self._expr(a.value, scope)

    # ------------------------------------------------------------ event names
    def _similar_events(self) -> None:
        """Warn about event names that look misspelt (``similar_event_name``).

        Every event name the project uses is compared with every other: in ``when``,
        ``exit when``, ``goal``, ``wait for``, ``track`` and aggregates (``on EVENT``
        repeats its ``wait for`` and is not counted). Two names are close when one
        edit turns one into the other (a letter added, dropped or changed, or two
        neighbours swapped), unless they differ only in their numbers (``level_1``,
        ``level_2``) or one is shorter than four characters. Of two close names, one
        used twice or more and the other once, the one used once is warned about;
        both used once, the shorter is (a dropped letter is the likeliest slip), else
        the one written later; both used twice or more, neither: they are meant. A
        name is only suggested when it is not itself warned about.

        With the event names a store has seen (``validate --db``), those decide: a
        name the store never saw that is close to one it did is warned about at
        every use, and a pair with a name the store has seen is left to that rule.
        """
        uses = self.event_uses
        seen = self.seen_events
        first = {name: min(_position(u.span) for u in found) for name, found in uses.items()}
        close = _close_pairs(uses)

        def beats(other: str, name: str) -> bool:
            """Whether ``other`` is the likely spelling of the close ``name``."""
            if seen is not None and (name in seen or other in seen):
                return False  # the store decides
            mine, theirs = len(uses[name]), len(uses[other])
            if mine >= 2:
                return False
            if theirs != mine:
                return theirs > mine
            if len(other) != len(name):
                return len(other) > len(name)
            return first[other] < first[name]

        suspect = {n for n in uses if any(beats(m, n) for m in close.get(n, ()))}
        for name in sorted(uses, key=lambda n: first[n]):
            if seen is not None and name in seen:
                continue
            known = sorted(_close_to(name, seen)) if seen else []
            if known:
                for use in uses[name]:
                    self.diags.append(self._unseen_event(name, known, use))
                continue
            # Suggest only names that are not suspect themselves.
            better = sorted(
                (m for m in close.get(name, ()) if beats(m, name) and m not in suspect),
                key=lambda m: (-len(uses[m]), first[m]),
            )
            if better:
                self.diags.append(self._similar_event(name, better, uses[name][0]))

    def _event_span(self, use: _EventUse) -> Span:
        """The event name in the clause, step or aggregate ``use``."""
        span = use.span
        text = self.texts.get(span.file, "")
        m = _BEFORE_EVENT[type(use)].match(text, span.start, span.end)
        if m is not None:
            name = _EVENT_TOKEN.match(text, m.end(), span.end)
            if name is not None:
                return Span.point(span.file, text, name.start(), name.end() - name.start())
        return self._first_line(span)

    def _similar_event(self, name: str, better: list[str], use: _EventUse) -> Diagnostic:
        best = better[0]
        n = len(self.event_uses[best])
        where = self.event_uses[best][0].span
        return warning(
            "similar_event_name",
            f"event `{name}` is used only here, and `{best}`, one letter away, is used "
            f"{'once' if n == 1 else f'{n} times'} elsewhere in the project",
            self._event_span(use),
            suggest(better),
            detail=f"`{best}` is used at {where.file}:{where.line}",
            hints=[_EXACT_EVENT_NAME],
        )

    def _unseen_event(self, name: str, known: list[str], use: _EventUse) -> Diagnostic:
        return warning(
            "similar_event_name",
            f"the store has never seen an event `{name}`, but has seen "
            + " and ".join(f"`{k}`" for k in known[:3]),
            self._event_span(use),
            suggest(known),
            detail="compared with the event names in the store given with `--db`",
            hints=[_EXACT_EVENT_NAME],
        )

    # ------------------------------------------------------------ spans
    def _first_line(self, span: Span) -> Span:
        """``span`` cut at the end of its first line (a block step's header)."""
        text = self.texts.get(span.file, "")
        end = text.find("\n", span.start, span.end)
        if end < 0:
            return span
        return Span.point(span.file, text, span.start, len(text[span.start : end].rstrip()))


def _always_exits(step: ast.Step) -> bool:
    """Whether every path through ``step`` ends with ``exit``."""
    if isinstance(step, ast.ExitStep):
        return True
    if isinstance(step, ast.If):
        return step.orelse is not None and all(_block_exits(b) for b in ast.child_blocks(step))
    if isinstance(step, ast.Split):
        return all(_block_exits(a.steps) for a in step.arms)
    if isinstance(step, ast.WaitFor):
        # `wait for` runs one branch; a case without a branch goes on after the wait.
        handled = {b.event for b in step.branches if b.event in (None, step.event)}
        return handled == {None, step.event} and all(
            _block_exits(b.steps) for b in step.branches if b.event in handled
        )
    return False


def _block_exits(steps: Sequence[ast.Step]) -> bool:
    return any(_always_exits(s) for s in steps)


# What names an event: the uses `similar_event_name` compares.
_EventUse: TypeAlias = (
    ast.WhenEvent | ast.ExitWhen | ast.Goal | ast.WaitFor | ast.Track | ast.Aggregate
)

# The text from the start of a clause, step or aggregate up to its event name.
_BEFORE_EVENT: dict[type, re.Pattern[str]] = {
    ast.WhenEvent: re.compile(r"when\s+"),
    ast.ExitWhen: re.compile(r"exit\s+when\s+"),
    ast.Goal: re.compile(r"goal\s+"),
    ast.WaitFor: re.compile(r"wait\s+for\s+"),
    ast.Track: re.compile(r"track\s+"),
    ast.Aggregate: re.compile(r"[A-Za-z_]+\s*\(\s*"),
}
_EXACT_EVENT_NAME = (
    "an event name must be exactly the name the app sends (lower-cased, with "
    "spaces, dashes and dots as `_`), or nothing ever matches it"
)
_EVENT_TOKEN = re.compile(r'[A-Za-z_][A-Za-z0-9_]*|"(?:[^"\\\n]|\\.)*"')
_DIGITS = re.compile(r"[0-9]+")


_SHORTEST_COMPARED = 4


def _close(a: str, b: str) -> bool:
    """Whether one edit turns ``a`` into ``b``, both have at least
    ``_SHORTEST_COMPARED`` characters (one letter is too much of a short name to
    call a slip), and they differ in more than their numbers (``level_1`` and
    ``level_2`` are meant to differ)."""
    return (
        min(len(a), len(b)) >= _SHORTEST_COMPARED
        and edit_distance(a, b, 1) == 1
        and _DIGITS.sub("0", a) != _DIGITS.sub("0", b)
    )


def _close_pairs(names: Iterable[str]) -> dict[str, list[str]]:
    """Each name with the names :func:`_close` to it (only names whose lengths
    differ by at most one are compared)."""
    by_length: dict[int, list[str]] = defaultdict(list)
    for name in sorted(names):
        by_length[len(name)].append(name)
    close: dict[str, list[str]] = defaultdict(list)
    for length, group in by_length.items():
        longer = by_length.get(length + 1, [])
        for i, a in enumerate(group):
            for b in [*group[i + 1 :], *longer]:
                if _close(a, b):
                    close[a].append(b)
                    close[b].append(a)
    return close


def _close_to(name: str, names: Iterable[str]) -> Iterable[str]:
    return (n for n in names if abs(len(n) - len(name)) <= 1 and _close(name, n))


def _template_problems(
    source: str,
) -> Iterator[tuple[int | None, int, Callable[[Span], Diagnostic]]]:
    """Every problem of a Liquid template: where it is in ``source`` (None: the whole
    template) and how long, and its diagnostic at a span."""
    for e in template_errors(source):
        yield e.offset, e.length, partial(_liquid_error, e)
    for e in big_loops(source):
        yield e.offset or 0, e.length, partial(_big_loop, e)
    for p in filter_problems(source):
        yield p.offset, p.length, partial(_filter_problem, p)


def _missing_value(name: str, what: str, span: Span) -> Diagnostic:
    return warning(
        "missing_with_value",
        f"{what} reads `{name}`, which this send does not pass",
        span,
        f"no `{name}` here: it renders as empty text",
        hints=[
            f"pass it: `with {name} = …`",
            f'or, where it may be missing, give it a default: `{{{{ {name} | default: "…" }}}}`',
        ],
    )


def _filter_problem(p: FilterProblem, span: Span) -> Diagnostic:
    if p.kind == "unknown":
        return error(
            "unknown_filter",
            p.message,
            span,
            p.label,
            detail="a template that calls an unknown filter fails at every send: the "
            "send is suppressed with render_error",
            hints=[
                "filters are Liquid's own (`upcase`, `default`, `date`, …) and journeyc's "
                "recommendation filters (`top_sellers`, `popular`, `cross_sell`)"
            ],
        )
    return error(
        "bad_filter_args",
        p.message,
        span,
        p.label,
        detail="a filter given arguments it cannot take fails at every send: the send "
        "is suppressed with render_error",
    )


def _liquid_error(e: TemplateError, span: Span) -> Diagnostic:
    return error(
        "liquid_syntax_error",
        f"this template does not parse: {e.message}",
        span,
        e.message,
        hints=["templates are Liquid: `{{ user.first_name }}`, `{% if … %}…{% endif %}`"],
    )


def _big_loop(e: TemplateError, span: Span) -> Diagnostic:
    return warning(
        "template_loop_over_limit",
        "this template loop goes past the render limit: the send will be suppressed",
        span,
        e.message,
        hints=[
            f"by default a message renders at most {DEFAULT_LIMITS.loop_iterations:,} loop "
            "iterations (journeyc.toml: [render] loop_iterations); a send past the limit "
            "is suppressed with render_error"
        ],
    )


def _tail(span: Span, length: int) -> Span:
    """The last ``length`` characters of ``span``, on its last line."""
    return Span(
        span.file,
        span.end - length,
        span.end,
        span.end_line,
        span.end_column - length,
        span.end_line,
        span.end_column,
    )


def _position(span: Span) -> tuple[str, int]:
    return (span.file, span.start)


def _first_at(first: Span, here: Span) -> str:
    """A label pointing from a repeat back at the first occurrence."""
    if first.line == here.line:
        return f"the first is at column {first.column}"
    return f"the first is on line {first.line}"
