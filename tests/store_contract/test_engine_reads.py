"""The reads of what the engine wrote are the same on both stores: generated journeys
and timelines run through the engine on SQLite (held, the simulator's way) and on
PostgreSQL (live, as the daemon runs it), then every journey's report (whole, cut
inside hours, per version), each user's replay reads, the delivery counts, the
dashboard's reads and the admin snapshot are asked of both and compared.

It found that an entry passing two splits in one engine step kept an arbitrary arm on
PostgreSQL (the runtime now keeps the last, as SQLite does)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings

from journeyc.engine.simulate import simulate
from journeyc.reports.build import build_report
from journeyc.store.abc import Store
from journeyc.store.open import dashboard_reads, reading_at
from journeyc.store.sqlite import Store as SqliteStore
from tests.engine_helpers import (
    TMP_DIR,
    PostgresStores,
    compile_files,
    reject_runaways,
)
from tests.journey_strategies import Scenario, scenarios


def _ranges(events: list[Any]) -> list[tuple[int | None, int | None]]:
    """All time, and a range cut inside hours around the middle of the timeline."""
    if not events:
        return [(None, None)]
    first = min(e.at_ms for e in events)
    last = max(e.at_ms for e in events)
    middle = (first + last) // 2
    return [(None, None), (first + 1_234_567, None), (middle - 7_777_777, middle + 5_432_101)]


def _same_reads(
    a: Store, b: Store, journeys: list[str], users: list[str], events: list[Any]
) -> int:
    """Ask ``a`` and ``b`` the same reads, assert the answers equal; how many journey
    figures they held (entries and sends)."""
    figures = 0
    with a.report_reads() as q:
        assert q.journey_ids() == sorted(journeys)
    for journey in journeys:
        for since, until in _ranges(events):
            want = build_report(a, journey, since_ms=since, until_ms=until)
            assert build_report(b, journey, since_ms=since, until_ms=until) == want
            figures += want.entries + sum(sum(s.sends.values()) for s in want.steps)
        with a.report_reads() as q:
            version = q.deployed_versions(journey)[-1].version
        assert build_report(b, journey, version=version) == build_report(
            a, journey, version=version
        )
    ra, rb = a.replay_reads(), b.replay_reads()
    assert rb.deployed_versions() == ra.deployed_versions()
    assert rb.last_activity() == ra.last_activity()
    for user in users:
        ids = a.identities_of(user)
        assert b.identities_of(user) == ids
        assert rb.is_known(user) == ra.is_known(user)
        assert rb.user_events(ids) == ra.user_events(ids)
        assert rb.recorded_actions(ids) == ra.recorded_actions(ids)
        assert rb.recorded_segment_changes(ids) == ra.recorded_segment_changes(ids)
    assert b.deliveries().counts() == a.deliveries().counts()
    return figures


# The engine_stores fixture's PostgreSQL databases (emptied for each example); the
# SQLite store is made here, beside it.
@pytest.mark.parametrize("engine_stores", ["postgres"], indirect=True)
@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(scenarios())
def test_what_the_engine_wrote_reads_the_same_on_both_stores(
    engine_stores: PostgresStores, scenario: Scenario
) -> None:
    reject_runaways(scenario.files, scenario.events, scenario.start_ms, scenario.until_ms)
    project = compile_files(scenario.files)
    window = {"start_ms": scenario.start_ms, "until_ms": scenario.until_ms}
    users = sorted({e.user_id for e in scenario.events})
    with tempfile.TemporaryDirectory(dir=TMP_DIR) as tmp, engine_stores.fresh() as pg:
        simulate(project, scenario.events, pg, hold=False, **window)
        path = Path(tmp) / "s.db"
        with SqliteStore.open(path) as sqlite:
            simulate(project, scenario.events, sqlite, **window)
            figures = _same_reads(sqlite, pg, list(project.journeys), users, scenario.events)
        event("some entries or sends" if figures else "nothing entered")
        a, b = dashboard_reads(str(path)), dashboard_reads(pg.path)
        assert b.deployed() == a.deployed()
        assert b.latest_activity() == a.latest_activity()
        assert b.journey_totals(0, 1 << 50) == a.journey_totals(0, 1 << 50)
        for user in users:
            assert b.user(user) == a.user(user)
        with reading_at(str(path)) as x, reading_at(pg.path) as y:
            assert y.live_per_step() == x.live_per_step()
            assert y.entry_cohorts() == x.entry_cohorts()
            assert y.sends_per_journey() == x.sends_per_journey()
