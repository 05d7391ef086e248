"""Simulate on several cores: the users split across processes.

What the engine does for a user reads that user's own events, profile, segments,
instances and sends, with one exception: the recommendation filters read every
user's events. (An ``every`` schedule's audience is drawn from every user, but each
user in it is entered on their own data: each process fires the schedule for its own
users.) A project without those filters has independent users, and a replay of some
of them gives each of them the same actions, at the same times and in the same
order, as a replay of all of them, with one condition: the clock has to run for as
long as the whole replay would. The whole replay lasts while any user has events
left or a journey waiting, and while it lasts, the other users' segment rechecks and
scheduled entries run too, and may start journeys that keep it going.

A merge (an anonymous id joining a known user, docs/semantics.md) makes two ids one
user: the parent links the file's ids first, in log order, as a store would
(:func:`~journeyc.store.identities.link_events`), and sends every id to the part of
the user it ends up naming.

So each process replays its part of the users in a store of its own, and the
processes agree on the end:

1. every part runs through the last event of all the parts (``horizon``), then on
   while it has a journey waiting, and reports the last time it did work;
2. the latest of those is the new horizon: a part that stopped before it has
   missed work the whole replay would have done (rechecks and scheduled entries
   while another part was waiting), and runs on through it;
3. when no part stopped before the horizon, every part has done all the whole
   replay would have, and each is past the instant the whole replay stops.

With ``until`` the clock runs to it whatever is waiting: one round.

Actions come back in time order per process; :func:`in_output_order` gives the one
order that does not depend on how the users were split.
"""

from __future__ import annotations

import gc
import hashlib
import multiprocessing
import os
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from operator import itemgetter
from typing import TYPE_CHECKING, Any, TextIO

from journeyc.compile import ir
from journeyc.config import Config
from journeyc.engine.actions import Action
from journeyc.engine.reads import shared_reads
from journeyc.engine.simulate import Replay, log_order, no_full_collections, scratch_store
from journeyc.events import Event, first_of_each_id
from journeyc.pipes import GONE, receive, send
from journeyc.store.abc import Store
from journeyc.store.identities import IdentityMap, has_alias, link_events
from journeyc.store.rows import Cohort

if TYPE_CHECKING:
    from journeyc.catalog import Product

MAX_WORKERS = 16
"""Processes at the most, whatever the machine has."""


def can_fork() -> bool:
    """Whether replay processes can start here (they fork, to start with the project
    and their events in memory)."""
    return "fork" in multiprocessing.get_all_start_methods()


def default_workers() -> int:
    """The processes a parallel replay uses unless told: the cores this process may
    run on, at most :data:`MAX_WORKERS` (1 where processes cannot fork)."""
    if not can_fork():
        return 1
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_WORKERS))


def part_of(user_id: str, parts: int) -> int:
    """The part (of ``parts``) a user's replay runs in: stable across runs and
    machines."""
    digest = hashlib.blake2b(user_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % parts


_OUTPUT_KEY = itemgetter(0, 1)  # (at_ms, user) of an action's row


def in_output_order(actions: Iterable[Action]) -> list[Action]:
    """``actions`` by time, then by user; each user's actions at one instant keep
    the order they were taken in. Replays of the same users give the same list
    however they were split across processes."""
    return sorted(actions, key=lambda a: (a.at_ms, a.user))


def fill_store(
    store: Store, profiles: Mapping[str, Mapping[str, Any]], products: Sequence[Product]
) -> None:
    """Load the starting profiles and the catalog into a replay's store."""
    if products:
        from journeyc.catalog import upsert_products

        upsert_products(store, products, at_ms=0)
    for user, traits in sorted(profiles.items()):
        store.set_traits(user, traits, 0)


def merge_cohorts(parts: Iterable[Sequence[Cohort]]) -> list[Cohort]:
    """A/B cohorts of several stores (rows of :func:`entry_cohorts`) as one store
    would count them, in its order."""
    sums: dict[tuple[str, str | None, bool], list[int]] = {}
    for rows in parts:
        for jid, arm, held, entries, goals in rows:
            total = sums.setdefault((jid, arm, held), [0, 0])
            total[0] += entries
            total[1] += goals
    keys = sorted(sums, key=lambda k: (k[0], k[2], k[1] is not None, k[1] or ""))
    return [
        (jid, arm, held, sums[jid, arm, held][0], sums[jid, arm, held][1])
        for jid, arm, held in keys
    ]


class WorkerError(RuntimeError):
    """A replay process failed or died; the message says how."""


@dataclass
class _Job:
    project: ir.ProjectIR
    config: Config | None
    start_ms: int
    until_ms: int | None
    products: Sequence[Product]
    lines: bool  # actions sent as (at, user, JSON line), not as records


@dataclass
class _Part:
    index: int
    events: list[Event] = field(default_factory=list)
    profiles: dict[str, Mapping[str, Any]] = field(default_factory=dict)


def simulate_parallel(
    project: ir.ProjectIR,
    events: Sequence[Event],
    *,
    workers: int,
    config: Config | None = None,
    start_ms: int | None = None,
    until_ms: int | None = None,
    profiles: Mapping[str, Mapping[str, Any]] | None = None,
    products: Sequence[Product] = (),
    progress: Callable[[int, int], None] | None = None,
    json_out: TextIO | None = None,
    zones: dict[str, str] | None = None,
) -> tuple[list[Action], list[Cohort]]:
    """Replay ``events`` as :func:`~journeyc.engine.simulate.simulate` does, in
    ``workers`` processes with a fresh store each, for a project whose users are
    independent (:func:`shared_reads` is None).

    Returns the actions in :func:`in_output_order` and the A/B cohorts
    (``Store.entry_cohorts`` of the stores together).
    ``progress(done, total)`` is told how many events have been replayed.

    With ``json_out``, each action's JSON line (:meth:`Action.to_json`) is written
    there instead, in the same order, and no action is returned: the replay
    processes format the lines, in parallel.

    ``zones``, when given (and without ``json_out``), is filled with each user's
    profile ``timezone`` at the end of the replay
    (``Store.profile_zones``).
    """
    reason = shared_reads(project)
    if reason is not None:
        raise ValueError(f"users are not independent: {reason}")
    ordered, start = log_order(events, start_ms)
    parts = [_Part(k) for k in range(max(1, workers))]
    where: dict[str, _Part] = {}
    live, horizon = 0, None  # the events the clock runs through, and the last one's time
    # A repeated messageId is dropped (the first one stays) before the users are split:
    # one replay drops it whichever user the repeat names.
    unique = first_of_each_id(ordered)
    # A merge links two ids: both are one user's, replayed in one process. The file's
    # links are worked out first, in log order, as each process's store will (the
    # same function): every id goes where the user it ends up naming goes.
    ids = IdentityMap()
    if has_alias(unique):
        linked, _ = link_events(unique, ids)
        unique = [e for e in linked if e is not None]
    root = ids.canonical
    # Then one pass splits, counts and finds the horizon (a pass over a million events
    # took about 0.6 s).
    for e in unique:
        part = where.get(e.user_id)
        if part is None:
            user = root.get(e.user_id, e.user_id)
            part = where[e.user_id] = parts[part_of(user, len(parts))]
        part.events.append(e)
        if e.at_ms >= start:
            live += 1
            horizon = e.at_ms
    for user, traits in (profiles or {}).items():
        parts[part_of(root.get(user, user), len(parts))].profiles[user] = traits
    job = _Job(project, config, start, until_ms, products, json_out is not None)
    # The actions gathered are many new objects beside every event (no_full_collections).
    with no_full_collections(), _Pool(job, parts, live, progress) as pool:
        rows, cohorts = pool.run_once() if until_ms is not None else pool.run(horizon)
        if zones is not None:
            zones.update(pool.zones)
        if json_out is not None:
            json_out.writelines(f"{line}\n" for _, _, line in rows)
            return [], cohorts
        return [Action(*row) for row in rows], cohorts


class _Pool:
    """The replay processes and the pipes to them."""

    def __init__(
        self,
        job: _Job,
        parts: list[_Part],
        total: int,
        progress: Callable[[int, int], None] | None,
    ) -> None:
        # fork: the processes start with the project and their events in memory,
        # none of it pickled.
        ctx = multiprocessing.get_context("fork")
        # What is alive now is the processes' to read, not to collect: frozen, their
        # collector never walks it (which would copy every page of it to each).
        gc.freeze()
        self._done = ctx.Array("q", len(parts), lock=False)
        self._total, self._progress = total, progress
        self.zones: dict[str, str] = {}  # the parts' users' profile zones, once over
        self._conns: list[Connection] = []
        self._procs: list[Any] = []
        for part in parts:
            mine, theirs = ctx.Pipe()
            proc = ctx.Process(
                target=_replay_part,
                args=(theirs, job, part, self._done),
                name=f"journeyc-simulate-{part.index}",
                daemon=True,
            )
            proc.start()
            theirs.close()
            self._conns.append(mine)
            self._procs.append(proc)
        gc.unfreeze()

    def __enter__(self) -> _Pool:
        return self

    def __exit__(self, *exc: object) -> None:
        for conn in self._conns:
            conn.close()
        for proc in self._procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
                proc.join()

    def run(self, horizon: int | None) -> tuple[list[tuple[Any, ...]], list[Cohort]]:
        """Agree on the end of the clock (see the module), then collect the results."""
        n = len(self._conns)
        reports = self._ask(range(n), ("run", horizon))
        while True:
            last = [r[0] for r in reports if r[0] is not None]
            if horizon is not None:
                last.append(horizon)
            if not last:
                break
            horizon = max(last)
            behind = [
                k for k, (_, stop) in enumerate(reports) if stop is not None and stop <= horizon
            ]
            if not behind:
                break
            for k, report in zip(behind, self._ask(behind, ("run", horizon)), strict=True):
                reports[k] = report
        return self._results(self._ask(range(n), ("end", None)))

    def run_once(self) -> tuple[list[tuple[Any, ...]], list[Cohort]]:
        """Run every part to ``until`` (one round: the clock runs to it whatever is
        waiting), each part sending its results as soon as it is done, so the first
        done are gathered while the others still run."""
        for conn in self._conns:
            conn.send(("run", None))
            conn.send(("end", None))
        results: list[Any] = [None] * len(self._conns)
        left = dict.fromkeys(range(len(self._conns)), 2)  # messages: the run's report, results
        while left:
            k = self._ready(left)  # whichever part is first, not the first part
            payload = self._receive(k)
            left[k] -= 1
            if not left[k]:
                results[k] = payload
                del left[k]
        return self._results(results)

    def _ready(self, which: Iterable[int]) -> int:
        """One of the parts ``which`` that has sent something (or died)."""
        conns = {self._conns[k]: k for k in which}
        while True:
            ready = wait(list(conns), timeout=0.2)
            if ready:
                return conns[ready[0]]  # type: ignore[index]
            if self._progress is not None:
                self._progress(sum(self._done), self._total)
            for k in conns.values():
                if not self._procs[k].is_alive():
                    return k  # _receive() tells how it died

    def _results(self, results: list[Any]) -> tuple[list[tuple[Any, ...]], list[Cohort]]:
        """The parts' action rows in output order, and their cohorts together (their
        users' zones into ``self.zones``)."""
        rows = [row for part_rows, _, _ in results for row in part_rows]
        rows.sort(key=_OUTPUT_KEY)  # sorted runs, one per process: merged
        for _, _, part_zones in results:
            self.zones.update(part_zones)
        return rows, merge_cohorts(cohorts for _, cohorts, _ in results)

    def _ask(self, which: Iterable[int], command: tuple[str, int | None]) -> list[Any]:
        which = list(which)
        for k in which:
            self._conns[k].send(command)
        return [self._receive(k) for k in which]

    def _receive(self, k: int) -> Any:
        conn, proc = self._conns[k], self._procs[k]
        while not conn.poll(0.2):
            if self._progress is not None:
                self._progress(sum(self._done), self._total)
            if not proc.is_alive() and not conn.poll():
                break
        try:
            status, payload = receive(conn)
        except GONE:
            proc.join(timeout=5)
            raise WorkerError(f"replay process {k} died (exit code {proc.exitcode})") from None
        if status != "ok":
            raise WorkerError(f"replay process {k} failed:\n{payload}")
        return payload


def _replay_part(conn: Connection, job: _Job, part: _Part, done: Any) -> None:
    """A replay process: replay ``part`` in a fresh store, stepping the clock as the
    parent says (``("run", horizon)``), then send the actions and cohorts
    (``("end", None)``)."""

    def tell(replayed: int, _total: int) -> None:
        done[part.index] = replayed

    try:
        with no_full_collections(), scratch_store() as store:
            fill_store(store, part.profiles, job.products)
            with store.bulk():
                replay = Replay(
                    job.project,
                    part.events,
                    store,
                    job.config,
                    job.start_ms,
                    job.until_ms,
                    tell,
                    scratch=True,
                    ordered=True,  # by the parent, which dropped repeated messageIds
                    # and linked ids
                )
                command, horizon = conn.recv()
                while command == "run":
                    stop = replay.run(horizon)
                    send(conn, ("ok", (replay.last_step, stop)))
                    command, horizon = conn.recv()
            # Sent as tuples, not records, put in order here, in parallel: the parent
            # merges sorted runs. (A stable sort of the actions, in the order they
            # were taken, by time and user: in_output_order, on a key made in C.)
            rows: list[tuple[Any, ...]] = (
                [(a.at_ms, a.user, a.to_json()) for a in replay.actions]
                if job.lines
                else [
                    (a.at_ms, a.user, a.journey, a.step, a.action, a.detail) for a in replay.actions
                ]
            )
            rows.sort(key=_OUTPUT_KEY)
            # A timeline shows local times (the JSON lines do not): the users' zones.
            zones = {} if job.lines else store.profile_zones()
            send(conn, ("ok", (rows, store.entry_cohorts(), zones)))
    except EOFError:
        pass  # the parent is gone
    except BaseException:
        send(conn, ("error", traceback.format_exc()))
