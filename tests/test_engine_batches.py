"""How the engine cuts its work when it is driven the daemon's way (every batch
committed): timers that came due earlier take turns with batches of events, a run
stops after ``max_batches`` and says so, and a deployment compiles its templates."""

from __future__ import annotations

from pathlib import Path

from journeyc.engine.core import Engine
from journeyc.events import Event
from journeyc.store.sqlite import Store
from tests.engine_helpers import MINUTE, compile_files

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


def engine(tmp_path: Path, batch: int = 2) -> tuple[Store, Engine]:
    store = Store.open(tmp_path / "e.db")
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


def test_timers_due_earlier_take_turns_with_batches_of_events(tmp_path: Path) -> None:
    store, eng = engine(tmp_path)
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
    store.close()


def test_at_the_same_instant_events_go_first(tmp_path: Path) -> None:
    store, eng = engine(tmp_path)
    log(store, T0, ("u0", "a"))
    eng.advance(T0)
    log(store, T0 + MINUTE, *[(f"v{i}", "b") for i in range(4)])
    actions = eng.advance(T0 + MINUTE)
    assert sends(actions) == ["event v0", "event v1", "event v2", "event v3", "timer u0"]
    store.close()


def test_a_run_stops_after_max_batches_and_says_so(tmp_path: Path) -> None:
    store, eng = engine(tmp_path)
    log(store, T0, *[(f"v{i}", "b") for i in range(5)])
    first = eng.advance(T0, max_batches=2)
    assert sends(first) == ["event v0", "event v1", "event v2", "event v3"]
    assert eng.unfinished
    rest = eng.advance(T0, max_batches=2)
    assert sends(rest) == ["event v4"]
    assert not eng.unfinished
    assert eng.advance(T0, max_batches=2) == [] and not eng.unfinished
    store.close()


def test_deploy_compiles_the_templates(tmp_path: Path) -> None:
    store, eng = engine(tmp_path)
    cached = eng.renderer._cache  # what the first send would otherwise parse
    assert "timer {{ user.id }}" in cached and "event {{ user.id }}" in cached
    store.close()
