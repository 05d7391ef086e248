"""How the engine cuts its work when it is driven the daemon's way (every batch
committed): timers that came due earlier take turns with batches of events, a run
stops after ``max_batches`` and says so, and a deployment compiles its templates. On
each kind of store (the ``engine_stores`` fixture)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from journeyc.engine.core import Engine
from journeyc.events import Event
from journeyc.store.abc import Store
from journeyc.store.sqlite import Store as SqliteStore
from tests.engine_helpers import MINUTE, PostgresStores, compile_files

T0 = 1_767_600_000_000
PROJECT = {
    "j.journey": """journey later
  when a
  wait 1m
  send inapp "timer {{ user.id }}"

journey now
  when b
  entry always
  send inapp "event {{ user.id }}"
"""
}


@pytest.fixture
def store(engine_stores: PostgresStores | None, tmp_path: Path) -> Iterator[Store]:
    """A fresh store of each kind, closed after the test."""
    if engine_stores is None:
        sqlite = SqliteStore.open(tmp_path / "e.db")
        yield sqlite
        sqlite.close()
    else:
        with engine_stores.fresh() as pg:
            yield pg


def engine(store: Store, batch: int = 2) -> tuple[Store, Engine]:
    eng = Engine(store, commit_per_batch=True, batch=batch)
    eng.deploy(compile_files(PROJECT), T0)
    return store, eng


def log(store: Store, at: int, *pairs: tuple[str, str]) -> None:
    store.append_events(
        [Event(f"m{at}-{u}-{n}", u, "track", n, at, {}, at) for u, n in pairs],
        merge_traits=False,
    )


def sends(actions: list) -> list[str]:  # type: ignore[type-arg]
    return [a.detail["content"]["body"] for a in actions if a.action == "send"]


def test_timers_due_earlier_take_turns_with_batches_of_events(store: Store) -> None:
    store, eng = engine(store)
    log(store, T0, ("u0", "a"))
    eng.advance(T0)
    # Six events arrive; the timer came due before the engine runs again.
    log(store, T0 + 2 * MINUTE, *[(f"v{i}", "b") for i in range(6)])
    actions = eng.advance(T0 + 3 * MINUTE)
    assert sends(actions) == [
        "event v0",
        "event v1",
        "timer u0",  # after one batch of events, not after all of them
        "event v2",
        "event v3",
        "event v4",
        "event v5",
    ]


def test_at_the_same_instant_events_go_first(store: Store) -> None:
    store, eng = engine(store)
    log(store, T0, ("u0", "a"))
    eng.advance(T0)
    log(store, T0 + MINUTE, *[(f"v{i}", "b") for i in range(4)])
    actions = eng.advance(T0 + MINUTE)
    assert sends(actions) == ["event v0", "event v1", "event v2", "event v3", "timer u0"]


def test_a_run_stops_after_max_batches_and_says_so(store: Store) -> None:
    store, eng = engine(store)
    log(store, T0, *[(f"v{i}", "b") for i in range(5)])
    first = eng.advance(T0, max_batches=2)
    assert sends(first) == ["event v0", "event v1", "event v2", "event v3"]
    assert eng.unfinished
    rest = eng.advance(T0, max_batches=2)
    assert sends(rest) == ["event v4"]
    assert not eng.unfinished
    assert eng.advance(T0, max_batches=2) == [] and not eng.unfinished


def test_deploy_compiles_the_templates(store: Store) -> None:
    store, eng = engine(store)
    cached = eng.renderer._cache  # what the first send would otherwise parse
    assert "timer {{ user.id }}" in cached and "event {{ user.id }}" in cached
