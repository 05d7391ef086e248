"""Delivery feedback: ``POST /v1/deliveries`` (docs/deliveries.md).

The signature check and the payload are tested as functions; the rest end to end,
through a real ``journeyc serve`` whose push and e-mail channels write JSON lines to
files (the outbox key of each send is read from there, as a provider gets it), over a
SQLite store read back with ``sqlite3``.
"""

from __future__ import annotations

import gzip
import hashlib
import hmac
import json
import os
import re
import sqlite3
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from journeyc.events import EventError, parse_call
from journeyc.lang.checker import check_project
from journeyc.lang.project import load_project
from journeyc.serve.deliveries import (
    CONSENT,
    TOLERANCE_S,
    DeliveryWebhook,
    SignatureError,
    consent_change,
    parse_reports,
    sign,
    verify,
)
from journeyc.store.sqlite import Store
from journeyc.store.sqlite.deliveries import Deliveries
from tests.conftest import ROOT
from tests.daemon_helpers import Daemon, clean_env, key_env, poll, write_file
from tests.test_daemon import serve_args

SECRET = "test-deliveries-secret"
NOW = 1_767_607_200  # 2026-01-05T10:00:00Z

# ---------------------------------------------------------------- the signature


def test_a_signed_body_verifies() -> None:
    body = b'{"deliveries": []}'
    verify(sign(SECRET, body, NOW), body, SECRET, NOW)
    # The scheme, written out: HMAC-SHA256 of "<t>.<body>", hex.
    digest = hmac.new(SECRET.encode(), f"{NOW}.".encode() + body, hashlib.sha256).hexdigest()
    assert sign(SECRET, body, NOW) == f"t={NOW},v1={digest}"


@given(body=st.binary(max_size=200), flip=st.integers(min_value=0))
def test_any_changed_byte_breaks_the_signature(body: bytes, flip: int) -> None:
    header = sign(SECRET, body, NOW)
    verify(header, body, SECRET, NOW)
    changed = bytearray(body or b"x")
    changed[flip % len(changed)] ^= 0x01
    with pytest.raises(SignatureError, match="does not match"):
        verify(header, bytes(changed), SECRET, NOW)


@given(skew=st.integers(min_value=-TOLERANCE_S, max_value=TOLERANCE_S))
def test_a_clock_within_the_tolerance_is_taken(skew: int) -> None:
    verify(sign(SECRET, b"{}", NOW + skew), b"{}", SECRET, NOW)


@pytest.mark.parametrize(
    ("skew", "says"),
    [(-TOLERANCE_S - 1, r"301 s old"), (TOLERANCE_S + 1, r"301 s in the future")],
)
def test_a_stale_or_future_timestamp_is_refused(skew: int, says: str) -> None:
    with pytest.raises(SignatureError, match=says):
        verify(sign(SECRET, b"{}", NOW + skew), b"{}", SECRET, NOW)


@pytest.mark.parametrize(
    ("header", "says"),
    [
        (None, "no Journeyc-Signature header"),
        ("", "no Journeyc-Signature header"),
        ("v1=abc", "expected t=<unix seconds>"),
        (f"t=soon,v1={'0' * 64}", "expected t=<unix seconds>"),
        (f"t={NOW},t={NOW},v1=ab", "expected t=<unix seconds>"),
        (f"t={NOW}", "no v1 signature"),
        (f"t={NOW},v0=ab", "no v1 signature"),
        (f"t={NOW},v1=ab", "does not match"),
        (f"t={NOW},v1=\u00e9\ud800", "does not match"),
    ],
)
def test_a_malformed_header_is_refused_saying_why(header: str | None, says: str) -> None:
    with pytest.raises(SignatureError, match=re.escape(says)):
        verify(header, b"{}", SECRET, NOW)


def test_another_secret_or_timestamp_does_not_verify() -> None:
    body = b'{"deliveries": []}'
    with pytest.raises(SignatureError):
        verify(sign("another secret", body, NOW), body, SECRET, NOW)
    # The timestamp is signed: moving it forward breaks the signature.
    _, _, v1 = sign(SECRET, body, NOW).partition(",")
    with pytest.raises(SignatureError, match="does not match"):
        verify(f"t={NOW + 1},{v1}", body, SECRET, NOW)


def test_one_matching_signature_of_several_is_enough() -> None:
    body = b"{}"
    old = sign("old secret", body, NOW).partition(",")[2]
    new = sign(SECRET, body, NOW).partition(",")[2]
    verify(f"t={NOW},{old},{new}", body, SECRET, NOW)


# ---------------------------------------------------------------- the payload


def problems_of(body: object) -> list[tuple[str, str]]:
    with pytest.raises(EventError) as caught:
        parse_reports(body)
    return [(p.path, p.message) for p in caught.value.problems]


def test_every_bad_field_is_named_by_its_json_path() -> None:
    body = {
        "deliveries": [
            {"key": "k", "event": "opened"},
            {"key": "k", "event": "poked"},
            {"key": "k", "event": "bounced"},
            {"event": "clicked", "url": "https://x.example", "colour": 1},
            {"key": "k", "event": "opened", "bounce": "hard", "url": "u", "timestamp": "soon"},
            "not an object",
        ],
        "extra": True,
    }
    assert problems_of(body) == [
        ("$.extra", "unknown field"),
        (
            "$.deliveries[1].event",
            "expected one of 'delivered', 'opened', 'clicked', "
            "'bounced', 'complained' or 'unsubscribed'",
        ),
        ("$.deliveries[2].bounce", 'is required for bounced: "hard" or "soft"'),
        ("$.deliveries[3].key", "is required"),
        ("$.deliveries[3].colour", "unknown field"),
        ("$.deliveries[4].timestamp", 'not an ISO-8601 time "soon"'),
        ("$.deliveries[5]", "expected an object"),
    ]
    assert problems_of({"deliveries": [{"key": "k", "event": "opened", "bounce": "soft"}]}) == [
        ("$.deliveries[0].bounce", "only for bounced")
    ]
    assert problems_of({"deliveries": [{"key": "k", "event": "opened", "url": "u"}]}) == [
        ("$.deliveries[0].url", "only for clicked")
    ]
    assert problems_of([]) == [("$", "expected an object")]
    assert problems_of({}) == [("$.deliveries", "is required")]
    assert problems_of({"deliveries": {}}) == [("$.deliveries", "expected an array")]
    assert problems_of({"deliveries": [{"key": "\ud800", "event": "opened"}]})[0][0] == (
        "$.deliveries[0].key"
    )


def test_an_item_without_an_id_is_named_by_its_content() -> None:
    one = {"key": "k", "event": "opened", "timestamp": "2026-01-05T10:00:00Z"}
    first, again, other, given_id = parse_reports(
        {
            "deliveries": [
                one,
                dict(one),
                {**one, "timestamp": "2026-01-05T11:00:00Z"},
                {**one, "id": "evt-1"},
            ]
        }
    )
    assert first.provider_id == again.provider_id != other.provider_id
    assert given_id.provider_id == "evt-1"
    assert first.at_ms == NOW * 1000


@pytest.mark.parametrize("channel", ["email", "sms", "whatsapp", "push"])
def test_what_turns_a_channel_off(channel: str) -> None:
    off = CONSENT[channel]
    assert consent_change("unsubscribed", None, channel) == off
    assert consent_change("complained", None, channel) == off
    assert consent_change("bounced", "hard", channel) == off
    assert consent_change("bounced", "soft", channel) == {}
    for kind in ("delivered", "opened", "clicked"):
        assert consent_change(kind, None, channel) == {}  # type: ignore[arg-type]
    assert consent_change("unsubscribed", None, "inapp") == {}
    assert consent_change("unsubscribed", None, None) == {}


# ---------------------------------------------------------------- the webhook on a store

RECEIVED = NOW * 1000


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "store.db") as opened:
        with opened.transaction() as conn:
            conn.executemany(
                "INSERT INTO outbox (key, journey_id, user_id, step, channel, message, status,"
                " created_at) VALUES (?, 'j', ?, 's', ?, 'm', ?, 0)",
                [
                    ("k-mail", "anon-1", "email", "sent"),
                    ("k-sms", "u2", "sms", "queued"),  # reported before it is marked sent
                    ("k-none", "u2", None, "suppressed"),
                ],
            )
        yield opened


def test_repeats_in_a_body_or_later_add_nothing_and_a_suppressed_send_is_refused(
    store: Store,
) -> None:
    webhook = DeliveryWebhook(store)
    item = {"key": "k-sms", "event": "delivered", "id": 7}
    body = {"deliveries": [item, item, {"key": "k-none", "event": "opened"}]}
    accepted, new = webhook.receive(body, RECEIVED)
    assert (accepted.received, accepted.new, accepted.duplicates) == (3, 1, 1)
    assert [(r.path, r.message) for r in accepted.refused] == [
        ("$.deliveries[2].key", "the send was suppressed: nothing went out")
    ]
    assert [(d.kind, d.provider_event_id, d.channel) for d in new] == [("delivered", "7", "sms")]
    again, new = webhook.receive(body, RECEIVED + 1)
    assert (again.new, again.duplicates, new) == (0, 2, [])
    assert Deliveries(store).counts() == {("delivered", "sms"): 1}
    assert [e.name for e in store.events_after(0)] == ["message_delivered"]


def test_a_report_on_a_merged_users_send_is_the_known_users(store: Store) -> None:
    parsed = parse_call(
        {"type": "alias", "previousId": "anon-1", "userId": "u1", "messageId": "a1"}, RECEIVED
    )
    store.append_events(parsed)
    later = "2026-01-05T10:10:00Z"  # after its arrival: taken as its arrival
    body = {"deliveries": [{"key": "k-mail", "event": "unsubscribed", "timestamp": later}]}
    DeliveryWebhook(store).receive(body, RECEIVED)
    events = [e for e in store.events_after(0) if e.name != "alias"]
    assert [(e.user_id, e.name, e.at_ms) for e in events] == [
        ("u1", "identify", RECEIVED),
        ("u1", "message_unsubscribed", RECEIVED),
    ]
    assert store.get_profile("u1") == {"email_unsubscribed": True}
    (row,) = store.conn.execute("SELECT user_id, at FROM deliveries").fetchall()
    assert row == ("u1", RECEIVED)


def test_nothing_of_a_body_stays_when_the_transaction_around_it_fails(store: Store) -> None:
    body = {"deliveries": [{"key": "k-mail", "event": "bounced", "bounce": "hard"}]}
    with pytest.raises(RuntimeError), store.transaction():
        assert DeliveryWebhook(store).receive(body, RECEIVED)[0].new == 1
        raise RuntimeError("the commit never comes")
    assert Deliveries(store).counts() == {}
    assert store.events_after(0) == []
    assert store.get_profile("anon-1") == {}


SENDS = {"k-mail": "email", "k-sms": "sms", "k-push": "push", "k-inapp": "inapp"}


def with_bounce(report: dict[str, Any]) -> dict[str, Any]:
    """A bounced report gets its type: hard for id e1, soft for the others."""
    if report["event"] != "bounced":
        return report
    return {**report, "bounce": "hard" if report["id"] == "e1" else "soft"}


report_items = st.fixed_dictionaries(
    {
        "key": st.sampled_from([*SENDS, "k-unknown"]),
        "event": st.sampled_from(["delivered", "opened", "bounced", "complained", "unsubscribed"]),
        "id": st.sampled_from(["e1", "e2", "e3"]),
    }
).map(with_bounce)


@given(bodies=st.lists(st.lists(report_items, max_size=6), max_size=5))
def test_what_is_stored_logged_and_turned_off_follows_the_distinct_reports(
    bodies: list[list[dict[str, Any]]],
) -> None:
    with Store.open(":memory:") as mem:
        with mem.transaction() as conn:
            conn.executemany(
                "INSERT INTO outbox (key, journey_id, user_id, step, channel, message, status,"
                " created_at) VALUES (?, 'j', 'u1', 's', ?, 'm', 'sent', 0)",
                list(SENDS.items()),
            )
        webhook = DeliveryWebhook(mem)
        new = 0
        for i, body in enumerate(bodies):
            accepted, _ = webhook.receive({"deliveries": body}, RECEIVED + i)
            new += accepted.new
            assert accepted.new + accepted.duplicates + len(accepted.refused) == len(body)
        reports = {
            (r["key"], r["event"], r["id"]): r
            for body in bodies
            for r in body
            if r["key"] != "k-unknown"
        }
        stored = mem.conn.execute(
            "SELECT outbox_key, kind, provider_event_id FROM deliveries"
        ).fetchall()
        assert new == len(reports) and sorted(stored) == sorted(reports)
        events = mem.events_after(0, limit=10_000)
        assert sorted(e.name for e in events if e.name != "identify") == sorted(
            f"message_{kind}" for _, kind, _ in reports
        )
        # The first report of a report's (key, kind, id) is the one stored: its bounce.
        firsts: dict[tuple[str, str, str], dict[str, Any]] = {}
        for body in bodies:
            for r in body:
                firsts.setdefault((r["key"], r["event"], r["id"]), r)
        expected: dict[str, bool] = {}
        for (key, _, _), r in firsts.items():
            if key in SENDS and consent_change(r["event"], r.get("bounce"), SENDS[key]):
                expected.update(CONSENT[SENDS[key]])
        assert mem.get_profile("u1") == expected


def test_without_a_deliveries_secret_the_route_refuses_everything(tmp_path: Path) -> None:
    from journeyc.serve.api import create_app
    from tests.test_api import running_server

    app = create_app(tmp_path / "store.db", write_key="w", admin_token="a")
    body = b'{"deliveries": []}'
    with running_server(app) as url:
        reply = httpx.post(
            f"{url}/v1/deliveries",
            content=body,
            headers={"Journeyc-Signature": sign("", body, int(time.time()))},
            timeout=10,
        )
    assert reply.status_code == 401
    assert reply.json()["error"] == "this server has no deliveries secret"


# ---------------------------------------------------------------- the language


def test_journeys_may_wait_for_enter_on_and_aim_at_the_delivery_events(tmp_path: Path) -> None:
    write_file(
        tmp_path / "j.journey",
        """\
journey follow_up "E-mail, then push when it is not opened"
  when signed_up
  goal message_clicked where event.journey == "follow_up" within 7d
  send email hello as mail
  wait for message_opened where event.step == "mail" up to 2d as read
    on timeout
      send push "Hello again" as again

journey bounced "Told of a bounce"
  when message_bounced where event.bounce == "hard"
  exit when message_unsubscribed
  send push "Please check your e-mail address" as check

message hello
  email
    subject "Hello"
    text "Hello"
""",
    )
    diagnostics = check_project(load_project([tmp_path]))
    assert [d for d in diagnostics if d.is_error] == []
    assert {d.code for d in diagnostics} <= {"unknown_event"}  # warnings at most


# ---------------------------------------------------------------- end to end

PROJECT = """\
journey greet "A push, and thanks once it is opened"
  when greeted
  entry always
  send push "Hello" as hi
  wait for message_opened where event.step == "hi" up to 1d as read
    on message_opened
      send push "Thanks for reading" as thanks

journey mail "A note by e-mail, else by push"
  when mailed
  entry always
  send email or push note as note

message note
  email
    subject "A note"
    text "Hello by mail"
  push
    title "A note"
    body "Hello by push"
"""


class Served:
    """One daemon for the module's tests (users kept apart), channels in files."""

    def __init__(self, root: Path, daemon: Daemon) -> None:
        self.root = root
        self.daemon = daemon
        self.secret = daemon.env.get("JOURNEYC_DELIVERIES_SECRET", "")

    @property
    def url(self) -> str:
        return self.daemon.url

    def sent(self, channel: str) -> list[dict[str, Any]]:
        path = self.root / f"{channel}.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line]

    def wait_sent(self, channel: str, user: str, step: str, n: int = 1) -> dict[str, Any]:
        def found() -> list[dict[str, Any]]:
            rows = [r for r in self.sent(channel) if r["user_id"] == user and r["step"] == step]
            return rows if len(rows) >= n else []

        return poll(found, 15, f"{channel} {step} #{n} to {user}")[n - 1]

    def greeted(self, user: str) -> str:
        """A push-enabled user greeted: the key of the push they got."""
        self.daemon.identify(user, push_enabled=True)
        self.daemon.track(user, "greeted")
        return str(self.wait_sent("push", user, "hi")["key"])

    def post(
        self, body: object, *, secret: str | None = None, at: float | None = None, raw: bytes = b""
    ) -> httpx.Response:
        data = raw or json.dumps(body).encode()
        header = sign(secret or self.secret, data, int(time.time() if at is None else at))
        return httpx.post(
            f"{self.url}/v1/deliveries",
            content=data,
            headers={"Content-Type": "application/json", "Journeyc-Signature": header},
            timeout=10,
        )

    def rows(self, sql: str, *args: object) -> list[tuple[Any, ...]]:
        conn = sqlite3.connect(f"file:{self.root / 'store.db'}?mode=ro", uri=True, timeout=10)
        try:
            return conn.execute(sql, args).fetchall()
        finally:
            conn.close()

    def deliveries(self, user: str) -> list[tuple[Any, ...]]:
        return self.rows(
            "SELECT outbox_key, kind, channel, provider_event_id, detail FROM deliveries"
            " WHERE user_id = ? ORDER BY id",
            user,
        )

    def events(self, user: str, name: str) -> list[dict[str, Any]]:
        rows = self.rows(
            "SELECT props FROM events WHERE user_id = ? AND name = ? ORDER BY seq", user, name
        )
        return [json.loads(props) for (props,) in rows]


def file_channels_project(root: Path, *channels: str) -> Path:
    """:data:`PROJECT` in ``root/journeys``, each channel writing ``root/CHANNEL.jsonl``."""
    write_file(root / "journeys" / "main.journey", PROJECT)
    sections = [
        f'[channels.{c}]\nprovider = "file"\npath = "{root / f"{c}.jsonl"}"\n' for c in channels
    ]
    write_file(root / "journeyc.toml", "\n".join(sections))
    return root


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = file_channels_project(tmp_path_factory.mktemp("deliveries"), "push", "email")
    env = {**key_env(), "JOURNEYC_DELIVERIES_SECRET": SECRET}
    daemon = Daemon(serve_args(root), root, env=env)
    try:
        daemon.start()
        yield Served(root, daemon)
    finally:
        daemon.kill()


@pytest.mark.e2e
def test_an_open_is_logged_as_an_event_and_a_waiting_journey_goes_on(served: Served) -> None:
    served.daemon.identify("ana", push_enabled=True)
    served.daemon.track("ana", "greeted")
    hello = served.wait_sent("push", "ana", "hi")
    assert hello["key"] == "greet:ana:1:hi"

    body = {
        "deliveries": [
            {"key": hello["key"], "event": "delivered", "id": "evt-1"},
            {"key": hello["key"], "event": "opened", "id": "evt-2", "detail": {"device": "ios"}},
        ]
    }
    reply = served.post(body)
    assert reply.status_code == 200, reply.text
    assert reply.json() == {
        "success": True,
        "received": 2,
        "new": 2,
        "duplicates": 0,
        "refused": [],
    }
    thanks = served.wait_sent("push", "ana", "thanks")
    assert thanks["content"]["body"] == "Thanks for reading"
    assert served.events("ana", "message_opened") == [
        {"journey": "greet", "step": "hi", "message": "", "channel": "push", "key": hello["key"]}
    ]
    assert [r[:4] for r in served.deliveries("ana")] == [
        (hello["key"], "delivered", "push", "evt-1"),
        (hello["key"], "opened", "push", "evt-2"),
    ]
    assert json.loads(served.deliveries("ana")[1][4]) == {"device": "ios"}

    # The provider sends the same reports again: nothing new, no second event.
    again = served.post(body)
    assert again.json() == {
        "success": True,
        "received": 2,
        "new": 0,
        "duplicates": 2,
        "refused": [],
    }
    assert len(served.events("ana", "message_opened")) == 1
    assert len(served.deliveries("ana")) == 2

    metrics = httpx.get(f"{served.url}/metrics", timeout=10).text
    assert 'journeyc_deliveries_total{channel="push",kind="opened"} 1.0' in metrics
    status = subprocess.run(
        [
            sys.executable,
            "-m",
            "journeyc",
            "status",
            "--db",
            str(served.root / "store.db"),
            "--json",
        ],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert json.loads(status.stdout)["deliveries"]["opened"]["push"] >= 1


@pytest.mark.e2e
def test_a_hard_bounce_turns_email_off_and_the_next_send_falls_back_to_push(
    served: Served,
) -> None:
    served.daemon.identify("ben", email="ben@example.com", push_enabled=True)
    served.daemon.identify("cy", email="cy@example.com", push_enabled=True)
    served.daemon.track("ben", "mailed")
    served.daemon.track("cy", "mailed")
    mail = served.wait_sent("email", "ben", "note")
    cy_mail = served.wait_sent("email", "cy", "note")

    reply = served.post(
        {
            "deliveries": [
                {"key": mail["key"], "event": "bounced", "bounce": "hard", "id": "b1"},
                {"key": cy_mail["key"], "event": "bounced", "bounce": "soft", "id": "b2"},
            ]
        }
    )
    assert reply.json()["new"] == 2
    assert served.daemon.admin("/v1/users/ben")["traits"]["email_unsubscribed"] is True
    assert "email_unsubscribed" not in served.daemon.admin("/v1/users/cy")["traits"]
    # The change is an identify in the log (auditable, and segments recheck on it).
    assert served.events("ben", "identify")[-1] == {"email_unsubscribed": True}
    assert served.events("ben", "message_bounced")[0]["bounce"] == "hard"

    served.daemon.track("ben", "mailed")
    served.daemon.track("cy", "mailed")
    pushed = served.wait_sent("push", "ben", "note")
    assert pushed["key"] == "mail:ben:2:note"
    assert pushed["content"]["body"] == "Hello by push"
    served.wait_sent("email", "cy", "note", n=2)  # a soft bounce leaves e-mail on
    assert len([r for r in served.sent("email") if r["user_id"] == "ben"]) == 1


@pytest.mark.e2e
def test_an_unsigned_badly_signed_or_stale_request_is_401_and_stores_nothing(
    served: Served,
) -> None:
    key = served.greeted("dee")
    body = {"deliveries": [{"key": key, "event": "opened", "id": "x"}]}
    data = json.dumps(body).encode()
    for reply in (
        served.post(body, secret="wrong secret"),
        served.post(body, at=time.time() - TOLERANCE_S - 60),
        served.post(body, at=time.time() + TOLERANCE_S + 60),
        httpx.post(f"{served.url}/v1/deliveries", content=data, timeout=10),
        httpx.post(
            f"{served.url}/v1/deliveries",
            content=data + b" ",  # signed, then changed on the way
            headers={"Journeyc-Signature": sign(SECRET, data, int(time.time()))},
            timeout=10,
        ),
    ):
        assert reply.status_code == 401, reply.text
        assert reply.json()["code"] == "unauthorized"
    # Neither the write key nor the admin token signs deliveries.
    assert served.post(body, secret=served.daemon.write_key).status_code == 401
    assert served.post(body, secret=served.daemon.admin_token).status_code == 401
    assert served.deliveries("dee") == []
    assert served.events("dee", "message_opened") == []


@pytest.mark.e2e
def test_a_bad_payload_is_400_naming_the_json_path_and_stores_nothing_of_the_batch(
    served: Served,
) -> None:
    key = served.greeted("eve")
    reply = served.post(
        {
            "deliveries": [
                {"key": key, "event": "opened", "id": "ok"},
                {"key": key, "event": "delivered", "id": "ok2"},
                {"key": key, "event": "read", "id": "bad"},
            ]
        }
    )
    assert reply.status_code == 400
    assert reply.json()["code"] == "invalid_delivery"
    assert [p["path"] for p in reply.json()["problems"]] == ["$.deliveries[2].event"]
    assert reply.json()["error"].startswith("$.deliveries[2].event: expected one of")
    not_json = served.post(None, raw=b'{"deliveries": [')
    assert not_json.status_code == 400 and not_json.json()["code"] == "invalid_json"
    assert served.deliveries("eve") == []
    assert served.events("eve", "message_opened") == []


@pytest.mark.e2e
def test_a_gzipped_body_is_signed_as_it_reads_uncompressed(served: Served) -> None:
    key = served.greeted("ivy")
    data = json.dumps({"deliveries": [{"key": key, "event": "delivered"}]}).encode()
    reply = httpx.post(
        f"{served.url}/v1/deliveries",
        content=gzip.compress(data),
        headers={
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
            "Journeyc-Signature": sign(SECRET, data, int(time.time())),
        },
        timeout=10,
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["new"] == 1


@pytest.mark.e2e
def test_an_unknown_key_is_refused_by_its_path_and_the_rest_is_taken(served: Served) -> None:
    key = served.greeted("fay")
    reply = served.post(
        {
            "deliveries": [
                {"key": "greet:nobody:1:hi", "event": "opened"},
                {"key": key, "event": "delivered"},
            ]
        }
    )
    assert reply.status_code == 200
    assert reply.json() == {
        "success": True,
        "received": 2,
        "new": 1,
        "duplicates": 0,
        "refused": [
            {"path": "$.deliveries[0].key", "message": 'no send has the key "greet:nobody:1:hi"'}
        ],
    }
    assert [r[1] for r in served.deliveries("fay")] == ["delivered"]


@pytest.mark.e2e
def test_forgetting_a_user_removes_their_deliveries(served: Served) -> None:
    key = served.greeted("gus")
    assert served.post({"deliveries": [{"key": key, "event": "delivered"}]}).json()["new"] == 1
    reply = httpx.delete(
        f"{served.url}/v1/users/gus",
        headers={"Authorization": f"Bearer {served.daemon.admin_token}"},
        timeout=10,
    )
    assert reply.status_code == 200
    assert reply.json()["removed"]["deliveries"] == 1
    assert served.deliveries("gus") == []
    # A report on a forgotten send is refused as unknown, not stored again.
    late = served.post({"deliveries": [{"key": key, "event": "opened"}]}).json()
    assert late["new"] == 0 and late["refused"][0]["path"] == "$.deliveries[0].key"
    assert served.deliveries("gus") == []


# ---------------------------------------------------------------- the secret and the docs


@pytest.mark.e2e
def test_the_secret_is_generated_once_printed_and_the_docs_examples_work(
    tmp_path: Path, daemons: list[Daemon]
) -> None:
    file_channels_project(tmp_path, "push")
    env = clean_env(JOURNEYC_WRITE_KEY="w", JOURNEYC_ADMIN_TOKEN="a")
    daemon = Daemon(serve_args(tmp_path), tmp_path, env=env)
    daemons.append(daemon)
    daemon.start()
    found = re.search(r"deliveries secret\s+(\S+)\s+\(generated once", daemon.log())
    assert found, daemon.log()
    secret = found.group(1)
    assert secret not in ("w", "a")

    daemon.identify("hal", push_enabled=True)
    daemon.track("hal", "greeted")
    served = Served(tmp_path, daemon)
    key = served.wait_sent("push", "hal", "hi")["key"]
    example_env = {
        **os.environ,
        "JOURNEYC_URL": daemon.url,
        "JOURNEYC_DELIVERIES_SECRET": secret,
        "KEY": key,
    }
    for program in (
        [sys.executable, "-c", doc_blocks("python")[0]],
        ["bash", "-c", doc_blocks("bash")[0]],
    ):
        ran = subprocess.run(
            program, env=example_env, capture_output=True, text=True, timeout=30, check=False
        )
        assert ran.returncode == 0, ran.stderr
        assert json.loads(ran.stdout)["new"] == 1
    assert [r[1] for r in served.deliveries("hal")] == ["opened", "delivered"]
    served.wait_sent("push", "hal", "thanks")

    # A restart keeps the secret it generated.
    assert daemon.stop() == 0
    daemon.start()
    again = re.findall(r"deliveries secret\s+(\S+)\s+\(generated once", daemon.log())
    assert again == [secret, secret]


def doc_blocks(info: str) -> list[str]:
    text = (ROOT / "docs" / "deliveries.md").read_text(encoding="utf-8")
    return re.findall(rf"^```{info}\n(.*?)^```$", text, re.M | re.S)


DSN = b"""\
From: MAILER-DAEMON@mx.shop.example
To: bounces@shop.example
Subject: Undelivered Mail Returned to Sender
Message-ID: <20260105103100.ABC123@mx.shop.example>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="b1"

--b1
Content-Type: text/plain

Your message could not be delivered.

--b1
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.shop.example

Final-Recipient: rfc822; ben@example.com
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 <ben@example.com>: Recipient address rejected

--b1
Content-Type: text/rfc822-headers

From: shop@example.com
To: ben@example.com
Subject: A note
X-Journeyc-Key: mail:ben:1:note

--b1--
"""

ARF = b"""\
From: fbl@mailbox.example
To: fbl@shop.example
Message-ID: <fbl-1@mailbox.example>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="b2"

--b2
Content-Type: text/plain

This is an abuse report.

--b2
Content-Type: message/feedback-report

Feedback-Type: abuse
Version: 1

--b2
Content-Type: message/rfc822

From: shop@example.com
To: ben@example.com
Subject: A note
X-Journeyc-Key: mail:ben:1:note

Hello by mail
--b2--
"""


def test_the_worked_examples_map_provider_reports_to_valid_payloads() -> None:
    _, mail, twilio = doc_blocks("python")
    scope: dict[str, Any] = {"__name__": "docs"}
    exec(mail, scope)
    exec(twilio, scope)
    bounced = scope["mail_reports"](DSN)
    assert bounced == [
        {
            "key": "mail:ben:1:note",
            "id": "<20260105103100.ABC123@mx.shop.example>",
            "event": "bounced",
            "bounce": "hard",
            "detail": {"status": "5.1.1"},
        }
    ]
    assert scope["mail_reports"](DSN.replace(b"5.1.1", b"4.2.2"))[0]["bounce"] == "soft"
    assert scope["mail_reports"](ARF) == [
        {"key": "mail:ben:1:note", "id": "<fbl-1@mailbox.example>", "event": "complained"}
    ]
    assert scope["mail_reports"](DSN.replace(b"X-Journeyc-Key", b"X-Other")) == []

    def sms(status: str, error: str = "") -> dict[str, Any] | None:
        form = {"MessageSid": "SM1", "MessageStatus": status, "ErrorCode": error}
        report: dict[str, Any] | None = scope["twilio_report"]("sms:ben:1:hi", form)
        return report

    assert sms("delivered") == {"key": "sms:ben:1:hi", "id": "SM1:delivered", "event": "delivered"}
    assert sms("read") == {"key": "sms:ben:1:hi", "id": "SM1:read", "event": "opened"}
    assert sms("sent") is None
    assert sms("failed", "21610")["event"] == "unsubscribed"  # type: ignore[index]
    assert sms("undelivered", "30005")["bounce"] == "hard"  # type: ignore[index]
    assert sms("undelivered", "30003")["bounce"] == "soft"  # type: ignore[index]
    reports = [*bounced, *scope["mail_reports"](ARF), sms("failed", "21610"), sms("read")]
    assert len(parse_reports({"deliveries": reports})) == 4  # what journeyc takes


def test_the_documented_sms_channel_carries_the_key_in_its_status_callback(
    tmp_path: Path,
) -> None:
    from journeyc.channels import build_providers
    from journeyc.channels.base import OutboundMessage
    from journeyc.config import load_config
    from tests.test_channels import HttpReceiver

    text = (ROOT / "docs" / "deliveries.md").read_text(encoding="utf-8")
    (block,) = re.findall(r"^```toml\n(.*?)^```$", text, re.M | re.S)
    receiver = HttpReceiver()
    try:
        config = tmp_path / "journeyc.toml"
        config.write_text(re.sub(r'^url = ".*"$', f'url = "{receiver.url}/sms"', block, flags=re.M))
        provider = build_providers(load_config(config), tmp_path)["sms"]
        key = "cart:u 1&x=2:1:nudge"  # a user id may hold anything
        provider.send(
            OutboundMessage(
                key,
                "sms",
                "u 1&x=2",
                "cart",
                "nudge",
                "",
                {"body": "Hi & bye"},
                {"phone": "+6620000001"},
            )
        )
        (request,) = receiver.requests
    finally:
        receiver.stop()
    form = urllib.parse.parse_qs(request.body.decode())
    assert form["Body"] == ["Hi & bye"] and form["To"] == ["+6620000001"]
    callback = urllib.parse.urlsplit(form["StatusCallback"][0])
    assert callback.netloc == "hooks.shop.example"
    assert urllib.parse.parse_qs(callback.query) == {"key": [key]}


def test_the_secret_comes_from_the_config_else_the_environment_else_the_store(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from journeyc.config import Config
    from journeyc.serve.daemon import DELIVERIES_SECRET_ENV, resolve_keys

    kept: dict[str, str] = {}

    def setting(name: str, default: Callable[[], str]) -> str:
        return kept.setdefault(name, default())

    for env in ("JOURNEYC_WRITE_KEY", "JOURNEYC_ADMIN_TOKEN", DELIVERIES_SECRET_ENV):
        monkeypatch.delenv(env, raising=False)
    configured = Config.model_validate({"server": {"deliveries_secret": "from-toml"}})
    monkeypatch.setenv(DELIVERIES_SECRET_ENV, "from-env")
    assert resolve_keys(configured, setting).deliveries_secret.value == "from-toml"
    assert resolve_keys(Config(), setting).deliveries_secret.source == "env"
    monkeypatch.delenv(DELIVERIES_SECRET_ENV)
    generated = resolve_keys(Config(), setting)
    assert generated.deliveries_secret.source == "store"
    assert generated.deliveries_secret.value == kept["deliveries_secret"]
    assert len({kept["write_key"], kept["admin_token"], kept["deliveries_secret"]}) == 3
