"""Journey reports on PostgreSQL beside SQLite: the same rows, the same reports.

    python bench/bench_report_postgres.py [--quick] [--entries N] [--log N]

bench/bench_report.py's generated store (one A/B journey with a holdout, ten actions
per entry, outbox rows, provider feedback, 2% of the users waiting; its sums filled
as migration v6 does) is copied row for row into a PostgreSQL store (``journeyc store
copy``'s copy_store; then ``ANALYZE``, as autovacuum would), on the embedded
PostgreSQL the tests run (tests/postgres_server.py: Unix socket, fsync off).

Figures (median of 5 runs after a warm-up), each beside SQLite's in the same run: the
whole report, a report over a range cut inside hours, the report of one version.
Also: logging N actions in batches of 100 through the engine's unit of work
(``PostgresRuntime.log_actions``: the inserts and the hourly sums in one statement)
beside plain inserts (``executemany``), a transaction per batch. The reports are checked equal
on both stores first.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, cast

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg
from tests.postgres_server import start_server

from bench.bench_report import T0, build_store, sum_all
from bench.common import Figure, add_common_args, finish, median_time, print_machine
from journeyc.reports.build import build_report
from journeyc.store.abc import Store
from journeyc.store.copy import copy_store
from journeyc.store.open import open_store
from journeyc.store.postgres import PostgresStore

BATCH = 100


def logging_cost(url: str, rows: int, runs: int = 3) -> tuple[float, float]:
    """Median seconds to log ``rows`` actions in batches of :data:`BATCH`, a transaction
    each: plain inserts, and through the engine's unit of work (which adds them to the
    hourly sums in the same statement). The runs alternate, so load falls on both."""
    row = (T0, "u1", "cart", "e1", "send", '{"channel": "email", "content": {"title": "x"}}')
    insert = (
        "INSERT INTO actions (at, user_id, journey_id, step, action, detail)"
        " VALUES (%s, %s, %s, %s, %s, %s::jsonb)"
    )

    def log(keep_sums: bool) -> float:
        with PostgresStore.open(url) as store:
            with store.transaction(), store.connection() as conn:
                conn.execute("TRUNCATE actions, action_counts_totals, action_counts_deltas")
            t0 = time.perf_counter()
            for start in range(0, rows, BATCH):
                batch = [(row[0] + (start + j) * 1000, *row[1:]) for j in range(BATCH)]
                with store.transaction():
                    if keep_sums:
                        unit = store.runtime()
                        unit.log_actions(batch)
                        unit.end()
                    else:
                        with store.connection() as conn, conn.cursor() as cur:
                            cur.executemany(insert, batch)
            return time.perf_counter() - t0

    plain, summed = [], []
    for _ in range(runs):
        plain.append(log(False))
        summed.append(log(True))
    return statistics.median(plain), statistics.median(summed)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    add_common_args(ap, "20 000 entries, 200 000 actions")
    ap.add_argument("--entries", type=int, default=None, help="default 200 000 (10 actions each)")
    ap.add_argument(
        "--log", type=int, default=None, help="actions logged (10 000 quick, else 50 000)"
    )
    args = ap.parse_args(argv)
    n = args.entries or (20_000 if args.quick else 200_000)
    n_log = args.log or (10_000 if args.quick else 50_000)
    since, until = T0 + 5 * 86_400_000 + 1_234_567, T0 + 20 * 86_400_000 + 2_345_678
    cases: list[tuple[str, dict[str, Any]]] = [
        ("report, all versions, no range", {}),
        ("report over a range cut inside hours", {"since_ms": since, "until_ms": until}),
        ("report of one version", {"version": "v2"}),
    ]

    print_machine()
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory() as tmp, start_server() as server:
        server.prepare_template(None)
        path = Path(tmp) / "report.db"
        build_store(path, n)
        sum_all(path)
        with server.database() as url:
            open_store(url).close()  # the schema
            t0 = time.perf_counter()
            with open_store(str(path)) as source, open_store(url) as target:
                copied = {t.name: t.rows for t in copy_store(source, target).tables}
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("ANALYZE")
            print(
                f"copied {sum(copied.values()):,} rows ({copied['actions']:,} actions)"
                f" into PostgreSQL in {time.perf_counter() - t0:.1f} s (not timed below)"
            )
            # PostgreSQL's is not a whole Store yet (no compiled reads): the report
            # reads only report_reads().
            with open_store(str(path)) as a, open_store(url) as b:
                sqlite, postgres = cast(Store, a), cast(Store, b)
                for _, kw in cases:
                    assert build_report(postgres, "cart", **kw) == build_report(
                        sqlite, "cart", **kw
                    )
                for name, kw in cases:
                    base = median_time(lambda kw=kw: build_report(sqlite, "cart", **kw))
                    value = median_time(lambda kw=kw: build_report(postgres, "cart", **kw))
                    figures.append(
                        Figure(
                            f"postgres {name} ({n // 1000}k entries)", value, "s", base, "sqlite"
                        )
                    )
            plain, summed = logging_cost(url, n_log)
            figures.append(
                Figure(
                    f"postgres logging {n_log // 1000}k actions, with the sums",
                    summed,
                    "s",
                    plain,
                    "without the sums",
                )
            )
    finish(figures, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
