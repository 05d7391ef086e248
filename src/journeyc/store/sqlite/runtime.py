"""The engine's rows: instances, entries, outbox and actions, over one connection.

The SQLite store's unit of work (:class:`~journeyc.store.abc.UnitOfWork`, handed out
by ``Store.runtime()``): the rows one step reads and writes are kept as
:class:`~journeyc.store.unit_of_work.UnitRows` keeps them (the half every store
shares); this module holds the statements, and the simulator's ``hold`` mode. Every
statement is prepared once by sqlite3's statement cache.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from journeyc.fastjson import dumps
from journeyc.store.dueheap import DueHeap
from journeyc.store.errors import StoreError
from journeyc.store.rows import Instance
from journeyc.store.sqlite.action_counts import add_logged, last_seq
from journeyc.store.unit_of_work import INSTANCE_COLS, LIVE, UnitRows

_LIVE = "('active', 'waiting')"
_INSTANCE_COLS = INSTANCE_COLS


class Runtime(UnitRows):
    """The engine's queries and writes (:class:`~journeyc.store.abc.UnitOfWork`);
    callers hold the transaction."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        super().__init__()
        self.conn = conn
        # A unit of work per engine step (UnitRows): changed instances, new instances
        # and entries, new outbox rows and actions are written with one executemany
        # each at flush().
        self._next_id: int | None = None  # the id the next created instance takes
        # keep (see hold()): every write waits in memory until forget(); the rows read
        # stay known, so a user's instances and entries are read once.
        self.keep = False
        # scratch (see hold()): instances, outbox rows and actions are not written.
        self.scratch = False
        self._actions: list[tuple[Any, ...]] = []  # with keep: logged at forget()
        # With keep: instances that ended since forget(), which lets go of them (and
        # not every instance it knows).
        self._ended: list[Instance] = []
        # With keep, what the tables would answer, kept current in memory: the timers
        # of waiting instances (by id), and each user's sends as (created_at, journey)
        # in time order.
        self._timers: DueHeap[int] = DueHeap()
        self._sends: dict[str, list[tuple[int, str]]] = {}
        # With keep, on a store that held no instance and no entry at hold(): a user
        # not read yet has none (nothing to read back).
        self._complete = False

    def flush(self) -> None:
        """Write every changed and new instance, new entry and queued outbox row.

        The table holds live instances only: one that ended is deleted, and one that
        ended before it was written is never inserted. With ``scratch`` (see
        :meth:`hold`) only the entries are written."""
        # Changed rows first: an instance that ended frees its (journey, user) slot in
        # the one-live-instance index before a new instance of the pair is inserted.
        if self.scratch:
            self._dirty.clear()
            self._new.clear()
        if self._dirty:
            changed: list[Instance] = []
            ended: list[Instance] = []
            for i in self._dirty.values():
                if i.id not in self._new:
                    (changed if i.status in LIVE else ended).append(i)
            if ended:
                self.conn.executemany(
                    "DELETE FROM instances WHERE id = ?", [(i.id,) for i in ended]
                )
            if changed:
                self._write(changed)
            self._dirty.clear()
        if self._new:
            self._note_ids()
            self.conn.executemany(
                f"INSERT INTO instances ({_INSTANCE_COLS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        i.id,
                        i.journey_id,
                        i.version,
                        i.user_id,
                        i.entry_no,
                        i.node,
                        i.status,
                        i.entered_at,
                        i.wake_at,
                        i.waiting_for,
                        dumps(i.vars),
                        i.arm,
                        int(i.holdout),
                    )
                    for i in self._new.values()
                    if i.status in LIVE
                ],
            )
            self._new.clear()
        if self._entries:
            self.conn.executemany(
                "INSERT INTO entries (journey_id, user_id, entry_no, entered_at, goal_at, "
                "arm, holdout) VALUES (?, ?, ?, ?, ?, ?, ?)",
                list(self._entries.values()),
            )
            self._entries.clear()
        self._flush_entry_updates()
        if self._outbox:
            self.conn.executemany(
                "INSERT INTO outbox (key, instance_id, journey_id, user_id, step, channel, "
                "message, content, status, next_attempt_at, created_at, error) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING",
                self._outbox,
            )
            self._outbox.clear()

    def _flush_entry_updates(self) -> None:
        if self._goals:
            self.conn.executemany(
                "UPDATE entries SET goal_at = ? WHERE journey_id = ? AND user_id = ? "
                "AND entry_no = ?",
                self._goals,
            )
            self._goals = []
        if self._arms:
            self.conn.executemany(
                "UPDATE entries SET arm = ? WHERE journey_id = ? AND user_id = ? AND entry_no = ?",
                self._arms,
            )
            self._arms = []

    def _note_ids(self) -> None:
        # An id handed out is never handed out again, not even one whose instance
        # ended before it was written (outbox rows keep it): the table's AUTOINCREMENT
        # sequence is raised past every id given.
        if self._next_id is None:
            return
        top = self._next_id - 1
        raised = self.conn.execute(
            "UPDATE sqlite_sequence SET seq = ? WHERE name = 'instances' AND seq < ?", (top, top)
        ).rowcount
        if not raised:
            self.conn.execute(
                "INSERT INTO sqlite_sequence (name, seq) SELECT 'instances', ? "
                "WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'instances')",
                (top,),
            )

    def _write(self, instances: list[Instance]) -> None:
        self.conn.executemany(
            "UPDATE instances SET node = ?, status = ?, wake_at = ?, waiting_for = ?, "
            "vars = ?, arm = ? WHERE id = ?",
            [
                (i.node, i.status, i.wake_at, i.waiting_for, dumps(i.vars), i.arm, i.id)
                for i in instances
            ],
        )

    def end(self) -> None:
        """End a unit of work: flush, and forget the instances read, so the next unit
        reads them afresh. With ``keep`` nothing happens: writes wait for forget()."""
        if not self.keep:
            self.flush()
            self._forget()

    def hold(self, scratch: bool = False) -> None:
        """Start ``keep``: for a caller that is the store's only writer and holds a
        transaction around its units (the simulator). Every write waits in memory
        until :meth:`forget`; what the engine asks of the tables meanwhile (due timers,
        the next wake, sends for caps, a user's instances and entries) is answered from
        memory, kept current by the same calls that queue the writes.

        ``scratch``: the store is thrown away after the run (a simulation's own), so
        instances, outbox rows and actions, which nothing reads back while the engine
        keeps its rows, are not written at all. Entries still are: A/B cohorts are read
        from them. Only on a store that holds no instance and no entry yet (otherwise
        rows already there would go stale); elsewhere everything is written."""
        self.flush()
        self._forget()
        self.keep = True
        self._timers = DueHeap(
            (int(w), int(i))
            for w, i in self.conn.execute(
                "SELECT wake_at, id FROM instances WHERE status = 'waiting' AND wake_at IS NOT NULL"
            )
        )
        self._sends = {}
        for user, at, jid in self.conn.execute(
            "SELECT user_id, created_at, journey_id FROM outbox "
            "WHERE status != 'suppressed' ORDER BY created_at, rowid"
        ):
            self._sends.setdefault(user, []).append((int(at), jid))
        self._complete = (
            self.conn.execute(
                "SELECT EXISTS (SELECT 1 FROM instances) OR EXISTS (SELECT 1 FROM entries)"
            ).fetchone()[0]
            == 0
        )
        self.scratch = scratch and self._complete

    def forget(self) -> None:
        """Write everything held (instances, entries, outbox rows, actions). With
        ``keep``, the rows read stay known but ended instances are let go; otherwise
        every row read is forgotten."""
        self.flush()
        if self._actions:
            self._log(self._actions)
            self._actions = []
        if not self.keep:
            self._forget()
            return
        ended, self._ended = self._ended, []
        for inst in ended:
            self._seen.pop(inst.id, None)
        for user in {inst.user_id for inst in ended}:
            known = self._live.get(user)
            if known is not None:
                self._live[user] = [inst for inst in known if inst.status in LIVE]

    def discard(self) -> None:
        """Drop the unit of work unwritten (its transaction was rolled back)."""
        self._actions.clear()
        super().discard()
        self.keep = self.scratch = False  # what was held is gone: back to the tables

    def _forget(self) -> None:
        super()._forget()
        self._ended.clear()
        self._next_id = None
        self._complete = False

    # ------------------------------------------------------------ journeys
    def deploy(self, journey_id: str, version: str, ir_json: str, source: str, at_ms: int) -> None:
        """Record a journey version as deployed and make it the active one."""
        self.conn.execute(
            "UPDATE journeys SET active = 0 WHERE id = ? AND version != ?", (journey_id, version)
        )
        self.conn.execute(
            "INSERT INTO journeys (id, version, ir, source, deployed_at, active) "
            "VALUES (?, ?, ?, ?, ?, 1) ON CONFLICT (id, version) DO UPDATE SET active = 1",
            (journey_id, version, ir_json, source, at_ms),
        )

    def retire_except(self, journey_ids: list[str]) -> None:
        """Mark journeys that left the project inactive (their users in flight finish)."""
        marks = ", ".join("?" for _ in journey_ids)
        self.conn.execute(
            f"UPDATE journeys SET active = 0 WHERE active = 1 AND id NOT IN ({marks})",
            journey_ids,
        )

    def upgrade(self, journey_id: str, version: str, nodes: list[str]) -> int:
        """Move live instances of a journey to ``version`` where their node is in
        ``nodes``; return how many moved."""
        self.flush()
        self._forget()  # the instances moved change version
        marks = ", ".join("?" for _ in nodes)
        cur = self.conn.execute(
            f"UPDATE instances SET version = ? WHERE journey_id = ? AND version != ? "
            f"AND status IN {_LIVE} AND node IN ({marks})",
            (version, journey_id, version, *nodes),
        )
        return cur.rowcount

    def journey_ir(self, journey_id: str, version: str) -> str | None:
        """The IR (JSON) of one deployed journey version, None when never deployed."""
        row = self.conn.execute(
            "SELECT ir FROM journeys WHERE id = ? AND version = ?", (journey_id, version)
        ).fetchone()
        return None if row is None else str(row[0])

    def versions(self) -> list[tuple[str, str, str, bool]]:
        """Every deployed (id, version, ir JSON, active)."""
        rows = self.conn.execute("SELECT id, version, ir, active FROM journeys ORDER BY id")
        return [(r[0], r[1], r[2], bool(r[3])) for r in rows]

    # ------------------------------------------------------------ instances
    def _read_live(self, users: list[str]) -> None:
        """Fill ``_live`` for ``users`` (none of them known yet)."""
        for start in range(0, len(users), 500):
            part = users[start : start + 500]
            live: dict[str, list[Instance]] = {u: [] for u in part}
            if not self._complete:
                marks = ", ".join("?" for _ in part)
                rows = self.conn.execute(
                    f"SELECT {_INSTANCE_COLS} FROM instances WHERE user_id IN ({marks}) "
                    f"AND status IN {_LIVE} ORDER BY id",
                    part,
                )
                for inst in self._track(rows):
                    live[inst.user_id].append(inst)
            self._live.update(live)

    def _read_entries(self, users: list[str]) -> None:
        """Fill ``_last`` for ``users`` (none of them known yet)."""
        self._flush_entry_updates()  # what the table says must be current
        for start in range(0, len(users), 500):
            part = users[start : start + 500]
            last: dict[str, dict[str, list[Any]]] = {u: {} for u in part}
            if not self._complete:
                marks = ", ".join("?" for _ in part)
                # SQLite takes the bare columns from the row holding the max().
                for jid, user, no, at, goal in self.conn.execute(
                    "SELECT journey_id, user_id, max(entry_no), entered_at, goal_at FROM entries "
                    f"WHERE user_id IN ({marks}) GROUP BY user_id, journey_id",
                    part,
                ):
                    last[user][jid] = [jid, user, int(no), int(at), goal]
            self._last.update(last)

    def only(self, parts: Sequence[int] | None) -> None:
        """Every user (None): a SQLite store has no partitions, one engine works on it
        (:mod:`journeyc.store.partitions`); a list of partitions raises StoreError."""
        if parts is not None:
            raise StoreError(
                "a SQLite store has no partitions (one engine works on it): only(parts)"
                " needs a PostgreSQL store"
            )

    def due(self, now_ms: int, limit: int) -> list[Instance]:
        """Waiting instances whose timer is due, earliest first (then oldest). The
        caller runs each one, or hands those it leaves to :meth:`rearm`."""
        if self.keep:
            return self._due_held(now_ms, limit)
        self.flush()  # the query must not return instances already moved on
        rows = self.conn.execute(
            f"SELECT {_INSTANCE_COLS} FROM instances WHERE status = 'waiting' "
            "AND wake_at <= ? ORDER BY wake_at, id LIMIT ?",
            (now_ms, limit),
        )
        return self._track(rows)

    def _due_held(self, now_ms: int, limit: int) -> list[Instance]:
        out: list[Instance] = []
        for wake, i in self._timers.pop_due(now_ms, limit):
            inst = self._seen.get(i)
            if inst is None:
                rows = self.conn.execute(
                    f"SELECT {_INSTANCE_COLS} FROM instances WHERE id = ?", (i,)
                )
                (inst,) = self._track(rows)
            if inst.status == "waiting" and inst.wake_at == wake:
                out.append(inst)
        return out

    def rearm(self, instances: Iterable[Instance]) -> None:
        """Give back instances :meth:`due` returned that the caller did not run: they
        are due again."""
        for inst in instances:
            self._arm(inst)

    def _arm(self, inst: Instance) -> None:
        self._timers.set(inst.id, inst.wake_at if inst.status == "waiting" else None)

    def next_wake(self) -> int | None:
        """The earliest pending timer."""
        if self.keep:
            return self._timers.next()
        self.flush()
        row = self.conn.execute(
            "SELECT MIN(wake_at) FROM instances WHERE status = 'waiting'"
        ).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def _new_id(self) -> int:
        if self._next_id is None:
            # AUTOINCREMENT: ids are never reused, not even those of deleted rows.
            (last,) = self.conn.execute(
                "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'instances'),"
                " 0), coalesce((SELECT max(id) FROM instances), 0))"
            ).fetchone()
            self._next_id = int(last) + 1
        self._next_id += 1
        return self._next_id - 1

    def create(self, inst: Instance) -> Instance:
        """Add a new instance (its ``id`` is assigned) and its entry record; both are
        inserted at flush, in their state then."""
        super().create(inst)
        if self.keep:
            self._arm(inst)
        return inst

    def save(self, inst: Instance) -> None:
        """Mark an instance changed; it is written at the next flush."""
        self._dirty[inst.id] = inst
        if self.keep:
            self._arm(inst)
            if inst.status not in LIVE:
                self._ended.append(inst)

    # The identity merge's statements (UnitRows.merge_user has its rules).
    def _delete_instances(self, ids: list[int]) -> None:
        self.conn.executemany("DELETE FROM instances WHERE id = ?", [(i,) for i in ids])

    def _entry_numbers(self, user_id: str) -> list[tuple[str, int, int]]:
        rows = self.conn.execute(
            "SELECT journey_id, entry_no, entered_at FROM entries WHERE user_id = ?"
            " ORDER BY journey_id, entry_no",
            (user_id,),
        )
        return [(str(j), int(n), int(a)) for j, n, a in rows]

    def _renumber_entries(self, into: str, moves: list[tuple[str, str, int, int]]) -> None:
        self.conn.executemany(
            "UPDATE entries SET user_id = ?, entry_no = ? WHERE user_id = ? AND journey_id = ?"
            " AND entry_no = ?",
            [(into, new, user, jid, old) for user, jid, old, new in moves],
        )

    def _move_instances(self, into: str, instances: list[Instance]) -> None:
        self.conn.executemany(
            "UPDATE instances SET user_id = ?, entry_no = ? WHERE id = ?",
            [(into, i.entry_no, i.id) for i in instances],
        )

    def _move_sends(self, frm: str, into: str) -> None:
        self.conn.execute("UPDATE outbox SET user_id = ? WHERE user_id = ?", (into, frm))
        sends = self._sends.pop(frm, None)
        if sends:
            self._sends[into] = sorted([*self._sends.get(into, ()), *sends])

    def _read_entries_of(self, user_id: str) -> None:
        """Fill ``_last`` for ``user_id`` from the table, whatever ``_complete`` says."""
        last: dict[str, list[Any]] = {}
        for jid, user, no, at, goal in self.conn.execute(
            "SELECT journey_id, user_id, max(entry_no), entered_at, goal_at FROM entries "
            "WHERE user_id = ? GROUP BY journey_id",
            (user_id,),
        ):
            last[jid] = [jid, user, int(no), int(at), goal]
        self._last[user_id] = last

    # ------------------------------------------------------------ outbox and actions
    def sends_since(self, user_id: str, since_ms: int, journey_id: str | None) -> int:
        """Messages queued or sent to the user after ``since_ms`` (by one journey, or all)."""
        if self.keep:
            count = 0
            for at, jid in reversed(self._sends.get(user_id, ())):
                if at <= since_ms:
                    break
                if journey_id is None or jid == journey_id:
                    count += 1
            return count
        self.flush()
        if journey_id is None:
            row = self.conn.execute(
                "SELECT COUNT(*) FROM outbox WHERE user_id = ? AND created_at > ? "
                "AND status != 'suppressed'",
                (user_id, since_ms),
            ).fetchone()
        else:
            row = self.conn.execute(
                "SELECT COUNT(*) FROM outbox WHERE user_id = ? AND created_at > ? "
                "AND status != 'suppressed' AND journey_id = ?",
                (user_id, since_ms, journey_id),
            ).fetchone()
        return int(row[0])

    def _sending(self, inst: Instance, at_ms: int, status: str) -> bool:
        # With keep, caps read the sends from memory; with scratch, none is written.
        if self.keep and status != "suppressed":
            self._sends.setdefault(inst.user_id, []).append((at_ms, inst.journey_id))
        return not self.scratch

    def log_actions(self, rows: Iterable[tuple[int, str, str, str | None, str, str]]) -> None:
        """Append (at, user, journey, step, action, detail JSON) rows to the action log
        (with ``keep``, at :meth:`forget`: nothing reads it before; with ``scratch``,
        never)."""
        if self.scratch:
            return
        if self.keep:
            self._actions.extend(rows)
        else:
            self._log(rows)

    def _log(self, rows: Iterable[tuple[Any, ...]]) -> None:
        after = last_seq(self.conn)
        self.conn.executemany(
            "INSERT INTO actions (at, user_id, journey_id, step, action, detail) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )
        add_logged(self.conn, after)  # the reports' sums (action_counts.py)
