"""The canonical layout of `.journey` sources: what ``journeyc fmt`` prints.

The formatter prints the AST, not the tokens: two-space indents, one space around
binary operators, the fewest parentheses the precedence allows, clauses before
steps, durations in canonical form. Comments are not in the AST; they are found
with :func:`~journeyc.lang.comments.scan_comments` and put back by source line:

- a comment on a printed statement's own source lines stays with it (the last
  trailing one at the end of its line, any others on their own lines before it);
- an own-line comment goes before the statement that follows it, re-indented,
  unless it is indented deeper than that statement: then it stays at the end of the
  deepest block that closed before it and is indented no deeper than it.

No comment is ever dropped. Blank lines are kept, one at most, where the source had
them before a statement or comment; top-level declarations get exactly one, except
between consecutive segments, which keep the source's spacing. An ``and``/``or``
expression its author spread over lines (inside brackets) prints one operand a line
(:func:`format_chain`); everything else prints on one line.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import TypeAlias

from journeyc.lang import ast
from journeyc.lang.comments import Comment, scan_comments
from journeyc.lang.depth import whole_file_too_deep
from journeyc.lang.diagnostics import Diagnostic
from journeyc.lang.literals import format_duration, is_name, quote_string

INDENT = "  "

# Binding strength, loosest first; an operand printed where a tighter level is
# required gets parentheses.
_OR, _AND, _NOT, _CMP, _SUM, _PRODUCT, _UNARY, _POSTFIX, _ATOM = range(1, 10)
_CMP_OPS = frozenset({"==", "!=", "<", "<=", ">", ">=", "in", "not in"})


class FormatError(Exception):
    """A source that cannot be formatted: it has errors, carried in ``diagnostics``."""

    def __init__(self, diagnostics: Sequence[Diagnostic]) -> None:
        super().__init__(f"cannot format: {len(diagnostics)} error(s)")
        self.diagnostics = list(diagnostics)


@cache
def reserved_words() -> frozenset[str]:
    """The keywords of the grammar (``when``, ``in``, ``timeout`` …)."""
    from journeyc.lang.parser import parser

    return frozenset(
        str(t.pattern.value)
        for t in parser().terminals
        if t.pattern.type == "str" and str(t.pattern.value).isalpha()
    )


def format_source(text: str, path: str = "<string>") -> str:
    """Format a source text; ``path`` names it (a bare journey is named after it).

    Raises :class:`FormatError` when the source has errors: a syntax error leaves no
    tree, and a bad literal (``30x``) leaves a stand-in value that must not be written.
    """
    from journeyc.lang.parser import parse_source

    result = parse_source(text, path)
    errors = [d for d in result.diagnostics if d.is_error]
    if result.tree is None or errors:
        raise FormatError(errors)
    try:
        return format_tree(result.tree, source_comments(text), source=text)
    except RecursionError:
        # A last line of defence: the parser refuses trees nested past the limits of
        # journeyc.lang.depth, well inside what the formatter's recursion handles.
        raise FormatError([whole_file_too_deep(path, text)]) from None


# Characters `str.splitlines` breaks lines at but the parser does not (they may sit
# inside strings and comments).
_ODD_BREAKS = re.compile("[\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")


def source_comments(text: str) -> list[Comment]:
    """The comments of ``text`` (see :func:`scan_comments`)."""
    return scan_comments(text)


def format_tree(
    tree: ast.SourceFile, comments: Sequence[Comment] = (), *, source: str | None = None
) -> str:
    """Print a file's AST in canonical layout, putting ``comments`` back.

    ``source`` is the text the tree was parsed from; with it, blank lines are kept
    and an ``else`` line is found exactly (its keyword has no node in the AST).
    """
    builder = _Builder(source, comments)
    builder.source_file(tree)
    builder.attach(comments)
    return builder.render()


def format_expr(expr: ast.Expr) -> str:
    """An expression on one line, with the fewest parentheses its precedence needs."""
    return _expr(expr, 0)


ExprPrinter: TypeAlias = Callable[[ast.Expr], str]


def format_chain(expr: ast.Expr) -> str:
    """An ``and``/``or`` chain one operand a line, in parentheses, operators leading::

        (
          count(order_completed within 365d) >= 2
          and not segment hero
        )

    Lines after the first are indented relative to the statement they belong to.
    Any other expression prints on one line.
    """
    if not isinstance(expr, ast.Binary) or expr.op not in ("and", "or"):
        return format_expr(expr)
    op = expr.op
    operands: list[ast.Expr] = []
    node: ast.Expr = expr
    while isinstance(node, ast.Binary) and node.op == op:
        operands.append(node.right)
        node = node.left
    operands.append(node)
    operands.reverse()
    side = _OR if op == "or" else _AND
    lines = [_expr(operands[0], side)]
    lines += [f"{op} {_expr(x, side + 1)}" for x in operands[1:]]
    return "(\n" + "".join(f"{INDENT}{x}\n" for x in lines) + ")"


def format_event(name: str) -> str:
    """An event name: bare when it can be, else a quoted string."""
    return name if is_name(name) and name not in reserved_words() else quote_string(name)


# ---------------------------------------------------------------- expressions


def _level(e: ast.Expr) -> int:
    if isinstance(e, ast.Binary):
        if e.op == "or":
            return _OR
        if e.op == "and":
            return _AND
        if e.op in _CMP_OPS:
            return _CMP
        return _SUM if e.op in ("+", "-") else _PRODUCT
    if isinstance(e, ast.Between):
        return _CMP
    if isinstance(e, ast.Unary):
        return _NOT if e.op == "not" else _UNARY
    if isinstance(e, ast.GetAttr):
        return _POSTFIX
    return _ATOM


def _expr(e: ast.Expr, need: int) -> str:
    text = _expr_text(e)
    return f"({text})" if _level(e) < need else text


def _binary_sides(op: str) -> tuple[int, int]:
    if op == "or":
        return _OR, _AND
    if op == "and":
        return _AND, _NOT
    if op in _CMP_OPS:
        return _SUM, _SUM
    if op in ("+", "-"):
        return _SUM, _PRODUCT
    return _PRODUCT, _UNARY


def _expr_text(e: ast.Expr) -> str:
    if isinstance(e, ast.Binary):
        left, right = _binary_sides(e.op)
        return f"{_expr(e.left, left)} {e.op} {_expr(e.right, right)}"
    if isinstance(e, ast.Between):
        return f"{_expr(e.value, _SUM)} between {_expr(e.low, _SUM)} and {_expr(e.high, _SUM)}"
    if isinstance(e, ast.Unary):
        if e.op == "not":
            return f"not {_expr(e.operand, _NOT)}"
        return f"-{_expr(e.operand, _UNARY)}"
    if isinstance(e, ast.GetAttr):
        return f"{_expr(e.obj, _POSTFIX)}.{e.name}"
    if isinstance(e, ast.Number):
        return e.raw
    if isinstance(e, ast.String):
        return quote_string(e.value)
    if isinstance(e, ast.Bool):
        return "true" if e.value else "false"
    if isinstance(e, ast.Null):
        return "null"
    if isinstance(e, ast.Duration):
        return format_duration(e.seconds)
    if isinstance(e, ast.Name):
        return e.name
    if isinstance(e, ast.ListExpr):
        return "[" + ", ".join(_expr(i, 0) for i in e.items) + "]"
    if isinstance(e, ast.Call):
        return f"{e.func}(" + ", ".join(_expr(a, 0) for a in e.args) + ")"
    if isinstance(e, ast.Aggregate):
        inner = format_event(e.event) + "".join(f".{p}" for p in e.prop)
        if e.item is not None:
            inner += f", {_expr(e.item, 0)}"
        inner += _where(e.where) + _within(e.within)
        return f"{e.func}({inner})"
    if isinstance(e, ast.ItemTest):
        return f"{e.func}({_expr(e.items, 0)}, {_expr(e.cond, 0)})"
    return f"segment {e.name}"


def _where(expr: ast.Expr | None, top: ExprPrinter = format_expr) -> str:
    return f" where {top(expr)}" if expr is not None else ""


def _within(d: ast.Duration | None) -> str:
    return f" within {format_duration(d.seconds)}" if d is not None else ""


def _label(label: ast.Label | None) -> str:
    return f" as {label.name}" if label is not None else ""


def _args(args: tuple[ast.Arg, ...]) -> str:
    if not args:
        return ""
    return " with " + ", ".join(f"{a.name} = {format_expr(a.value)}" for a in args)


# ---------------------------------------------------------------- statements


def clause_text(c: ast.Clause, top: ExprPrinter = format_expr) -> str:
    """The line a journey clause prints as; ``top`` prints its ``where`` expression."""
    if isinstance(c, ast.WhenEvent):
        return f"when {format_event(c.event)}{_where(c.where, top)}"
    if isinstance(c, ast.WhenSegment):
        return f"when {c.edge} {c.segment}"
    if isinstance(c, ast.Every):
        if c.interval is not None:
            sched = format_duration(c.interval.seconds)
        else:
            sched = f"{c.day} at {c.at}"
        return f"every {sched} for {c.segment or 'everyone'}"
    if isinstance(c, ast.Entry):
        if c.mode == "once_per" and c.per is not None:
            return f"entry once per {format_duration(c.per.seconds)}"
        return f"entry {'always' if c.mode == 'always' else 'once'}"
    if isinstance(c, ast.ExitWhen):
        return f"exit when {format_event(c.event)}{_where(c.where, top)}"
    if isinstance(c, ast.Goal):
        return f"goal {format_event(c.event)}{_where(c.where, top)}{_within(c.within)}"
    if isinstance(c, ast.QuietHours):
        return f"quiet hours {c.start}-{c.end}{' skip' if c.skip else ''}"
    if isinstance(c, ast.Cap):
        return f"cap {c.count} per {format_duration(c.per.seconds)}"
    if isinstance(c, ast.Holdout):
        return f"holdout {c.percent.raw}%"
    return "upgrade in place"


def _target(t: ast.Target) -> str:
    m = t.message
    if m is None:
        return t.channel
    if m.inline is not None:
        return f"{t.channel} {quote_string(m.inline.value)}"
    return f"{t.channel} {m.name}"


def simple_step_text(s: ast.Step, top: ExprPrinter = format_expr) -> str | None:
    """The line of a step without a block, or None for ``if``, ``split`` and ``wait for``.

    ``top`` prints the value of a ``set``.
    """
    if isinstance(s, ast.Wait):
        return f"wait {format_duration(s.duration.seconds)}{_label(s.label)}"
    if isinstance(s, ast.WaitUntil):
        day = f" on {s.day}" if s.day else ""
        return f"wait until {s.at}{day}{_label(s.label)}"
    if isinstance(s, ast.Send):
        targets = " or ".join(_target(t) for t in s.targets)
        return f"send {targets}{_args(s.args)}{_label(s.label)}"
    if isinstance(s, ast.SetAttr):
        return f"set {s.name} = {top(s.value)}{_label(s.label)}"
    if isinstance(s, ast.UnsetAttr):
        return f"unset {s.name}{_label(s.label)}"
    if isinstance(s, ast.Track):
        return f"track {format_event(s.event)}{_args(s.args)}{_label(s.label)}"
    if isinstance(s, ast.ExitStep):
        return f"exit{_label(s.label)}"
    return None


# ---------------------------------------------------------------- layout model


@dataclass(eq=False)
class _Block:
    """The lines indented under a header (or the file's top level)."""

    depth: int
    header: _Line | None
    column: int = 0  # source column of its lines; set by the first line
    lines: list[_Line] = field(default_factory=list)
    tail: list[Comment] = field(default_factory=list)


@dataclass(eq=False)
class _Line:
    """One printed line and the source lines ``first``..``last`` it came from."""

    text: str
    first: int
    last: int
    column: int
    block: _Block
    child: _Block | None = None
    forced_blank: bool = False
    leading: list[Comment] = field(default_factory=list)
    inner: list[Comment] = field(default_factory=list)


_ELSE = re.compile(r"[ \t]*else\b")


class _Builder:
    """Builds the layout of a file, attaches comments, renders text."""

    def __init__(self, source: str | None, comments: Sequence[Comment]) -> None:
        self.src_lines = source.split("\n") if source is not None else None
        self.comment_lines = {c.line for c in comments if c.own_line}
        self.root = _Block(depth=0, header=None, column=1)
        self.lines: list[_Line] = []

    # ------------------------------------------------------------ building
    def top(self, expr: ast.Expr) -> str:
        """A statement's expression: one operand a line when its author broke it."""
        if self.src_lines is not None and expr.span.line != expr.span.end_line:
            return format_chain(expr)
        return format_expr(expr)

    def add(self, block: _Block, text: str, first: int, last: int, column: int) -> _Line:
        line = _Line(text, first, max(first, last), column, block)
        if not block.lines and block is not self.root:
            block.column = column
        block.lines.append(line)
        self.lines.append(line)
        return line

    def open(self, line: _Line) -> _Block:
        line.child = _Block(depth=line.block.depth + 1, header=line)
        return line.child

    def source_file(self, tree: ast.SourceFile) -> None:
        for i, decl in enumerate(tree.declarations):
            start = len(self.root.lines)
            if isinstance(decl, ast.Journey):
                self.journey(decl)
            elif isinstance(decl, ast.Message):
                self.message(decl)
            else:
                span = decl.span
                text = f"segment {decl.name} = {self.top(decl.expr)}"
                self.add(self.root, text, span.line, span.end_line, span.column)
            # A run of one-line segments reads as a table: it keeps the source's spacing.
            grouped = isinstance(decl, ast.Segment) and isinstance(
                tree.declarations[i - 1], ast.Segment
            )
            if i and len(self.root.lines) > start and not grouped:
                self.root.lines[start].forced_blank = True
        self.tests(tree)

    def tests(self, tree: ast.SourceFile) -> None:
        """The ``test`` blocks of a test file (journeyc.lang.testfile), a blank line
        between them."""
        from journeyc.lang.testfile import header_text, line_text

        for t in tree.tests:
            head = self.add(self.root, header_text(t), t.span.line, t.name_span.end_line, 1)
            head.forced_blank = len(self.root.lines) > 1
            body = self.open(head)
            for x in t.lines:
                self.add(body, line_text(x), x.span.line, x.span.end_line, x.span.column)

    def journey(self, j: ast.Journey) -> None:
        block = self.root
        if not j.bare:
            title = f" {quote_string(j.title)}" if j.title is not None else ""
            head = self.add(self.root, f"journey {j.name}{title}", j.span.line, j.span.line, 1)
            block = self.open(head)
        for c in j.clauses:
            self.add(block, clause_text(c, self.top), c.span.line, c.span.end_line, c.span.column)
        self.steps(block, j.steps)

    def message(self, m: ast.Message) -> None:
        head = self.add(self.root, f"message {m.name}", m.span.line, m.span.line, 1)
        parts = self.open(head)
        for p in m.parts:
            part = self.add(parts, p.channel, p.span.line, p.span.line, p.span.column)
            fields = self.open(part)
            for f in p.fields:
                words = [f.name]
                if f.locale is not None:
                    words.append(f.locale)
                if f.is_file:
                    words.append("file")
                words.append(quote_string(f.value.value))
                self.add(fields, " ".join(words), f.span.line, f.span.end_line, f.span.column)

    def steps(self, block: _Block, steps: tuple[ast.Step, ...]) -> None:
        for s in steps:
            self.step(block, s)

    def step(self, block: _Block, s: ast.Step) -> None:
        span = s.span
        text = simple_step_text(s, self.top)
        if text is not None:
            self.add(block, text, span.line, span.end_line, span.column)
        elif isinstance(s, ast.If):
            self.if_step(block, s)
        elif isinstance(s, ast.Split):
            last = s.label.span.end_line if s.label else span.line
            head = self.add(block, f"split{_label(s.label)}", span.line, last, span.column)
            arms = self.open(head)
            for a in s.arms:
                last = a.label.span.end_line if a.label else a.span.line
                text = f"{a.percent.raw}%{_label(a.label)}"
                arm = self.add(arms, text, a.span.line, last, a.span.column)
                self.steps(self.open(arm), a.steps)
        elif isinstance(s, ast.WaitFor):
            text = (
                f"wait for {format_event(s.event)}{_where(s.where, self.top)} "
                f"up to {format_duration(s.timeout.seconds)}{_label(s.label)}"
            )
            last = max(s.timeout.span.end_line, s.label.span.end_line if s.label else 0)
            head = self.add(block, text, span.line, last, span.column)
            if s.branches:
                branches = self.open(head)
                for b in s.branches:
                    on = "timeout" if b.event is None else format_event(b.event)
                    line = self.add(branches, f"on {on}", b.span.line, b.span.line, b.span.column)
                    self.steps(self.open(line), b.steps)

    def if_step(self, block: _Block, s: ast.If) -> None:
        for i, br in enumerate(s.branches):
            text = f"{'elif' if i else 'if'} {self.top(br.cond)}"
            last = br.cond.span.end_line
            if i == 0 and s.label is not None:
                text += _label(s.label)
                last = max(last, s.label.span.end_line)
            last = self.header_end(last, br.steps[0].span.line)
            column = s.span.column if i == 0 else br.span.column
            line = self.add(block, text, br.span.line, last, column)
            self.steps(self.open(line), br.steps)
        if s.orelse is not None:
            after = s.branches[-1].steps[-1].span.end_line
            at = self.else_line(after, s.orelse[0].span.line)
            line = self.add(block, "else", at, at, s.span.column)
            self.steps(self.open(line), s.orelse)

    def header_end(self, last: int, child: int) -> int:
        """The last source line of a header whose known tokens end on ``last``: a
        closing bracket may follow on lines of its own before the ``child`` line."""
        if self.src_lines is None:
            return last
        for n in range(child - 1, last, -1):
            if n not in self.comment_lines and self.src_lines[n - 1].strip():
                return n
        return last

    def else_line(self, after: int, before: int) -> int:
        """The source line of an ``else``: between the previous branch and its block."""
        candidates = range(after + 1, before)
        if self.src_lines is not None:
            for n in candidates:
                if n <= len(self.src_lines) and _ELSE.match(self.src_lines[n - 1]):
                    return n
        for n in candidates:
            if n not in self.comment_lines:
                return n
        return after + 1

    # ------------------------------------------------------------ comments
    def attach(self, comments: Sequence[Comment]) -> None:
        ordered = sorted(self.lines, key=lambda x: (x.first, x.last))
        firsts = [x.first for x in ordered]
        floor: tuple[_Line | None, _Block | None] = (None, None)
        for c in comments:
            i = bisect_right(firsts, c.line) - 1
            if i >= 0 and ordered[i].first <= c.line <= ordered[i].last:
                ordered[i].inner.append(c)
                continue
            prev = ordered[i] if i >= 0 else None
            nxt = ordered[i + 1] if i + 1 < len(ordered) else None
            closed = self.closed_blocks(prev, nxt)
            # Once a comment has gone to the end of a block, a later one may not go
            # into a deeper block: that would print them out of order.
            if floor[0] is prev and floor[1] in closed:
                closed = closed[closed.index(floor[1]) :]
            target = next((b for b in closed if b.column <= c.column), None)
            if target is not None:
                target.tail.append(c)
                floor = (prev, target)
            elif nxt is not None:
                nxt.leading.append(c)
            else:
                self.root.tail.append(c)

    def closed_blocks(self, prev: _Line | None, nxt: _Line | None) -> list[_Block]:
        """The blocks that end between ``prev`` and ``nxt``, deepest first."""
        if prev is None:
            return []
        chain: list[_Block] = []
        block: _Block | None = prev.block
        while block is not None:
            chain.append(block)
            block = block.header.block if block.header is not None else None
        if nxt is None:
            return chain
        return chain[: chain.index(nxt.block)] if nxt.block in chain else []

    # ------------------------------------------------------------ rendering
    def blank_before(self, line: int) -> bool:
        """Whether the source had a blank line just before ``line``."""
        lines = self.src_lines
        return lines is not None and 2 <= line <= len(lines) + 1 and not lines[line - 2].strip()

    def render(self) -> str:
        out: list[str] = []
        self.render_block(self.root, out)
        return "\n".join(out) + "\n" if out else ""

    def render_block(self, block: _Block, out: list[str]) -> None:
        pad = INDENT * block.depth
        items: list[tuple[str, bool]] = []
        start = len(out)

        def emit(text: str, blank: bool) -> None:
            if blank and len(out) > start:
                out.append("")
            out.append(text)

        for line in block.lines:
            trailing = next((c for c in reversed(line.inner) if not c.own_line), None)
            moved = [c for c in line.inner if c is not trailing]
            items = [(c.text, self.blank_before(c.line)) for c in line.leading]
            items += [(c.text, False) for c in moved]
            line_blank = self.blank_before(line.first)
            if moved and line_blank and not line.leading:
                items[0] = (items[0][0], True)
                line_blank = False
            text = line.text + (f"  {trailing.text}" if trailing is not None else "")
            items.append((text, line_blank))
            if line.forced_blank:
                items[0] = (items[0][0], True)
            for text, blank in items:
                emit(pad + text.replace("\n", "\n" + pad), blank)
            if line.child is not None:
                self.render_block(line.child, out)
        for c in block.tail:
            emit(pad + c.text, self.blank_before(c.line))


__all__ = [
    "FormatError",
    "clause_text",
    "format_event",
    "format_expr",
    "format_source",
    "format_tree",
    "reserved_words",
    "simple_step_text",
    "source_comments",
]
