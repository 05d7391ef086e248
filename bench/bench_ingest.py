"""Ingest end to end: validate → log → profile → 20 journeys → entries and outbox rows.

    python bench/bench_ingest.py [--quick] [--events N] [--batch B] [--profile FILE]

What the daemon does with a ``/v1/batch`` request, without HTTP: each body (``--batch``
calls, default 100, as Segment's libraries send them) is decoded from JSON bytes,
validated with ``journeyc.events.parse_batch`` (the pydantic models), appended to the
log with ``Store.append_events`` (identify calls merge into profiles), and then
``Engine.advance`` (``commit_per_batch``, as the daemon runs it) reacts to the new
events. The clock is the batch's last event time, so runs are deterministic.

The project is generated and checked like any other: 20 journeys
``jNN: when product_viewed where event.category == "cNN"`` / ``send push or inapp``
(a Liquid greeting with the user's first name and the product) / ``wait 1d``. The
seeded stream gives every user one ``identify`` (name, push opt-in, lifecycle) and
four ``Product Viewed`` tracks in four different categories, so every track enters
exactly one of the 20 journeys (each of the 20 entry conditions is evaluated for it)
and leaves an instance, an entry and a queued outbox row. Users interleave within a
batch. Each run starts from a fresh copy of a store with the project deployed.

Baseline from the same run: the raw floor, plain ``sqlite3`` ``executemany`` of the
very event, instance and outbox rows the engine wrote (read back from its store),
into a fresh copy of the same store, in one transaction.

Goals: ≥ 30k events/s, and ≥ 0.25 × the raw floor. ``--quick``: 5k events;
default 100k events of 20k users; median of 3 runs after a warm-up.
``--profile FILE`` writes a pyinstrument profile of one more run (text, or HTML when
FILE ends in ``.html``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Figure, add_common_args, finish, print_machine
from journeyc.compile import ir
from journeyc.compile.lower import lower_project
from journeyc.engine.core import Engine
from journeyc.events import parse_batch
from journeyc.lang.checker import check_project
from journeyc.lang.project import load_project
from journeyc.store.sqlite import Store

JOURNEYS = 20
CATEGORIES = [f"c{i:02d}" for i in range(JOURNEYS)]
TRACKS_PER_USER = 4  # distinct categories, so each track enters a journey
CALLS_PER_USER = 1 + TRACKS_PER_USER
GROUP = 25  # users whose calls interleave
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
FIRST_NAMES = ["Ann", "Bao", "Chai", "Dara", "Emil", "Fah", "Gus", "Hana", "Ivo", "Jin"]
LIFECYCLES = ["new", "active", "dormant", "churned"]
GREETING = "Hi {{ user.first_name | default: 'there' }}, {{ event.product_name }} is waiting"
CONTEXT = {"library": {"name": "analytics-python", "version": "2.3.2"}}

# ---------------------------------------------------------------- project


def journey_source(i: int) -> str:
    """Journey ``jNN``: enters on a view of category ``cNN``, sends, then waits a day."""
    return f'''journey j{i:02d} "Ingest {i}"
  when product_viewed where event.category == "{CATEGORIES[i]}"
  entry always

  send push or inapp "{GREETING}" as nudge
  wait 1d
'''


def compile_project(root: Path) -> ir.ProjectIR:
    """Write the 20 journeys under ``root``, check them (no errors) and lower them."""
    root.mkdir(parents=True, exist_ok=True)
    for i in range(JOURNEYS):
        (root / f"j{i:02d}.journey").write_text(journey_source(i))
    project = load_project([root])
    errors = [d for d in check_project(project) if d.is_error]
    assert not errors, errors[:3]
    return lower_project(project)


# ---------------------------------------------------------------- the stream


def iso(ms: int) -> str:
    """Epoch ms as the ISO-8601 text Segment's libraries send."""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


@dataclass
class Stream:
    """The request bodies (JSON bytes) and each one's clock, with what they hold."""

    bodies: list[tuple[bytes, int]]
    calls: int
    tracks: int
    users: int


def make_stream(n_events: int, batch: int, seed: int = 3) -> Stream:
    """``n_events`` calls (rounded down to whole users) in bodies of ``batch`` calls.

    Per user: one identify, then ``TRACKS_PER_USER`` views of distinct categories.
    Calls of ``GROUP`` users interleave, one second apart per round.
    """
    rng = random.Random(seed)
    n_users = max(1, n_events // CALLS_PER_USER)
    calls: list[dict[str, Any]] = []
    stamps: list[int] = []
    at = T0
    for lo in range(0, n_users, GROUP):
        group = [f"u{k:07d}" for k in range(lo, min(n_users, lo + GROUP))]
        per_user: list[list[dict[str, Any]]] = []
        for user in group:
            traits: dict[str, Any] = {
                "first_name": rng.choice(FIRST_NAMES),
                "push_enabled": rng.random() < 0.55,
                "lifecycle": rng.choice(LIFECYCLES),
                "email": f"{user}@example.com",
            }
            mine: list[dict[str, Any]] = [
                {"type": "identify", "userId": user, "traits": traits, "context": CONTEXT}
            ]
            for cat in rng.sample(CATEGORIES, TRACKS_PER_USER):
                pid = rng.randint(1, 5_000)
                mine.append(
                    {
                        "type": "track",
                        "userId": user,
                        "event": "Product Viewed",
                        "properties": {
                            "product_id": f"p{pid}",
                            "product_name": f"Item {pid}",
                            "category": cat,
                            "price": round(rng.uniform(5, 400), 2),
                            "url": f"https://shop.example/p/{pid}",
                        },
                        "context": CONTEXT,
                    }
                )
            per_user.append(mine)
        for round_ in range(CALLS_PER_USER):
            at += 1_000
            for j, mine in enumerate(per_user):
                call = mine[round_]
                call["timestamp"] = iso(at + j)
                call["messageId"] = f"m{len(calls):08d}"
                calls.append(call)
                stamps.append(at + j)
    # Each body is handled at the time of its last call (the stream is in time order).
    bodies = [
        (json.dumps({"batch": calls[lo : lo + batch]}).encode(), stamps[lo : lo + batch][-1])
        for lo in range(0, len(calls), batch)
    ]
    tracks = sum(1 for c in calls if c["type"] == "track")
    return Stream(bodies, len(calls), tracks, n_users)


# ---------------------------------------------------------------- stores


def fresh_copy(template: Path, dest: Path) -> Path:
    """A copy of the template store (closed, checkpointed: one file)."""
    for suffix in ("", "-wal", "-shm"):
        Path(str(dest) + suffix).unlink(missing_ok=True)
    shutil.copyfile(template, dest)
    return dest


def build_template(path: Path, project: ir.ProjectIR) -> None:
    """An empty store with the project deployed."""
    store = Store.open(path)
    try:
        Engine(store).deploy(project, T0)
        store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        store.close()


def verify(path: Path, stream: Stream) -> None:
    """Every call logged; every track left a waiting instance, an entry and a queued send."""
    conn = sqlite3.connect(path)
    try:
        counts = {
            t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
            for t in ("events", "instances", "entries", "profiles")
        }
        (queued,) = conn.execute("SELECT COUNT(*) FROM outbox WHERE status = 'queued'").fetchone()
        (waiting,) = conn.execute(
            "SELECT COUNT(*) FROM instances WHERE status = 'waiting'"
        ).fetchone()
        (body,) = conn.execute("SELECT content FROM outbox LIMIT 1").fetchone()
    finally:
        conn.close()
    want = {
        "events": stream.calls,
        "instances": stream.tracks,
        "entries": stream.tracks,
        "profiles": stream.users,
    }
    assert counts == want, f"rows {counts}, expected {want}"
    assert queued == stream.tracks, f"{queued} queued outbox rows, expected {stream.tracks}"
    assert waiting == stream.tracks, f"{waiting} waiting instances, expected {stream.tracks}"
    assert "is waiting" in body and "Hi " in body, body


# ---------------------------------------------------------------- contenders


@dataclass
class Run:
    """One end-to-end run: wall and CPU seconds, and wall seconds per stage."""

    wall: float
    cpu: float
    validate: float
    log: float
    engine: float


def run_engine(path: Path, project: ir.ProjectIR, stream: Stream) -> Run:
    """Decode, validate, append and advance, body by body, over the store at ``path``."""
    store = Store.open(path)
    try:
        engine = Engine(store, commit_per_batch=True)
        engine.deploy(project, T0)
        t_validate = t_log = t_engine = 0.0
        clock = time.perf_counter
        t0, c0 = clock(), time.process_time()
        for raw, now_ms in stream.bodies:
            a = clock()
            events = parse_batch(json.loads(raw), now_ms)
            b = clock()
            store.append_events(events)
            c = clock()
            engine.advance(now_ms)
            d = clock()
            t_validate += b - a
            t_log += c - b
            t_engine += d - c
        run = Run(clock() - t0, time.process_time() - c0, t_validate, t_log, t_engine)
    finally:
        store.close()
    verify(path, stream)
    return run


@dataclass
class Rows:
    """The rows an engine run wrote, for the raw floor to write again."""

    events: list[tuple[Any, ...]]
    instances: list[tuple[Any, ...]]
    outbox: list[tuple[Any, ...]]


EVENT_COLS = "message_id, user_id, name, at, props, received_at"
INSTANCE_COLS = (
    "id, journey_id, version, user_id, entry_no, node, status, entered_at, wake_at, "
    "waiting_for, vars, arm, holdout"
)
OUTBOX_COLS = (
    "key, instance_id, journey_id, user_id, step, channel, message, content, status, "
    "next_attempt_at, created_at"
)


def read_rows(path: Path) -> Rows:
    """The event, instance and outbox rows of an engine run's store."""
    conn = sqlite3.connect(path)
    try:
        return Rows(
            conn.execute(f"SELECT {EVENT_COLS} FROM events ORDER BY seq").fetchall(),
            conn.execute(f"SELECT {INSTANCE_COLS} FROM instances ORDER BY id").fetchall(),
            conn.execute(f"SELECT {OUTBOX_COLS} FROM outbox ORDER BY id").fetchall(),
        )
    finally:
        conn.close()


def _marks(cols: str) -> str:
    return ", ".join("?" for _ in cols.split(","))


def run_raw(path: Path, rows: Rows) -> tuple[float, float]:
    """(wall, CPU) seconds of three ``executemany`` calls in one transaction."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        t0, c0 = time.perf_counter(), time.process_time()
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            f"INSERT INTO events ({EVENT_COLS}) VALUES ({_marks(EVENT_COLS)})", rows.events
        )
        conn.executemany(
            f"INSERT INTO instances ({INSTANCE_COLS}) VALUES ({_marks(INSTANCE_COLS)})",
            rows.instances,
        )
        conn.executemany(
            f"INSERT INTO outbox ({OUTBOX_COLS}) VALUES ({_marks(OUTBOX_COLS)})", rows.outbox
        )
        conn.execute("COMMIT")
        elapsed = time.perf_counter() - t0, time.process_time() - c0
        (n,) = conn.execute("SELECT COUNT(*) FROM outbox").fetchone()
        assert n == len(rows.outbox), f"{n} raw outbox rows, expected {len(rows.outbox)}"
    finally:
        conn.close()
    return elapsed


def profile_run(out: Path, fn: Callable[[], object]) -> None:
    """Run ``fn`` under pyinstrument; write its report to ``out`` (HTML or text)."""
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.001)
    profiler.start()
    try:
        fn()
    finally:
        profiler.stop()
    if out.suffix == ".html":
        out.write_text(profiler.output_html())
    else:
        out.write_text(profiler.output_text(unicode=True, color=False))
    print(f"profile of one more run written to {out}")


# ---------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    add_common_args(ap, "5k events")
    ap.add_argument("--events", type=int, default=None, help="calls in all (default 100k)")
    ap.add_argument("--batch", type=int, default=100, help="calls per /v1/batch body")
    ap.add_argument("--runs", type=int, default=3, help="timed runs (the median is reported)")
    ap.add_argument(
        "--profile",
        type=Path,
        default=None,
        metavar="FILE",
        help="write a pyinstrument profile of one more run (HTML if FILE ends in .html)",
    )
    args = ap.parse_args()
    n_events = args.events if args.events is not None else (5_000 if args.quick else 100_000)
    runs = max(1, args.runs)
    print_machine()

    stream = make_stream(n_events, args.batch)
    print(
        f"ingest: {stream.calls:,} calls ({stream.users:,} identify, {stream.tracks:,} tracks) "
        f"in {len(stream.bodies):,} bodies of {args.batch}, {JOURNEYS} journeys; "
        f"median of {runs} run(s) after a warm-up"
    )
    with tempfile.TemporaryDirectory(prefix="bench_ingest-") as tmpdir:
        tmp = Path(tmpdir)
        project = compile_project(tmp / "proj")
        template = tmp / "template.db"
        build_template(template, project)
        work = tmp / "work.db"

        # Warm-up on a small stream: imports, pydantic, templates, statement caches.
        warm = make_stream(min(n_events, 1_000), args.batch, seed=99)
        run_engine(fresh_copy(template, work), project, warm)

        engine_runs = [run_engine(fresh_copy(template, work), project, stream) for _ in range(runs)]
        rows = read_rows(work)
        run_raw(fresh_copy(template, work), Rows(rows.events[:500], [], []))  # warm-up
        raw_runs = [run_raw(fresh_copy(template, work), rows) for _ in range(runs)]
        if args.profile is not None:
            profile_run(
                args.profile, lambda: run_engine(fresh_copy(template, work), project, stream)
            )

    def med(get: Callable[[Run], float]) -> float:
        return statistics.median(get(r) for r in engine_runs)

    t_engine, cpu_engine = med(lambda r: r.wall), med(lambda r: r.cpu)
    t_raw = statistics.median(w for w, _ in raw_runs)
    cpu_raw = statistics.median(c for _, c in raw_runs)
    rate, raw_rate = stream.calls / t_engine, stream.calls / t_raw
    stages = {
        "validate": med(lambda r: r.validate),
        "log + profile": med(lambda r: r.log),
        "engine": med(lambda r: r.engine),
    }
    print(
        f"end to end {t_engine:.3f} s (CPU {cpu_engine:.3f} s): "
        + ", ".join(f"{k} {v:.3f} s ({v / t_engine:.0%})" for k, v in stages.items())
        + f"; raw floor {t_raw:.3f} s (CPU {cpu_raw:.3f} s) for {len(rows.events):,} event, "
        f"{len(rows.instances):,} instance and {len(rows.outbox):,} outbox rows"
    )
    print(
        f"per CPU second: end to end {stream.calls / cpu_engine:,.0f}, "
        f"raw floor {stream.calls / cpu_raw:,.0f} events; ratio {cpu_raw / cpu_engine:.3f}"
    )
    print(f"load average at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    calls = stream.calls
    figures = [
        Figure(
            "ingest end to end, 20 journeys",
            rate,
            "events/s",
            raw_rate,
            "raw executemany",
            ">= 30k/s and >= 0.25x",
            rate >= 30_000 and rate / raw_rate >= 0.25,
        ),
        Figure("ingest stage: decode + parse_batch", calls / stages["validate"], "events/s"),
        Figure("ingest stage: append_events", calls / stages["log + profile"], "events/s"),
        Figure("ingest stage: engine.advance", calls / stages["engine"], "events/s"),
        Figure("raw executemany floor", raw_rate, "events/s"),
    ]
    finish(figures, args)


if __name__ == "__main__":
    main()
