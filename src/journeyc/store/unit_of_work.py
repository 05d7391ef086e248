"""The engine's unit of work, the half every store shares: what one engine step has
read and changed, kept in memory until the store writes it.

An instance read in a unit is kept by id, so every later read in the unit returns the
same object in its latest state; a user's live instances and latest entries are read
once per unit (:meth:`UnitRows.prefetch` reads many users at once); instances created
and changed, entries, goals, split arms and outbox rows wait in memory for the store's
``flush()``. The identity merge's rules (which instance stays, how entries are
numbered) are here too; the statements are each store's
(:mod:`journeyc.store.sqlite.runtime`, :mod:`journeyc.store.postgres.runtime`), which
fill in the abstract methods.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import fields
from typing import Any

from journeyc.fastjson import dumps, loads
from journeyc.store.rows import Instance

__all__ = ["INSTANCE_COLS", "LIVE", "UnitRows", "instance"]

LIVE = frozenset({"active", "waiting"})
"""The statuses of a running instance (the table holds no other)."""

INSTANCE_COLS = (
    "id, journey_id, version, user_id, entry_no, node, status, entered_at, "
    "wake_at, waiting_for, vars, arm, holdout"
)
"""The columns of an instance row, in :class:`Instance`'s order."""


def instance(row: Sequence[Any]) -> Instance:
    """An instance from a row of :data:`INSTANCE_COLS` (``vars`` as JSON text)."""
    values = list(row)
    values[10] = loads(values[10])
    values[12] = bool(values[12])
    return Instance(*values)


class UnitRows(ABC):
    """The rows one unit of work has read and holds for writing
    (:class:`journeyc.store.abc.UnitOfWork`'s reads of instances and entries, and
    the writes it queues); a store's runtime subclasses it with its statements."""

    def __init__(self) -> None:
        self._seen: dict[int, Instance] = {}
        self._dirty: dict[int, Instance] = {}
        self._new: dict[int, Instance] = {}  # created, not inserted yet
        # Entries created and not inserted yet: (journey, user, entry_no) →
        # [journey, user, entry_no, entered_at, goal_at, arm, holdout].
        self._entries: dict[tuple[str, str, int], list[Any]] = {}
        # Per user read in this unit: the instances live when read, and those created
        # since (their status says which still are); the latest entry per journey as
        # [journey, user, entry_no, entered_at, goal_at] (+ [arm, holdout] when new).
        self._live: dict[str, list[Instance]] = {}
        self._last: dict[str, dict[str, list[Any]]] = {}
        self._outbox: list[tuple[Any, ...]] = []
        # Goals and split arms of entries written already: (value, journey, user,
        # entry_no), set at flush (one statement, not one each).
        self._goals: list[tuple[int, str, str, int]] = []
        self._arms: list[tuple[str | None, str, str, int]] = []

    # ------------------------------------------------------------ what a store writes

    @abstractmethod
    def flush(self) -> None:
        """Write what the unit holds."""

    @abstractmethod
    def _new_id(self) -> int:
        """The id the next instance created takes (never one handed out before)."""

    @abstractmethod
    def _read_live(self, users: list[str]) -> None:
        """Fill ``_live`` for ``users`` (none of them known yet), through :meth:`_track`."""

    @abstractmethod
    def _read_entries(self, users: list[str]) -> None:
        """Fill ``_last`` for ``users`` (none of them known yet) from the table."""

    # The identity merge's statements (see merge_user).
    @abstractmethod
    def _delete_instances(self, ids: list[int]) -> None:
        """Delete the rows of these instances."""

    @abstractmethod
    def _entry_numbers(self, user_id: str) -> list[tuple[str, int, int]]:
        """The user's entries as ``(journey, entry_no, entered_at)``, by journey, then
        number."""

    @abstractmethod
    def _renumber_entries(self, into: str, moves: list[tuple[str, str, int, int]]) -> None:
        """Make each entry ``(user, journey, entry_no, new entry_no)`` of ``moves``
        ``into``'s, numbered anew (every new number is above every number ``into``
        had: no two entries ever share one, whatever order the rows change in)."""

    @abstractmethod
    def _read_entries_of(self, user_id: str) -> None:
        """Fill ``_last`` for ``user_id`` from the table (after a merge)."""

    @abstractmethod
    def _move_instances(self, into: str, instances: list[Instance]) -> None:
        """Write the user and entry number of these instances (``into``'s now)."""

    @abstractmethod
    def _move_sends(self, frm: str, into: str) -> None:
        """Make ``frm``'s outbox rows ``into``'s."""

    def _live_to_merge(self, user_id: str) -> list[Instance]:
        """The live instances of ``user_id`` that :meth:`merge_user` moves: those the
        unit knows (a store several workers share reads them afresh and locks them,
        see :mod:`journeyc.store.postgres.runtime`)."""
        return [i for i in self._user_live(user_id) if i.status in LIVE]

    def _sending(self, inst: Instance, at_ms: int, status: str) -> bool:
        """Told of each row :meth:`queue` is given; whether to write it (yes)."""
        return True

    # ------------------------------------------------------------ the unit

    def _track(self, rows: Iterable[Sequence[Any]], *, fresh: bool = False) -> list[Instance]:
        """The instances of ``rows``: the unit's own object for one read already
        (with ``fresh``, set to the row read: newer than the unit's copy, which
        holds no unwritten change then)."""
        out = []
        for row in rows:
            inst = self._seen.get(row[0])
            if inst is None:
                inst = self._seen[row[0]] = instance(row)
            elif fresh:
                read = instance(row)
                for f in fields(Instance):
                    setattr(inst, f.name, getattr(read, f.name))
            out.append(inst)
        return out

    def _forget(self) -> None:
        """Forget the rows read (the next unit reads them afresh)."""
        self._seen.clear()
        self._live.clear()
        self._last.clear()

    def discard(self) -> None:
        """Drop the unit of work unwritten (its transaction was rolled back)."""
        self._dirty.clear()
        self._new.clear()
        self._entries.clear()
        self._outbox.clear()
        self._goals.clear()
        self._arms.clear()
        self._forget()

    # ------------------------------------------------------------ instances

    def _user_live(self, user_id: str) -> list[Instance]:
        known = self._live.get(user_id)
        if known is None:
            self._read_live([user_id])
            known = self._live[user_id]
        return known

    def prefetch(self, user_ids: Iterable[str]) -> None:
        """Read the live instances and latest entries of the users not read yet in
        this unit: two queries for all of them (a query per user costs ten times as
        much per user)."""
        users = list(dict.fromkeys(user_ids))
        self._read_live([u for u in users if u not in self._live])
        self._read_entries([u for u in users if u not in self._last])

    def live(self, user_id: str) -> list[Instance]:
        """The user's running instances, in the order they were created (ids are
        handed out in that order)."""
        live = [i for i in self._user_live(user_id) if i.status in LIVE]
        live.sort(key=lambda i: i.id)
        return live

    def live_in(self, journey_id: str, user_id: str) -> Instance | None:
        """The user's running instance of a journey, if any."""
        for i in self._user_live(user_id):
            if i.journey_id == journey_id and i.status in LIVE:
                return i
        return None

    def create(self, inst: Instance) -> Instance:
        """Add a new instance (its ``id`` is assigned) and its entry record; both are
        inserted at flush, in their state then."""
        inst.id = self._new_id()
        self._user_live(inst.user_id).append(inst)
        self._seen[inst.id] = self._new[inst.id] = inst
        row = [
            inst.journey_id,
            inst.user_id,
            inst.entry_no,
            inst.entered_at,
            None,
            inst.arm,
            inst.holdout,
        ]
        self._entries[(inst.journey_id, inst.user_id, inst.entry_no)] = row
        self._user_entries(inst.user_id)[inst.journey_id] = row
        return inst

    def save(self, inst: Instance) -> None:
        """Mark an instance changed; it is written at the next flush."""
        self._dirty[inst.id] = inst

    def merge_user(self, frm: str, into: str) -> list[Instance]:
        """Make ``frm``'s instances, entries and sends ``into``'s (an identity merge,
        docs/semantics.md). Returns the instances the caller ends with reason
        ``merged``: where both users have a live instance of one journey, the one
        that entered first stays (at equal times, ``into``'s).

        ``frm``'s entries are numbered after ``into``'s, in their order; then, per
        journey, the entry the entry rule and goals must read as the latest (the live
        instance's, else the one entered last) is numbered after all of them if it is
        not the last already. Numbers are never handed out twice for ``into``, so no
        outbox key or ``track`` event id repeats one made before."""
        self.flush()  # the tables hold every entry (and, unless scratch, every row)
        theirs = self._live_to_merge(frm)
        mine = [i for i in self._user_live(into) if i.status in LIVE]
        live: dict[str, Instance] = {i.journey_id: i for i in mine}
        dropped: list[Instance] = []
        for inst in theirs:
            other = live.get(inst.journey_id)
            if other is None:
                live[inst.journey_id] = inst
            elif inst.entered_at < other.entered_at:
                dropped.append(other)
                live[inst.journey_id] = inst
            else:
                dropped.append(inst)
        # Rows of instances about to end go now: they would hold the (journey, user)
        # slot of the one-live-instance index that a moved instance takes.
        if dropped:
            self._delete_instances([i.id for i in dropped])
        mine_entries, their_entries = self._entry_numbers(into), self._entry_numbers(frm)
        top: dict[str, int] = {}
        for jid, no, _ in mine_entries:
            top[jid] = max(top.get(jid, 0), no)
        before = dict(top)  # into's own numbers are at most these
        numbers: dict[tuple[str, int], int] = {}  # frm's (journey, entry_no) → into's
        for jid, no, _ in their_entries:
            top[jid] = top.get(jid, 0) + 1
            numbers[(jid, no)] = top[jid]
        for inst in theirs:
            inst.user_id = into
            inst.entry_no = numbers[(inst.journey_id, inst.entry_no)]
        # The latest entry of each journey: the live instance's, else the one entered
        # last (of two entered at one instant, the higher number: the later one).
        last_entered: dict[str, tuple[int, int]] = {}
        for jid, no, at in [*((j, numbers[(j, n)], a) for j, n, a in their_entries), *mine_entries]:
            last_entered[jid] = max(last_entered.get(jid, (at, no)), (at, no))
        renumbered: dict[tuple[str, int], int] = {}  # into's own entries moved last
        for jid, (_, no) in sorted(last_entered.items()):
            stays = live.get(jid)  # the instance that goes on, if any
            latest = stays.entry_no if stays is not None else no
            if latest != top.get(jid, latest):
                top[jid] += 1
                if latest > before.get(jid, 0):  # one of frm's: numbered last at once
                    (old,) = [k for k, v in numbers.items() if k[0] == jid and v == latest]
                    numbers[old] = top[jid]
                else:
                    renumbered[(jid, latest)] = top[jid]
                if stays is not None:
                    stays.entry_no = top[jid]
        self._renumber_entries(
            into,
            [(frm, jid, old, new) for (jid, old), new in numbers.items()]
            + [(into, jid, old, new) for (jid, old), new in renumbered.items()],
        )
        ending = {i.id for i in dropped}
        self._move_instances(into, [i for i in [*mine, *theirs] if i.id not in ending])
        self._move_sends(frm, into)
        self._live[into] = sorted(
            [*self._live.get(into, ()), *self._live.pop(frm, ())], key=lambda i: i.id
        )
        self._live[frm] = []
        self._last[frm] = {}
        self._last.pop(into, None)
        self._read_entries_of(into)
        return sorted(dropped, key=lambda i: i.id)

    # ------------------------------------------------------------ entries and goals

    def _user_entries(self, user_id: str) -> dict[str, list[Any]]:
        known = self._last.get(user_id)
        if known is None:
            self._read_entries([user_id])
            known = self._last[user_id]
        return known

    def last_entry(self, journey_id: str, user_id: str) -> tuple[int, int, int | None] | None:
        """The user's latest entry into a journey: (entry_no, entered_at, goal_at)."""
        row = self._user_entries(user_id).get(journey_id)
        return (row[2], row[3], row[4]) if row else None

    def record_goal(self, journey_id: str, user_id: str, entry_no: int, at_ms: int) -> None:
        """Mark an entry as converted."""
        pending = self._entries.get((journey_id, user_id, entry_no))
        if pending is not None:
            pending[4] = at_ms
        else:
            self._goals.append((at_ms, journey_id, user_id, entry_no))
        known = self._last.get(user_id, {}).get(journey_id)
        if known is not None and known[2] == entry_no:
            known[4] = at_ms

    def record_arm(self, inst: Instance) -> None:
        """Keep the split arm an instance took with its entry."""
        pending = self._entries.get((inst.journey_id, inst.user_id, inst.entry_no))
        if pending is not None:
            pending[5] = inst.arm
        else:
            self._arms.append((inst.arm, inst.journey_id, inst.user_id, inst.entry_no))

    # ------------------------------------------------------------ the outbox

    def queue(
        self,
        key: str,
        inst: Instance,
        step: str,
        channel: str | None,
        message: str,
        content: dict[str, Any],
        at_ms: int,
        status: str = "queued",
        error: str | None = None,
    ) -> None:
        """Put a send (or its suppression) in the outbox, once per key; written at flush."""
        if not self._sending(inst, at_ms, status):
            return
        self._outbox.append(
            (
                key,
                inst.id,
                inst.journey_id,
                inst.user_id,
                step,
                channel,
                message,
                dumps(content),
                status,
                at_ms if status == "queued" else None,
                at_ms,
                error,
            )
        )
