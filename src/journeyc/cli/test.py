"""``journeyc test``: run the tests of ``*.test.journey`` files on the simulator."""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from journeyc.cli.common import (
    EXIT_INVALID,
    EXIT_OK,
    echo_json,
    load,
    load_config_file,
    paths_argument,
    print_diagnostics,
    usage_error,
)
from journeyc.lang.diagnostics import to_json

if TYPE_CHECKING:
    from journeyc.testing.coverage import JourneyCoverage
    from journeyc.testing.runner import Result, Run

RULE = "-" * 80
PROGRESS_FROM = 50
"""Tests from which a progress bar is shown on a terminal."""


@click.command("test")
@paths_argument
@click.option(
    "--run",
    "pattern",
    metavar="PATTERN",
    help="Run only the tests whose name this regular expression finds (re.search).",
)
@click.option("-v", "--verbose", is_flag=True, help="Print each test's name and result.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as one JSON document.")
@click.option(
    "--coverage",
    "show_coverage",
    is_flag=True,
    help="Also say which steps of each journey some test reached, and which none did.",
)
@click.option(
    "--threshold",
    type=click.FloatRange(min=0, max=100),
    metavar="N",
    help="Fail (exit 1) when the tests reach less than N% of the project's steps "
    "(implies --coverage).",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False),
    help="journeyc.toml (time zone, caps, quiet hours, reachability), as for simulate.",
)
def test_cmd(
    paths: tuple[str, ...],
    pattern: str | None,
    verbose: bool,
    as_json: bool,
    show_coverage: bool,
    threshold: float | None,
    config_file: str | None,
) -> None:
    """Run the tests of the `*.test.journey` files under PATH.

    PATH is a directory (its journey files are the project, its `*.test.journey`
    files the tests) or a test file (tested against the journey files of its
    directory). Each test is one simulation on the virtual clock, by the same
    engine as `journeyc simulate`: its users, products and events go in, and its
    `expect` lines are checked against the actions that come out. See
    docs/testing.md.

    Prints a block per failing test: the expectation that failed, with the actual
    actions of that user around the expected time, then `PASS: n/N` (and `FAIL:`).
    -v prints every test's result; --json one JSON document. --coverage adds the
    share of each journey's steps some test reached and the steps none did.

    Exit codes: 0 every test passed (and coverage reached --threshold), 1 a test
    failed, the journeys or tests are invalid, or coverage is under --threshold,
    2 usage error.
    """
    from journeyc.compile.lower import lower_project
    from journeyc.lang.testfile import is_test_file
    from journeyc.testing.runner import Case, run_cases, select

    for path in map(Path, paths):
        if path.is_file() and not is_test_file(path.name):
            usage_error(
                f"{path}: not a test file (*.test.journey): give its directory, or the "
                "test file beside it"
            )
    if pattern is not None:
        try:
            re.compile(pattern)
        except re.error as exc:
            usage_error(f"--run: not a regular expression: {pattern!r} ({exc})")
    config = load_config_file(Path(config_file) if config_file else None)
    project, diagnostics = load(paths, tests=True)
    print_diagnostics(project, diagnostics)
    if any(d.is_error for d in diagnostics):
        errors = sum(1 for d in diagnostics if d.is_error)
        click.echo(f"journeyc: {errors} error(s); no test was run", err=True)
        if as_json:
            # A program reading stdout gets a document here too: no test ran, and
            # why (validate --json's shape under "diagnostics").
            echo_json({"passed": 0, "failed": 0, "total": 0, "diagnostics": to_json(diagnostics)})
        sys.exit(EXIT_INVALID)
    if not project.tests:
        usage_error(f"no *.test.journey files under {' '.join(paths)}")
    cases = select(
        (Case(f.path, t) for f in project.tests if f.tree is not None for t in f.tree.tests),
        pattern,
    )
    program = lower_project(project)
    began = time.perf_counter()
    run = _with_progress(
        lambda progress: run_cases(program, cases, config=config, progress=progress),
        len(cases),
        quiet=as_json,
    )
    seconds = time.perf_counter() - began
    rows = None
    if show_coverage or threshold is not None:
        from journeyc.testing.coverage import coverage

        rows = coverage(program, run.visits)
    under = threshold is not None and rows is not None and _total(rows) < threshold
    if as_json:
        echo_json(_json(run, rows, threshold, seconds))
    else:
        click.echo(report(run, verbose=verbose), nl=False)
        if rows is not None:
            click.echo(coverage_report(rows, threshold), nl=False)
        if not cases:
            click.echo(f"journeyc: no test matches --run {pattern!r}", err=True)
    failed = run.passed < len(run.results)
    sys.exit(EXIT_INVALID if failed or under else EXIT_OK)


def _total(rows: Sequence[JourneyCoverage]) -> float:
    from journeyc.testing.coverage import total_percent

    return total_percent(rows)


def _with_progress(
    work: Callable[[Callable[[int, int], None] | None], Run], total: int, *, quiet: bool
) -> Run:
    """Run ``work(progress)``, with a progress bar on a terminal for many tests."""
    if quiet or total < PROGRESS_FROM or not sys.stderr.isatty():
        return work(None)
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("testing", total=total)

        def tick(done: int, _total: int) -> None:
            bar.update(task, completed=done)

        return work(tick)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f}ms"


def report(run: Run, *, verbose: bool = False) -> str:
    """The text report, like ``opa test``'s: each failing test (every test with
    ``verbose``) under its file, its failed expectations with the actions around
    them, then ``PASS: n/N`` and, when some failed, ``FAIL: m/N``."""
    from journeyc.testing.runner import describe

    lines: list[str] = []
    last_file = None
    for r in run.results:
        if r.passed and not verbose:
            continue
        if r.case.file != last_file:
            if last_file is not None:
                lines.append("")
            lines.append(f"{r.case.file}:")
            last_file = r.case.file
        took = f" ({_ms(r.seconds)})" if verbose else ""
        line = r.case.test.span.line
        lines.append(f"{'PASS' if r.passed else 'FAIL'}: {r.case.name} (line {line}){took}")
        if r.error is not None:
            lines.append(f"  error: {r.error}")
        for f in r.failures:
            lines.append(f"  {r.case.file}:{f.line}:{f.column}: {f.expectation}")
            if f.actual:
                lines.append(f"    {f.message}; actual:")
                lines += [f"      {describe(a)}" for a in f.actual]
            else:
                lines.append(f"    {f.message}; no actual action near it")
    total = len(run.results)
    if lines:
        lines.append(RULE)
    lines.append(f"PASS: {run.passed}/{total}")
    if run.passed < total:
        lines.append(f"FAIL: {total - run.passed}/{total}")
    return "\n".join(lines) + "\n"


def coverage_report(rows: Sequence[JourneyCoverage], threshold: float | None = None) -> str:
    """Coverage per journey: steps and branches reached, and the steps none did."""
    from journeyc.testing.coverage import total_percent

    total = total_percent(rows)
    steps = sum(r.steps for r in rows)
    reached = sum(r.reached for r in rows)
    lines = [f"coverage: {total:.1f}% of steps ({reached}/{steps})"]
    width = max((len(r.journey) for r in rows), default=0)
    for r in rows:
        lines.append(
            f"  {r.journey:<{width}}  {r.percent:5.1f}%  {r.reached}/{r.steps} steps, "
            f"{r.branches_reached}/{r.branches} branches"
        )
        for m in r.missed:
            lines.append(f"    missed: {m}")
    if threshold is not None and total < threshold:
        lines.append(f"FAIL: coverage {total:.1f}% is under --threshold {threshold:g}%")
    return "\n".join(lines) + "\n"


def _result_json(r: Result) -> dict[str, Any]:
    return {
        "file": r.case.file,
        "name": r.case.name,
        "line": r.case.test.span.line,
        "passed": r.passed,
        "seconds": round(r.seconds, 4),
        "error": r.error,
        "failures": [
            {
                "line": f.line,
                "column": f.column,
                "expectation": f.expectation,
                "message": f.message,
                "actual": [a.as_dict() for a in f.actual],
            }
            for f in r.failures
        ],
    }


def _json(
    run: Run, rows: Sequence[JourneyCoverage] | None, threshold: float | None, seconds: float
) -> dict[str, Any]:
    total = len(run.results)
    out: dict[str, Any] = {
        "passed": run.passed,
        "failed": total - run.passed,
        "total": total,
        "seconds": round(seconds, 3),
        "tests": [_result_json(r) for r in run.results],
    }
    if rows is not None:
        out["coverage"] = {
            "percent": round(_total(rows), 1),
            "threshold": threshold,
            "journeys": [r.as_dict() for r in rows],
        }
    return out
