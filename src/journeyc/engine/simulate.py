"""The virtual-clock driver: replay recorded events through the engine.

The clock jumps from event time to event time and timer to timer; at equal times
events go first (the engine handles new events before due timers). No threads, no
scheduler, no wall clock: the same input gives the same actions.
"""

from __future__ import annotations

import gc
import tempfile
from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from operator import attrgetter
from pathlib import Path
from typing import Any

from journeyc.compile import ir
from journeyc.config import Config
from journeyc.engine.actions import Action
from journeyc.engine.core import Engine
from journeyc.events import ALIAS, PREVIOUS_ID, Event
from journeyc.messages.render import Renderer
from journeyc.store.abc import SimulationStore, Store
from journeyc.store.open import open_simulation_store
from journeyc.store.rows import StoredEvent

CHUNK = 20_000  # clock steps a chunk: held writes are written, and kept rows let go, per chunk


def simulate(
    project: ir.ProjectIR,
    events: Sequence[Event],
    store: Store,
    *,
    config: Config | None = None,
    start_ms: int | None = None,
    until_ms: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    hold: bool = True,
    scratch: bool = False,
) -> list[Action]:
    """Run ``project`` over ``events`` in ``store`` and return every action in order.

    Events before ``start_ms`` are history: logged (aggregates count them, identify
    traits apply) but no journey reacts. The clock stops at ``until_ms`` (timers due
    later never fire); without it, when no event is left and no journey is waiting
    (scheduled entries and segment rechecks alone do not keep it going).
    ``progress(done, total)`` is told how many events have been replayed.

    ``hold=False`` runs the engine as the daemon does, every step written to the
    store and read back from it, instead of held in memory between chunks: the same
    actions and the same rows, more slowly (the tests compare the two).

    ``scratch=True`` is for a store thrown away after the run: instances, outbox rows
    and actions, which nothing reads back during a held run, are not written
    (:meth:`Engine.keep_rows`); the actions returned are the same.

    ``hold`` needs a :class:`SimulationStore` (SQLite); any store runs with
    ``hold=False`` (a PostgreSQL one: the engine tests run there too).
    """
    # The simulation owns its store: its commits need no sync (Store.bulk).
    bulk = store.bulk() if hold and isinstance(store, SimulationStore) else nullcontext()
    with no_full_collections(), bulk:
        replay = Replay(project, events, store, config, start_ms, until_ms, progress, hold, scratch)
        replay.run()
        return replay.actions


@contextmanager
def no_full_collections() -> Iterator[None]:
    """Within the block, the garbage collector collects its young generations only.

    A replay's heap is mostly long-lived: the events it was given, the index of them,
    the instances and actions it keeps. Each full collection walks all of it again
    (six at 100k events, a tenth of the replay's time) and found nothing: the
    engine's short-lived cycles die young (tests/test_drivers.py checks a replay
    leaves none). Leaving the block restores the thresholds; nested blocks are fine.
    (A Python that collects its old generation incrementally ignores the third
    threshold, and this changes nothing there.)"""
    young, middle, full = gc.get_threshold()
    gc.set_threshold(young, middle, 2**31 - 1)
    try:
        yield
    finally:
        gc.set_threshold(young, middle, full)


@contextmanager
def scratch_store() -> Iterator[SimulationStore]:
    """A fresh store in a temporary directory, closed and deleted afterwards: a
    simulation's own, to replay with ``scratch=True``."""
    with tempfile.TemporaryDirectory(prefix="journeyc-simulate-") as tmp:
        store = open_simulation_store(Path(tmp) / "simulate.db")
        try:
            yield store
        finally:
            store.close()


_AT = attrgetter("at_ms")


def log_order(
    events: Sequence[Event], start_ms: int | None, *, ordered: bool = False
) -> tuple[list[Event], int]:
    """``events`` in the order a replay logs them (by time; equal times keep file
    order), and when its clock starts: ``start_ms``, else the first event.
    ``ordered``: they are in that order already."""
    in_order = list(events) if ordered else sorted(events, key=_AT)
    if start_ms is None:
        start_ms = in_order[0].at_ms if in_order else 0
    return in_order, start_ms


class Replay:
    """One replay of events on a virtual clock, which can stop and go on.

    :meth:`run` steps the clock as :func:`simulate` describes. A replay of some of
    the users (:mod:`journeyc.engine.parallel`) is also given a ``horizon``: until
    then the clock goes on whether or not the replay has anything waiting, as it
    would while other users' events or waits keep a whole replay going.
    """

    def __init__(
        self,
        project: ir.ProjectIR,
        events: Sequence[Event],
        store: Store,
        config: Config | None = None,
        start_ms: int | None = None,
        until_ms: int | None = None,
        progress: Callable[[int, int], None] | None = None,
        hold: bool = True,
        scratch: bool = False,
        *,
        ordered: bool = False,
        renderer: Renderer | None = None,
    ) -> None:
        # ordered: the caller (a part of a parallel replay) has put the events in log
        # order, dropped repeated messageIds and linked ids (below) already, for a
        # store with no events.
        # renderer: one to reuse with its compiled templates (journeyc test runs many
        # short replays), its recommender bound to ``store`` by the caller.
        in_order, start_ms = log_order(events, start_ms, ordered=ordered)
        if not ordered:
            # Each event names the user its id names when it is logged (an anonymous
            # id merged into a known user names that user from then on): worked out
            # for the whole file now, in log order, as the store does at ingest. The
            # merges themselves happen as the engine reaches the alias events.
            in_order = store.link_events(in_order)
        cut = bisect_left(in_order, start_ms, key=_AT)
        history, live = in_order[:cut], in_order[cut:]
        engine = Engine(store, config, renderer)
        if history:
            store.append_events(history, link=False)
            # No engine runs over history, but its merges hold: events and profiles.
            with store.transaction():
                for e in history:
                    if e.name == ALIAS and isinstance(e.props.get(PREVIOUS_ID), str):
                        store.merge_users(e.props[PREVIOUS_ID], e.user_id)
            engine.skip_history()
        engine.deploy(project, start_ms)
        # The simulation is the store's only writer, and a failure ends it: the engine
        # holds every write in memory, answers from there, and writes what it held once
        # per chunk (Engine.keep_rows).
        if hold:
            engine.keep_rows(scratch)
            if not ordered:  # a repeated messageId is ignored, as ingest does
                live = store.unlogged(live)
        self.engine, self.store, self.live = engine, store, live
        self.until_ms, self.progress, self.hold = until_ms, progress, hold
        self.actions: list[Action] = []
        self.last_step: int | None = None  # when the clock last stopped to do work
        self._i = 0
        # The engine's cursor is at the log's end (an advance() ran, or none was needed).
        self._drained = hold and engine.caught_up

    def run(self, horizon: int | None = None) -> int | None:
        """Step the clock until the replay is over (or, before ``horizon``, until
        nothing at all is left to do); return when the next step would have been, or
        None when there is none (or it is past ``until_ms``)."""
        engine, store, live, until_ms = self.engine, self.store, self.live, self.until_ms
        total, hold, progress = len(live), self.hold, self.progress
        i = self._i
        stop: int | None = None
        over = False
        while True:
            # The store is the simulation's own: commit in chunks of clock steps rather
            # than once per step (engine steps take no savepoint of their own with
            # keep_rows(): a failure rolls the chunk back and ends the run).
            with store.transaction():
                # When the engine's last batch asked its next wake-up, nothing since
                # has changed it (logging events does not): asked once a step.
                known: tuple[int | None] | None = None
                for _ in range(CHUNK):
                    next_event = live[i].at_ms if i < total else None
                    now = engine.next_wake() if known is None else known[0]
                    if next_event is not None and (now is None or next_event < now):
                        now = next_event
                    if now is None or (until_ms is not None and now > until_ms):
                        stop, over = None, True
                        break
                    # Schedules and segment rechecks never run out; without --until the
                    # run lasts while events are left or a journey is waiting.
                    if not (
                        until_ms is not None
                        or i < total
                        or (horizon is not None and now <= horizon)
                        or engine.rt.next_wake() is not None
                    ):
                        stop, over = now, True
                        break
                    # After an advance() the engine has handled every event logged (its
                    # cursor is at the end of the log): what this step appends is all it
                    # would read, so hand that on instead of it reading the log back.
                    appended: list[StoredEvent] | None = [] if self._drained and hold else None
                    if next_event == now:
                        j = i
                        while j < total and live[j].at_ms == now:
                            j += 1
                        logged = engine.log(live[i:j])
                        if appended is not None:  # else the engine reads the log
                            appended = logged
                        i = j
                        if progress is not None:
                            progress(i, total)
                    self.actions.extend(engine.advance(now, appended))
                    known = engine.last_wake
                    self.last_step = now
                    self._drained = True
                self._i = i
                if hold:
                    engine.forget_rows()  # in the chunk's transaction: one commit
            if over:
                return stop


def simulate_project(
    project_dir: Path,
    events: Sequence[Event],
    *,
    start_ms: int | None = None,
    until_ms: int | None = None,
    config: Config | None = None,
) -> list[dict[str, Any]]:
    """Validate-free convenience for tests: lower the project under ``project_dir`` and
    simulate it in a fresh store; actions as JSON-ready dicts."""
    from journeyc.compile.lower import lower_project
    from journeyc.lang.project import load_project

    project = lower_project(load_project([project_dir]))
    with scratch_store() as store:
        actions = simulate(
            project,
            events,
            store,
            config=config,
            start_ms=start_ms,
            until_ms=until_ms,
            scratch=True,
        )
    return [a.as_dict() for a in actions]
