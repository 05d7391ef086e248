"""The engine process of ``journeyc serve``: the engine, its clock, the dispatcher and
the project watcher (the HTTP API runs in the parent process, :mod:`.daemon`).

Threads:

- the main thread waits for SIGTERM (SIGINT is the parent's: a Ctrl-C reaches both
  processes, and the parent stops this one when it has finished its requests);
- the nudge reader wakes the engine when the API process has committed events (one
  byte on the channel, :mod:`.ipc`), and stops this process when the channel ends;
- APScheduler 3's ``BackgroundScheduler`` (UTC) is the clock, and its pool runs the
  jobs: ``engine`` (one :meth:`Engine.advance`), ``dispatch`` (the outbox
  dispatcher), ``retention`` (daily), ``poll`` (events other processes logged) and
  ``checkpoint`` (the SQLite write-ahead log copied into the database file) or, on
  PostgreSQL, ``statistics`` (sums folded, tables that grew analyzed) and ``leases``;
- the watcher thread redeploys the project directory when it changes (not with
  ``serve --no-watch``, which runs the project last deployed into the store).

A deployment another process made (``journeyc deploy``) is noticed by the ``poll``
job, which compares the store's deployment stamp with the one this process last
made or took, and takes the deployed project into the engine.

APScheduler schedules the engine, not the users: per-user waits are rows in the
store, and the ``engine`` job is one date trigger armed at the earliest of them
(:meth:`Engine.next_wake`) and re-armed after every run; a nudge re-arms it to run
now. ``dispatch`` is armed likewise at the earliest queued outbox row, and at once
after a run that queued sends (in this process: no nudge needed).

Arming never moves a job later: a job already armed earlier stays (it will run and
re-arm). APScheduler drops a date trigger that fires while the same job still runs
(``max_instances=1``), so the next time is chosen after a run ends, by a listener
that APScheduler calls once the run no longer counts as running; a request that
came in during the run (a nudge, an engine run that queued sends) is remembered in
a flag and makes that listener arm the job for now.

Engine runs and deploys take one lock. The engine writes through one
:class:`~journeyc.store.abc.Store`, the dispatcher through another and the API
process through its own: the store's write lock (an ``flock`` beside the database)
queues their transactions and wakes a waiting writer as soon as the holder commits.
A connection is never used by two threads at once: a read outside a transaction
holds a snapshot, and a write another thread then begins on the same connection
fails at once with "database is locked" once another connection has committed.
Reads that need a snapshot of their own (the poll job) use connections of their own
(SQLite in WAL mode lets them read while a writer writes).

The dispatcher's job is one short pump (record outcomes, claim due rows, hand them
to the channels' lanes): the sends run in the lanes' threads, and each lane asks for
the next pump when it has an outcome to record (see :mod:`.dispatcher`).

What the API process shows on ``/metrics`` and ``/v1/status`` goes to it as a
message after every engine run, dispatcher run and deploy (``report``).
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from journeyc.compile import ir
from journeyc.config import CONFIG_FILE, Config, ConfigError
from journeyc.serve.cluster import LeaseKeeper
from journeyc.serve.daemon import (
    RETENTION_DAYS,
    WAL_AUTOCHECKPOINT_PAGES,
    ServeSettings,
    Service,
    StartupError,
    require_project_dir,
)
from journeyc.serve.times import iso, now_ms
from journeyc.serve.watch import Checked, InvalidProjectError, ProjectWatcher, load_checked
from journeyc.store.targets import shown, target_of

if TYPE_CHECKING:
    from journeyc.store.abc import PartitionedStore, PartitionLog, Store, Upkeep

__all__ = [
    "ENGINE_BATCH",
    "ENGINE_BATCH_SHARED",
    "ENGINE_RUN_BATCHES",
    "Report",
    "Worker",
    "main",
    "schedule_trigger",
]

log = logging.getLogger("journeyc.serve")

Report = Callable[[dict[str, Any]], None]
"""Where the worker sends what the API process shows (see :func:`main`)."""

RETENTION_HOUR_UTC = 3
"""The hour (UTC) of the daily retention run."""

POLL_S = 2.0
"""How often the daemon looks for events other processes (``journeyc ingest``) logged."""

CHECKPOINT_S = 0.5
"""How often the daemon copies the write-ahead log into the database file, in a
thread of its own (see :meth:`Worker._checkpoint_job`)."""

STATISTICS_S = 5.0
"""How often the daemon on a PostgreSQL store folds the reports' sums written as
deltas (:meth:`journeyc.store.abc.Upkeep.fold_sums`) and looks for tables whose planner
statistics went stale as they grew (:meth:`journeyc.store.abc.Upkeep.refresh_statistics`)."""

ENGINE_BATCH = 100
"""Events or due timers an engine batch takes (and commits): an event waits for the
batch it is in, and ingest for the write lock a batch holds."""

ENGINE_BATCH_SHARED = 400
"""The same on a store several workers share (PostgreSQL): no store-wide write lock
is held by a batch there, and each batch pays round trips to the server that do not
grow with its size (the fence, the log by partition, the cursors, the due timers),
so larger batches carry more events per second."""

ENGINE_RUN_BATCHES = 20
"""Batches an engine run takes before it lets go (and runs again at once, with a
fresh clock): under a stream of events, timers and the clock stay current."""

RETRY_MAX_S = 30.0
"""The longest wait before a failed engine or dispatcher run is tried again."""

_ENGINE, _DISPATCH, _RETENTION, _POLL = "engine", "dispatch", "retention", "poll"
_LEASES = "leases"
_DEPLOY_LOCK, _RETENTION_LOCK = "deploy", "retention"  # the store's cluster locks
_CHECKPOINT = "checkpoint"
_STATISTICS = "statistics"
_SCHEDULE = "schedule"  # job ids schedule:JOURNEY:TRIGGER:ZONE


class _ExpectedSkips(logging.Filter):
    """Hides APScheduler's warning for a date trigger that fired while its job still
    ran: the daemon re-arms after every run, so nothing is lost (module docstring)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "maximum number of running instances" not in record.getMessage()


# ---------------------------------------------------------------- the worker


class Worker(Service):
    """The engine side of ``journeyc serve``: :meth:`start`, then :meth:`stop`.

    :meth:`start` checks and deploys the project, opens the store, the providers and
    the dispatcher and starts the clock and the watcher; it raises
    :class:`~journeyc.serve.watch.InvalidProjectError` or :class:`StartupError` (having
    released what it opened). :meth:`stop` stops the watcher and the clock (waiting
    for the job in hand), then closes the dispatcher, the providers and the store.
    :func:`main` runs one in the engine process; tests may run one in their own.
    """

    def __init__(self, settings: ServeSettings, report: Report | None = None) -> None:
        super().__init__()
        self.settings = settings
        self.config = settings.config
        self.versions: dict[str, str] = {}
        self._report = report
        self._engine_lock = threading.Lock()
        self._arm_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._engine_requested = threading.Event()
        self._dispatch_requested = threading.Event()
        self._skips = _ExpectedSkips()
        # What the clock knows between runs, and what /v1/status reports.
        self._next_wake: int | None = None
        self._engine_retry_at: int | None = None
        self._engine_failures = 0
        self._dispatch_next: int | None = None
        self._dispatch_retry_at: int | None = None
        self._dispatch_failures = 0
        self._engine_runs = 0
        self._last_run: dict[str, Any] = {}
        self._sent = self._retried = self._failed = self._put_off = 0
        self._channels: dict[str, dict[str, Any]] = {}
        self._last_refused: dict[str, Any] | None = None
        self._last_deploy_ms: int | None = None
        self._stamp: str | None = None  # the store's deployment this engine runs
        # Files whose change the store was too busy to deploy: the poll job tries again.
        self._redeploy: set[str] | None = None
        self.scheduler: Any = None
        self._schedule_zones = 0
        # Several workers (a store with partitions): the store's cluster side, the
        # per-partition log and the lease keeper; None with one engine per store.
        self.cluster: PartitionedStore | None = None
        self._plog: PartitionLog | None = None
        self.keeper: LeaseKeeper | None = None
        self._lag: tuple[int, int | None] = (0, None)  # at the last beat

    # ------------------------------------------------------------ starting

    def _start(self) -> None:
        from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED
        from apscheduler.schedulers.background import BackgroundScheduler
        from apscheduler.triggers.cron import CronTrigger
        from apscheduler.triggers.interval import IntervalTrigger

        from journeyc.channels.registry import build_providers, close_providers, dispatch_options
        from journeyc.engine.core import Engine
        from journeyc.serve.dispatcher import Dispatcher
        from journeyc.store.abc import PartitionedStore
        from journeyc.store.errors import StoreError
        from journeyc.store.open import open_full_store

        s = self.settings
        if not s.watch:
            checked = self._deployed_only()
        else:
            require_project_dir(s.project_dir)
            try:
                checked = load_checked(s.project_dir)  # an invalid project stops us early
            except InvalidProjectError as exc:
                # An engine process started again (the last one died) while the project on
                # disk is being edited: the last good version keeps running.
                checked = self._last_deployed(exc)
        if checked.warnings:
            log.warning("the project has warnings:\n%s", checked.warnings.rstrip())
        if checked.files == 0 and s.watch:
            log.warning("no .journey files under %s yet; watching it for some", s.project_dir)

        base_dir = s.config_file.parent if s.config_file is not None else Path.cwd()
        try:
            self.providers = build_providers(self.config, base_dir)
            lanes = dispatch_options(self.config)
        except ConfigError as exc:
            raise StartupError(f"{s.config_file or CONFIG_FILE}: {exc}") from None
        self._closers.append(lambda: close_providers(self.providers))

        try:
            self.store: Store = open_full_store(
                s.store_path, lock_timeout_s=self.config.store.lock_timeout
            )
        except (StoreError, OSError) as exc:
            raise StartupError(str(exc)) from None
        self._closers.append(self.store.close)

        # Several workers on one store (PostgreSQL): this one works on the partitions
        # it leases, none until its first beat (serve/cluster.py).
        self.cluster = self.store if isinstance(self.store, PartitionedStore) else None
        batch = ENGINE_BATCH if self.cluster is None else ENGINE_BATCH_SHARED
        self.engine = Engine(self.store, self.config, commit_per_batch=True, batch=batch)
        self.versions = {jid: v for jid, v, _, active in self.engine.rt.versions() if active}
        if self.cluster is not None:
            self._plog = self.cluster.partition_log()
            self.keeper = LeaseKeeper(
                self.store.leases(),
                self.cluster.membership(),
                self.config.cluster.lease_ttl,
                self._on_partitions,
                about={"host": socket.gethostname(), "pid": os.getpid(), "started": iso(now_ms())},
            )
            self.engine.work_on(self.keeper.worker_id, [], self._plog)
            self._closers.append(self.keeper.leave)
        if s.watch:
            self.deploy(checked, at_start=True)
        else:
            self._take_deployment(at_start=True)

        # The dispatcher has a connection of its own. On the engine's, a read of the
        # engine thread (outside a transaction: next_wake, get_cursor …) holds a
        # snapshot while it runs; the API process commits; the dispatcher thread's
        # BEGIN IMMEDIATE on that same connection then cannot move the snapshot on
        # and fails at once with "database is locked" (SQLITE_BUSY_SNAPSHOT: no busy
        # timeout helps). Most likely at start, when both catch up at once. Writers
        # on the two connections still queue on the store's flock.
        self.dispatcher = Dispatcher.open(
            s.store_path,
            self.providers,
            lock_timeout_s=self.config.store.lock_timeout,
            lanes=lanes,
            on_ready=self.request_dispatch,
        )
        self._closers.append(self.dispatcher.close)
        if self.keeper is not None:
            # Its claims carry the worker's id, so that the others know them for a
            # dead worker's once it is gone (the lease job reclaims them).
            self.dispatcher.id = self.keeper.worker_id
        else:
            # One daemon per store (and one engine process per daemon): sends a dead
            # one had claimed go out now, not after their lease.
            reclaimed = self.dispatcher.reclaim(now_ms())
            if reclaimed:
                log.info("%d send(s) claimed by a daemon that stopped before delivering", reclaimed)
        # By default the commit that takes the log past 1,000 pages copies it into the
        # database, ~20 ms inside that commit (about once a second at 500 events/s),
        # which then delays the engine run or the request making it. The upkeep's
        # checkpoint job does it off that path, while the writers go on (WAL).
        self.upkeep: Upkeep = self.store.upkeep()
        self._closers.append(self.upkeep.close)
        self.upkeep.defer_checkpoints(WAL_AUTOCHECKPOINT_PAGES)

        logging.getLogger("apscheduler.scheduler").addFilter(self._skips)
        self._closers.append(
            lambda: logging.getLogger("apscheduler.scheduler").removeFilter(self._skips)
        )
        self.scheduler = BackgroundScheduler(timezone=UTC)
        self.scheduler.add_listener(self._after_run, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)
        self.scheduler.start()
        self._closers.append(self._stop_scheduler)
        # Housekeeping jobs: one run at a time, runs missed while busy made up once.
        jobs: list[tuple[Callable[[], None], Any, str]] = [
            (
                self._retention_job,
                CronTrigger(hour=RETENTION_HOUR_UTC, minute=0, timezone=UTC),
                _RETENTION,
            ),
            (self._poll_job, IntervalTrigger(seconds=POLL_S, timezone=UTC), _POLL),
        ]
        if self.cluster is None:  # a store with a log of its own (SQLite) to checkpoint
            jobs.append(
                (
                    self._checkpoint_job,
                    IntervalTrigger(seconds=CHECKPOINT_S, timezone=UTC),
                    _CHECKPOINT,
                )
            )
        else:  # PostgreSQL: its sums need folding, its planner statistics refreshing
            jobs.append(
                (
                    self._statistics_job,
                    IntervalTrigger(seconds=STATISTICS_S, timezone=UTC),
                    _STATISTICS,
                )
            )
        if self.keeper is not None:
            self._lease_job()  # the first partitions, before the first engine run
            jobs.append(
                (
                    self._lease_job,
                    IntervalTrigger(seconds=self.keeper.interval_s, timezone=UTC),
                    _LEASES,
                )
            )
        for fn, trigger, job_id in jobs:
            self.scheduler.add_job(
                fn,
                trigger,
                id=job_id,
                replace_existing=True,
                max_instances=1,
                coalesce=True,
                misfire_grace_time=None,
            )
        self._sync_schedule_jobs()
        if self.keeper is not None:
            self._start_wakeups()
        # Catch up at once: events logged while the daemon was down, timers that came
        # due meanwhile, sends queued but not delivered.
        self.request_engine_run()
        self.request_dispatch()

        if s.watch:
            self.watcher = ProjectWatcher(s.project_dir, self.reload)
            self.watcher.start()
            self._closers.append(self.watcher.stop)
        else:
            log.info("not watching %s: running what is deployed in the store", s.project_dir)

    # ------------------------------------------------------------ deploying

    def _stored_project(self) -> ir.ProjectIR | None:
        """The project last deployed into the store, read before the store is opened
        for good (None: no store yet, or nothing deployed into it)."""
        from contextlib import closing

        from journeyc.engine.deploy import deployed_project
        from journeyc.store.open import open_full_store

        path = self.settings.store_path
        if isinstance(path, Path) and not path.exists():
            return None
        with closing(open_full_store(path)) as store:
            return deployed_project(store)

    def _last_deployed(self, invalid: InvalidProjectError) -> Checked:
        """The project this store last deployed, for an engine process that finds the
        one on disk invalid; ``invalid`` is raised again when there is none."""
        project = self._stored_project()
        if project is None:
            raise invalid
        log.error(
            "the project under %s is invalid; running the versions last deployed until it "
            "is fixed:\n%s",
            self.settings.project_dir,
            invalid.text.rstrip(),
        )
        return Checked(project=project, warnings="", files=len(project.journeys))

    def _deployed_only(self) -> Checked:
        """For ``serve --no-watch``: the project last deployed into the store (checked
        before the store is opened for good); :class:`StartupError` when none was."""
        from journeyc.store.errors import StoreError

        path = self.settings.store_path
        try:
            project = self._stored_project()
        except StoreError as exc:
            raise StartupError(str(exc)) from None
        if project is None:
            raise StartupError(
                f"nothing was ever deployed into {shown(path)}: `serve --no-watch` runs only"
                f" what is deployed; deploy first (journeyc deploy PROJECT_DIR --store"
                f" {shown(path)})"
            )
        return Checked(project=project, warnings="", files=len(project.journeys))

    def _take_deployment(self, *, at_start: bool = False) -> bool:
        """Run the project deployed into the store, when it is not the one this engine
        runs (another process deployed it: ``journeyc deploy``); say whether it was.

        The stamp is read before the project: a deployment committed between the two
        reads leaves the older stamp here, so the next poll takes the project again."""
        from journeyc.engine.deploy import deployed_project, deployed_stamp

        with self._engine_lock:
            stamp = deployed_stamp(self.store)
            # At start, a project recorded before deployments had stamps is taken too.
            if not at_start and (stamp is None or stamp == self._stamp):
                return False
            project = deployed_project(self.store)
        if project is None:
            return False
        if not at_start:
            log.info("a deployment was made into the store (stamp %s): taking it", stamp)
        checked = Checked(project=project, warnings="", files=len(project.journeys))
        self.deploy(checked, at_start=at_start, stamp=stamp or "")
        return True

    def deploy(self, checked: Checked, *, at_start: bool = False, stamp: str | None = None) -> None:
        """Make the project's journeys the active versions and log each one that changed
        (at start, every one).

        New entries take the new version; users in flight stay on theirs, unless the
        journey says ``upgrade in place`` (the engine moves them where their step
        still exists). ``stamp``: the project is the store's deployment with that
        stamp, which the engine takes (:meth:`Engine.deploy` again: its rows are
        those the deployment wrote) without recording it anew.
        """
        project = checked.project
        at = now_ms()
        with self._engine_lock:
            if stamp is None:
                stamp = self._deploy_once(project, at)
            else:
                self.engine.deploy(project, at)
            self._stamp = stamp
        before, after = self.versions, {jid: j.version for jid, j in project.journeys.items()}
        for jid, journey in project.journeys.items():
            old = before.get(jid)
            if old == journey.version:
                if at_start:
                    log.info("journey %s: version %s (unchanged)", jid, journey.version)
                continue
            if old is None:
                log.info("journey %s: deployed version %s (new journey)", jid, journey.version)
            elif journey.upgrade_in_place:
                log.info(
                    "journey %s: deployed version %s (was %s; upgrade in place: users in "
                    "flight move to it where their step still exists)",
                    jid,
                    journey.version,
                    old,
                )
            else:
                log.info(
                    "journey %s: deployed version %s (was %s; users in flight stay on %s)",
                    jid,
                    journey.version,
                    old,
                    old,
                )
        for jid in sorted(before.keys() - after.keys()):
            log.info(
                "journey %s: no longer in the project; it takes no new entries, users in "
                "flight finish on version %s",
                jid,
                before[jid],
            )
        with self._state_lock:
            self.versions = after
            self._last_deploy_ms = at
        if self.scheduler is not None:
            self._sync_schedule_jobs()
        self._send({})

    def _deploy_once(self, project: ir.ProjectIR, at: int) -> str:
        """Deploy ``project`` (the caller holds the engine lock); its stamp. Several
        workers see one change: the first deploys it, under the store's cluster lock,
        and the others take what it deployed. The lock is waited for up to the
        store's lock timeout (:class:`StoreBusyError` past it: the poll job tries
        again)."""
        from journeyc.engine.deploy import deploy_or_take
        from journeyc.store.errors import StoreBusyError

        limit = self.config.store.lock_timeout
        with self.store.cluster_lock(_DEPLOY_LOCK, wait_s=limit) as mine:
            if mine:
                return deploy_or_take(self.engine, project, at)
        raise StoreBusyError(self.store.path, limit)

    def _sync_schedule_jobs(self) -> None:
        """One APScheduler job per scheduled trigger and time zone in use (never one
        per user) wakes the engine when the trigger fires there. The engine's
        ``schedules`` rows stay the ledger: a firing missed while the daemon was down
        is due at once when it comes back, cron or not."""
        with self._engine_lock:
            rows = self.store.schedule_rows().rows()
            self._schedule_zones = len(self.engine.sched.zones)
        wanted = {f"{_SCHEDULE}:{jid}:{i}:{zone}": (spec, zone) for jid, i, zone, spec, *_ in rows}
        for job in self.scheduler.get_jobs():
            if job.id.startswith(f"{_SCHEDULE}:") and job.id not in wanted:
                job.remove()
        for job_id, (spec, zone) in sorted(wanted.items()):
            if self.scheduler.get_job(job_id) is not None:
                continue
            trigger = ir.ScheduleTrigger.model_validate_json(spec)
            log.info("%s: wakes the engine when it fires in %s", job_id, zone)
            self.scheduler.add_job(
                self.request_engine_run,
                schedule_trigger(trigger, zone),
                id=job_id,
                name=job_id,
                max_instances=1,
                coalesce=True,
                misfire_grace_time=None,
            )

    def reload(self, changed: set[str]) -> None:
        """Redeploy after files under the project directory changed; an invalid change
        is logged with its diagnostics and the last good version keeps running."""
        root = self.settings.project_dir
        names = ", ".join(sorted(_relative(p, root) for p in changed)) or str(root)
        try:
            checked = load_checked(root)
        except InvalidProjectError as exc:
            log.error(
                "refused the change to %s: %d error(s); still running the last good version\n%s",
                names,
                exc.errors,
                exc.text.rstrip(),
            )
            with self._state_lock:
                self._last_refused = {"at": iso(now_ms()), "files": names, "errors": exc.text}
            self._send({})
            return
        with self._state_lock:
            refused, self._last_refused = self._last_refused, None
        if refused is not None:
            self._send({})
        if checked.warnings:
            log.warning("%s: warnings:\n%s", names, checked.warnings.rstrip())
        after = {jid: j.version for jid, j in checked.project.journeys.items()}
        if after == self.versions:
            log.info("%s changed; no journey changed", names)
            return
        from journeyc.store.errors import StoreBusyError

        try:
            self.deploy(checked)
        except StoreBusyError as exc:
            # Nothing was deployed; the watcher would not call again before the next
            # edit, so the poll job tries again.
            log.warning("deploying the change to %s failed: %s; trying again", names, exc)
            with self._state_lock:
                self._redeploy = (self._redeploy or set()) | changed

    def _stop_scheduler(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)

    # ------------------------------------------------------------ the clock

    def request_engine_run(self) -> None:
        """Run the engine now: new events were committed (the API's ``on_events``).

        No debounce: while a run is armed, more requests add nothing, and those that
        come during a run make one more run after it, so requests closer together
        than a run takes share runs anyway; a delay before the run only added its
        length to every event's latency (5 ms of ~20 at 500 events/s).
        """
        self._engine_requested.set()
        self._arm(_ENGINE, now_ms())

    def request_dispatch(self) -> None:
        """Run the dispatcher now: sends were queued."""
        self._dispatch_requested.set()
        self._arm(_DISPATCH, now_ms())

    def _arm(self, job_id: str, due_ms: int) -> None:
        """Arm ``job_id`` at ``due_ms``, unless it is already armed no later."""
        from apscheduler.triggers.date import DateTrigger

        run_date = datetime.fromtimestamp(due_ms / 1000, UTC)
        func = self._engine_job if job_id == _ENGINE else self._dispatch_job
        with self._arm_lock:
            if self._stopping:
                return
            job = self.scheduler.get_job(job_id)
            if job is not None and job.next_run_time is not None and job.next_run_time <= run_date:
                return
            self.scheduler.add_job(
                func,
                DateTrigger(run_date=run_date, timezone=UTC),
                id=job_id,
                name=job_id,
                replace_existing=True,
                max_instances=1,
                coalesce=True,
                misfire_grace_time=None,
            )

    def _after_run(self, event: Any) -> None:
        """APScheduler's listener: choose the next run of the job that just ended."""
        if self._stopping:
            return
        now = now_ms()
        if event.job_id == _ENGINE:
            due = _next_due(
                self._engine_requested.is_set(), self._engine_retry_at, self._next_wake, now
            )
            if due is not None:
                self._arm(_ENGINE, due)
        elif event.job_id == _DISPATCH:
            due = _next_due(
                self._dispatch_requested.is_set(), self._dispatch_retry_at, self._dispatch_next, now
            )
            if due is not None:
                self._arm(_DISPATCH, due)

    def _engine_job(self) -> None:
        from journeyc.engine.core import CURSOR
        from journeyc.store.errors import StoreBusyError

        self._engine_requested.clear()
        now = now_ms()
        started, cpu = time.perf_counter(), time.thread_time()
        try:
            with self._engine_lock:
                seq = self.store.get_cursor(CURSOR)
                actions = self.engine.advance(now, max_batches=ENGINE_RUN_BATCHES)
                if self.engine.unfinished:
                    self._engine_requested.set()  # the listener runs it again at once
                lateness = list(self.engine.lateness_ms)
                read_to = self.store.get_cursor(CURSOR)
                next_wake = self.engine.next_wake()
        except Exception as exc:
            self._send({"cpu": {"engine": time.thread_time() - cpu}})
            self._engine_failures += 1
            delay = _retry_delay_s(self._engine_failures)
            if isinstance(exc, StoreBusyError):  # nothing was written: a plain retry
                log.warning("engine run failed: %s; trying again in %.0f s", exc, delay)
            else:
                log.exception("engine run failed; trying again in %.0f s", delay)
            self._engine_retry_at = now + round(delay * 1000)
            return
        self._engine_failures, self._engine_retry_at = 0, None
        self._next_wake = next_wake
        if len(self.engine.sched.zones) != self._schedule_zones:
            self._sync_schedule_jobs()  # a user brought a new time zone
        kinds = Counter(a.action for a in actions)
        took = (time.perf_counter() - started) * 1000
        if actions or read_to != seq:
            log.debug(
                "engine run: log read to #%d, %d timer(s), %d action(s)%s in %.0f ms",
                read_to,
                len(lateness),
                len(actions),
                "".join(f", {k} {n}" for k, n in sorted(kinds.items())),
                took,
            )
        with self._state_lock:
            self._engine_runs += 1
            self._last_run = {
                "at": iso(now),
                "actions": dict(sorted(kinds.items())),
                "timers": len(lateness),
                "max_lateness_ms": max(lateness, default=None),
                "took_ms": round(took, 1),
            }
        if kinds["send"]:
            self.request_dispatch()
        self._send(
            {
                "run": {"took_s": took / 1000, "lateness_s": [ms / 1000 for ms in lateness]},
                "cpu": {"engine": time.thread_time() - cpu},
            }
        )

    def _dispatch_job(self) -> None:
        self._dispatch_requested.clear()
        now = now_ms()
        cpu = time.thread_time()
        try:
            self._dispatch(now)
        finally:
            self._send({"cpu": {"dispatch": time.thread_time() - cpu}})

    def _dispatch(self, now: int) -> None:
        """One pump of the dispatcher: it records what the channels' lanes reported,
        claims what they have room for and returns at once; a lane that reports an
        outcome asks for the next pump (``on_ready``), and :meth:`Dispatcher.next_wake`
        says when otherwise (the next due row, a send's deadline)."""
        try:
            stats = self.dispatcher.pump(now)
            with self._state_lock:
                self._sent += stats.sent
                self._retried += stats.retried
                self._failed += stats.failed
                self._put_off += stats.put_off
            self._dispatch_next = self.dispatcher.next_wake(now_ms())
            with self._state_lock:
                self._channels = self.dispatcher.channels(now)
        except Exception:
            self._dispatch_failures += 1
            delay = _retry_delay_s(self._dispatch_failures)
            log.exception("dispatcher run failed; trying again in %.0f s", delay)
            self._dispatch_retry_at = now + round(delay * 1000)
            return
        self._dispatch_failures, self._dispatch_retry_at = 0, None

    def _poll_job(self) -> None:
        """Arm the engine when another process (``journeyc ingest``) logged events, and
        take a deployment another process (``journeyc deploy``) made."""
        from journeyc.engine.core import CURSOR
        from journeyc.store.errors import DatabaseError

        with self._state_lock:
            redeploy, self._redeploy = self._redeploy, None
        if redeploy is not None:
            try:
                self.reload(redeploy)  # a change the store was too busy to deploy
            except Exception:
                log.exception("deploying the project's change failed")
        try:
            self._take_deployment()
        except Exception:
            log.exception("taking the store's new deployment failed; trying again")

        if self.keeper is not None:
            # Each worker has cursors per partition, and a notification wakes it when
            # events are logged; this run is the net under a lost notification.
            self.request_engine_run()
            return
        try:
            # A snapshot of its own: this job's thread never shares a connection.
            with self.store.reading() as reads:
                last, read_to = reads.last_seq(), reads.cursor(CURSOR)
        except DatabaseError as exc:
            log.warning("looking for new events failed: %s", exc)
            return
        if last > read_to:
            self.request_engine_run()

    def _checkpoint_job(self) -> None:
        """Copy the committed write-ahead log into the database file (``PASSIVE``:
        it neither waits for nor blocks the writers and readers)."""
        from journeyc.store.errors import DatabaseError

        try:
            self.upkeep.checkpoint()
        except DatabaseError as exc:
            log.warning("checkpointing the store's log failed: %s", exc)

    def _statistics_job(self) -> None:
        """Fold the reports' sums written as deltas into their totals, and analyze the
        tables that grew much since their statistics were gathered."""
        from journeyc.store.errors import DatabaseError

        try:
            self.upkeep.fold_sums()
            analyzed = self.upkeep.refresh_statistics()
        except DatabaseError as exc:
            log.warning("refreshing the store's planner statistics failed: %s", exc)
            return
        if analyzed:
            log.debug("planner statistics refreshed: %s", ", ".join(analyzed))

    def _retention_job(self) -> None:
        try:
            outbox, actions = self.remove_old(now_ms())
        except Exception:
            log.exception("retention run failed; trying again tomorrow")
            return
        if outbox or actions:
            log.info(
                "retention: removed %d outbox row(s) and %d action(s) older than %d days",
                outbox,
                actions,
                RETENTION_DAYS,
            )

    def remove_old(self, at_ms: int) -> tuple[int, int]:
        """Delete what is older than :data:`RETENTION_DAYS` at ``at_ms`` and no longer
        needed: sent and suppressed outbox rows, and actions. Entries stay (``entry
        once`` reads them), as do failed sends. Returns the rows removed: (outbox,
        actions)."""
        cutoff = at_ms - RETENTION_DAYS * 86_400_000
        # Once for the store, whichever worker is first (the others find it held).
        with self.store.cluster_lock(_RETENTION_LOCK) as mine:
            if not mine:
                return 0, 0
            with self._engine_lock:
                return self.upkeep.remove_old(cutoff)

    # ------------------------------------------------------------ several workers

    def _on_partitions(self, held: list[int]) -> None:
        """The keeper's news: the engine works on ``held`` from its next batch."""
        assert self.keeper is not None and self._plog is not None
        with self._engine_lock:
            self.engine.work_on(self.keeper.worker_id, held, self._plog)
        self.request_engine_run()
        self._send({})

    def _lease_job(self) -> None:
        """The heartbeat: renew the membership and the leases, move towards the fair
        share (serve/cluster.py), and make the sends that dead workers had claimed
        due again (their receivers drop a repeat by its idempotency key)."""
        assert self.keeper is not None
        try:
            held = self.keeper.beat()
            if self._plog is not None:
                self._lag = self._plog.lag(held)
            alive = [m.worker_id for m in self.keeper.members]
            reclaimed = self.dispatcher.reclaim(now_ms(), alive)
        except Exception:
            log.exception("renewing the partition leases failed; trying again")
            return
        if reclaimed:
            log.info("%d send(s) claimed by a worker that stopped before delivering", reclaimed)
            self.request_dispatch()

    def _start_wakeups(self) -> None:
        """A thread that waits for the store's notification of logged events (any
        worker's API, ``journeyc ingest``) and runs the engine at once."""
        assert self.cluster is not None
        cluster = self.cluster
        stop = threading.Event()

        def listen() -> None:
            wakeups = None
            while not stop.is_set():
                try:
                    if wakeups is None:
                        wakeups = cluster.event_wakeups()
                    if wakeups.wait(1.0):
                        self.request_engine_run()
                except Exception as exc:  # the connection dropped: the poll job covers
                    log.warning("waiting for event notifications failed: %s", exc)
                    if wakeups is not None:
                        wakeups.close()
                        wakeups = None
                    stop.wait(POLL_S)
            if wakeups is not None:
                wakeups.close()

        thread = threading.Thread(target=listen, name="journeyc-wakeups", daemon=True)
        thread.start()

        def close() -> None:
            stop.set()
            thread.join(5.0)

        self._closers.append(close)

    # ------------------------------------------------------------ reports

    def status(self) -> dict[str, Any]:
        """The engine side of ``GET /v1/status``: the journeys, the engine, the
        dispatcher and the watcher (the API process adds its own fields)."""
        with self._state_lock:
            return {
                "journeys": dict(sorted(self.versions.items())),
                "last_deploy_at": iso(self._last_deploy_ms),
                "last_refused_change": self._last_refused,
                "engine": {
                    "runs": self._engine_runs,
                    "last_run": self._last_run or None,
                    "next_wake_at": iso(self._next_wake),
                    "failing": self._engine_failures > 0,
                },
                "dispatch": {
                    "sent": self._sent,
                    "retried": self._retried,
                    "failed": self._failed,
                    "put_off": self._put_off,
                    "next_due_at": iso(self._dispatch_next),
                    "channels": self._channels,
                },
                "watching": self.watcher.alive if hasattr(self, "watcher") else False,
                "cluster": self._cluster_status(),
            }

    def _cluster_status(self) -> dict[str, Any] | None:
        """This worker's id and partitions, and the live workers at its last beat
        (None: one engine per store)."""
        keeper = self.keeper
        if keeper is None:
            return None
        held = {w.worker_id: len(w.partitions) for w in keeper.holders}
        waiting, oldest = self._lag
        return {
            "worker_id": keeper.worker_id,
            "partitions": list(keeper.held),
            "waiting_events": waiting,
            "oldest_waiting_at": iso(oldest),
            "workers": [
                {
                    "worker_id": m.worker_id,
                    "heartbeat_at": iso(m.heartbeat_ms),
                    "partitions": held.get(m.worker_id, 0),
                }
                for m in keeper.members
            ],
        }

    def example_event(self) -> str:
        """An event some deployed journey starts on, for the banner's curl example."""
        project = getattr(self.engine, "active", {})
        for prog in project.values():
            for event, _ in prog.triggers:
                return str(event)
        return "signed_up"

    def _send(self, message: dict[str, Any]) -> None:
        """Report ``message`` and the current status to the API process."""
        if self._report is not None:
            message["status"] = self.status()
            self._report(message)


# ---------------------------------------------------------------- the engine process


def main(argv: Sequence[str] | None = None) -> int:
    """The engine process: ``python -m journeyc.serve.worker FD PARENT_PID``.

    FD is this end of the channel (:mod:`.ipc`); the first line on it holds the
    settings. Reports ``ready`` or ``failed`` once started; then runs until SIGTERM
    or until the channel ends (the API process is gone), and exits 0 after
    stopping gracefully (the engine run or send in hand finishes), 1 if it could
    not start.
    """
    from journeyc.serve.ipc import ChildEnd, die_with_parent
    from journeyc.serve.logs import configure_logging

    args = list(sys.argv[1:] if argv is None else argv)
    fd, parent_pid = int(args[0]), int(args[1])
    die_with_parent(parent_pid)
    stop = threading.Event()

    def on_term(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C is the parent's to handle
    channel = ChildEnd(socket.socket(fileno=fd))
    try:
        spec = channel.settings()
    except EOFError:
        return 1
    configure_logging(spec["log_level"])
    settings = ServeSettings(
        project_dir=Path(spec["project_dir"]),
        store_path=target_of(spec["store_path"]),
        config=Config.model_validate_json(spec["config"]),
        config_file=Path(spec["config_file"]) if spec["config_file"] else None,
        watch=bool(spec.get("watch", True)),
    )
    worker = Worker(settings, report=channel.send)
    try:
        worker.start()
    except InvalidProjectError as exc:
        channel.send({"failed": "invalid project", "text": exc.text, "errors": exc.errors})
        return 1
    except StartupError as exc:
        channel.send({"failed": str(exc)})
        return 1
    except Exception as exc:
        log.exception("the engine process could not start")
        channel.send({"failed": f"the engine process could not start: {exc}"})
        return 1
    channel.send({"ready": {"example_event": worker.example_event()}, "status": worker.status()})

    def read_nudges() -> None:
        while channel.wait_nudge():
            worker.request_engine_run()
        if not stop.is_set():
            log.info("the API process is gone: stopping the engine process")
            stop.set()

    threading.Thread(target=read_nudges, name="journeyc-nudges", daemon=True).start()
    # As in the API process: what is loaded by now lives as long as the process.
    gc.collect()
    gc.freeze()
    while not stop.wait(1.0):
        pass
    worker.stop()
    return 0


# ---------------------------------------------------------------- helpers


def _next_due(requested: bool, retry_at: int | None, planned: int | None, now: int) -> int | None:
    """When a job runs next: after a failure at its retry time; else now when asked
    for during the run; else at the planned time (None: not until asked)."""
    if retry_at is not None:
        return retry_at
    if requested:
        return now
    return planned


def _retry_delay_s(failures: int) -> float:
    return min(RETRY_MAX_S, 2.0 ** (failures - 1))


def _relative(path: str, root: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(root.resolve()))
    except ValueError:
        return path


_CRON_DAYS = {
    "day": "*",
    "weekday": "mon-fri",
    "weekend": "sat,sun",
    **{d: d[:3] for d in ("monday", "tuesday", "wednesday", "thursday", "friday")},
    "saturday": "sat",
    "sunday": "sun",
}


def schedule_trigger(trigger: ir.ScheduleTrigger, zone: str) -> Any:
    """The APScheduler trigger that wakes the engine when ``trigger`` fires in
    ``zone``: a cron trigger in that zone, or an interval on the grid from local
    midnight of 2000-01-01 (as :func:`journeyc.engine.schedules.next_fire`)."""
    from zoneinfo import ZoneInfo

    from apscheduler.triggers.cron import CronTrigger
    from apscheduler.triggers.interval import IntervalTrigger

    tz = ZoneInfo(zone)
    if trigger.interval is not None:
        return IntervalTrigger(
            seconds=trigger.interval, start_date=datetime(2000, 1, 1, tzinfo=tz), timezone=tz
        )
    return CronTrigger(
        day_of_week=_CRON_DAYS[trigger.day or "day"],
        hour=trigger.hour,
        minute=trigger.minute,
        timezone=tz,
    )


if __name__ == "__main__":
    sys.exit(main())
