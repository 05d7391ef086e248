"""The reads of replaying one user (``journeyc why``) in PostgreSQL (see
:class:`journeyc.store.abc.ReplayReads` and :mod:`journeyc.store.sqlite.replays`, whose
rules these follow).

:meth:`PostgresReplayReads.snapshot` makes every read of the store in the calling
thread, these and the store's own (identities, settings, deployments), see one
``REPEATABLE READ READ ONLY`` snapshot for the block, while the engine goes on writing:
the events and the recorded actions a replay is compared with are of one moment.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Protocol

from journeyc.events import Event
from journeyc.store.postgres.schema import Connection, Connections
from journeyc.store.rows import DeployedJourney, RecordedAction, RecordedSegmentChange
from journeyc.store.sqlite.replays import event_of, traits_before

__all__ = ["PostgresReplayReads", "Snapshots"]


class Snapshots(Connections, Protocol):
    """What the replay reads need of the store: its connections, and a block in which
    the thread reads one snapshot."""

    def snapshot(self) -> AbstractContextManager[Connection]:
        """A block in which this thread's reads see one snapshot (inside a
        transaction: that one)."""
        ...


class PostgresReplayReads:
    """:class:`journeyc.store.abc.ReplayReads` over one PostgreSQL store."""

    def __init__(self, store: Snapshots) -> None:
        self._store = store

    def _all(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._store.connection() as conn:
            return conn.execute(sql, params).fetchall()

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Read the store at one moment for the block (a ``REPEATABLE READ READ ONLY``
        transaction this thread's reads of the store run in; a writer goes on
        meanwhile). Inside a transaction already: that one."""
        with self._store.snapshot():
            yield

    def is_known(self, user_id: str) -> bool:
        """Whether the store knows the user (a profile row, or an event logged for them)."""
        rows = self._all(
            "SELECT EXISTS (SELECT 1 FROM profiles WHERE user_id = %s)"
            " OR EXISTS (SELECT 1 FROM events WHERE user_id = %s)",
            (user_id, user_id),
        )
        return bool(rows[0][0])

    def user_events(self, ids: list[str]) -> list[Event]:
        """Every event logged under ``ids``, in log order, as the engine read them (the
        ``kind`` from the name)."""
        rows = self._all(
            "SELECT message_id, user_id, name, at, props, received_at FROM events"
            " WHERE user_id = ANY(%b) ORDER BY seq",
            (list(ids),),
        )
        return [event_of(*row) for row in rows]

    def profile_before(self, ids: list[str], before_ms: int) -> dict[str, dict[str, Any]]:
        """Per id, the traits of its profile last written before ``before_ms``, not
        those a call's context filled in (see
        :func:`journeyc.store.sqlite.replays.profile_before`)."""
        rows = self._all(
            "SELECT user_id, traits, trait_at FROM profiles WHERE user_id = ANY(%b)"
            ' ORDER BY user_id COLLATE "C"',
            (list(ids),),
        )
        return traits_before(((u, t, w) for u, t, w in rows), before_ms)

    def deployed_versions(self) -> list[DeployedJourney]:
        """Every journey version deployed, in the order of deployment (then id)."""
        rows = self._all(
            "SELECT id, version, ir, deployed_at, active FROM journeys"
            ' ORDER BY deployed_at, id COLLATE "C"'
        )
        return [DeployedJourney(str(j), str(v), str(i), int(d), bool(a)) for j, v, i, d, a in rows]

    def recorded_actions(self, ids: list[str]) -> list[RecordedAction]:
        """The action log's rows of ``ids``, in the order they were logged."""
        rows = self._all(
            "SELECT at, user_id, journey_id, step, action, detail FROM actions"
            " WHERE user_id = ANY(%b) ORDER BY seq",
            (list(ids),),
        )
        return [RecordedAction(int(at), str(u), j, s, str(a), d) for at, u, j, s, a, d in rows]

    def recorded_segment_changes(self, ids: list[str]) -> list[RecordedSegmentChange]:
        """The segment changes logged for ``ids``, in the order they happened."""
        rows = self._all(
            "SELECT at, segment, entered FROM segment_changes WHERE user_id = ANY(%b)"
            " ORDER BY at, id",
            (list(ids),),
        )
        return [RecordedSegmentChange(int(at), str(s), bool(e)) for at, s, e in rows]

    def last_activity(self) -> int | None:
        """The time of the last event or action the store holds, for any user."""
        rows = self._all(
            "SELECT greatest(coalesce((SELECT max(at) FROM events), -1),"
            " coalesce((SELECT max(at) FROM actions), -1))"
        )
        return None if rows[0][0] < 0 else int(rows[0][0])
