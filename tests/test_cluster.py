"""Several `journeyc serve` workers on one PostgreSQL store (issue #18's proof).

Three workers share the users' partitions; a stream of events with waits goes to all
three (each batch to the next worker in turn); one worker is SIGKILLed mid-stream and
another is added. Afterwards every acknowledged event was processed once, every due
send was queued once and reached the receiver under its idempotency key, the dead
worker's partitions were taken over within its lease time, and the newcomer got its
share.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from journeyc.store.partitions import PARTITIONS
from tests.daemon_helpers import Daemon, clean_env, poll, write_file
from tests.test_channels import HttpReceiver
from tests.test_daemon_crash import JOURNEY, batch_for, post_batch

pytestmark = pytest.mark.e2e

USERS = 120
USERS_PER_BATCH = 5
LEASE_TTL_S = 3.0


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    http = HttpReceiver()
    yield http
    http.stop()


class Cluster:
    """The workers of the test, each a `journeyc serve --store URL` process."""

    def __init__(self, tmp_path: Path, url: str) -> None:
        self.tmp_path = tmp_path
        self.url = url
        self.workers: list[Daemon] = []

    def add(self) -> Daemon:
        args = [
            str(self.tmp_path / "journeys"),
            "--config",
            str(self.tmp_path / "journeyc.toml"),
            "--store",
            self.url,
            "--port",
            "0",
        ]
        worker = Daemon(args, self.tmp_path, name=f"worker{len(self.workers)}")
        self.workers.append(worker)
        return worker.start(timeout=60)

    def live(self) -> list[Daemon]:
        return [w for w in self.workers if w.proc is not None and w.proc.poll() is None]

    def kill_all(self) -> None:
        for worker in self.workers:
            worker.kill()


def cluster_status(worker: Daemon) -> dict[str, Any]:
    status: dict[str, Any] = worker.admin("/v1/status")
    cluster: dict[str, Any] = status["daemon"]["cluster"]
    return cluster


def query(url: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(sql).fetchall()  # type: ignore[arg-type]


def holders(url: str) -> dict[int, str]:
    """Each partition with a live lease, and its worker."""
    rows = query(
        url,
        "SELECT partition, worker_id FROM leases"
        " WHERE expires_at > (extract(epoch FROM clock_timestamp()) * 1000)::bigint",
    )
    return {int(p): str(w) for p, w in rows}


def test_three_workers_one_killed_one_added_lose_and_double_nothing(
    tmp_path: Path, postgres_url: str, receiver: HttpReceiver
) -> None:
    write_file(tmp_path / "journeys" / "main.journey", JOURNEY)
    write_file(
        tmp_path / "journeyc.toml",
        f'[channels.push]\nprovider = "http"\nurl = "{receiver.url}/push"\n\n'
        f'[cluster]\nlease_ttl = "{LEASE_TTL_S:g}s"\n',
    )
    cluster = Cluster(tmp_path, postgres_url)
    try:
        for _ in range(3):
            cluster.add()

        def shared_out() -> bool:
            held = Counter(holders(postgres_url).values())
            return len(held) == 3 and sum(held.values()) == PARTITIONS

        poll(shared_out, 30, "the partitions to be shared out among three workers", 0.2)
        shown = subprocess.run(
            [sys.executable, "-m", "journeyc", "status", "--store", postgres_url, "--json"],
            capture_output=True,
            text=True,
            env=clean_env(),
            check=True,
            timeout=60,
        )
        report = json.loads(shown.stdout)["cluster"]
        assert sorted(len(w["partitions"]) for w in report["workers"]) == [21, 21, 22]
        assert report["unheld"] == []
        victim = cluster.workers[1]
        victim_id = cluster_status(victim)["worker_id"]

        chunks = [
            range(start, min(start + USERS_PER_BATCH, USERS))
            for start in range(0, USERS, USERS_PER_BATCH)
        ]
        acknowledged: list[int] = []
        killed_at = 0.0
        for index, users in enumerate(chunks):
            if index == len(chunks) // 3:
                assert victim.proc is not None
                victim.proc.kill()  # SIGKILL: the engine process dies with it
                victim.proc.wait(10)
                killed_at = time.monotonic()
            if index == 2 * len(chunks) // 3:
                cluster.add()
            body = batch_for(users)
            for attempt in range(20):
                live = cluster.live()
                if post_batch(live[(index + attempt) % len(live)], body):
                    break
                time.sleep(0.05)
            else:
                raise AssertionError(f"batch {index} was never acknowledged")
            acknowledged.extend(users)
            time.sleep(0.05)

        # The dead worker's partitions have live holders again, within its lease's
        # time to live and a beat of the others (a beat is a third of it) plus slack.
        def taken_over() -> float | None:
            held = holders(postgres_url)
            if len(held) == PARTITIONS and victim_id not in held.values():
                return time.monotonic() - killed_at
            return None

        took = poll(taken_over, 4 * LEASE_TTL_S, "the dead worker's partitions to move", 0.1)
        assert took <= LEASE_TTL_S * (1 + 1 / 3) + 2.0, took

        def drained() -> bool:
            (row,) = query(
                postgres_url,
                "SELECT count(*), count(*) FILTER (WHERE status <> 'sent') FROM outbox",
            )
            return row == (len(acknowledged), 0)

        poll(drained, 60, "the outbox to drain", interval=0.2)

        # The workers' upkeep: the reports' sums written as deltas are folded (every
        # 5 s) into the totals, the same sums.
        def folded() -> bool:
            (row,) = query(
                postgres_url,
                "SELECT (SELECT count(*) FROM outbox_counts_deltas),"
                " (SELECT n FROM outbox_counts WHERE status = 'sent')",
            )
            return row == (0, len(acknowledged))

        poll(folded, 30, "the sums to be folded", interval=0.2)

        # The newcomer holds its share (three live workers: 21 or 22 partitions).
        newcomer = cluster.workers[3]

        def has_share() -> bool:
            return len(cluster_status(newcomer)["partitions"]) >= PARTITIONS // 3

        poll(has_share, 6 * LEASE_TTL_S, "the newcomer to get its share", 0.2)
        for worker in cluster.live():
            assert worker.stop() == 0
        assert query(postgres_url, "SELECT count(*) FROM leases") == [(0,)]  # given back
    finally:
        cluster.kill_all()

    user_ids = {f"u{n:03d}" for n in acknowledged}
    # Every event is in the log once, and each ping drove exactly one entry.
    assert query(postgres_url, "SELECT count(*), count(DISTINCT message_id) FROM events") == [
        (2 * USERS, 2 * USERS)
    ]
    entries = Counter(
        user
        for (user,) in query(postgres_url, "SELECT user_id FROM entries WHERE journey_id = 'ping'")
    )
    assert set(entries) == user_ids and set(entries.values()) == {1}
    enters = Counter(
        user
        for (user,) in query(
            postgres_url,
            "SELECT user_id FROM actions WHERE journey_id = 'ping' AND action = 'enter'",
        )
    )
    assert enters == Counter(user_ids)
    assert query(postgres_url, "SELECT count(*) FROM instances") == [(0,)]
    # Every send was queued once and reached the receiver under its key.
    outbox = dict(query(postgres_url, "SELECT key, status FROM outbox"))
    assert set(outbox) == {f"ping:{user}:1:pong" for user in user_ids}
    received = {
        r.headers.get("idempotency-key") for r in list(receiver.requests) if r.path == "/push"
    }
    assert received == set(outbox)
