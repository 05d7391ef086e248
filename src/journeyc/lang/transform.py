"""Turning lark's parse tree into the typed AST, checking literal tokens on the way."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from lark import Token, Transformer, Tree, v_args
from lark.tree import Meta

from journeyc.lang import ast
from journeyc.lang.depth import MAX_BLOCK_DEPTH, MAX_EXPR_DEPTH
from journeyc.lang.diagnostics import Diagnostic, error, warning
from journeyc.lang.literals import (
    LiteralError,
    is_name,
    normalize_event,
    parse_duration,
    parse_number,
    parse_percent,
    parse_time,
    unescape_string,
)
from journeyc.lang.span import Span
from journeyc.lang.testfile import CaseRules, JourneyTest

# Words that are operators or literals in expressions. lark's contextual lexer would
# read them as names where a name fits (`a and and`), so the AST builder refuses them.
RESERVED = frozenset(
    {"and", "or", "not", "in", "between", "true", "false", "null", "where", "within", "segment"}
)

_CLAUSES = (
    ast.WhenEvent,
    ast.WhenSegment,
    ast.Every,
    ast.Entry,
    ast.ExitWhen,
    ast.Goal,
    ast.QuietHours,
    ast.Cap,
    ast.Holdout,
    ast.UpgradeInPlace,
)


@dataclass(frozen=True, slots=True)
class _Where:
    expr: ast.Expr


@dataclass(frozen=True, slots=True)
class _Within:
    duration: ast.Duration


@dataclass(frozen=True, slots=True)
class _Per:
    duration: ast.Duration


@dataclass(frozen=True, slots=True)
class _OnDay:
    day: str
    span: Span


@dataclass(frozen=True, slots=True)
class _Args:
    args: tuple[ast.Arg, ...]


@dataclass(frozen=True, slots=True)
class _CallArg:
    expr: ast.Expr
    where: ast.Expr | None
    within: ast.Duration | None
    span: Span


@dataclass(frozen=True, slots=True)
class _Event:
    name: str
    span: Span


@dataclass(frozen=True, slots=True)
class _Keyword:
    word: str
    span: Span


def bare_journey_name(path: str) -> str:
    """The name of a file's top-level journey: the file name, normalized."""
    return normalize_event(PurePath(path).stem)


class ToAst(Transformer[Token, ast.SourceFile], CaseRules):
    """A lark Transformer from the parse tree to :mod:`journeyc.lang.ast` nodes.

    Problems with literal tokens (``30x``, ``25:00``) are collected in
    ``diagnostics`` and a stand-in value is used, so that one run reports them all.
    """

    def __init__(self, path: str, text: str) -> None:
        super().__init__()
        self.path = path
        self.text = text
        self.diagnostics: list[Diagnostic] = []
        # Set by `transform` when the tree nests past a limit of journeyc.lang.depth;
        # `find_too_deep` then says where, on the AST.
        self.too_deep = False

    def transform(self, tree: Tree[Token]) -> ast.SourceFile:
        """The AST of ``tree``, built without recursion, measuring nesting on the way.

        lark's ``Transformer`` recurses once per level of the tree, and sums nest to
        the left in the grammar, so a 3000-term `+` chain overflowed Python's stack.
        This goes through the tree in post-order with explicit stacks (as lark's
        ``Transformer_NonRecursive``), keeping beside each value the height of its
        expression and of its blocks, in the AST's terms (see
        :mod:`journeyc.lang.depth`); ``too_deep`` is set when one passes a limit.
        Every rule method builds one node from built children, without recursing.
        """
        order: list[Any] = []
        todo: list[Any] = [tree]
        while todo:
            t = todo.pop()
            order.append(t)
            if isinstance(t, Tree):
                todo.extend(t.children)
        values: list[Any] = []
        heights: list[int] = []  # the AST height of each value's expression (leaf: 1)
        blocks: list[int] = []  # how many blocks deep each value's steps go
        # lark's own dispatch to the rule methods (with `v_args`); it is untyped.
        call: Callable[[Tree[Token], list[Any]], Any] = self._call_userfunc
        for t in reversed(order):
            if not isinstance(t, Tree):  # a token or a missing optional (None)
                values.append(t)
                heights.append(0)
                blocks.append(0)
                continue
            n = len(t.children)
            data = t.data
            if n:
                args = values[-n:]
                del values[-n:]
                if data in _CHAINS:
                    # `a and b and c` becomes ((a and b) and c): each operator adds one.
                    h = heights[-n]
                    for k in heights[-n + 1 :]:
                        h = 1 + (h if h > k else k)
                else:
                    h = max(heights[-n:])
                b = max(blocks[-n:])
                del heights[-n:], blocks[-n:]
            else:
                args, h, b = [], 0, 0
            if data in _EXPRESSIONS:
                h += 1
            elif data in _BLOCKS:
                b += 1
            if h > MAX_EXPR_DEPTH or b > MAX_BLOCK_DEPTH:
                self.too_deep = True
            values.append(call(t, args))
            heights.append(h)
            blocks.append(b)
        result: ast.SourceFile = values[0]
        return result

    # ------------------------------------------------------------ helpers
    def _span(self, meta: Meta) -> Span:
        if getattr(meta, "empty", True):
            return Span.whole_file(self.path)
        return Span(
            self.path,
            meta.start_pos,
            meta.end_pos,
            meta.line,
            meta.column,
            meta.end_line,
            meta.end_column,
        )

    def _tok(self, tok: Token) -> Span:
        assert tok.start_pos is not None and tok.end_pos is not None
        return Span(
            self.path,
            tok.start_pos,
            tok.end_pos,
            tok.line or 1,
            tok.column or 1,
            tok.end_line or 1,
            tok.end_column or 1,
        )

    def _literal_error(self, code: str, tok: Token, exc: LiteralError) -> None:
        span = self._tok(tok)
        if exc.length:
            assert tok.start_pos is not None
            span = Span.point(self.path, self.text, tok.start_pos + exc.offset, exc.length)
        self.diagnostics.append(error(code, exc.message, span))

    def _duration(self, tok: Token, positive: bool = True) -> ast.Duration:
        try:
            seconds = parse_duration(str(tok))
        except LiteralError as exc:
            self._literal_error("bad_duration", tok, exc)
            return ast.Duration(seconds=1, span=self._tok(tok))
        if positive and seconds == 0:
            self.diagnostics.append(
                error(
                    "zero_duration",
                    f"`{tok}` is zero: a duration here must be longer than that",
                    self._tok(tok),
                )
            )
        return ast.Duration(seconds=seconds, span=self._tok(tok))

    def _time(self, tok: Token) -> ast.TimeOfDay:
        try:
            hour, minute = parse_time(str(tok))
        except LiteralError as exc:
            self._literal_error("bad_time", tok, exc)
            hour, minute = 0, 0
        return ast.TimeOfDay(hour=hour, minute=minute, span=self._tok(tok))

    def _percent(self, tok: Token) -> ast.Percent:
        value, raw = parse_percent(str(tok))
        return ast.Percent(value=value, raw=raw, span=self._tok(tok))

    def _string(self, tok: Token) -> ast.String:
        try:
            value, _ = unescape_string(str(tok))
        except LiteralError as exc:
            self._literal_error("bad_escape", tok, exc)
            value = str(tok)[1:-1]
        return ast.String(value=value, span=self._tok(tok))

    @staticmethod
    def _pick(children: list[Any], kind: type) -> Any:
        for c in children:
            if isinstance(c, kind):
                return c
        return None

    def _label(self, children: list[Any]) -> ast.Label | None:
        label: ast.Label | None = self._pick(children, ast.Label)
        return label

    def _where(self, children: list[Any]) -> ast.Expr | None:
        w = self._pick(children, _Where)
        return w.expr if w else None

    def _with_args(self, children: list[Any]) -> tuple[ast.Arg, ...]:
        """The values of a ``with`` among ``children``; none without one."""
        w = self._pick(children, _Args)
        return w.args if w else ()

    # ------------------------------------------------------------ file and declarations
    @v_args(meta=True)
    def start(self, meta: Meta, children: list[Any]) -> ast.SourceFile:
        decls: list[ast.Declaration] = []
        loose: list[Any] = []
        tests: list[JourneyTest] = []
        for c in children:
            if isinstance(c, ast.Journey | ast.Message | ast.Segment):
                decls.append(c)
            elif isinstance(c, JourneyTest):
                tests.append(c)
            else:
                loose.append(c)
        if loose:
            name = bare_journey_name(self.path)
            first, last = loose[0].span, loose[-1].span
            span = Span(
                self.path,
                first.start,
                last.end,
                first.line,
                first.column,
                last.end_line,
                last.end_column,
            )
            named = [d for d in decls if isinstance(d, ast.Journey)]
            if named:
                self.diagnostics.append(
                    error(
                        "mixed_journey_forms",
                        "a file holds either top-level journey statements or `journey` blocks, "
                        "not both",
                        first,
                        hints=[f"put the top-level statements in a `journey {name}` block"],
                    )
                )
            clauses, steps = self._split_statements(loose)
            bare = ast.Journey(
                name=name,
                clauses=clauses,
                steps=steps,
                bare=True,
                name_span=Span(self.path, 0, 0, 1, 1, 1, 1),
                span=span,
            )
            decls.insert(0, bare)
        return ast.SourceFile(
            path=self.path, declarations=tuple(decls), span=self._span(meta), tests=tuple(tests)
        )

    def _split_statements(
        self, stmts: list[Any]
    ) -> tuple[tuple[ast.Clause, ...], tuple[ast.Step, ...]]:
        clauses: list[ast.Clause] = []
        steps: list[ast.Step] = []
        for s in stmts:
            if isinstance(s, _CLAUSES):
                if steps:
                    self.diagnostics.append(
                        warning(
                            "clause_after_step",
                            "journey clauses come before the steps",
                            s.span,
                            "this clause follows a step",
                            hints=["`journeyc fmt` moves clauses to the top of the journey"],
                        )
                    )
                clauses.append(s)
            else:
                steps.append(s)
        return tuple(clauses), tuple(steps)

    @v_args(meta=True)
    def journey(self, meta: Meta, children: list[Any]) -> ast.Journey:
        name_tok = children[0]
        rest = children[1:]
        title = None
        if rest and isinstance(rest[0], Token) and rest[0].type == "STRING":
            title = self._string(rest[0]).value
            rest = rest[1:]
        clauses, steps = self._split_statements(rest)
        return ast.Journey(
            name=str(name_tok),
            title=title,
            clauses=clauses,
            steps=steps,
            name_span=self._tok(name_tok),
            span=self._span(meta),
        )

    @v_args(meta=True)
    def segment(self, meta: Meta, children: list[Any]) -> ast.Segment:
        return ast.Segment(
            name=str(children[0]),
            expr=children[1],
            name_span=self._tok(children[0]),
            span=self._span(meta),
        )

    @v_args(meta=True)
    def message(self, meta: Meta, children: list[Any]) -> ast.Message:
        return ast.Message(
            name=str(children[0]),
            parts=tuple(children[1:]),
            name_span=self._tok(children[0]),
            span=self._span(meta),
        )

    @v_args(meta=True)
    def part(self, meta: Meta, children: list[Any]) -> ast.Part:
        return ast.Part(channel=str(children[0]), fields=tuple(children[1:]), span=self._span(meta))

    @v_args(meta=True)
    def field(self, meta: Meta, children: list[Any]) -> ast.Field:
        name = str(children[0])
        locale = None
        value = children[-1]
        if len(children) == 3:
            locale = str(children[1])
        is_file = isinstance(value, _FileRef)
        string = value.string if isinstance(value, _FileRef) else self._string(value)
        return ast.Field(
            name=name, value=string, locale=locale, is_file=is_file, span=self._span(meta)
        )

    def file_ref(self, children: list[Any]) -> _FileRef:
        return _FileRef(self._string(children[0]))

    # ------------------------------------------------------------ clauses
    @v_args(meta=True)
    def event(self, meta: Meta, children: list[Any]) -> _Event:
        tok = children[0]
        name = self._string(tok).value if tok.type == "STRING" else str(tok)
        return _Event(normalize_event(name), self._tok(tok))

    def where(self, children: list[Any]) -> _Where:
        return _Where(children[0])

    def within(self, children: list[Any]) -> _Within:
        return _Within(self._duration(children[0]))

    def per(self, children: list[Any]) -> _Per:
        return _Per(self._duration(children[0]))

    @v_args(meta=True)
    def when_event(self, meta: Meta, children: list[Any]) -> ast.WhenEvent:
        return ast.WhenEvent(
            event=children[0].name, where=self._where(children), span=self._span(meta)
        )

    def segment_edge(self, children: list[Any]) -> _Keyword:
        return _Keyword(str(children[0]), self._tok(children[0]))

    def entry_mode(self, children: list[Any]) -> _Keyword:
        return self.segment_edge(children)

    def skip(self, children: list[Any]) -> _Keyword:
        return self.segment_edge(children)

    def timeout(self, children: list[Any]) -> _Keyword:
        return self.segment_edge(children)

    @v_args(meta=True)
    def when_segment(self, meta: Meta, children: list[Any]) -> ast.WhenSegment:
        edge = children[0].word
        return ast.WhenSegment(edge=edge, segment=str(children[1]), span=self._span(meta))

    @v_args(meta=True)
    def schedule_at(self, meta: Meta, children: list[Any]) -> ast.Every:
        day_tok = children[0]
        day = str(day_tok)
        if day != "day" and day not in ast.DAY_WORDS:
            from journeyc.lang.diagnostics import did_you_mean

            self.diagnostics.append(
                error(
                    "bad_day",
                    f"`{day}` is not a day: use `day`, `weekday`, `weekend` or a weekday name",
                    self._tok(day_tok),
                    did_you_mean(day, ("day", *ast.DAY_WORDS)),
                )
            )
        return ast.Every(day=day, at=self._time(children[1]), span=self._span(meta))

    @v_args(meta=True)
    def schedule_interval(self, meta: Meta, children: list[Any]) -> ast.Every:
        return ast.Every(interval=self._duration(children[0]), span=self._span(meta))

    @v_args(meta=True)
    def every(self, meta: Meta, children: list[Any]) -> ast.Every:
        sched: ast.Every = children[0]
        seg = str(children[1])
        return ast.Every(
            day=sched.day,
            at=sched.at,
            interval=sched.interval,
            segment=None if seg == "everyone" else seg,
            span=self._span(meta),
        )

    @v_args(meta=True)
    def entry(self, meta: Meta, children: list[Any]) -> ast.Entry:
        mode = children[0].word
        per = self._pick(children, _Per)
        if per is not None:
            if mode == "always":
                self.diagnostics.append(
                    error(
                        "bad_entry",
                        "`entry always` takes no `per`: use `entry once per D`",
                        self._span(meta),
                    )
                )
                return ast.Entry(mode="always", span=self._span(meta))
            return ast.Entry(mode="once_per", per=per.duration, span=self._span(meta))
        return ast.Entry(mode=mode, span=self._span(meta))

    @v_args(meta=True)
    def exit_when(self, meta: Meta, children: list[Any]) -> ast.ExitWhen:
        return ast.ExitWhen(
            event=children[0].name, where=self._where(children), span=self._span(meta)
        )

    @v_args(meta=True)
    def goal(self, meta: Meta, children: list[Any]) -> ast.Goal:
        within = self._pick(children, _Within)
        return ast.Goal(
            event=children[0].name,
            where=self._where(children),
            within=within.duration if within else None,
            span=self._span(meta),
        )

    @v_args(meta=True)
    def quiet_hours(self, meta: Meta, children: list[Any]) -> ast.QuietHours:
        start, end = self._time(children[0]), self._time(children[1])
        skip = self._pick(children, _Keyword) is not None
        if (start.hour, start.minute) == (end.hour, end.minute):
            self.diagnostics.append(
                error(
                    "bad_quiet_hours",
                    "quiet hours start and end at the same time",
                    self._span(meta),
                )
            )
        return ast.QuietHours(start=start, end=end, skip=skip, span=self._span(meta))

    @v_args(meta=True)
    def cap(self, meta: Meta, children: list[Any]) -> ast.Cap:
        num = children[0]
        value = parse_number(str(num))
        if not isinstance(value, int) or value < 1:
            self.diagnostics.append(
                error(
                    "bad_cap",
                    f"a cap is a whole number of sends, at least 1 (got `{num}`)",
                    self._tok(num),
                )
            )
            value = max(1, int(value))
        return ast.Cap(count=value, per=self._duration(children[1]), span=self._span(meta))

    @v_args(meta=True)
    def holdout(self, meta: Meta, children: list[Any]) -> ast.Holdout:
        pct = self._percent(children[0])
        if not 0 <= pct.value < 100:
            self.diagnostics.append(
                error(
                    "bad_holdout",
                    f"a holdout is a share of entrants from 0% to below 100% (got `{children[0]}`)",
                    pct.span,
                )
            )
        return ast.Holdout(percent=pct, span=self._span(meta))

    @v_args(meta=True)
    def upgrade(self, meta: Meta, children: list[Any]) -> ast.UpgradeInPlace:
        return ast.UpgradeInPlace(span=self._span(meta))

    # ------------------------------------------------------------ steps
    @v_args(meta=True)
    def label(self, meta: Meta, children: list[Any]) -> ast.Label:
        return ast.Label(name=str(children[0]), span=self._tok(children[0]))

    @v_args(meta=True)
    def wait(self, meta: Meta, children: list[Any]) -> ast.Wait:
        return ast.Wait(
            duration=self._duration(children[0]), label=self._label(children), span=self._span(meta)
        )

    def on_day(self, children: list[Any]) -> _OnDay:
        tok = children[0]
        day = str(tok)
        if day not in ast.DAY_WORDS:
            from journeyc.lang.diagnostics import did_you_mean

            self.diagnostics.append(
                error(
                    "bad_day",
                    f"`{day}` is not a day: use a weekday name, `weekday` or `weekend`",
                    self._tok(tok),
                    did_you_mean(day, ast.DAY_WORDS),
                )
            )
        return _OnDay(day, self._tok(tok))

    @v_args(meta=True)
    def wait_until(self, meta: Meta, children: list[Any]) -> ast.WaitUntil:
        on = self._pick(children, _OnDay)
        span = self._span(meta)
        return ast.WaitUntil(
            at=self._time(children[0]),
            day=on.day if on else None,
            day_span=on.span if on else span,
            label=self._label(children),
            span=span,
        )

    @v_args(meta=True)
    def wait_for(self, meta: Meta, children: list[Any]) -> ast.WaitFor:
        event: _Event = children[0]
        dur_tok = next(c for c in children if isinstance(c, Token) and c.type == "DURATION")
        branches = tuple(c for c in children if isinstance(c, ast.OnBranch))
        return ast.WaitFor(
            event=event.name,
            where=self._where(children),
            timeout=self._duration(dur_tok),
            branches=branches,
            label=self._label(children),
            span=self._span(meta),
        )

    @v_args(meta=True)
    def on_branch(self, meta: Meta, children: list[Any]) -> ast.OnBranch:
        head = children[0]
        event = head.name if isinstance(head, _Event) else None
        return ast.OnBranch(event=event, steps=tuple(children[1:]), span=self._span(meta))

    @v_args(meta=True)
    def if_step(self, meta: Meta, children: list[Any]) -> ast.If:
        cond = children[0]
        label = self._label(children)
        body: list[ast.Step] = []
        branches: list[ast.CondBranch] = []
        orelse: tuple[ast.Step, ...] | None = None
        for c in children[1:]:
            if isinstance(c, ast.CondBranch):
                branches.append(c)
            elif isinstance(c, _Else):
                orelse = c.steps
            elif not isinstance(c, ast.Label):
                body.append(c)
        span = self._span(meta)
        first_span = Span(
            self.path,
            span.start,
            body[-1].span.end,
            span.line,
            span.column,
            body[-1].span.end_line,
            body[-1].span.end_column,
        )
        first = ast.CondBranch(cond=cond, steps=tuple(body), span=first_span)
        return ast.If(branches=(first, *branches), orelse=orelse, label=label, span=span)

    @v_args(meta=True)
    def elif_branch(self, meta: Meta, children: list[Any]) -> ast.CondBranch:
        return ast.CondBranch(cond=children[0], steps=tuple(children[1:]), span=self._span(meta))

    def else_branch(self, children: list[Any]) -> _Else:
        return _Else(tuple(children))

    @v_args(meta=True)
    def split(self, meta: Meta, children: list[Any]) -> ast.Split:
        arms = tuple(c for c in children if isinstance(c, ast.Arm))
        return ast.Split(arms=arms, label=self._label(children), span=self._span(meta))

    @v_args(meta=True)
    def arm(self, meta: Meta, children: list[Any]) -> ast.Arm:
        steps = tuple(c for c in children[1:] if not isinstance(c, ast.Label))
        return ast.Arm(
            percent=self._percent(children[0]),
            steps=steps,
            label=self._label(children),
            span=self._span(meta),
        )

    @v_args(meta=True)
    def target(self, meta: Meta, children: list[Any]) -> ast.Target:
        channel = str(children[0])
        message = None
        if len(children) > 1:
            tok = children[1]
            if tok.type == "STRING":
                s = self._string(tok)
                message = ast.MessageRef(inline=s, span=s.span)
            else:
                message = ast.MessageRef(name=str(tok), span=self._tok(tok))
        return ast.Target(channel=channel, message=message, span=self._span(meta))

    def with_args(self, children: list[Any]) -> _Args:
        return _Args(tuple(children))

    @v_args(meta=True)
    def arg(self, meta: Meta, children: list[Any]) -> ast.Arg:
        return ast.Arg(name=str(children[0]), value=children[1], span=self._span(meta))

    @v_args(meta=True)
    def send(self, meta: Meta, children: list[Any]) -> ast.Send:
        targets = tuple(c for c in children if isinstance(c, ast.Target))
        return ast.Send(
            targets=targets,
            args=self._with_args(children),
            label=self._label(children),
            span=self._span(meta),
        )

    @v_args(meta=True)
    def set_step(self, meta: Meta, children: list[Any]) -> ast.SetAttr:
        return ast.SetAttr(
            name=str(children[0]),
            value=children[1],
            label=self._label(children),
            span=self._span(meta),
        )

    @v_args(meta=True)
    def unset_step(self, meta: Meta, children: list[Any]) -> ast.UnsetAttr:
        return ast.UnsetAttr(
            name=str(children[0]), label=self._label(children), span=self._span(meta)
        )

    @v_args(meta=True)
    def track(self, meta: Meta, children: list[Any]) -> ast.Track:
        return ast.Track(
            event=children[0].name,
            args=self._with_args(children),
            label=self._label(children),
            span=self._span(meta),
        )

    @v_args(meta=True)
    def exit_step(self, meta: Meta, children: list[Any]) -> ast.ExitStep:
        return ast.ExitStep(label=self._label(children), span=self._span(meta))

    # ------------------------------------------------------------ expressions
    @v_args(meta=True)
    def or_expr(self, meta: Meta, children: list[Any]) -> ast.Expr:
        return self._chain("or", children)

    @v_args(meta=True)
    def and_expr(self, meta: Meta, children: list[Any]) -> ast.Expr:
        return self._chain("and", children)

    def _chain(self, op: ast.BinaryOp, children: list[Any]) -> ast.Expr:
        out: ast.Expr = children[0]
        for right in children[1:]:
            out = ast.Binary(op=op, left=out, right=right, span=_join(out.span, right.span))
        return out

    @v_args(meta=True)
    def not_(self, meta: Meta, children: list[Any]) -> ast.Unary:
        return ast.Unary(op="not", operand=children[0], span=self._span(meta))

    @v_args(meta=True)
    def neg(self, meta: Meta, children: list[Any]) -> ast.Unary:
        return ast.Unary(op="-", operand=children[0], span=self._span(meta))

    def comp_op(self, children: list[Any]) -> str:
        return str(children[0])

    add_op = comp_op
    mul_op = comp_op

    @v_args(meta=True)
    def compare(self, meta: Meta, children: list[Any]) -> ast.Binary:
        return ast.Binary(
            op=children[1], left=children[0], right=children[2], span=self._span(meta)
        )

    arith = compare

    @v_args(meta=True)
    def in_(self, meta: Meta, children: list[Any]) -> ast.Binary:
        return ast.Binary(op="in", left=children[0], right=children[1], span=self._span(meta))

    @v_args(meta=True)
    def not_in(self, meta: Meta, children: list[Any]) -> ast.Binary:
        return ast.Binary(op="not in", left=children[0], right=children[1], span=self._span(meta))

    @v_args(meta=True)
    def between(self, meta: Meta, children: list[Any]) -> ast.Between:
        return ast.Between(
            value=children[0], low=children[1], high=children[2], span=self._span(meta)
        )

    @v_args(meta=True)
    def getattr(self, meta: Meta, children: list[Any]) -> ast.GetAttr:
        return ast.GetAttr(obj=children[0], name=str(children[1]), span=self._span(meta))

    @v_args(meta=True)
    def number(self, meta: Meta, children: list[Any]) -> ast.Number:
        tok = children[0]
        return ast.Number(value=parse_number(str(tok)), raw=str(tok), span=self._tok(tok))

    @v_args(meta=True)
    def string(self, meta: Meta, children: list[Any]) -> ast.String:
        return self._string(children[0])

    @v_args(meta=True)
    def duration(self, meta: Meta, children: list[Any]) -> ast.Duration:
        return self._duration(children[0], positive=False)

    @v_args(meta=True)
    def true(self, meta: Meta, children: list[Any]) -> ast.Bool:
        return ast.Bool(value=True, span=self._span(meta))

    @v_args(meta=True)
    def false(self, meta: Meta, children: list[Any]) -> ast.Bool:
        return ast.Bool(value=False, span=self._span(meta))

    @v_args(meta=True)
    def null(self, meta: Meta, children: list[Any]) -> ast.Null:
        return ast.Null(span=self._span(meta))

    @v_args(meta=True)
    def name(self, meta: Meta, children: list[Any]) -> ast.Name:
        tok = children[0]
        if str(tok) in RESERVED:
            self.diagnostics.append(
                error(
                    "journey_parse_error",
                    f"`{tok}` is a keyword, not a name",
                    self._tok(tok),
                    "expected a name or a value here",
                )
            )
        return ast.Name(name=str(tok), span=self._tok(tok))

    @v_args(meta=True)
    def segment_ref(self, meta: Meta, children: list[Any]) -> ast.SegmentRef:
        return ast.SegmentRef(name=str(children[0]), span=self._span(meta))

    @v_args(meta=True)
    def list_(self, meta: Meta, children: list[Any]) -> ast.ListExpr:
        items = tuple(c for c in children if c is not None)
        return ast.ListExpr(items=items, span=self._span(meta))

    @v_args(meta=True)
    def call_arg(self, meta: Meta, children: list[Any]) -> _CallArg:
        within = self._pick(children, _Within)
        return _CallArg(
            children[0],
            self._where(children),
            within.duration if within else None,
            self._span(meta),
        )

    @v_args(meta=True)
    def call(self, meta: Meta, children: list[Any]) -> ast.Expr:
        func = str(children[0])
        span = self._span(meta)
        args: list[_CallArg] = [c for c in children[1:] if c is not None]
        if func in ast.AGGREGATES:
            return self._aggregate(func, args, span)
        if func in ast.ITEM_TESTS:
            return self._item_test(func, args, span)
        self._no_where(
            args,
            f"`{func}` takes no `where`/`within`: only aggregates ({', '.join(ast.AGGREGATES)}) do",
        )
        return ast.Call(func=func, args=tuple(a.expr for a in args), span=span)

    def _no_where(self, args: list[_CallArg], message: str) -> None:
        """Report ``message`` at each argument with a ``where`` or ``within``."""
        for a in args:
            if a.where is not None or a.within is not None:
                self.diagnostics.append(error("bad_call", message, a.span))

    def _item_test(self, func: str, args: list[_CallArg], span: Span) -> ast.Expr:
        """``any(LIST, COND)`` / ``all(LIST, COND)``."""
        shape = (
            f'`{func}(LIST, CONDITION)`, e.g. `{func}(event.products, item.category == "watches")`'
        )
        if len(args) != 2:
            self.diagnostics.append(
                error(
                    "bad_call",
                    f"`{func}` takes a list and a condition on each `item` of it: {shape}",
                    span,
                    f"{len(args)} argument{'s' if len(args) != 1 else ''} given",
                )
            )
            return ast.Null(span=span)
        self._no_where(
            args,
            f"`{func}` takes no `where`/`within`: its condition is its second argument, {shape}",
        )
        return ast.ItemTest(
            func=func,  # type: ignore[arg-type]
            items=args[0].expr,
            cond=args[1].expr,
            span=span,
        )

    def _aggregate(self, func: str, args: list[_CallArg], span: Span) -> ast.Expr:
        if len(args) == 2:
            return self._item_aggregate(func, args, span)
        needs_prop = func not in ("count", "last", "first")
        shape = f"{func}(EVENT.PROPERTY …)" if needs_prop else f"{func}(EVENT …)"
        if len(args) != 1:
            items = (
                f", or an event's list and an item value: `{func}(EVENT.LIST, ITEM_VALUE …)`"
                if needs_prop
                else ""
            )
            self.diagnostics.append(
                error(
                    "bad_call",
                    f"`{func}` takes one event{' property' if needs_prop else ''}: `{shape}`"
                    + items,
                    span,
                )
            )
            return ast.Null(span=span)
        a = args[0]
        path = _event_path(a.expr)
        if path is None or (needs_prop and len(path) < 2) or (not needs_prop and len(path) > 1):
            what = "an event's property" if needs_prop else "an event name"
            self.diagnostics.append(
                error("bad_call", f"`{func}` counts over {what}: `{shape}`", a.expr.span)
            )
            return ast.Null(span=span)
        return ast.Aggregate(
            func=func,  # type: ignore[arg-type]
            event=normalize_event(path[0]),
            prop=tuple(path[1:]),
            where=a.where,
            within=a.within,
            span=span,
        )

    def _item_aggregate(self, func: str, args: list[_CallArg], span: Span) -> ast.Expr:
        """``sum(EVENT.LIST, ITEM [where COND] [within D])`` and kin: over the objects of a
        list in each event."""
        shape = f"`{func}(EVENT.LIST, ITEM_VALUE [where …] [within …])`"
        if func in ("count", "last", "first"):
            hint = (
                "count the events with `count(EVENT where any(event.LIST, CONDITION))`, "
                "or the items with `sum(EVENT.LIST, 1 where CONDITION)`"
                if func == "count"
                else f"`{func}` takes one event name"
            )
            self.diagnostics.append(
                error(
                    "bad_call",
                    f"`{func}` takes one event, not a list and an item value",
                    span,
                    hints=[hint],
                )
            )
            return ast.Null(span=span)
        source, value = args
        if source.where is not None or source.within is not None:
            self.diagnostics.append(
                error(
                    "bad_call",
                    f"`where` and `within` come after the item value: {shape}",
                    source.span,
                )
            )
            return ast.Null(span=span)
        path = _event_path(source.expr)
        if path is None or len(path) < 2:
            self.diagnostics.append(
                error(
                    "bad_call",
                    f"`{func}` over items takes an event's list first: {shape}, e.g. "
                    f"`{func}(order_completed.products, item.price)`",
                    source.expr.span,
                )
            )
            return ast.Null(span=span)
        return ast.Aggregate(
            func=func,  # type: ignore[arg-type]
            event=normalize_event(path[0]),
            prop=tuple(path[1:]),
            where=value.where,
            within=value.within,
            item=value.expr,
            span=span,
        )


# Rules whose node is one expression level over its operands (see `ToAst.transform`);
# `call_arg`, `where`, `within` and the operator words add none.
_EXPRESSIONS = frozenset(
    {
        "not_",
        "neg",
        "compare",
        "arith",
        "in_",
        "not_in",
        "between",
        "getattr",
        "number",
        "string",
        "duration",
        "true",
        "false",
        "null",
        "name",
        "call",
        "segment_ref",
        "list_",
    }
)
# Flat in the parse tree, nested to the left in the AST.
_CHAINS = frozenset({"and_expr", "or_expr"})
# A block: an `if`'s branches (`elif_branch` and `else_branch` are inside its
# `if_step`), a split arm, an `on` branch.
_BLOCKS = frozenset({"if_step", "arm", "on_branch"})


@dataclass(frozen=True, slots=True)
class _FileRef:
    string: ast.String


@dataclass(frozen=True, slots=True)
class _Else:
    steps: tuple[ast.Step, ...]


def _event_path(expr: ast.Expr) -> list[str] | None:
    """``order_completed.amount`` → ``["order_completed", "amount"]``."""
    # A loop, not recursion: the transform runs before nesting is checked.
    names: list[str] = []
    while isinstance(expr, ast.GetAttr):
        names.append(expr.name)
        expr = expr.obj
    if isinstance(expr, ast.Name):
        root = expr.name
    elif isinstance(expr, ast.String) and expr.value:
        root = expr.value
    else:
        return None
    names.append(root)
    names.reverse()
    return names


def _join(a: Span, b: Span) -> Span:
    return Span(a.file, a.start, b.end, a.line, a.column, b.end_line, b.end_column)


__all__ = ["ToAst", "bare_journey_name", "is_name"]
