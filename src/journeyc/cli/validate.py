"""``journeyc validate``: check journey files like a compiler."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from journeyc.cli.common import (
    EXIT_INVALID,
    EXIT_OK,
    echo_json,
    json_option,
    load,
    open_store,
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
@click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Also compare the project's event names with those the store FILE has seen: "
    "a name it never saw, one letter away from one it did, is warned about.",
)
def validate(paths: tuple[str, ...], as_json: bool, max_errors: int, db: Path | None) -> None:
    """Check journey files and report every problem found.

    PATH is a `.journey` file or a directory: all `.journey` files under it form one
    project (one namespace of journeys, messages and segments).

    With --db, the event names of the project are compared with the events that
    store has logged (`similar_event_name`): `exit when order_complete` is warned
    about when the store has seen `order_completed` and never `order_complete`.

    Exit codes: 0 valid (warnings allowed), 1 invalid (or --db is not a journeyc
    store), 2 usage error (a missing PATH, no store at --db).
    """
    seen = _seen_events(db) if db is not None else None
    project, diagnostics = load(paths, max_errors, seen)
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


def _seen_events(db: Path) -> set[str]:
    """The event names the store at ``db`` has logged."""
    store = open_store(db, existing=True)
    try:
        return store.event_names()
    finally:
        store.close()
