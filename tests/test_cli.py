"""The command line as a whole: help for every command, exit codes, the README."""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner

from journeyc.cli import COMMANDS, main
from tests.conftest import ROOT


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_has_help_that_documents_exit_codes(name: str) -> None:
    result = CliRunner().invoke(main, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage: " in result.output
    assert "Exit codes" in result.output, f"`journeyc {name} --help` must document exit codes"


def test_top_level_help_lists_every_command() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for name in COMMANDS:
        assert name in result.output


def test_unknown_command_is_a_usage_error() -> None:
    result = CliRunner().invoke(main, ["frobnicate"])
    assert result.exit_code == 2


def test_missing_path_is_a_usage_error_without_traceback(tmp_path: object) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "journeyc", "validate", "does/not/exist.journey"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "no such file or directory" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    marker = "<!-- test-command -->"
    assert marker in readme, "README.md marks its test command"
    block = readme.split(marker, 1)[1].split("```", 2)[1]
    lines = block.splitlines()[1:]  # after the ```bash fence line
    command = next(line for line in lines if line.strip() and not line.startswith("#"))
    assert command.strip() in ci
