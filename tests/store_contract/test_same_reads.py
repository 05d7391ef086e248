"""The same rows give the same reads on both stores: a simulation's SQLite store is
copied row for row into a PostgreSQL store (``journeyc store copy``'s copy_store), the
same provider reports are recorded in both, and every read of journey reports,
replays (``journeyc why`` too), deliveries, the dashboard and the admin snapshot is
asked of both and compared, over whole ranges and ranges cut inside hours."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any, cast

import pytest
from fastapi.testclient import TestClient

from journeyc.reports.build import build_report
from journeyc.serve.ui import create_app
from journeyc.store.abc import Store
from journeyc.store.copy import copy_store
from journeyc.store.open import dashboard_reads, open_store, reading_at
from journeyc.store.report_ranges import HOUR_MS
from journeyc.store.rows import Delivery
from journeyc.why.replay import explain_user
from tests import demo_events as demo
from tests.demo_events import simulate_demo
from tests.postgres_server import PostgresServer, unavailable


@pytest.fixture(scope="module")
def both(
    tmp_path_factory: pytest.TempPathFactory, postgres_server: PostgresServer | str
) -> Iterator[tuple[str, str]]:
    """``(sqlite path, postgres URL)`` holding the same rows: 150 demo shoppers run
    through the example journeys by ``journeyc simulate``, then the same provider
    reports recorded in each."""
    if isinstance(postgres_server, str):
        unavailable(postgres_server)
    db = simulate_demo(tmp_path_factory.mktemp("same"), users=150, seed=5)
    with postgres_server.database() as url:
        with open_store(db) as source, open_store(url) as target:
            copied = {t.name: t.rows for t in copy_store(source, target).tables}
        assert copied["actions"] > 100 and copied["entries"] > 10, copied
        with closing(sqlite3.connect(db)) as conn:
            keys = [
                k
                for (k,) in conn.execute(
                    "SELECT key FROM outbox WHERE channel IS NOT NULL ORDER BY id LIMIT 40"
                )
            ]
        for target in (str(db), url):
            with open_store(target) as store:
                _record_reports(store, keys)
        yield str(db), url


def _record_reports(store: Any, keys: list[str]) -> None:
    """Provider reports of the sends of ``keys``: several kinds, repeats, reports that
    name no channel, a message reported twice in one kind (counted once)."""
    rows = store.deliveries().sends(keys)
    assert sorted(rows) == sorted(keys)
    reports = []
    for n, key in enumerate(keys):
        send = rows[key]
        kind = ("delivered", "opened", "clicked", "bounced")[n % 4]
        at = 1_767_225_600_000 + n * 1_234_567
        for repeat in range(1 + n % 3):
            reports.append(
                Delivery(
                    send.key,
                    kind,
                    at + repeat,
                    at + repeat,
                    send.journey_id,
                    send.user_id,
                    None if n % 5 == 0 else send.channel,
                    f"p{n}-{repeat % 2}",
                    {"n": n},
                )
            )
    with store.transaction():
        new = store.deliveries().record(reports)
    assert any(new) and not all(new)


@pytest.fixture(scope="module")
def stores(both: tuple[str, str]) -> Iterator[tuple[Store, Store]]:
    sqlite, url = both
    with open_store(sqlite) as a, open_store(url) as b:
        # The PostgreSQL store is not a whole Store yet (no compiled reads): the reads
        # asked of it here are those it has.
        yield cast(Store, a), cast(Store, b)


START = int(demo.START.timestamp() * 1000)
RANGES: list[tuple[int | None, int | None]] = [
    (None, None),
    (START + HOUR_MS // 3, None),
    (None, START + 5 * 24 * HOUR_MS + 7_777),
    (START + 26 * HOUR_MS + 1, START + 9 * 24 * HOUR_MS - 3),
    (START + 3 * 24 * HOUR_MS + 30 * 60_000, START + 3 * 24 * HOUR_MS + 50 * 60_000),
]
"""All time, and ranges cut inside hours over the simulation's four weeks (the last
inside one hour)."""


def test_journey_reports_are_the_same(stores: tuple[Store, Store]) -> None:
    sqlite, postgres = stores
    with sqlite.report_reads() as q:
        journeys = q.journey_ids()
        versions = {j: q.deployed_versions(j) for j in journeys}
    with postgres.report_reads() as q:
        assert q.journey_ids() == journeys
        assert {j: q.deployed_versions(j) for j in journeys} == versions
    assert len(journeys) >= 5
    figures = 0
    for journey in journeys:
        for since, until in RANGES:
            want = build_report(sqlite, journey, since_ms=since, until_ms=until)
            got = build_report(postgres, journey, since_ms=since, until_ms=until)
            assert got == want, (journey, since, until)
            figures += want.entries + sum(sum(s.sends.values()) for s in want.steps)
        version = versions[journey][-1].version
        assert build_report(postgres, journey, version=version) == build_report(
            sqlite, journey, version=version
        )
    assert figures > 100  # the reports counted something


def test_report_reads_are_the_same_figure_for_figure(stores: tuple[Store, Store]) -> None:
    sqlite, postgres = stores
    seen = {"actions": 0, "outbox": 0, "feedback": 0, "median": 0}
    with sqlite.report_reads() as a, postgres.report_reads() as b:
        for journey in a.journey_ids():
            for since, until in RANGES:
                args = (journey, since, until)
                groups = a.entry_groups(*args)
                assert b.entry_groups(*args) == groups
                converted = sum(g.conversions for g in groups)
                median = a.median_ms_to_goal(*args, converted)
                assert b.median_ms_to_goal(*args, converted) == median
                assert b.action_counts(*args) == a.action_counts(*args)
                assert b.outbox_counts(*args) == a.outbox_counts(*args)
                assert b.feedback_counts(*args) == a.feedback_counts(*args)
                seen["actions"] += len(a.action_counts(*args))
                seen["outbox"] += len(a.outbox_counts(*args))
                seen["feedback"] += len(a.feedback_counts(*args))
                seen["median"] += median is not None
            assert b.waiting_now(journey, None) == a.waiting_now(journey, None)
    assert all(seen.values()), seen


def _users(target: str) -> list[str]:
    with closing(sqlite3.connect(target)) as conn:
        return [u for (u,) in conn.execute("SELECT user_id FROM profiles ORDER BY user_id")]


def test_replay_reads_and_why_are_the_same(
    both: tuple[str, str], stores: tuple[Store, Store]
) -> None:
    sqlite, postgres = stores
    a, b = sqlite.replay_reads(), postgres.replay_reads()
    assert b.deployed_versions() == a.deployed_versions()
    assert b.last_activity() == a.last_activity() is not None
    users = _users(both[0])
    for user in [*users[:: max(1, len(users) // 12)], "nobody"]:
        ids = sqlite.identities_of(user)
        assert postgres.identities_of(user) == ids
        with b.snapshot():
            assert b.is_known(user) == a.is_known(user)
            assert b.user_events(ids) == a.user_events(ids)
            assert b.recorded_actions(ids) == a.recorded_actions(ids)
            assert b.recorded_segment_changes(ids) == a.recorded_segment_changes(ids)
            for before in (START, START + 7 * 24 * HOUR_MS, START + 99 * 24 * HOUR_MS):
                assert b.profile_before(ids, before) == a.profile_before(ids, before)
    checked = 0
    for user in users[:: max(1, len(users) // 6)]:
        want = explain_user(sqlite, user)
        assert explain_user(postgres, user) == want, user
        checked += bool(want.journeys)
    assert checked


def test_deliveries_are_the_same(stores: tuple[Store, Store]) -> None:
    sqlite, postgres = stores
    counts = sqlite.deliveries().counts()
    assert postgres.deliveries().counts() == counts and sum(counts.values()) > 10


def test_dashboard_reads_are_the_same(both: tuple[str, str]) -> None:
    a, b = dashboard_reads(both[0]), dashboard_reads(both[1])
    a.check()
    b.check()
    assert b.deployed() == a.deployed()
    assert b.latest_activity() == a.latest_activity() is not None
    weeks = (START, START + 28 * 24 * HOUR_MS)
    for since, until in [weeks, (START + 5 * HOUR_MS, START + 9 * HOUR_MS)]:
        assert b.journey_totals(since, until) == a.journey_totals(since, until)
    users = _users(both[0])
    for query in ["u", users[0][:3], users[-1], "nobody", users[5].upper()]:
        assert b.find_users(query) == a.find_users(query), query
    shown = 0
    for user in [*users[:: max(1, len(users) // 10)], "nobody"]:
        want = a.user(user)
        assert b.user(user) == want, user
        shown += want is not None and bool(want.actions)
    assert shown
    with b.store() as store:
        journey = a.deployed()[0].journey_id
        with a.store() as mine:
            assert build_report(store, journey) == build_report(mine, journey)


def test_admin_snapshots_are_the_same(both: tuple[str, str]) -> None:
    users = _users(both[0])[:20]
    with reading_at(both[0]) as a, reading_at(both[1]) as b:
        for read in ("count_events", "count_profiles", "last_seq", "outbox_statuses", "backlog"):
            assert getattr(b, read)() == getattr(a, read)(), read
        assert b.journey_versions() == a.journey_versions()
        assert b.live_per_step() == a.live_per_step()
        for user in users:
            assert b.traits(user) == a.traits(user)
            assert b.live_instances(user) == a.live_instances(user)
            assert b.recent_actions(user, 5) == a.recent_actions(user, 5)


def test_the_dashboards_pages_are_the_same(both: tuple[str, str]) -> None:
    sqlite, url = both
    user = _users(sqlite)[3]
    pages = {}
    for target in both:
        where = dashboard_reads(target).path
        with TestClient(create_app(target)) as client:
            for path in (
                "/ui?range=all",
                "/ui?range=7d",
                "/ui/journeys/cart_recovery",
                "/ui/journeys/second_purchase_test?range=30d",
                f"/ui/users/{user}",
                "/ui/users?q=shopper-000",
            ):
                reply = client.get(path)
                assert reply.status_code == 200, (target, path, reply.text[:300])
                # The pages name their store: by path or by URL.
                text = reply.text.replace(where, "STORE").replace(Path(where).name, "NAME")
                pages[target, path] = text
            assert client.get("/ui/journeys/nope").status_code == 404
    for (_target, path), text in pages.items():
        assert text == pages[sqlite, path], path
    assert "No why-trace" not in pages[url, f"/ui/users/{user}"]
