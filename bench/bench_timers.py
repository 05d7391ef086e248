"""Due timers: N instances all due at once, each resumed to its next wait with a send.

    python bench/bench_timers.py [--quick] [--n N]

The journey is ``when x`` / ``wait 1h`` / ``send push "Hi {{ user.first_name }}"`` /
``wait 1d``. The state is built directly (not timed): profiles with ``push_enabled``
and ``first_name``, and N instances inserted with ``executemany`` as the engine leaves
them after the entry (waiting at the first ``wait``, ``wake_at = T``, ``vars`` holding
the entry event) with their ``entries`` rows; the journey is deployed with
``Engine.deploy``. Each run works on a fresh copy of that state. Then
``engine.advance(T)`` is timed, and afterwards every instance must wait at the second
``wait`` and the outbox must hold N queued rows.

Baselines from the same run, on the same data:

- the raw floor: one ``DELETE … RETURNING`` sweep of the due instances, one read of
  their profiles, the greeting formatted with ``str.format``, and ``executemany`` of
  the outbox rows and of the instances' next state, in one transaction;
- APScheduler 3, one job per wait on its SQLAlchemy job store (SQLite, WAL): jobs
  with date triggers already due are added to a paused scheduler, which is then
  resumed and timed until every job has run; each job writes one outbox row. Jobs
  are slow to add and fire, so this baseline uses min(N, 5 000) jobs.

Goals: engine ≥ 50k timers/s and ≥ 0.5 × the raw floor; engine ≥ 20 × APScheduler
(timers per second).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Figure, add_common_args, finish, print_machine, seed_waiting
from journeyc.compile import ir
from journeyc.compile.lower import lower_project
from journeyc.engine.core import Engine
from journeyc.lang.project import load_project
from journeyc.store.sqlite import Store

JOURNEY = """journey timers "Timer benchmark"
  when x
  entry always

  wait 1h
  send push "Hi {{ user.first_name }}"
  wait 1d
"""
HOUR = 3_600_000
DAY = 24 * HOUR
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z, when every user entered
T = T0 + HOUR  # when every first wait is due
NAMES = ["Ann", "Bao", "Chai", "Dara", "Emil", "Fah", "Gus", "Hana", "Ivo", "Jin"]
APS_MAX = 5_000


def project() -> ir.ProjectIR:
    """The timer journey, lowered."""
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "timers.journey").write_text(JOURNEY)
        return lower_project(load_project([Path(tmp)]))


def steps(proj: ir.ProjectIR) -> tuple[str, str, str, ir.WaitNode]:
    """The journey's node ids (first wait, send, second wait) and its second wait."""
    j = proj.journeys["timers"]
    first = j.start or ""
    send = j.nodes[first].next or ""
    second = j.nodes[send].next or ""
    wait1, wait2 = j.nodes[first], j.nodes[second]
    assert isinstance(wait1, ir.WaitNode) and isinstance(j.nodes[send], ir.SendNode)
    assert isinstance(wait2, ir.WaitNode)
    return first, send, second, wait2


def build_state(path: Path, proj: ir.ProjectIR, n: int) -> None:
    """A store at ``path`` with the journey deployed and ``n`` users waiting at its
    first ``wait``, due at ``T``, exactly as the engine leaves them after ``x`` at T0."""
    j = proj.journeys["timers"]
    first = steps(proj)[0]
    store = Store.open(path)
    try:
        Engine(store).deploy(proj, T0)
        entry = json.dumps({"entry": {"name": "x", "at": T0, "props": {}}})
        users = [f"u{i:07d}" for i in range(n)]
        with store.transaction() as conn:
            conn.executemany(
                "INSERT INTO profiles (user_id, traits, trait_at, updated_at) VALUES (?, ?, ?, ?)",
                (
                    (
                        u,
                        json.dumps({"push_enabled": True, "first_name": NAMES[i % len(NAMES)]}),
                        json.dumps({"push_enabled": T0, "first_name": T0}),
                        T0,
                    )
                    for i, u in enumerate(users)
                ),
            )
            seed_waiting(conn, "timers", j.version, first, users, T0, T, entry)
        store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        store.close()


def fresh_copy(template: Path, dest: Path) -> Path:
    """A copy of the template store (closed, checkpointed: one file)."""
    for suffix in ("", "-wal", "-shm"):
        Path(str(dest) + suffix).unlink(missing_ok=True)
    shutil.copyfile(template, dest)
    return dest


def verify(path: Path, proj: ir.ProjectIR, n: int) -> None:
    """N queued outbox rows; every instance waits at the second ``wait``, due T + 1d."""
    second = steps(proj)[2]
    conn = sqlite3.connect(path)
    try:
        (queued,) = conn.execute("SELECT COUNT(*) FROM outbox WHERE status = 'queued'").fetchone()
        assert queued == n, f"{queued} outbox rows, expected {n}"
        (moved,) = conn.execute(
            "SELECT COUNT(*) FROM instances WHERE status = 'waiting' AND node = ? AND wake_at = ?",
            (second, T + DAY),
        ).fetchone()
        assert moved == n, f"{moved} instances at the second wait, expected {n}"
        (total,) = conn.execute("SELECT COUNT(*) FROM instances").fetchone()
        assert total == n, f"{total} instances, expected {n}"
        (body,) = conn.execute("SELECT content FROM outbox LIMIT 1").fetchone()
        assert "Hi " in body, body
    finally:
        conn.close()


# ---------------------------------------------------------------- contenders


def run_engine(path: Path, proj: ir.ProjectIR, n: int) -> tuple[float, float]:
    """(wall, CPU) seconds of ``engine.advance(T)`` over the store at ``path``."""
    store = Store.open(path)
    try:
        engine = Engine(store)
        engine.deploy(proj, T0)
        t0, c0 = time.perf_counter(), time.process_time()
        actions = engine.advance(T)
        elapsed = time.perf_counter() - t0, time.process_time() - c0
        sends = sum(1 for a in actions if a.action == "send")
        assert sends == n, f"{sends} sends, expected {n}"
    finally:
        store.close()
    verify(path, proj, n)
    return elapsed


def run_raw(path: Path, proj: ir.ProjectIR, n: int) -> tuple[float, float]:
    """(wall, CPU) seconds of the hand-written floor: sweep, read profiles, write state
    and outbox."""
    _, send, second, wait2 = steps(proj)
    store = Store.open(path)
    conn = store.conn
    try:
        t0, c0 = time.perf_counter(), time.process_time()
        with store.transaction():
            due = conn.execute(
                "DELETE FROM instances WHERE status = 'waiting' AND wake_at <= ? RETURNING "
                "id, journey_id, version, user_id, entry_no, entered_at, vars, arm, holdout",
                (T,),
            ).fetchall()
            wake = T + wait2.seconds * 1000
            users = json.dumps([row[3] for row in due])
            traits = {
                u: json.loads(t)
                for u, t in conn.execute(
                    "SELECT user_id, traits FROM profiles "
                    "WHERE user_id IN (SELECT value FROM json_each(?))",
                    (users,),
                )
            }
            conn.executemany(
                "INSERT INTO instances (id, journey_id, version, user_id, entry_no, node, "
                "status, entered_at, wake_at, waiting_for, vars, arm, holdout) "
                "VALUES (?, ?, ?, ?, ?, ?, 'waiting', ?, ?, NULL, ?, ?, ?)",
                (
                    (iid, jid, ver, user, entry_no, second, entered, wake, vars_, arm, holdout)
                    for iid, jid, ver, user, entry_no, entered, vars_, arm, holdout in due
                ),
            )
            conn.executemany(
                "INSERT INTO outbox (key, instance_id, journey_id, user_id, step, channel, "
                "message, content, status, next_attempt_at, created_at) "
                "VALUES (?, ?, ?, ?, ?, 'push', '', ?, 'queued', ?, ?)",
                (
                    (
                        f"{jid}:{user}:{entry_no}:{send}",
                        iid,
                        jid,
                        user,
                        send,
                        json.dumps({"body": "Hi {}".format(traits[user]["first_name"])}),
                        T,
                        T,
                    )
                    for iid, jid, _, user, entry_no, _, _, _, _ in due
                ),
            )
        elapsed = time.perf_counter() - t0, time.process_time() - c0
    finally:
        store.close()
    verify(path, proj, n)
    return elapsed


# APScheduler resolves a job's function by its textual reference, so the job and the
# state it reports to live at module level.
_APS_CONN: sqlite3.Connection | None = None
_APS_LOCK = threading.Lock()
_APS_DONE = threading.Event()
_APS_COUNT = 0
_APS_TARGET = 0


def aps_job(instance_id: int, user: str, first_name: str) -> None:
    """One APScheduler job: write the user's outbox row."""
    global _APS_COUNT
    with _APS_LOCK:
        assert _APS_CONN is not None
        with _APS_CONN:
            _APS_CONN.execute(
                "INSERT INTO outbox (key, instance_id, user_id, content, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (
                    f"timers:{user}:1:2",
                    instance_id,
                    user,
                    json.dumps({"body": f"Hi {first_name}"}),
                    T,
                ),
            )
        _APS_COUNT += 1
        if _APS_COUNT >= _APS_TARGET:
            _APS_DONE.set()


def run_apscheduler(tmp: Path, n: int) -> tuple[float, float, float]:
    """(seconds to add ``n`` due jobs, seconds from resuming until all have run, and
    the process's CPU seconds over that run)."""
    global _APS_CONN, _APS_COUNT, _APS_TARGET
    from datetime import UTC, datetime

    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.background import BackgroundScheduler
    from sqlalchemy import create_engine, event

    jobs_db = tmp / "aps_jobs.db"
    out_db = tmp / "aps_outbox.db"
    for p in (jobs_db, out_db):
        for suffix in ("", "-wal", "-shm"):
            Path(str(p) + suffix).unlink(missing_ok=True)

    engine = create_engine(f"sqlite:///{jobs_db}")

    @event.listens_for(engine, "connect")
    def _wal(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA synchronous = NORMAL")
        cur.close()

    _APS_CONN = sqlite3.connect(out_db, check_same_thread=False, isolation_level=None)
    _APS_CONN.execute("PRAGMA journal_mode = WAL")
    _APS_CONN.execute("PRAGMA synchronous = NORMAL")
    _APS_CONN.execute(
        "CREATE TABLE outbox (id INTEGER PRIMARY KEY, key TEXT UNIQUE, instance_id INTEGER, "
        "user_id TEXT, content TEXT, created_at INTEGER)"
    )
    _APS_COUNT, _APS_TARGET = 0, n
    _APS_DONE.clear()

    scheduler = BackgroundScheduler(
        jobstores={"default": SQLAlchemyJobStore(engine=engine)},
        job_defaults={"misfire_grace_time": None, "coalesce": False},
        timezone=UTC,
    )
    scheduler.start(paused=True)
    try:
        due = datetime.now(UTC)
        t0 = time.perf_counter()
        for i in range(n):
            scheduler.add_job(
                aps_job,
                "date",
                run_date=due,
                args=(i + 1, f"u{i:07d}", NAMES[i % len(NAMES)]),
                id=f"timers:{i}",
            )
        t_add = time.perf_counter() - t0
        t0, c0 = time.perf_counter(), time.process_time()
        scheduler.resume()
        finished = _APS_DONE.wait(timeout=600)
        t_run, cpu_run = time.perf_counter() - t0, time.process_time() - c0
        assert finished, f"APScheduler ran {_APS_COUNT} of {n} jobs in 600 s"
    finally:
        scheduler.shutdown(wait=True)
        engine.dispose()
    (rows,) = _APS_CONN.execute("SELECT COUNT(*) FROM outbox").fetchone()
    _APS_CONN.close()
    _APS_CONN = None
    assert rows == n, f"{rows} APScheduler outbox rows, expected {n}"
    return t_add, t_run, cpu_run


# ---------------------------------------------------------------- main


def median_of(
    runs: int,
    fn: Callable[[Path, ir.ProjectIR, int], tuple[float, float]],
    template: Path,
    work: Path,
    n: int,
) -> tuple[float, float]:
    """Median (wall, CPU) seconds of ``runs`` calls of ``fn`` on fresh copies of
    ``template``."""
    proj = project()
    samples = [fn(fresh_copy(template, work), proj, n) for _ in range(runs)]
    return statistics.median(w for w, _ in samples), statistics.median(c for _, c in samples)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    add_common_args(ap, "5 000 instances, one run")
    ap.add_argument("--n", type=int, default=None, help="instances (default 200 000)")
    args = ap.parse_args()
    n = args.n if args.n is not None else (5_000 if args.quick else 200_000)
    runs = 1 if args.quick else 3
    n_aps = min(n, APS_MAX)
    print_machine()
    print(
        f"timers: {n:,} instances due at once; median of {runs} run(s); "
        f"APScheduler on {n_aps:,} jobs (min(N, {APS_MAX:,}))"
    )

    proj = project()
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        work = tmp / "work.db"
        # Warm-up on a small N: imports, statement caches, the Liquid environment.
        warm = tmp / "warm.db"
        build_state(warm, proj, min(n, 1_000))
        run_engine(fresh_copy(warm, work), proj, min(n, 1_000))
        run_raw(fresh_copy(warm, work), proj, min(n, 1_000))

        template = tmp / "template.db"
        t0 = time.perf_counter()
        build_state(template, proj, n)
        t_build = time.perf_counter() - t0

        t_engine, cpu_engine = median_of(runs, run_engine, template, work, n)
        t_raw, cpu_raw = median_of(runs, run_raw, template, work, n)
        run_apscheduler(tmp, min(n_aps, 200))  # warm-up
        aps = [run_apscheduler(tmp, n_aps) for _ in range(runs)]
        t_aps_add = statistics.median(a for a, _, _ in aps)
        t_aps_run = statistics.median(r for _, r, _ in aps)
        cpu_aps = statistics.median(c for _, _, c in aps)

    engine_rate = n / t_engine
    raw_rate = n / t_raw
    aps_rate = n_aps / t_aps_run
    print(
        f"state built in {t_build:.2f} s; engine.advance {t_engine:.3f} s "
        f"(CPU {cpu_engine:.3f} s), raw floor {t_raw:.3f} s (CPU {cpu_raw:.3f} s), "
        f"APScheduler add {t_aps_add:.3f} s + run {t_aps_run:.3f} s (CPU {cpu_aps:.3f} s)"
    )
    # Wall figures suffer when other work shares the cores; CPU-time ratios do not.
    print(
        f"per CPU second: engine {n / cpu_engine:,.0f}, raw floor {n / cpu_raw:,.0f}, "
        f"APScheduler {n_aps / cpu_aps:,.0f} timers; engine/raw {cpu_raw / cpu_engine:.2f}x, "
        f"engine/APScheduler {(n / cpu_engine) / (n_aps / cpu_aps):.2f}x"
    )
    print(f"load average at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    figures = [
        Figure(f"engine.advance, {n:,} due timers", t_engine, "s"),
        Figure(
            "engine timers/s vs raw floor",
            engine_rate,
            "timers/s",
            raw_rate,
            "raw sweep",
            ">= 50k/s and >= 0.5x",
            engine_rate >= 50_000 and engine_rate / raw_rate >= 0.5,
        ),
        Figure(
            "engine timers/s vs APScheduler 3",
            engine_rate,
            "timers/s",
            aps_rate,
            f"APScheduler {n_aps}",
            ">= 20x",
            engine_rate / aps_rate >= 20,
        ),
        Figure("raw floor throughput", raw_rate, "timers/s"),
        Figure("APScheduler 3 run throughput", aps_rate, "jobs/s"),
        Figure("APScheduler 3 add_job throughput", n_aps / t_aps_add, "jobs/s"),
    ]
    finish(figures, args)


if __name__ == "__main__":
    main()
