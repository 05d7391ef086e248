"""``journeyc store``: work on a store as a whole — ``store copy SRC DST`` moves a
store's data into an empty store of any kind (SQLite to PostgreSQL, and back)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import ExitStack, closing, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click

from journeyc.cli.common import (
    EXIT_INVALID,
    EXIT_OK,
    STORE_TARGET,
    echo_json,
    json_option,
    opened,
    usage_error,
)
from journeyc.store.targets import StoreTarget, missing_file, shown

if TYPE_CHECKING:
    from journeyc.store.abc import CopyableStore
    from journeyc.store.copy import CopyReport, Progress


@click.group()
def store() -> None:
    """Work on a store as a whole (a SQLite file or a postgresql:// URL).

    Exit codes (journeyc store copy): 0 copied and counted, 1 the target holds data, a
    store cannot be opened, a row was refused or the counts differ, 2 usage error.
    """


@store.command("copy")
@click.argument("source", type=STORE_TARGET, metavar="SRC")
@click.argument("target", type=STORE_TARGET, metavar="DST")
@click.option(
    "--resume",
    is_flag=True,
    help="Finish a copy into DST that stopped: tables already copied whole are kept, "
    "the others copied.",
)
@click.option(
    "--chunk",
    type=click.IntRange(min=1),
    default=5000,
    show_default=True,
    help="Rows read and written at a time.",
)
@json_option
def copy(source: StoreTarget, target: StoreTarget, resume: bool, chunk: int, as_json: bool) -> None:
    """Copy the store SRC into the empty store DST, e.g. a SQLite file into PostgreSQL.

    \b
      journeyc store copy journeyc.db postgresql://journeyc@db.internal/journeyc
      journeyc store copy postgresql://journeyc@db.internal/journeyc back.db

    SRC and DST are SQLite files or postgresql:// URLs, of one kind or two. Every
    table is copied: events in order with their seq, profiles, identities, journeys
    and their versions, instances, entries, the outbox, actions, delivery reports,
    segments and their members, schedules, products, settings (the daemon's keys),
    the engine's cursors and the reports' sums; DST numbers new rows past the
    copied ones. Worker leases are not copied. DST is made when it is a new file;
    a database must exist (the store's tables are made in it).

    SRC is read as one snapshot: stop the daemon first, or what it writes meanwhile
    is not in the copy. Each table is copied in one transaction of DST, so a copy
    that stops leaves each table whole or empty; --resume finishes it. At the end
    each table's rows are counted in DST and compared with SRC's. A progress bar per
    table shows on a terminal. --json prints {source, target, tables: [{name, rows,
    kept}], rows}; URLs are shown without their passwords.

    Exit codes: 0 copied and counted, 1 DST holds data, a store cannot be opened,
    DST refused a row (PostgreSQL holds no NUL character in text) or the counts
    differ, 2 usage error (no file at SRC, SRC and DST the same).
    """
    from journeyc.store.copy import copy_store
    from journeyc.store.errors import StoreError

    if missing_file(source):
        usage_error(f"no store at {source} (SRC must exist)")
    if shown(source) == shown(target) or (
        isinstance(source, Path) and isinstance(target, Path) and _same_file(source, target)
    ):
        usage_error(f"SRC and DST are the same store: {shown(source)}")
    with ExitStack() as stack:
        src = stack.enter_context(closing(_open(source)))
        dst = stack.enter_context(closing(_open(target)))
        try:
            with _bars(not as_json) as progress:
                report = copy_store(src, dst, resume=resume, chunk=chunk, progress=progress)
        except StoreError as exc:
            click.echo(f"journeyc: {exc}", err=True)
            sys.exit(EXIT_INVALID)
    if as_json:
        echo_json(_to_json(report))
    else:
        kept = sum(1 for t in report.tables if t.kept)
        also = f" ({kept} table(s) kept from the copy that stopped)" if kept else ""
        click.echo(
            f"copied {report.rows} row(s) in {len(report.tables)} table(s) from "
            f"{report.source} to {report.target}{also}; every table's rows counted"
        )
    sys.exit(EXIT_OK)


def _same_file(a: Path, b: Path) -> bool:
    return b.exists() and a.resolve() == b.resolve()


def _open(where: StoreTarget) -> CopyableStore:
    """The store at ``where`` (any kind: a copy needs only its tables); one that
    cannot be opened exits 1 with the reason on one line."""
    from journeyc.store.open import open_store

    return opened(where, open_store)


@contextmanager
def _bars(wanted: bool) -> Iterator[Progress | None]:
    """A rich bar per table with rows on stderr, when ``wanted`` and stderr is a
    terminal."""
    if not wanted or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskID,
        TextColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("{task.description:<16}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True)) as bars:
        tasks: dict[str, TaskID] = {}

        def progress(table: str, done: int, total: int) -> None:
            if not total:
                return  # an empty table: no bar (the summary counts it)
            if table not in tasks:
                tasks[table] = bars.add_task(table, total=total)
            bars.update(tasks[table], completed=done)

        yield progress


def _to_json(report: CopyReport) -> dict[str, object]:
    return {
        "source": report.source,
        "target": report.target,
        "tables": [{"name": t.name, "rows": t.rows, "kept": t.kept} for t in report.tables],
        "rows": report.rows,
    }
