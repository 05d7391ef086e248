"""The daemon's dispatcher: its own store connection, and channels that do not wait
for each other.

"database is locked" was logged by the dispatcher after restarts: it shared the
engine's connection, and a read the engine thread had open on it (outside a
transaction) held a snapshot; once the API process committed, the dispatcher
thread's ``BEGIN IMMEDIATE`` on the same connection failed at once
(SQLITE_BUSY_SNAPSHOT, which no busy timeout waits out). At start both catch up
together, so that is when it showed. The first test holds such a read open and runs
the dispatcher job, as the engine thread and the dispatcher thread did.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from journeyc.config import Config
from journeyc.serve.daemon import ServeSettings
from journeyc.serve.worker import Worker
from journeyc.store.sqlite import Store
from tests.daemon_helpers import Daemon, poll, write_file
from tests.test_channels import HttpReceiver
from tests.test_dispatcher import SlowHttp

GREET = """\
journey greet "Greets"
  when greeted
  entry always
  send push "Hello" as hi
"""

BOTH = """\
journey both "A push and a webhook at once"
  when pinged
  entry always
  send push "Push {{ event.n }}" as push
  send webhook "Hook {{ event.n }}" as hook
"""


def queue_row(store: Store, key: str, at: int) -> None:
    with store.transaction() as conn:
        conn.execute(
            "INSERT INTO outbox (key, journey_id, user_id, step, channel, message, content, "
            "status, next_attempt_at, created_at) VALUES (?, 'greet', 'u1', 'hi', 'push', "
            "'', ?, 'queued', ?, ?)",
            (key, json.dumps({"body": "Hello"}), at, at),
        )


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[Worker]:
    write_file(tmp_path / "journeys" / "greet.journey", GREET)
    config = Config.model_validate(
        {"channels": {"push": {"provider": "file", "path": str(tmp_path / "push.jsonl")}}}
    )
    started = Worker(ServeSettings(tmp_path / "journeys", tmp_path / "store.db", config, port=0))
    started.start()
    try:
        yield started
    finally:
        started.stop()


def test_a_read_open_on_the_engines_connection_does_not_lock_the_dispatcher_out(
    worker: Worker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = worker.store
    # Let the start-up runs end, so that nothing else uses the connection.
    poll(lambda: worker.status()["engine"]["runs"] >= 1, 10, "the first engine run")
    time.sleep(0.3)
    with store.transaction() as conn:
        conn.executemany(
            "INSERT INTO settings (name, value) VALUES (?, ?)", [(f"n{i}", "v") for i in range(3)]
        )
    # The engine thread in the middle of a read outside a transaction.
    reading = store.conn.execute("SELECT name FROM settings")
    assert reading.fetchone() is not None
    # Meanwhile the API process commits (a send queued, through its own store).
    now = int(time.time() * 1000)
    with Store.open(tmp_path / "store.db") as api:
        queue_row(api, "k1", now)
    caplog.set_level(logging.INFO)
    worker._dispatch(now)
    reading.close()
    assert "database is locked" not in caplog.text

    def sent() -> bool:
        worker._dispatch(int(time.time() * 1000))  # records the lane's outcome
        with Store.open(tmp_path / "store.db") as reader:
            row = reader.conn.execute("SELECT status FROM outbox WHERE key = 'k1'").fetchone()
        return bool(row == ("sent",))

    poll(sent, 5, "the send to be marked sent")
    assert worker._dispatch_failures == 0
    assert "database is locked" not in caplog.text


def test_a_change_the_store_was_too_busy_to_deploy_is_deployed_at_the_next_poll(
    worker: Worker, tmp_path: Path
) -> None:
    # Another writer holds the write lock past lock_timeout while the watcher hands
    # over a change: the deploy fails as busy. The change must not be lost until the
    # next edit of the project (the watcher only logged the error).
    poll(lambda: worker.status()["engine"]["runs"] >= 1, 10, "the first engine run")
    before = worker.versions["greet"]
    changed = tmp_path / "journeys" / "greet.journey"
    worker.store.lock_timeout_s = 0.1
    # The test hands the change over itself: the worker's own watcher, had it seen
    # the change once the lock was released, would deploy it before the poll.
    worker.watcher.stop()
    with Store.open(tmp_path / "store.db") as other, other.transaction():
        write_file(changed, GREET.replace('"Hello"', '"Hello again"'))
        worker.reload({str(changed)})  # logged, not raised: the watcher goes on
    assert worker.versions["greet"] == before
    worker._poll_job()
    assert worker.versions["greet"] != before


@pytest.mark.e2e
def test_a_hung_push_provider_does_not_delay_the_webhook_channel(tmp_path: Path) -> None:
    hung = SlowHttp(30)
    hooks = HttpReceiver()
    write_file(tmp_path / "journeys" / "both.journey", BOTH)
    write_file(
        tmp_path / "journeyc.toml",
        f"""\
[reachability]
push = "true"
webhook = "true"

[channels.push]
provider = "http"
url = "{hung.url("/hang")}"
timeout = 20
deadline = 25
breaker_failures = 2

[channels.webhook]
provider = "http"
url = "{hooks.url}/hook"
""",
    )
    daemon = Daemon(
        [
            str(tmp_path / "journeys"),
            "--config",
            str(tmp_path / "journeyc.toml"),
            "--db",
            str(tmp_path / "store.db"),
            "--port",
            "0",
        ],
        tmp_path,
    )
    try:
        daemon.start()
        for n in range(8):
            daemon.track(f"u{n}", "pinged", n=n)
        # Within 10 s: a webhook waiting behind a hung push would wait its 20 s timeout.
        poll(lambda: len(hooks.requests) >= 8, 10, "the webhook sends")
        status = daemon.admin("/v1/status")
        channels = status["daemon"]["dispatch"]["channels"]
        assert channels["push"]["running"] == 4  # its four threads hang
        assert channels["push"]["waiting"] == 4
        assert channels["webhook"]["breaker"] == "closed"
        metrics = httpx.get(
            f"{daemon.url}/metrics",
            headers={"Authorization": f"Bearer {daemon.admin_token}"},
            timeout=10,
        ).text
        assert 'journeyc_channel_breaker_state{channel="push"} 0.0' in metrics
    finally:
        daemon.kill()
        hung.stop()
        hooks.stop()
