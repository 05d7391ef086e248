"""The outbox dispatcher against real SQLite files: sends, retries, failures, and a
slow provider that must not hold the store's write lock."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from journeyc.channels import OutboundMessage, PermanentError, TransientError
from journeyc.channels.base import DispatchOptions
from journeyc.channels.http import HttpProvider
from journeyc.events import Event
from journeyc.serve.dispatcher import Dispatcher, DispatchStats, backoff_ms
from journeyc.store import Store, StoreBusyError
from journeyc.store.abc import Outbox
from tests.test_channels import HttpReceiver

T0 = 1_700_000_000_000


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "journeyc.db"


@pytest.fixture
def store(db: Path) -> Iterator[Store]:
    with Store.open(db) as opened:
        yield opened


def queue(
    store: Store,
    key: str,
    *,
    channel: str | None = "push",
    user: str = "u1",
    at: int = T0,
    content: dict[str, str] | None = None,
) -> None:
    with store.transaction() as conn:
        conn.execute(
            "INSERT INTO outbox (key, journey_id, user_id, step, channel, message, content, "
            "status, next_attempt_at, created_at) VALUES (?, 'cart', ?, 'reminder', ?, "
            "'cart_reminder', ?, 'queued', ?, ?)",
            (key, user, channel, json.dumps(content or {"body": f"hi {key}"}), at, at),
        )


def row(store: Store, key: str) -> dict[str, Any]:
    cur = store.conn.execute(
        "SELECT status, attempts, next_attempt_at, sent_at, error FROM outbox WHERE key = ?",
        (key,),
    )
    names = [d[0] for d in cur.description]
    return dict(zip(names, cur.fetchone(), strict=True))


class Recorder:
    """A provider that accepts everything and remembers what it was given."""

    def __init__(self) -> None:
        self.sent: list[OutboundMessage] = []

    def send(self, msg: OutboundMessage) -> None:
        self.sent.append(msg)

    def close(self) -> None:
        pass


class Scripted:
    """A provider that raises the next error of a script, then accepts."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    def send(self, msg: OutboundMessage) -> None:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)

    def close(self) -> None:
        pass


def test_rows_go_from_queued_to_sent_through_a_real_http_provider(store: Store) -> None:
    store.set_traits("u1", {"push_token": "tok-1"}, T0)
    store.set_traits("u2", {"push_token": "tok-2"}, T0)
    queue(store, "b", user="u2", at=T0 - 10)
    queue(store, "a", at=T0 - 10)
    queue(store, "c", at=T0 - 20)
    queue(store, "later", at=T0 + 1)
    receiver = HttpReceiver()
    provider = HttpProvider.from_options(
        "push",
        {
            "url": receiver.url + "/send",
            "body": '{"to": {{ user.push_token | json }}, "text": {{ message.body | json }}}',
        },
    )
    # One thread in the lane: the sends start, and so arrive, in due order.
    lanes = {"push": DispatchOptions(concurrency=1)}
    try:
        stats = Dispatcher(store, {"push": provider}, lanes=lanes).run_once(T0)
    finally:
        provider.close()
        receiver.stop()
    assert stats == DispatchStats(sent=3, retried=0, failed=0)
    # Due order: next_attempt_at, then id (insertion).
    assert [r.headers["idempotency-key"] for r in receiver.requests] == ["c", "b", "a"]
    assert [r.json() for r in receiver.requests] == [
        {"to": "tok-1", "text": "hi c"},
        {"to": "tok-2", "text": "hi b"},
        {"to": "tok-1", "text": "hi a"},
    ]
    for key in "abc":
        assert row(store, key) == {
            "status": "sent",
            "attempts": 1,
            "next_attempt_at": None,
            "sent_at": T0,
            "error": None,
        }
    assert row(store, "later")["status"] == "queued"


def test_a_batch_takes_at_most_batch_rows(store: Store) -> None:
    for i in range(5):
        queue(store, f"k{i}")
    recorder = Recorder()
    dispatcher = Dispatcher(store, {"push": recorder}, batch=2)
    assert [dispatcher.run_once(T0).handled for _ in range(4)] == [2, 2, 1, 0]
    assert [m.key for m in recorder.sent] == ["k0", "k1", "k2", "k3", "k4"]
    # Rows failed without a try (no provider) count towards the batch too.
    for i in range(3):
        queue(store, f"nowhere{i}", channel="whatsapp")
    assert [dispatcher.run_once(T0).failed for _ in range(3)] == [2, 1, 0]


def test_the_message_carries_the_row_and_the_profile(store: Store) -> None:
    store.set_traits("u1", {"email": "ann@example.com", "first_name": "Ann"}, T0)
    queue(store, "k", channel="email", content={"subject": "Hi", "text": "Yo"})
    recorder = Recorder()
    Dispatcher(store, {"email": recorder}).run_once(T0)
    assert recorder.sent == [
        OutboundMessage(
            key="k",
            channel="email",
            user_id="u1",
            journey_id="cart",
            step="reminder",
            message="cart_reminder",
            content={"subject": "Hi", "text": "Yo"},
            profile={"email": "ann@example.com", "first_name": "Ann"},
        )
    ]


def test_undeliverable_rows_fail_with_a_reason(store: Store) -> None:
    queue(store, "no-provider", channel="whatsapp")
    queue(store, "permanent")
    queue(store, "fine", channel="sms")
    provider = Scripted(PermanentError("HTTP 400 bad token"))
    stats = Dispatcher(store, {"push": provider, "sms": Recorder()}).run_once(T0)
    assert stats == DispatchStats(sent=1, retried=0, failed=2)
    assert row(store, "no-provider")["error"] == "no provider for channel `whatsapp`"
    assert row(store, "no-provider")["attempts"] == 0
    assert row(store, "permanent") == {
        "status": "failed",
        "attempts": 1,
        "next_attempt_at": None,
        "sent_at": None,
        "error": "HTTP 400 bad token",
    }
    assert row(store, "fine")["status"] == "sent"


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    for attempts, ceiling in [(1, 5_000), (2, 10_000), (3, 20_000), (5, 60_000), (30, 60_000)]:
        delay = backoff_ms("k", attempts, 5, 60)
        assert ceiling / 2 <= delay <= ceiling
        assert delay == backoff_ms("k", attempts, 5, 60)
    delays = {backoff_ms(f"k{i}", 1, 5, 60) for i in range(50)}
    assert len(delays) > 40  # rows failing together come back spread out


def test_retries_follow_the_backoff_schedule_then_fail(store: Store) -> None:
    queue(store, "k")
    provider = Scripted(*(TransientError(f"busy {i}") for i in range(10)))
    dispatcher = Dispatcher(
        store, {"push": provider}, max_attempts=5, base_delay_s=5, max_delay_s=15
    )
    now = T0
    for attempt in range(1, 5):
        assert dispatcher.run_once(now) == DispatchStats(retried=1)
        state = row(store, "k")
        expected = now + backoff_ms("k", attempt, 5, 15)
        assert state == {
            "status": "queued",
            "attempts": attempt,
            "next_attempt_at": expected,
            "sent_at": None,
            "error": f"busy {attempt - 1}",
        }
        assert dispatcher.run_once(expected - 1) == DispatchStats()
        now = expected
    assert dispatcher.run_once(now) == DispatchStats(failed=1)
    assert row(store, "k") == {
        "status": "failed",
        "attempts": 5,
        "next_attempt_at": None,
        "sent_at": None,
        "error": "gave up after 5 attempts: busy 4",
    }
    assert provider.calls == 5
    assert dispatcher.run_once(now + 10**9) == DispatchStats()


def test_retry_after_is_honoured_within_the_maximum_delay(store: Store) -> None:
    queue(store, "hint")
    queue(store, "huge")
    provider = Scripted(TransientError("429", retry_after_s=120), TransientError("429", 10**6))
    Dispatcher(store, {"push": provider}, max_delay_s=600).run_once(T0)
    assert row(store, "hint")["next_attempt_at"] == T0 + 120_000
    assert row(store, "huge")["next_attempt_at"] == T0 + 600_000


def test_a_provider_bug_is_retried_not_lost(store: Store) -> None:
    queue(store, "k")
    provider = Scripted(RuntimeError("oops"))
    dispatcher = Dispatcher(store, {"push": provider})
    assert dispatcher.run_once(T0) == DispatchStats(retried=1)
    state = row(store, "k")
    assert state["error"] == "provider error: RuntimeError: oops"
    assert dispatcher.run_once(state["next_attempt_at"]) == DispatchStats(sent=1)


class Flaky:
    """Fails about a third of the sends, decided by the key and the try; keys that
    hash to 0 mod 10 are refused for good on their second try."""

    def __init__(self) -> None:
        self.tries: Counter[str] = Counter()
        self.accepted: Counter[str] = Counter()

    def send(self, msg: OutboundMessage) -> None:
        self.tries[msg.key] += 1
        digest = hashlib.sha256(f"{msg.key}:{self.tries[msg.key]}".encode()).digest()
        if digest[0] % 10 == 0 and self.tries[msg.key] == 2:
            raise PermanentError("number disconnected")
        if digest[1] % 3 == 0:
            raise TransientError("gateway busy")
        self.accepted[msg.key] += 1

    def close(self) -> None:
        pass


def test_a_flaky_provider_every_row_ends_sent_or_failed(store: Store) -> None:
    keys = [f"cart:u{i}:1:reminder" for i in range(300)]
    for key in keys:
        queue(store, key)
    flaky = Flaky()
    dispatcher = Dispatcher(store, {"push": flaky}, max_attempts=4, base_delay_s=1, max_delay_s=8)
    now, runs = T0, 0
    while (due := dispatcher.next_due()) is not None:
        # The clock moves on as a scheduler's would: a few seconds per run.
        now = max(now + 3_000, due)
        dispatcher.run_once(now)
        runs += 1
        assert runs < 50
    rows = {
        key: (status, attempts, error)
        for key, status, attempts, error in store.conn.execute(
            "SELECT key, status, attempts, error FROM outbox"
        )
    }
    statuses = Counter(status for status, _, _ in rows.values())
    assert set(statuses) == {"sent", "failed"}
    assert statuses["sent"] > 200
    for key, (status, attempts, error) in rows.items():
        assert attempts == flaky.tries[key]
        if status == "sent":
            assert flaky.accepted[key] == 1 and error is None
        else:
            assert flaky.accepted[key] == 0
            assert error in ("number disconnected", "gave up after 4 attempts: gateway busy")
    assert {e for _, _, e in rows.values() if e and e.startswith("gave up")}
    assert "number disconnected" in {e for _, _, e in rows.values()}


def test_next_due_is_the_earliest_queued_row(store: Store) -> None:
    dispatcher = Dispatcher(store, {"push": Recorder()})
    assert dispatcher.next_due() is None
    queue(store, "a", at=T0 + 50)
    queue(store, "b", at=T0 + 20)
    assert dispatcher.next_due() == T0 + 20


class Crash(BaseException):
    """The process dying: nothing after it runs."""


class AcceptThenCrash:
    """Accepts a message (the receiver has it), then the process dies once."""

    def __init__(self) -> None:
        self.received: list[str] = []
        self.crashed = False

    def send(self, msg: OutboundMessage) -> None:
        self.received.append(msg.key)
        if not self.crashed:
            self.crashed = True
            raise Crash

    def close(self) -> None:
        pass


def test_a_crash_after_acceptance_resends_with_the_same_key_after_the_lease(db: Path) -> None:
    with Store.open(db) as store:
        queue(store, "k")
    provider = AcceptThenCrash()
    with Dispatcher.open(db, {"push": provider}, lease_s=60) as dispatcher, pytest.raises(Crash):
        dispatcher.run_once(T0)
    # A fresh process: the claimed row waits out its lease, then goes again.
    with Dispatcher.open(db, {"push": provider}, lease_s=60) as dispatcher:
        assert dispatcher.run_once(T0 + 59_999) == DispatchStats()
        assert dispatcher.run_once(T0 + 60_000) == DispatchStats(sent=1)
    assert provider.received == ["k", "k"]  # the receiver can drop the copy by key


def test_a_daemon_starting_takes_back_a_dead_dispatchers_claims_at_once(db: Path) -> None:
    with Store.open(db) as store:
        queue(store, "k1")
        queue(store, "k2")
    provider = AcceptThenCrash()
    with Dispatcher.open(db, {"push": provider}, lease_s=900) as dead, pytest.raises(Crash):
        dead.run_once(T0)
    with Dispatcher.open(db, {"push": provider}, lease_s=900) as fresh:
        # Without reclaim the claimed rows would wait out the 15-minute lease.
        assert fresh.run_once(T0 + 1000) == DispatchStats()
        assert fresh.reclaim(T0 + 1000) == 2
        assert fresh.run_once(T0 + 1000) == DispatchStats(sent=2)
        # Its own claims, and rows no one holds, are left alone.
        assert fresh.reclaim(T0 + 2000) == 0
    with Store.open(db) as store:
        rows = store.conn.execute("SELECT status, claimed_by FROM outbox").fetchall()
    assert rows == [("sent", None), ("sent", None)]


class Slow:
    """Holds each send for ``seconds``, and says when a send has started."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.started = threading.Event()
        self.sent: list[str] = []

    def send(self, msg: OutboundMessage) -> None:
        self.started.set()
        time.sleep(self.seconds)
        self.sent.append(msg.key)

    def close(self) -> None:
        pass


@pytest.mark.parametrize("connection", ["own", "shared"])
def test_a_slow_provider_does_not_block_writers(db: Path, connection: str) -> None:
    # A short busy timeout: a writer that had to wait for the lock would fail.
    writer = Store.open(db, busy_timeout_ms=200)
    queue(writer, "k")
    slow = Slow(1.5)
    dispatcher = (
        Dispatcher.open(db, {"push": slow})
        if connection == "own"
        else Dispatcher(writer, {"push": slow})
    )
    results: list[DispatchStats] = []
    thread = threading.Thread(target=lambda: results.append(dispatcher.run_once(T0)))
    thread.start()
    try:
        assert slow.started.wait(5)
        seqs = writer.append_events(
            [Event(f"m{i}", "u9", "track", "viewed", T0, {}, T0) for i in range(20)]
        )
        queue(writer, "k2", at=T0 + 1)
        assert slow.sent == []  # the provider was still busy while we wrote
        assert all(seq is not None for seq in seqs)
    finally:
        thread.join()
        dispatcher.close()
    assert results == [DispatchStats(sent=1)]
    assert row(writer, "k")["status"] == "sent"
    assert row(writer, "k2")["status"] == "queued"
    writer.close()


def test_a_second_dispatcher_skips_rows_the_first_has_claimed(db: Path) -> None:
    with Store.open(db) as store:
        queue(store, "k")
    slow = Slow(1.0)
    other = Recorder()
    first = Dispatcher.open(db, {"push": slow})
    second = Dispatcher.open(db, {"push": other})
    thread = threading.Thread(target=first.run_once, args=(T0,))
    thread.start()
    try:
        assert slow.started.wait(5)
        assert second.run_once(T0 + 1) == DispatchStats()
    finally:
        thread.join()
        first.close()
        second.close()
    assert slow.sent == ["k"] and other.sent == []


def test_a_run_records_its_outcomes_together(store: Store) -> None:
    for key in ("k1", "k2", "k3"):
        queue(store, key)
    outcomes = {"k1": TransientError("busy"), "k3": PermanentError("gone")}

    class ByKey:
        def send(self, msg: OutboundMessage) -> None:
            if msg.key in outcomes:
                raise outcomes[msg.key]

        def close(self) -> None:
            pass

    provider = ByKey()
    statements: list[str] = []
    store.conn.set_trace_callback(statements.append)
    try:
        stats = Dispatcher(store, {"push": provider}).run_once(T0)
    finally:
        store.conn.set_trace_callback(None)
    assert stats == DispatchStats(sent=1, retried=1, failed=1)
    assert [row(store, k)["status"] for k in ("k1", "k2", "k3")] == ["queued", "sent", "failed"]
    # One transaction claims the batch and one records it, not one per row.
    assert sum(s == "COMMIT" for s in statements) == 2


def test_a_slow_run_records_what_it_delivered_as_it_goes(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("journeyc.serve.dispatcher.RECORD_EVERY_S", 0.0)
    with Store.open(db) as store:
        queue(store, "k1")
        queue(store, "k2", at=T0 + 1)
    seen: list[str] = []

    class Peeking:
        def send(self, msg: OutboundMessage) -> None:
            if msg.key == "k2":
                # Sent beside k1 (the lane has threads for both): k1's mark is
                # committed while this send still runs.
                deadline = time.monotonic() + 5
                with Store.open(db) as other:
                    while row(other, "k1")["status"] != "sent" and time.monotonic() < deadline:
                        time.sleep(0.01)
                    seen.append(row(other, "k1")["status"])

        def close(self) -> None:
            pass

    with Dispatcher.open(db, {"push": Peeking()}) as dispatcher:
        assert dispatcher.run_once(T0 + 1) == DispatchStats(sent=2)
    assert seen == ["sent"]


# ---------------------------------------------------------------- lanes, deadlines, breakers


class Blocked:
    """A hung provider: each send blocks until ``release`` is set."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started = threading.Event()
        self.calls = 0

    def send(self, msg: OutboundMessage) -> None:
        self.calls += 1
        self.started.set()
        self.release.wait(30)

    def close(self) -> None:
        self.release.set()


def test_a_hung_provider_delays_only_its_own_channel(store: Store) -> None:
    # The hung channel's rows are due first: one dispatcher sending in due order
    # would never reach the email rows.
    for i in range(3):
        queue(store, f"push{i}", channel="push", at=T0 - 100)
    for i in range(3):
        queue(store, f"mail{i}", channel="email", at=T0)
    hung, healthy = Blocked(), Recorder()
    dispatcher = Dispatcher(store, {"push": hung, "email": healthy})
    results: list[DispatchStats] = []
    thread = threading.Thread(target=lambda: results.append(dispatcher.run_once(T0)))
    thread.start()
    try:
        poll_until(lambda: len(healthy.sent) == 3, 5)
        assert hung.started.is_set() and not hung.release.is_set()
    finally:
        hung.release.set()
        thread.join(10)
    assert results == [DispatchStats(sent=6)]


def test_pump_returns_at_once_and_records_the_healthy_channel_while_another_hangs(
    store: Store,
) -> None:
    queue(store, "push0", channel="push", at=T0 - 100)
    queue(store, "mail0", channel="email", at=T0)
    hung, healthy = Blocked(), Recorder()
    woken = threading.Event()
    dispatcher = Dispatcher(store, {"push": hung, "email": healthy}, on_ready=woken.set)
    try:
        assert dispatcher.pump(T0) == DispatchStats()  # claimed and handed over
        assert woken.wait(5)
        poll_until(lambda: dispatcher.pump(T0).sent == 1, 5)
        assert row(store, "mail0")["status"] == "sent"
        assert row(store, "push0")["status"] == "queued"
        # The hung lane's send is in flight: wake then at its deadline, not at once.
        assert dispatcher.next_wake(T0) == pytest.approx(T0 + 60_000, abs=1_000)
        assert dispatcher.channels(T0)["push"]["running"] == 1
    finally:
        hung.release.set()
        dispatcher.close()
    assert row(store, "push0")["status"] == "sent"  # close() recorded it


def poll_until(check: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_the_breaker_opens_puts_rows_off_without_an_attempt_then_probes(store: Store) -> None:
    for i in range(10):
        queue(store, f"k{i}")
    provider = Scripted(*(TransientError(f"down {i}") for i in range(4)))
    lanes = {"push": DispatchOptions(concurrency=1, breaker_failures=3, breaker_cooldown=60)}
    dispatcher = Dispatcher(store, {"push": provider}, lanes=lanes)

    stats = dispatcher.run_once(T0)
    # Three failures in a row open it; the seven rows behind are not tried.
    assert stats == DispatchStats(retried=3, put_off=7)
    assert provider.calls == 3
    assert dispatcher.breaker_state("push", T0) == "open"
    states = [
        (row(store, f"k{i}")["attempts"], row(store, f"k{i}")["next_attempt_at"])
        for i in range(3, 10)
    ]
    assert states == [(0, T0 + 60_000)] * 7

    # A row queued meanwhile is put off too, and nothing is tried.
    queue(store, "late", at=T0 + 1_000)
    assert dispatcher.run_once(T0 + 1_000) == DispatchStats(put_off=1)
    assert provider.calls == 3
    assert row(store, "late")["next_attempt_at"] == T0 + 60_000

    # After the cool-down one probe goes; it fails: open again, the rest put off.
    assert dispatcher.breaker_state("push", T0 + 60_000) == "half_open"
    assert dispatcher.run_once(T0 + 60_000) == DispatchStats(retried=1, put_off=10)
    assert provider.calls == 4
    assert dispatcher.breaker_state("push", T0 + 60_000) == "open"

    # The next probe goes through: closed, and the rest are sent in the same run.
    assert dispatcher.run_once(T0 + 120_000) == DispatchStats(sent=11)
    assert provider.calls == 15
    assert dispatcher.breaker_state("push", T0 + 120_000) == "closed"
    attempts = sorted(row(store, k)["attempts"] for k in [f"k{i}" for i in range(10)] + ["late"])
    # Put-off runs are not attempts: the two probes went to the same row.
    assert attempts == [1] * 8 + [2] * 2 + [3]


def test_a_permanent_refusal_does_not_open_the_breaker(store: Store) -> None:
    for i in range(6):
        queue(store, f"k{i}")
    provider = Scripted(*(PermanentError("bad token") for _ in range(6)))
    lanes = {"push": DispatchOptions(breaker_failures=2)}
    dispatcher = Dispatcher(store, {"push": provider}, lanes=lanes)
    assert dispatcher.run_once(T0) == DispatchStats(failed=6)
    assert dispatcher.breaker_state("push", T0) == "closed"


class SlowHttp:
    """A real HTTP server on 127.0.0.1 that is slow on purpose: ``/hang`` waits
    ``seconds`` before it answers; ``/trickle`` sends its headers at once, then its
    body a byte at a time, one every ``seconds / 10`` (each read is quick, so a
    per-read socket timeout never fires)."""

    def __init__(self, seconds: float) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.requests = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                server.requests += 1
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.path == "/hang":
                    time.sleep(seconds)
                self.send_response(200)
                self.send_header("Content-Length", "10")
                self.end_headers()
                self.wfile.flush()
                for _ in range(10):
                    if self.path == "/trickle":
                        time.sleep(seconds / 10)
                    self.wfile.write(b"x")
                    self.wfile.flush()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def url(self, path: str) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}{path}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_the_http_provider_times_out_on_a_server_that_does_not_answer() -> None:
    server = SlowHttp(5)
    provider = HttpProvider.from_options("push", {"url": server.url("/hang"), "timeout": 0.3})
    msg = OutboundMessage("k", "push", "u1", "cart", "reminder", "m", {"body": "hi"})
    try:
        # The server answers after 5 s: a ReadTimeout means the 0.3 s timeout held.
        with pytest.raises(TransientError, match="ReadTimeout"):
            provider.send(msg)
    finally:
        provider.close()
        server.stop()


def test_a_send_past_its_deadline_is_given_up_and_retried_after_the_lease(store: Store) -> None:
    # A trickling reply never trips the provider's 1 s read timeout; the lane's
    # deadline gives the send up instead of waiting the 2 s it takes.
    server = SlowHttp(2)
    provider = HttpProvider.from_options("push", {"url": server.url("/trickle"), "timeout": 1.0})
    queue(store, "slow")
    queue(store, "mail", channel="email")
    lanes = {"push": DispatchOptions(deadline=0.5)}
    dispatcher = Dispatcher(store, {"push": provider, "email": Recorder()}, lanes=lanes, lease_s=60)
    try:
        assert dispatcher.run_once(T0) == DispatchStats(sent=1, retried=1)
        assert row(store, "slow") == {
            "status": "queued",
            "attempts": 1,
            "next_attempt_at": T0 + 60_000,  # when the claim's lease would have ended
            "sent_at": None,
            "error": "no reply in 0.5 s: given up",
        }
        assert dispatcher.channels(T0)["push"]["given_up"] == 1
        # The thread left behind finishes; its late success is still recorded.
        poll_until(
            lambda: dispatcher.pump(T0 + 1) is not None and row(store, "slow")["status"] == "sent",
            5,
        )
        assert row(store, "slow")["attempts"] == 1
    finally:
        dispatcher.close()
        provider.close()
        server.stop()
    assert server.requests == 1


def test_channel_sections_take_the_dispatch_keys_and_providers_never_see_them(
    tmp_path: Path,
) -> None:
    from journeyc.channels.registry import build_providers, dispatch_options
    from journeyc.config import Config, ConfigError

    section = {
        "provider": "http",
        "url": "http://127.0.0.1:9/send",
        "timeout": 2.5,
        "concurrency": 8,
        "deadline": 30,
        "breaker_failures": 10,
        "breaker_cooldown": 60,
    }
    config = Config.model_validate({"channels": {"push": section}})
    providers = build_providers(config, tmp_path)
    try:
        assert isinstance(providers["push"], HttpProvider)
        assert providers["push"].options.timeout == 2.5
    finally:
        for provider in providers.values():
            provider.close()
    lanes = dispatch_options(config)
    assert lanes["push"] == DispatchOptions(
        concurrency=8, deadline=30, breaker_failures=10, breaker_cooldown=60
    )
    assert lanes["email"] == DispatchOptions()  # no section: the defaults
    bad = Config.model_validate(
        {"channels": {"push": {**section, "concurrency": 0, "deadline": "soon"}}}
    )
    with pytest.raises(ConfigError) as caught:
        build_providers(bad, tmp_path)
    assert "channels.push.concurrency:" in str(caught.value)
    assert "channels.push.deadline: expected a number" in str(caught.value)


def test_the_circuit_breaker_states() -> None:
    from journeyc.serve.breaker import CircuitBreaker

    breaker = CircuitBreaker(failures=3, cooldown_s=10)
    assert breaker.state(T0) == "closed" and breaker.allowance(T0) is None
    assert [breaker.failure(T0) for _ in range(2)] == [False, False]
    breaker.success()  # a success in between: the count starts again
    assert [breaker.failure(T0) for _ in range(3)] == [False, False, True]
    assert breaker.state(T0 + 9_999) == "open" and breaker.allowance(T0 + 9_999) == 0
    assert breaker.open_until() == T0 + 10_000
    # Half-open: exactly one probe.
    assert breaker.state(T0 + 10_000) == "half_open"
    assert breaker.allowance(T0 + 10_000) == 1
    breaker.probe_started()
    assert breaker.allowance(T0 + 10_000) == 0
    assert breaker.failure(T0 + 11_000) is False  # a failed probe: open again, from now
    assert breaker.open_until() == T0 + 21_000 and breaker.opened == 1
    breaker.probe_started()
    breaker.success()
    assert breaker.state(T0 + 21_000) == "closed" and breaker.consecutive == 0
    with pytest.raises(ValueError):
        CircuitBreaker(failures=0)


def test_a_provider_that_ignores_its_timeout_is_given_up_and_the_lane_goes_on(
    store: Store,
) -> None:
    queue(store, "stuck", at=T0 - 1)
    queue(store, "next")

    class StuckOnce:
        def __init__(self) -> None:
            self.release = threading.Event()
            self.sent: list[str] = []

        def send(self, msg: OutboundMessage) -> None:
            if msg.key == "stuck":
                self.release.wait(10)  # ignores any timeout
            self.sent.append(msg.key)

        def close(self) -> None:
            self.release.set()

    provider = StuckOnce()
    lanes = {"push": DispatchOptions(concurrency=1, deadline=0.3)}
    dispatcher = Dispatcher(store, {"push": provider}, lanes=lanes, lease_s=60)
    try:
        # One thread, stuck: given up at the deadline, a fresh thread sends the next.
        assert dispatcher.run_once(T0) == DispatchStats(sent=1, retried=1)
        assert provider.sent == ["next"]
        assert row(store, "stuck")["error"] == "no reply in 0.3 s: given up"
    finally:
        provider.release.set()
        dispatcher.close()


def test_the_smtp_provider_times_out_on_a_server_that_never_greets() -> None:
    import socket

    from journeyc.channels.smtp import SmtpProvider

    silent = socket.create_server(("127.0.0.1", 0))  # accepts, then says nothing
    port = silent.getsockname()[1]
    provider = SmtpProvider.from_options(
        "email", {"host": "127.0.0.1", "port": port, "from": "shop@example.com", "timeout": 0.3}
    )
    msg = OutboundMessage(
        "k", "email", "u1", "cart", "reminder", "m", {"text": "hi"}, {"email": "a@example.com"}
    )
    began = time.monotonic()
    try:
        with pytest.raises(TransientError):
            provider.send(msg)
    finally:
        provider.close()
        silent.close()
    assert time.monotonic() - began < 2


def test_outcomes_a_pump_could_not_write_are_written_by_the_next(db: Path) -> None:
    # The pump that collects a send's outcome may find the store busy (another writer
    # held the write lock past lock_timeout): the outcome must wait for the next pump,
    # not be dropped, or the row stays claimed and goes out again after its lease.
    queue_store = Store.open(db)
    queue(queue_store, "k1")
    queue_store.close()
    provider = Recorder()
    woken = threading.Event()
    dispatcher = Dispatcher.open(db, {"push": provider}, on_ready=woken.set)
    try:
        assert dispatcher.pump(T0) == DispatchStats()  # claimed and handed over
        assert woken.wait(5)
        poll_until(lambda: dispatcher._results.qsize() == 1, 5)
        with Store.open(db, lock_timeout_s=0.05) as other, other.transaction():
            dispatcher.store.lock_timeout_s = 0.05
            with pytest.raises(StoreBusyError):
                dispatcher.pump(T0 + 1)
        assert row(dispatcher.store, "k1")["status"] == "queued"
        assert dispatcher.pump(T0 + 2) == DispatchStats(sent=1)
        assert row(dispatcher.store, "k1")["status"] == "sent"
        assert len(provider.sent) == 1
    finally:
        dispatcher.close()


def test_the_dispatchers_own_connection_waits_the_configured_lock_timeout(db: Path) -> None:
    # [store] lock_timeout bounds every writer's wait (docs/config.md), the
    # dispatcher's connection of its own too.
    with Dispatcher.open(db, {}, lock_timeout_s=0.25) as dispatcher:
        assert dispatcher.store.lock_timeout_s == 0.25


class CountingOutbox:
    """The store's outbox, counting the calls of each of its methods."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        self.calls[name] += 1
        return getattr(self.outbox, name)


def test_a_pump_claims_for_all_its_channels_in_one_call(store: Store) -> None:
    # One claim for every lane with room, however many channels are configured and
    # however few have rows due (a claim per lane was a statement per channel).
    channels = ["email", "sms", "push", "web", "slack", "whatsapp"]
    queue(store, "p0")
    queue(store, "p1")
    queue(store, "s0", channel="sms")
    providers = {channel: Recorder() for channel in channels}
    dispatcher = Dispatcher(store, providers)
    counting = CountingOutbox(dispatcher.outbox)
    dispatcher.outbox = cast(Outbox, counting)
    try:
        dispatcher.pump(T0)  # claims and hands the rows to their lanes
        assert counting.calls["claim_lanes"] == 1 and counting.calls["claim"] == 0
    finally:
        dispatcher.close()  # waits for the sends and records them, claiming nothing
    assert counting.calls["claim_lanes"] == 1
    assert [m.key for m in providers["push"].sent] == ["p0", "p1"]
    assert [m.key for m in providers["sms"].sent] == ["s0"]
    assert {row(store, key)["status"] for key in ["p0", "p1", "s0"]} == {"sent"}


def test_a_limited_run_gives_a_lanes_unused_share_to_the_next(store: Store) -> None:
    # batch=4: the email lane (first) wants all 4 but has 1 due row; the push lane,
    # cut to nothing by the limit at first, takes the 3 left over in the same run.
    queue(store, "e0", channel="email")
    for i in range(5):
        queue(store, f"p{i}")
    email, push = Recorder(), Recorder()
    dispatcher = Dispatcher(store, {"email": email, "push": push}, batch=4)
    try:
        assert [dispatcher.run_once(T0).handled for _ in range(3)] == [4, 2, 0]
    finally:
        dispatcher.close()
    assert [m.key for m in email.sent] == ["e0"]
    assert [m.key for m in push.sent] == ["p0", "p1", "p2", "p3", "p4"]
