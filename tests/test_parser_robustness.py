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
