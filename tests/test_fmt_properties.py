"""Properties of the formatter over generated ASTs: it prints what the parser reads
back to the same tree, and formatting twice changes nothing."""

from __future__ import annotations

from collections import Counter

from hypothesis import assume, example, given
from hypothesis import strategies as st

from journeyc.lang import ast
from journeyc.lang.formatter import format_expr, format_source, format_tree, source_comments
from journeyc.lang.parser import parse_source
from tests import strategies as js
from tests.conftest import ROOT

PATH = "generated.journey"
# `a or (b or c)`: the parentheses are what keeps the tree right-nested.
_A_OR_B_C = ast.Binary(
    op="or",
    left=ast.Name(name="a"),
    right=ast.Binary(op="or", left=ast.Name(name="b"), right=ast.Name(name="c")),
)


def _reparse(text: str) -> ast.SourceFile:
    result = parse_source(text, PATH)
    errors = [d for d in result.diagnostics if d.is_error]
    assert not errors, f"{text}\n{errors}"
    assert result.tree is not None
    return result.tree


@given(js.source_files(PATH))
def test_printed_tree_parses_back_equal_and_is_a_fixpoint(tree: ast.SourceFile) -> None:
    text = format_tree(tree)
    assert _reparse(text) == tree, text
    assert format_source(text, PATH) == text


@given(js.expressions(12))
@example(_A_OR_B_C)
@example(ast.Unary(op="-", operand=ast.Unary(op="-", operand=ast.Number(value=3, raw="3"))))
@example(ast.GetAttr(obj=ast.Number(value=3, raw="3"), name="x"))
def test_expression_round_trip(expr: ast.Expr) -> None:
    text = f"segment s = {format_expr(expr)}\n"
    (seg,) = _reparse(text).declarations
    assert isinstance(seg, ast.Segment)
    assert seg.expr == expr, text


@given(js.source_files(PATH, max_declarations=2, max_statements=2), st.data())
def test_comments_survive(tree: ast.SourceFile, data: st.DataObject) -> None:
    """Own-line comments put between any two lines of a formatted file, and trailing
    ones at the end of any line, all come out of the formatter, and the result is a
    fixpoint."""
    lines = format_tree(tree).removesuffix("\n").split("\n")  # not splitlines: see strategies
    out: list[str] = []
    n = 0
    for line in lines:
        if data.draw(st.booleans(), "comment before"):
            indent = data.draw(st.integers(0, 8), "indent")
            out.append(" " * indent + f"# c{n} own")
            n += 1
        if line.strip() and data.draw(st.booleans(), "trailing"):
            line = f"{line}  # c{n} trailing"
            n += 1
        out.append(line)
    if data.draw(st.booleans(), "comment at end"):
        out.append(f"# c{n} end")
        n += 1
    text = "\n".join(out) + "\n"
    formatted = format_source(text, PATH)
    assert sorted(c.text for c in source_comments(formatted)) == sorted(
        c.text for c in source_comments(text)
    )
    assert format_source(formatted, PATH) == formatted
    assert _reparse(formatted) == tree


_SEEDS = [
    p.read_text(encoding="utf-8")
    for p in sorted((ROOT / "tests" / "fixtures" / "fmt").rglob("*.journey"))
]


@given(js.mutated_sources(_SEEDS, max_mutations=2))
def test_mutated_sources_that_parse_format_safely(text: str) -> None:
    """Hand-written layouts the generator never makes (odd indents, comments in odd
    places, blank lines, broken lines): whatever parses formats to the same tree,
    keeps its comments and is a fixpoint."""
    result = parse_source(text, PATH)
    assume(result.tree is not None and not any(d.is_error for d in result.diagnostics))
    formatted = format_source(text, PATH)
    assert _reparse(formatted) == result.tree
    assert Counter(c.text for c in source_comments(formatted)) == Counter(
        c.text for c in source_comments(text)
    )
    assert format_source(formatted, PATH) == formatted
