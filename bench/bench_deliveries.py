"""Delivery reports through the webhook's work, beside ingesting the same events.

    python bench/bench_deliveries.py [--quick] [--reports N]

A store holds N sent messages (outbox rows, e-mail and push). The reports on them
(delivered, opened, clicked, a few hard bounces) go through
:meth:`DeliveryWebhook.receive <journeyc.serve.deliveries.DeliveryWebhook.receive>` in
bodies of 500, as ``POST /v1/deliveries`` runs it once the signature holds: validate,
look the sends up, insert the ``deliveries`` rows, log the ``message_*`` events (and
the consent identifies), one transaction per body. The baseline is
``Store.append_events`` of the same events in the same batches: what ingesting them
as Segment calls would cost the store. A second figure sends the same bodies again
(every report a repeat: nothing is written). Each figure is the median of several
runs, each on a fresh copy of the seeded store.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Figure, add_common_args, finish, print_machine
from journeyc.events import Event
from journeyc.serve.deliveries import DeliveryWebhook
from journeyc.store.sqlite import Store

BODY = 500
"""Reports per request body (a provider's batch)."""

T0 = 1_767_607_200_000  # 2026-01-05T10:00:00Z


def seed(path: Path, n: int) -> list[dict[str, Any]]:
    """A store with ``n`` sent messages; the reports on them, one per message."""
    rng = random.Random(19)
    rows = []
    reports: list[dict[str, Any]] = []
    for i in range(n):
        key = f"cart:u{i}:1:nudge"
        channel = "email" if i % 2 else "push"
        rows.append((key, f"u{i}", channel))
        kind = rng.choices(["delivered", "opened", "clicked", "bounced"], [50, 30, 15, 5])[0]
        report: dict[str, Any] = {"key": key, "event": kind, "id": f"evt-{i}"}
        if kind == "clicked":
            report["url"] = "https://maison.example/cart"
        if kind == "bounced":
            report["bounce"] = "hard"
        reports.append(report)
    with Store.open(path) as store, store.transaction() as conn:
        conn.executemany(
            "INSERT INTO outbox (key, journey_id, user_id, step, channel, message, status,"
            " created_at, sent_at) VALUES (?, 'cart', ?, 'nudge', ?, 'cart_reminder', 'sent',"
            f" {T0}, {T0})",
            rows,
        )
        conn.executemany(
            "INSERT INTO profiles (user_id, traits, updated_at) VALUES (?, '{}', 0)",
            [(user,) for _, user, _ in rows],
        )
    return reports


def as_events(reports: list[dict[str, Any]]) -> list[Event]:
    """The track events the reports log, as ingest would append them."""
    return [
        Event(
            f"m-{r['id']}",
            r["key"].split(":")[1],
            "track",
            f"message_{r['event']}",
            T0,
            {"journey": "cart", "step": "nudge", "message": "cart_reminder", "key": r["key"]},
            T0,
        )
        for r in reports
    ]


def runs_of(seeded: Path, work: Callable[[Store], None], runs: int, again: bool) -> float:
    """Median seconds of ``work`` on a fresh copy of the seeded store (``again``: after
    one unmeasured ``work`` on that copy)."""
    samples = []
    for _ in range(runs + 1):  # the first is a warm-up
        copy = seeded.with_name("copy.db")
        shutil.copyfile(seeded, copy)
        with Store.open(copy) as store:
            if again:
                work(store)
            t0 = time.perf_counter()
            work(store)
            samples.append(time.perf_counter() - t0)
    return statistics.median(samples[1:])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    add_common_args(ap, "10k reports, 3 runs")
    ap.add_argument("--reports", type=int, default=None, help="reports (default 100k, 10k quick)")
    args = ap.parse_args(argv)
    n = args.reports or (10_000 if args.quick else 100_000)
    runs = 3 if args.quick else 5
    print_machine()
    print(f"reports: {n} in bodies of {BODY}, median of {runs} runs after a warm-up")

    with tempfile.TemporaryDirectory() as tmp:
        seeded = Path(tmp) / "store.db"
        reports = seed(seeded, n)
        bodies = [{"deliveries": reports[i : i + BODY]} for i in range(0, n, BODY)]
        batches = [as_events(b["deliveries"]) for b in bodies]

        def receive(store: Store) -> None:
            webhook = DeliveryWebhook(store)
            for body in bodies:
                webhook.receive(body, T0)

        def append(store: Store) -> None:
            for batch in batches:
                store.append_events(batch)

        # Checked on a copy of its own: the seeded store stays as seeded.
        shutil.copyfile(seeded, seeded.with_name("check.db"))
        with Store.open(seeded.with_name("check.db")) as check:
            new = sum(DeliveryWebhook(check).receive(b, T0)[0].new for b in bodies)
        if new != n:
            print(f"expected {n} new reports, got {new}", file=sys.stderr)
            return 1

        webhook_s = runs_of(seeded, receive, runs, again=False)
        repeat_s = runs_of(seeded, receive, runs, again=True)
        ingest_s = runs_of(seeded, append, runs, again=False)

    print(f"stages: webhook {webhook_s:.3f} s, repeats {repeat_s:.3f} s, ingest {ingest_s:.3f} s")
    finish(
        [
            Figure(
                "deliveries: new reports through the webhook",
                n / webhook_s,
                "reports/s",
                n / ingest_s,
                "append_events",
            ),
            Figure(
                "deliveries: repeated reports (nothing new)",
                n / repeat_s,
                "reports/s",
                n / webhook_s,
                "new reports",
            ),
        ],
        args,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
