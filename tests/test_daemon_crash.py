"""Crash safety of `journeyc serve`: SIGKILL at random moments loses and doubles nothing.

Events stream into the daemon over ``POST /v1/batch`` while a seeded schedule kills
it with SIGKILL (mid-request, mid-timer, mid-send) and the test restarts it on the
same SQLite file. A batch that was not acknowledged is sent again (its message ids
make the copy a duplicate the store drops); an acknowledged batch never is. In the
end every event was processed exactly once and every send reached the receiver,
the duplicates of a crash between the provider's acceptance and the mark carrying
the same ``Idempotency-Key``.

The dispatcher's claim lease is 15 minutes (not configurable), so a row claimed by
a process that was killed would wait that long. Before each restart the test does
what the passing of time would: it ends the leases of the rows still queued.
"""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.daemon_helpers import Daemon, poll, write_file
from tests.test_channels import HttpReceiver

pytestmark = pytest.mark.e2e

SEED = 20240611
USERS = 150
USERS_PER_BATCH = 5
KILLS_WHILE_STREAMING = 3

JOURNEY = """\
journey ping "Pong a second after a ping"
  when ping
  entry always
  wait 1s as pause
  send push "Pong {{ event.n }}" as pong
"""


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    http = HttpReceiver()
    yield http
    http.stop()


class Restarter:
    """The daemon under test, killed and restarted on the same store."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.db = tmp_path / "store.db"
        self.lock = threading.Lock()
        self.daemons: list[Daemon] = []
        self.kills = 0

    @property
    def current(self) -> Daemon:
        return self.daemons[-1]

    def start(self) -> Daemon:
        with self.lock:
            if self.daemons:
                self._end_leases()
            args = [
                str(self.tmp_path / "journeys"),
                "--config",
                str(self.tmp_path / "journeyc.toml"),
                "--db",
                str(self.db),
                "--port",
                "0",
            ]
            daemon = Daemon(args, self.tmp_path, name=f"daemon{len(self.daemons)}")
            self.daemons.append(daemon)
            daemon.start()
            return daemon

    def alive(self) -> bool:
        proc = self.current.proc
        return proc is not None and proc.poll() is None

    def sigkill(self) -> None:
        """SIGKILL the current process (if it runs) and reap it."""
        with self.lock:
            proc = self.current.proc
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(10)
                self.kills += 1

    def kill_later(self, delay: float) -> threading.Timer:
        timer = threading.Timer(delay, self.sigkill)
        timer.daemon = True
        timer.start()
        return timer

    def _end_leases(self) -> None:
        """Make every queued row due now, as the 15-minute claim lease running out would."""
        now_ms = int(time.time() * 1000)
        with sqlite3.connect(self.db, timeout=10) as conn:
            conn.execute(
                "UPDATE outbox SET next_attempt_at = ? "
                "WHERE status = 'queued' AND next_attempt_at > ?",
                (now_ms, now_ms),
            )
        conn.close()

    def kill_all(self) -> None:
        for daemon in self.daemons:
            daemon.kill()


def batch_for(users: range) -> dict[str, Any]:
    calls: list[dict[str, Any]] = []
    for n in users:
        user = f"u{n:03d}"
        calls.append(
            {
                "type": "identify",
                "userId": user,
                "messageId": f"id-{user}",
                "traits": {"push_enabled": True},
            }
        )
        calls.append(
            {
                "type": "track",
                "userId": user,
                "event": "ping",
                "messageId": f"ev-{user}",
                "properties": {"n": n},
            }
        )
    return {"batch": calls}


def post_batch(daemon: Daemon, body: dict[str, Any]) -> bool:
    """True only when the daemon acknowledged the batch with a 200."""
    try:
        reply = httpx.post(
            f"{daemon.url}/v1/batch", json=body, auth=(daemon.write_key, ""), timeout=5
        )
    except httpx.HTTPError:
        return False
    return reply.status_code == 200


def query(db: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_sigkill_at_random_moments_loses_nothing_and_sends_each_key(
    tmp_path: Path, receiver: HttpReceiver
) -> None:
    rng = random.Random(SEED)
    write_file(tmp_path / "journeys" / "main.journey", JOURNEY)
    write_file(
        tmp_path / "journeyc.toml",
        f'[channels.push]\nprovider = "http"\nurl = "{receiver.url}/push"\n',
    )
    chunks = [
        range(start, min(start + USERS_PER_BATCH, USERS))
        for start in range(0, USERS, USERS_PER_BATCH)
    ]
    kill_before = set(rng.sample(range(1, len(chunks)), KILLS_WHILE_STREAMING))
    restarter = Restarter(tmp_path)
    try:
        restarter.start()
        acknowledged: list[int] = []
        retried = 0
        for index, users in enumerate(chunks):
            body = batch_for(users)
            if index in kill_before:
                # Some kills land mid-request, some between requests.
                restarter.kill_later(rng.uniform(0.0, 0.03))
            for _attempt in range(10):
                if not restarter.alive():
                    restarter.start()
                if post_batch(restarter.current, body):
                    break
                retried += 1
                time.sleep(0.05)
            else:
                raise AssertionError(f"batch {index} was never acknowledged")
            acknowledged.extend(users)
            time.sleep(rng.uniform(0.02, 0.12))

        # One more kill while timers fire and sends go out, then the last restart.
        time.sleep(rng.uniform(0.3, 1.0))
        restarter.sigkill()
        assert restarter.kills >= KILLS_WHILE_STREAMING, restarter.kills
        final = restarter.start()

        def drained() -> bool:
            (row,) = query(
                restarter.db,
                "SELECT count(*), count(*) FILTER (WHERE status IN ('queued', 'failed')) "
                "FROM outbox",
            )
            return row == (len(acknowledged), 0)

        poll(drained, 30, "the outbox to drain", interval=0.2)
        assert final.stop() == 0
    finally:
        restarter.kill_all()

    assert sorted(acknowledged) == list(range(USERS))
    db = restarter.db
    user_ids = {f"u{n:03d}" for n in acknowledged}

    # Every event is in the log once, and each drove exactly one entry.
    assert query(db, "SELECT count(*), count(DISTINCT message_id) FROM events") == [
        (2 * USERS, 2 * USERS)
    ]
    entries = Counter(
        user for (user,) in query(db, "SELECT user_id FROM entries WHERE journey_id = 'ping'")
    )
    assert set(entries) == user_ids
    assert set(entries.values()) == {1}
    enters = Counter(
        user
        for (user,) in query(
            db, "SELECT user_id FROM actions WHERE journey_id = 'ping' AND action = 'enter'"
        )
    )
    assert enters == Counter(user_ids)
    assert query(db, "SELECT count(*) FROM instances") == [(0,)]  # every one ended

    # Every send went out, none is left queued or failed, each key reached the receiver.
    outbox = dict(query(db, "SELECT key, status FROM outbox"))
    assert set(outbox) == {f"ping:{user}:1:pong" for user in user_ids}
    assert set(outbox.values()) == {"sent"}
    received = Counter(
        r.headers.get("idempotency-key") for r in list(receiver.requests) if r.path == "/push"
    )
    assert set(received) == set(outbox)
    bodies = {
        r.headers["idempotency-key"]: r.json()["content"]["body"]
        for r in list(receiver.requests)
        if r.path == "/push"
    }
    assert all(bodies[f"ping:u{n:03d}:1:pong"] == f"Pong {n}" for n in acknowledged)
    duplicates = sum(received.values()) - len(received)
    print(
        f"kills={restarter.kills} restarts={len(restarter.daemons) - 1} "
        f"batch retries={retried} pushes={sum(received.values())} "
        f"distinct keys={len(received)} duplicates={duplicates}"
    )
    for daemon in restarter.daemons:
        assert "Traceback" not in daemon.log(), daemon.log()
