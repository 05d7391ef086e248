"""The HTTP API over a real uvicorn server and a real SQLite file.

Every status code the API promises is driven here: Segment-style ingest (auth,
limits, bad input, all-or-nothing batches, idempotency, commit before 200), the
admin API, health, metrics and the OpenAPI document.
"""

from __future__ import annotations

import base64
import fcntl
import gzip
import json
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from journeyc.serve.api import MAX_BATCH_BYTES, MAX_EVENT_BYTES, create_app
from journeyc.serve.metrics import Metrics
from journeyc.store.errors import OperationalError
from journeyc.store.sqlite import LOCK_SUFFIX, Store

WRITE_KEY = "wk_test_123"
ADMIN_TOKEN = "admin-secret"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def basic(user: str, password: str = "") -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


AUTH = basic(WRITE_KEY)


@contextmanager
def running_server(app: FastAPI) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free 127.0.0.1 port in a thread; yield its URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def read_rows(path: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Rows from a connection of our own, so only committed data is seen."""
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute(sql, params).fetchall()


@dataclass
class Api:
    url: str
    db: Path
    client: httpx.Client
    calls: list[int] = field(default_factory=list)

    def events(self) -> list[tuple[Any, ...]]:
        return read_rows(
            self.db, "SELECT message_id, user_id, name, at, props FROM events ORDER BY seq"
        )


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    db = tmp_path / "journeyc.db"
    calls: list[int] = []

    def on_events() -> None:
        # What the engine would see when woken: committed events only.
        calls.append(len(read_rows(db, "SELECT seq FROM events")))

    app = create_app(
        db,
        write_key=WRITE_KEY,
        admin_token=ADMIN_TOKEN,
        on_events=on_events,
        status=lambda: {"scheduler": "running"},
    )
    with running_server(app) as url, httpx.Client(base_url=url, timeout=10) as client:
        yield Api(url, db, client, calls)


def track(**overrides: Any) -> dict[str, Any]:
    call: dict[str, Any] = {
        "userId": "u1",
        "event": "Order Completed",
        "properties": {"total": 42.5, "items": ["a", "b"]},
        "timestamp": "2024-05-01T10:00:00Z",
        "messageId": "m-1",
    }
    call.update(overrides)
    return call


def assert_error(response: httpx.Response, status: int, *fragments: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert isinstance(body["error"], str) and body["error"]
    for fragment in fragments:
        assert fragment in body["error"], body
    return body


# ---------------------------------------------------------------- ingest: success


def test_track_is_committed_before_200(api: Api) -> None:
    response = api.client.post("/v1/track", json=track(), headers=AUTH)
    assert response.status_code == 200
    assert response.json() == {"success": True}
    # Read right after the 200 through a different connection: it is committed.
    assert api.events() == [
        ("m-1", "u1", "order_completed", 1714557600000, '{"total":42.5,"items":["a","b"]}')
    ]


def test_on_events_runs_after_the_commit(api: Api) -> None:
    api.client.post("/v1/track", json=track(), headers=AUTH)
    api.client.post(
        "/v1/batch", json={"batch": [track(messageId="m-2", type="track")]}, headers=AUTH
    )
    # Each call saw its own events already in the file.
    assert api.calls == [1, 2]


def test_duplicate_message_id_is_accepted_and_stored_once(api: Api) -> None:
    for _ in range(2):
        response = api.client.post("/v1/track", json=track(), headers=AUTH)
        assert response.status_code == 200
    batch = {"batch": [track(type="track"), track(type="track", messageId="m-2")]}
    assert api.client.post("/v1/batch", json=batch, headers=AUTH).status_code == 200
    assert [row[0] for row in api.events()] == ["m-1", "m-2"]
    # Nothing new, nothing to wake the engine for.
    assert api.calls == [1, 2]


def test_identify_updates_the_profile(api: Api) -> None:
    call = {"userId": "u1", "traits": {"email": "ada@example.com", "plan": "pro"}}
    assert api.client.post("/v1/identify", json=call, headers=AUTH).status_code == 200
    assert read_rows(api.db, "SELECT traits FROM profiles WHERE user_id = 'u1'") == [
        ('{"email":"ada@example.com","plan":"pro"}',)
    ]


def test_short_aliases_take_calls(api: Api) -> None:
    assert api.client.post("/v1/t", json=track(), headers=AUTH).status_code == 200
    identify = {"userId": "u1", "traits": {"a": 1}}
    assert api.client.post("/v1/i", json=identify, headers=AUTH).status_code == 200
    assert [row[2] for row in api.events()] == ["order_completed", "identify"]


def test_batch_of_track_and_identify(api: Api) -> None:
    batch = {
        "batch": [
            {"type": "identify", "userId": "u1", "traits": {"plan": "pro"}, "messageId": "i-1"},
            track(type="track", messageId="t-1"),
            {"type": "track", "userId": 7, "event": "Viewed", "messageId": "t-2"},
        ]
    }
    assert api.client.post("/v1/batch", json=batch, headers=AUTH).status_code == 200
    assert [row[:3] for row in api.events()] == [
        ("i-1", "u1", "identify"),
        ("t-1", "u1", "order_completed"),
        ("t-2", "7", "viewed"),
    ]


def test_missing_timestamp_takes_the_server_clock(api: Api) -> None:
    before = time.time_ns() // 1_000_000
    call = track()
    del call["timestamp"]
    assert api.client.post("/v1/track", json=call, headers=AUTH).status_code == 200
    after = time.time_ns() // 1_000_000
    [(at, received)] = read_rows(api.db, "SELECT at, received_at FROM events")
    assert before <= at == received <= after


def test_gzip_body_is_accepted(api: Api) -> None:
    body = gzip.compress(json.dumps({"batch": [track(type="track")]}).encode())
    headers = {**AUTH, "Content-Encoding": "gzip", "Content-Type": "application/json"}
    assert api.client.post("/v1/batch", content=body, headers=headers).status_code == 200
    assert len(api.events()) == 1


def test_on_events_failure_does_not_fail_a_committed_call(tmp_path: Path) -> None:
    def broken() -> None:
        raise RuntimeError("engine is down")

    app = create_app(
        tmp_path / "s.db", write_key=WRITE_KEY, admin_token=ADMIN_TOKEN, on_events=broken
    )
    with running_server(app) as url:
        response = httpx.post(f"{url}/v1/track", json=track(), headers=AUTH)
    assert response.status_code == 200
    assert len(read_rows(tmp_path / "s.db", "SELECT 1 FROM events")) == 1


# ---------------------------------------------------------------- ingest: auth


def test_write_key_in_the_body_is_accepted(api: Api) -> None:
    response = api.client.post("/v1/track", json=track(writeKey=WRITE_KEY))
    assert response.status_code == 200
    assert len(api.events()) == 1


@pytest.mark.parametrize(
    ("headers", "body", "reason"),
    [
        ({}, track(), "no write key"),
        (basic("wrong"), track(), "wrong write key"),
        ({}, track(writeKey="wrong"), "wrong write key"),
        ({}, track(writeKey=""), "no write key"),
        (basic(WRITE_KEY, "pw"), track(), "password must be empty"),
        # A wrong header key is not rescued by a right body key.
        (basic("wrong"), track(writeKey=WRITE_KEY), "wrong write key"),
        ({"Authorization": "Basic !!!not-base64"}, track(), "authenticat"),
        ({"Authorization": f"Bearer {WRITE_KEY}"}, track(), "no write key"),
    ],
)
def test_wrong_or_missing_write_key_is_401(
    api: Api, headers: dict[str, str], body: dict[str, Any], reason: str
) -> None:
    response = api.client.post("/v1/track", json=body, headers=headers)
    assert_error(response, 401, reason)
    assert response.headers["www-authenticate"].startswith("Basic")
    assert api.events() == []


def test_unauthenticated_garbage_is_401_not_400(api: Api) -> None:
    # Without a key we say nothing about the body.
    assert_error(api.client.post("/v1/track", content=b"{nope"), 401, "no write key")


# ---------------------------------------------------------------- ingest: limits


def test_event_over_32_kb_is_413(api: Api) -> None:
    call = track(properties={"blob": "x" * (33 * 1024)})
    assert_error(api.client.post("/v1/track", json=call, headers=AUTH), 413, "32 KB")
    assert api.events() == []


def test_event_just_under_32_kb_is_taken(api: Api) -> None:
    call = track(properties={"blob": ""})
    room = MAX_EVENT_BYTES - len(json.dumps(call).encode())
    call["properties"]["blob"] = "x" * room
    assert len(json.dumps(call).encode()) == MAX_EVENT_BYTES
    assert api.client.post("/v1/track", json=call, headers=AUTH).status_code == 200


def test_batch_over_500_kb_is_413(api: Api) -> None:
    items = [
        track(type="track", messageId=f"m-{i}", properties={"blob": "x" * 20_000})
        for i in range(26)
    ]
    body = json.dumps({"batch": items}).encode()
    assert 501 * 1024 <= len(body) < 520 * 1024
    response = api.client.post("/v1/batch", content=body, headers=AUTH)
    assert_error(response, 413, "500 KB")
    assert api.events() == []


def test_batch_item_over_32_kb_is_413_naming_it(api: Api) -> None:
    items = [
        track(type="track"),
        track(type="track", messageId="m-2", properties={"b": "x" * 33_000}),
    ]
    response = api.client.post("/v1/batch", json={"batch": items}, headers=AUTH)
    assert_error(response, 413, "$.batch[1]", "32 KB")
    assert api.events() == []


def test_gzip_bomb_is_413(api: Api) -> None:
    body = gzip.compress(b'{"batch": [' + b" " * (5 * MAX_BATCH_BYTES) + b"]}")
    assert len(body) < 10_000
    headers = {**AUTH, "Content-Encoding": "gzip"}
    assert_error(api.client.post("/v1/batch", content=body, headers=headers), 413)


def test_bad_gzip_is_400(api: Api) -> None:
    headers = {**AUTH, "Content-Encoding": "gzip"}
    assert_error(api.client.post("/v1/batch", content=b"not gzip", headers=headers), 400, "gzip")
    cut = gzip.compress(json.dumps({"batch": []}).encode())[:-6]
    assert_error(api.client.post("/v1/batch", content=cut, headers=headers), 400, "cut short")


def test_streamed_body_without_length_is_capped(api: Api) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"batch": ['
        for _ in range(40):
            yield b" " * 16_384

    response = api.client.post("/v1/batch", content=chunks(), headers=AUTH)
    assert_error(response, 413, "500 KB")


# ---------------------------------------------------------------- ingest: bad input


@pytest.mark.parametrize(
    ("content", "headers", "status", "reason"),
    [
        (b'{"userId": "u1", "event": ', {}, 400, "not valid JSON"),
        (b"", {}, 400, "empty"),
        (b"   ", {}, 400, "empty"),
        (b"[1, 2]", {}, 400, "expected a JSON object, not an array"),
        (b'"track"', {}, 400, "not a string"),
        (b"null", {}, 400, "not null"),
        (b'{"userId": "u1", "event": "x", "properties": {"n": NaN}}', {}, 400, "NaN"),
        (b"\xff\xfe{}", {}, 400, "UTF-8"),
        (b"[" * 10_000 + b"]" * 10_000, {}, 400, "JSON"),
        (b"userId=u1", {"Content-Type": "application/x-www-form-urlencoded"}, 415, "JSON"),
        (b"{}", {"Content-Type": "multipart/form-data; boundary=x"}, 415, "JSON"),
        (b"{}", {"Content-Encoding": "br"}, 415, "Content-Encoding"),
    ],
)
def test_malformed_bodies_are_4xx_with_a_reason(
    api: Api, content: bytes, headers: dict[str, str], status: int, reason: str
) -> None:
    response = api.client.post("/v1/track", content=content, headers={**AUTH, **headers})
    assert_error(response, status, reason)


@pytest.mark.parametrize(
    ("call", "reason"),
    [
        (track(properties="big"), "$.properties: expected an object"),
        (track(event=12), "$.event: expected a string"),
        (track(event=""), "$.event: must not be empty"),
        (track(timestamp="yesterday"), "$.timestamp: not an ISO-8601 time"),
        (track(timestamp=1714557600), "$.timestamp: expected an ISO-8601 time string"),
        (track(userId=None), "$.userId/anonymousId: one is required"),
        (track(userId=["u1"]), "$.userId"),
        (track(type="identify"), '$.type: expected "track" here'),
        (track(type="page"), "$.type"),
        (track(messageId=5), "$.messageId: expected a string"),
    ],
)
def test_bad_event_is_400_naming_the_field(api: Api, call: dict[str, Any], reason: str) -> None:
    body = assert_error(api.client.post("/v1/track", json=call, headers=AUTH), 400, reason)
    assert body["code"] == "invalid_event"
    assert body["problems"] and all(p["path"].startswith("$") for p in body["problems"])
    assert api.events() == []


def test_missing_user_id(api: Api) -> None:
    call = track()
    del call["userId"]
    response = api.client.post("/v1/track", json=call, headers=AUTH)
    body = assert_error(response, 400, "$.userId/anonymousId: one is required")
    assert body["problems"] == [{"path": "$.userId/anonymousId", "message": "one is required"}]


def test_batch_with_one_bad_event_stores_nothing(api: Api) -> None:
    items = [track(type="track", messageId=f"m-{i}") for i in range(5)]
    del items[3]["event"]
    items.append({"type": "identify", "userId": "u2", "traits": {"plan": "pro"}})
    response = api.client.post("/v1/batch", json={"batch": items}, headers=AUTH)
    body = assert_error(response, 400, "$.batch[3].event: is required")
    assert body["problems"] == [{"path": "$.batch[3].event", "message": "is required"}]
    assert read_rows(api.db, "SELECT count(*) FROM events") == [(0,)]
    assert read_rows(api.db, "SELECT count(*) FROM profiles") == [(0,)]
    assert api.calls == []


@pytest.mark.parametrize(
    ("body", "reason"),
    [({}, "$.batch: is required"), ({"batch": {}}, "$.batch: expected an array")],
)
def test_batch_shape(api: Api, body: dict[str, Any], reason: str) -> None:
    assert_error(api.client.post("/v1/batch", json=body, headers=AUTH), 400, reason)


def test_unknown_route_and_method_are_json(api: Api) -> None:
    assert_error(api.client.get("/v1/nope"), 404)
    assert_error(api.client.get("/v1/track", headers=AUTH), 405)


# ---------------------------------------------------------------- admin API


def seed(db: Path) -> None:
    """Rows the engine and dispatcher would have written for two journeys."""
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.executemany(
            "INSERT INTO segment_members (user_id, segment, member, since) VALUES (?, ?, ?, ?)",
            [("u1", "buyer", 1, 2500), ("u1", "dormant", 0, 2500), ("u2", "buyer", 1, 2600)],
        )
        conn.executemany(
            "INSERT INTO journeys (id, version, ir, source, deployed_at, active)"
            " VALUES (?, ?, '{}', '', ?, ?)",
            [("cart", "v1", 1000, 0), ("cart", "v2", 2000, 1), ("welcome", "w1", 1500, 1)],
        )
        conn.executemany(
            "INSERT INTO instances (id, journey_id, version, user_id, entry_no, node, status,"
            " entered_at, wake_at, waiting_for) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (1, "cart", "v2", "u1", 1, "remind", "waiting", 3000, 9000, None),
                (2, "welcome", "w1", "u1", 1, "wait_open", "waiting", 3100, None, "email_opened"),
                (3, "cart", "v2", "u2", 1, "remind", "waiting", 3200, 9100, None),
                (4, "welcome", "w1", "u2", 1, "end", "completed", 3300, None, None),
            ],
        )
        conn.executemany(
            "INSERT INTO entries (journey_id, user_id, entry_no, entered_at, goal_at, arm,"
            " holdout) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                ("cart", "u1", 1, 3000, None, "A", 0),
                ("cart", "u2", 1, 3200, 5000, "B", 0),
                ("cart", "u3", 1, 3250, 5100, "B", 0),
                ("cart", "u4", 1, 3260, None, "A", 1),
                ("welcome", "u1", 1, 3100, None, None, 0),
                ("welcome", "u2", 1, 3300, None, None, 0),
            ],
        )
        conn.executemany(
            "INSERT INTO outbox (key, instance_id, journey_id, user_id, step, channel, message,"
            " content, status, created_at, sent_at, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
            " ?, ?)",
            [
                (
                    "k1",
                    2,
                    "welcome",
                    "u1",
                    "hello",
                    "inapp",
                    "hi",
                    '{"title":"Hi"}',
                    "sent",
                    4000,
                    4001,
                    None,
                ),
                (
                    "k2",
                    2,
                    "welcome",
                    "u1",
                    "again",
                    "inapp",
                    "hi2",
                    '{"title":"Again"}',
                    "sent",
                    6000,
                    6001,
                    None,
                ),
                (
                    "k3",
                    1,
                    "cart",
                    "u1",
                    "remind",
                    "email",
                    "rem",
                    '{"subject":"S"}',
                    "queued",
                    7000,
                    None,
                    None,
                ),
                (
                    "k4",
                    3,
                    "cart",
                    "u2",
                    "remind",
                    None,
                    "",
                    "{}",
                    "suppressed",
                    7100,
                    None,
                    "quiet_hours",
                ),
                ("k5", 3, "cart", "u2", "push", "push", "p", "{}", "failed", 7200, None, "503"),
                ("k6", 1, "cart", "u1", "sms", "sms", "s", "{}", "sent", 7300, 7301, None),
                (
                    "k7",
                    1,
                    "cart",
                    "u1",
                    "push",
                    "inapp",
                    "q",
                    '{"title":"Queued"}',
                    "queued",
                    7400,
                    None,
                    None,
                ),
            ],
        )
        conn.executemany(
            "INSERT INTO actions (at, user_id, journey_id, step, action, detail)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [(3000 + i, "u1", "cart", f"s{i}", "set", json.dumps({"i": i})) for i in range(60)],
        )


ADMIN_ROUTES = [
    ("GET", "/v1/users/u1"),
    ("DELETE", "/v1/users/u1"),
    ("GET", "/v1/users/u1/inbox"),
    ("GET", "/v1/journeys"),
    ("GET", "/v1/status"),
]


@pytest.mark.parametrize(("method", "path"), ADMIN_ROUTES)
@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer nope"}, basic(WRITE_KEY), {"Authorization": "Bearer"}],
)
def test_admin_routes_need_the_admin_token(
    api: Api, method: str, path: str, headers: dict[str, str]
) -> None:
    response = api.client.request(method, path, headers=headers)
    assert_error(response, 401, "admin token")
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_get_user(api: Api) -> None:
    identify = {"userId": "u1", "traits": {"email": "ada@example.com"}}
    api.client.post("/v1/identify", json=identify, headers=AUTH)
    seed(api.db)
    response = api.client.get("/v1/users/u1", headers=ADMIN)
    assert response.status_code == 200
    body = response.json()
    assert body["user_id"] == "u1"
    assert body["traits"] == {"email": "ada@example.com"}
    assert body["journeys"] == [
        {
            "journey_id": "cart",
            "version": "v2",
            "entry_no": 1,
            "step": "remind",
            "status": "waiting",
            "entered_at": "1970-01-01T00:00:03.000Z",
            "wake_at": "1970-01-01T00:00:09.000Z",
            "waiting_for": None,
        },
        {
            "journey_id": "welcome",
            "version": "w1",
            "entry_no": 1,
            "step": "wait_open",
            "status": "waiting",
            "entered_at": "1970-01-01T00:00:03.100Z",
            "wake_at": None,
            "waiting_for": "email_opened",
        },
    ]
    assert body["segments"] == [
        {"segment": "buyer", "since": "1970-01-01T00:00:02.500Z"}
    ]  # members only
    actions = body["actions"]
    assert len(actions) == 50
    assert actions[0] == {
        "at": "1970-01-01T00:00:03.059Z",
        "journey_id": "cart",
        "step": "s59",
        "action": "set",
        "detail": {"i": 59},
    }
    assert actions[-1]["detail"] == {"i": 10}


def test_get_user_with_only_events_and_unknown_user(api: Api) -> None:
    api.client.post("/v1/track", json=track(userId="only-events"), headers=AUTH)
    body = api.client.get("/v1/users/only-events", headers=ADMIN).json()
    assert body == {
        "user_id": "only-events",
        "traits": {},
        "journeys": [],
        "segments": [],
        "actions": [],
    }
    assert_error(api.client.get("/v1/users/ghost", headers=ADMIN), 404, '"ghost"')


def test_forget_user(api: Api) -> None:
    api.client.post("/v1/identify", json={"userId": "u1", "traits": {"a": 1}}, headers=AUTH)
    api.client.post("/v1/track", json=track(), headers=AUTH)
    api.client.post("/v1/track", json=track(userId="u2", messageId="m-u2"), headers=AUTH)
    seed(api.db)
    response = api.client.delete("/v1/users/u1", headers=ADMIN)
    assert response.status_code == 200
    assert response.json() == {
        "user_id": "u1",
        "removed": {
            "outbox": 5,
            "instances": 2,
            "entries": 2,
            "actions": 60,
            "events": 2,
            "profiles": 1,
            "segment_members": 2,
            "segment_changes": 0,
            "deliveries": 0,
            "identities": 0,
        },
    }
    for table in ("events", "profiles", "instances", "outbox", "actions", "entries"):
        assert read_rows(api.db, f"SELECT count(*) FROM {table} WHERE user_id = 'u1'") == [(0,)]
    assert read_rows(api.db, "SELECT user_id FROM events") == [("u2",)]
    assert_error(api.client.get("/v1/users/u1", headers=ADMIN), 404)
    again = api.client.delete("/v1/users/u1", headers=ADMIN).json()
    assert set(again["removed"].values()) == {0}


def test_journeys_report(api: Api) -> None:
    assert api.client.get("/v1/journeys", headers=ADMIN).json() == {"journeys": []}
    seed(api.db)
    response = api.client.get("/v1/journeys", headers=ADMIN)
    assert response.status_code == 200
    assert response.json() == {
        "journeys": [
            {
                "id": "cart",
                "versions": [
                    {"version": "v1", "deployed_at": "1970-01-01T00:00:01.000Z", "active": False},
                    {"version": "v2", "deployed_at": "1970-01-01T00:00:02.000Z", "active": True},
                ],
                "instances": {"remind": 2},
                "entries": 4,
                "goals": 2,
                "arms": {"A": {"entries": 1, "goals": 0}, "B": {"entries": 2, "goals": 2}},
                "holdout": {"entries": 1, "goals": 0},
                "sends": {
                    "sent": {"sms": 1},
                    "queued": {"email": 1, "inapp": 1},
                    "failed": {"push": 1},
                },
                "suppressions": {"quiet_hours": 1},
            },
            {
                "id": "welcome",
                "versions": [
                    {"version": "w1", "deployed_at": "1970-01-01T00:00:01.500Z", "active": True}
                ],
                "instances": {"wait_open": 1},
                "entries": 2,
                "goals": 0,
                "arms": {},
                "holdout": {"entries": 0, "goals": 0},
                "sends": {"sent": {"inapp": 2}, "queued": {}, "failed": {}},
                "suppressions": {},
            },
        ]
    }


def test_inbox(api: Api) -> None:
    seed(api.db)
    response = api.client.get("/v1/users/u1/inbox", headers=ADMIN)
    assert response.status_code == 200
    body = response.json()
    assert body["user_id"] == "u1"
    assert [(m["message"], m["content"], m["sent_at"]) for m in body["messages"]] == [
        ("hi2", {"title": "Again"}, "1970-01-01T00:00:06.001Z"),
        ("hi", {"title": "Hi"}, "1970-01-01T00:00:04.001Z"),
    ]
    assert body["messages"][0].keys() == {
        "id",
        "journey_id",
        "step",
        "message",
        "content",
        "sent_at",
    }
    limited = api.client.get("/v1/users/u1/inbox", params={"limit": 1}, headers=ADMIN).json()
    assert [m["message"] for m in limited["messages"]] == ["hi2"]
    empty = api.client.get("/v1/users/u2/inbox", headers=ADMIN).json()
    assert empty == {"user_id": "u2", "messages": []}


@pytest.mark.parametrize("limit", ["0", "501", "ten"])
def test_bad_query_is_400_not_422(api: Api, limit: str) -> None:
    response = api.client.get("/v1/users/u1/inbox", params={"limit": limit}, headers=ADMIN)
    assert_error(response, 400, "limit")


def test_status(api: Api) -> None:
    api.client.post("/v1/track", json=track(), headers=AUTH)
    seed(api.db)
    body = api.client.get("/v1/status", headers=ADMIN).json()
    assert body == {
        "last_event_seq": 1,
        "outbox_backlog": 2,
        "daemon": {"scheduler": "running"},
    }


# ---------------------------------------------------------------- health, metrics, OpenAPI


def test_healthz(api: Api) -> None:
    response = api.client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"ok": True}


def test_healthz_when_the_store_is_gone(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    with TestClient(create_app(db, write_key=WRITE_KEY, admin_token=ADMIN_TOKEN)) as client:
        # A directory where the file was: nothing can be read any more.
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        db.mkdir()
        response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {"ok": False}


def metric(text: str, name: str, labels: str = "") -> float:
    prefix = f"{name}{{{labels}}} " if labels else f"{name} "
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line[len(prefix) :])
    raise AssertionError(f"no {prefix!r} in\n{text}")


def test_metrics(api: Api) -> None:
    api.client.post("/v1/track", json=track(), headers=AUTH)
    api.client.post("/v1/track", json=track(), headers=AUTH)
    batch = {"batch": [track(type="track", messageId=f"b-{i}") for i in range(3)]}
    api.client.post("/v1/batch", json=batch, headers=AUTH)
    api.client.post("/v1/batch", json={"batch": [{"type": "track"}]}, headers=AUTH)
    api.client.post("/v1/identify", json={"userId": "u", "traits": {}})
    api.client.post("/v1/track", json=track(properties={"b": "x" * 40_000}), headers=AUTH)
    seed(api.db)
    response = api.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    received = "journeyc_events_received_total"
    assert metric(text, received, 'endpoint="track",outcome="accepted"') == 1
    assert metric(text, received, 'endpoint="track",outcome="duplicate"') == 1
    assert metric(text, received, 'endpoint="batch",outcome="accepted"') == 3
    assert metric(text, received, 'endpoint="batch",outcome="invalid"') == 1
    assert metric(text, received, 'endpoint="identify",outcome="unauthorized"') == 1
    assert metric(text, received, 'endpoint="track",outcome="too_large"') == 1
    sends = "journeyc_sends_total"
    assert metric(text, sends, 'channel="inapp",outcome="sent"') == 2
    assert metric(text, sends, 'channel="sms",outcome="sent"') == 1
    assert metric(text, sends, 'channel="push",outcome="failed"') == 1
    assert metric(text, sends, 'channel="none",outcome="suppressed"') == 1
    assert metric(text, "journeyc_outbox_backlog") == 2
    assert metric(text, "journeyc_engine_runs_total") == 0
    assert metric(text, "journeyc_timer_lateness_seconds_count") == 0
    assert "# TYPE journeyc_timer_lateness_seconds histogram" in text


def test_daemon_observations_show_in_metrics(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    metrics = Metrics(db)
    app = create_app(db, write_key=WRITE_KEY, admin_token=ADMIN_TOKEN, metrics=metrics)
    assert app.state.metrics is metrics
    metrics.engine_runs.inc()
    metrics.timer_lateness.observe(0.2)
    with TestClient(app) as client:
        text = client.get("/metrics").text
    assert metric(text, "journeyc_engine_runs_total") == 1
    assert metric(text, "journeyc_timer_lateness_seconds_count") == 1
    assert metric(text, "journeyc_timer_lateness_seconds_bucket", 'le="0.25"') == 1


def test_an_app_given_a_store_writes_through_it_and_leaves_it_open(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s.db") as store:
        app = create_app(store.path, write_key=WRITE_KEY, admin_token=ADMIN_TOKEN, store=store)
        with TestClient(app) as client:
            assert client.post("/v1/track", json=track(), headers=AUTH).status_code == 200
            text = client.get("/metrics").text
        assert store.conn.execute("SELECT count(*) FROM events").fetchone() == (1,)
    assert metric(text, "journeyc_cpu_seconds_total", 'part="ingest"') > 0


def test_each_app_has_its_own_registry(tmp_path: Path) -> None:
    apps = [
        create_app(tmp_path / f"{n}.db", write_key=WRITE_KEY, admin_token=ADMIN_TOKEN)
        for n in ("a", "b")
    ]
    with TestClient(apps[0]) as first, TestClient(apps[1]) as second:
        assert first.post("/v1/track", json=track(), headers=AUTH).status_code == 200
        name, labels = "journeyc_events_received_total", 'endpoint="track",outcome="accepted"'
        assert metric(first.get("/metrics").text, name, labels) == 1
        assert metric(second.get("/metrics").text, name, labels) == 0


def test_openapi_lists_the_routes_with_schemas(api: Api) -> None:
    response = api.client.get("/openapi.json")
    assert response.status_code == 200
    doc = response.json()
    paths = doc["paths"]
    assert {
        "/v1/track",
        "/v1/identify",
        "/v1/batch",
        "/v1/users/{user_id}",
        "/v1/users/{user_id}/inbox",
        "/v1/journeys",
        "/v1/status",
        "/healthz",
        "/metrics",
    } <= paths.keys()
    assert "/v1/t" not in paths
    schemas = doc["components"]["schemas"]
    for path, model in (
        ("/v1/track", "TrackCall"),
        ("/v1/identify", "IdentifyCall"),
        ("/v1/batch", "BatchCall"),
    ):
        operation = paths[path]["post"]
        ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        assert ref == f"#/components/schemas/{model}"
        assert model in schemas
        assert {"200", "400", "401", "413"} <= operation["responses"].keys()
    assert {"userId", "event", "properties", "timestamp", "messageId"} <= set(
        schemas["TrackCall"]["properties"]
    )
    # Every reference in the document resolves.
    for ref in _refs(doc):
        assert ref.removeprefix("#/components/schemas/") in schemas, ref
    user = paths["/v1/users/{user_id}"]
    assert {"get", "delete"} <= user.keys()
    assert user["get"]["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/UserView"
    }
    assert set(doc["components"]["securitySchemes"]) == {
        "HTTPBasic",
        "HTTPBearer",
        "DeliveriesSignature",
    }


def _refs(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def test_create_app_refuses_empty_secrets(tmp_path: Path) -> None:
    make: Callable[..., FastAPI] = create_app
    with pytest.raises(ValueError, match="write key"):
        make(tmp_path / "s.db", write_key="", admin_token=ADMIN_TOKEN)
    with pytest.raises(ValueError, match="admin token"):
        make(tmp_path / "s.db", write_key=WRITE_KEY, admin_token="")


def test_busy_store_is_503_with_retry_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = create_app(tmp_path / "s.db", write_key=WRITE_KEY, admin_token=ADMIN_TOKEN)

    def locked(events: object) -> list[int | None]:
        raise OperationalError("database is locked")  # what a store raises for it

    monkeypatch.setattr(app.state.store, "append_events", locked)
    with TestClient(app) as client:
        response = client.post("/v1/track", json=track(), headers=AUTH)
        text = client.get("/metrics").text
    assert_error(response, 503, "retry")
    assert response.headers["retry-after"] == "1"
    assert (
        metric(text, "journeyc_events_received_total", 'endpoint="track",outcome="unavailable"')
        == 1
    )


def test_a_held_write_lock_is_503_with_retry_after_not_a_hang(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    store = Store.open(db, lock_timeout_s=0.3)
    app = create_app(db, write_key=WRITE_KEY, admin_token=ADMIN_TOKEN, store=store)
    # Another process holding the write lock (its own open file description).
    holder = os.open(str(db) + LOCK_SUFFIX, os.O_RDWR)
    try:
        with TestClient(app) as client:
            fcntl.flock(holder, fcntl.LOCK_EX)
            # The 503 "busy" (not a hang, as the lock is never let go here) is the proof.
            response = client.post("/v1/track", json=track(), headers=AUTH)
            assert_error(response, 503, "busy", "retry")
            assert response.headers["retry-after"] == "1"
            assert read_rows(db, "SELECT message_id FROM events") == []
            fcntl.flock(holder, fcntl.LOCK_UN)
            assert client.post("/v1/track", json=track(), headers=AUTH).status_code == 200
        assert read_rows(db, "SELECT message_id FROM events") == [("m-1",)]
    finally:
        os.close(holder)
        store.close()


def test_auth_is_checked_before_the_body_is_read(api: Api) -> None:
    body = b"x" * (MAX_BATCH_BYTES + 1)
    assert_error(api.client.post("/v1/batch", content=body, headers=basic("wrong")), 401)
    assert_error(api.client.post("/v1/batch", content=body, headers=AUTH), 413)


def test_empty_batch_is_fine(api: Api) -> None:
    assert api.client.post("/v1/batch", json={"batch": []}, headers=AUTH).status_code == 200
    assert api.events() == []
    assert api.calls == []


def test_concurrent_ingest_and_admin_reads(api: Api) -> None:
    def send(worker: int) -> list[int]:
        statuses = []
        with httpx.Client(base_url=api.url, timeout=30) as client:
            for i in range(20):
                call = track(userId=f"u{worker}", messageId=f"{worker}-{i}")
                statuses.append(client.post("/v1/track", json=call, headers=AUTH).status_code)
                statuses.append(client.get(f"/v1/users/u{worker}", headers=ADMIN).status_code)
        return statuses

    with ThreadPoolExecutor(8) as pool:
        results = [status for statuses in pool.map(send, range(8)) for status in statuses]
    assert set(results) == {200}
    assert read_rows(api.db, "SELECT count(*) FROM events") == [(160,)]


# ---------------------------------------------------------------- hostile input (#21)

LONE = "\\ud800"  # a JSON escape that decodes to a lone surrogate: no UTF-8 text


def raw_json(text: str) -> dict[str, Any]:
    return {"content": text.encode(), "headers": {**AUTH, "Content-Type": "application/json"}}


@pytest.mark.parametrize(
    ("call", "path"),
    [
        (f'{{"userId": "{LONE}", "event": "x"}}', "$.userId"),
        (f'{{"anonymousId": "{LONE}", "event": "x"}}', "$.anonymousId"),
        (f'{{"userId": "u", "event": "{LONE}"}}', "$.event"),
        (f'{{"userId": "u", "event": "x", "messageId": "{LONE}"}}', "$.messageId"),
        (f'{{"userId": "u", "event": "x", "properties": {{"foo": "{LONE}"}}}}', "$.properties.foo"),
        (
            f'{{"userId": "u", "event": "x", "properties": {{"a": [{{"{LONE}": 1}}]}}}}',
            '$.properties.a[0]["\\ud800"]',
        ),
        (f'{{"userId": "u", "event": "x", "context": {{"ip": "{LONE}"}}}}', "$.context.ip"),
    ],
)
def test_text_that_is_not_utf8_is_400_naming_the_field(api: Api, call: str, path: str) -> None:
    body = assert_error(api.client.post("/v1/track", **raw_json(call)), 400, path)
    assert body["code"] == "invalid_event"
    assert path in [p["path"] for p in body["problems"]]
    assert api.events() == []


def test_a_trait_that_is_not_utf8_is_400(api: Api) -> None:
    call = f'{{"userId": "u", "traits": {{"name": "{LONE}"}}}}'
    assert_error(api.client.post("/v1/identify", **raw_json(call)), 400, "$.traits.name")
    assert read_rows(api.db, "SELECT count(*) FROM profiles") == [(0,)]


def test_a_batch_with_bad_text_in_one_call_stores_nothing(api: Api) -> None:
    good = [json.dumps(track(type="track", messageId=f"m-{i}")) for i in range(2)]
    bad = f'{{"type": "track", "userId": "u", "event": "x", "properties": {{"foo": "{LONE}"}}}}'
    text = f'{{"batch": [{good[0]}, {good[1]}, {bad}]}}'
    response = api.client.post("/v1/batch", **raw_json(text))
    body = assert_error(response, 400, "$.batch[2].properties.foo")
    assert [p["path"] for p in body["problems"]] == ["$.batch[2].properties.foo"]
    assert api.events() == []
    assert api.calls == []


def test_a_write_key_that_is_not_utf8_is_401(api: Api) -> None:
    text = f'{{"userId": "u", "event": "x", "writeKey": "{LONE}"}}'
    headers = {"Content-Type": "application/json"}
    assert_error(api.client.post("/v1/track", content=text.encode(), headers=headers), 401)


def test_anonymous_id_must_be_a_string(api: Api) -> None:
    call = {"anonymousId": 0, "event": "x"}
    body = assert_error(api.client.post("/v1/track", json=call, headers=AUTH), 400)
    assert body["problems"] == [{"path": "$.anonymousId", "message": "expected a string"}]
    assert api.events() == []


def test_calls_without_a_message_id_are_events_of_their_own(api: Api) -> None:
    call = track()
    del call["messageId"]
    for _ in range(2):
        assert api.client.post("/v1/track", json=call, headers=AUTH).status_code == 200
    batch = {"batch": [{**call, "type": "track"}, {**call, "type": "track"}]}
    assert api.client.post("/v1/batch", json=batch, headers=AUTH).status_code == 200
    ids = [row[0] for row in api.events()]
    assert len(ids) == len(set(ids)) == 4
    assert all(i.startswith("jc-") for i in ids)


ODD_IDS = [
    "a/b",
    "a/b/inbox",
    "inbox",
    "..",
    ".",
    "é ü 😀",
    "two words",
    "100%",
    "a%2Fb",
    "%2F",
    "/",
    "?#&=",
    "a\nb",
]


@pytest.mark.parametrize("user_id", ODD_IDS)
def test_every_user_id_ingest_takes_is_reachable_and_forgettable(api: Api, user_id: str) -> None:
    other = track(userId=user_id + "x", messageId="m-other")
    for call in (track(userId=user_id), other, track(userId="a", messageId="m-a")):
        assert api.client.post("/v1/track", json=call, headers=AUTH).status_code == 200
    # Dots too: a client drops a path segment "." or ".." (RFC 3986), not "%2E".
    url = "/v1/users/" + quote(user_id, safe="").replace(".", "%2E")
    response = api.client.get(url, headers=ADMIN)
    assert response.status_code == 200, response.text
    assert response.json()["user_id"] == user_id
    inbox = api.client.get(url + "/inbox", headers=ADMIN)
    assert inbox.status_code == 200, inbox.text
    assert inbox.json() == {"user_id": user_id, "messages": []}
    forgotten = api.client.delete(url, headers=ADMIN)
    assert forgotten.status_code == 200, forgotten.text
    assert forgotten.json()["user_id"] == user_id
    assert forgotten.json()["removed"]["events"] == 1
    assert_error(api.client.get(url, headers=ADMIN), 404)
    assert sorted(row[1] for row in api.events()) == sorted(["a", user_id + "x"])


def test_an_inbox_is_the_users_and_a_user_named_like_one_is_another(api: Api) -> None:
    for user in ("a", "a/inbox"):
        call = track(userId=user, messageId=f"m-{user}")
        assert api.client.post("/v1/track", json=call, headers=AUTH).status_code == 200
    assert api.client.get("/v1/users/a/inbox", headers=ADMIN).json()["user_id"] == "a"
    assert api.client.get("/v1/users/a%2Finbox", headers=ADMIN).json()["user_id"] == "a/inbox"
    assert_error(api.client.get("/v1/users/a/b/inbox/c", headers=ADMIN), 404)


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/v1/users/u1", "GET, DELETE, OPTIONS"),
        ("/v1/users/a%2Fb", "GET, DELETE, OPTIONS"),
        ("/v1/users/u1/inbox", "GET, OPTIONS"),
        ("/v1/track", "POST, OPTIONS"),
        ("/v1/journeys", "GET, OPTIONS"),
        ("/healthz", "GET, OPTIONS"),
    ],
)
def test_options_and_405_name_every_method_of_the_path(api: Api, path: str, allowed: str) -> None:
    response = api.client.options(path)
    assert response.status_code == 200, response.text
    assert response.content == b""
    assert response.headers["allow"] == allowed
    refused = api.client.request("PUT", path, headers=ADMIN)
    assert_error(refused, 405)
    assert refused.headers["allow"] == allowed
    assert_error(api.client.options("/v1/nope"), 404)


def test_openapi_says_one_of_user_id_and_anonymous_id_is_required(api: Api) -> None:
    schemas = api.client.get("/openapi.json").json()["components"]["schemas"]
    for name in ("TrackCall", "IdentifyCall", "TrackEvent", "IdentifyEvent"):
        schema = schemas[name]
        assert [b["required"] for b in schema["anyOf"]] == [["userId"], ["anonymousId"]], name
        assert schema["properties"]["anonymousId"]["anyOf"] == [
            {"type": "string"},
            {"type": "null"},
        ]


def test_times_are_iso_8601_utc_with_milliseconds_in_answers_and_the_schema(api: Api) -> None:
    """Every time the API answers with is one form, ``2026-01-05T10:31:00.000Z`` (UTC,
    milliseconds always written), however the store keeps it; the OpenAPI schema says
    so (``format: date-time``)."""
    from journeyc.serve.times import iso

    assert iso(1796637189135) == "2026-12-07T09:53:09.135Z"
    assert iso(1796637189000) == "2026-12-07T09:53:09.000Z"
    assert iso(0) == "1970-01-01T00:00:00.000Z" and iso(None) is None
    schemas = api.client.get("/openapi.json").json()["components"]["schemas"]
    fields = {
        ("LiveJourney", "entered_at"),
        ("LiveJourney", "wake_at"),
        ("ActionOut", "at"),
        ("Membership", "since"),
        ("VersionOut", "deployed_at"),
        ("InboxMessage", "sent_at"),
    }
    for model, name in fields:
        schema = schemas[model]["properties"][name]
        kinds = schema.get("anyOf", [schema])
        assert {"type": "string", "format": "date-time"}.items() <= kinds[0].items(), (model, name)


def test_times_past_year_9999_or_before_1000_are_answered_not_a_500(api: Api) -> None:
    """A `wait 99999999d` (valid: no bound on a wait) arms a timer past year 9999,
    which a datetime cannot hold: the user is still shown, the time written as
    ECMAScript writes such years (``+275760-…``, what ``new Date(…)`` reads). Years
    below 1000 keep four digits."""
    from journeyc.serve.times import iso

    assert iso(8_640_000_000_000_000) == "+275760-09-13T00:00:00.000Z"
    assert iso(253_402_300_800_000) == "+010000-01-01T00:00:00.000Z"
    assert iso(253_402_300_799_999) == "9999-12-31T23:59:59.999Z"
    assert iso(-62_135_596_800_000) == "0001-01-01T00:00:00.000Z"
    assert iso(-62_135_596_800_001) == "0000-12-31T23:59:59.999Z"
    assert iso(-62_198_755_200_001) == "-000002-12-31T23:59:59.999Z"
    assert iso(-1) == "1969-12-31T23:59:59.999Z"
    api.client.post("/v1/identify", json={"userId": "u1", "traits": {}}, headers=AUTH)
    with closing(sqlite3.connect(api.db)) as conn, conn:
        conn.execute(
            "INSERT INTO instances (id, journey_id, version, user_id, entry_no, node, status,"
            " entered_at, wake_at, waiting_for) VALUES (1, 'long', 'v1', 'u1', 1, 'w',"
            " 'waiting', 1000, ?, NULL)",
            (1000 + 99_999_999 * 86_400_000,),
        )
    response = api.client.get("/v1/users/u1", headers=ADMIN)
    assert response.status_code == 200, response.text
    assert response.json()["journeys"][0]["wake_at"] == "+275760-09-12T00:00:01.000Z"
