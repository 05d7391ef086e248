"""The formatter on fixture files, and the ``journeyc fmt`` command.

Fixtures (sqlglot style), under ``tests/fixtures/fmt``:

- ``identity/*.journey``: canonical sources that must format to themselves;
- ``pairs/NAME.in.journey`` + ``NAME.out.journey``: a messy source and its expected
  output. The bare journey of a pair is named ``NAME`` for both files.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from journeyc.cli import main
from journeyc.lang.formatter import FormatError, format_source, source_comments
from journeyc.lang.parser import parse_source
from tests.conftest import ROOT

FIXTURES = ROOT / "tests" / "fixtures" / "fmt"
IDENTITY = sorted((FIXTURES / "identity").glob("*.journey"))
PAIRS = sorted((FIXTURES / "pairs").glob("*.in.journey"))


def _comments(text: str) -> Counter[str]:
    return Counter(c.text for c in source_comments(text))


def _ast(text: str, path: str) -> object:
    result = parse_source(text, path)
    assert not [d for d in result.diagnostics if d.is_error]
    assert result.tree is not None
    return result.tree


# ---------------------------------------------------------------- fixtures


def test_fixture_sets_are_there() -> None:
    assert len(IDENTITY) >= 5
    assert len(PAIRS) >= 5
    for p in PAIRS:
        assert p.with_name(p.name.replace(".in.", ".out.")).is_file(), p


@pytest.mark.parametrize("path", IDENTITY, ids=lambda p: p.stem)
def test_identity_fixture_formats_to_itself(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert format_source(text, path.name) == text


@pytest.mark.parametrize("path", PAIRS, ids=lambda p: p.name.removesuffix(".in.journey"))
def test_pair_fixture(path: Path) -> None:
    name = path.name.replace(".in.", ".")
    messy = path.read_text(encoding="utf-8")
    expected = path.with_name(path.name.replace(".in.", ".out.")).read_text(encoding="utf-8")
    assert format_source(messy, name) == expected
    assert format_source(expected, name) == expected
    assert _ast(messy, name) == _ast(expected, name)
    assert _comments(messy) == _comments(expected)


@pytest.mark.parametrize("path", IDENTITY + PAIRS, ids=lambda p: p.name)
def test_fixture_comments_are_all_kept(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert _comments(format_source(text, path.name)) == _comments(text)


def test_no_fixture_is_commentless() -> None:
    with_comments = [p for p in IDENTITY + PAIRS if source_comments(p.read_text(encoding="utf-8"))]
    assert len(with_comments) >= 6


# ---------------------------------------------------------------- the API


def test_format_source_rejects_syntax_errors() -> None:
    with pytest.raises(FormatError) as info:
        format_source("when a\nwait\n", "x.journey")
    assert info.value.diagnostics
    assert all(d.is_error for d in info.value.diagnostics)


def test_format_source_rejects_bad_literals_rather_than_rewrite_them() -> None:
    # The parser stands `1s` in for a bad duration; writing that back would lose `30x`.
    with pytest.raises(FormatError) as info:
        format_source("when a\nwait 30x\n", "x.journey")
    assert [d.code for d in info.value.diagnostics] == ["bad_duration"]


def test_empty_source_formats_to_empty() -> None:
    assert format_source("", "x.journey") == ""
    assert format_source("\n\n", "x.journey") == ""


def test_trailing_newline_is_added() -> None:
    assert format_source("when a\nexit", "x.journey") == "when a\nexit\n"


def test_keyword_event_names_are_quoted() -> None:
    out = format_source('wait for x up to 1d\n  on "timeout"\n    exit\n', "x.journey")
    assert 'on "timeout"' in out
    tree = parse_source(out, "x.journey").tree
    assert tree is not None
    step = tree.journeys[0].steps[0]
    assert step.branches[0].event == "timeout"  # type: ignore[union-attr]


def test_comments_after_a_line_separator_in_a_string_are_kept() -> None:
    # `str.splitlines` breaks at U+2028; the parser does not. The comments after it
    # must stay where they are, with their text intact.
    text = 'set x = "a\u2028b"  # one\u2028two\nwait 1d  # three\n'
    assert format_source(text, "x.journey") == text
    assert [c.text for c in source_comments(text)] == ["# one\u2028two", "# three"]


def test_comment_placement_by_column() -> None:
    text = (
        "if x\n"
        "  if y\n"
        "    exit\n"
        "      # deeper than any block: end of the inner block\n"
        "   # between the two blocks: end of the outer if's block\n"
        "# at the margin: before the next statement\n"
        "wait 1d\n"
    )
    assert format_source(text, "x.journey") == (
        "if x\n"
        "  if y\n"
        "    exit\n"
        "    # deeper than any block: end of the inner block\n"
        "  # between the two blocks: end of the outer if's block\n"
        "# at the margin: before the next statement\n"
        "wait 1d\n"
    )


def test_comments_at_block_ends_keep_their_order() -> None:
    text = "if x\n  if y\n    exit\n  # first\n    # second\nwait 1d\n"
    assert format_source(text, "x.journey") == (
        "if x\n  if y\n    exit\n  # first\n  # second\nwait 1d\n"
    )


# ---------------------------------------------------------------- the command

MESSY = "when  a\nwait 90m\n"
CLEAN = "when a\nwait 1h30m\n"


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_fmt_rewrites_in_place_only_what_changes(runner: CliRunner, tmp_path: Path) -> None:
    messy = _write(tmp_path / "messy.journey", MESSY)
    clean = _write(tmp_path / "clean.journey", CLEAN)
    before = clean.stat().st_mtime_ns
    result = runner.invoke(main, ["fmt", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert messy.read_text(encoding="utf-8") == CLEAN
    assert clean.stat().st_mtime_ns == before
    result = runner.invoke(main, ["fmt", str(messy)])
    assert result.exit_code == 0
    assert messy.read_text(encoding="utf-8") == CLEAN


def test_fmt_check_lists_files_and_fails(runner: CliRunner, tmp_path: Path) -> None:
    messy = _write(tmp_path / "a" / "messy.journey", MESSY)
    _write(tmp_path / "clean.journey", CLEAN)
    result = runner.invoke(main, ["fmt", "--check", str(tmp_path)])
    assert result.exit_code == 1
    assert "messy.journey" in result.output
    assert "clean.journey" not in result.output
    assert messy.read_text(encoding="utf-8") == MESSY


def test_fmt_check_passes_when_formatted(runner: CliRunner, tmp_path: Path) -> None:
    _write(tmp_path / "clean.journey", CLEAN)
    result = runner.invoke(main, ["fmt", "--check", str(tmp_path)])
    assert result.exit_code == 0
    assert result.stdout == ""
    assert result.stderr == "ok: 1 file(s) formatted\n"


def test_fmt_diff_prints_a_unified_diff(runner: CliRunner, tmp_path: Path) -> None:
    messy = _write(tmp_path / "messy.journey", MESSY)
    result = runner.invoke(main, ["fmt", "--diff", str(messy)])
    assert result.exit_code == 0
    assert "--- a/" in result.output and "+++ b/" in result.output
    assert "-wait 90m\n" in result.output
    assert "+wait 1h30m\n" in result.output
    assert messy.read_text(encoding="utf-8") == MESSY
    result = runner.invoke(main, ["fmt", "--diff", "--check", str(messy)])
    assert result.exit_code == 1
    assert "+wait 1h30m" in result.output


def test_fmt_diff_marks_a_missing_final_newline(runner: CliRunner, tmp_path: Path) -> None:
    path = _write(tmp_path / "x.journey", "when a\nexit")
    result = runner.invoke(main, ["fmt", "--diff", str(path)])
    assert "\\ No newline at end of file" in result.output


def test_fmt_json_shape(runner: CliRunner, tmp_path: Path) -> None:
    _write(tmp_path / "messy.journey", MESSY)
    _write(tmp_path / "clean.journey", CLEAN)
    _write(tmp_path / "broken.journey", "when a\nwait\n")
    result = runner.invoke(main, ["fmt", "--json", "--check", str(tmp_path)])
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert set(data) == {"changed", "unchanged", "errors"}
    assert [Path(p).name for p in data["changed"]] == ["messy.journey"]
    assert [Path(p).name for p in data["unchanged"]] == ["clean.journey"]
    assert [Path(p).name for p in data["errors"]] == ["broken.journey"]


def test_fmt_leaves_a_broken_file_alone(runner: CliRunner, tmp_path: Path) -> None:
    broken = _write(tmp_path / "broken.journey", "when  a\nwait\n")
    messy = _write(tmp_path / "messy.journey", MESSY)
    result = runner.invoke(main, ["fmt", str(tmp_path)])
    assert result.exit_code == 1
    assert "error[journey_parse_error]" in result.stderr
    assert "broken.journey:2" in result.stderr
    assert "Traceback" not in result.output
    assert broken.read_text(encoding="utf-8") == "when  a\nwait\n"
    assert messy.read_text(encoding="utf-8") == CLEAN


def test_fmt_normalizes_crlf(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "crlf.journey"
    path.write_bytes(b"when a\r\nexit\r\n")
    assert runner.invoke(main, ["fmt", "--check", str(path)]).exit_code == 1
    assert runner.invoke(main, ["fmt", str(path)]).exit_code == 0
    assert path.read_bytes() == b"when a\nexit\n"


def test_fmt_reports_a_non_utf8_file(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "latin.journey"
    path.write_bytes(b'set x = "caf\xe9"\n')
    result = runner.invoke(main, ["fmt", str(path)])
    assert result.exit_code == 1
    assert "not UTF-8" in result.stderr
    assert path.read_bytes() == b'set x = "caf\xe9"\n'


@pytest.mark.parametrize(
    "args",
    [["fmt", "nope.journey"], ["fmt"], ["fmt", "--bogus", "x.journey"]],
    ids=["missing-path", "no-path", "bad-option"],
)
def test_fmt_usage_errors_exit_2(runner: CliRunner, tmp_path: Path, args: list[str]) -> None:
    with runner.isolated_filesystem(temp_dir=tmp_path):
        result = runner.invoke(main, args)
    assert result.exit_code == 2
    assert "Traceback" not in result.output


def test_fmt_empty_directory_is_a_usage_error(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(main, ["fmt", str(tmp_path)])
    assert result.exit_code == 2
    assert "no .journey files" in result.stderr


def test_fmt_help_documents_exit_codes(runner: CliRunner) -> None:
    result = runner.invoke(main, ["fmt", "--help"])
    assert result.exit_code == 0
    for words in ("--check", "--diff", "--json", "Exit codes", "0 ", "1 ", "2 "):
        assert words in result.output


@pytest.mark.e2e
def test_fmt_subprocess(tmp_path: Path) -> None:
    path = _write(tmp_path / "messy.journey", MESSY)
    command = [sys.executable, "-m", "journeyc", "fmt"]
    proc = subprocess.run([*command, "--check", str(path)], capture_output=True, text=True)
    assert proc.returncode == 1, proc.stderr
    assert "messy.journey" in proc.stdout
    proc = subprocess.run([*command, str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert path.read_text(encoding="utf-8") == CLEAN
