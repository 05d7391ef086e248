"""An engine batch on a young PostgreSQL store, with and without the daemon's planner
statistics refresh.

    python bench/bench_plans.py [--quick] [--batches N] [--json FILE]

One engine alone (every partition leased, as a lone ``journeyc serve`` works) on a
fresh database of the PostgreSQL server the tests start (bench/targets.py), deployed
with bench_serve's project (``waiter``: wait, then send; ``brancher``: branch, send).
Each step appends 50 ``ping`` events of new users and runs ``Engine.advance``; the
step's time is the engine's. Reported: the median step of the first 100 and of the
last 100 of ``--batches`` (default 600, ``--quick`` 200), twice in the same run:

- *with statistics*: ``PostgresUpkeep.refresh_statistics()`` every 25 steps, as the
  daemon calls it every 5 s;
- *without* (the baseline): never. The store's statements are prepared, and the
  generic plans PostgreSQL made while the tables were empty read them whole, so the
  last steps cost more the more the tables hold (store/postgres/upkeep.py).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.engine_helpers import compile_files, track

from bench.bench_serve import PROJECT
from bench.common import Figure, add_common_args, finish, print_load, print_machine
from bench.targets import postgres_databases
from journeyc.engine.core import Engine
from journeyc.engine.deploy import deploy_project
from journeyc.store import open_store
from journeyc.store.abc import PartitionedStore
from journeyc.store.partitions import PARTITIONS

EVENTS = 50
"""Events a step appends and the engine handles."""

REFRESH_EVERY = 25
"""Steps between two statistics refreshes (the daemon's 5 s at about 5 steps a second)."""


def steps(url: str, batches: int, refresh: bool) -> list[float]:
    """The engine's seconds for each of ``batches`` steps on the fresh store ``url``."""
    t0 = int(time.time() * 1000)
    store = open_store(url)
    try:
        assert isinstance(store, PartitionedStore)
        engine = Engine(store, commit_per_batch=True, batch=400)
        deploy_project(engine, compile_files({"bench.journey": PROJECT}), t0 - 1)
        held = store.leases().acquire("bench", list(range(PARTITIONS)), 3600)
        engine.work_on("bench", held, store.partition_log())
        upkeep = store.upkeep()
        took: list[float] = []
        for k in range(batches):
            if refresh and k % REFRESH_EVERY == 0:
                upkeep.refresh_statistics()
            n = k * EVENTS
            users = range(n, n + EVENTS)
            pings = [track(f"u{u}", "ping", t0 + u, mid=f"m{u}", n=u % 50) for u in users]
            store.append_events(pings)
            started = time.perf_counter()
            engine.advance(t0 + n + EVENTS)
            took.append(time.perf_counter() - started)
        return took
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_args(parser, "200 steps")
    parser.add_argument("--batches", type=int, help="steps of 50 events (600; --quick 200)")
    args = parser.parse_args()
    batches = max(args.batches or (200 if args.quick else 600), 200)
    print_machine()
    print_load()
    medians: dict[tuple[bool, str], float] = {}
    with postgres_databases() as fresh:
        for refresh in (False, True):
            with fresh() as url:
                took = steps(url, batches, refresh)
            for part, chunk in (("first", took[:100]), ("last", took[-100:])):
                medians[refresh, part] = statistics.median(chunk) * 1000
    figures = [
        Figure(
            f"step of {EVENTS} events, {part} 100 of {batches}",
            medians[True, part],
            "ms",
            baseline=medians[False, part],
            baseline_name="no refresh",
        )
        for part in ("first", "last")
    ]
    print_load()
    finish(figures, args)


if __name__ == "__main__":
    main()
