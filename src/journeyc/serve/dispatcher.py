"""The outbox dispatcher: hands queued sends to channel providers, once each.

Each channel has a **lane**: its provider, a pool of at most ``concurrency`` threads
that call it, a deadline per send and a circuit breaker (the channel's
:class:`~journeyc.channels.base.DispatchOptions`). A provider that hangs or fails
holds only its own lane: the other channels' rows are claimed and sent as before.

One thread runs the dispatcher (:meth:`Dispatcher.pump`, or :meth:`Dispatcher.run_once`
which pumps until its batch is done); the lane threads only call providers. It never
calls a provider inside a transaction — ingest and the engine write the same file,
and a slow SMTP server must not hold its write lock. Each pump is one short
transaction that:

1. **Records** the outcomes the lanes reported since the last pump: ``sent``
   (``sent_at``, ``attempts + 1``); a retry (``attempts + 1``, ``next_attempt_at``
   after an exponential backoff, ``error``); ``failed`` (a permanent error, no
   provider for the channel, or the last attempt spent; ``error`` says which); or
   put off (a lane whose breaker opened: ``next_attempt_at`` at the end of the
   cool-down, ``attempts`` unchanged).
2. **Puts off** the due rows of channels whose breaker is open, without trying them.
3. **Claims** due rows (``status = 'queued'`` and ``next_attempt_at <= now``, by
   ``next_attempt_at`` then ``id``) for each lane with room (at most ``batch`` rows
   claimed and unfinished per lane; one probe for a half-open breaker) and their
   profiles. Claiming moves each row's ``next_attempt_at`` a lease into the future,
   so a second dispatcher on the same file skips them, and a dispatcher that dies
   mid-send leaves them to be retried when the lease runs out — or at once, when a
   daemon starts on the store and :meth:`Dispatcher.reclaim` takes back the rows
   another (dead) dispatcher had claimed.

The claimed rows then go to their lanes' threads, outside any transaction. A send
still running after the channel's ``deadline`` is given up: its thread is left to
finish (a fresh one takes its place), and the row counts a failed attempt, tried
again when its lease ends (a late success is still recorded). Transient failures,
give-ups and provider errors count towards the breaker; a permanent refusal is about
the message and does not.

Delivery is at least once, made effectively once by the key. A row is marked sent
only after its provider accepted it, and the outbox key travels to the receiver as
an idempotency key (``Idempotency-Key`` header, SMTP ``Message-ID``). A crash
between the provider's acceptance and the mark re-sends the message with the same
key when the lease expires, and the receiver can drop the copy.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import queue
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from journeyc.channels.base import (
    DispatchOptions,
    OutboundMessage,
    PermanentError,
    Provider,
    TransientError,
)
from journeyc.serve.breaker import BreakerState, CircuitBreaker
from journeyc.store.abc import Failure, Outbox, PutOff, QueuedSend, Retry, Store
from journeyc.store.errors import DatabaseError, StoreError
from journeyc.store.open import LOCK_TIMEOUT_S, open_full_store

__all__ = ["DispatchStats", "Dispatcher", "backoff_ms"]

log = logging.getLogger(__name__)

RECORD_EVERY_S = 1.0
"""In :meth:`Dispatcher.run_once`, the longest a delivered row waits to be marked:
outcomes are written once the sends in flight are done (one transaction, not one per
row), or sooner when a slow provider makes the run long. A crash before the mark
re-sends the row with the same key (see above)."""

IDLE_S = 5.0
"""A lane thread with nothing to send for this long ends (the lane starts another
when rows come)."""

DRAIN_S = 10.0
"""How long :meth:`Dispatcher.close` waits for the sends in flight, to record them."""

_Kind = Literal["sent", "permanent", "transient", "error", "put_off", "crash"]


@dataclass(frozen=True, slots=True)
class DispatchStats:
    """What a run did: rows sent, rows to retry, rows failed, and rows put off (not
    tried: their channel's breaker was open)."""

    sent: int = 0
    retried: int = 0
    failed: int = 0
    put_off: int = 0

    @property
    def handled(self) -> int:
        """Rows tried (or failed without a try) in the run."""
        return self.sent + self.retried + self.failed

    def __add__(self, other: DispatchStats) -> DispatchStats:
        return DispatchStats(
            self.sent + other.sent,
            self.retried + other.retried,
            self.failed + other.failed,
            self.put_off + other.put_off,
        )


@dataclass(slots=True, eq=False)
class _Task:
    """One claimed row on its way through a lane."""

    id: int
    attempts: int
    msg: OutboundMessage
    lease_end: int  # epoch ms: when the claim runs out
    started: float | None = None  # time.monotonic() when its send began
    abandoned: bool = False  # given up after the deadline; its thread may still run


@dataclass(frozen=True, slots=True)
class _Result:
    lane: _Lane
    task: _Task
    kind: _Kind
    reason: str = ""
    retry_after_s: float | None = None
    late: bool = False  # the send had been given up when it ended
    exc: BaseException | None = None  # kind "crash": raised again by the dispatcher


class _Lane:
    """One channel's provider, its threads, its deadline and its breaker.

    The dispatcher's thread submits tasks and gives up overdue ones; the lane's
    threads take tasks in order, ``put`` each outcome and ``notify``.
    """

    def __init__(
        self,
        channel: str,
        provider: Provider,
        options: DispatchOptions,
        put: Callable[[_Result], None],
        notify: Callable[[], None],
    ) -> None:
        self.channel = channel
        self.provider = provider
        self.concurrency = options.concurrency
        self.deadline_s = options.deadline
        self.breaker = CircuitBreaker(options.breaker_failures, options.breaker_cooldown)
        # Set while the breaker is open (or about to be): tasks not yet started come
        # back unsent. The lane threads set it at the breaker's threshold, the
        # dispatcher's thread when it opens or closes the breaker.
        self.paused = False
        self.streak = 0  # failed sends in a row, as the lane threads saw them end
        self.abandoned = 0  # sends given up so far
        self._put = put
        self._notify = notify
        self._cond = threading.Condition()
        self._waiting: deque[_Task] = deque()
        self._running: set[_Task] = set()
        self._threads = 0  # live threads, not counting those left with a given-up send
        self._closed = False

    @property
    def unfinished(self) -> int:
        """Tasks submitted whose outcome has not been reported (given-up ones excepted)."""
        with self._cond:
            return len(self._waiting) + len(self._running)

    def counts(self) -> tuple[int, int]:
        """(tasks waiting for a thread, sends running)."""
        with self._cond:
            return len(self._waiting), len(self._running)

    def submit(self, tasks: list[_Task]) -> None:
        """Queue ``tasks`` (in order) for the lane's threads."""
        with self._cond:
            self._waiting.extend(tasks)
            self._spawn()
            self._cond.notify(len(tasks))

    def earliest_deadline(self) -> float | None:
        """The monotonic time the first running send is due to be given up."""
        with self._cond:
            started = [t.started for t in self._running if t.started is not None]
        return min(started) + self.deadline_s if started else None

    def overdue(self, now: float) -> list[_Task]:
        """Give up the sends running longer than the deadline: they no longer count
        as running, and fresh threads take their places."""
        with self._cond:
            late = [
                t
                for t in self._running
                if t.started is not None and now - t.started >= self.deadline_s
            ]
            for task in late:
                task.abandoned = True
                self._running.discard(task)
                self._threads -= 1
            if late:
                self.abandoned += len(late)
                self._spawn()
        return late

    def close(self) -> None:
        """Let the idle threads end; tasks still waiting are dropped (their rows stay
        claimed until the lease ends, or until the next daemon reclaims them)."""
        with self._cond:
            self._closed = True
            self._waiting.clear()
            self._cond.notify_all()

    def _spawn(self) -> None:
        # Caller holds the lock. Threads not running a send are idle or about to
        # take a task; start more while there are more tasks than those.
        while (
            not self._closed
            and self._threads < self.concurrency
            and self._threads - len(self._running) < len(self._waiting)
        ):
            self._threads += 1
            threading.Thread(
                target=self._work, name=f"journeyc-send-{self.channel}", daemon=True
            ).start()

    def _work(self) -> None:
        while True:
            put_off: list[_Result] = []
            with self._cond:
                while not self._waiting:
                    if self._closed or (not self._cond.wait(IDLE_S) and not self._waiting):
                        self._threads -= 1  # closed, or idle for IDLE_S
                        return
                task = self._waiting.popleft()
                if self.paused:
                    put_off.append(_Result(self, task, "put_off"))
                else:
                    task.started = time.monotonic()
                    self._running.add(task)
            if put_off:
                self._put(put_off[0])
                self._notify()
                continue
            result = self._send(task)
            with self._cond:
                self._running.discard(task)
                self._count(result)
                # Queued in the order counted: the dispatcher's breaker counts the
                # same failures in a row as the streak.
                self._put(result)
            self._notify()
            if task.abandoned:
                return  # another thread took this one's place when it was given up

    def _count(self, result: _Result) -> None:
        """Keep the streak of failures (caller holds the lock); at the breaker's
        threshold pause the lane at once, so the tasks waiting behind are put off
        without a try before the dispatcher has even seen the failures."""
        if result.kind == "sent":
            self.streak = 0
        elif result.late:
            pass  # a given-up send's failure was counted when it was given up
        elif result.kind == "permanent":
            self.streak = 0
        elif result.kind in ("transient", "error"):
            self.streak += 1
            if self.streak >= self.breaker.failures:
                self.paused = True

    def gave_up(self) -> None:
        """Count a send the dispatcher gave up as a failure of the streak."""
        with self._cond:
            self.streak += 1
            if self.streak >= self.breaker.failures:
                self.paused = True

    def probe(self) -> None:
        """The half-open breaker's probe is about to be submitted: let it through."""
        with self._cond:
            self.streak = 0
            self.paused = False

    def _send(self, task: _Task) -> _Result:
        try:
            self.provider.send(task.msg)
        except PermanentError as exc:
            return _Result(self, task, "permanent", exc.reason, late=task.abandoned)
        except TransientError as exc:
            return _Result(
                self, task, "transient", exc.reason, exc.retry_after_s, late=task.abandoned
            )
        except Exception as exc:
            # A provider bug must not stop the lane or lose the row: it counts as a
            # transient failure, so the row is retried, then fails with the reason.
            log.exception("provider for %s raised on %s", self.channel, task.msg.key)
            reason = f"provider error: {type(exc).__name__}: {exc}"
            return _Result(self, task, "error", reason, late=task.abandoned)
        except BaseException as exc:
            # The process is going down (or a test says it is): the dispatcher's
            # thread raises it again and records nothing more.
            return _Result(self, task, "crash", exc=exc, late=task.abandoned)
        return _Result(self, task, "sent", late=task.abandoned)


@dataclass(slots=True)
class _Outcomes:
    """Outcomes of one pump: the parameters of the updates not written yet, and the
    count of those written."""

    sent: dict[int, list[int]] = field(default_factory=dict)  # sent_at → row ids
    late_sent: list[tuple[int, int]] = field(default_factory=list)  # (sent_at, id)
    retried: list[Retry] = field(default_factory=list)
    failed: list[Failure] = field(default_factory=list)
    put_off: list[PutOff] = field(default_factory=list)
    written: DispatchStats = DispatchStats()

    def stats(self) -> DispatchStats:
        """What was written and what waits to be, together."""
        return self.written + DispatchStats(
            sum(len(ids) for ids in self.sent.values()),
            len(self.retried),
            len(self.failed),
            len(self.put_off),
        )

    def pending(self) -> bool:
        """Whether some outcome waits to be written."""
        return bool(self.sent or self.late_sent or self.retried or self.failed or self.put_off)

    def copy(self) -> _Outcomes:
        """The same outcomes in containers of their own (what writing them clears)."""
        return _Outcomes(
            {at: list(ids) for at, ids in self.sent.items()},
            list(self.late_sent),
            list(self.retried),
            list(self.failed),
            list(self.put_off),
            self.written,
        )

    def clear(self) -> None:
        """Count what waited as written, and forget it."""
        self.written = self.stats()
        self.sent, self.late_sent, self.retried, self.failed, self.put_off = {}, [], [], [], []


def backoff_ms(key: str, attempts: int, base_delay_s: float, max_delay_s: float) -> int:
    """The wait before the next try of row ``key`` after its ``attempts``-th failure.

    ``base · 2^(attempts-1)``, capped at ``max_delay_s``, then scaled into its upper
    half by a jitter drawn from the key and the attempt: rows that failed together
    do not all come back at once, and the schedule is the same on every run.
    """
    ceiling = min(max_delay_s, base_delay_s * 2.0 ** max(0, attempts - 1)) * 1000.0
    digest = hashlib.blake2b(f"{key}:{attempts}".encode(), digest_size=8).digest()
    fraction = int.from_bytes(digest, "big") / 2**64
    return max(1, round(ceiling * (0.5 + 0.5 * fraction)))


class Dispatcher:
    """Delivers due outbox rows of ``store`` through ``providers`` (by channel).

    ``lanes`` gives each channel's concurrency, deadline and breaker (defaults for
    a channel it does not name). ``on_ready`` is called from a lane thread when an
    outcome waits to be recorded (at most once between pumps): the daemon runs
    :meth:`pump` again then.

    One thread at a time runs it (runs are serialized) and it alone uses the store
    connection; its transactions are short and providers are called outside them.
    :meth:`open` gives the dispatcher a connection of its own, as the daemon does:
    a read on a connection another thread shares can hold a snapshot that makes this
    one's ``BEGIN IMMEDIATE`` fail at once with "database is locked" (see the
    daemon's worker).
    """

    def __init__(
        self,
        store: Store,
        providers: Mapping[str, Provider],
        *,
        max_attempts: int = 8,
        base_delay_s: float = 5,
        max_delay_s: float = 3600,
        batch: int = 100,
        lease_s: float = 900,
        lanes: Mapping[str, DispatchOptions] | None = None,
        on_ready: Callable[[], None] | None = None,
    ) -> None:
        if max_attempts < 1 or batch < 1:
            raise ValueError("max_attempts and batch must be at least 1")
        if base_delay_s <= 0 or max_delay_s < base_delay_s or lease_s <= 0:
            raise ValueError("delays must be positive, with max_delay_s >= base_delay_s")
        self.store = store
        self.outbox: Outbox = store.outbox()
        self.providers = dict(providers)
        self.max_attempts = max_attempts
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self.batch = batch
        self.lease_ms = round(lease_s * 1000)
        self.id = uuid.uuid4().hex  # marks the rows this dispatcher has claimed
        self._run_lock = threading.Lock()
        self._owns_store = False
        self._on_ready = on_ready
        self._results: queue.SimpleQueue[_Result] = queue.SimpleQueue()
        self._ready = threading.Event()  # a result waits in _results
        self._told = threading.Lock()  # held from on_ready until the next pump
        # Outcomes collected from the lanes whose transaction failed (the store busy):
        # the next pump writes them; dropped, a sent row would go out again after its
        # lease.
        self._unwritten = _Outcomes()
        options = lanes or {}
        self._lanes = {
            channel: _Lane(
                channel,
                provider,
                options.get(channel, DispatchOptions()),
                self._results.put,
                self._wake,
            )
            for channel, provider in self.providers.items()
        }

    @classmethod
    def open(
        cls,
        path: Path | str,
        providers: Mapping[str, Provider],
        *,
        lock_timeout_s: float = LOCK_TIMEOUT_S,
        **kwargs: Any,
    ) -> Dispatcher:
        """A dispatcher with its own connection to the store at ``path``, whose writes
        wait at most ``lock_timeout_s`` for the write lock (``[store] lock_timeout``);
        :meth:`close` closes that connection (not the providers)."""
        dispatcher = cls(open_full_store(path, lock_timeout_s=lock_timeout_s), providers, **kwargs)
        dispatcher._owns_store = True
        return dispatcher

    def close(self, drain_s: float = DRAIN_S) -> None:
        """Wait up to ``drain_s`` for the sends in flight and record them, stop the
        lanes, and close the store connection if this dispatcher opened it."""
        try:
            deadline = time.monotonic() + drain_s
            while self._in_flight() and time.monotonic() < deadline:
                self._ready.wait(0.05)
                self._ready.clear()
            if not self._results.empty() or self._unwritten.pending():
                with contextlib.suppress(DatabaseError, StoreError):
                    self.pump(round(time.time() * 1000), claim=False)
        finally:
            for lane in self._lanes.values():
                lane.close()
            if self._owns_store:
                self.store.close()
                self._owns_store = False

    def __enter__(self) -> Dispatcher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ------------------------------------------------------------ when to run

    def next_due(self) -> int | None:
        """When the earliest queued row is due (epoch ms), or None when none is queued."""
        return self.outbox.next_due()

    def next_wake(self, now_ms: int) -> int | None:
        """When :meth:`pump` should run next (epoch ms; None: not until ``on_ready``):
        the earliest queued row of a channel whose lane can take it, or the earliest
        deadline of a send in flight. A full lane (or a half-open one with its probe
        out) is woken by ``on_ready`` instead, so its due rows do not keep the
        dispatcher busy."""
        busy = [c for c, lane in self._lanes.items() if self._room(lane, now_ms) <= 0]
        due = self.outbox.next_due(busy)
        deadlines = [d for lane in self._lanes.values() if (d := lane.earliest_deadline())]
        if deadlines:
            at = now_ms + max(0, round((min(deadlines) - time.monotonic()) * 1000))
            due = at if due is None else min(due, at)
        return due

    def channels(self, now_ms: int) -> dict[str, dict[str, Any]]:
        """Each lane's state, for ``/v1/status``: breaker state, sends running and
        waiting, sends given up, consecutive failures, and the times the breaker
        opened."""
        states: dict[str, dict[str, Any]] = {}
        for channel, lane in sorted(self._lanes.items()):
            waiting, running = lane.counts()
            states[channel] = {
                "breaker": lane.breaker.state(now_ms),
                "running": running,
                "waiting": waiting,
                "given_up": lane.abandoned,
                "consecutive_failures": lane.breaker.consecutive,
                "breaker_opened": lane.breaker.opened,
            }
        return states

    def breaker_state(self, channel: str, now_ms: int) -> BreakerState:
        """The state of ``channel``'s breaker at ``now_ms``."""
        return self._lanes[channel].breaker.state(now_ms)

    # ------------------------------------------------------------ running

    def reclaim(self, now_ms: int, alive: Collection[str] = ()) -> int:
        """Make the rows claimed by dispatchers other than this one and ``alive`` (the
        ids of the other live workers' dispatchers) and never recorded due at
        ``now_ms``; return how many. Those dispatchers are dead (the daemon at start
        knows it is the only one on its store; several workers pass the live ones),
        and their receivers drop a repeat by its idempotency key."""
        with self.store.transaction():
            return self.outbox.reclaim(now_ms, [self.id, *alive])

    def pump(self, now_ms: int, *, claim: bool = True) -> DispatchStats:
        """Record what the lanes reported, put off the due rows of open breakers, claim
        due rows for the lanes with room and hand them over; return at once with
        what was recorded. The daemon's way to run the dispatcher (with ``on_ready``
        and :meth:`next_wake`)."""
        with self._run_lock:
            stats, _ = self._step(now_ms, None if claim else 0)
            return stats

    def run_once(self, now_ms: int) -> DispatchStats:
        """Deliver up to ``batch`` rows due at ``now_ms`` and wait for their outcomes
        (or for their deadlines); return what happened.

        Call again while the result's ``handled`` equals ``batch`` to drain a backlog.
        """
        with self._run_lock:
            total = DispatchStats()
            claimed = 0
            while True:
                stats, (taken, more) = self._step(now_ms, self.batch - claimed)
                total += stats
                claimed += taken
                done = not self._in_flight() and self._results.empty()
                if done and (not more or claimed >= self.batch):
                    return total
                self._wait()

    # ------------------------------------------------------------ steps

    def _wake(self) -> None:
        """A lane thread queued an outcome: wake whoever runs the dispatcher."""
        self._ready.set()
        if self._on_ready is not None and self._told.acquire(blocking=False):
            self._on_ready()

    def _in_flight(self) -> int:
        return sum(lane.unfinished for lane in self._lanes.values())

    def _wait(self) -> None:
        """Until every send in flight has ended, or a send's deadline passed, or
        results have waited :data:`RECORD_EVERY_S` to be written."""
        since = time.monotonic()
        while self._in_flight():
            self._ready.clear()
            now = time.monotonic()
            deadlines = [d for lane in self._lanes.values() if (d := lane.earliest_deadline())]
            first = min(deadlines, default=now + RECORD_EVERY_S)
            if first <= now:
                return
            if not self._results.empty():
                if now - since >= RECORD_EVERY_S:
                    return
                first = min(first, since + RECORD_EVERY_S)
            self._ready.wait(min(first - now, 0.25))

    def _room(self, lane: _Lane, now_ms: int) -> int:
        """How many rows the lane can take now: up to the batch while its breaker is
        closed; the probe of a half-open breaker when nothing of the lane's runs."""
        allowance = lane.breaker.allowance(now_ms)
        if allowance is None:
            return self.batch - lane.unfinished
        return allowance if lane.unfinished == 0 else 0

    def _step(self, now_ms: int, limit: int | None) -> tuple[DispatchStats, tuple[int, bool]]:
        """One pump: collect, record, put off, claim (at most ``limit`` rows in all;
        None: as many as the lanes have room for) and submit. Returns the stats and
        (rows taken from the queue, whether more may be due than were taken)."""
        if self._told.locked():
            self._told.release()  # outcomes from now on wake the next pump
        # Collected into what an earlier pump could not write: the lanes' outcomes are
        # taken from their queue once, so they are kept until a transaction commits.
        unwritten = self._unwritten
        self._collect(now_ms, unwritten)
        self._give_up_overdue(now_ms, unwritten)
        outcomes = unwritten.copy()  # written (and cleared) inside the transaction
        claims: dict[_Lane, list[_Task]] = {}
        more, taken = False, 0
        claim = limit is None or limit > 0
        if claim or outcomes.pending():
            with self.store.transaction():
                self._write(outcomes)
                if claim:
                    put_off = self._put_off(now_ms)
                    more, taken = self._claim(now_ms, limit, outcomes, claims)
                    self._write(outcomes)
                    outcomes.written += DispatchStats(put_off=put_off)
        self._unwritten = _Outcomes()
        for lane, tasks in claims.items():
            lane.submit(tasks)
        stats = outcomes.stats()
        if stats.handled:
            log.debug(
                "dispatch: %d sent, %d to retry, %d failed, %d put off",
                stats.sent,
                stats.retried,
                stats.failed,
                stats.put_off,
            )
        return stats, (taken, more)

    def _collect(self, now_ms: int, outcomes: _Outcomes) -> None:
        results: list[_Result] = []
        while True:
            try:
                results.append(self._results.get_nowait())
            except queue.Empty:
                break
        for result in results:
            if result.kind == "crash" and result.exc is not None:
                raise result.exc
        for result in results:
            self._apply(result, now_ms, outcomes)

    def _apply(self, result: _Result, now_ms: int, outcomes: _Outcomes) -> None:
        lane, task, kind = result.lane, result.task, result.kind
        breaker = lane.breaker
        if result.late:
            # Given up already (counted as a failed attempt): only a success matters.
            if kind == "sent":
                outcomes.late_sent.append((now_ms, task.id))
                self._breaker_success(lane)
            return
        if kind == "put_off":
            outcomes.put_off.append(PutOff(breaker.open_until() or now_ms, task.id))
        elif kind == "sent":
            outcomes.sent.setdefault(now_ms, []).append(task.id)
            self._breaker_success(lane)
        elif kind == "permanent":
            self._fail(task.id, task.attempts + 1, task.msg.key, result.reason, outcomes)
            self._breaker_success(lane)  # the provider answered: it is the message
        else:
            self._retry(task, now_ms, result.reason, result.retry_after_s, outcomes)
            self._breaker_failure(lane, now_ms)

    def _give_up_overdue(self, now_ms: int, outcomes: _Outcomes) -> None:
        now = time.monotonic()
        for lane in self._lanes.values():
            for task in lane.overdue(now):
                reason = f"no reply in {lane.deadline_s:g} s: given up"
                log.warning("%s: %s (%s)", lane.channel, reason, task.msg.key)
                # The send may still go through: try again only when the claim's
                # lease would have ended (a late success is recorded meanwhile).
                self._retry(task, now_ms, reason, None, outcomes, not_before=task.lease_end)
                lane.gave_up()
                self._breaker_failure(lane, now_ms)

    def _breaker_success(self, lane: _Lane) -> None:
        if lane.breaker.open_until() is not None:
            log.info("%s: a send went through; its breaker is closed", lane.channel)
        lane.breaker.success()
        lane.paused = False

    def _breaker_failure(self, lane: _Lane, now_ms: int) -> None:
        if lane.breaker.failure(now_ms):
            log.warning(
                "%s: %d sends failed in a row; its breaker is open: its sends are put off for %g s",
                lane.channel,
                lane.breaker.consecutive,
                lane.breaker.cooldown_ms / 1000,
            )
        if lane.breaker.open_until() is not None:
            lane.paused = True

    def _put_off(self, now_ms: int) -> int:
        """Move the due rows of channels whose breaker is open to the end of its
        cool-down, attempts unchanged; return how many."""
        moved = 0
        for channel, lane in self._lanes.items():
            until = lane.breaker.open_until()
            if until is None or lane.breaker.state(now_ms) != "open":
                continue
            moved += self.outbox.put_off_channel(channel, now_ms, until)
        return moved

    def _claim(
        self,
        now_ms: int,
        limit: int | None,
        outcomes: _Outcomes,
        claims: dict[_Lane, list[_Task]],
    ) -> tuple[bool, int]:
        """Claim due rows into ``claims`` (by lane) and fail the undeliverable ones
        into ``outcomes``; return whether more rows may be due than were taken, and
        how many were taken (claimed or failed)."""
        left = self.batch if limit is None else limit
        rows = self.outbox.undeliverable(now_ms, self._lanes.keys(), left)
        for row in rows:
            reason = "the row has no channel" if row.channel is None else None
            self._fail(
                row.id,
                row.attempts,
                f"row {row.id}",
                reason or f"no provider for channel `{row.channel}`",
                outcomes,
            )
        more = len(rows) == left
        if limit is not None:
            left -= len(rows)
        lease_end = now_ms + self.lease_ms
        # One claim for every lane with room: one store call, one statement on
        # PostgreSQL (a claim per lane was a round trip per channel, most of them for
        # channels with nothing due). Without a ``limit`` (the daemon's pumps) each
        # lane wants its room: one round. Under a ``limit`` the lanes share ``left``
        # in order, each wanting min(room, what is left), decided before the claim;
        # a lane with fewer due rows than it wanted returns the rest of its share, and
        # another round offers it to the lanes the limit cut short (none had a chance
        # to: their rows are unknown, so ``more`` could not say whether any are due).
        # Every round but the last drains a lane or uses up ``left``: at most a round
        # per lane, and mostly one.
        rooms = {lane: r for lane in self._lanes.values() if (r := self._room(lane, now_ms)) > 0}
        # A lane without room is woken by its sends' outcomes; an open breaker's rows
        # were put off above.
        got: dict[_Lane, list[QueuedSend]] = {}
        probes: set[_Lane] = set()
        while rooms:
            wants: dict[_Lane, int] = {}
            for lane, room in rooms.items():
                want = room if limit is None else min(room, left)
                if want > 0:
                    wants[lane] = want
                    if limit is not None:
                        left -= want
            if not wants:
                break
            claimed = self.outbox.claim_lanes(
                [(lane.channel, want) for lane, want in wants.items()], now_ms, self.id, lease_end
            )
            for lane, want in wants.items():
                lane_rows = claimed[lane.channel]
                more |= len(lane_rows) == want
                if limit is not None:
                    left += want - len(lane_rows)
                if lane.breaker.allowance(now_ms) == 1:
                    probes.add(lane)
                got.setdefault(lane, []).extend(lane_rows)
                rooms[lane] -= len(lane_rows)
                if len(lane_rows) < want or not rooms[lane]:
                    del rooms[lane]  # drained, or full
            if limit is None or left <= 0:
                break
        taken = [(lane, r) for lane, lane_rows in got.items() for r in lane_rows]
        if not taken:
            return more, len(rows)
        profiles = self.store.get_profiles(list(dict.fromkeys(r.user_id for _, r in taken)))
        for lane, (rid, key, journey, user, step, _, message, content, attempts) in taken:
            try:
                loaded = json.loads(content)
            except ValueError:
                loaded = None
            if not isinstance(loaded, dict):
                self._fail(rid, attempts, key, "the row's content is not an object", outcomes)
                continue
            fields = {str(k): str(v) for k, v in loaded.items()}
            msg = OutboundMessage(
                key, lane.channel, user, journey, step, message, fields, profiles[user]
            )
            claims.setdefault(lane, []).append(_Task(rid, attempts, msg, lease_end))
        for lane in probes & claims.keys():
            # Half-open: the probe is out (not before: a row that failed the checks
            # above is no probe).
            lane.breaker.probe_started()
            lane.probe()
            log.info("%s: its breaker is half-open: one send goes as a probe", lane.channel)
        return more, len(rows) + len(taken)

    def _retry(
        self,
        task: _Task,
        now_ms: int,
        reason: str,
        hint_s: float | None,
        outcomes: _Outcomes,
        not_before: int | None = None,
    ) -> None:
        attempts = task.attempts + 1
        key = task.msg.key
        if attempts >= self.max_attempts:
            self._fail(
                task.id, attempts, key, f"gave up after {attempts} attempts: {reason}", outcomes
            )
            return
        delay = backoff_ms(key, attempts, self.base_delay_s, self.max_delay_s)
        if hint_s is not None:
            delay = max(delay, round(min(hint_s, self.max_delay_s) * 1000))
        at = max(now_ms + delay, not_before or 0)
        outcomes.retried.append(Retry(attempts, at, reason, task.id))
        log.info("retrying %s in %d ms: %s", key, at - now_ms, reason)

    def _fail(self, rid: int, attempts: int, key: str, reason: str, outcomes: _Outcomes) -> None:
        outcomes.failed.append(Failure(attempts, reason, rid))
        log.warning("failed %s: %s", key, reason)

    def _write(self, outcomes: _Outcomes) -> None:
        """Write the outcomes noted so far (inside the caller's transaction)."""
        outbox = self.outbox
        for sent_at, ids in outcomes.sent.items():
            outbox.mark_sent(sent_at, ids)
        if outcomes.late_sent:
            # Given up and counted as an attempt already; delivered after all.
            outbox.mark_sent_late(outcomes.late_sent)
        if outcomes.retried:
            outbox.retry(outcomes.retried)
        if outcomes.failed:
            outbox.fail(outcomes.failed)
        if outcomes.put_off:
            outbox.put_off(outcomes.put_off)
        outcomes.clear()
