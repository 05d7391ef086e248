"""Segment's official Python SDK pointed at journeyc: calls arrive as sent.

The SDK (``segment.analytics``) posts ``/v1/batch`` with Basic auth and the write
key in the body; here it talks to a real uvicorn server over a real SQLite file.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from segment import analytics
from segment.analytics.client import Client
from segment.analytics.request import APIError

from journeyc.serve.api import create_app
from tests.test_api import ADMIN_TOKEN, WRITE_KEY, running_server


@dataclass
class Server:
    url: str
    db: Path

    def events(self) -> list[tuple[Any, ...]]:
        with closing(sqlite3.connect(self.db)) as conn:
            rows = conn.execute(
                "SELECT message_id, user_id, name, at, props FROM events ORDER BY seq"
            ).fetchall()
        return [(*row[:4], json.loads(row[4])) for row in rows]

    def traits(self, user_id: str) -> dict[str, Any]:
        with closing(sqlite3.connect(self.db)) as conn:
            row = conn.execute(
                "SELECT traits FROM profiles WHERE user_id = ?", (user_id,)
            ).fetchone()
        return {} if row is None else dict(json.loads(row[0]))


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    db = tmp_path / "journeyc.db"
    app = create_app(db, write_key=WRITE_KEY, admin_token=ADMIN_TOKEN)
    with running_server(app) as url:
        yield Server(url, db)


WHEN = datetime(2024, 5, 1, 10, 0, 0, 250000, tzinfo=UTC)
WHEN_MS = 1714557600250


def sync_client(server: Server, **options: Any) -> Client:
    return Client(WRITE_KEY, host=server.url, sync_mode=True, max_retries=0, **options)


def test_track_and_identify_arrive_unchanged(server: Server) -> None:
    client = sync_client(server)
    props = {"total": 42.5, "items": [{"sku": "A-1", "qty": 2}], "coupon": None, "gift": True}
    _, sent = client.track(
        user_id="u-1",
        event="Order Completed",
        properties=props,
        timestamp=WHEN,
        message_id="order-1",
    )
    client.identify(
        user_id="u-1",
        traits={"email": "ada@example.com", "plan": "pro"},
        timestamp=WHEN,
        message_id="identify-1",
    )
    client.track(anonymous_id="anon-7", event="Product Viewed", timestamp=WHEN)
    events = server.events()
    # The SDK sends sentAt: the time is corrected by Segment's clock-skew rule, so it is
    # WHEN plus the few milliseconds between sending and receiving.
    assert [at - WHEN_MS for *_, at, _ in events] == [pytest.approx(0, abs=2000)] * 3
    assert [(mid, user, name, props) for mid, user, name, _, props in events[:2]] == [
        ("order-1", "u-1", "order_completed", props),
        ("identify-1", "u-1", "identify", {"email": "ada@example.com", "plan": "pro"}),
    ]
    message_id, user_id, name, _, viewed = events[2]
    # The SDK generated the messageId; the log keeps it, so its retries dedup.
    assert message_id and (user_id, name, viewed) == ("anon-7", "product_viewed", {})
    assert sent["messageId"] == "order-1"
    assert server.traits("u-1") == {"email": "ada@example.com", "plan": "pro"}


def test_sdk_retry_of_the_same_message_is_stored_once(server: Server) -> None:
    client = sync_client(server)
    for _ in range(3):
        client.track(user_id="u-1", event="Signed Up", message_id="same", timestamp=WHEN)
    assert [e[0] for e in server.events()] == ["same"]


def test_module_level_api_with_queue_and_flush(server: Server) -> None:
    analytics.write_key = WRITE_KEY
    analytics.host = server.url
    analytics.sync_mode = False
    try:
        for i in range(25):
            analytics.track(f"user-{i % 3}", "Page Scrolled", {"depth": i}, timestamp=WHEN)
        analytics.identify("user-0", {"name": "Ada"}, timestamp=WHEN)
        analytics.flush()
    finally:
        if analytics.default_client is not None:
            analytics.default_client.join()
        analytics.default_client = None
        analytics.write_key = None
        analytics.host = None
    events = server.events()
    assert len(events) == 26
    assert sorted(e[4]["depth"] for e in events if e[2] == "page_scrolled") == list(range(25))
    assert server.traits("user-0") == {"name": "Ada"}


def test_gzip_client(server: Server) -> None:
    client = sync_client(server, gzip=True)
    client.track(user_id="u-1", event="Gzipped", properties={"x": "y" * 5000}, timestamp=WHEN)
    [(_, _, name, _, props)] = server.events()
    assert (name, props) == ("gzipped", {"x": "y" * 5000})


def test_wrong_write_key_is_reported_to_the_sdk(server: Server) -> None:
    client = Client("not-the-key", host=server.url, sync_mode=True, max_retries=0)
    with pytest.raises(APIError) as info:
        client.track(user_id="u-1", event="Anything", timestamp=WHEN)
    assert info.value.status == 401
    assert "wrong write key" in str(info.value)
    assert server.events() == []


def test_calls_journeys_do_not_use_are_acknowledged_and_not_stored(server: Server) -> None:
    client = sync_client(server)
    client.page(user_id="u-1", name="Home", timestamp=WHEN)
    client.track(user_id="u-1", event="Product Viewed", timestamp=WHEN)
    names = [row[2] for row in server.events()]
    assert names == ["product_viewed"]


def test_an_unknown_device_zone_is_ignored_and_counted_not_refused(server: Server) -> None:
    batch = {
        "batch": [
            {
                "type": "identify",
                "userId": "u-1",
                "traits": {"name": "Ada"},
                "context": {"timezone": "Mars/Olympus_Mons", "locale": "fr-FR"},
            },
            {"type": "track", "userId": "u-1", "event": "Opened", "context": {"timezone": 3}},
        ]
    }
    reply = httpx.post(f"{server.url}/v1/batch", json=batch, auth=(WRITE_KEY, ""))
    assert reply.status_code == 200, reply.text
    assert server.traits("u-1") == {"name": "Ada", "locale": "fr-FR"}
    metrics = httpx.get(f"{server.url}/metrics").text
    assert 'journeyc_ingest_ignored_fields_total{field="context.timezone"} 2.0' in metrics
    assert 'journeyc_ingest_ignored_fields_total{field="context.locale"} 0.0' in metrics
