"""How deep a source may nest, and the ``too_deep`` diagnostic when it goes deeper.

Every stage after the parser walks expressions and blocks recursively: the checker,
the lowering, pydantic's serializer for the IR (it gives up at 255 levels, two per
operator: 127 operators), the JSON reader that loads a deployed version back (200
levels: about 95 operators), the engine's compile, the graph, ``fmt``. So the parser
refuses a file nested deeper than these limits, right after building the AST (which
it builds without recursion), and nothing later ever meets such a tree. The limits
are far above any real journey and well inside what every stage handles together:
the deepest expression allowed, inside the deepest block allowed, compiles, serves
and formats.

Depths count as the AST is built: a leaf is 1 level, and every operator, call,
list, `not`, `-` or `.` path adds one over its deepest operand; parentheses add
nothing. A chain ``a and b and c`` is nested to the left, so each operator of a
chain adds a level: a chain of 64 terms is 64 levels. A step at the top of a
journey is in no block; each `if`/`elif`/`else` branch, split arm and `on` branch
around it adds one.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from journeyc.lang import ast
from journeyc.lang.diagnostics import Diagnostic, error
from journeyc.lang.span import Span

MAX_EXPR_DEPTH = 64
"""The deepest an expression may nest (a leaf is 1 level; see the module's doc)."""

MAX_BLOCK_DEPTH = 32
"""The most blocks a step may be nested in."""

MAX_SEGMENT_DEPTH = 150
"""The deepest a segment's expression may nest with the segments it uses (and those
they use …) written out under their ``segment NAME``: the engine plans when a
segment may change with them inlined, three Python frames a level (450 of the 1000
Python allows). Checked by the checker, which sees every segment."""

_CHAIN_OPS = frozenset({"and", "or", "+", "-", "*", "/"})


def expr_children(e: ast.Expr) -> tuple[ast.Expr, ...]:
    """The operands of an expression node, an aggregate's item value and ``where``
    included."""
    if isinstance(e, ast.Binary):
        return (e.left, e.right)
    if isinstance(e, ast.Unary):
        return (e.operand,)
    if isinstance(e, ast.GetAttr):
        return (e.obj,)
    if isinstance(e, ast.ListExpr):
        return e.items
    if isinstance(e, ast.Call):
        return e.args
    if isinstance(e, ast.Between):
        return (e.value, e.low, e.high)
    if isinstance(e, ast.Aggregate):
        return tuple(x for x in (e.item, e.where) if x is not None)
    if isinstance(e, ast.ItemTest):
        return (e.items, e.cond)
    return ()


def _step_exprs(s: ast.Step) -> Iterator[ast.Expr]:
    if isinstance(s, ast.If):
        for b in s.branches:
            yield b.cond
    elif isinstance(s, ast.WaitFor) and s.where is not None:
        yield s.where
    elif isinstance(s, ast.SetAttr):
        yield s.value
    elif isinstance(s, ast.Send | ast.Track):
        for a in s.args:
            yield a.value


def _roots(tree: ast.SourceFile) -> Iterator[ast.Expr | tuple[int, ast.Step]]:
    """Every expression root and every step (with its block depth), in source order."""
    for decl in tree.declarations:
        if isinstance(decl, ast.Segment):
            yield decl.expr
        elif isinstance(decl, ast.Journey):
            for c in decl.clauses:
                where = getattr(c, "where", None)
                if where is not None:
                    yield where
            # Depth first, in source order, without recursion.
            todo: list[tuple[int, ast.Step]] = [(0, s) for s in reversed(decl.steps)]
            while todo:
                depth, step = todo.pop()
                yield depth, step
                yield from _step_exprs(step)
                for block in reversed(ast.child_blocks(step)):
                    todo.extend((depth + 1, s) for s in reversed(block))


def depth_and_segment_refs(root: ast.Expr) -> tuple[int, list[tuple[ast.SegmentRef, int]]]:
    """How deep ``root`` nests (a leaf is 1), and each ``segment NAME`` in it with the
    level it stands at."""
    deepest = 0
    refs: list[tuple[ast.SegmentRef, int]] = []
    todo = [(1, root)]
    while todo:
        depth, e = todo.pop()
        deepest = max(deepest, depth)
        if isinstance(e, ast.SegmentRef):
            refs.append((e, depth))
        todo.extend((depth + 1, c) for c in expr_children(e))
    return deepest, refs


def _too_deep_expr(root: ast.Expr) -> tuple[ast.Expr, int] | None:
    """The first node (depth first, in source order) deeper than the limit."""
    todo = [(1, root)]
    while todo:
        depth, e = todo.pop()
        if depth > MAX_EXPR_DEPTH:
            return e, depth
        todo.extend((depth + 1, c) for c in reversed(expr_children(e)))
    return None


def find_too_deep(tree: ast.SourceFile, text: str) -> Diagnostic | None:
    """The ``too_deep`` error for the first place ``tree`` nests past a limit, or None.

    ``text`` is the source, to point at the first line of what is too deep.
    """
    for item in _roots(tree):
        if isinstance(item, tuple):
            depth, step = item
            if depth > MAX_BLOCK_DEPTH:
                return error(
                    "too_deep",
                    f"steps nested in more than {MAX_BLOCK_DEPTH} blocks",
                    _first_word(step.span, text),
                    f"this step is in {depth} blocks",
                    hints=[
                        "use `elif` rather than an `if` inside an `else`, or move the inner "
                        "steps to a journey of their own (`track` an event that starts it)"
                    ],
                )
            continue
        found = _too_deep_expr(item)
        if found is not None:
            node, depth = found
            label = f"level {depth} starts here"
            if isinstance(node, ast.Binary) and node.op in _CHAIN_OPS:
                # A chain nests to the left: its first term is its deepest point.
                op = node.op
                while isinstance(node, ast.Binary) and node.op == op:
                    node = node.left
                label = f"level {depth}: each `{op}` of this chain is one level, and it starts here"
            return error(
                "too_deep",
                f"an expression nested more than {MAX_EXPR_DEPTH} levels deep",
                _first_word(node.span, text),
                label,
                detail=(
                    "each operator, call, list, `not`, `-` or `.` inside another is one "
                    "level deeper, and so is each operator of a chain: `a and b and c` "
                    "is 3 levels"
                ),
                hints=[
                    "split it up: name parts as segments (`segment NAME = …`), or test "
                    "a list of values with `in [...]`"
                ],
            )
    return None


_WORD = re.compile(r"\w+|\S")


def _first_word(span: Span, text: str) -> Span:
    """The first word (or character) of ``span``: a deep expression runs long."""
    m = _WORD.match(text, span.start)
    return span.head(len(m.group()) if m else 1)


def whole_file_too_deep(path: str, text: str) -> Diagnostic:
    """A last line of defence: ``too_deep`` for a file some stage could not walk
    (Python's recursion limit) though it was within the limits above."""
    return error(
        "too_deep",
        "this file nests too deeply for journeyc to process",
        Span.point(path, text, 0, len(text.split("\n", 1)[0]) or 1),
        detail=(
            f"expressions may nest {MAX_EXPR_DEPTH} levels and steps {MAX_BLOCK_DEPTH} "
            "blocks deep; this file stayed within those limits but still ran out of room"
        ),
        hints=["nest less deeply, and report this file to the journeyc maintainers"],
    )
