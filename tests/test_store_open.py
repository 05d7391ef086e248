"""The openers of journeyc.store.open: what code outside store/ gets for a path, and
what the interfaces it then talks to answer (real SQLite files)."""

from __future__ import annotations

from pathlib import Path

import pytest

from journeyc.engine.core import Engine
from journeyc.events import Event, parse_event
from journeyc.store import abc
from journeyc.store.errors import DatabaseError, StoreError
from journeyc.store.open import (
    dashboard_reads,
    open_full_store,
    open_simulation_store,
    open_store,
    reading_at,
)
from journeyc.store.rows import StoredEvent

T0 = 1_700_000_000_000


def track(mid: str, user: str = "u1", at: int = T0) -> Event:
    return parse_event({"type": "track", "userId": user, "event": "Viewed", "messageId": mid}, at)


def test_open_store_makes_a_store_at_a_path_and_reading_at_reads_it(tmp_path: Path) -> None:
    path = tmp_path / "journeyc.db"
    store = open_store(path, lock_timeout_s=2)
    try:
        assert store.append_events([track("m1"), track("m2", "u2"), track("m1")]) == [1, 2, None]
        logged = store.events_after(0)
        assert [type(e) for e in logged] == [StoredEvent, StoredEvent]
        assert [(e.seq, e.user_id, e.kind) for e in logged] == [
            (1, "u1", "track"),
            (2, "u2", "track"),
        ]
    finally:
        store.close()
    # A snapshot of its own, the store not opened: what the metrics scrape reads.
    with reading_at(path) as reads:
        assert (reads.count_events(), reads.count_profiles(), reads.last_seq()) == (2, 2, 2)


def test_a_file_that_is_no_store_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(b"these are notes, not a database" * 100)
    with pytest.raises(StoreError, match=r"notes\.db"):
        open_store(path)
    # A snapshot read of it fails with the store's database error, nothing else.
    with pytest.raises(DatabaseError), reading_at(path) as reads:
        reads.count_events()
    # The dashboard's check says so too, and changes nothing.
    with pytest.raises(StoreError, match=r"notes\.db"):
        dashboard_reads(path).check()
    assert path.read_bytes() == b"these are notes, not a database" * 100


def test_the_simulators_store_has_the_simulation_mode_and_the_parts() -> None:
    store = open_simulation_store(":memory:")
    try:
        assert isinstance(store, abc.SimulationStore)
        store.hold_events()
        held = store.append_held([track("m1")])
        assert [(e.seq, e.message_id) for e in held] == [(1, "m1")]
        assert store.events_after(0) == []  # held, not written yet
        store.flush_events()
        assert [e.message_id for e in store.events_after(0)] == ["m1"]
        assert store.deployments().known_users() == 1
        with store.report_reads() as reports:
            assert reports.journey_ids() == []
        assert store.replay_reads().is_known("u1")
        assert not store.replay_reads().is_known("nobody")
        assert store.deliveries().counts() == {}
    finally:
        store.close()


def test_keep_rows_refuses_a_store_without_the_simulation_mode(tmp_path: Path) -> None:
    sqlite_store = open_store(tmp_path / "journeyc.db")

    class WithoutSimulation:
        """The store's own methods, but none of the simulator's (a daemon's store)."""

        def __getattr__(self, name: str) -> object:
            if name in {
                "hold_events",
                "append_held",
                "flush_events",
                "hold_profiles",
                "flush_profiles",
                "bulk",
                "copy_in_memory",
            }:
                raise AttributeError(name)
            return getattr(sqlite_store, name)

    try:
        engine = Engine(WithoutSimulation())  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="keep_rows"):
            engine.keep_rows()
    finally:
        sqlite_store.close()


def test_open_full_store_opens_postgresql_and_reading_at_reads_it(postgres_url: str) -> None:
    store = open_full_store(postgres_url)
    try:
        assert not isinstance(store, abc.SimulationStore)
        assert store.path.startswith("postgresql://")
        store.append_events([track("m1"), track("m2", user="u2")])
    finally:
        store.close()
    with reading_at(postgres_url) as reads:  # a connection of its own, one snapshot
        assert reads.last_seq() == 2


def test_reading_at_an_unreachable_server_is_an_operational_error() -> None:
    with pytest.raises(DatabaseError) as info, reading_at("postgresql://a:s3cret@127.0.0.1:1/x"):
        pass
    assert "s3cret" not in str(info.value)
