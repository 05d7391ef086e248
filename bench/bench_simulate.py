"""Simulate a month of a shop: 1M events of 100k users through 10 journeys.

    python bench/bench_simulate.py [--quick]

Seeded generation, not timed: identify calls give every user a profile (name,
contact points and opt-ins, lifecycle, locale, time zone); shopping sessions spread
over 30 days view products, update and abandon carts, view carts, order, review and
open the app. Ten journeys of the shapes a retailer writes use every kind of step:
event entries with `where`, entry rules, `exit when`, goals, quiet hours, caps,
holdouts, `wait`, `wait for … up to` with `on EVENT` / `on timeout` branches,
`if`/`elif` on profile attributes, segments and `count(… within 7d)`, splits, sends
with fallback channels, declared messages and inline Liquid, `set` and `track`.
The events are built in memory as :class:`Event` records, and ``simulate(...)`` is
timed end to end over a fresh store file.

Baseline from the same run, on the same events: appending them to a fresh store
with ``Store.append_events`` alone, in time order, 1 000 per call, unsynced as
simulate writes (``Store.bulk``): the ingest floor.
Goal: the full size (1M events) in ≤ 60 s; other sizes (``--quick``: 20k events, 2k
users; or ``--events``/``--users``) scale the goal by the event count.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Figure, add_common_args, finish, print_machine
from journeyc.compile import ir
from journeyc.compile.lower import lower_project
from journeyc.engine.actions import Action
from journeyc.engine.parallel import default_workers, in_output_order, simulate_parallel
from journeyc.engine.simulate import simulate
from journeyc.events import IDENTIFY, Event, Kind
from journeyc.lang.checker import check_project
from journeyc.lang.project import load_project
from journeyc.store.sqlite import Store

START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
DAYS = 30
DAY_MS = 86_400_000
CATEGORIES = ["womens", "mens", "kids", "home", "beauty", "watches"]
BRANDS = ["Aster", "Birch", "Cobalt", "Dune", "Ember", "Fjord", "Garnet"]
FIRST_NAMES = ["Ann", "Bao", "Chai", "Dara", "Emil", "Fah", "Gus", "Hana", "Ivo", "Jin", "Kwan"]
ZONES = ["UTC", "Asia/Bangkok", "Europe/Paris", "America/New_York"]
LIFECYCLES = ["new", "active", "dormant", "churned"]
MESSAGES = 10
ANY = "push or whatsapp or sms or email"
HI = "{{ user.first_name | default: 'there' }}"
IF_NAME = "{% if user.first_name %}, {{ user.first_name }}{% endif %}"

# ---------------------------------------------------------------- journeys


def cart_journey(i: int, rng: random.Random) -> str:
    """Cart recovery: a nudge per category on the first channel that reaches, then a
    second look or a last call."""
    cats = rng.sample(CATEGORIES, 2)
    return f'''journey j{i}_cart "Cart recovery {i}"
  when cart_abandoned where event.cart_value >= {rng.randint(20, 60)}
  entry once per {rng.randint(3, 7)}d
  exit when order_completed
  goal order_completed within 3d
  quiet hours 22:00-08:00
  cap 3 per 1d
  holdout {rng.randint(0, 10)}%

  wait {rng.randint(20, 30)}m as first_nudge
  if event.category == "{cats[0]}"
    send {ANY} msg{i % MESSAGES} with coupon = "HER15", percent = 15
  elif event.category == "{cats[1]}"
    send {ANY} msg{(i + 1) % MESSAGES} with coupon = "HIM10", percent = 10
  else
    send {ANY} msg{(i + 2) % MESSAGES} with coupon = "ALL5", percent = 5
  wait for cart_viewed up to 1d as second_look
    on cart_viewed
      send push "Your {{{{ event.item_count }}}} items are saved, {HI}."
    on timeout
      send email or sms msg{(i + 3) % MESSAGES} with coupon = "LAST", percent = 20
'''


def browse_journey(i: int, rng: random.Random) -> str:
    """Browse abandonment: repeated views of a category, new or dormant users, a split."""
    cat = rng.choice(CATEGORIES)
    return f'''journey j{i}_browse "Browse abandonment {i}"
  when product_viewed where event.category == "{cat}" and event.price >= {rng.randint(20, 200)}
  entry once per {rng.randint(7, 14)}d
  exit when order_completed
  exit when cart_updated where event.category == "{cat}"
  goal order_completed within {rng.randint(2, 7)}d
  quiet hours 21:00-09:00
  cap 2 per 1d

  wait {rng.randint(1, 3)}h as cool_off
  if count(product_viewed where event.category == "{cat}" within 7d) >= 3
    send push or whatsapp or email msg{i % MESSAGES} with coupon = "B{i}", percent = 10
  elif segment hero or lifecycle in ["new", "dormant"]
    send push or email "Hi {HI}, {{{{ event.product_name }}}} is still here."
  else
    set last_browse_nudge = now
  wait for cart_updated up to 2d
    on cart_updated
      track browse_converted with journey = "j{i}"
    on timeout
      split
        50% as A
          send email msg{(i + 1) % MESSAGES} with coupon = "B{i}", percent = 15
        50% as B
          exit
'''


def post_purchase_journey(i: int, rng: random.Random) -> str:
    """After an order: thanks, a review request and a cross-sell by spend."""
    return f"""journey j{i}_post "Post purchase {i}"
  when order_completed where event.amount >= {rng.randint(10, 80)}
  entry once per {rng.randint(14, 30)}d
  goal review_submitted within 14d
  quiet hours 22:00-08:00

  send email or push "Thanks for your order {{{{ event.order_id }}}}, {HI}!"
  wait {rng.randint(2, 4)}d
  wait for review_submitted up to 5d
    on review_submitted
      set reviewer = true
    on timeout
      if segment hero
        send push or email msg{i % MESSAGES} with coupon = "VIP", percent = 20
      elif lifecycle == "new"
        send push or sms msg{(i + 4) % MESSAGES} with coupon = "NEW", percent = 10
      else
        send email "How was your order? Tell us in one tap."
  wait 7d
  if count(order_completed within 30d) == 1
    send push or whatsapp or email msg{(i + 5) % MESSAGES} with coupon = "AGAIN", percent = 10
"""


def reengage_journey(i: int, rng: random.Random) -> str:
    """App opens after a lull: a welcome back, a split test of offers."""
    return f"""journey j{i}_back "Welcome back {i}"
  when app_opened where lifecycle in ["dormant", "churned"]
  when app_opened where count(app_opened within 7d) == 1
  entry once per {rng.randint(10, 20)}d
  exit when order_completed
  goal order_completed within 7d
  cap 1 per 1d
  holdout {rng.randint(5, 15)}%

  wait {rng.randint(5, 15)}m
  split
    {(p := rng.choice([30, 40, 50]))}% as offer
      send push or whatsapp or sms msg{i % MESSAGES} with coupon = "BACK", percent = 15
    {100 - p}% as content
      send push or inapp "New in {{{{ user.favorite_category | default: 'store' }}}} this week"
  wait for product_viewed up to 1d
    on product_viewed
      if event.price >= 100
        send push "{{{{ event.product_name }}}} by {{{{ event.brand }}}}: still thinking?"
    on timeout
      exit
  set last_reengaged = now
"""


SHAPES = [cart_journey, browse_journey, post_purchase_journey, reengage_journey]


def write_project(root: Path, n_journeys: int = 10, seed: int = 11) -> Path:
    """Write ``n_journeys`` journeys, the messages and the segment they use."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n_journeys):
        (root / f"j{i:02d}.journey").write_text(SHAPES[i % len(SHAPES)](i, rng))
    messages = []
    for m in range(MESSAGES):
        messages.append(f"""message msg{m}
  push
    title "{{{{ event.product_name | default: 'Something' }}}} is waiting"
    body "Use {{{{ coupon }}}} for {{{{ percent }}}}% off{IF_NAME}"
    deeplink "app://cart?coupon={{{{ coupon }}}}"
  whatsapp
    body "Hi {HI}: {{{{ percent }}}}% off with {{{{ coupon }}}} {{{{ event.cart_url }}}}"
  sms
    body "{{{{ percent }}}}% off with {{{{ coupon }}}}: {{{{ event.cart_url }}}}"
  email
    subject "{{{{ percent }}}}% off, {{{{ user.first_name | default: 'just for you' }}}}"
    html "<p>Hi {HI}, use <b>{{{{ coupon }}}}</b>{IF_NAME}.</p>"
""")
    (root / "messages.journey").write_text("\n".join(messages))
    (root / "segments.journey").write_text(
        "segment hero = sum(order_completed.amount within 365d) >= 500 and "
        "count(order_completed within 365d) >= 3\n"
    )
    return root


def compile_project(root: Path) -> ir.ProjectIR:
    """Check (no errors allowed) and lower the project under ``root``."""
    project = load_project([root])
    errors = [d for d in check_project(project) if d.is_error]
    assert not errors, errors[:3]
    return lower_project(project)


# ---------------------------------------------------------------- events


class EventMaker:
    """Seeded events for ``users`` users, ``total`` events in all, over ``DAYS`` days."""

    def __init__(self, total: int, users: int, seed: int = 5) -> None:
        self.rng = random.Random(seed)
        self.total = total
        self.users = users
        self.events: list[Event] = []

    def add(self, user: str, name: str, at: int, props: dict[str, Any]) -> None:
        """Record one call (an identify when ``name`` is ``identify``)."""
        kind: Kind = "identify" if name == IDENTIFY else "track"
        self.events.append(Event(f"m{len(self.events)}", user, kind, name, at, props, at))

    def profile(self, user: str) -> None:
        """The user's identify call on the first day: name, contacts, opt-ins."""
        rng = self.rng
        traits: dict[str, Any] = {
            "first_name": rng.choice(FIRST_NAMES),
            "lifecycle": rng.choice(LIFECYCLES),
            "push_enabled": rng.random() < 0.55,
            "timezone": rng.choice(ZONES),
            "favorite_category": rng.choice(CATEGORIES),
        }
        if rng.random() < 0.8:
            traits["email"] = f"{user}@example.com"
            traits["email_unsubscribed"] = rng.random() < 0.1
        if rng.random() < 0.6:
            traits["phone"] = f"+66{rng.randint(800000000, 899999999)}"
            traits["sms_opt_in"] = rng.random() < 0.5
            traits["whatsapp_opt_in"] = rng.random() < 0.4
        if rng.random() < 0.3:
            traits["locale"] = "th"
        self.add(user, "identify", START_MS + rng.randrange(DAY_MS), traits)

    def session(self, user: str) -> None:
        """A visit: views, maybe a cart, maybe an order, sometimes a review."""
        rng = self.rng
        t = START_MS + rng.randrange(DAYS * DAY_MS)
        cat = rng.choice(CATEGORIES)
        if rng.random() < 0.4:
            self.add(user, "app_opened", t, {"source": rng.choice(["push", "organic"])})
        views = 1 + int(rng.expovariate(0.5))
        viewed: list[dict[str, Any]] = []
        for _ in range(views):
            t += rng.randint(5_000, 120_000)
            c = cat if rng.random() < 0.7 else rng.choice(CATEGORIES)
            pid = rng.randint(1, 5_000)
            p = {
                "product_id": f"p{pid}",
                "product_name": f"Item {pid}",
                "category": c,
                "brand": rng.choice(BRANDS),
                "price": round(rng.uniform(5, 400), 2),
                "url": f"https://shop.example/p/{pid}",
            }
            viewed.append(p)
            self.add(user, "product_viewed", t, p)
        if rng.random() < 0.35:
            items = rng.sample(viewed, min(len(viewed), rng.randint(1, 3)))
            value = round(sum(p["price"] for p in items), 2)
            cart = {
                "item_count": len(items),
                "cart_value": value,
                "category": items[0]["category"],
                "product_name": items[0]["product_name"],
                "cart_url": f"https://shop.example/cart/{user}",
            }
            t += rng.randint(10_000, 60_000)
            self.add(user, "cart_updated", t, cart)
            r = rng.random()
            if r < 0.45:
                t += rng.randint(60_000, 600_000)
                self.add(user, "cart_abandoned", t, cart)
                if rng.random() < 0.4:
                    t += rng.randint(600_000, 2 * DAY_MS)
                    self.add(user, "cart_viewed", t, {"item_count": len(items)})
                if rng.random() < 0.2:
                    t += rng.randint(600_000, 3 * DAY_MS)
                    self._order(user, t, value, cart["category"])
            elif r < 0.75:
                t += rng.randint(60_000, 300_000)
                self._order(user, t, value, cart["category"])

    def _order(self, user: str, t: int, amount: float, category: str) -> None:
        rng = self.rng
        self.add(
            user,
            "order_completed",
            t,
            {"order_id": f"o{len(self.events)}", "amount": amount, "category": category},
        )
        if rng.random() < 0.25:
            self.add(user, "review_submitted", t + rng.randint(DAY_MS, 10 * DAY_MS), {"stars": 5})

    def make(self) -> list[Event]:
        """Every user's profile, then sessions of users picked with a long tail of
        heavy shoppers, until ``total`` events; in time order."""
        users = [f"u{i:06d}" for i in range(self.users)]
        for u in users:
            self.profile(u)
        weights = [1.0 / (1 + (i % 97)) ** 0.8 for i in range(self.users)]
        while len(self.events) < self.total:
            for u in self.rng.choices(users, weights, k=1_000):
                self.session(u)
                if len(self.events) >= self.total:
                    break
        del self.events[self.total :]
        self.events.sort(key=lambda e: e.at_ms)
        return self.events


# ---------------------------------------------------------------- contenders


def run_simulate(
    project: ir.ProjectIR, events: list[Event], tmp: Path
) -> tuple[float, float, list[Action]]:
    """(wall, CPU) seconds of ``simulate`` over a fresh store, and its actions."""
    path = tmp / "simulate.db"
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    store = Store.open(path)
    try:
        t0, c0 = time.perf_counter(), time.process_time()
        actions = simulate(  # as `journeyc simulate` runs without --db
            project,
            events,
            store,
            start_ms=START_MS,
            until_ms=START_MS + DAYS * DAY_MS,
            scratch=True,
        )
        elapsed = time.perf_counter() - t0, time.process_time() - c0
    finally:
        store.close()
    return elapsed[0], elapsed[1], actions


ActionKey = tuple[int, str, str, str | None, str, dict[str, Any]]


def key_list(actions: list[Action]) -> list[ActionKey]:
    """The actions in the output order, as comparable tuples (details included)."""
    return [
        (a.at_ms, a.user, a.journey, a.step, a.action, a.detail) for a in in_output_order(actions)
    ]


def run_parallel(
    project: ir.ProjectIR, events: list[Event], workers: int
) -> tuple[float, list[ActionKey]]:
    """Wall seconds of ``simulate_parallel`` (``journeyc simulate``'s default on more
    than one core), and its actions."""
    t0 = time.perf_counter()
    actions, _ = simulate_parallel(
        project, events, workers=workers, start_ms=START_MS, until_ms=START_MS + DAYS * DAY_MS
    )
    elapsed = time.perf_counter() - t0
    return elapsed, key_list(actions)


def run_ingest(events: list[Event], tmp: Path, batch: int = 1_000) -> float:
    """Seconds to append ``events`` to a fresh store, ``batch`` per call."""
    path = tmp / "ingest.db"
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    store = Store.open(path)
    try:
        t0 = time.perf_counter()
        with store.bulk():  # as simulate writes: no sync per commit
            for i in range(0, len(events), batch):
                store.append_events(events[i : i + batch])
        elapsed = time.perf_counter() - t0
        (count,) = store.conn.execute("SELECT COUNT(*) FROM events").fetchone()
        assert count == len(events), f"{count} events logged, expected {len(events)}"
    finally:
        store.close()
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    add_common_args(ap, "20k events of 2k users")
    ap.add_argument("--events", type=int, default=None, help="events (default 1M)")
    ap.add_argument("--users", type=int, default=None, help="users (default 100k)")
    ap.add_argument(
        "--workers",
        type=int,
        default=default_workers(),
        help="processes of the split run (default: one per core, as `journeyc simulate`)",
    )
    args = ap.parse_args()
    n_events, n_users = (20_000, 2_000) if args.quick else (1_000_000, 100_000)
    n_events = args.events if args.events is not None else n_events
    n_users = args.users if args.users is not None else n_users
    print_machine()

    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        project = compile_project(write_project(tmp / "proj"))
        t0 = time.perf_counter()
        events = EventMaker(n_events, n_users).make()
        t_gen = time.perf_counter() - t0
        names = Counter(e.name for e in events)
        print(
            f"simulate: {len(events):,} events of {n_users:,} users over {DAYS} days "
            f"(generated in {t_gen:.1f} s), {len(project.journeys)} journeys; one run"
        )
        print("events: " + ", ".join(f"{k} {v:,}" for k, v in names.most_common()))

        # Warm-up: imports, compiled templates and statement caches, on a small slice.
        run_simulate(project, EventMaker(2_000, 200, seed=99).make(), tmp)

        t_ingest = run_ingest(events, tmp)
        t_sim, cpu_sim, actions = run_simulate(project, events, tmp)
        split = run_parallel(project, events, args.workers) if args.workers > 1 else None

    kinds = Counter(a.action for a in actions)
    print("actions: " + ", ".join(f"{k} {v:,}" for k, v in kinds.most_common()))
    print(
        f"simulate {t_sim:.2f} s (CPU {cpu_sim:.2f} s); ingest floor {t_ingest:.2f} s; "
        f"load average at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    goal_s = 60.0 * len(events) / 1_000_000
    goal = "<= 60 s" if len(events) == 1_000_000 else f"<= {goal_s:.3g} s (60 s/1M, scaled)"
    figures = [
        Figure(
            f"simulate {len(events):,} events, 10 journeys, one process",
            t_sim,
            "s",
            t_ingest,
            "append_events alone",
            goal if split is None else "",
            t_sim <= goal_s if split is None else None,
        ),
        Figure(
            "simulate throughput, one process",
            len(events) / t_sim,
            "events/s",
            len(events) / t_ingest,
            "ingest floor",
        ),
    ]
    if split is not None:
        t_split, split_actions = split
        same = split_actions == key_list(actions)
        print(
            f"split run: {args.workers} processes, {t_split:.2f} s; "
            f"the same actions as one process: {'yes' if same else 'NO'}"
        )
        figures.insert(
            0,
            Figure(
                f"simulate {len(events):,} events, 10 journeys, {args.workers} processes",
                t_split,
                "s",
                t_sim,
                "one process",
                goal,
                t_split <= goal_s and same,
            ),
        )
    finish(figures, args)


if __name__ == "__main__":
    main()
