"""Seeded shoppers for the example project (journeys/): identify calls, browsing,
abandoned carts, orders and deliveries over four weeks, as Segment-spec lines.

The dashboard's browser test and ``scripts/screenshot.py`` simulate these so that
every page has journeys with entries, funnels, A/B groups and holdouts to show.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

START = datetime(2026, 1, 5, tzinfo=UTC)
CATEGORIES = {
    "womenswear": ("p-w-101", "Silk wrap dress", "Belle Rive", 5900),
    "menswear": ("p-m-201", "Linen shirt", "Oxford Row", 2900),
    "bags": ("p-b-301", "Leather tote", "Cuir & Co", 15900),
    "jewellery": ("p-j-501", "Gold hoop earrings", "Maison Lune", 14500),
    "watches": ("p-t-401", "Automatic diver 40mm", "Horloge", 48000),
}
NAMES = ("Anna", "Ben", "Carla", "Dan", "Eve", "Farid", "Gita", "Hiro", "Ines", "Jon")


def _ts(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def demo_events(users: int, seed: int = 7, days: int = 28) -> list[dict[str, Any]]:
    """Calls of ``users`` shoppers over ``days`` from :data:`START`, sorted by time."""
    rng = random.Random(seed)
    calls: list[tuple[datetime, int, dict[str, Any]]] = []
    n = 0

    def add(t: datetime, call: dict[str, Any]) -> None:
        nonlocal n
        n += 1
        call.update(timestamp=_ts(t), messageId=f"demo-{seed}-{n}")
        calls.append((t, n, call))

    for i in range(users):
        uid = f"shopper-{i:05d}"
        name = NAMES[i % len(NAMES)]
        t = START + timedelta(minutes=rng.randrange(days * 24 * 60))
        add(
            t - timedelta(days=rng.randrange(1, 60)),
            {
                "type": "identify",
                "userId": uid,
                "traits": {
                    "first_name": name,
                    "email": f"{name.lower()}.{i}@example.com",
                    "push_enabled": rng.random() < 0.6,
                    "whatsapp_opt_in": rng.random() < 0.3,
                    "sms_opt_in": rng.random() < 0.3,
                    "locale": "en",
                    "timezone": "Asia/Bangkok",
                    "lifecycle": rng.choice(("new", "active", "active", "dormant")),
                },
            },
        )
        if rng.random() < 0.25:
            add(t, {"type": "track", "userId": uid, "event": "Signed Up", "properties": {}})
        category = rng.choice(list(CATEGORIES))
        pid, pname, brand, price = CATEGORIES[category]
        product = {"product_id": pid, "name": pname, "brand": brand, "category": category}
        for k in range(rng.randrange(1, 4)):
            add(
                t + timedelta(minutes=3 * k),
                {
                    "type": "track",
                    "userId": uid,
                    "event": "Product Viewed",
                    "properties": {**product, "price": price},
                },
            )
        t += timedelta(minutes=12)
        if rng.random() < 0.6:
            add(
                t,
                {
                    "type": "track",
                    "userId": uid,
                    "event": "Cart Abandoned",
                    "properties": {
                        "cart_value": price,
                        "item_count": 1,
                        "category": category,
                        "product_id": pid,
                        "product_name": pname,
                    },
                },
            )
            if rng.random() < 0.35:
                t += timedelta(hours=rng.randrange(2, 20))
                add(
                    t,
                    {
                        "type": "track",
                        "userId": uid,
                        "event": "Cart Viewed",
                        "properties": {"cart_id": f"c-{i}", "products": [product]},
                    },
                )
        if rng.random() < 0.3:
            t += timedelta(hours=rng.randrange(1, 48))
            order = {
                "order_id": f"o-{i}",
                "revenue": price,
                "total": price,
                "currency": "THB",
                "products": [{**product, "price": price, "quantity": 1}],
            }
            add(
                t, {"type": "track", "userId": uid, "event": "Order Completed", "properties": order}
            )
            add(
                t + timedelta(days=2),
                {
                    "type": "track",
                    "userId": uid,
                    "event": "Order Delivered",
                    "properties": {"order_id": f"o-{i}"},
                },
            )
            if rng.random() < 0.4:
                again = {**order, "order_id": f"o-{i}-2"}
                add(
                    t + timedelta(days=rng.randrange(4, 20)),
                    {
                        "type": "track",
                        "userId": uid,
                        "event": "Order Completed",
                        "properties": again,
                    },
                )
    return [call for _, _, call in sorted(calls, key=lambda c: (c[0], c[1]))]


def lines(calls: list[dict[str, Any]]) -> Iterator[str]:
    """One JSON line per call."""
    for call in calls:
        yield json.dumps(call) + "\n"


def write_demo(path: Path, users: int, seed: int = 7) -> Path:
    """Write :func:`demo_events` to ``path`` (JSON lines) and return it."""
    path.write_text("".join(lines(demo_events(users, seed))), encoding="utf-8")
    return path


def simulate_demo(folder: Path, users: int, seed: int = 7) -> Path:
    """The store ``journeyc simulate`` makes in ``folder`` of the example project
    (journeys/) and ``users`` demo shoppers: its path."""
    events = write_demo(folder / "demo.jsonl", users=users, seed=seed)
    db = folder / "sim.db"
    project = Path(__file__).resolve().parent.parent / "journeys"
    subprocess.run(
        [
            *(sys.executable, "-m", "journeyc", "simulate", str(project)),
            *("--events", str(events), "--db", str(db)),
        ],
        check=True,
        capture_output=True,
    )
    return db
