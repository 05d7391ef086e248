"""The event log read by partition, for engine workers sharing a PostgreSQL store
(:class:`journeyc.store.abc.PartitionLog`, :mod:`journeyc.store.partitions`).

Each partition ``p`` has a cursor of its own, the row ``engine/<p>`` of the cursor
table; a partition without one starts at the single engine's cursor (``engine``), so
a store one engine ran moves to several workers without replaying. The events of a
set of partitions past their cursors are one query: the log in seq order from the
lowest of their cursors, keeping each partition's events past its own cursor (a
worker advances its partitions' cursors together, so they are one value but right
after a takeover). Appends commit in seq order (the log's
advisory lock, :mod:`journeyc.store.postgres.store`), so a cursor never passes an
event that commits later.

The fence locks the worker's lease rows ``FOR SHARE`` in the caller's transaction: a
takeover (the ``UPDATE`` of :meth:`PostgresLeases.acquire
<journeyc.store.postgres.leases.PostgresLeases.acquire>`) waits until that
transaction ends, then sees whether the lease was renewed meanwhile. So does the
holder's own renewal from another connection: a batch must stay well within the
lease's time to live (and the store's lock timeout).
"""

from __future__ import annotations

from collections.abc import Sequence

from journeyc.store.partitions import PARTITIONS
from journeyc.store.postgres.leases import NOW_MS
from journeyc.store.postgres.schema import Connections
from journeyc.store.rows import StoredEvent

__all__ = ["ENGINE_CURSOR", "PostgresPartitionLog", "partition_cursor", "sorted_partitions"]

ENGINE_CURSOR = "engine"
"""The single engine's cursor (``journeyc.engine.core.CURSOR``): where a partition
without a cursor of its own starts."""

_EVENTS = (
    "SELECT e.seq, e.message_id, e.user_id, e.name, e.at, e.props, e.received_at"
    " FROM events AS e"
    # The log in seq order from the lowest of the partitions' cursors (one value, an
    # InitPlan: the primary key's range scan starts there) ...
    " WHERE e.seq > (SELECT min(coalesce(own.seq, engine.seq, 0))"
    "  FROM unnest(%(parts)b::smallint[]) AS p (part)"
    "  LEFT JOIN cursor AS own ON own.name = %(prefix)s::text || p.part"
    "  LEFT JOIN cursor AS engine ON engine.name = %(engine)s)"
    # ... keeping the events of these partitions past their own cursor (one key
    # lookup a row). A worker advances all its partitions' cursors together, so they
    # are one value but right after a takeover, and the scan reads no row twice; a
    # partition far behind costs reading the others' rows since its cursor, once. (A
    # LATERAL scan per partition read up to `limit` rows of each, 64 x the batch.)
    " AND e.part = ANY(%(parts)b::smallint[])"
    " AND e.seq > coalesce((SELECT c.seq FROM cursor AS c"
    "  WHERE c.name = %(prefix)s::text || e.part),"
    "  (SELECT c.seq FROM cursor AS c WHERE c.name = %(engine)s), 0)"
    " ORDER BY e.seq LIMIT %(limit)s"
)

_LAG = (
    "SELECT count(e.seq), min(e.received_at)"
    " FROM unnest(%(parts)b::smallint[]) AS p (part)"
    " LEFT JOIN cursor AS own ON own.name = %(prefix)s::text || p.part"
    " LEFT JOIN cursor AS engine ON engine.name = %(engine)s"
    " JOIN events AS e ON e.part = p.part AND e.seq > coalesce(own.seq, engine.seq, 0)"
)

_ADVANCE = (
    "INSERT INTO cursor (name, seq)"
    " SELECT %(prefix)s::text || p, greatest(%(seq)s,"
    "  coalesce((SELECT seq FROM cursor WHERE name = %(engine)s), 0))"
    " FROM unnest(%(parts)b::integer[]) AS p ORDER BY p"
    " ON CONFLICT (name) DO UPDATE SET seq = greatest(cursor.seq, %(seq)s)"
)

_FENCE = (
    "SELECT partition FROM leases WHERE worker_id = %s AND partition = ANY(%b)"
    f" AND expires_at > {NOW_MS} ORDER BY partition FOR SHARE"
)

_PARTITION_OF = f"SELECT ((hashtextextended(%s, 0) %% {PARTITIONS}) + {PARTITIONS}) %% {PARTITIONS}"
"""The expression of the ``part`` columns (migration 9), for one user id."""


_PREFIX = f"{ENGINE_CURSOR}/"


def partition_cursor(part: int) -> str:
    """The name of partition ``part``'s cursor in the cursor table."""
    return f"{_PREFIX}{part}"


def sorted_partitions(parts: Sequence[int]) -> list[int]:
    """``parts`` sorted, each once; a number that is no partition is a caller's bug."""
    wanted = sorted(set(parts))
    if wanted and (wanted[0] < 0 or wanted[-1] >= PARTITIONS):
        raise ValueError(f"partitions are 0 to {PARTITIONS - 1}, not {wanted}")
    return wanted


def filtered_partitions(parts: Sequence[int] | None) -> list[int] | None:
    """The partition filter of a read restricted to ``parts`` (an engine's
    ``only(parts)``): sorted, each once, and None (no filter) for None and for every
    partition, which is every user: the reads then use their plain indexes in order
    (a worker alone on its store holds them all)."""
    wanted = None if parts is None else sorted_partitions(parts)
    return None if wanted is not None and len(wanted) == PARTITIONS else wanted


class PostgresPartitionLog:
    """The log by partition over a :class:`~journeyc.store.postgres.store.PostgresStore`
    (:class:`~journeyc.store.abc.PartitionLog`)."""

    def __init__(self, store: Connections) -> None:
        self._store = store

    def events_after(self, parts: Sequence[int], limit: int = 1000) -> list[StoredEvent]:
        """Up to ``limit`` events of ``parts`` past each one's cursor, in log order."""
        wanted = sorted_partitions(parts)
        if not wanted or limit <= 0:
            return []
        with self._store.connection() as conn:
            rows = conn.execute(
                _EVENTS,
                {
                    "parts": wanted,
                    "prefix": _PREFIX,
                    "engine": ENGINE_CURSOR,
                    "limit": limit,
                },
            ).fetchall()
        return [StoredEvent(*row) for row in rows]

    def advance(self, parts: Sequence[int], seq: int) -> None:
        """Move each of ``parts``' cursors to ``seq`` unless past it (one statement)."""
        wanted = sorted_partitions(parts)
        if not wanted:
            return
        with self._store.writing() as conn:
            conn.execute(
                _ADVANCE,
                {
                    "parts": wanted,
                    "prefix": _PREFIX,
                    "engine": ENGINE_CURSOR,
                    "seq": seq,
                },
            )

    def fence(self, worker_id: str, parts: Sequence[int]) -> list[int]:
        """Those of ``parts`` the worker holds unexpired leases of, locked ``FOR
        SHARE`` until the caller's transaction ends (outside one: not at all)."""
        wanted = sorted_partitions(parts)
        if not wanted:
            return []
        with self._store.writing() as conn:
            rows = conn.execute(_FENCE, (worker_id, wanted)).fetchall()
        return [int(p) for (p,) in rows]

    def lag(self, parts: Sequence[int]) -> tuple[int, int | None]:
        """The events of ``parts`` past their cursors (not handled yet), and when the
        oldest of them was received (None: none waits)."""
        wanted = sorted_partitions(parts)
        if not wanted:
            return 0, None
        with self._store.connection() as conn:
            row = conn.execute(
                _LAG, {"parts": wanted, "prefix": _PREFIX, "engine": ENGINE_CURSOR}
            ).fetchone()
        assert row is not None  # an aggregate has its row
        return int(row[0]), None if row[1] is None else int(row[1])

    def partition_of(self, user_id: str) -> int:
        """The partition the database puts ``user_id``'s rows in."""
        with self._store.connection() as conn:
            row = conn.execute(_PARTITION_OF, (user_id,)).fetchone()
        assert row is not None  # a SELECT without FROM has its row
        return int(row[0])
