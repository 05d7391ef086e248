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

An identity merge may move another worker's instances: the alias is handled by the
worker of the known user's partition, while the worker of the merged user's partition
may be running that user's timers (its ``due()`` read the rows without a lock; it writes
them back at the end of its batch). Row locks order the two transactions; two rules
make either order come out as one engine would have done it (the merge first, or the
timers first), never as a mix:

- the merge reads the merged user's live instances afresh and ``FOR UPDATE``
  (:meth:`PostgresRuntime._live_to_merge`): it waits for a batch that has written
  them, then merges what that batch left (an instance it ended no longer counts);
- a unit writes an instance back only while it is still the user's it read
  (``user_id`` in the ``WHERE``), and fails with :class:`StoreConflictError` when
  one moved or is gone (another worker ran or ended it): nothing of its batch is
  written (its sends were made for the user the instance no longer is), and its
  retry no longer finds the instance among its partitions' timers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from journeyc.fastjson import dumps
from journeyc.store.errors import StoreConflictError, StoreError
from journeyc.store.partitions import PARTITIONS
from journeyc.store.postgres.action_counts import HOUR_MS, LABEL
from journeyc.store.postgres.partition_log import filtered_partitions
from journeyc.store.postgres.schema import Connection, Connections
from journeyc.store.rows import Instance
from journeyc.store.unit_of_work import INSTANCE_COLS, LIVE, UnitRows

__all__ = ["PostgresRuntime"]

_LIVE = "('active', 'waiting')"
_INSTANCE_COLS = INSTANCE_COLS.replace("vars", "vars::text")
_ID_BLOCK = 1024
"""The most instance ids one unit takes from the sequence at a time (it starts with
:data:`_ID_FIRST_BLOCK` and doubles)."""
_ID_FIRST_BLOCK = 8
"""The fewest ids a unit takes first. It takes as many as the last unit used (to the
next power of two), or half the last unit's first block: under a steady load a batch
takes its ids in one round trip (a batch of 50 events entering two journeys took
four, from 8 doubling), and ids not
handed out are dropped, which a ``bigint`` sequence affords. Each id is a ``nextval``
(about 4 µs of the server's), so a unit takes no more than it is likely to use."""

# Actions logged and summed into the reports' action_counts in one statement: the sums
# are of exactly the rows this statement inserted, whatever other workers log meanwhile.
# They go in as delta rows (schema v11): no key, so no worker waits for another's
# commit to add to the same hour's sums; the daemon folds them (PostgresUpkeep).
_LOG_ACTIONS = (
    "WITH logged AS (INSERT INTO actions (at, user_id, journey_id, step, action, detail)"
    " SELECT a, u, j, s, n, d::jsonb FROM unnest(%b::bigint[], %b::text[], %b::text[],"
    " %b::text[], %b::text[], %b::text[]) WITH ORDINALITY AS t (a, u, j, s, n, d, o)"
    " ORDER BY o RETURNING at, journey_id, step, action, detail)"
    " INSERT INTO action_counts_deltas (journey_id, hour, step, action, label, n)"
    f" SELECT journey_id, at / {HOUR_MS:d}, coalesce(step, ''), action, {LABEL}, count(*)"
    " FROM logged WHERE journey_id IS NOT NULL GROUP BY 1, 2, 3, 4, 5"
)


def _unmoved(written: int, meant: int) -> None:
    """Check that a write of ``meant`` instances by id and user wrote them all: one
    moved to another user, or gone, was changed by another worker since this unit
    read it (see the module's docstring)."""
    if written != meant:
        raise StoreConflictError(
            f"{meant - written} of the {meant} instances an engine batch wrote back had"
            " moved to another user or ended since it read them (another worker's"
            " identity merge or timer)"
        )


def _columns(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    """The first ``width`` values of ``rows`` column by column: the arrays of an
    ``unnest``."""
    return [[row[k] for row in rows] for k in range(width)]


def _fields(instances: Sequence[Instance], names: str) -> list[list[Any]]:
    """The instances' fields ``names`` (space separated) column by column, ``vars``
    as JSON text."""
    return [
        [dumps(i.vars) if name == "vars" else getattr(i, name) for i in instances]
        for name in names.split()
    ]


class PostgresRuntime(UnitRows):
    """The engine's queries and writes over a PostgreSQL store; callers hold the
    transaction (:meth:`PostgresStore.transaction`)."""

    def __init__(self, store: Connections) -> None:
        super().__init__()  # the unit's rows (see the module's docstring)
        self._store = store
        self._ids: list[int] = []  # ids taken from the sequence, not handed out yet
        self._block = self._first = _ID_FIRST_BLOCK
        self._taken = 0  # ids this unit took from the sequence
        self._parts: list[int] | None = None  # only(): the partitions worked on
        self._gone: set[int] = set()  # instances whose rows this unit deleted already

    @property
    def scratch(self) -> bool:
        """Never: every row is written (``hold`` is the SQLite store's)."""
        return False

    # ------------------------------------------------------------ the unit's lifecycle

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
                ended: list[Instance] = []
                for i in self._dirty.values():
                    if i.id not in self._new:
                        if i.status in LIVE:
                            changed.append(i)
                        elif i.id not in self._gone:  # not dropped by a merge already
                            ended.append(i)
                if ended:
                    # By the primary key (`id = ANY`), then the pairs: a join with
                    # `unnest` was planned as a scan of the table (6 ms a batch).
                    ids, users = _fields(ended, "id user_id")
                    cur = conn.execute(
                        "DELETE FROM instances WHERE id = ANY(%b::bigint[]) AND (id, user_id)"
                        " IN (SELECT * FROM unnest(%b::bigint[], %b::text[]))",
                        (ids, ids, users),
                    )
                    _unmoved(cur.rowcount, len(ended))
                if changed:
                    self._update(conn, changed)
                self._dirty.clear()
            # The rest returns nothing the unit reads: its statements go out in one
            # pipeline, one round trip to the server instead of one each (under load
            # on a small machine each round trip may also wait for the CPU).
            with conn.pipeline():
                self._write_new(conn)

    def _write_new(self, conn: Connection) -> None:
        """The flush's inserts and entry updates (see :meth:`flush`)."""
        if self._new:
            self._insert(conn, [i for i in self._new.values() if i.status in LIVE])
            self._new.clear()
        if self._entries:
            rows = list(self._entries.values())
            conn.execute(
                "INSERT INTO entries (journey_id, user_id, entry_no, entered_at, goal_at,"
                " arm, holdout) SELECT * FROM unnest(%b::text[], %b::text[],"
                " %b::integer[], %b::bigint[], %b::bigint[], %b::text[], %b::boolean[])",
                _columns(rows, 7),
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
                "%b::text[], %b::bigint[], %b::text[], %b::text[], %b::text[], %b::text[],"
                " %b::text[], %b::text[], %b::text[], %b::bigint[], %b::bigint[], %b::text[])"
                " WITH ORDINALITY AS v (k, i, j, u, s, c, m, t, st, n, a, e, o) ORDER BY o"
                " ON CONFLICT (key) DO NOTHING",
                _columns(sends, 12),
            )
            self._outbox = []

    @staticmethod
    def _update(conn: Connection, instances: list[Instance]) -> None:
        cur = conn.execute(
            "UPDATE instances AS i SET node = v.node, status = v.status, wake_at = v.wake,"
            " waiting_for = v.waiting, vars = v.vars::jsonb, arm = v.arm"
            " FROM unnest(%b::bigint[], %b::text[], %b::text[], %b::text[], %b::bigint[],"
            " %b::text[], %b::text[], %b::text[])"
            " AS v (id, u, node, status, wake, waiting, vars, arm)"
            " WHERE i.id = v.id AND i.user_id = v.u",
            _fields(instances, "id user_id node status wake_at waiting_for vars arm"),
        )
        _unmoved(cur.rowcount, len(instances))

    @staticmethod
    def _insert(conn: Connection, instances: list[Instance]) -> None:
        if not instances:
            return
        conn.execute(
            "INSERT INTO instances (id, journey_id, version, user_id, entry_no, node, status,"
            " entered_at, wake_at, waiting_for, vars, arm, holdout)"
            " SELECT i, j, v, u, e, n, s, a, w, f, x::jsonb, r, h FROM unnest(%b::bigint[],"
            " %b::text[], %b::text[], %b::text[], %b::integer[], %b::text[], %b::text[],"
            " %b::bigint[], %b::bigint[], %b::text[], %b::text[], %b::text[], %b::boolean[])"
            " AS t (i, j, v, u, e, n, s, a, w, f, x, r, h)",
            _fields(instances, INSTANCE_COLS.replace(",", "")),
        )

    def _flush_entry_updates(self, conn: Connection) -> None:
        if self._goals:
            goals, self._goals = self._goals, []
            conn.execute(
                "UPDATE entries AS e SET goal_at = v.at FROM unnest(%b::bigint[], %b::text[],"
                " %b::text[], %b::integer[]) AS v (at, j, u, n)"
                " WHERE e.journey_id = v.j AND e.user_id = v.u AND e.entry_no = v.n",
                _columns(goals, 4),
            )
        if self._arms:
            # The last arm of each entry (an entry may pass several splits in a unit):
            # an UPDATE ... FROM with two rows for one target applies an arbitrary one.
            arms = list({(a[1], a[2], a[3]): a for a in self._arms}.values())
            self._arms = []
            conn.execute(
                "UPDATE entries AS e SET arm = v.arm FROM unnest(%b::text[], %b::text[],"
                " %b::text[], %b::integer[]) AS v (arm, j, u, n)"
                " WHERE e.journey_id = v.j AND e.user_id = v.u AND e.entry_no = v.n",
                _columns(arms, 4),
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

    def _forget(self) -> None:
        super()._forget()
        # Ids not handed out are dropped: a later unit (or another worker) may have
        # taken higher ones meanwhile, and ids grow in the order instances are made.
        # The next unit's first block: what this one used, to the next power of two,
        # or half the last first block (a unit of timers, which makes no instance, in
        # between units of events does not send the next back to 8).
        used = self._taken - len(self._ids)
        wanted = max(1 << max(used - 1, 0).bit_length(), self._first // 2, _ID_FIRST_BLOCK)
        self._block = self._first = min(wanted, _ID_BLOCK)
        self._ids.clear()
        self._taken = 0
        self._gone.clear()

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
                "UPDATE journeys SET active = false WHERE active AND NOT id = ANY(%b::text[])",
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
                f" AND status IN {_LIVE} AND node = ANY(%b::text[])",
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
        bad = [p for p in parts or () if not (isinstance(p, int) and 0 <= p < PARTITIONS)]
        if bad:
            raise StoreError(f"only(): {bad[0]!r} is no partition (they are 0 to {PARTITIONS - 1})")
        self._parts = filtered_partitions(parts)

    def _read_live(self, users: list[str], *, lock: bool = False) -> None:
        """Fill ``_live`` for ``users`` (none of them known yet; with ``lock``, read
        afresh and locked until the transaction ends, see :meth:`_live_to_merge`)."""
        if not users:
            return
        live: dict[str, list[Instance]] = {u: [] for u in users}
        with self._store.connection() as conn:
            rows = conn.execute(
                f"SELECT {_INSTANCE_COLS} FROM instances WHERE user_id = ANY(%b::text[])"
                f" AND status IN {_LIVE} ORDER BY id{' FOR UPDATE' if lock else ''}",
                (users,),
            ).fetchall()
        for inst in self._track(rows, fresh=lock):
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
                " entered_at, goal_at FROM entries WHERE user_id = ANY(%b::text[])"
                " ORDER BY user_id, journey_id, entry_no DESC",
                (users,),
            ).fetchall()
        last: dict[str, dict[str, list[Any]]] = {u: {} for u in users}
        for jid, user, no, at, goal in rows:
            last[user][jid] = [jid, user, int(no), int(at), goal]
        self._last.update(last)

    def due(self, now_ms: int, limit: int) -> list[Instance]:
        """Waiting instances whose timer is due, earliest first (then oldest), of the
        partitions of :meth:`only`. The caller runs each one, or hands those it
        leaves to :meth:`rearm`."""
        self.flush()  # the query must not return instances already moved on
        with self._store.connection() as conn:
            if self._parts is None:
                rows = conn.execute(
                    f"SELECT {_INSTANCE_COLS} FROM instances WHERE status = 'waiting'"
                    " AND wake_at <= %s ORDER BY wake_at, id LIMIT %s",
                    (now_ms, limit),
                ).fetchall()
            else:
                # Per partition, its (part, wake_at) index in order up to the limit,
                # then the earliest of those: bounded work however many are due (one
                # `part = ANY` scan read every due row and sorted them).
                rows = conn.execute(
                    f"SELECT {_INSTANCE_COLS} FROM unnest(%b::smallint[]) AS p (p)"
                    f" CROSS JOIN LATERAL (SELECT {_INSTANCE_COLS} FROM instances"
                    " WHERE part = p.p AND status = 'waiting' AND wake_at <= %s"
                    " ORDER BY wake_at, id LIMIT %s) AS i ORDER BY wake_at, id LIMIT %s",
                    (self._parts, now_ms, limit, limit),
                ).fetchall()
        return self._track(rows)

    def rearm(self, instances: Iterable[Instance]) -> None:
        """Give back instances :meth:`due` returned that the caller did not run: their
        rows still say they are due, and the next :meth:`due` reads them again."""

    def next_wake(self) -> int | None:
        """The earliest pending timer of the partitions of :meth:`only`."""
        self.flush()
        with self._store.connection() as conn:
            if self._parts is None:
                row = conn.execute(
                    "SELECT min(wake_at) FROM instances WHERE status = 'waiting'"
                ).fetchone()
            else:
                row = conn.execute(  # one probe of (part, wake_at) per partition
                    "SELECT min(w) FROM unnest(%b::smallint[]) AS p (p) CROSS JOIN LATERAL"
                    " (SELECT wake_at AS w FROM instances WHERE part = p.p"
                    " AND status = 'waiting' ORDER BY wake_at LIMIT 1) AS i",
                    (self._parts,),
                ).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def _new_id(self) -> int:
        """An id no instance had: from the identity sequence (see the module's docstring)."""
        if not self._ids:
            with self._store.connection() as conn:
                rows = conn.execute(
                    "SELECT nextval(pg_get_serial_sequence('instances', 'id'))"
                    " FROM generate_series(1, %s)",
                    (self._block,),
                ).fetchall()
            self._ids = sorted((int(i) for (i,) in rows), reverse=True)
            self._taken += len(self._ids)
            self._block = min(2 * self._block, _ID_BLOCK)
        return self._ids.pop()

    # The identity merge's statements (UnitRows.merge_user has its rules).
    def _delete_instances(self, ids: list[int]) -> None:
        with self._store.writing() as conn:
            conn.execute("DELETE FROM instances WHERE id = ANY(%b::bigint[])", (ids,))
        self._gone.update(ids)

    def _live_to_merge(self, user_id: str) -> list[Instance]:
        """The merged user's live instances read afresh and locked until the merge
        commits: the worker of that user's partition may have run them meanwhile
        (see the module's docstring). A batch of its that wrote them is waited for
        and its outcome merged; one that has not written them yet finds them moved
        when it does."""
        self._read_live([user_id], lock=True)
        return list(self._live[user_id])

    def _entry_numbers(self, user_id: str) -> list[tuple[str, int, int]]:
        with self._store.connection() as conn:
            rows = conn.execute(
                "SELECT journey_id, entry_no, entered_at FROM entries WHERE user_id = %s"
                ' ORDER BY journey_id COLLATE "C", entry_no',
                (user_id,),
            ).fetchall()
        return [(str(j), int(n), int(a)) for j, n, a in rows]

    def _renumber_entries(self, into: str, moves: list[tuple[str, str, int, int]]) -> None:
        if not moves:
            return
        with self._store.writing() as conn:
            conn.execute(
                "UPDATE entries AS e SET user_id = %s, entry_no = v.new FROM unnest(%b::text[],"
                " %b::text[], %b::integer[], %b::integer[]) AS v (u, j, old, new)"
                " WHERE e.journey_id = v.j AND e.user_id = v.u AND e.entry_no = v.old",
                (into, *_columns(moves, 4)),
            )

    def _move_instances(self, into: str, instances: list[Instance]) -> None:
        if not instances:
            return
        with self._store.writing() as conn:
            conn.execute(
                "UPDATE instances AS i SET user_id = %s, entry_no = v.n"
                " FROM unnest(%b::bigint[], %b::integer[]) AS v (id, n) WHERE i.id = v.id",
                (into, [i.id for i in instances], [i.entry_no for i in instances]),
            )

    def _move_sends(self, frm: str, into: str) -> None:
        with self._store.writing() as conn:
            conn.execute("UPDATE outbox SET user_id = %s WHERE user_id = %s", (into, frm))

    def _read_entries_of(self, user_id: str) -> None:
        self._read_entries([user_id])

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

    def log_actions(self, rows: Iterable[tuple[int, str, str, str | None, str, str]]) -> None:
        """Append (at, user, journey, step, action, detail JSON) rows to the action log
        and add them to the reports' sums (``action_counts``), in one statement."""
        logged = list(rows)
        if not logged:
            return
        with self._store.writing() as conn:
            conn.execute(_LOG_ACTIONS, _columns(logged, 6))
