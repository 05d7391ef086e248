"""Recommendation filter calls per second, with the cache cold and warm (issue #5).

    python bench/bench_recommend.py [--quick] [--products P] [--events E] [--users U]

Seeded generation, not timed: a catalog of P products (names, brands, categories,
prices, a colour as an extra field; one in ten out of stock) written as a JSON-lines
feed and loaded with the real loader (``read_catalog`` + ``upsert_products``), and E
events of U users over the 30 days before ``NOW``: four in five ``product_viewed``,
one in five ``order_completed`` with a ``products`` list of 1-3 lines and quantities
of 1-3. Which product an event names follows a skewed law (a few products get most
views and sales), so the rankings have a clear top. The events go in with
``executemany`` in time order (the indexes are built after the rows), as the log
holds them.

Each filter is rendered through the real Liquid path: ``Renderer.render`` of a
declared message (``MessageIR``) whose push body assigns the filter's products and
prints their names, with the engine's clock in ``now`` (``Renderer.with_catalog`` on
``store.recommendations()``, so one ``Recommender`` and its caches). Figures, each the
median of several runs after an unmeasured warm-up:

- **cold**: before each call the recommender's caches are cleared and ``now`` moves on
  to a new hour, so the call scans the window's events (units and views of every
  product) and ranks anew: one call per run, calls/s = 1 / median seconds;
- **warm**: the same renderer, arguments and hour, so every call is a ranking-cache
  hit (checked by the recommender's ``hits``); what is left is Liquid, the profile
  conversion and re-reading the picked products for their stock;
- **window cached, ranking cold** (``top_sellers``): in a new hour, after one
  unmeasured call has scanned the window, one call for each other category: what most
  calls of a busy hour cost (the window is shared, the ranking is not);
- **baseline**: one plain SQL query of the same ranking (candidates, units and views
  over the window with ``json_each``, ``ORDER BY`` and ``LIMIT``; no Liquid, no
  cache), timed the same way as cold; it must pick the same products as the filter,
  or the benchmark fails.

The issue sets no goal for these figures. Warm calls should be at least 100 times
faster than cold ones (the point of the cache); that is stated as the goal of the warm
rows, with the cold figure as their baseline. The cold rows are context: their ratio
to the plain SQL shows what the filter adds to the query it cannot avoid.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Figure, add_common_args, bulk_load, finish, print_machine
from journeyc.catalog import read_catalog, upsert_products
from journeyc.compile.ir import FieldIR, MessageIR
from journeyc.messages.recommend import CROSS_SELL_DAYS, POPULAR_DAYS, TOP_SELLERS_DAYS
from journeyc.messages.render import RenderContext, Renderer
from journeyc.store.sqlite import Store

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)
HOUR = timedelta(hours=1)
DAY_MS = 86_400_000
DAYS = 30
COUNT = 3
WARM_GOAL = 100  # warm >= 100x cold

_NAMES = "{% for p in picks %}{{ p.name }}{% unless forloop.last %}, {% endunless %}{% endfor %}"
TEMPLATES = {
    "top_sellers": "{% assign picks = category | top_sellers: 3 %}" + _NAMES,
    "popular": '{% assign picks = brand | popular: by: "brand", limit: 3 %}' + _NAMES,
    "cross_sell": "{% assign picks = user | cross_sell: 3 %}" + _NAMES,
}
MESSAGES = {
    kind: MessageIR(name=f"bench_{kind}", parts={"push": {"body": FieldIR(default=source)}})
    for kind, source in TEMPLATES.items()
}
WINDOW_DAYS = {
    "top_sellers": TOP_SELLERS_DAYS,
    "popular": POPULAR_DAYS,
    "cross_sell": CROSS_SELL_DAYS,
}

# ---------------------------------------------------------------- the plain SQL baseline

# Units and views of the candidates over [:start, :end): the generated orders always
# carry a `products` list, so one json_each pass over them is the whole of it.
_SCORES = """
, units AS (
  SELECT json_extract(j.value, '$.product_id') AS pid,
         sum(json_extract(j.value, '$.quantity')) AS u
  FROM events AS e, json_each(e.props, '$.products') AS j
  WHERE e.name = 'order_completed' AND e.at >= :start AND e.at < :end
    AND json_extract(j.value, '$.product_id') IN (SELECT id FROM cand)
  GROUP BY 1
), views AS (
  SELECT json_extract(props, '$.product_id') AS pid, count(*) AS v
  FROM events
  WHERE name = 'product_viewed' AND at >= :start AND at < :end
    AND json_extract(props, '$.product_id') IN (SELECT id FROM cand)
  GROUP BY 1
), scored AS (
  SELECT cand.id, coalesce(u, 0) AS u, coalesce(v, 0) AS v
  FROM cand LEFT JOIN units ON units.pid = cand.id LEFT JOIN views ON views.pid = cand.id
)
SELECT id FROM scored ORDER BY {order}, id LIMIT :n
"""
_BY_UNITS = "u DESC, v DESC"
_BY_POPULARITY = "v + 3 * u DESC, u DESC"
BASELINE_SQL = {
    "top_sellers": "WITH cand AS (SELECT id FROM products WHERE in_stock = 1 AND category = :key)"
    + _SCORES.format(order=_BY_UNITS),
    "popular": "WITH cand AS (SELECT id FROM products WHERE in_stock = 1 AND brand = :key)"
    + _SCORES.format(order=_BY_POPULARITY),
    "cross_sell": """
WITH bought AS (
  SELECT DISTINCT json_extract(j.value, '$.product_id') AS pid
  FROM events AS e, json_each(e.props, '$.products') AS j
  WHERE e.user_id = :key AND e.name = 'order_completed' AND e.at < :end
), cand AS (
  SELECT id FROM products WHERE in_stock = 1
    AND category IN (SELECT category FROM products WHERE id IN (SELECT pid FROM bought))
    AND id NOT IN (SELECT pid FROM bought)
)"""
    + _SCORES.format(order=_BY_POPULARITY),
}


def baseline_ids(conn: sqlite3.Connection, kind: str, key: str, now: datetime) -> list[str]:
    """The plain SQL ranking of ``kind`` for ``key`` as of the hour of ``now``."""
    ms = int(now.timestamp() * 1000)
    end = ms - ms % 3_600_000
    params = {"key": key, "start": end - WINDOW_DAYS[kind] * DAY_MS, "end": end, "n": COUNT}
    return [row[0] for row in conn.execute(BASELINE_SQL[kind], params)]


# ---------------------------------------------------------------- seeded data


def catalog_rows(n: int, rng: random.Random) -> list[dict[str, Any]]:
    """``n`` feed rows: about 100 products a category and 50 a brand."""
    categories = max(10, n // 100)
    brands = max(10, n // 50)
    colours = ["black", "white", "red", "blue", "green", "silver"]
    return [
        {
            "id": f"p{i:05d}",
            "name": f"Product {i}",
            "brand": f"b{rng.randrange(brands):03d}",
            "category": f"c{rng.randrange(categories):02d}",
            "price": round(rng.uniform(5, 500), 2),
            "url": f"https://shop.example/p/p{i:05d}",
            "image": f"https://cdn.shop.example/p{i:05d}.jpg",
            "in_stock": rng.random() >= 0.1,
            "colour": rng.choice(colours),
        }
        for i in range(n)
    ]


def event_rows(
    products: list[dict[str, Any]], n_events: int, n_users: int, rng: random.Random
) -> Iterator[tuple[str, str, str, int, str, int]]:
    """``n_events`` (message_id, user_id, name, at, props, received_at) rows in time
    order over the ``DAYS`` days before ``NOW``."""
    order = list(range(len(products)))
    rng.shuffle(order)
    # A skewed law: the product of popularity rank r is drawn with weight 1/(r+1)^0.9.
    weights = [0.0] * len(products)
    for rank, i in enumerate(order):
        weights[i] = 1 / (rank + 1) ** 0.9
    cum = list(itertools.accumulate(weights))
    times = sorted(NOW_MS - 1 - rng.randrange(DAYS * DAY_MS) for _ in range(n_events))
    for k, at in enumerate(times):
        user = f"u{rng.randrange(n_users):06d}"
        if rng.random() < 0.8:
            p = products[rng.choices(order, cum_weights=cum)[0]]
            name = "product_viewed"
            props: dict[str, Any] = {
                "product_id": p["id"],
                "name": p["name"],
                "brand": p["brand"],
                "category": p["category"],
                "price": p["price"],
            }
        else:
            n_lines = rng.choices((1, 2, 3), (70, 20, 10))[0]
            picked = {
                products[i]["id"]: products[i]
                for i in rng.choices(range(len(products)), cum_weights=cum, k=n_lines)
            }
            lines = [
                {
                    "product_id": pid,
                    "quantity": rng.choices((1, 2, 3), (80, 15, 5))[0],
                    "price": p["price"],
                }
                for pid, p in picked.items()
            ]
            name = "order_completed"
            props = {
                "order_id": f"o{k}",
                "revenue": round(sum(x["quantity"] * x["price"] for x in lines), 2),
                "products": lines,
            }
        yield (f"m{k:08d}", user, name, at, json.dumps(props, separators=(",", ":")), at)


def build_store(path: Path, n_products: int, n_events: int, n_users: int, seed: int = 3) -> None:
    """A fresh store at ``path``: the events, a profile row for each of their users,
    then the catalog through the feed loader."""
    rng = random.Random(seed)
    feed = catalog_rows(n_products, rng)
    users: set[str] = set()

    def rows() -> Iterator[tuple[str, str, str, int, str, int]]:
        for row in event_rows(feed, n_events, n_users, rng):
            users.add(row[1])
            yield row

    with bulk_load(path, 200_000) as conn:
        conn.executemany(
            "INSERT INTO events (message_id, user_id, name, at, props, received_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            rows(),
        )
        # As the store keeps it: every user the log names has a profile row.
        conn.executemany(
            "INSERT INTO profiles (user_id, traits, updated_at) VALUES (?, '{}', 0)",
            ((u,) for u in sorted(users)),
        )

    feed_path = path.with_suffix(".jsonl")
    feed_path.write_text("".join(json.dumps(p) + "\n" for p in feed), encoding="utf-8")
    loaded = read_catalog(feed_path)
    if loaded.problems:
        raise SystemExit(f"the generated feed has bad rows: {loaded.problems[:3]}")
    with Store.open(path) as store:
        upsert_products(store, loaded.products, at_ms=NOW_MS)


# ---------------------------------------------------------------- timing


def median_rate(once: Callable[[], tuple[int, float]], runs: int) -> float:
    """Median calls per second of ``runs`` runs of ``once`` (which returns its calls
    and their seconds) after one unmeasured run."""
    once()
    rates = []
    for _ in range(runs):
        calls, seconds = once()
        rates.append(calls / seconds)
    return statistics.median(rates)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    add_common_args(ap, "500 products, 50 000 events, 5 000 users")
    ap.add_argument("--products", type=int, default=None, help="default 5 000")
    ap.add_argument("--events", type=int, default=None, help="default 1 000 000")
    ap.add_argument("--users", type=int, default=None, help="default 100 000")
    ap.add_argument("--runs", type=int, default=5, help="timed runs per figure (default 5)")
    ap.add_argument("--warm-calls", type=int, default=None, help="calls per warm run")
    args = ap.parse_args(argv)
    n_products = args.products or (500 if args.quick else 5_000)
    n_events = args.events or (50_000 if args.quick else 1_000_000)
    n_users = args.users or (5_000 if args.quick else 100_000)
    warm_calls = args.warm_calls or (500 if args.quick else 3_000)
    runs = args.runs

    print_machine()
    print(
        f"{n_products:,} products, {n_events:,} events of {n_users:,} users over {DAYS} days; "
        f"median of {runs} runs after a warm-up ({warm_calls:,} calls per warm run)"
    )
    with tempfile.TemporaryDirectory(prefix="journeyc-bench-") as tmp:
        path = Path(tmp) / "recommend.db"
        t0 = time.perf_counter()
        build_store(path, n_products, n_events, n_users)
        print(f"store: generated in {time.perf_counter() - t0:.1f} s (not timed below)")
        with Store.open(path) as store:
            return run(store, args, runs, warm_calls)


def run(store: Store, args: argparse.Namespace, runs: int, warm_calls: int) -> int:
    conn = store.conn
    renderer = Renderer.with_catalog(store.recommendations())
    rec = renderer.recommender
    assert rec is not None

    # The inputs: the category and the brand with the most in-stock products (ids
    # break ties), and the first user with two orders or more.
    category = conn.execute(
        "SELECT category FROM products WHERE in_stock = 1 GROUP BY 1 ORDER BY count(*) DESC, 1"
    ).fetchone()[0]
    brand = conn.execute(
        "SELECT brand FROM products WHERE in_stock = 1 GROUP BY 1 ORDER BY count(*) DESC, 1"
    ).fetchone()[0]
    user = conn.execute(
        "SELECT user_id FROM events WHERE name = 'order_completed'"
        " GROUP BY 1 HAVING count(*) >= 2 ORDER BY 1 LIMIT 1"
    ).fetchone()[0]
    categories = [
        r[0]
        for r in conn.execute(
            "SELECT DISTINCT category FROM products WHERE in_stock = 1 ORDER BY 1"
        )
    ]
    keys = {"top_sellers": category, "popular": brand, "cross_sell": user}
    print(f"inputs: category {category}, brand {brand}, user {user}; {len(categories)} categories")

    def context(now: datetime, category: str = category) -> RenderContext:
        # A `send push bench_KIND with category = ..., brand = ...` at ``now``.
        return RenderContext(
            user_id=user,
            user={"first_name": "Ann", "locale": "en", "push_enabled": True},
            event=None,
            journey_id="bench",
            step="recommend",
            now=now,
            values={"category": category, "brand": brand},
        )

    def render(kind: str, now: datetime, category: str = category) -> str:
        return renderer.render(MESSAGES[kind], None, "push", context(now, category))["body"]

    hours = (NOW + timedelta(minutes=17) + k * HOUR for k in itertools.count())

    # The filter and the plain SQL must pick the same products, in the same order.
    check_at = next(hours)
    for kind, key in keys.items():
        rec.clear()
        want = baseline_ids(conn, kind, key, check_at)
        picked = (
            rec.popular(key, by="brand", limit=COUNT, now=check_at)
            if kind == "popular"
            else getattr(rec, kind)(key, COUNT, now=check_at)
        )
        got = [p["id"] for p in picked]
        names = ", ".join(f"Product {int(i[1:])}" for i in want)
        text = render(kind, check_at)
        if got != want or text != names or len(want) != COUNT:
            print(
                f"{kind}: the filter picked {got} ({text!r}), the plain SQL {want}",
                file=sys.stderr,
            )
            return 1
        print(f"{kind}({key}) = {text}")

    rates: dict[str, float] = {}
    for kind, key in keys.items():

        def cold(kind: str = kind) -> tuple[int, float]:
            now = next(hours)
            rec.clear()
            misses = rec.misses
            t0 = time.perf_counter()
            render(kind, now)
            dt = time.perf_counter() - t0
            assert rec.misses == misses + 1
            return 1, dt

        def plain(kind: str = kind, key: str = key) -> tuple[int, float]:
            now = next(hours)
            t0 = time.perf_counter()
            baseline_ids(conn, kind, key, now)
            return 1, time.perf_counter() - t0

        warm_at = next(hours)

        def warm(kind: str = kind, now: datetime = warm_at) -> tuple[int, float]:
            hits = rec.hits
            t0 = time.perf_counter()
            for _ in range(warm_calls):
                render(kind, now)
            dt = time.perf_counter() - t0
            assert rec.hits == hits + warm_calls
            return warm_calls, dt

        rates[f"{kind} cold"] = median_rate(cold, runs)
        rates[f"{kind} sql"] = median_rate(plain, runs)
        render(kind, warm_at)  # ranks once for this hour; every warm call after is a hit
        rates[f"{kind} warm"] = median_rate(warm, runs)
        print(
            f"{kind}: cold {1000 / rates[f'{kind} cold']:.1f} ms/call, "
            f"plain SQL {1000 / rates[f'{kind} sql']:.1f} ms, "
            f"warm {1e6 / rates[f'{kind} warm']:.0f} µs/call"
        )

    others = [c for c in categories if c != category]

    def window_warm() -> tuple[int, float]:
        now = next(hours)
        rec.clear()
        render("top_sellers", now)
        misses = rec.misses
        t0 = time.perf_counter()
        for c in others:
            render("top_sellers", now, c)
        dt = time.perf_counter() - t0
        assert rec.misses == misses + len(others)
        return len(others), dt

    rates["window warm"] = median_rate(window_warm, runs)
    print(
        f"top_sellers, window cached, ranking cold: {1000 / rates['window warm']:.2f} ms/call "
        f"({len(others)} other categories per run)"
    )

    figures: list[Figure] = []
    for kind in keys:
        cold_rate, warm_rate = rates[f"{kind} cold"], rates[f"{kind} warm"]
        figures.append(
            Figure(f"{kind}, cache cold", cold_rate, "calls/s", rates[f"{kind} sql"], "plain SQL")
        )
        figures.append(
            Figure(
                f"{kind}, cache warm",
                warm_rate,
                "calls/s",
                cold_rate,
                "cold",
                f">= {WARM_GOAL}x cold",
                warm_rate >= WARM_GOAL * cold_rate,
            )
        )
        if kind == "top_sellers":
            figures.append(
                Figure(
                    "top_sellers, window cached, ranking cold",
                    rates["window warm"],
                    "calls/s",
                    cold_rate,
                    "cold",
                )
            )
    finish(figures, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
