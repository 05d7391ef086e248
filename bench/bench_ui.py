"""The dashboard's page loads on a big store: p50/p95 of each page beside ``/healthz``.

    python bench/bench_ui.py [--quick] [--instances N] [--fetches K]

A store is built directly (not timed): the example project (journeys/) deployed with
``Engine.deploy``, then N users (default 1,000,000; ``--quick`` 50,000) spread over
its journeys, each with a profile (with an e-mail), an instance in flight at one of
its journey's steps (due in 300 days, so the engine leaves it alone), an entry over
the last 60 days (a third of them reaching the goal, with split arms and a 5%
holdout), an outbox row at a send step (70% sent, 10% queued, 20% suppressed) and two
actions (``enter``, then ``send`` or ``suppress``): 1M instances, entries and outbox
rows, 2M actions, inserted with ``executemany``, and the hourly sums the runtime
keeps (``action_counts``; ``outbox_counts`` by its triggers).

``journeyc serve`` is started on it (the same project: nothing is redeployed;
tests/daemon_helpers.Daemon, port 0); the bench logs in through the form (one
session cookie), warms each page up once, then fetches each page K times in turn
(default 20; ``--quick`` 10) with one ``httpx.Client``, timing request sent → body
received. Pages: the journeys list (30 days, and all time), the biggest journey's
page, a user's page, and a user found by e-mail. Baseline in the same run:
``/healthz`` (one ``SELECT`` on the store).
Goal: every page's p95 ≤ 300 ms.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from tests.daemon_helpers import ADMIN_TOKEN, Daemon, key_env

from bench.common import Figure, add_common_args, bulk_load, finish, print_machine
from journeyc.compile import ir
from journeyc.compile.lower import lower_project
from journeyc.engine.core import Engine
from journeyc.lang.project import load_project
from journeyc.store.sqlite import Store
from journeyc.store.sqlite.action_counts import add_logged

ROOT = Path(__file__).resolve().parent.parent
DAY_MS = 86_400_000
GOAL_MS = 300.0
CACHE_KIB = 256 * 1024


def pct(values: list[float], q: float) -> float:
    """The q-quantile (0..1) of ``values``, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))]


def build_store(db: Path, n: int) -> tuple[str, str, str]:
    """The store described above; returns (biggest journey, a user id, an e-mail)."""
    proj = lower_project(load_project([ROOT / "journeys"]))
    now = int(time.time() * 1000)
    store = Store.open(db)
    try:
        Engine(store).deploy(proj, now)
    finally:
        store.close()
    plans: list[tuple[ir.JourneyIR, list[str], list[str]]] = []
    for j in proj.journeys.values():
        sends = [k for k, node in j.nodes.items() if isinstance(node, ir.SendNode)]
        if sends:
            plans.append((j, sends, list(j.nodes)))
    rng = random.Random(1)
    far = now + 300 * DAY_MS
    with bulk_load(db, CACHE_KIB) as conn:
        conn.executemany(
            "INSERT INTO profiles (user_id, traits, updated_at) VALUES (?, ?, ?)",
            (
                (f"u{i:07d}", json.dumps({"email": f"user{i}@example.com", "first_name": "U"}), now)
                for i in range(n)
            ),
        )
        rows = []
        for i in range(n):
            j, sends, nodes = plans[i % len(plans)]
            entered = now - rng.randrange(60 * DAY_MS)
            held = rng.random() < 0.05
            rows.append(
                (
                    j.id,
                    j.version,
                    f"u{i:07d}",
                    nodes[i % len(nodes)],
                    entered,
                    entered + DAY_MS if rng.random() < 0.33 else None,
                    "A" if i % 2 else "B",
                    held,
                    sends[i % len(sends)],
                    rng.random(),
                )
            )
        conn.executemany(
            "INSERT INTO instances (journey_id, version, user_id, entry_no, node, status,"
            " entered_at, wake_at, vars) VALUES (?, ?, ?, 1, ?, 'waiting', ?, ?, '{}')",
            ((r[0], r[1], r[2], r[3], r[4], far) for r in rows),
        )
        conn.executemany(
            "INSERT INTO entries (journey_id, user_id, entry_no, entered_at, goal_at, arm,"
            " holdout) VALUES (?, ?, 1, ?, ?, ?, ?)",
            ((r[0], r[2], r[4], r[5], r[6], int(r[7])) for r in rows),
        )

        def status(r: tuple[object, ...]) -> str:
            x = float(r[9])  # type: ignore[arg-type]
            return "sent" if x < 0.7 else "queued" if x < 0.8 else "suppressed"

        conn.executemany(
            "INSERT INTO outbox (key, journey_id, user_id, step, channel, message, status,"
            " created_at, sent_at, error) VALUES (?, ?, ?, ?, ?, 'm', ?, ?, ?, ?)",
            (
                (
                    f"{r[0]}:{r[2]}:1:{r[8]}",
                    r[0],
                    r[2],
                    r[8],
                    None if status(r) == "suppressed" else "email",
                    status(r),
                    int(r[4]) + 3_600_000,
                    int(r[4]) + 3_600_500 if status(r) == "sent" else None,
                    "holdout" if status(r) == "suppressed" else None,
                )
                for r in rows
            ),
        )
        conn.executemany(
            "INSERT INTO actions (at, user_id, journey_id, step, action, detail)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                a
                for r in rows
                for a in (
                    (r[4], r[2], r[0], None, "enter", "{}"),
                    (
                        int(r[4]) + 3_600_000,
                        r[2],
                        r[0],
                        r[8],
                        "suppress" if status(r) == "suppressed" else "send",
                        '{"reason":"holdout"}'
                        if status(r) == "suppressed"
                        else '{"channel":"email","message":"m"}',
                    ),
                )
            ),
        )
        add_logged(conn, 0)  # the hourly sums the runtime keeps as it logs
    counts: dict[str, int] = {}
    for r in rows:
        counts[str(r[0])] = counts.get(str(r[0]), 0) + 1
    biggest = max(counts, key=lambda k: counts[k])
    return biggest, "u0000042", "user4242@example.com"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    add_common_args(ap, "50 000 users, 10 fetches per page")
    ap.add_argument("--instances", type=int, default=None, help="users (default 1 000 000)")
    ap.add_argument("--fetches", type=int, default=None, help="fetches per page (default 20)")
    args = ap.parse_args()
    n = args.instances or (50_000 if args.quick else 1_000_000)
    k = args.fetches or (10 if args.quick else 20)
    print_machine()
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        db = tmp / "ui.db"
        t0 = time.perf_counter()
        journey, user, email = build_store(db, n)
        print(f"ui: store of {n:,} instances built in {time.perf_counter() - t0:.1f} s")
        daemon = Daemon(
            [str(ROOT / "journeys"), "--db", str(db), "--port", "0"],
            cwd=tmp,
            env=key_env(),
            name="ui",
        ).start(timeout=300)
        try:
            pages = {
                "healthz (baseline)": "/healthz",
                "journeys, 30 days": "/ui",
                "journeys, all time": "/ui?range=all",
                f"journey ({journey})": f"/ui/journeys/{journey}",
                "user": f"/ui/users/{user}",
                "user search by e-mail, then the user": f"/ui/users?q={email}",
            }
            with httpx.Client(base_url=daemon.url, timeout=60, follow_redirects=True) as client:
                login = client.post("/ui/login", data={"token": ADMIN_TOKEN, "next": "/ui"})
                assert login.status_code == 200 and "journeyc_ui" in client.cookies, login.text
                for path in pages.values():  # warm-up
                    reply = client.get(path)
                    assert reply.status_code in (200, 303), (path, reply.status_code)
                times: dict[str, list[float]] = {name: [] for name in pages}
                for _ in range(k):
                    for name, path in pages.items():
                        t = time.perf_counter()
                        client.get(path)
                        times[name].append((time.perf_counter() - t) * 1000)
        finally:
            daemon.stop()
    base = pct(times["healthz (baseline)"], 0.95)
    figures = []
    for name, samples in times.items():
        if name.startswith("healthz"):
            continue
        p95 = pct(samples, 0.95)
        figures.append(Figure(f"ui: {name} p50", pct(samples, 0.5), "ms"))
        figures.append(
            Figure(
                f"ui: {name} p95",
                p95,
                "ms",
                baseline=base,
                baseline_name="/healthz p95",
                goal=f"≤ {GOAL_MS:.0f} ms at {n:,} instances",
                met=p95 <= GOAL_MS,
            )
        )
    finish(figures, args)


if __name__ == "__main__":
    main()
