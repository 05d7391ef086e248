"""The HTTP API against its own OpenAPI document: no generated request gets a 5xx.

The app from :func:`journeyc.serve.api.create_app` runs under a real uvicorn
server on 127.0.0.1, over a SQLite store in a temporary directory. Schemathesis
reads ``/openapi.json`` from it and generates requests for every operation, with
the write key (HTTP Basic), the admin token (Bearer) or the deliveries signature
(computed over the generated body) each route needs. After the run, everything the
store holds must be events the log could have accepted.
"""

from __future__ import annotations

import base64
import json
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
import uvicorn
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from journeyc.serve.api import create_app
from journeyc.serve.deliveries import SIGNATURE_HEADER, sign
from tests.daemon_helpers import ADMIN_TOKEN, WRITE_KEY, poll

BASIC = "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()
BEARER = f"Bearer {ADMIN_TOKEN}"
DELIVERIES_SECRET = "test-deliveries-secret"


def signed(request: requests.PreparedRequest) -> requests.PreparedRequest:
    """Sign the body as sent (a requests auth hook: it sees the prepared body)."""
    body = request.body or b""
    data = body.encode() if isinstance(body, str) else body
    request.headers[SIGNATURE_HEADER] = sign(DELIVERIES_SECRET, data, int(time.time()))
    return request


class Served:
    """The API app under uvicorn in a thread, on a port the OS picked."""

    def __init__(self, store: Path) -> None:
        self.store = store
        self.app = create_app(
            store,
            write_key=WRITE_KEY,
            admin_token=ADMIN_TOKEN,
            deliveries_secret=DELIVERIES_SECRET,
        )
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(self.app, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    def start(self) -> Served:
        self.thread.start()
        poll(lambda: self.server.started, 15, "uvicorn to start")
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    server = Served(tmp_path_factory.mktemp("api") / "store.db").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def api_schema(served: Served) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{served.url}/openapi.json", wait_for_schema=10)


schema = schemathesis.pytest.from_fixture("api_schema")


def stored_events(store: Path) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute(
            "SELECT message_id, user_id, name, at, props, received_at FROM events ORDER BY seq"
        ).fetchall()
    finally:
        conn.close()


def assert_well_formed(rows: list[tuple[object, ...]]) -> None:
    for message_id, user_id, name, at, props, received_at in rows:
        assert isinstance(message_id, str) and message_id
        assert isinstance(user_id, str) and user_id
        assert isinstance(name, str) and name
        assert isinstance(at, int) and isinstance(received_at, int)
        assert isinstance(props, str) and isinstance(json.loads(props), dict)


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_no_generated_request_gets_a_server_error(
    case: schemathesis.Case[Any], served: Served
) -> None:
    path = case.operation.path
    deliveries = path == "/v1/deliveries"
    ingest = path.startswith(("/v1/track", "/v1/identify", "/v1/batch")) or deliveries
    headers = {"Authorization": BASIC if ingest else BEARER}
    before = stored_events(served.store) if ingest else []
    if deliveries:
        response = case.call(timeout=10, auth=signed)
    else:
        response = case.call(headers=headers, timeout=10)
    case.validate_response(response, checks=[not_a_server_error])
    assert response.status_code in {200, 400, 401, 404, 405, 413, 415, 422}, (
        response.status_code,
        response.text[:500],
    )
    if deliveries:
        assert response.status_code != 401, response.text[:500]  # signed as it went out
    if ingest:
        after = stored_events(served.store)
        if response.status_code != 200:
            # A refused request stores nothing, not even part of a batch.
            assert after == before, response.text[:500]
        else:
            assert after[: len(before)] == before
            assert_well_formed(after[len(before) :])
