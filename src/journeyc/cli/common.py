"""What the commands share: loading a project, printing diagnostics, exit codes."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from journeyc.lang.diagnostics import Diagnostic, render_text, sort_key
from journeyc.lang.project import Project, ProjectPathError, load_project

if TYPE_CHECKING:
    from journeyc.config import Config
    from journeyc.store.abc import SimulationStore, Store
    from journeyc.store.targets import StoreTarget

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_USAGE = 2

paths_argument = click.argument(
    "paths", nargs=-1, required=True, type=click.Path(path_type=str), metavar="PATH..."
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for programs.")
output_option = click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True, path_type=str),
    metavar="FILE",
    help="Write to FILE instead of standard output.",
)


def usage_error(message: str) -> NoReturn:
    """Print a usage error and exit 2."""
    click.echo(f"journeyc: {message}", err=True)
    sys.exit(EXIT_USAGE)


def load_config_file(config_file: Path | None) -> Config:
    """``--config``: the configuration in ``config_file`` (None: what
    :func:`~journeyc.config.load_config` gives without a file). A missing file is a
    usage error; a bad one exits 1 with the reason."""
    from journeyc.config import ConfigError, load_config

    if config_file is not None and not config_file.is_file():
        usage_error(f"--config: no such file: {config_file}")
    try:
        return load_config(config_file)
    except ConfigError as exc:
        click.echo(f"journeyc: {exc}", err=True)
        sys.exit(EXIT_INVALID)


def load(
    paths: Sequence[str],
    max_errors: int = 50,
    seen_events: set[str] | None = None,
    *,
    tests: bool = False,
) -> tuple[Project, list[Diagnostic]]:
    """Load and check a project (with ``seen_events``, the event names a store has
    seen, for the misspelt-event check); a missing path is a usage error. With
    ``tests``, the test files beside it (``*.test.journey``, never part of the
    project) are checked against it too (``validate``, ``journeyc test``)."""
    from journeyc.lang.checker import check_project
    from journeyc.lang.testfile import project_test_diagnostics

    try:
        project = load_project(paths, max_errors)
    except ProjectPathError as exc:
        usage_error(str(exc))
    if not project.files:
        usage_error(f"no .journey files under {' '.join(paths)}")
    diagnostics = check_project(project, seen_events)
    if tests:
        diagnostics += project_test_diagnostics(project.files, project.tests)
    return project, sorted(diagnostics, key=sort_key)


def print_diagnostics(project: Project, diagnostics: list[Diagnostic], err: bool = True) -> None:
    """Print diagnostics compiler-style (in color on a terminal)."""
    stream = sys.stderr if err else sys.stdout
    if diagnostics:
        text = render_text(diagnostics, project.sources, color=stream.isatty())
        click.echo(text, err=err, nl=False)


def load_valid(paths: Sequence[str]) -> Project:
    """Load a project for a command that needs it valid: print its errors and exit 1
    when it is not; its warnings are printed and do not stop it."""
    project, diagnostics = load(paths)
    print_diagnostics(project, diagnostics)
    if any(d.is_error for d in diagnostics):
        errors = sum(1 for d in diagnostics if d.is_error)
        click.echo(f"journeyc: {errors} error(s); fix them first (journeyc validate)", err=True)
        sys.exit(EXIT_INVALID)
    return project


def echo_json(data: Any) -> None:
    """Print one JSON document."""
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


class StoreTargetType(click.ParamType["StoreTarget", Any]):
    """A click type for a store: a ``postgresql://`` URL stays text, anything else is
    the path of a SQLite file (see :mod:`journeyc.store.targets`)."""

    name = "store"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> StoreTarget:
        """The target ``value`` names."""
        from journeyc.store.targets import target_of

        if not isinstance(value, str | Path) or not str(value):
            self.fail("expected a file path or a postgresql:// URL", param, ctx)
        return target_of(value)


STORE_TARGET = StoreTargetType()


def open_store(
    target: StoreTarget, *, existing: bool = False, lock_timeout_s: float | None = None
) -> Store:
    """Open the store at ``target`` (a SQLite file, or a PostgreSQL database by its
    URL) for a command. With ``existing``, a missing file is a usage error (exit 2)
    rather than a new store; a file that is not a journeyc store (or is newer than
    this journeyc), or a database server that cannot be reached or refuses the login,
    exits 1 with the reason on one line (a URL shown without its password). Writers
    wait at most ``lock_timeout_s`` (default: the store's) for a lock."""
    from journeyc.store.open import open_full_store as opener
    from journeyc.store.targets import missing_file

    if existing and missing_file(target):
        usage_error(f"no store at {target} (use --store, or run journeyc serve or ingest first)")
    if lock_timeout_s is None:
        return opened(target, opener)
    return opened(target, lambda p: opener(p, lock_timeout_s=lock_timeout_s))


def open_simulation_store(path: Path) -> SimulationStore:
    """Open the store at ``path`` for the simulator (see :func:`open_store`)."""
    from journeyc.store.open import open_simulation_store as opener

    return opened(path, opener)


_S = TypeVar("_S")
_T = TypeVar("_T")


def opened(target: _T, opener: Callable[[_T], _S]) -> _S:
    """``opener(target)``; a target that is not a journeyc store exits 1 with the reason."""
    from journeyc.store.errors import StoreError

    try:
        return opener(target)
    except StoreError as exc:
        click.echo(f"journeyc: {exc}", err=True)
        sys.exit(EXIT_INVALID)
