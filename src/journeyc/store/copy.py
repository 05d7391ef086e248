"""Copy a store's rows into another store of any kind (``journeyc store copy``):
SQLite to PostgreSQL, back, or between two of one kind.

Store-neutral: it asks the source for its tables' rows a chunk at a time
(:class:`~journeyc.store.abc.TableDump`, one snapshot for the whole copy) and hands
them to the target (:class:`~journeyc.store.abc.TableLoad`); each store turns its own
values into the neutral form of :mod:`journeyc.store.tables` and back. Events keep
their ``seq``, instances and outbox rows their ids, so the engine's cursors, the
outbox's keys and the reports mean the same in the copy, and each store's numbering
goes on past the highest number the source handed out.

Each table is copied in one transaction of the target: a copy that stops (an error,
Ctrl-C) leaves every table either whole or empty. ``resume`` goes on from there: the
tables that already hold the source's count of rows are kept, the empty ones copied.
At the end the rows of every table are counted in the target and compared with the
source's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from journeyc.store.abc import CopyableStore, TableDump, TableLoad
from journeyc.store.errors import StoreError
from journeyc.store.tables import COPIED, Row, Table

__all__ = ["CHUNK", "CopiedTable", "CopyError", "CopyReport", "Progress", "copy_store"]

CHUNK = 5000
"""Rows read and written at a time: large enough that a round trip is nothing beside
its rows, small enough that a chunk's rows stay a few megabytes."""

Progress = Callable[[str, int, int], None]
"""``progress(table, rows_done, rows_in_table)``: called as each table starts (0
done) and after each chunk."""


class CopyError(StoreError):
    """The copy cannot be made (a target that holds data) or did not come out whole
    (a table whose count differs); the message says which."""


@dataclass(frozen=True, slots=True)
class CopiedTable:
    """One table of a copy: the source's rows, and whether they were ``kept`` (there
    already: a resumed copy) rather than copied now."""

    name: str
    rows: int
    kept: bool = False


@dataclass(frozen=True, slots=True)
class CopyReport:
    """What a copy did, table by table, in load order."""

    source: str
    target: str
    tables: tuple[CopiedTable, ...]

    @property
    def rows(self) -> int:
        """The rows of every table together."""
        return sum(t.rows for t in self.tables)


def copy_store(
    source: CopyableStore,
    target: CopyableStore,
    *,
    resume: bool = False,
    chunk: int = CHUNK,
    progress: Progress | None = None,
) -> CopyReport:
    """Copy every table of :data:`~journeyc.store.tables.COPIED` from ``source`` into
    ``target`` (see the module).

    Raises :class:`CopyError` when ``target`` holds rows (with ``resume``: when a
    table holds some but not the source's count), when both are the same store, or
    when the counts differ at the end; :class:`StoreError` when the target refuses a
    row (PostgreSQL holds no NUL character in text), that table's rows undone.
    """
    if source.path == target.path and source.path != ":memory:":
        raise CopyError(f"{source.path}: the source and the target are the same store")
    load = target.table_load()
    with source.table_dump() as dump:
        totals = {t.name: dump.count(t) for t in COPIED}
        held = {t.name: load.count(t) for t in COPIED}
        _check_target(target.path, totals, held, resume)
        copied: list[CopiedTable] = []
        for table in COPIED:
            total = totals[table.name]
            keep = resume and not table.summed and 0 < held[table.name] == total
            if progress is not None:
                progress(table.name, total if keep else 0, total)
            if not keep:
                _copy_table(dump, load, target, table, total, chunk, progress)
            copied.append(CopiedTable(table.name, total, keep))
        with target.transaction():
            for table in COPIED:
                if table.identity is not None:
                    load.continue_ids(table, dump.last_id(table))
        for table in COPIED:
            load.analyze(table)
    wrong = [
        f"{t.name} ({n} rows, the source {totals[t.name]})"
        for t in COPIED
        if (n := load.count(t)) != totals[t.name]
    ]
    if wrong:
        raise CopyError(
            f"{target.path}: the copy does not hold the source's rows: {', '.join(wrong)}"
            " (was the target written meanwhile?)"
        )
    return CopyReport(source.path, target.path, tuple(copied))


def _check_target(where: str, totals: dict[str, int], held: dict[str, int], resume: bool) -> None:
    """Refuse a target with data: any at all, or (``resume``) a table neither empty nor
    whole (the reports' sums excepted: a copy replaces them)."""
    summed = {t.name for t in COPIED if t.summed}
    if resume:
        partial = [
            f"{name} ({n} rows, the source {totals[name]})"
            for name, n in held.items()
            if n and n != totals[name] and name not in summed
        ]
        if partial:
            raise CopyError(
                f"{where}: not a copy of this source that stopped: {', '.join(partial)}"
            )
        return
    filled = [f"{name} ({n} rows)" for name, n in held.items() if n]
    if filled:
        raise CopyError(
            f"{where}: the target holds data ({', '.join(filled)}); a copy goes into an"
            " empty store (or, to finish a copy that stopped, pass --resume)"
        )


def _copy_table(
    dump: TableDump,
    load: TableLoad,
    target: CopyableStore,
    table: Table,
    total: int,
    chunk: int,
    progress: Progress | None,
) -> None:
    """Copy one table in one transaction of ``target``, ``chunk`` rows at a time."""
    keys = table.key_indexes
    done = 0
    with target.transaction():
        load.clear(table)  # empty but for a summed table, which the triggers filled
        after: Row | None = None
        while True:
            rows = dump.rows(table, after, chunk)
            if not rows:
                break
            load.load(table, rows)
            done += len(rows)
            if progress is not None:
                progress(table.name, done, total)
            if len(rows) < chunk:
                break
            after = tuple(rows[-1][i] for i in keys)
