"""End-to-end `journeyc serve`: the daemon as a real process, real receivers.

Email goes to an aiosmtpd server and push to an HTTP receiver, both on 127.0.0.1;
the store is a SQLite file in a temporary directory. Every wait is a poll with a
deadline.
"""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from journeyc.store.sqlite import Store
from tests.daemon_helpers import Daemon, clean_env, poll, serve_once, write_file
from tests.test_channels import HttpReceiver, HttpRequest, SmtpReceiver, free_port

pytestmark = pytest.mark.e2e

PING = """\
journey ping "Pong two seconds after a ping"
  when pinged
  entry always
  wait 2s as pause
  send push "Pong {{ event.n }}" as pong

journey mail "A mail at once"
  when mailed
  entry always
  send email welcome as hello

message welcome
  email
    subject "Hello {{ user.name }}"
    text "Welcome aboard"
"""


def push_journey(body: str, message: str = "") -> str:
    target = message or f'"{body}"'
    return f"""\
journey greet "Greets"
  when greeted
  entry always
  send push {target} as hi
"""


@pytest.fixture
def receivers() -> Iterator[tuple[HttpReceiver, SmtpReceiver]]:
    http, smtp = HttpReceiver(), SmtpReceiver()
    yield http, smtp
    http.stop()
    smtp.stop()


def project(tmp_path: Path, text: str, receivers: tuple[HttpReceiver, SmtpReceiver]) -> Path:
    """A project dir and a journeyc.toml routing push to HTTP and email to SMTP."""
    http, smtp = receivers
    write_file(tmp_path / "journeys" / "main.journey", text)
    write_file(
        tmp_path / "journeyc.toml",
        f"""\
[channels.push]
provider = "http"
url = "{http.url}/push"

[channels.email]
provider = "smtp"
host = "127.0.0.1"
port = {smtp.port}
from = "shop@example.com"
""",
    )
    return tmp_path


def serve_args(tmp_path: Path) -> list[str]:
    return [
        str(tmp_path / "journeys"),
        "--config",
        str(tmp_path / "journeyc.toml"),
        "--db",
        str(tmp_path / "store.db"),
        "--port",
        "0",
    ]


def pushes(http: HttpReceiver) -> list[HttpRequest]:
    return [r for r in list(http.requests) if r.path == "/push"]


def metric(text: str, name: str) -> float:
    found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert found, f"no {name} in /metrics"
    return float(found.group(1))


# ---------------------------------------------------------------- delivery and shutdown


def test_a_timer_pushes_over_http_an_email_goes_by_smtp_and_sigterm_exits_0(
    tmp_path: Path, receivers: tuple[HttpReceiver, SmtpReceiver], daemons: list[Daemon]
) -> None:
    http, smtp = receivers
    project(tmp_path, PING, receivers)
    daemon = Daemon(serve_args(tmp_path), tmp_path)
    daemons.append(daemon)
    daemon.start()
    daemon.identify("u1", push_enabled=True, email="ann@example.com", name="Ann")

    posted = time.monotonic()
    daemon.track("u1", "pinged", n=7)
    daemon.track("u1", "mailed")

    # The email has no wait: it is sent at once.
    rcpts, mail = poll(lambda: smtp.mails and smtp.mails[0], 10, "the email")
    assert rcpts == ["ann@example.com"]
    assert mail["Subject"] == "Hello Ann"
    assert mail["Idempotency-Key"] == "mail:u1:1:hello"

    # The push waits two seconds, then arrives within a few.
    (push,) = poll(lambda: pushes(http), 10, "the push")
    waited = time.monotonic() - posted
    assert 1.9 <= waited < 6, waited
    assert push.headers["idempotency-key"] == "ping:u1:1:pong"
    assert push.json()["content"] == {"body": "Pong 7"}

    assert httpx.get(f"{daemon.url}/healthz").json() == {"ok": True}
    journeys = {j["id"]: j for j in daemon.admin("/v1/journeys")["journeys"]}
    assert set(journeys) == {"mail", "ping"}
    assert journeys["ping"]["sends"]["sent"] == {"push": 1}
    assert [v["active"] for v in journeys["ping"]["versions"]] == [True]
    metrics = httpx.get(f"{daemon.url}/metrics").text
    assert metric(metrics, "journeyc_engine_runs_total") >= 2
    assert metric(metrics, "journeyc_timer_lateness_seconds_count") == 1
    assert metric(metrics, "journeyc_timer_lateness_seconds_sum") < 1.0
    assert metric(metrics, "journeyc_engine_run_seconds_count") >= 2
    assert metric(metrics, 'journeyc_cpu_seconds_total{part="ingest"}') > 0
    assert metric(metrics, 'journeyc_cpu_seconds_total{part="engine"}') > 0
    assert metric(metrics, "process_cpu_seconds_total") > 0
    status = daemon.admin("/v1/status")["daemon"]
    assert status["journeys"].keys() == {"mail", "ping"}
    assert status["dispatch"]["sent"] == 2
    # Every time the API answers with is ISO-8601 UTC with milliseconds.
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
    times = [status["started_at"], status["last_deploy_at"], status["engine"]["last_run"]["at"]]
    times += [v["deployed_at"] for j in journeys.values() for v in j["versions"]]
    assert all(re.fullmatch(stamp, t) for t in times), times

    # Events that `journeyc ingest` writes into the same store are picked up.
    events = tmp_path / "more.jsonl"
    events.write_text(
        json.dumps({"type": "identify", "userId": "u2", "traits": {"email": "bo@example.com"}})
        + "\n"
        + json.dumps({"type": "track", "userId": "u2", "event": "mailed"})
        + "\n"
    )
    ingest = subprocess.run(
        [
            sys.executable,
            "-m",
            "journeyc",
            "ingest",
            str(events),
            "--db",
            str(tmp_path / "store.db"),
        ],
        capture_output=True,
        text=True,
        env=clean_env(),
        check=False,
    )
    assert ingest.returncode == 0, ingest.stderr
    poll(lambda: len(smtp.mails) == 2, 10, "the email of the ingested event")
    assert smtp.mails[1][0] == ["bo@example.com"]

    stopping = time.monotonic()
    assert daemon.stop(signal.SIGTERM) == 0
    assert time.monotonic() - stopping < 5
    assert "stopping (SIGTERM)" in daemon.log()
    assert "Traceback" not in daemon.log()


def test_timers_that_came_due_while_down_fire_at_once_after_a_restart(
    tmp_path: Path, receivers: tuple[HttpReceiver, SmtpReceiver], daemons: list[Daemon]
) -> None:
    http, _ = receivers
    project(tmp_path, PING, receivers)
    first = Daemon(serve_args(tmp_path), tmp_path, name="first")
    daemons.append(first)
    first.start()
    first.identify("u1", push_enabled=True)
    first.track("u1", "pinged", n=1)

    def waiting() -> str | None:
        user = first.admin("/v1/users/u1")
        live = [j for j in user["journeys"] if j["journey_id"] == "ping"]
        return live[0]["wake_at"] if live and live[0]["status"] == "waiting" else None

    wake_at = poll(waiting, 10, "u1 to wait in ping")
    # The API's times are ISO-8601 UTC with milliseconds, like its other times.
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", wake_at), wake_at
    wake_s = datetime.fromisoformat(wake_at.replace("Z", "+00:00")).timestamp()
    assert first.stop(signal.SIGINT) == 0
    assert pushes(http) == []

    # Stay down until the timer is past due.
    time.sleep(max(0.0, wake_s + 0.5 - time.time()))
    second = Daemon(serve_args(tmp_path), tmp_path, name="second")
    daemons.append(second)
    second.start()
    ready = time.monotonic()
    (push,) = poll(lambda: pushes(http), 5, "the overdue push")
    assert time.monotonic() - ready < 2
    assert push.json()["content"] == {"body": "Pong 1"}
    assert "unchanged" in second.log()
    metrics = httpx.get(f"{second.url}/metrics").text
    assert metric(metrics, "journeyc_timer_lateness_seconds_sum") >= 0.5
    assert second.stop() == 0


# ---------------------------------------------------------------- deploying changes


def test_an_invalid_change_keeps_the_last_good_version_and_a_valid_one_deploys(
    tmp_path: Path, receivers: tuple[HttpReceiver, SmtpReceiver], daemons: list[Daemon]
) -> None:
    http, _ = receivers
    project(tmp_path, push_journey("version one"), receivers)
    journey_file = tmp_path / "journeys" / "main.journey"
    daemon = Daemon(serve_args(tmp_path), tmp_path)
    daemons.append(daemon)
    daemon.start()
    first_version = daemon.admin("/v1/status")["daemon"]["journeys"]["greet"]

    mark = len(daemon.log())
    write_file(journey_file, push_journey("", message="no_such_message"))
    daemon.wait_for_log(r"refused the change to main\.journey", after=mark)
    refused = daemon.wait_for_log(r"error\[unknown_message\]", after=mark)
    assert refused
    assert daemon.admin("/v1/status")["daemon"]["last_refused_change"]["files"] == "main.journey"

    daemon.identify("u1", push_enabled=True)
    daemon.track("u1", "greeted")
    (push,) = poll(lambda: pushes(http), 10, "a push from the old version")
    assert push.json()["content"] == {"body": "version one"}

    mark = len(daemon.log())
    write_file(journey_file, push_journey("version two"))
    deployed = daemon.wait_for_log(r"journey greet: deployed version (\w+) \(was (\w+)", after=mark)
    assert deployed.group(2) == first_version != deployed.group(1)

    daemon.identify("u2", push_enabled=True)
    daemon.track("u2", "greeted")
    poll(lambda: len(pushes(http)) == 2, 10, "a push from the new version")
    assert pushes(http)[1].json()["content"] == {"body": "version two"}
    versions = daemon.admin("/v1/journeys")["journeys"][0]["versions"]
    assert [v["active"] for v in versions] == [False, True]
    assert daemon.stop() == 0


def test_an_invalid_project_at_start_prints_diagnostics_and_exits_1(tmp_path: Path) -> None:
    write_file(tmp_path / "journeys" / "bad.journey", push_journey("", message="nope"))
    proc = serve_once(["journeys", "--port", "0"], tmp_path, timeout=30)
    assert proc.returncode == 1
    assert "error[unknown_message]" in proc.stderr
    assert "the daemon did not start" in proc.stderr
    assert not (tmp_path / "journeyc.db").exists()


# ---------------------------------------------------------------- defaults


def test_without_arguments_it_serves_journeys_into_journeyc_db_and_prints_messages(
    tmp_path: Path, daemons: list[Daemon]
) -> None:
    write_file(tmp_path / "journeys" / "hello.journey", push_journey("Hello {{ user.name }}"))
    # Only the port is set, so the test does not depend on 8700 being free.
    write_file(tmp_path / "journeyc.toml", f"[server]\nport = {free_port()}\n")
    daemon = Daemon([], tmp_path, env=clean_env())
    daemons.append(daemon)
    daemon.start()

    log = daemon.log()
    key = re.search(r"write key\s+(\S+)\s+\(generated", log)
    token = re.search(r"admin token\s+(\S+)\s+\(generated", log)
    assert key and token
    assert f"curl -u '{key.group(1)}:' {daemon.url}/v1/track" in log
    assert '"event": "greeted"' in log
    daemon.write_key, daemon.admin_token = key.group(1), token.group(1)

    daemon.identify("u9", push_enabled=True, name="Kim")
    daemon.track("u9", "greeted")
    poll(lambda: "Hello Kim" in daemon.stdout(), 10, "the message on stdout")
    assert "[push] u9 greet/hi key=greet:u9:1:hi" in daemon.stdout()
    assert daemon.stop(signal.SIGINT) == 0

    store = Store.open(tmp_path / "journeyc.db")
    try:
        assert store.get_setting("write_key") == key.group(1)
        assert store.get_setting("admin_token") == token.group(1)
    finally:
        store.close()


# ---------------------------------------------------------------- retention


def test_retention_removes_old_finished_rows_and_keeps_entries_and_live_users(
    tmp_path: Path,
) -> None:
    from journeyc.channels.file import FileProvider
    from journeyc.compile.lower import lower_project
    from journeyc.config import Config
    from journeyc.engine.core import Engine
    from journeyc.events import parse_event
    from journeyc.lang.project import load_project
    from journeyc.serve.daemon import RETENTION_DAYS, ServeSettings
    from journeyc.serve.dispatcher import Dispatcher
    from journeyc.serve.worker import Worker

    write_file(
        tmp_path / "journeys" / "main.journey",
        push_journey("hi")
        + '\njourney slow "Waits long"\n  when pinged\n  entry always\n  wait 300d\n'
        '  send push "late"\n',
    )
    db = tmp_path / "store.db"
    now = int(time.time() * 1000)
    old = now - (RETENTION_DAYS + 10) * 86_400_000

    def greet(user: str, at: int) -> None:
        store.append_events(
            [
                parse_event(
                    {"type": "identify", "userId": user, "traits": {"push_enabled": True}}, at
                ),
                parse_event({"type": "track", "userId": user, "event": "greeted"}, at),
                parse_event({"type": "track", "userId": user, "event": "pinged"}, at),
            ]
        )
        engine.advance(at)

    store = Store.open(db)
    try:
        engine = Engine(store)
        engine.deploy(lower_project(load_project([tmp_path / "journeys"])), old)
        greet("old", old)
        greet("new", now)
    finally:
        store.close()
    with Dispatcher.open(db, {"push": FileProvider(tmp_path / "push.jsonl")}) as dispatcher:
        assert dispatcher.run_once(old).sent == 1
        assert dispatcher.run_once(now).sent == 1

    # Retention runs in the engine process: its Worker, here in this one.
    daemon = Worker(ServeSettings(tmp_path / "journeys", db, Config(), port=0))
    daemon.start()
    try:
        # old: greet finished (its sent row and actions go); slow still waits.
        outbox, actions = daemon.remove_old(now)
        assert outbox == 1
        assert actions == 4  # enter, send, exit in greet; enter in slow
        assert daemon.remove_old(now) == (0, 0)
    finally:
        daemon.stop()
    store = Store.open(db)
    try:
        counts = store.counts()
        assert counts["entries"] == 4
        assert counts["instances"] == 2  # old/slow and new/slow wait; greet ended
        assert counts["outbox"] == 1
    finally:
        store.close()


# ---------------------------------------------------------------- segments and schedules

SCHEDULED = """
segment gold = tier == "gold"

journey gold_welcome
  when entering gold
  send push "Welcome to gold" as hi

journey morning
  every day at 10:00 for everyone
  entry always
  send push "Good morning" as hi
"""


def test_segment_entries_run_live_and_a_missed_firing_runs_at_once_after_a_restart(
    tmp_path: Path, receivers: tuple[HttpReceiver, SmtpReceiver], daemons: list[Daemon]
) -> None:
    http, _ = receivers
    project(tmp_path, SCHEDULED, receivers)
    first = Daemon(serve_args(tmp_path), tmp_path, name="first")
    daemons.append(first)
    first.start()
    first.identify("u1", push_enabled=True, tier="silver", timezone="Asia/Tokyo")
    first.identify("u1", tier="gold")
    (push,) = poll(lambda: pushes(http), 10, "the gold welcome")
    assert push.json()["content"] == {"body": "Welcome to gold"}
    # One cron job per scheduled trigger and zone in use: UTC (the default) and Tokyo.
    poll(lambda: "schedule:morning:0:Asia/Tokyo" in first.log(), 5, "the Tokyo job")
    assert "schedule:morning:0:UTC" in first.log()
    assert first.stop() == 0

    # The 10:00 firing is due while the daemon is down: it runs as soon as it is back.
    with sqlite3.connect(tmp_path / "store.db") as conn:
        conn.execute(
            "UPDATE schedules SET next_at = ? WHERE zone = 'Asia/Tokyo'",
            (int(time.time() * 1000) - 60_000,),
        )
    second = Daemon(serve_args(tmp_path), tmp_path, name="second")
    daemons.append(second)
    second.start()
    morning = poll(
        lambda: [p for p in pushes(http) if p.json()["content"] == {"body": "Good morning"}],
        5,
        "the missed morning push",
    )
    assert len(morning) == 1
    with sqlite3.connect(tmp_path / "store.db") as conn:
        (next_at,) = conn.execute(
            "SELECT next_at FROM schedules WHERE zone = 'Asia/Tokyo'"
        ).fetchone()
    assert next_at > time.time() * 1000
    assert second.stop() == 0


# ---------------------------------------------------------------- identity: anonymous to known

CART = """\
journey cart "A nudge two seconds after a cart is left"
  when cart_abandoned
  wait 2s as pause
  send push "Still thinking about {{ event.product }}, {{ user.first_name }}?" as nudge
"""


def test_an_anonymous_cart_then_a_login_pushes_to_the_known_user(
    tmp_path: Path, receivers: tuple[HttpReceiver, SmtpReceiver], daemons: list[Daemon]
) -> None:
    http, _ = receivers
    project(tmp_path, CART, receivers)
    daemon = Daemon(serve_args(tmp_path), tmp_path)
    daemons.append(daemon)
    daemon.start()
    # A shopper fills a cart and leaves it before logging in: only an anonymousId.
    daemon._ingest(
        "track",
        {"anonymousId": "anon-7", "event": "Cart Abandoned", "properties": {"product": "Watch"}},
    )
    poll(lambda: daemon.admin("/v1/users/anon-7")["journeys"], 10, "the anonymous cart entry")
    # Then logs in: an identify carrying both ids, and the trait that makes push reach.
    daemon._ingest(
        "identify",
        {
            "anonymousId": "anon-7",
            "userId": "u-7",
            "traits": {"push_enabled": True, "first_name": "Ann"},
        },
    )
    (push,) = poll(lambda: pushes(http), 10, "the push to the known user")
    assert push.json()["content"] == {"body": "Still thinking about Watch, Ann?"}
    assert push.headers["idempotency-key"] == "cart:u-7:1:nudge"

    # The old id names the known user now: its calls land there, and it shows that user.
    daemon._ingest("track", {"anonymousId": "anon-7", "event": "Cart Viewed"})
    user = daemon.admin("/v1/users/anon-7")
    assert user["user_id"] == "u-7"
    assert user["traits"] == {"push_enabled": True, "first_name": "Ann"}
    with sqlite3.connect(tmp_path / "store.db") as conn:
        names = poll(
            lambda: conn.execute(
                "SELECT name FROM events WHERE user_id = 'u-7' ORDER BY seq"
            ).fetchall(),
            10,
            "the events under the known id",
        )
        assert ("cart_abandoned",) in names and ("cart_viewed",) in names
        assert conn.execute("SELECT count(*) FROM events WHERE user_id = 'anon-7'").fetchone() == (
            0,
        )

    # Forgetting by the old id forgets the person, under both ids.
    forgotten = httpx.delete(
        f"{daemon.url}/v1/users/anon-7",
        headers={"Authorization": f"Bearer {daemon.admin_token}"},
        timeout=10,
    ).json()
    assert forgotten["removed"]["identities"] == 1
    assert forgotten["removed"]["profiles"] == 1
    missing = httpx.get(
        f"{daemon.url}/v1/users/u-7",
        headers={"Authorization": f"Bearer {daemon.admin_token}"},
        timeout=10,
    )
    assert missing.status_code == 404
    assert daemon.stop() == 0
    assert "Traceback" not in daemon.log()
