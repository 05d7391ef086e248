"""The engine's rows in PostgreSQL: instances, entries, outbox and actions, as one
engine step reads and writes them (:class:`~journeyc.store.abc.UnitOfWork`, handed out
by ``PostgresStore.runtime()``).

The SQLite store's unit of work (:mod:`journeyc.store.sqlite.runtime`) ported, in its
live mode: instances read in a unit are kept by id, so every later read in the unit
sees their latest state, and the unit's changes (instances changed, created and ended,
new entries, goals and arms, outbox rows) go out at :meth:`PostgresRuntime.end`, one
statement each over ``unnest`` arrays, in the caller's transaction (the engine's
batch). The simulator's ``hold`` mode, which keeps every row in memory for the store's
only writer, stays SQLite's: a PostgreSQL store is shared by several workers.

Instance ids come from the ``instances.id`` identity sequence, taken a block at a time
within a unit (a block's unused ids are dropped at the unit's end: never handed out,
so ids keep growing in the order instances are created, whichever worker creates
them). Each worker's engine handles the users of the partitions it leases
(:meth:`PostgresRuntime.only`); the partition of an instance is the generated
``part`` column (migration 9).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from journeyc.fastjson import dumps, loads
from journeyc.store.errors import StoreError
from journeyc.store.partitions import PARTITIONS
from journeyc.store.postgres.schema import Connection, Connections
from journeyc.store.rows import Instance

__all__ = ["PostgresRuntime"]

LIVE = frozenset({"active", "waiting"})
_LIVE = "('active', 'waiting')"
_INSTANCE_COLS = (
    "id, journey_id, version, user_id, entry_no, node, status, entered_at, "
    "wake_at, waiting_for, vars::text, arm, holdout"
)
_ID_BLOCK = 1024
"""The most instance ids one unit takes from the sequence at a time (it starts with
8 and doubles: a unit creating one instance wastes few)."""

# The label of an action row, as SQLite's action_counts.LABEL computes it.
_LABEL = (
    "CASE action WHEN 'send' THEN coalesce(detail ->> 'channel', '')"
    " WHEN 'suppress' THEN coalesce(detail ->> 'reason', '')"
    " WHEN 'exit' THEN coalesce(detail ->> 'reason', '') ELSE '' END"
)
# Actions logged and summed into the reports' action_counts in one statement: the sums
# are of exactly the rows this statement inserted, whatever other workers log meanwhile.
_LOG_ACTIONS = (
    "WITH logged AS (INSERT INTO actions (at, user_id, journey_id, step, action, detail)"
    " SELECT a, u, j, s, n, d::jsonb FROM unnest(%s::bigint[], %s::text[], %s::text[],"
    " %s::text[], %s::text[], %s::text[]) WITH ORDINALITY AS t (a, u, j, s, n, d, o)"
    " ORDER BY o RETURNING at, journey_id, step, action, detail)"
    " INSERT INTO action_counts (journey_id, hour, step, action, label, n)"
    f" SELECT journey_id, at / 3600000, coalesce(step, ''), action, {_LABEL}, count(*)"
    " FROM logged WHERE journey_id IS NOT NULL GROUP BY 1, 2, 3, 4, 5"
    " ON CONFLICT (journey_id, hour, step, action, label)"
    " DO UPDATE SET n = action_counts.n + excluded.n"
)


def _instance(row: tuple[Any, ...]) -> Instance:
    """An instance from a row of ``_INSTANCE_COLS`` (``vars`` as JSON text)."""
    values = list(row)
    values[10] = loads(values[10])
    return Instance(*values)


class PostgresRuntime:
    """The engine's queries and writes over a PostgreSQL store; callers hold the
    transaction (:meth:`PostgresStore.transaction`)."""

    def __init__(self, store: Connections) -> None:
        self._store = store
        # The unit of work (see the module's docstring): instances read, by id; those
        # changed and created (not inserted yet); entries created (journey, user,
        # entry_no) → [journey, user, entry_no, entered_at, goal_at, arm, holdout].
        self._seen: dict[int, Instance] = {}
        self._dirty: dict[int, Instance] = {}
        self._new: dict[int, Instance] = {}
        self._ids: list[int] = []  # ids taken from the sequence, not handed out yet
        self._block = 8
        self._entries: dict[tuple[str, str, int], list[Any]] = {}
        # Per user read in this unit: the instances live when read, and those created
        # since (their status says which still are); the latest entry per journey as
        # [journey, user, entry_no, entered_at, goal_at] (+ [arm, holdout] when new).
        self._live: dict[str, list[Instance]] = {}
        self._last: dict[str, dict[str, list[Any]]] = {}
        self._outbox: list[tuple[Any, ...]] = []
        self._goals: list[tuple[int, str, str, int]] = []
        self._arms: list[tuple[str | None, str, str, int]] = []
        self._parts: list[int] | None = None  # only(): the partitions worked on

    @property
    def scratch(self) -> bool:
        """Never: every row is written (``hold`` is the SQLite store's)."""
        return False

    # ------------------------------------------------------------ the unit's lifecycle

    def _track(self, rows: Iterable[tuple[Any, ...]]) -> list[Instance]:
        out = []
        for row in rows:
            inst = self._seen.get(row[0])
            if inst is None:
                inst = self._seen[row[0]] = _instance(row)
            out.append(inst)
        return out

    def flush(self) -> None:
        """Write every changed and new instance, new entry and queued outbox row.

        The table holds live instances only: one that ended is deleted, and one that
        ended before it was written is never inserted."""
        if not (
            self._dirty or self._new or self._entries or self._goals or self._arms or self._outbox
        ):
            return  # the engine asks often (due(), next_wake()): no round trip then
        with self._store.writing() as conn:
            # Changed rows first: an instance that ended frees its (journey, user) slot
            # in the one-live-instance index before a new instance of the pair goes in.
            if self._dirty:
                changed: list[Instance] = []
                ended: list[int] = []
                for i in self._dirty.values():
                    if i.id not in self._new:
                        if i.status in LIVE:
                            changed.append(i)
                        else:
                            ended.append(i.id)
                if ended:
                    conn.execute("DELETE FROM instances WHERE id = ANY(%s::bigint[])", (ended,))
                if changed:
                    self._update(conn, changed)
                self._dirty.clear()
            if self._new:
                self._insert(conn, [i for i in self._new.values() if i.status in LIVE])
                self._new.clear()
            if self._entries:
                rows = list(self._entries.values())
                conn.execute(
                    "INSERT INTO entries (journey_id, user_id, entry_no, entered_at, goal_at,"
                    " arm, holdout) SELECT * FROM unnest(%s::text[], %s::text[],"
                    " %s::integer[], %s::bigint[], %s::bigint[], %s::text[], %s::boolean[])",
                    [[r[k] for r in rows] for k in range(7)],
                )
                self._entries.clear()
            self._flush_entry_updates(conn)
            if self._outbox:
                sends = self._outbox
                # In the given order: of two rows with one key, the first is kept (as
                # SQLite's executemany keeps it).
                conn.execute(
                    "INSERT INTO outbox (key, instance_id, journey_id, user_id, step, channel,"
                    " message, content, status, next_attempt_at, created_at, error)"
                    " SELECT k, i, j, u, s, c, m, t::jsonb, st, n, a, e FROM unnest("
                    "%s::text[], %s::bigint[], %s::text[], %s::text[], %s::text[], %s::text[],"
                    " %s::text[], %s::text[], %s::text[], %s::bigint[], %s::bigint[], %s::text[])"
                    " WITH ORDINALITY AS v (k, i, j, u, s, c, m, t, st, n, a, e, o) ORDER BY o"
                    " ON CONFLICT (key) DO NOTHING",
                    [[r[k] for r in sends] for k in range(12)],
                )
                self._outbox = []

    @staticmethod
    def _update(conn: Connection, instances: list[Instance]) -> None:
        conn.execute(
            "UPDATE instances AS i SET node = v.node, status = v.status, wake_at = v.wake,"
            " waiting_for = v.waiting, vars = v.vars::jsonb, arm = v.arm"
            " FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::bigint[], %s::text[],"
            " %s::text[], %s::text[]) AS v (id, node, status, wake, waiting, vars, arm)"
            " WHERE i.id = v.id",
            (
                [i.id for i in instances],
                [i.node for i in instances],
                [i.status for i in instances],
                [i.wake_at for i in instances],
                [i.waiting_for for i in instances],
                [dumps(i.vars) for i in instances],
                [i.arm for i in instances],
            ),
        )

    @staticmethod
    def _insert(conn: Connection, instances: list[Instance]) -> None:
        if not instances:
            return
        conn.execute(
            "INSERT INTO instances (id, journey_id, version, user_id, entry_no, node, status,"
            " entered_at, wake_at, waiting_for, vars, arm, holdout)"
            " SELECT i, j, v, u, e, n, s, a, w, f, x::jsonb, r, h FROM unnest(%s::bigint[],"
            " %s::text[], %s::text[], %s::text[], %s::integer[], %s::text[], %s::text[],"
            " %s::bigint[], %s::bigint[], %s::text[], %s::text[], %s::text[], %s::boolean[])"
            " AS t (i, j, v, u, e, n, s, a, w, f, x, r, h)",
            (
                [i.id for i in instances],
                [i.journey_id for i in instances],
                [i.version for i in instances],
                [i.user_id for i in instances],
                [i.entry_no for i in instances],
                [i.node for i in instances],
                [i.status for i in instances],
                [i.entered_at for i in instances],
                [i.wake_at for i in instances],
                [i.waiting_for for i in instances],
                [dumps(i.vars) for i in instances],
                [i.arm for i in instances],
                [i.holdout for i in instances],
            ),
        )

    def _flush_entry_updates(self, conn: Connection) -> None:
        if self._goals:
            goals, self._goals = self._goals, []
            conn.execute(
                "UPDATE entries AS e SET goal_at = v.at FROM unnest(%s::bigint[], %s::text[],"
                " %s::text[], %s::integer[]) AS v (at, j, u, n)"
                " WHERE e.journey_id = v.j AND e.user_id = v.u AND e.entry_no = v.n",
                [[g[k] for g in goals] for k in range(4)],
            )
        if self._arms:
            arms, self._arms = self._arms, []
            conn.execute(
                "UPDATE entries AS e SET arm = v.arm FROM unnest(%s::text[], %s::text[],"
                " %s::text[], %s::integer[]) AS v (arm, j, u, n)"
                " WHERE e.journey_id = v.j AND e.user_id = v.u AND e.entry_no = v.n",
                [[a[k] for a in arms] for k in range(4)],
            )

    def end(self) -> None:
        """End a unit of work: write it, and forget the instances read, so the next
        unit reads them afresh."""
        self.flush()
        self._forget()

    def hold(self, scratch: bool = False) -> None:
        """Not on PostgreSQL: raises :class:`StoreError`."""
        raise StoreError(
            "a PostgreSQL store cannot hold the engine's rows in memory (hold()): that"
            " mode is for the only writer of a store of its own (the simulator, on a"
            " SQLite store), and a PostgreSQL store is shared by several workers;"
            " simulate into a SQLite store, or run the engine live (hold=False)"
        )

    def forget(self) -> None:
        """Write everything and forget every row read (the same as :meth:`end`)."""
        self.end()

    def discard(self) -> None:
        """Drop the unit of work unwritten (its transaction was rolled back)."""
        self._dirty.clear()
        self._new.clear()
        self._entries.clear()
        self._outbox.clear()
        self._goals.clear()
        self._arms.clear()
        self._forget()

    def _forget(self) -> None:
        self._seen.clear()
        self._live.clear()
        self._last.clear()
        # Ids not handed out are dropped: a later unit (or another worker) may have
        # taken higher ones meanwhile, and ids grow in the order instances are made.
        self._ids.clear()
        self._block = 8

    # ------------------------------------------------------------ journeys

    def deploy(self, journey_id: str, version: str, ir_json: str, source: str, at_ms: int) -> None:
        """Record a journey version as deployed and make it the active one."""
        with self._store.writing() as conn:
            conn.execute(
                "UPDATE journeys SET active = false WHERE id = %s AND version <> %s",
                (journey_id, version),
            )
            conn.execute(
                "INSERT INTO journeys (id, version, ir, source, deployed_at, active)"
                " VALUES (%s, %s, %s, %s, %s, true)"
                " ON CONFLICT (id, version) DO UPDATE SET active = true",
                (journey_id, version, ir_json, source, at_ms),
            )

    def retire_except(self, journey_ids: list[str]) -> None:
        """Mark journeys that left the project inactive (their users in flight finish)."""
        with self._store.writing() as conn:
            conn.execute(
                "UPDATE journeys SET active = false WHERE active AND NOT id = ANY(%s::text[])",
                (journey_ids,),
            )

    def upgrade(self, journey_id: str, version: str, nodes: list[str]) -> int:
        """Move live instances of a journey to ``version`` where their node is in
        ``nodes``; return how many moved."""
        self.flush()
        self._forget()  # the instances moved change version
        with self._store.writing() as conn:
            cur = conn.execute(
                "UPDATE instances SET version = %s WHERE journey_id = %s AND version <> %s"
                f" AND status IN {_LIVE} AND node = ANY(%s::text[])",
                (version, journey_id, version, nodes),
            )
            return cur.rowcount

    def journey_ir(self, journey_id: str, version: str) -> str | None:
        """The IR (JSON) of one deployed journey version, None when never deployed."""
        with self._store.connection() as conn:
            row = conn.execute(
                "SELECT ir FROM journeys WHERE id = %s AND version = %s", (journey_id, version)
            ).fetchone()
        return None if row is None else str(row[0])

    def versions(self) -> list[tuple[str, str, str, bool]]:
        """Every deployed (id, version, ir JSON, active), by id (then as deployed)."""
        with self._store.connection() as conn:
            rows = conn.execute(
                'SELECT id, version, ir, active FROM journeys ORDER BY id COLLATE "C",'
                ' deployed_at, version COLLATE "C"'
            ).fetchall()
        return [(r[0], r[1], r[2], bool(r[3])) for r in rows]

    # ------------------------------------------------------------ instances

    def only(self, parts: Sequence[int] | None) -> None:
        """Work on the users of ``parts`` only: :meth:`due` and :meth:`next_wake` select
        those partitions' instances (None: every user)."""
        if parts is None:
            self._parts = None
            return
        bad = [p for p in parts if not (isinstance(p, int) and 0 <= p < PARTITIONS)]
        if bad:
            raise StoreError(f"only(): {bad[0]!r} is no partition (they are 0 to {PARTITIONS - 1})")
        self._parts = sorted(set(parts))

    def _user_live(self, user_id: str) -> list[Instance]:
        known = self._live.get(user_id)
        if known is None:
            self._read_live([user_id])
            known = self._live[user_id]
        return known

    def prefetch(self, user_ids: Iterable[str]) -> None:
        """Read the live instances and latest entries of the users not read yet in
        this unit: two queries for all of them."""
        users = list(dict.fromkeys(user_ids))
        self._read_live([u for u in users if u not in self._live])
        self._read_entries([u for u in users if u not in self._last])

    def _read_live(self, users: list[str]) -> None:
        """Fill ``_live`` for ``users`` (none of them known yet)."""
        if not users:
            return
        live: dict[str, list[Instance]] = {u: [] for u in users}
        with self._store.connection() as conn:
            rows = conn.execute(
                f"SELECT {_INSTANCE_COLS} FROM instances WHERE user_id = ANY(%s::text[])"
                f" AND status IN {_LIVE} ORDER BY id",
                (users,),
            ).fetchall()
        for inst in self._track(rows):
            live[inst.user_id].append(inst)
        self._live.update(live)

    def _read_entries(self, users: list[str]) -> None:
        """Fill ``_last`` for ``users`` (none of them known yet)."""
        if not users:
            return
        if self._goals or self._arms:
            with self._store.writing() as conn:
                self._flush_entry_updates(conn)  # what the table says must be current
        with self._store.connection() as conn:
            rows = conn.execute(
                "SELECT DISTINCT ON (user_id, journey_id) journey_id, user_id, entry_no,"
                " entered_at, goal_at FROM entries WHERE user_id = ANY(%s::text[])"
                " ORDER BY user_id, journey_id, entry_no DESC",
                (users,),
            ).fetchall()
        last: dict[str, dict[str, list[Any]]] = {u: {} for u in users}
        for jid, user, no, at, goal in rows:
            last[user][jid] = [jid, user, int(no), int(at), goal]
        self._last.update(last)

    def live(self, user_id: str) -> list[Instance]:
        """The user's running instances, in the order they were created."""
        live = [i for i in self._user_live(user_id) if i.status in LIVE]
        live.sort(key=lambda i: i.id)
        return live

    def live_in(self, journey_id: str, user_id: str) -> Instance | None:
        """The user's running instance of a journey, if any."""
        for i in self._user_live(user_id):
            if i.journey_id == journey_id and i.status in LIVE:
                return i
        return None

    def _in_parts(self) -> tuple[str, tuple[list[int], ...]]:
        """The condition (and its parameter) selecting the partitions of only()."""
        if self._parts is None:
            return "", ()
        return " AND part = ANY(%s::smallint[])", (self._parts,)

    def due(self, now_ms: int, limit: int) -> list[Instance]:
        """Waiting instances whose timer is due, earliest first (then oldest), of the
        partitions of :meth:`only`. The caller runs each one, or hands those it
        leaves to :meth:`rearm`."""
        self.flush()  # the query must not return instances already moved on
        where, parts = self._in_parts()
        with self._store.connection() as conn:
            rows = conn.execute(
                f"SELECT {_INSTANCE_COLS} FROM instances WHERE status = 'waiting'"
                f" AND wake_at <= %s{where} ORDER BY wake_at, id LIMIT %s",
                (now_ms, *parts, limit),
            ).fetchall()
        return self._track(rows)

    def rearm(self, instances: Iterable[Instance]) -> None:
        """Give back instances :meth:`due` returned that the caller did not run: their
        rows still say they are due, and the next :meth:`due` reads them again."""

    def next_wake(self) -> int | None:
        """The earliest pending timer of the partitions of :meth:`only`."""
        self.flush()
        where, parts = self._in_parts()
        with self._store.connection() as conn:
            row = conn.execute(
                f"SELECT min(wake_at) FROM instances WHERE status = 'waiting'{where}", parts
            ).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def _next_id(self) -> int:
        """An id no instance had: from the identity sequence (see the module's docstring)."""
        if not self._ids:
            with self._store.connection() as conn:
                rows = conn.execute(
                    "SELECT nextval(pg_get_serial_sequence('instances', 'id'))"
                    " FROM generate_series(1, %s)",
                    (self._block,),
                ).fetchall()
            self._ids = sorted((int(i) for (i,) in rows), reverse=True)
            self._block = min(2 * self._block, _ID_BLOCK)
        return self._ids.pop()

    def create(self, inst: Instance) -> Instance:
        """Add a new instance (its ``id`` is assigned) and its entry record; both are
        inserted at the unit's end, in their state then."""
        inst.id = self._next_id()
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
        """Mark an instance changed; it is written at the unit's end."""
        self._dirty[inst.id] = inst

    def merge_user(self, frm: str, into: str) -> list[Instance]:
        """Make ``frm``'s instances, entries and sends ``into``'s (an identity merge);
        the instances the caller ends as ``merged``. As the SQLite store's
        :meth:`~journeyc.store.sqlite.runtime.Runtime.merge_user`, whose docstring
        gives the rules."""
        self.flush()  # the tables hold every entry and instance
        theirs = [i for i in self._user_live(frm) if i.status in LIVE]
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
        with self._store.writing() as conn:
            # Rows of instances about to end go now: they would hold the (journey,
            # user) slot of the one-live-instance index that a moved instance takes.
            conn.execute(
                "DELETE FROM instances WHERE id = ANY(%s::bigint[])", ([i.id for i in dropped],)
            )
            top: dict[str, int] = {
                jid: int(no)
                for jid, no in conn.execute(
                    "SELECT journey_id, max(entry_no) FROM entries WHERE user_id = %s"
                    " GROUP BY journey_id",
                    (into,),
                ).fetchall()
            }
            numbers: dict[tuple[str, int], int] = {}
            for jid, no in conn.execute(
                "SELECT journey_id, entry_no FROM entries WHERE user_id = %s"
                ' ORDER BY journey_id COLLATE "C", entry_no',
                (frm,),
            ).fetchall():
                top[jid] = top.get(jid, 0) + 1
                numbers[(jid, int(no))] = top[jid]
            if numbers:
                moved = list(numbers.items())
                conn.execute(
                    "UPDATE entries AS e SET user_id = %s, entry_no = v.new"
                    " FROM unnest(%s::text[], %s::integer[], %s::integer[]) AS v (j, old, new)"
                    " WHERE e.journey_id = v.j AND e.user_id = %s AND e.entry_no = v.old",
                    (
                        into,
                        [jid for (jid, _), _ in moved],
                        [old for (_, old), _ in moved],
                        [new for _, new in moved],
                        frm,
                    ),
                )
            for inst in theirs:
                inst.user_id = into
                inst.entry_no = numbers[(inst.journey_id, inst.entry_no)]
            # The latest entry of each journey: the live instance's, else the one
            # entered last (of two entered at one instant, the higher number).
            ending = {i.id for i in dropped}
            last_entered: dict[str, tuple[int, int]] = {}
            for jid, no, at in conn.execute(
                "SELECT journey_id, entry_no, entered_at FROM entries WHERE user_id = %s",
                (into,),
            ).fetchall():
                last_entered[jid] = max(last_entered.get(jid, (at, no)), (at, no))
            for jid, (_, no) in sorted(last_entered.items()):
                stays = live.get(jid)  # the instance that goes on, if any
                latest = stays.entry_no if stays is not None else int(no)
                if latest != top.get(jid, latest):
                    top[jid] += 1
                    conn.execute(
                        "UPDATE entries SET entry_no = %s WHERE journey_id = %s"
                        " AND user_id = %s AND entry_no = %s",
                        (top[jid], jid, into, latest),
                    )
                    if stays is not None:
                        stays.entry_no = top[jid]
            kept = [i for i in [*mine, *theirs] if i.id not in ending]
            if kept:
                conn.execute(
                    "UPDATE instances AS i SET user_id = %s, entry_no = v.n"
                    " FROM unnest(%s::bigint[], %s::integer[]) AS v (id, n) WHERE i.id = v.id",
                    (into, [i.id for i in kept], [i.entry_no for i in kept]),
                )
            conn.execute("UPDATE outbox SET user_id = %s WHERE user_id = %s", (into, frm))
        self._live[into] = sorted(
            [*self._live.get(into, ()), *self._live.pop(frm, ())], key=lambda i: i.id
        )
        self._live[frm] = []
        self._last[frm] = {}
        self._last.pop(into, None)
        self._read_entries([into])
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

    # ------------------------------------------------------------ outbox and actions

    def sends_since(self, user_id: str, since_ms: int, journey_id: str | None) -> int:
        """Messages queued or sent to the user after ``since_ms`` (by one journey, or all)."""
        self.flush()
        query = (
            "SELECT count(*) FROM outbox WHERE user_id = %s AND created_at > %s"
            " AND status <> 'suppressed'"
        )
        with self._store.connection() as conn:
            if journey_id is None:
                row = conn.execute(query, (user_id, since_ms)).fetchone()
            else:
                row = conn.execute(
                    query + " AND journey_id = %s", (user_id, since_ms, journey_id)
                ).fetchone()
        return 0 if row is None else int(row[0])

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
        """Put a send (or its suppression) in the outbox, once per key; written at the
        unit's end."""
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

    def log_actions(self, rows: Iterable[tuple[int, str, str, str | None, str, str]]) -> None:
        """Append (at, user, journey, step, action, detail JSON) rows to the action log
        and add them to the reports' sums (``action_counts``), in one statement."""
        logged = list(rows)
        if not logged:
            return
        with self._store.writing() as conn:
            conn.execute(_LOG_ACTIONS, [[r[k] for r in logged] for k in range(6)])
