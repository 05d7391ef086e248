"""Journey reports: ``build_report`` over a store of 1M entries and 10M actions.

    python bench/bench_report.py [--quick] [--entries N] [--db PATH]

Seeded generation, not timed, in SQL (a recursive CTE: millions of rows in a minute):
one journey (``BENCH_JOURNEY``: a holdout, an A/B split, sends on three channels,
waits, set/track/unset steps) deployed in two versions, N entries over 30 days, ten
actions per entry (enter, the arm's send or the holdout's suppression, set, e-mail or
its no_channel suppression, push, track, SMS or its cap suppression, set, unset,
exit) plus a goal for the conversions (10% holdout, 12% A, 15% B), an outbox row per
send (1% failed, 5% tried twice), provider feedback for a fifth of them, and 2% of
the users waiting. The rows do not replay a run: they have its shape and sizes. The
indexes and triggers are made after the rows, then the tables of sums are filled by
migration v6's back-fill (timed: what upgrading a store of that size costs).

Figures (median of 5 runs after a warm-up): the whole report (all versions, no
range), a report over a range cut inside hours (its edges read the action log), and
the report of one version. Baseline from the same run: ``SELECT count(*) FROM
actions`` (one scan of the log), and for context the per-step ``GROUP BY`` over the
raw log that the hourly sums replace. Also: logging 100k actions in batches of 100
with the sums kept (the runtime's path) against the plain inserts. Goal (issue #19):
≤ 2 s at 1M entries and 10M actions; other sizes scale it by the entries.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Figure, add_common_args, finish, median_time, print_machine
from journeyc.compile.lower import lower_project
from journeyc.lang.project import load_project
from journeyc.reports.build import build_report
from journeyc.store.sqlite import Store
from journeyc.store.sqlite.action_counts import LABEL, add_logged, last_seq
from journeyc.store.sqlite.schema import MIGRATIONS, migrate

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
SPAN_MS = 30 * 86_400_000
HOUR = 3_600_000
TABLES = ("actions", "entries", "outbox", "deliveries", "instances")

BENCH_JOURNEY = """\
journey cart "Cart recovery, A/B with a holdout"
  when cart_abandoned
  goal order_completed within 3d
  holdout 10%
  split
    50% as A
      send push "Come back" as a1
    50% as B
      send push "10% off your cart" as b1
  wait 1h as w1
  set stage = 1 as s1
  send email "Your cart" as e1
  wait 1d as w2
  send push "Last chance" as p2
  track nudged as t1
  send sms "Cart expires soon" as s3
  set stage = 2 as s2
  unset stage as u1
"""

# (slot, step, action, detail, offset): one action of every entry. `h` is the
# holdout test, `i` the entry's number; the offsets follow the journey's waits.
_SEND = (
    """'{"channel": "%s", "message": null,"""
    """ "content": {"title": "Cart", "body": "Your cart is waiting"}}'"""
)
SLOTS = [
    ("NULL", "'enter'", "'{}'", 0),
    (
        "CASE i % 2 WHEN 0 THEN 'a1' ELSE 'b1' END",
        "CASE WHEN h THEN 'suppress' ELSE 'send' END",
        f"""CASE WHEN h THEN '{{"reason": "holdout"}}' ELSE {_SEND % "push"} END""",
        0,
    ),
    ("'s1'", "'set'", """'{"attr": "stage", "value": 1}'""", HOUR),
    (
        "'e1'",
        "CASE WHEN h OR i % 5 = 0 THEN 'suppress' ELSE 'send' END",
        f"""CASE WHEN h THEN '{{"reason": "holdout"}}' WHEN i % 5 = 0"""
        f""" THEN '{{"reason": "no_channel"}}' ELSE {_SEND % "email"} END""",
        HOUR,
    ),
    (
        "'p2'",
        "CASE WHEN h THEN 'suppress' ELSE 'send' END",
        f"""CASE WHEN h THEN '{{"reason": "holdout"}}' ELSE {_SEND % "push"} END""",
        HOUR + 86_400_000,
    ),
    ("'t1'", "'track'", """'{"event": "nudged"}'""", HOUR + 86_400_000),
    (
        "'s3'",
        "CASE WHEN h OR i % 7 = 0 THEN 'suppress' ELSE 'send' END",
        f"""CASE WHEN h THEN '{{"reason": "holdout"}}' WHEN i % 7 = 0"""
        f""" THEN '{{"reason": "cap"}}' ELSE {_SEND % "sms"} END""",
        HOUR + 86_400_000,
    ),
    ("'s2'", "'set'", """'{"attr": "stage", "value": 2}'""", HOUR + 86_400_000),
    ("'u1'", "'unset'", """'{"attr": "stage"}'""", HOUR + 86_400_000),
    ("'u1'", "'exit'", """'{"reason": "completed"}'""", HOUR + 86_400_000),
]

# Converted: 10% of the holdout, 12% of arm A, 15% of arm B, by a fixed scramble of i.
_CONVERTED = "(i * 7919) % 1000 < CASE WHEN h THEN 100 WHEN i % 2 = 0 THEN 120 ELSE 150 END"
_NUMBERS = "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ? - 1)"


def _entered(n: int) -> str:
    return f"({T0} + i * {SPAN_MS // n})"


def build_store(path: Path, n: int) -> None:
    """Generate the store (see the module's docstring)."""
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "cart.journey").write_text(BENCH_JOURNEY)
        journey = lower_project(load_project([tmp])).journeys["cart"]
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn)
    conn.execute("PRAGMA journal_mode = OFF")
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("PRAGMA cache_size = -262144")
    marks = ", ".join("?" for _ in TABLES)
    indexes = conn.execute(
        f"SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
        f" AND tbl_name IN ({marks})",
        TABLES,
    ).fetchall()
    triggers = conn.execute(
        f"SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name IN ({marks})",
        TABLES,
    ).fetchall()
    for kind, rows in (("INDEX", indexes), ("TRIGGER", triggers)):
        for name, _ in rows:
            conn.execute(f'DROP {kind} "{name}"')
    conn.execute("BEGIN")
    ir_json = journey.model_dump_json()
    conn.executemany(
        "INSERT INTO journeys (id, version, ir, source, deployed_at, active) VALUES"
        " ('cart', ?, ?, '', ?, ?)",
        [("v1", ir_json, T0 - HOUR, 0), ("v2", ir_json, T0 + SPAN_MS // 2, 1)],
    )
    entered = _entered(n)
    holdout = "((i / 2) % 10 = 0)"  # both arms have held-out users
    conn.execute(
        f"{_NUMBERS}, e(i, h) AS (SELECT i, {holdout} FROM n)"
        " INSERT INTO entries (journey_id, user_id, entry_no, entered_at, goal_at, arm, holdout)"
        f" SELECT 'cart', 'u' || i, 1, {entered},"
        f" CASE WHEN {_CONVERTED} THEN {entered} + 7200000 + (i % 60) * 60000 END,"
        " CASE i % 2 WHEN 0 THEN 'A' ELSE 'B' END, h FROM e",
        (n,),
    )
    slots = " UNION ALL ".join(
        f"SELECT {k} AS k, {off} AS off" for k, (_, _, _, off) in enumerate(SLOTS)
    )

    def by_slot(column: int) -> str:
        return (
            "CASE k " + " ".join(f"WHEN {k} THEN {s[column]}" for k, s in enumerate(SLOTS)) + " END"
        )

    conn.execute(
        f"{_NUMBERS}, e(i, h) AS (SELECT i, {holdout} FROM n), s(k, off) AS ({slots})"
        " INSERT INTO actions (at, user_id, journey_id, step, action, detail)"
        f" SELECT {entered} + off, 'u' || i, 'cart', {by_slot(0)}, {by_slot(1)}, {by_slot(2)}"
        " FROM e, s ORDER BY i, k",
        (n,),
    )
    conn.execute(
        "INSERT INTO actions (at, user_id, journey_id, step, action, detail)"
        " SELECT goal_at, user_id, 'cart', NULL, 'goal', '{}' FROM entries"
        " WHERE goal_at IS NOT NULL"
    )
    conn.execute(
        "INSERT INTO outbox (key, instance_id, journey_id, user_id, step, channel, message,"
        " status, attempts, created_at, sent_at)"
        " SELECT journey_id || ':' || user_id || ':1:' || step, NULL, journey_id, user_id,"
        " step, json_extract(detail, '$.channel'), '',"
        " CASE WHEN seq % 100 = 0 THEN 'failed' WHEN at > ? THEN 'queued' ELSE 'sent' END,"
        " CASE WHEN seq % 20 = 0 THEN 2 ELSE 1 END, at, at + 500"
        " FROM actions WHERE action = 'send'",
        (T0 + SPAN_MS - 86_400_000,),
    )
    conn.execute(
        "INSERT INTO deliveries (outbox_key, kind, at, received_at, journey_id, user_id,"
        " channel, provider_event_id)"
        " SELECT key, CASE WHEN id % 20 = 0 THEN 'opened' ELSE 'delivered' END,"
        " created_at + 2000, created_at + 2500, journey_id, user_id, channel, 'p' || id"
        " FROM outbox WHERE id % 5 = 0 AND status = 'sent'"
    )
    conn.execute(
        "INSERT INTO instances (journey_id, version, user_id, entry_no, node, status,"
        " entered_at, wake_at) SELECT 'cart', 'v2', user_id, 1, 'w2', 'waiting', entered_at,"
        " entered_at + 86400000 FROM entries WHERE entered_at > ?",
        (T0 + SPAN_MS - SPAN_MS // 50,),
    )
    conn.execute("COMMIT")
    for _, sql in [*indexes, *triggers]:
        conn.execute(sql)
    conn.close()


def sum_all(path: Path) -> float:
    """Sum the actions, outbox rows and provider reports into the tables of sums, as
    migration v6 does for a store it upgrades; seconds."""
    backfill = [s for s in MIGRATIONS[5].statements if s.lstrip().startswith("INSERT INTO")]
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        t0 = time.perf_counter()
        conn.execute("BEGIN")
        for sql in backfill:
            conn.execute(sql)
        conn.execute("COMMIT")
        return time.perf_counter() - t0
    finally:
        conn.close()


def logging_cost(rows: int = 100_000, batch: int = 100, runs: int = 3) -> tuple[float, float]:
    """Median seconds to log ``rows`` actions in batches, plain and with the sums
    kept (the runs alternate, so load on the machine falls on both)."""
    row = (T0, "u1", "cart", "e1", "send", '{"channel": "email", "content": {"title": "x"}}')

    def log(keep_sums: bool) -> float:
        with tempfile.TemporaryDirectory() as tmp:
            store = Store.open(Path(tmp) / "log.db")
            conn = store.conn
            t0 = time.perf_counter()
            for start in range(0, rows, batch):
                conn.execute("BEGIN")
                after = last_seq(conn) if keep_sums else 0
                conn.executemany(
                    "INSERT INTO actions (at, user_id, journey_id, step, action, detail)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    [(row[0] + (start + j) * 1000, *row[1:]) for j in range(batch)],
                )
                if keep_sums:
                    add_logged(conn, after)
                conn.execute("COMMIT")
            took = time.perf_counter() - t0
            store.close()
            return took

    plain, summed = [], []
    for _ in range(runs):
        plain.append(log(False))
        summed.append(log(True))
    return statistics.median(plain), statistics.median(summed)


def store_matches(path: Path, n: int) -> bool:
    if not path.is_file():
        return False
    conn = sqlite3.connect(path)
    try:
        (count,) = conn.execute("SELECT count(*) FROM entries").fetchone()
        (sums,) = conn.execute("SELECT count(*) FROM action_counts").fetchone()
        return bool(count == n and sums)
    except sqlite3.DatabaseError:
        return False
    finally:
        conn.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    add_common_args(ap, "50 000 entries, 500 000 actions")
    ap.add_argument("--entries", type=int, default=None, help="default 1 000 000 (10 actions each)")
    ap.add_argument("--db", type=Path, default=None, help="keep the generated store here")
    args = ap.parse_args(argv)
    n = args.entries or (50_000 if args.quick else 1_000_000)
    goal_s = 2.0 * n / 1_000_000

    print_machine()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.db if args.db is not None else Path(tmp) / "report.db"
        t_sum = None
        if store_matches(path, n):
            print(f"store: {path} (reused)")
        else:
            path.unlink(missing_ok=True)
            t0 = time.perf_counter()
            build_store(path, n)
            print(f"store: generated in {time.perf_counter() - t0:.1f} s (not timed below)")
            t_sum = sum_all(path)
        store = Store.open(path)
        conn = store.conn
        (n_actions,) = conn.execute("SELECT count(*) FROM actions").fetchone()
        (n_outbox,) = conn.execute("SELECT count(*) FROM outbox").fetchone()
        (n_sums,) = conn.execute(
            "SELECT (SELECT count(*) FROM action_counts) + (SELECT count(*) FROM outbox_counts)"
            " + (SELECT count(*) FROM delivery_counts)"
        ).fetchone()
        print(
            f"sizes: {n:,} entries, {n_actions:,} actions, {n_outbox:,} outbox rows,"
            f" {n_sums:,} rows of sums"
            + (f"; summed in {t_sum:.1f} s" if t_sum is not None else "")
        )

        report = build_report(store, "cart")
        assert report.entries == n, report.entries
        sent = sum(sum(s.sends.values()) for s in report.steps)
        (want,) = conn.execute("SELECT count(*) FROM actions WHERE action = 'send'").fetchone()
        assert sent == want, (sent, want)
        print(
            "report: "
            + ", ".join(f"{a.name} {a.conversions}/{a.entries}" for a in report.experiment.arms)  # type: ignore[union-attr]
            + "; "
            + ", ".join(
                f"{c.arm} vs {c.baseline} p={c.p_value:.2g}"
                for c in report.experiment.comparisons  # type: ignore[union-attr]
            )
        )

        since, until = T0 + 5 * 86_400_000 + 1_234_567, T0 + 20 * 86_400_000 + 2_345_678
        t_all = median_time(lambda: build_report(store, "cart"))
        t_range = median_time(lambda: build_report(store, "cart", since_ms=since, until_ms=until))
        t_version = median_time(lambda: build_report(store, "cart", version="v2"))
        t_count = median_time(lambda: conn.execute("SELECT count(*) FROM actions").fetchone())
        t_raw = median_time(
            lambda: conn.execute(
                f"SELECT step, action, {LABEL}, count(*) FROM actions"
                " WHERE journey_id = 'cart' GROUP BY 1, 2, 3"
            ).fetchall(),
            runs=1,
        )
        store.close()
    plain, summed = logging_cost()
    print(
        "logging 100k actions in batches of 100 (median of 3):"
        f" plain {plain:.2f} s, with sums {summed:.2f} s"
    )
    size = f"{n // 1000}k entries, {n_actions / 1e6:.1f}M actions"
    finish(
        [
            Figure(
                f"report, all versions, no range ({size})",
                t_all,
                "s",
                t_count,
                "count(*) of actions",
                f"<= {goal_s:.3g} s",
                t_all <= goal_s,
            ),
            Figure(
                "report over a range cut inside hours",
                t_range,
                "s",
                t_count,
                "count(*) of actions",
                f"<= {goal_s:.3g} s",
                t_range <= goal_s,
            ),
            Figure(
                "report of one version",
                t_version,
                "s",
                t_count,
                "count(*) of actions",
                f"<= {goal_s:.3g} s",
                t_version <= goal_s,
            ),
            Figure(
                "per-step GROUP BY over the raw log", t_raw, "s", t_count, "count(*) of actions"
            ),
            Figure(
                "logging 100k actions, with the sums",
                summed,
                "s",
                plain,
                "without the sums",
            ),
        ],
        args,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
