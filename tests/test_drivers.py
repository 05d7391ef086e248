"""The simulator's ways of driving the engine agree: holding its writes in memory
between chunks (``simulate``'s default, answered from heaps and indexes) and writing
every step to the store and reading it back (the daemon's way). Same actions, and the
same rows in every table the engine writes. A held run on a scratch store (one thrown
away after the run, as ``journeyc simulate`` keeps no file without ``--db``) gives
the same actions and writes the same rows, but for the instances, outbox rows and
actions, which it does not write at all, and the events past the history and the
products they name, which it does not log or learn unless a message calls a
recommendation filter.

The held runs write in chunks of a few clock steps and keep the rows of at most two
users from one chunk to the next, so that chunk ends (and letting kept rows go) come
up in every scenario, not only in runs of 20,000 steps; every run works in batches of
two events or timers, so that an instant often needs several."""

from __future__ import annotations

import dataclasses
import functools
import gc
import json
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from unittest import mock

from hypothesis import given

from journeyc.compile import ir
from journeyc.compile.lower import lower_project
from journeyc.engine import core
from journeyc.engine import simulate as driver
from journeyc.engine.reads import shared_reads
from journeyc.engine.simulate import simulate
from journeyc.events import Event, parse_event
from journeyc.lang.project import load_project
from journeyc.store.sqlite import Store, schema
from tests.engine_helpers import TMP_DIR, compile_files, reject_runaways, time_limit
from tests.journey_strategies import Scenario, scenarios

ROOT = Path(__file__).resolve().parent.parent
# Every table the engine writes; the cursor's seq may differ (see _tables).
TABLES = tuple(t for t in schema.TABLES if t not in ("cursor", "settings"))


def _tables(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    """Every row, sorted; the event log in log order (its seqs may skip numbers where
    ingest met a duplicate, so they are left out, as is the cursor)."""
    out = {}
    for table in TABLES:
        cols = ", ".join(
            c[1] for c in store.conn.execute(f"PRAGMA table_info({table})") if c[1] != "seq"
        )
        order = "seq" if table == "events" else cols
        out[table] = store.conn.execute(f"SELECT {cols} FROM {table} ORDER BY {order}").fetchall()
    return out


Outcome = tuple[list[str], dict[str, Any]]


def _column(table: str, name: str) -> int:
    """Where ``name`` is in the rows :func:`_tables` gives of ``table``."""
    store = Store.open(":memory:")
    try:
        cols = [c[1] for c in store.conn.execute(f"PRAGMA table_info({table})") if c[1] != "seq"]
    finally:
        store.close()
    return cols.index(name)


_EVENT_AT = _column("events", "at")
# What a scratch run leaves unwritten: nothing reads these back while rows are held.
UNWRITTEN = ("instances", "outbox", "actions", "action_counts", "outbox_counts")


def _run(
    project: ir.ProjectIR,
    events: list[Event],
    start_ms: int | None = None,
    until_ms: int | None = None,
    *,
    hold: bool = True,
    scratch: bool = False,
) -> Outcome:
    with tempfile.TemporaryDirectory(dir=TMP_DIR) as tmp:
        store = Store.open(Path(tmp) / "s.db")
        try:
            with time_limit(60), ExitStack() as small:
                # Batches of two: events at one instant often fill more than one.
                small.enter_context(
                    mock.patch.object(driver, "Engine", functools.partial(core.Engine, batch=2))
                )
                if hold:
                    small.enter_context(mock.patch.object(driver, "CHUNK", 5))
                    small.enter_context(mock.patch.object(core, "KEPT_USERS", 2))
                actions = simulate(
                    project,
                    events,
                    store,
                    start_ms=start_ms,
                    until_ms=until_ms,
                    hold=hold,
                    scratch=scratch,
                )
            return [a.to_json() for a in actions], _tables(store)
        finally:
            store.close()


def _both(
    project: ir.ProjectIR,
    events: list[Event],
    start_ms: int | None = None,
    until_ms: int | None = None,
) -> tuple[Outcome, Outcome]:
    return (
        _run(project, events, start_ms, until_ms, hold=True),
        _run(project, events, start_ms, until_ms, hold=False),
    )


def _assert_scratch_agrees(
    scratch: Outcome, held: Outcome, project: ir.ProjectIR, start_ms: int | None = None
) -> None:
    """The same actions and rows, but for what a scratch run leaves out: without a
    recommendation filter (nothing reads the log back then), the products and the
    events past the history before ``start_ms`` too."""
    assert scratch[0] == held[0]
    unwritten = UNWRITTEN if shared_reads(project) else (*UNWRITTEN, "products")
    for table in TABLES:
        want = [] if table in unwritten else held[1][table]
        if table == "events" and not shared_reads(project):
            want = [row for row in want if start_ms is not None and row[_EVENT_AT] < start_ms]
        assert scratch[1][table] == want, table


def _examples() -> tuple[ir.ProjectIR, list[Event]]:
    """The example project and the example events."""
    project = lower_project(load_project([ROOT / "journeys"]))
    events = [
        parse_event(json.loads(line), received_ms=0)
        for line in (ROOT / "examples" / "events.jsonl").read_text().splitlines()
        if line.strip()
    ]
    return project, events


def _assert_same(held: Outcome, step: Outcome) -> None:
    assert held[0] == step[0]
    for table in TABLES:
        assert held[1][table] == step[1][table], table


@given(scenarios(scheduled=True))
def test_held_and_written_steps_agree_on_generated_scenarios(scenario: Scenario) -> None:
    reject_runaways(scenario.files, scenario.events, scenario.start_ms, scenario.until_ms)
    project = compile_files(scenario.files)
    held, step = _both(project, scenario.events, scenario.start_ms, scenario.until_ms)
    _assert_same(held, step)
    scratch = _run(project, scenario.events, scenario.start_ms, scenario.until_ms, scratch=True)
    _assert_scratch_agrees(scratch, held, project, scenario.start_ms)


def test_held_and_written_steps_agree_on_the_examples() -> None:
    """The example journeys (segments, schedules, caps, quiet hours, tracks, sets,
    recommendations over the catalog's events) over the example events."""
    project, events = _examples()
    held, step = _both(project, events)
    assert held[0], "the examples do something"
    _assert_same(held, step)
    assert held[1]["outbox"] and held[1]["actions"], "rows a scratch run leaves out"
    scratch = _run(project, events, scratch=True)
    _assert_scratch_agrees(scratch, held, project)
    assert shared_reads(project), "the examples recommend products"
    assert scratch[1]["products"], "so the catalog learns them"


def test_a_scratch_run_learns_no_products_when_no_message_recommends() -> None:
    """The same events through a project that calls no recommendation filter: the
    held run learns the products they name, the scratch run does not need to."""
    _, events = _examples()
    project = compile_files(
        {"a.journey": 'journey a\n  when product_viewed\n  send push "{{ event.name }}"\n'}
    )
    assert shared_reads(project) is None
    held = _run(project, events)
    assert held[1]["products"], "the example events name products"
    _assert_scratch_agrees(_run(project, events, scratch=True), held, project)


def test_a_scratch_run_on_a_store_that_holds_instances_writes_everything() -> None:
    """Rows already in the store would go stale under a run that leaves instances
    unwritten: on such a store a scratch run writes as a held run does."""
    project, events = _examples()
    first, rest = events[: len(events) // 2], events[len(events) // 2 :]
    outcomes = []
    for scratch in (False, True):
        with tempfile.TemporaryDirectory(dir=TMP_DIR) as tmp:
            store = Store.open(Path(tmp) / "s.db")
            try:
                simulate(project, first, store)
                assert store.conn.execute("SELECT count(*) FROM entries").fetchone()[0]
                actions = simulate(project, rest, store, scratch=scratch)
                outcomes.append(([a.to_json() for a in actions], _tables(store)))
            finally:
                store.close()
    _assert_same(outcomes[1], outcomes[0])


def test_a_replay_writes_inside_transactions_only() -> None:
    """What a held run writes at a chunk's end goes in the chunk's transaction: a
    statement run outside one commits by itself, row by row for ``executemany``."""
    project, events = _examples()
    with tempfile.TemporaryDirectory(dir=TMP_DIR) as tmp:
        store = Store.open(Path(tmp) / "s.db")
        try:
            writes: list[str] = []
            alone: list[str] = []

            def trace(sql: str) -> None:
                if sql.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE", "REPLACE")):
                    (writes if store.conn.in_transaction else alone).append(sql)

            store.conn.set_trace_callback(trace)
            with mock.patch.object(driver, "CHUNK", 5):
                simulate(project, events, store)
        finally:
            store.close()
    assert len(writes) > 100
    assert alone == []


def _many_users(events: list[Event], users: int) -> list[Event]:
    """The example events again for ``users`` users (their own ids and message ids)."""
    return [
        dataclasses.replace(e, user_id=f"{e.user_id}-{k}", message_id=f"{e.message_id}-{k}")
        for k in range(users)
        for e in events
    ]


def cyclic_garbage_of_replays(user_counts: tuple[int, ...]) -> list[int]:
    """The objects a full collection finds after a replay of the examples' events for
    each of ``user_counts`` users (collections off during each replay)."""
    project, events = _examples()
    found = []
    for users in user_counts:
        batch = _many_users(events, users)
        gc.collect()
        gc.disable()
        try:
            _run(project, batch, scratch=True)
            found.append(gc.collect())
        finally:
            gc.enable()
    return found


def test_a_replay_leaves_no_cycles_behind_its_steps() -> None:
    """What the engine makes for a step is freed by reference counting: a replay of
    four times the events leaves no more cyclic garbage than a short one (a scope
    that held a closure over itself once left ten objects an event), so a replay
    need not run full collections (``no_full_collections``).

    Counted in a fresh interpreter: in the test process, threads other tests left
    running (a server's, a connection pool's) make garbage of their own meanwhile."""
    code = (
        "import json; from tests.test_drivers import cyclic_garbage_of_replays as f; "
        "print(json.dumps(f((5, 20))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    found = json.loads(done.stdout.strip().splitlines()[-1])
    events = _examples()[1]
    extra = 15 * len(events)
    assert found[1] - found[0] < extra / 10, (found, extra)


def test_a_replay_runs_no_full_collections_and_restores_the_thresholds() -> None:
    project, events = _examples()
    batch = _many_users(events, 5)
    replaying = False
    seen_in_replay = {0: 0, 1: 0, 2: 0}  # collections by generation, during the steps

    def seen(phase: str, info: dict[str, int]) -> None:
        if phase == "start" and replaying:
            seen_in_replay[info["generation"]] += 1

    def progress(done: int, total: int) -> None:
        nonlocal replaying
        replaying = done < total

    before = gc.get_threshold()
    with tempfile.TemporaryDirectory(dir=TMP_DIR) as tmp:
        store = Store.open(Path(tmp) / "s.db")
        gc.set_threshold(10, 1, 1)  # a full collection at every other young one
        gc.callbacks.append(seen)
        try:
            simulate(project, batch, store, scratch=True, progress=progress)
            restored = gc.get_threshold()
        finally:
            gc.callbacks.remove(seen)
            gc.set_threshold(*before)
            store.close()
    assert seen_in_replay[0] + seen_in_replay[1] > 0, "the young generations are collected"
    assert seen_in_replay[2] == 0
    assert restored == (10, 1, 1)
