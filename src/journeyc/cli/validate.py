"""``journeyc validate``: check journey files like a compiler."""

from __future__ import annotations

import sys

import click

from journeyc.cli.common import (
    EXIT_INVALID,
    EXIT_OK,
    echo_json,
    json_option,
    load,
    paths_argument,
    print_diagnostics,
)
from journeyc.lang.diagnostics import to_json


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
def validate(paths: tuple[str, ...], as_json: bool, max_errors: int) -> None:
    """Check journey files and report every problem found.

    PATH is a `.journey` file or a directory: all `.journey` files under it form one
    project (one namespace of journeys, messages and segments).

    Exit codes: 0 valid (warnings allowed), 1 invalid, 2 usage error.
    """
    project, diagnostics = load(paths, max_errors)
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
            click.echo(
                f"ok: {len(project.files)} file(s), {journeys} journey(s), {warnings} warning(s)"
            )
    sys.exit(EXIT_INVALID if errors else EXIT_OK)
