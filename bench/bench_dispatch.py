"""Dispatch: a healthy channel's delivery latency while another channel's provider is sick.

    python bench/bench_dispatch.py [--quick] [--seconds S] [--rate R] [--hang S]

Two channels get R sends per second each for S seconds, queued in the outbox as the
engine queues them (rows committed through a store of their own, then the dispatcher
woken, as the engine process does). ``email`` has a healthy provider (each send takes
5 ms, as a nearby HTTP API would). ``push`` has a sick one: 30% of its sends fail
(transient), 5% hang until the provider's socket timeout (``--hang`` seconds; 10 s,
the http and smtp providers' default, or 2 s with ``--quick``), then fail. The
dispatcher runs as the daemon runs it: :meth:`Dispatcher.pump` whenever a lane has an
outcome or :meth:`Dispatcher.next_wake` comes, with the default lane settings
(4 threads, 60 s deadline, breaker after 5 failures in a row for 30 s).

The figure is the healthy channel's delivery latency (row queued → provider accepted),
p50 and p99. The baseline, from the same run: the same healthy channel with the same
load and no sick channel beside it. Before the lanes one dispatcher sent one row at a
time, and the same mix took the healthy channel's p50 from 2 s to 275 s (issue #21).

Goal: the healthy channel's p99 with the sick one beside it within 2× its baseline
(or 50 ms of it, whichever is larger).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Figure, add_common_args, finish, print_machine
from journeyc.channels.base import OutboundMessage, TransientError
from journeyc.serve.dispatcher import Dispatcher, DispatchStats
from journeyc.store.sqlite import Store

HEALTHY_SEND_S = 0.005


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class Healthy:
    """Accepts every send after ``HEALTHY_SEND_S``; notes when it accepted each key."""

    accepted: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def send(self, msg: OutboundMessage) -> None:
        time.sleep(HEALTHY_SEND_S)
        with self.lock:
            self.accepted.setdefault(msg.key, now_ms())

    def close(self) -> None:
        pass


@dataclass
class Sick:
    """Fails 30% of its sends and hangs on 5% until its timeout (decided by the key
    and the try, so every run is the same); accepts the rest after 5 ms."""

    hang_s: float
    tries: dict[str, int] = field(default_factory=dict)
    outcomes: dict[str, int] = field(default_factory=lambda: {"ok": 0, "fail": 0, "hang": 0})
    lock: threading.Lock = field(default_factory=threading.Lock)

    def send(self, msg: OutboundMessage) -> None:
        with self.lock:
            n = self.tries[msg.key] = self.tries.get(msg.key, 0) + 1
        draw = hashlib.blake2b(f"{msg.key}:{n}".encode(), digest_size=2).digest()
        roll = int.from_bytes(draw, "big") % 100
        if roll < 5:
            self._count("hang")
            time.sleep(self.hang_s)
            raise TransientError(f"read timeout after {self.hang_s:g} s")
        time.sleep(HEALTHY_SEND_S)
        if roll < 35:
            self._count("fail")
            raise TransientError("HTTP 503")
        self._count("ok")

    def _count(self, what: str) -> None:
        with self.lock:
            self.outcomes[what] += 1

    def close(self) -> None:
        pass


def queue_rows(store: Store, channel: str, start: int, count: int, at: int) -> list[str]:
    keys = [f"{channel}:u{i}:1:hi" for i in range(start, start + count)]
    with store.transaction() as conn:
        conn.executemany(
            "INSERT INTO outbox (key, journey_id, user_id, step, channel, message, content, "
            "status, next_attempt_at, created_at) VALUES (?, 'bench', ?, 'hi', ?, '', ?, "
            "'queued', ?, ?)",
            [
                (key, f"u{start + i}", channel, json.dumps({"body": "Hello"}), at, at)
                for i, key in enumerate(keys)
            ],
        )
    return keys


@dataclass
class Result:
    latencies_ms: list[float]
    stats: DispatchStats
    channels: dict[str, dict[str, object]]
    sick: dict[str, int]
    seconds: float


def scenario(tmp: Path, name: str, seconds: float, rate: int, hang_s: float | None) -> Result:
    """Run one scenario: the healthy channel alone (``hang_s`` None) or beside the
    sick one. Returns the healthy channel's latencies and the dispatcher's counts."""
    db = tmp / f"{name}.db"
    Store.open(db).close()
    healthy = Healthy()
    sick = Sick(hang_s or 0.0)
    providers: dict[str, object] = {"email": healthy}
    if hang_s is not None:
        providers["push"] = sick
    wake = threading.Event()
    stop = threading.Event()
    dispatcher = Dispatcher.open(db, providers, on_ready=wake.set)  # type: ignore[arg-type]
    totals = [DispatchStats()]

    def drive() -> None:
        # The daemon's dispatch job: pump, then sleep until woken or next_wake.
        while not stop.is_set():
            wake.clear()
            totals[0] += dispatcher.pump(now_ms())
            due = dispatcher.next_wake(now_ms())
            wait = 0.5 if due is None else max(0.0, (due - now_ms()) / 1000)
            wake.wait(min(wait, 0.5))

    driver = threading.Thread(target=drive, name="bench-dispatch")
    driver.start()
    producer = Store.open(db)
    queued: dict[str, int] = {}
    began = time.perf_counter()
    tick = 0.02  # rows are queued 50 times a second, as engine runs would
    per_tick = max(1, round(rate * tick))
    n = 0
    try:
        while time.perf_counter() - began < seconds:
            at = now_ms()
            for key in queue_rows(producer, "email", n, per_tick, at):
                queued[key] = at
            if hang_s is not None:
                queue_rows(producer, "push", n, per_tick, at)
            n += per_tick
            wake.set()
            time.sleep(max(0.0, began + (n / per_tick) * tick - time.perf_counter()))
        deadline = time.monotonic() + 30
        while len(healthy.accepted) < len(queued) and time.monotonic() < deadline:
            time.sleep(0.05)
        elapsed = time.perf_counter() - began
        channels = dispatcher.channels(now_ms())
    finally:
        stop.set()
        wake.set()
        driver.join()
        producer.close()
        dispatcher.close(drain_s=0)
    missing = len(queued) - len(healthy.accepted)
    assert missing == 0, f"{missing} healthy sends not delivered"
    latencies = [float(healthy.accepted[k] - at) for k, at in queued.items()]
    return Result(latencies, totals[0], channels, dict(sick.outcomes), elapsed)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    add_common_args(ap, "8 s per scenario, 2 s hangs")
    ap.add_argument("--seconds", type=float, default=None, help="seconds of load (default 30)")
    ap.add_argument("--rate", type=int, default=50, help="sends per second per channel")
    ap.add_argument("--hang", type=float, default=None, help="seconds a hung send takes (10)")
    args = ap.parse_args()
    seconds = args.seconds if args.seconds is not None else (8.0 if args.quick else 30.0)
    hang_s = args.hang if args.hang is not None else (2.0 if args.quick else 10.0)
    print_machine()
    print(
        f"dispatch: {args.rate} sends/s per channel for {seconds:g} s; sick push provider "
        f"fails 30%, hangs {hang_s:g} s on 5%; healthy email provider 5 ms a send"
    )
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        scenario(tmp, "warmup", 1.0, args.rate, None)
        base = scenario(tmp, "alone", seconds, args.rate, None)
        mixed = scenario(tmp, "beside_sick", seconds, args.rate, hang_s)

    b50, b99 = pct(base.latencies_ms, 0.5), pct(base.latencies_ms, 0.99)
    m50, m99 = pct(mixed.latencies_ms, 0.5), pct(mixed.latencies_ms, 0.99)
    push = mixed.channels.get("push", {})
    print(
        f"healthy alone: {len(base.latencies_ms)} sends, p50 {b50:.0f} ms, p99 {b99:.0f} ms, "
        f"mean {statistics.fmean(base.latencies_ms):.1f} ms"
    )
    print(
        f"healthy beside the sick provider: {len(mixed.latencies_ms)} sends, p50 {m50:.0f} ms, "
        f"p99 {m99:.0f} ms, max {max(mixed.latencies_ms):.0f} ms"
    )
    print(f"sick provider: {mixed.sick}; dispatcher {mixed.stats}; push lane at the end {push}")
    goal_ms = max(2 * b99, b99 + 50)
    figures = [
        Figure(
            "healthy channel delivery p50, sick beside",
            m50,
            "ms",
            b50,
            "healthy alone",
        ),
        Figure(
            "healthy channel delivery p99, sick beside",
            m99,
            "ms",
            b99,
            "healthy alone",
            "<= 2x alone (or +50 ms)",
            m99 <= goal_ms,
        ),
        Figure("sick channel: sends to retry", float(mixed.stats.retried), "rows"),
        Figure("sick channel: rows put off by its breaker", float(mixed.stats.put_off), "rows"),
    ]
    finish(figures, args)


if __name__ == "__main__":
    main()
