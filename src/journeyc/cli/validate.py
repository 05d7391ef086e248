"""``journeyc validate``: check journey files like a compiler."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from journeyc.cli.common import (
    EXIT_INVALID,
    EXIT_OK,
    STORE_TARGET,
    echo_json,
    json_option,
    load,
    load_config_file,
    open_store,
    paths_argument,
    print_diagnostics,
)
from journeyc.lang.diagnostics import Diagnostic, sort_key, to_json
from journeyc.lang.project import Project

if TYPE_CHECKING:
    from journeyc.config import Config
    from journeyc.store.targets import StoreTarget


@click.command()
@paths_argument
@json_option
@click.option(
    "--max-errors",
    type=click.IntRange(min=1),
    default=50,
    show_default=True,
    help="Stop reporting syntax errors in a file after this many.",
)
@click.option(
    "--store",
    "--db",
    "db",
    type=STORE_TARGET,
    metavar="FILE|URL",
    help="Also compare the project's event names with those this store (a SQLite file "
    "or a postgresql:// URL) has seen: a name it never saw, one letter away from one "
    "it did, is warned about. --db is the same option.",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="journeyc.toml: warn where one journey alone can send a user more than its "
    "[engine.global_cap] lets through; its default quiet hours count in the bounds.",
)
@click.option(
    "-v",
    "--verbose",
    is_flag=True,
    help="Also print each journey's static bounds: sends per entry, time in the "
    "journey, sends per user per day and per week.",
)
def validate(
    paths: tuple[str, ...],
    as_json: bool,
    max_errors: int,
    db: StoreTarget | None,
    config_file: Path | None = None,
    verbose: bool = False,
) -> None:
    """Check journey files and report every problem found.

    PATH is a `.journey` file or a directory: all `.journey` files under it form one
    project (one namespace of journeys, messages and segments). Test files
    (`*.test.journey`, see `journeyc test`) are not part of the project; they are
    checked against it.

    With --store (or --db), the event names of the project are compared with the events that
    store has logged (`similar_event_name`): `exit when order_complete` is warned
    about when the store has seen `order_completed` and never `order_complete`.

    With -v, a line per journey gives its static bounds (docs/language.md, "Static
    bounds"); with --config, a journey that alone can go over the global cap is
    warned about (`over_global_cap`).

    Exit codes: 0 valid (warnings allowed), 1 invalid (or --db is not a journeyc
    store, or --config is not a valid journeyc.toml), 2 usage error (a missing PATH,
    no store at --db, no file at --config).
    """
    config = load_config_file(config_file) if config_file is not None else None
    seen = _seen_events(db) if db is not None else None
    project, diagnostics = load(paths, max_errors, seen, tests=True)
    bounds_lines: list[str] = []
    if not any(d.is_error for d in diagnostics) and (verbose or config is not None):
        more, bounds_lines = _bounds(project, config)
        diagnostics = sorted([*diagnostics, *more], key=sort_key)
    errors = sum(1 for d in diagnostics if d.is_error)
    if as_json:
        echo_json(to_json(diagnostics))
    else:
        print_diagnostics(project, diagnostics)
        warnings = len(diagnostics) - errors
        journeys = sum(len(t.journeys) for t in project.trees)
        if errors:
            click.echo(
                f"{errors} error(s), {warnings} warning(s) in {len(project.files)} file(s)",
                err=True,
            )
        else:
            for line in bounds_lines if verbose else ():
                click.echo(line)
            # Test files are checked, not counted among the project's files.
            tests = f", {len(project.tests)} test file(s)" if project.tests else ""
            click.echo(
                f"ok: {len(project.files)} file(s), {journeys} journey(s){tests}, "
                f"{warnings} warning(s)"
            )
    sys.exit(EXIT_INVALID if errors else EXIT_OK)


def _seen_events(db: StoreTarget) -> set[str]:
    """The event names the store at ``db`` has logged."""
    store = open_store(db, existing=True)
    try:
        return store.event_names()
    finally:
        store.close()


def _bounds(project: Project, config: Config | None) -> tuple[list[Diagnostic], list[str]]:
    """The static bounds of a valid project: ``over_global_cap`` warnings when
    ``config`` sets a global cap, and a summary line per journey."""
    from journeyc.compile import bounds
    from journeyc.compile.lower import LowerError, lower_project

    try:
        compiled = lower_project(project)
    except LowerError:
        return [], []  # the checker reported why
    quiet = config.engine.quiet_hours.rule if config is not None else None
    cap = config.engine.global_cap if config is not None else None
    warnings = (
        bounds.global_cap_warnings(compiled, project.trees, cap.rule, quiet)
        if cap is not None
        else []
    )
    lines = [
        bounds.summary_line(j.id, bounds.journey_bounds(j, quiet))
        for j in compiled.journeys.values()
    ]
    return warnings, lines
