"""The parser never raises on bad input: mutated sources give a tree or diagnostics,
and every diagnostic points inside the text it was given."""

from __future__ import annotations

from pathlib import Path

from hypothesis import example, given
from hypothesis import strategies as st

from journeyc.lang.parser import ParseResult, parse_source
from tests import strategies as js
from tests.conftest import ROOT

PATH = "mutant.journey"


def _seed_files() -> list[Path]:
    dirs = [ROOT / "tests" / "fixtures", ROOT / "journeys"]
    return sorted(p for d in dirs if d.is_dir() for p in d.rglob("*.journey"))


SEEDS = [p.read_text(encoding="utf-8") for p in _seed_files()]


def _check(text: str) -> ParseResult:
    result = parse_source(text, PATH)
    assert result.tree is not None or any(d.is_error for d in result.diagnostics)
    n_lines = text.count("\n") + 1
    for d in result.diagnostics:
        s = d.span
        assert s.file == PATH
        assert 0 <= s.start <= s.end <= len(text), d
        assert 1 <= s.line <= s.end_line <= n_lines, d
        assert s.column >= 1 and s.end_column >= 1, d
        assert d.summary, d
    return result


def test_there_are_seeds() -> None:
    assert len(SEEDS) >= 10


@given(js.mutated_sources(SEEDS))
def test_mutated_sources_never_raise(text: str) -> None:
    _check(text)


@given(st.text(max_size=200))
@example("")
@example("\t")
@example('"')
@example("journey")
@example("when a\n  \twait 1d\n")
@example("segment s = (\n")
@example("if x\n  exit\n else\n")
@example("wait for a up to 1d\n  on\n")
@example("message m\n  push\n    title file\n")
@example("set x = count()\n")
@example("set x = sum(a within 1d, b)\n")
@example("\n\n  \n#c\n   #d")
def test_random_text_never_raises(text: str) -> None:
    _check(text)


@given(st.lists(st.sampled_from(SEEDS), min_size=2, max_size=3))
def test_concatenated_sources_never_raise(parts: list[str]) -> None:
    _check("\n".join(parts))


# ---------------------------------------------------------------- deep nesting
#
# Long chains and deep nesting give a `too_deep` diagnostic at the documented limits
# (docs/language.md, "Limits") or go through every later stage: check, lower, the IR
# as JSON and back, the engine's compile, the graph, `fmt`. Never a RecursionError.

_CHAIN_OPS = ("and", "or", "+", "-", "*", "/")
# A prefix, a suffix, and how many expression levels one wrapping adds.
_WRAPPERS = {
    "not": ("not ", "", 1),
    # Parenthesized: `-` binds tighter than `not`, so `-not a` is a syntax error.
    "neg": ("-(", ")", 1),
    "paren": ("(", ")", 0),
    "list": ("[", "]", 1),
    "call": ("lower(", ")", 1),
    "path": ("(", ").b", 1),
    "agg": ("count(x where ", ")", 1),
}


@st.composite
def _deep_expressions(draw: st.DrawFn) -> tuple[str, int]:
    """An expression and its depth in the AST (a leaf is 1; each operator of a chain
    ``a and b and c`` nests one more, to the left)."""
    n = draw(st.one_of(st.integers(1, 80), st.integers(80, 700)))
    ops = draw(st.lists(st.sampled_from(_CHAIN_OPS), min_size=1, max_size=2))
    text = "a0"
    for i in range(1, n):
        text += f" {ops[i % len(ops)]} a{i}"
    depth = n
    if len(ops) == 2 and ops[0] != ops[1]:
        # Precedence would regroup a mixed chain (`and`/`or`, and `+`/`*` alike): keep
        # it one chain with parentheses.
        text = "a0"
        for i in range(1, n):
            text = f"({text}) {ops[i % 2]} a{i}"
    for kind in draw(st.lists(st.sampled_from(sorted(_WRAPPERS)), max_size=3)):
        times = draw(st.one_of(st.integers(0, 40), st.integers(40, 400)))
        pre, post, levels = _WRAPPERS[kind]
        text = pre * times + text + post * times
        depth += levels * times
    return text, depth


@st.composite
def _deep_blocks(draw: st.DrawFn) -> tuple[str, int]:
    """A journey whose innermost step sits ``depth`` blocks deep."""
    depth = draw(st.one_of(st.integers(0, 40), st.integers(40, 700)))
    kinds = draw(st.lists(st.sampled_from(("if", "else", "split", "wait")), min_size=1))
    lines = ["when x"]
    indent = ""
    for level in range(depth):
        kind = kinds[level % len(kinds)]
        if kind == "if":
            lines.append(f"{indent}if a{level}")
        elif kind == "else":
            lines += [f"{indent}if a{level}", f"{indent}  exit", f"{indent}else"]
        elif kind == "split":
            lines += [f"{indent}split", f"{indent}  50%", f"{indent}    exit", f"{indent}  50%"]
            indent += "  "
        else:
            lines += [f"{indent}wait for y up to 1d", f"{indent}  on y"]
            indent += "  "
        indent += "  "
    lines.append(f'{indent}send push "hi"')
    return "\n".join(lines) + "\n", depth


def _too_deep(result: ParseResult) -> list[str]:
    return [d.summary for d in result.diagnostics if d.code == "too_deep"]


def _goes_through(text: str) -> None:
    """A source that parsed goes through every later stage without raising."""
    from journeyc.compile import ir
    from journeyc.compile.graph import to_dot, to_mermaid
    from journeyc.compile.lower import lower_project
    from journeyc.engine.expr import compile_expr
    from journeyc.engine.program import Program
    from journeyc.lang.checker import check_project
    from journeyc.lang.formatter import format_source
    from journeyc.lang.project import Project

    project = Project([parse_source(text, PATH)])
    assert project.has_syntax_errors is False
    if any(d.is_error for d in check_project(project)):
        return
    lowered = lower_project(project)
    assert ir.ProjectIR.model_validate_json(lowered.model_dump_json()) == lowered
    for seg in lowered.segments.values():
        compile_expr(seg.expr)
    journeys = list(lowered.journeys.values())
    for j in journeys:
        Program.build(j)
    to_mermaid(journeys)
    to_dot(journeys)
    formatted = format_source(text, PATH)
    assert parse_source(formatted, PATH).tree is not None


@given(_deep_expressions(), st.sampled_from(("segment", "set", "where")))
@example(("a0" + "".join(f" and a{i}" for i in range(1, 500)), 500), "where")
@example(("a0" + "".join(f" and a{i}" for i in range(1, 300)), 300), "segment")
@example(("a0" + "".join(f" + a{i}" for i in range(1, 3000)), 3000), "set")
@example(("not " * 5000 + "a", 5001), "segment")
def test_long_chains_and_deep_expressions(case: tuple[str, int], place: str) -> None:
    from journeyc.lang.depth import MAX_EXPR_DEPTH

    expr, depth = case
    text = {
        "segment": f"segment s = {expr}\n",
        "set": f"when x\nset y = {expr}\n",
        "where": f'when x where {expr}\nsend push "hi"\n',
    }[place]
    result = _check(text)
    if depth > MAX_EXPR_DEPTH:
        assert result.tree is None
        [summary] = _too_deep(result)
        assert str(MAX_EXPR_DEPTH) in summary
    else:
        assert result.tree is not None, result.diagnostics
        _goes_through(text)


@given(_deep_blocks())
@example(
    (
        "when x\n" + "".join(f"{'  ' * i}if a{i}\n" for i in range(650)) + f"{'  ' * 650}exit\n",
        650,
    )
)
def test_deeply_nested_blocks(case: tuple[str, int]) -> None:
    from journeyc.lang.depth import MAX_BLOCK_DEPTH

    text, depth = case
    result = _check(text)
    if depth > MAX_BLOCK_DEPTH:
        assert result.tree is None
        [summary] = _too_deep(result)
        assert str(MAX_BLOCK_DEPTH) in summary
    else:
        assert result.tree is not None, result.diagnostics
        _goes_through(text)


def test_deepest_allowed_expression_inside_the_deepest_allowed_block() -> None:
    """Both limits at once, with the expression in an aggregate's `where` and in a
    `send … with`: every stage has room for them together."""
    from journeyc.lang.depth import MAX_BLOCK_DEPTH, MAX_EXPR_DEPTH

    # count(x where CHAIN) > 1: the comparison, the aggregate, then a chain of n terms
    # of 2 levels each (`event.p`), n + 1 levels.
    chain = " and ".join(f"event.p{i}" for i in range(MAX_EXPR_DEPTH - 3))
    cond = f"count(x where {chain}) > 1"
    value = " + ".join(f"a{i}" for i in range(MAX_EXPR_DEPTH))
    lines = [f"when x where {cond}"]
    for level in range(MAX_BLOCK_DEPTH):
        lines.append(f"{'  ' * level}if {cond}")
    inner = "  " * MAX_BLOCK_DEPTH
    lines += [f'{inner}send push "hi" with v = {value}', f"{inner}set y = {value}"]
    text = "\n".join(lines) + "\n"
    result = _check(text)
    assert result.tree is not None, result.diagnostics
    _goes_through(text)
    too_deep = text.replace(f"{inner}set", f"{inner}if a\n{inner}  set")
    assert _too_deep(_check(too_deep))


def test_a_recursion_error_anywhere_is_a_diagnostic() -> None:
    """The last lines of defence: with Python's recursion limit lowered under a tree
    within the nesting limits, checking and formatting report `too_deep` and lowering
    raises LowerError, instead of a RecursionError escaping."""
    import sys

    import pytest

    from journeyc.compile.lower import LowerError, lower_project
    from journeyc.lang.checker import check_project
    from journeyc.lang.formatter import FormatError, format_source
    from journeyc.lang.project import Project

    text = (
        "when x\n"
        + "".join(f"{'  ' * i}if a{i}\n" for i in range(30))
        + f"{'  ' * 30}set y = {' + '.join(f'a{i}' for i in range(60))}\n"
    )
    result = parse_source(text, PATH)
    assert result.tree is not None
    frame, depth = sys._getframe(), 0
    while frame is not None:
        frame, depth = frame.f_back, depth + 1
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(depth + 60)
    try:
        checked = check_project(Project([result]))
        with pytest.raises(LowerError, match="nests too deeply"):
            lower_project(Project([result]))
        with pytest.raises(FormatError) as formatting:
            format_source(text, PATH)
    finally:
        sys.setrecursionlimit(old)
    assert [d.code for d in checked] == ["too_deep"]
    assert [d.code for d in formatting.value.diagnostics] == ["too_deep"]
    assert checked[0].span.file == PATH
