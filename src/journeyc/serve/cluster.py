"""Several ``journeyc serve`` workers on one store: who works on which users.

Users are hashed into :data:`~journeyc.store.partitions.PARTITIONS` partitions, and
each partition is leased by one live worker at a time (the store's ``leases`` and
``workers`` tables: :class:`~journeyc.store.abc.Leases` and
:class:`~journeyc.store.abc.Membership`). A :class:`LeaseKeeper`
beats every third of the lease's time to live:

1. it renews the worker's membership, so that a worker that holds no partition yet
   still counts when they are shared out;
2. it renews the leases it holds (a lease it lost, it stops working on);
3. it compares what it holds with its fair share of the live members (the
   partitions split as evenly as they go, in member order): it gives back what it
   holds beyond it and takes free or expired partitions up to it.

Sharing out needs no coordinator: every member computes the same shares from the same
member list, those above their share give partitions up, and those below take them at
their next beat. When a worker dies its leases and membership expire after the time
to live, and the others' shares grow over its partitions; when one joins, the others'
shares shrink and they hand partitions over. The engine checks its partitions in each
batch's transaction (:meth:`journeyc.engine.core.Engine.work_on`), so a handover never
lets two workers handle one user at once.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import uuid
import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from journeyc.store.abc import Leases, Membership, PartitionedStore, Store
from journeyc.store.leases import Member, WorkerLeases
from journeyc.store.partitions import PARTITIONS

__all__ = [
    "LeaseKeeper",
    "Shares",
    "cluster_report",
    "fair_share",
    "new_worker_id",
    "plan",
    "ranges",
]

log = logging.getLogger("journeyc.serve")


def new_worker_id() -> str:
    """A worker id no other worker has: host, process and a random part (a process
    that restarts with the same pid is another worker)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def fair_share(members: Sequence[str], me: str, partitions: int = PARTITIONS) -> int:
    """How many partitions ``me`` should hold among ``members`` (``me`` counted even
    when missing): ``partitions`` split as evenly as they go, the first members in
    id order taking one more."""
    ids = sorted(set(members) | {me})
    n = len(ids)
    return partitions // n + (1 if ids.index(me) < partitions % n else 0)


class Shares:
    """What one beat decides: the partitions to take and those to give back."""

    __slots__ = ("give", "take")

    def __init__(self, take: list[int], give: list[int]) -> None:
        self.take = take
        self.give = give


def plan(
    me: str,
    members: Sequence[str],
    holders: Mapping[int, str],
    partitions: int = PARTITIONS,
) -> Shares:
    """One worker's move towards its fair share: ``holders`` maps each partition with
    a live lease to its worker. Beyond its share it gives back its highest partitions;
    below it, it asks for free ones, starting at a place that depends on its id (so
    that workers joining at once ask for different ones first)."""
    target = fair_share(members, me, partitions)
    mine = sorted(p for p, w in holders.items() if w == me)
    if len(mine) > target:
        return Shares([], mine[target:])
    free = [p for p in range(partitions) if p not in holders]
    if not free or len(mine) == target:
        return Shares([], [])
    start = zlib.crc32(me.encode()) % len(free)
    return Shares((free[start:] + free[:start])[: target - len(mine)], [])


class LeaseKeeper:
    """The worker's side of the leases: :meth:`beat` every ``ttl_s / 3`` seconds, and
    :meth:`leave` when it stops. ``on_change`` is told the partitions held whenever
    they change (the engine then works on those)."""

    def __init__(
        self,
        leases: Leases,
        membership: Membership,
        ttl_s: float,
        on_change: Callable[[list[int]], None],
        *,
        worker_id: str | None = None,
        about: Mapping[str, object] | None = None,
    ) -> None:
        self.leases = leases
        self.membership = membership
        self.ttl_s = ttl_s
        self.worker_id = worker_id or new_worker_id()
        self._about = json.dumps(dict(about or {}), sort_keys=True)
        self._on_change = on_change
        self._lock = threading.Lock()
        self.held: list[int] = []
        self.members: list[Member] = []  # the live workers at the last beat
        self.holders: list[WorkerLeases] = []  # … and who held which partitions then

    @property
    def interval_s(self) -> float:
        """How often :meth:`beat` runs: a third of the time to live, so that one late
        or failed beat does not lose the leases."""
        return self.ttl_s / 3

    def beat(self) -> list[int]:
        """Renew the membership and the leases, then move towards the fair share;
        the partitions held after it."""
        with self._lock:
            leases = self.leases
            self.membership.join(self.worker_id, self.ttl_s, self._about)
            held = leases.renew(self.worker_id, self.held, self.ttl_s) if self.held else []
            lost = sorted(set(self.held) - set(held))
            if lost:
                log.warning("lost the lease of partition(s) %s", ranges(lost))
            self.members = self.membership.members()
            members = [m.worker_id for m in self.members]
            self.holders = leases.workers()
            holders = {p: w.worker_id for w in self.holders for p in w.partitions}
            for p in held:  # renewed just now, whatever the read above saw
                holders[p] = self.worker_id
            shares = plan(self.worker_id, members, holders)
            if shares.give:
                leases.release(self.worker_id, shares.give)
                held = sorted(set(held) - set(shares.give))
                log.info("handed partition(s) %s over to other workers", ranges(shares.give))
            if shares.take:
                got = leases.acquire(self.worker_id, shares.take, self.ttl_s)
                new = sorted(set(got) - set(held))
                held = sorted(set(held) | set(got))
                if new:
                    log.info("took partition(s) %s", ranges(new))
            changed = held != self.held
            self.held = held
        if changed:
            self._on_change(list(held))
        return held

    def leave(self) -> None:
        """Stop: give every lease and the membership back at once, so that the other
        workers take the partitions at their next beat instead of after the time to
        live."""
        with self._lock:
            self.membership.leave(self.worker_id)
            self.held = []


def cluster_report(store: Store, now_ms: int) -> dict[str, Any] | None:
    """The workers sharing ``store`` (None: a store one engine runs, SQLite's): each
    live worker with what it says of itself, its last heartbeat, its partitions and
    its lag (events of its partitions not handled yet, the oldest one's age), and
    the partitions no live worker holds. ``journeyc status`` prints it."""
    if not isinstance(store, PartitionedStore):
        return None
    plog = store.partition_log()
    held = {w.worker_id: w for w in store.leases().workers()}
    workers = []
    for m in store.membership().members():
        w = held.get(m.worker_id)
        parts = list(w.partitions) if w is not None else []
        waiting, oldest = plog.lag(parts)
        workers.append(
            {
                "worker_id": m.worker_id,
                "about": json.loads(m.about),
                "heartbeat_ms": m.heartbeat_ms,
                "partitions": parts,
                "waiting_events": waiting,
                "oldest_waiting_s": None if oldest is None else max(0, now_ms - oldest) / 1000,
            }
        )
    taken = {p for w in held.values() for p in w.partitions}
    unheld = [p for p in range(PARTITIONS) if p not in taken]
    waiting, _ = plog.lag(unheld)
    return {
        "partitions": PARTITIONS,
        "workers": workers,
        "unheld": unheld,
        "unheld_waiting_events": waiting,
    }


def ranges(parts: Sequence[int]) -> str:
    """``[0, 1, 2, 5]`` as ``0-2, 5``, for the log and ``journeyc status``."""
    out: list[str] = []
    run: list[int] = []
    for p in sorted(parts):
        if run and p != run[-1] + 1:
            out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
            run = []
        run.append(p)
    if run:
        out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ", ".join(out)
