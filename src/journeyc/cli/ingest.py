"""``journeyc ingest``: bulk-load Segment track/identify calls into the store."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

from journeyc.cli.common import EXIT_INVALID, open_store, usage_error
from journeyc.cli.serve import config_option, read_config, store_option
from journeyc.config import store_target
from journeyc.store.targets import StoreTarget, shown

if TYPE_CHECKING:
    from journeyc.events import Event
    from journeyc.store.abc import Store

CHUNK = 1000
"""Events per transaction: short enough that a daemon's ingest API is never held up."""


def append_all(
    store: Store, events: Sequence[Event], progress: Callable[[int], None] | None = None
) -> tuple[int, int]:
    """Append ``events`` in chunks (one transaction each); return (new, duplicates).

    ``progress(done)`` is told how many events have been handled after each chunk.
    A run cut short leaves whole chunks behind; running it again adds the rest,
    since the events already stored are recognised by their ``messageId``. An alias
    event that merges nothing (both ids name one user already) is neither.
    """
    new = duplicates = 0
    for start in range(0, len(events), CHUNK):
        chunk = events[start : start + CHUNK]
        seqs = store.append_events(chunk)
        new += sum(seq is not None for seq in seqs)
        duplicates += sum(
            seq is None and e.kind != "alias" for e, seq in zip(chunk, seqs, strict=True)
        )
        if progress is not None:
            progress(min(start + CHUNK, len(events)))
    return new, duplicates


@click.command()
@click.argument("events_file", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE")
@store_option
@config_option
def ingest(events_file: Path, db: StoreTarget | None, config_file: Path | None) -> None:
    """Load events from a JSON-lines FILE of Segment track, identify and alias calls.

    Every line is checked first: if any is bad, each bad line is listed with its
    line number and field, and nothing is stored. Events the store already holds
    (same messageId) are counted as duplicates and left alone; a line without a
    messageId gets one made of its line number and its text, so loading a file
    twice (or again with lines added at its end) adds nothing twice, while two
    equal lines are two events. Identify calls merge their traits into the profiles.

    The events are new to the engine: a daemon serving the same store (journeyc
    serve) handles them on its next engine run, within seconds, as if they had
    just arrived. A progress bar shows on a terminal.

    Exit codes: 0 loaded, 1 bad lines (nothing stored), a store that cannot be
    opened, or a store busy past its lock timeout, 2 usage error.
    """
    from journeyc.events import EventError, read_events_jsonl
    from journeyc.store.errors import StoreBusyError

    if not events_file.is_file():
        usage_error(f"{events_file}: no such file")
    config, _ = read_config(config_file)
    path = store_target(db, config)
    try:
        events = read_events_jsonl(events_file)
    except EventError as exc:
        click.echo(f"journeyc: {len(exc.problems)} problem(s); nothing was stored:", err=True)
        for problem in exc.problems:
            click.echo(f"  {problem}", err=True)
        sys.exit(EXIT_INVALID)
    except OSError as exc:
        usage_error(f"{events_file}: {exc.strerror or exc}")
    store = open_store(path, lock_timeout_s=config.store.lock_timeout)
    try:
        new, duplicates = _append_with_progress(store, events)
    except StoreBusyError as exc:
        # A daemon's engine (or another ingest) held the write lock too long. Each
        # chunk commits on its own; what committed stays, and loading again skips it.
        click.echo(f"journeyc: {exc}; load the file again to finish", err=True)
        sys.exit(EXIT_INVALID)
    finally:
        store.close()
    click.echo(
        f"{len(events)} event(s) read from {events_file}: {new} new, "
        f"{duplicates} duplicate(s); store {shown(path)}"
    )


def _append_with_progress(store: Store, events: Sequence[Event]) -> tuple[int, int]:
    if not sys.stderr.isatty() or len(events) <= CHUNK:
        return append_all(store, events)
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("ingesting", total=len(events))
        return append_all(store, events, lambda done: bar.update(task, completed=done))
