"""The engine: one deterministic step function shared by simulate, serve and the tests.

``Engine.advance(now)`` reads the events logged since its cursor and the timers due
by ``now``, runs every touched instance to its next wait, and writes instances,
outbox rows, actions and the cursor in one transaction (docs/semantics.md says what
it does, in order). It never reads the wall clock and iterates in a fixed order, so
the same log and the same clock give the same actions.

:class:`Engine` is what the drivers call (simulate, serve, ``journeyc test``,
``journeyc why``). It handles events and due timers: entries and their rules, goals,
exits, ``wait for`` events, identify and alias calls, segment changes and scheduled
firings, in batches. What a deployed project is to it lives in
:mod:`journeyc.engine.deployment`, running an instance's steps in
:mod:`journeyc.engine.steps`, and what a ``send`` step does in
:mod:`journeyc.engine.send_policy`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import nullcontext
from datetime import datetime
from typing import Any

from journeyc.compile import ir
from journeyc.config import Config
from journeyc.engine.actions import Action
from journeyc.engine.aggregates import AggregateSource, StoreAggregates, from_ms
from journeyc.engine.deployment import Deployment, Programs, deploy_segments
from journeyc.engine.eventindex import EventIndex, IndexedAggregates
from journeyc.engine.expr import Predicate, Scope
from journeyc.engine.program import Program
from journeyc.engine.schedules import Firing, ScheduleBook
from journeyc.engine.segments import Horizon
from journeyc.engine.send_policy import SendPolicy, held_out
from journeyc.engine.steps import Steps, event_dict
from journeyc.engine.trace import Tracer
from journeyc.engine.values import EventView
from journeyc.events import ALIAS, CONTEXT_DEFAULTS, IDENTIFY, PREVIOUS_ID, Event
from journeyc.fastjson import dumps
from journeyc.messages.render import Renderer
from journeyc.store.abc import (
    EventHistory,
    PartitionLog,
    SegmentBook,
    SimulationStore,
    Store,
    UnitOfWork,
)
from journeyc.store.rows import Instance, SegmentRow, StoredEvent

CURSOR = "engine"
BATCH = 500
KEPT_USERS = 200_000  # keep_rows(): users whose profile and segment rows stay in memory


def _holds(pred: Predicate | None, scope: Scope) -> bool:
    """Whether ``pred`` holds (None: a condition that always does)."""
    return pred is None or pred(scope)


def _any_holds(preds: list[Predicate | None], scope: Scope) -> bool:
    """Whether any of ``preds`` holds (None: a condition that always does)."""
    # A loop, not any(<generator>): this runs for every candidate of every event.
    for p in preds:  # noqa: SIM110
        if p is None or p(scope):
            return True
    return False


_DETAILS: dict[str, str] = {}  # the JSON of details with one string value, by that


def _detail_json(detail: dict[str, Any]) -> str:
    """An action's detail as the action log holds it."""
    if not detail:
        return "{}"
    if len(detail) == 1:
        ((key, value),) = detail.items()
        if value.__class__ is str:
            text = _DETAILS.get(key + "\0" + value)
            if text is None:
                text = dumps(detail)
                if len(_DETAILS) < 4096:  # reasons, attribute and event names: few
                    _DETAILS[key + "\0" + value] = text
            return text
    return dumps(detail, default=str)


def _merged_id(ev: StoredEvent) -> str | None:
    """The id an alias event merges into its user (its ``previousId``), None for any
    other event and for an alias of a user to itself."""
    if ev.name != ALIAS:
        return None
    previous = ev.props.get(PREVIOUS_ID)
    return previous if isinstance(previous, str) and previous != ev.user_id else None


def _before_merge_barrier(
    events: list[StoredEvent], parts: Sequence[int], plog: PartitionLog
) -> list[StoredEvent]:
    """``events`` (of a worker's partitions ``parts``, in log order) up to the first
    alias event that must wait: one merging a user of another worker's partition
    whose worker has not handled every event logged before it. The merge moves the
    user's events into this partition, behind its cursor: those not handled by then
    would never be (docs/postgres.md). The worker runs again soon (its poll) and
    finds that partition caught up. Only alias events cost queries: each merged id's
    partition, and each other partition's first pending event, asked once a call."""
    part_of: dict[str, int] = {}
    first_pending: dict[int, int | None] = {}
    for k, ev in enumerate(events):
        frm = _merged_id(ev)
        if frm is None:
            continue
        part = part_of.get(frm)
        if part is None:
            part = part_of[frm] = plog.partition_of(frm)
        if part in parts:
            continue  # this worker's own: handled in log order
        if part not in first_pending:  # its cursor cannot move during this call
            pending = plog.events_after([part], 1)
            first_pending[part] = pending[0].seq if pending else None
        seq = first_pending[part]
        if seq is not None and seq < ev.seq:
            return events[:k]
    return events


class Engine:
    """Runs deployed journey versions over a store."""

    def __init__(
        self,
        store: Store,
        config: Config | None = None,
        renderer: Renderer | None = None,
        *,
        commit_per_batch: bool = False,
        batch: int = BATCH,
    ) -> None:
        # commit_per_batch: the daemon commits each batch so that a backlog never holds
        # the write lock (and ingest) for long; its actions are in the store either way.
        # Otherwise a step is one transaction, and a crash redoes the whole step.
        self.commit_per_batch = commit_per_batch
        # Events or due timers a batch takes. The daemon takes smaller ones: an event
        # waits for the batch it is in, and ingest for the write lock a batch holds.
        self.batch = batch
        self.unfinished = False  # advance() stopped at max_batches with work left
        self._timers_turn = False  # due timers go before the next batch of events
        self.store = store
        self.rt: UnitOfWork = store.runtime()
        self.config = config or Config()
        self.zone = self.config.engine.zone
        self.renderer = renderer or Renderer.with_catalog(
            store.recommendations(), self.config.render.limits
        )
        self.aggregates: AggregateSource = StoreAggregates(store.aggregates())
        self._index: EventIndex | None = None  # keep_rows(): the events, in memory
        self.programs = Programs(self.rt)
        self.deployment = Deployment()
        self.seg_book: SegmentBook = store.segment_book()
        self.history: EventHistory = store.event_history()
        self.horizon = Horizon(self.history, {})
        self.sched = ScheduleBook(store.schedule_rows(), self.zone)
        self._dirty: set[str] = set()  # users whose profile changed: segments to look at
        self._now: tuple[int, datetime] = (0, from_ms(0))  # the clock as a datetime
        self._cursor: int | None = None  # the log cursor, within one advance()
        self._handed: list[StoredEvent] | None = None  # advance(events=…), not read yet
        self.caught_up = False  # keep_rows(): no logged event was left unhandled then
        self._log_in_memory = False  # keep_rows(): held events are never written
        self._tracked = False
        self._tracked_events: list[StoredEvent] = []  # logged by `track` steps this batch
        self._in_hand: Sequence[StoredEvent] = ()  # the batch's events, while handled
        self._profiles: dict[str, dict[str, Any]] = {}  # read once per step, kept current
        self._keep = False  # keep_rows(): profiles stay read across steps
        self._sim: SimulationStore | None = None  # the store, when keep_rows() holds it
        self._cursor_unsaved = False  # keep_rows(): the cursor is written at forget_rows()
        self.lateness_ms: list[int] = []  # how late each timer of the last step ran
        # What next_wake() said when advance() last asked it, after its last change (a
        # 1-tuple; None when the last batch did not ask): the simulator's clock reuses
        # it instead of asking again.
        self.last_wake: tuple[int | None] | None = None
        # Several workers on one store (serve on PostgreSQL, see work_on()): this
        # worker's id, the partitions of the users it works on, and the store's log
        # read by partition. None: every user (one engine per store).
        self._worker = ""
        self._parts: list[int] | None = None
        self._plog: PartitionLog | None = None
        self._tracer: Tracer | None = None  # see the property
        self.send_policy = SendPolicy(self.config, self.renderer, self.rt)
        self.steps = Steps(self.rt, self.zone, self.send_policy)

    @property
    def tracer(self) -> Tracer | None:
        """Told of every decision (``journeyc why``); None in production, where each
        call site costs one test (engine/trace.py)."""
        return self._tracer

    @tracer.setter
    def tracer(self, tracer: Tracer | None) -> None:
        self._tracer = self.steps.tracer = self.send_policy.tracer = tracer

    # ------------------------------------------------------------ deploying
    def deploy(self, project: ir.ProjectIR, now_ms: int) -> None:
        """Make the project's journeys the active versions. Users in flight finish on
        the version they entered."""
        with self.store.transaction():
            self.rt.retire_except(sorted(project.journeys))
            for jid, j in sorted(project.journeys.items()):
                self.rt.deploy(jid, j.version, j.model_dump_json(), "", now_ms)
                if j.upgrade_in_place:
                    # Users in flight move to the new version when the step they are at
                    # still exists there (by name); the others finish where they are.
                    self.rt.upgrade(jid, j.version, sorted(j.nodes))
            self.send_policy.prepare(project)
            deployment = Deployment.build(project, self.programs)
            self.horizon = Horizon(self.history, project.segments)
            if self._index is not None:
                self.horizon.times = self._index.times
            deploy_segments(
                self.store, self.seg_book, project.segments, deployment.segments, now_ms
            )
            self.sched.deploy(project.journeys, now_ms)
        self.deployment = deployment

    @property
    def active(self) -> dict[str, Program]:
        """The deployed journeys' versions, by journey id."""
        return self.deployment.active

    def keep_rows(self, scratch: bool = False) -> None:
        """For a caller that is the store's only writer, holds a transaction around
        its steps and gives up on the first error (the simulator): keep the profiles,
        instances, entries and segment rows read from one step to the next (every
        change to them goes through the engine), and hold every write (events,
        instances, entries, outbox, actions, profiles, segment rows, the
        cursor) in memory until :meth:`forget_rows`.

        The events too: appended with :meth:`log`, they are written at
        :meth:`forget_rows` (or before anything reads them from the table: the
        recommendation filters), and aggregates and segment horizons are answered
        from an index of them in memory.

        ``scratch``: the store is the caller's own, thrown away after the run; the rows
        nobody reads back (instances, outbox rows, actions) are not written at all
        (see :meth:`UnitOfWork.hold`), nor, unless a message calls a recommendation
        filter, the events and the products they name
        (:meth:`SimulationStore.hold_events`): the caller hands every event it logs to
        :meth:`advance`.

        The store must be an :class:`~journeyc.store.abc.SimulationStore` (TypeError
        otherwise): only it can hold rows in memory.

        ``caught_up`` tells whether the engine had handled every event logged when this
        was called: a caller can then hand :meth:`advance` what it logs from the first
        step on."""
        if not isinstance(self.store, SimulationStore):
            raise TypeError(f"{self.store.path}: keep_rows() needs a store that can hold rows")
        sim = self._sim = self.store
        self._cursor = None
        self._keep = True
        self.rt.hold(scratch)
        self.seg_book.hold()
        sim.hold_profiles()
        self.sched.keep = True
        self.caught_up = not self.store.has_events_after(self.store.get_cursor(CURSOR))
        learn = not scratch or self.deployment.reads_catalog
        # Nothing reads the log back but the recommendation filters (and the engine's
        # first step, when events wait unhandled): the index answers the rest.
        reads_catalog = self.deployment.reads_catalog
        self._log_in_memory = self.rt.scratch and not reads_catalog and self.caught_up
        held = sim.hold_events(learn, write=not self._log_in_memory)
        self._index = EventIndex(self.history, held)
        self.aggregates = IndexedAggregates(self._index)
        self.horizon.times = self._index.times
        recommender = self.renderer.recommender
        if recommender is not None:
            recommender.sync = sim.flush_events

    def forget_rows(self) -> None:
        """Write what is held by :meth:`keep_rows` and drop the rows it read."""
        sim = self._sim
        if sim is not None:
            sim.flush_events()
        if self._cursor_unsaved and self._cursor is not None:
            self.store.set_cursor(CURSOR, self._cursor)
        self._cursor_unsaved = False
        self.rt.forget()
        if sim is not None:
            sim.flush_profiles()
        self.seg_book.flush()
        # Profiles and segment rows read stay known from chunk to chunk (every change
        # goes through the engine); read again, they were most of a long run's queries.
        # Past a bound they are let go, so memory stays bounded.
        if len(self._profiles) > KEPT_USERS:
            self._profiles.clear()
        if self.seg_book.kept_users() > KEPT_USERS:
            self.seg_book.forget()

    def log(self, events: Sequence[Event]) -> list[StoredEvent]:
        """Append ``events`` to the log for :meth:`advance` (identify calls are
        applied when the engine reaches them) and return the new ones as the log
        holds them. With :meth:`keep_rows` the caller has left out duplicates
        (:meth:`Store.unlogged`): the events are held and indexed."""
        if self._index is None:
            # The callers' events name canonical users already (a simulation links
            # its file before it runs; `track` steps log for the instance's user).
            seqs = self.store.append_events(events, merge_traits=False, link=False)
            return [
                StoredEvent(seq, e.message_id, e.user_id, e.name, e.at_ms, e.props, e.received_ms)
                for e, seq in zip(events, seqs, strict=True)
                if seq is not None
            ]
        sim = self._sim
        assert sim is not None  # the index is made by keep_rows()
        stored = sim.append_held(events)
        self._index.add(stored)
        return stored

    # ------------------------------------------------------------ several workers
    def work_on(
        self, worker_id: str, partitions: Sequence[int] | None, log: PartitionLog | None
    ) -> None:
        """Work only on the users of ``partitions``, which ``worker_id`` leases, reading
        the events through ``log`` (the store's per-partition cursors); None: every
        user. Several workers share a store this way (docs/postgres.md): each batch
        first checks, in its transaction, that the worker still holds the partitions
        (:meth:`PartitionLog.fence`: a takeover waits for the batch to commit), then
        takes their events, due timers and segment rechecks only. Work that is not
        one user's (scheduled entries' firings) is done by the holder of partition 0."""
        parts = None if partitions is None else sorted(set(partitions))
        if parts is not None and log is None:
            raise ValueError("work_on: partitions need the store's partition log")
        self._worker = worker_id
        self._parts = parts
        self._plog = None if parts is None else log
        self.rt.only(parts)
        self.seg_book.only(parts)
        self._cursor = None

    @property
    def partitions(self) -> list[int] | None:
        """The partitions this engine works on (None: every user)."""
        return None if self._parts is None else list(self._parts)

    # ------------------------------------------------------------ the clock
    def next_wake(self) -> int | None:
        """When the engine next has work without new events (epoch ms), if ever: the
        earliest waiting instance, segment recheck or scheduled firing (of its
        partitions, with :meth:`work_on`)."""
        # Asked once or twice a clock step by the simulator: no lists built.
        wake = self.rt.next_wake()
        sched = self.sched.next_due() if self._parts is None or 0 in self._parts else None
        for t in (self.seg_book.next_recheck(), sched):
            if t is not None and (wake is None or t < wake):
                wake = t
        return wake

    def skip_history(self) -> None:
        """Move the cursor past every logged event without reacting to them: they stay
        in the log as history that aggregates count."""
        last = self.history.last_seq()
        with self.store.transaction():
            self.store.set_cursor(CURSOR, last)

    def advance(
        self,
        now_ms: int,
        events: list[StoredEvent] | None = None,
        *,
        max_batches: int | None = None,
    ) -> list[Action]:
        """Handle new events, then due timers, as of ``now_ms``.

        Work goes in batches of up to ``batch`` events or due timers. Each batch writes
        its cursor, instances, outbox rows and actions together; with
        ``commit_per_batch`` each batch commits, otherwise the whole step does.
        Timers that came due before ``now_ms`` take turns with batches of events, so
        a stream of events never holds them back (at ``now_ms`` itself events go
        first). With ``max_batches`` it returns after that many batches, with
        :attr:`unfinished` set when work was left (the daemon then runs it again,
        with a fresh clock).

        ``events``: the caller vouches that these (in log order; at most ``batch``,
        unless :meth:`keep_rows` left the log unwritten) are every event logged past
        the cursor, as :meth:`Store.events_after` would read them (the simulator,
        which owns the store, hands over what it just appended, or ``[]``); the first
        batch takes them instead of reading the log, and later batches read it only
        once a step has logged events.
        """
        actions: list[Action] = []
        self.lateness_ms = []
        if not self._keep:
            self._cursor = None  # read again: the last step may have failed
        # Past a batch, events are read back from the log in batches, unless it is
        # not written (keep_rows(scratch)): then they are all taken at once.
        handed = events is not None and (len(events) <= self.batch or self._log_in_memory)
        self._handed = events if handed else None
        self.unfinished = False
        left = max_batches
        if self.commit_per_batch:
            while self._batch(now_ms, actions):
                if left is not None and (left := left - 1) <= 0:
                    self.unfinished = True
                    break
        else:
            # One transaction: a failing batch rolls the whole step back, so the batches
            # need no savepoints of their own. With keep_rows() inside the caller's
            # transaction, that is the step's: a failure ends the caller's run.
            keep = self._keep and self.store.in_transaction
            with nullcontext() if keep else self.store.transaction():
                while self._batch(now_ms, actions):
                    if left is not None and (left := left - 1) <= 0:
                        self.unfinished = True
                        break
        return actions

    def _batch(self, now_ms: int, actions: list[Action]) -> bool:
        """One batch in one transaction; False when nothing was left to do."""
        with self.store.transaction() if self.commit_per_batch else nullcontext():
            try:
                return self._work(now_ms, actions)
            except BaseException:
                # The batch is rolled back: drop what the runtime has not written.
                self.rt.discard()
                self._tracked_events = []
                raise

    def _work(self, now_ms: int, actions: list[Action]) -> bool:
        """The body of :meth:`_batch`."""
        first = len(actions)
        self.last_wake = None
        if not self._keep:
            self._profiles.clear()
        parts = self._parts
        plog = self._plog
        if parts is not None:
            assert plog is not None  # set together by work_on()
            held = plog.fence(self._worker, parts)
            if held != parts:  # a lease was lost: its partitions are another's now
                self.work_on(self._worker, held, plog)
                parts = held
            if not held:
                return False
        if self._timers_turn and self._handed is None:
            self._timers_turn = False
            # Timers due before now wait for no more than one batch of events. (A
            # caller handing events, the simulator, has none: its clock stops at each.)
            early = self.rt.due(now_ms - 1, self.batch)
            if early:
                self._prefetch([inst.user_id for inst in early])
                self._on_timers(early, now_ms, actions)
                self._end_batch(first, actions, None)
                return True
        cursor = self._cursor
        handed, self._handed = self._handed, None
        if handed is not None:
            events = handed
        elif parts is not None and plog is not None:
            events = _before_merge_barrier(plog.events_after(parts, self.batch), parts, plog)
        else:
            if cursor is None:
                cursor = self._cursor = self.store.get_cursor(CURSOR)
            if self._sim is not None:  # with keep_rows(): what is held is read here
                self._sim.flush_events()
            events = self.store.events_after(cursor, self.batch)
        due: list[Instance] = []
        more = False
        if events:
            if len(events) > 1:
                self._prefetch([ev.user_id for ev in events], runtime=True)
            self._in_hand = events
            for ev in events:
                self._on_event(ev, now_ms, actions)
            self._in_hand = ()
            self._cursor = events[-1].seq
            self._timers_turn = True
            if self._keep:
                self._cursor_unsaved = True
            elif parts is not None and plog is not None:
                plog.advance(parts, self._cursor)
            else:
                self.store.set_cursor(CURSOR, self._cursor)
        elif rechecks := self.seg_book.due(now_ms, self.batch):
            # At equal times: events, then segment rechecks (so schedules and steps
            # see current membership), then scheduled entries, then waits.
            by_user: dict[str, list[str]] = {}
            for u, seg in rechecks:
                by_user.setdefault(u, []).append(seg)
            for user, names in by_user.items():
                self._reevaluate(user, names, now_ms, actions)
                self._settle(now_ms, actions)
            more = True
        elif (parts is None or 0 in parts) and (firing := self.sched.due(now_ms)) is not None:
            self._fire(firing, now_ms, actions)
            more = True
        else:
            due = self.rt.due(now_ms, self.batch)
            self._prefetch([inst.user_id for inst in due])
            self._on_timers(due, now_ms, actions)
        tracked = self._end_batch(first, actions, handed)
        if events and handed is not None and not tracked:
            # The caller handed over every event there is: another batch only when a
            # timer, recheck or firing is due now.
            wake = self.next_wake()
            self.last_wake = (wake,)
            return wake is not None and wake <= now_ms
        # Another batch is needed after events (timers may be due), after a full batch
        # of timers, or when a step logged events; a short batch of timers ends it.
        return bool(events) or more or len(due) == self.batch or tracked

    def _on_timers(self, due: list[Instance], now_ms: int, actions: list[Action]) -> None:
        """Run due instances. Timers only when no event is waiting: events a timer's
        step logs are read before the next timer runs."""
        for k, inst in enumerate(due):
            self.lateness_ms.append(now_ms - (inst.wake_at or now_ms))
            self._on_timer(inst, now_ms, actions)
            self._settle(now_ms, actions)
            if self._tracked:
                self.rt.rearm(due[k + 1 :])
                return

    def _end_batch(
        self, first: int, actions: list[Action], handed: list[StoredEvent] | None
    ) -> bool:
        """Write the batch's rows and actions (from ``actions[first]``); whether a
        ``track`` step logged events."""
        tracked, self._tracked = self._tracked, False
        logged = self._tracked_events
        if logged:
            self._tracked_events = []
        if handed is not None:
            # The log holds nothing past the cursor but what `track` steps logged.
            small = len(logged) <= self.batch or self._log_in_memory  # as in advance()
            self._handed = [] if not tracked else logged if small else None
        self.rt.end()
        if len(actions) > first and not self.rt.scratch:  # a scratch store logs none
            self.rt.log_actions(
                (a.at_ms, a.user, a.journey, a.step, a.action, _detail_json(a.detail))
                for a in actions[first:]
            )
        if not self._keep:
            self._profiles.clear()
        return tracked

    def _prefetch(self, users: list[str], *, runtime: bool = False) -> None:
        """Read the profiles of a batch's users at once, and with ``runtime`` their
        live instances and latest entries (which events read; timers do not). Within
        the batch every profile change goes through ``_set_traits``, which drops the
        copy, so these stay current."""
        if len(users) > 1:
            missing = [u for u in dict.fromkeys(users) if u not in self._profiles]
            self._profiles.update(self.store.get_profiles(missing))
            if runtime:
                self.rt.prefetch(users)

    def _profile(self, user: str) -> dict[str, Any]:
        profile = self._profiles.get(user)
        if profile is None:
            profile = self._profiles[user] = self.store.get_profile(user)
        return profile

    def _set_traits(self, user: str, changes: dict[str, Any], now_ms: int) -> None:
        self.store.set_traits(user, changes, now_ms)
        self._profiles.pop(user, None)
        self._dirty.add(user)
        if "timezone" in changes:
            self.sched.add_zone(changes["timezone"], now_ms)
        # A zone a call's context filled in (an app user's device zone) counts as well.
        defaults = changes.get(CONTEXT_DEFAULTS)
        if isinstance(defaults, dict) and "timezone" in defaults:
            self.sched.add_zone(defaults["timezone"], now_ms)

    def _log_tracked(self, event: Event) -> None:
        """Log the event a ``track`` step made: the batch's end hands it on."""
        self._tracked_events += self.log([event])
        self._tracked = True

    # ------------------------------------------------------------ segments
    def _reevaluate(
        self, user: str, names: Iterable[str], now_ms: int, actions: list[Action]
    ) -> None:
        """Evaluate ``names`` (and every segment not yet evaluated for the user) and
        store the answers; each change is logged and enters the journeys that wait
        for it."""
        deployment = self.deployment
        infos = deployment.segments
        if not infos:
            return
        rows = self.seg_book.rows(user)
        if not names and rows.keys() >= infos.keys():
            return  # most events: no segment reads them, every one is evaluated
        wanted = set(names) | (infos.keys() - rows.keys())
        if not wanted:
            return
        scope = self._scope(user, now_ms, None)
        new: list[tuple[str, SegmentRow]] = []
        changes: list[tuple[str, bool]] = []
        for name in sorted(wanted):
            info = infos.get(name)
            if info is None:
                continue
            member = info.pred(scope)
            recheck = self.horizon.next_change(info.expr, scope)
            old = rows.get(name)
            if old is None or old.member != member:
                new.append((name, SegmentRow(member, now_ms, recheck)))
                if member or old is not None:
                    changes.append((name, member))
            elif old.recheck_at != recheck:
                new.append((name, SegmentRow(member, old.since, recheck)))
        if new:
            self.seg_book.write(user, new, changes, now_ms)
        for name, entered in changes:
            if self._tracer is not None:
                self._tracer.segment(user, name, entered, now_ms)
            edge = "entering" if entered else "leaving"
            for prog in deployment.by_segment.get((name, edge), []):
                self._enter(prog, user, None, now_ms, actions)

    def _settle(self, now_ms: int, actions: list[Action]) -> None:
        """Look again at the segments of users whose profile changed. A journey entered
        on the way may change more profiles; that goes on a bounded number of rounds
        (what is left is looked at after the next event or timer)."""
        for _ in range(8):
            if not self._dirty:
                return
            users, self._dirty = sorted(self._dirty), set()
            for user in users:
                self._reevaluate(user, self.deployment.segments_by_traits, now_ms, actions)

    def _fire(self, firing: Firing, now_ms: int, actions: list[Action]) -> None:
        """Enter the next batch of a scheduled firing's audience."""
        sim = self._sim
        if sim is not None:  # keep_rows(): the audience is read from profiles and segment rows
            sim.flush_events()  # the rows of users new to the log
            sim.flush_profiles()
            self.seg_book.flush()
        users, last = self.sched.audience(firing, self.batch)
        prog = self.deployment.active.get(firing.journey_id)
        if prog is not None and self._tracer is not None and users:
            self._tracer.firing(prog.id, now_ms)
        if prog is not None:
            for user in users:
                self._enter(prog, user, None, now_ms, actions)
                self._settle(now_ms, actions)
        self.sched.progress(firing, last)

    # ------------------------------------------------------------ scopes
    def _scope(
        self, user: str, now_ms: int, event: EventView | None, profile: dict[str, Any] | None = None
    ) -> Scope:
        prof = self._profile(user) if profile is None else profile
        if self._now[0] != now_ms:
            self._now = (now_ms, from_ms(now_ms))
        # Positional (now, profile, event, aggregates, segments, user_id): built for
        # nearly every event and step, twice as fast as by keyword.
        return Scope(self._now[1], prof, event, self.aggregates, self.deployment.in_segment, user)

    # ------------------------------------------------------------ events
    def _on_event(self, ev: StoredEvent, now_ms: int, actions: list[Action]) -> None:
        name = ev.name
        if name == IDENTIFY:
            # identify: its traits apply now, in log order (merging is idempotent, so an
            # identify the store already merged at ingest changes nothing more).
            self._set_traits(ev.user_id, ev.props, ev.at_ms)
            self._settle(now_ms, actions)
            return
        if name == ALIAS:
            previous = _merged_id(ev)
            if previous is not None:
                self.merge(previous, ev.user_id, now_ms, actions)
            return
        # A late event (a device's offline queue flushed hours later): the waits its
        # steps start are measured from its time, as a simulation, whose clock visits
        # it at that time, measures them; one already over ends at once. Only the
        # daemon meets such events (docs/semantics.md, "Late events").
        steps = self.steps
        steps.since_ms = ev.at_ms if ev.at_ms < now_ms else None
        try:
            self._on_track(ev, now_ms, actions)
        finally:
            steps.since_ms = None

    def _on_track(self, ev: StoredEvent, now_ms: int, actions: list[Action]) -> None:
        user = ev.user_id
        # One scope for the event; steps run on the way may replace the user's profile,
        # so each later test first points it at the current one.
        scope = self._scope(user, now_ms, None)
        # The simulator's events happen at its clock's time, which the scope has.
        at = scope.now if ev.at_ms == now_ms else from_ms(ev.at_ms)
        scope.event = EventView(ev.name, at, ev.props)
        tracer = self._tracer
        if tracer is not None:
            tracer.event(ev, now_ms)

        deployment = self.deployment
        for prog in deployment.by_goal.get(ev.name, ()):
            self._check_goal(prog, ev, scope, now_ms, actions)

        waiting: list[Instance] = []
        for inst in self.rt.live(user):
            exits = self.programs.of(inst).exits.get(ev.name)
            if tracer is not None and exits:
                tracer.exit_check(inst, ev, scope, _any_holds(exits, scope), now_ms)
            if exits and _any_holds(exits, scope):
                self.steps.finish(inst, "exited", "exit_event", now_ms, actions)
            elif inst.status == "waiting" and inst.waiting_for == ev.name:
                waiting.append(inst)

        for inst in waiting:
            prog = self.programs.of(inst)
            node = prog.journey.nodes[inst.node]
            if type(node) is not ir.WaitForNode:
                # `upgrade in place` moved the entry, by step name, to a step that is
                # no `wait for` in the new version: the event no longer ends its wait;
                # it goes on when the wait was set to end (docs/semantics.md).
                continue
            scope.profile = self._profile(user)
            resumed = _holds(prog.wait_where.get(node.id), scope)
            if tracer is not None:
                tracer.resume(inst, node, ev, scope, resumed, now_ms)
            if not resumed:
                continue
            nxt = self.steps.resume_at(inst, node, ev)
            self.steps.run(self, prog, inst, nxt, now_ms, actions)

        triggers = deployment.triggers.get(ev.name)
        candidates = triggers.candidates(ev.props) if triggers else ()
        if tracer is not None:  # every journey the event names, those the index left out too
            candidates = [
                (k, p, c) for k, (p, c) in enumerate(deployment.by_trigger.get(ev.name, ()))
            ]
        for _, prog, preds in candidates:
            scope.profile = self._profile(user)
            matched = _any_holds(preds, scope)
            if tracer is not None:
                tracer.trigger(prog, ev, scope, matched, now_ms)
            if matched:
                self._enter(prog, user, event_dict(ev.name, ev.at_ms, ev.props), now_ms, actions)

        # The event is part of the user's data now: the segments that read it may change.
        self.steps.since_ms = None  # what segments start happens now
        self._reevaluate(user, deployment.segments_by_event.get(ev.name, ()), now_ms, actions)
        self._settle(now_ms, actions)

    def merge(self, frm: str, into: str, now_ms: int, actions: list[Action]) -> None:
        """Merge the user ``frm`` into ``into`` (an alias event: docs/semantics.md,
        "Identity: anonymous to known"): ``frm``'s events, profile (``into``'s traits
        win), segment standing, entries, sends and journeys in flight become
        ``into``'s. Where both are in one journey, the instance that entered first
        goes on and the other exits with reason ``merged``. Then every segment is
        evaluated again for ``into`` on the merged data (changes enter journeys as
        usual)."""
        self._profiles.pop(frm, None)
        self._profiles.pop(into, None)
        # Events logged after the alias event under the merged id (by `track` steps of
        # its journeys, which ran before the merge) are the known user's when handled.
        for ev in (*self._in_hand, *self._tracked_events):
            if ev.user_id == frm:
                ev.user_id = into
        if self._index is not None:
            self._index.merge(frm, into)  # before the table's rows are renamed
        self.store.merge_users(frm, into)
        for inst in self.rt.merge_user(frm, into):
            self.steps.finish(inst, "exited", "merged", now_ms, actions)
        self.seg_book.merge(frm, into, now_ms)
        self._dirty.discard(frm)
        profile = self._profile(into)
        zone = profile.get("timezone")
        if isinstance(zone, str):
            self.sched.add_zone(zone, now_ms)
        self._reevaluate(into, sorted(self.deployment.segments), now_ms, actions)
        self._settle(now_ms, actions)

    def _check_goal(
        self, prog: Program, ev: StoredEvent, scope: Scope, now_ms: int, actions: list[Action]
    ) -> None:
        goal = prog.journey.goal
        assert goal is not None
        last = self.rt.last_entry(prog.id, ev.user_id)
        if last is None:  # most goal events: the tracer is not told (engine/trace.py)
            return
        entry_no, entered_at, goal_at = last
        if goal_at is not None or ev.at_ms < entered_at:
            why = "recorded_already" if goal_at is not None else "before_entry"
            return self._goal_traced(prog, ev, scope, why, now_ms)
        if goal.within is not None:
            if ev.at_ms > entered_at + goal.within * 1000:
                return self._goal_traced(prog, ev, scope, "after_within", now_ms)
        else:
            live = self.rt.live_in(prog.id, ev.user_id)
            if live is None or live.entry_no != entry_no:
                return self._goal_traced(prog, ev, scope, "entry_over", now_ms)
        if not _holds(prog.goal_where, scope):
            return self._goal_traced(prog, ev, scope, "where_false", now_ms)
        self.rt.record_goal(prog.id, ev.user_id, entry_no, now_ms)
        actions.append(Action(now_ms, ev.user_id, prog.id, None, "goal"))
        return self._goal_traced(prog, ev, scope, "reached", now_ms)

    def _goal_traced(
        self, prog: Program, ev: StoredEvent, scope: Scope, outcome: str, now_ms: int
    ) -> None:
        """Tell the tracer what a goal check decided (engine/trace.py)."""
        if self._tracer is not None:
            self._tracer.goal(prog, ev, scope, outcome, now_ms)

    def _enter(
        self,
        prog: Program,
        user: str,
        event: dict[str, Any] | None,
        now_ms: int,
        actions: list[Action],
    ) -> None:
        tracer = self._tracer
        if self.rt.live_in(prog.id, user) is not None:
            if tracer is not None:
                tracer.entry(
                    prog, user, "already_in", self.rt.last_entry(prog.id, user), False, now_ms
                )
            return
        last = self.rt.last_entry(prog.id, user)
        rule = prog.journey.entry
        if last is not None:
            if rule.mode == "once":
                if tracer is not None:
                    tracer.entry(prog, user, "once_used", last, False, now_ms)
                return
            if rule.mode == "once_per" and now_ms < last[1] + (rule.per or 0) * 1000:
                if tracer is not None:
                    tracer.entry(prog, user, "once_per_wait", last, False, now_ms)
                return
        holdout = held_out(prog, user)
        inst = self.rt.create(
            Instance(
                0,
                prog.id,
                prog.version,
                user,
                (last[0] + 1) if last else 1,
                "",
                "active",
                now_ms,
                vars={"entry": event},
                holdout=holdout,
            )
        )
        if tracer is not None:
            tracer.entry(prog, user, "entered", last, holdout, now_ms)
        actions.append(Action(now_ms, user, prog.id, None, "enter"))
        self.steps.run(self, prog, inst, prog.journey.start, now_ms, actions)

    # ------------------------------------------------------------ timers
    def _on_timer(self, inst: Instance, now_ms: int, actions: list[Action]) -> None:
        self.steps.wake(self, self.programs.of(inst), inst, now_ms, actions)
