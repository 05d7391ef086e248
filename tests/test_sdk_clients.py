"""Real clients nobody here wrote, each pointed at a real ``journeyc serve`` daemon.

The matrix: Segment's Python SDK (``segment-analytics-python``), RudderStack's Python
SDK (``rudder-sdk-python``, gzip on: it puts identify traits in ``context.traits``
only) and Segment's Node SDK (``@segment/analytics-node``, run by ``node`` on a
script the test writes). Each plays an app on a device whose clock is a day ahead:
it sends an identify (traits, plus the device's zone and locale in ``context``),
flushed alone, then a batch of two tracks, one of them queued two hours earlier.
The test checks the profile the daemon stored, the event times (Segment's
clock-skew rule undoes the device's clock), and the push the journey sends.

The Node SDK is installed by ``.ci/run`` (``npm install --prefix .ci/npm``) or, in
``JOURNEYC_NODE_SDK_DIR``, a directory holding ``node_modules/@segment/analytics-node``.
Outside CI the test installs it there itself when npm is at hand; under CI
(``CI=true``) a missing ``node`` or package fails the test, it is never skipped.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.daemon_helpers import WRITE_KEY, Daemon, poll, write_file
from tests.node_helpers import node_packages, package_name
from tests.test_channels import HttpReceiver, HttpRequest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
NODE_SDK_DIR = ROOT / ".ci" / "npm"
"""Where ``.ci/run`` installs ``@segment/analytics-node`` (git-ignored)."""
NODE_SDK = "@segment/analytics-node@3"

SKEW = timedelta(days=1)  # the device's clock is a day ahead
QUEUED = timedelta(hours=2)  # the cart was abandoned offline, two hours before the flush
SLACK_MS = 5_000  # the time between the test's clock readings and the daemon's

PROJECT = """\
journey cart "Cart reminder"
  when cart_abandoned
  entry always
  send push cart_push as nudge

message cart_push
  push
    body "{{ user.first_name }}, your {{ event.item }} is waiting"
    body fr "{{ user.first_name }}, votre {{ event.item }} vous attend"
"""

TRAITS = {"first_name": "Léa", "push_enabled": True}
CONTEXT = {"timezone": "Asia/Bangkok", "locale": "fr-FR"}


@dataclass
class Live:
    """A daemon started for one test, its push receiver and its store."""

    daemon: Daemon
    push: HttpReceiver
    db: Path

    def events(self) -> list[tuple[str, str, int, int]]:
        """``(user, name, at, received_at)`` of every logged event, in log order."""
        with closing(sqlite3.connect(self.db)) as conn:
            rows = conn.execute(
                "SELECT user_id, name, at, received_at FROM events ORDER BY seq"
            ).fetchall()
        return [(str(u), str(n), int(a), int(r)) for u, n, a, r in rows]

    def pushes(self) -> list[HttpRequest]:
        return [r for r in list(self.push.requests) if r.path == "/push"]


@pytest.fixture
def live(tmp_path: Path, daemons: list[Daemon]) -> Iterator[Live]:
    push = HttpReceiver()
    write_file(tmp_path / "journeys" / "cart.journey", PROJECT)
    write_file(
        tmp_path / "journeyc.toml",
        f'[channels.push]\nprovider = "http"\nurl = "{push.url}/push"\n',
    )
    db = tmp_path / "store.db"
    args = [str(tmp_path / "journeys"), "--config", str(tmp_path / "journeyc.toml")]
    daemon = Daemon([*args, "--db", str(db), "--port", "0"], tmp_path)
    daemons.append(daemon)
    daemon.start()
    yield Live(daemon, push, db)
    push.stop()


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def device_now() -> datetime:
    """The device's clock: a day ahead."""
    return datetime.now(UTC) + SKEW


# ---------------------------------------------------------------- the clients


def run_python_sdk(
    client_cls: Callable[..., Any],
    request_module: Any,
    live: Live,
    monkeypatch: pytest.MonkeyPatch,
    *,
    context_traits: bool,
    **options: Any,
) -> tuple[int, int]:
    """Play the app with a Python SDK (Segment's and RudderStack's share their shape);
    return the real clock (ms) just before and after the batch of tracks was sent."""

    class DeviceClock(datetime):
        """The SDK stamps ``sentAt`` with ``datetime.now``: the device's clock."""

        @classmethod
        def now(cls, tz: Any = None) -> Any:
            return datetime.now(tz) + SKEW

    monkeypatch.setattr(request_module, "datetime", DeviceClock)
    errors: list[object] = []
    client = client_cls(
        WRITE_KEY,
        host=live.daemon.url,
        sync_mode=False,
        max_retries=0,
        upload_size=10,
        upload_interval=0.5,
        on_error=lambda exc, batch: errors.append(exc),
        **options,
    )
    try:
        client.identify("u1", dict(TRAITS), context=dict(CONTEXT), timestamp=device_now())
        client.flush()
        before = now_ms()
        # The track's context.traits update the profile too (RudderStack's SDKs send
        # the user's traits with every call).
        extra = {"traits": {"plan": "pro"}} if context_traits else {}
        client.track(
            "u1",
            "Cart Abandoned",
            {"item": "sac"},
            context={**CONTEXT, **extra},
            timestamp=device_now() - QUEUED,
        )
        client.track("u1", "Product Viewed", {"item": "sac"}, timestamp=device_now())
        client.flush()
        after = now_ms()
    finally:
        client.join()
    assert errors == []
    return before, after


NODE_SCRIPT = """\
// Segment's Node SDK on a "device" whose clock is SKEW_MS ahead: every Date it makes
// without arguments (timestamps, the batch's sentAt) reads that clock.
const config = JSON.parse(process.argv[2]);
const RealDate = Date;
class DeviceDate extends RealDate {
  constructor(...args) {
    if (args.length === 0) super(RealDate.now() + config.skewMs);
    else super(...args);
  }
  static now() { return RealDate.now() + config.skewMs; }
}
globalThis.Date = DeviceDate;
const { Analytics } = require(config.sdk);

async function main() {
  const analytics = new Analytics({
    writeKey: config.writeKey, host: config.host, maxEventsInBatch: 10,
    flushInterval: 60000, maxRetries: 0,
  });
  let failed = false;
  analytics.on('error', (err) => { failed = true; console.error('error', err); });
  analytics.identify({
    userId: 'u1', traits: config.traits, context: config.context, timestamp: new Date(),
  });
  await analytics.flush();
  console.log(JSON.stringify({ before: RealDate.now() }));
  analytics.track({
    userId: 'u1', event: 'Cart Abandoned', properties: { item: 'sac' },
    context: config.context, timestamp: new Date(Date.now() - config.queuedMs),
  });
  analytics.track({
    userId: 'u1', event: 'Product Viewed', properties: { item: 'sac' },
    timestamp: new Date(),
  });
  await analytics.closeAndFlush();
  console.log(JSON.stringify({ after: RealDate.now() }));
  if (failed) process.exit(1);
}
main().catch((err) => { console.error(err); process.exit(1); });
"""


def node_sdk() -> Path:
    """The path of the Node SDK package, installed if it may be (see the module doc)."""
    base = Path(os.environ.get("JOURNEYC_NODE_SDK_DIR") or NODE_SDK_DIR)
    return node_packages([NODE_SDK], base) / package_name(NODE_SDK)


def run_node_sdk(live: Live, tmp_path: Path) -> tuple[int, int]:
    """Play the app with the Node SDK; the real clock around the batch of tracks."""
    package = node_sdk()
    script = tmp_path / "app.js"
    script.write_text(NODE_SCRIPT, encoding="utf-8")
    config = {
        "sdk": str(package),
        "host": live.daemon.url,
        "writeKey": WRITE_KEY,
        "skewMs": SKEW // timedelta(milliseconds=1),
        "queuedMs": QUEUED // timedelta(milliseconds=1),
        "traits": TRAITS,
        "context": CONTEXT,
    }
    done = subprocess.run(
        ["node", str(script), json.dumps(config)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    said: dict[str, int] = {}
    for line in done.stdout.splitlines():
        said.update(json.loads(line))
    return said["before"], said["after"]


# ---------------------------------------------------------------- the matrix


@pytest.mark.parametrize("sdk", ["segment-python", "rudder-python", "segment-node"])
def test_an_sdk_on_a_device_with_a_skewed_clock(
    sdk: str, live: Live, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if sdk == "segment-python":
        from segment.analytics import request as segment_request
        from segment.analytics.client import Client as SegmentClient

        before, after = run_python_sdk(
            SegmentClient, segment_request, live, monkeypatch, context_traits=False
        )
    elif sdk == "rudder-python":
        from rudderstack.analytics import request as rudder_request
        from rudderstack.analytics.client import Client as RudderClient

        before, after = run_python_sdk(
            RudderClient, rudder_request, live, monkeypatch, context_traits=True, gzip=True
        )
    else:
        before, after = run_node_sdk(live, tmp_path)

    # The profile: the traits (RudderStack's only in context.traits), and the device's
    # zone and locale, which the traits did not set.
    expected = {**TRAITS, **CONTEXT}
    if sdk == "rudder-python":
        expected["plan"] = "pro"  # from the track's context.traits
    assert live.daemon.admin("/v1/users/u1")["traits"] == expected

    # The times: the device's clock, a day ahead, is undone by the clock-skew rule; the
    # cart was abandoned two hours before the flush, the product viewed at it.
    events = live.events()
    tracks = [(name, at, received) for _, name, at, received in events if name != "identify"]
    assert [name for name, _, _ in tracks] == ["cart_abandoned", "product_viewed"]
    queued_ms = QUEUED // timedelta(milliseconds=1)
    for (name, at, received), offset in zip(tracks, (queued_ms, 0), strict=True):
        assert before - SLACK_MS <= received <= after + SLACK_MS, (name, received)
        assert received - offset - SLACK_MS <= at <= received - offset + 1, (name, at, received)
    # The identify, sent (and read) before the batch; the cart's context made an
    # identify of its own, logged just before it and at its time.
    assert [name for _, name, _, _ in events] == [
        "identify",
        "identify",
        "cart_abandoned",
        "product_viewed",
    ]
    (_, _, identified, received), (_, _, context_at, _) = events[:2]
    assert received <= before + SLACK_MS and received - SLACK_MS <= identified <= received + 1
    assert context_at == tracks[0][1]

    # The journey's push: reachable (push_enabled came with the identify), in French
    # (the locale came with the context).
    (push,) = poll(live.pushes, 15, "the push")
    assert push.json()["content"] == {"body": "Léa, votre sac vous attend"}
    time.sleep(0.3)
    assert len(live.pushes()) == 1
