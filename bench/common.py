"""What every benchmark shares: the machine, repeated timing, a results table."""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sqlite3
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


def machine() -> dict[str, Any]:
    """The facts that make figures comparable: cores, Python, SQLite."""
    return {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
    }


def print_machine() -> None:
    """Print the machine line every benchmark starts with."""
    m = machine()
    print(
        f"machine: {m['cores']} cores, Python {m['python']}, SQLite {m['sqlite']}, {m['platform']}"
    )


def print_load() -> None:
    """Print the load averages (1, 5, 15 minutes): how busy the shared cores were."""
    one, five, fifteen = os.getloadavg()
    print(f"load average: {one:.2f} {five:.2f} {fifteen:.2f} ({os.cpu_count()} cores)")
    sys.stdout.flush()


def median_time(fn: Callable[[], object], runs: int = 5, warmup: int = 1) -> float:
    """Median wall-clock seconds of ``runs`` calls after ``warmup`` unmeasured ones."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


@dataclass
class Figure:
    """One measured figure beside its baseline and goal."""

    name: str
    value: float
    unit: str
    baseline: float | None = None
    baseline_name: str = ""
    goal: str = ""
    met: bool | None = None

    @property
    def ratio(self) -> float | None:
        """value / baseline, when there is a baseline."""
        if self.baseline in (None, 0):
            return None
        return self.value / self.baseline  # type: ignore[operator]

    def as_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {**asdict(self), "ratio": self.ratio}


def print_figures(figures: list[Figure]) -> None:
    """Print a table: figure, value, baseline, ratio, goal, met."""
    print(f"{'figure':44} {'value':>12} {'unit':8} {'baseline':>22} {'ratio':>8}  goal")
    for f in figures:
        base = f"{f.baseline:.4g} ({f.baseline_name})" if f.baseline is not None else "-"
        ratio = f"{f.ratio:.2f}x" if f.ratio is not None else "-"
        met = "" if f.met is None else ("  met" if f.met else "  MISSED")
        print(f"{f.name:44} {f.value:12.4g} {f.unit:8} {base:>22} {ratio:>8}  {f.goal}{met}")
    sys.stdout.flush()


def add_common_args(parser: argparse.ArgumentParser, quick_help: str = "small sizes") -> None:
    """The options every benchmark takes: ``--quick`` and ``--json FILE`` (for
    ``python -m bench``, which reads the figures from that file)."""
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument(
        "--json",
        metavar="FILE",
        type=Path,
        default=None,
        help="also write the machine and the figures to FILE as JSON",
    )


def _finite(value: Any) -> Any:
    # JSON has no NaN or infinity: a figure that could not be measured is null.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def figures_json(figures: list[Figure]) -> dict[str, Any]:
    """The JSON document a benchmark writes: ``{"machine": ..., "figures": [...]}``."""
    return {
        "machine": machine(),
        "figures": [{k: _finite(v) for k, v in f.as_dict().items()} for f in figures],
    }


def finish(figures: list[Figure], args: argparse.Namespace) -> None:
    """Print the figures table and, with ``--json FILE``, write them to FILE."""
    print_figures(figures)
    path: Path | None = getattr(args, "json", None)
    if path is not None:
        path.write_text(json.dumps(figures_json(figures), indent=2, ensure_ascii=False) + "\n")


def seed_waiting(
    conn: sqlite3.Connection,
    journey_id: str,
    version: str,
    node: str,
    users: list[str],
    entered_at: int,
    wake_at: int,
    vars_json: str,
) -> None:
    """Insert users as the engine leaves them at a wait: a waiting instance at ``node``
    due at ``wake_at``, and their entry record."""
    conn.executemany(
        "INSERT INTO instances (journey_id, version, user_id, entry_no, node, status, "
        "entered_at, wake_at, waiting_for, vars, arm, holdout) "
        "VALUES (?, ?, ?, 1, ?, 'waiting', ?, ?, NULL, ?, NULL, 0)",
        ((journey_id, version, u, node, entered_at, wake_at, vars_json) for u in users),
    )
    conn.executemany(
        "INSERT INTO entries (journey_id, user_id, entry_no, entered_at) VALUES (?, ?, 1, ?)",
        ((journey_id, u, entered_at) for u in users),
    )


@contextmanager
def bulk_load(path: Path, cache_kib: int) -> Iterator[sqlite3.Connection]:
    """A fresh store at ``path`` open for loading rows in bulk, in one transaction:
    no syncing or journal, a cache of ``cache_kib`` KiB, and the event log's indexes
    dropped while the block runs and built once at its end (far faster than row by
    row)."""
    from journeyc.store.sqlite.schema import migrate

    conn = sqlite3.connect(path, isolation_level=None)
    try:
        migrate(conn)
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("PRAGMA journal_mode = OFF")
        conn.execute(f"PRAGMA cache_size = -{int(cache_kib):d}")
        indexes = conn.execute(
            "SELECT name, sql FROM sqlite_master"
            " WHERE type = 'index' AND tbl_name = 'events' AND sql IS NOT NULL"
        ).fetchall()
        for name, _ in indexes:
            conn.execute(f'DROP INDEX "{name}"')
        conn.execute("BEGIN")
        yield conn
        conn.execute("COMMIT")
        for _, sql in indexes:
            conn.execute(sql)
    finally:
        conn.close()
