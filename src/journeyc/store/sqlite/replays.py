"""Reads for replaying one user (``journeyc why``): every id naming the user, their
events in log order, their profile as it was before the replay starts, the journey
versions the store deployed and when, and what the store recorded for them (actions
and segment changes), to compare a replay with.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from journeyc.events import ALIAS, IDENTIFY, Event, Kind
from journeyc.fastjson import dumps, loads
from journeyc.store.rows import DeployedJourney as DeployedVersion
from journeyc.store.rows import RecordedAction, RecordedSegmentChange
from journeyc.store.sqlite.connected import Connected
from journeyc.store.traits import CONTEXT_WRITTEN

__all__ = [
    "DeployedVersion",
    "RecordedAction",
    "RecordedSegmentChange",
    "deployed_versions",
    "event_of",
    "is_known",
    "last_activity",
    "profile_before",
    "recorded_actions",
    "recorded_segment_changes",
    "snapshot",
    "traits_before",
    "user_events",
]


@contextmanager
def snapshot(store: Connected) -> Iterator[None]:
    """Read the store at one moment for the block (a read transaction: in WAL mode a
    writer, the daemon's engine, goes on meanwhile), so the events and the actions
    compared with a replay are of the same moment. Inside a transaction already: that
    one."""
    conn = store.conn
    if conn.in_transaction:
        yield
        return
    conn.execute("BEGIN")
    try:
        yield
    finally:
        conn.execute("ROLLBACK")  # it read only


def _ids_json(ids: list[str]) -> str:
    return dumps(sorted(ids))


def is_known(store: Connected, user_id: str) -> bool:
    """Whether the store knows the user (a profile row, or an event logged for them)."""
    row = store.conn.execute(
        "SELECT EXISTS (SELECT 1 FROM profiles WHERE user_id = ?)"
        " OR EXISTS (SELECT 1 FROM events WHERE user_id = ?)",
        (user_id, user_id),
    ).fetchone()
    return bool(row[0])


def user_events(store: Connected, ids: list[str]) -> list[Event]:
    """Every event logged under ``ids``, in log order, as the engine read them (the
    ``kind`` from the name, as :class:`~journeyc.store.sqlite.StoredEvent` gives it)."""
    rows = store.conn.execute(
        "SELECT message_id, user_id, name, at, props, received_at FROM events"
        " WHERE user_id IN (SELECT value FROM json_each(?)) ORDER BY seq",
        (_ids_json(ids),),
    )
    return [event_of(m, u, name, at, loads(p), r) for m, u, name, at, p, r in rows]


def event_of(message_id: str, user_id: str, name: str, at: int, props: Any, received: int) -> Event:
    """An ``events`` row as the engine reads it (the ``kind`` from the name)."""
    kind: Kind = "identify" if name == IDENTIFY else "alias" if name == ALIAS else "track"
    return Event(message_id, user_id, kind, name, int(at), props, int(received))


def profile_before(store: Connected, ids: list[str], before_ms: int) -> dict[str, dict[str, Any]]:
    """Per id, the traits of its profile last written before ``before_ms`` (loaded
    profiles, history): what a replay starting then begins with. Traits written since
    are left out (the replay writes them again from the events and steps), and so are
    those a call's context filled in (an event wrote them: the replay's history writes
    them again, as context, so that a later context still replaces them)."""
    rows = store.conn.execute(
        "SELECT user_id, traits, trait_at FROM profiles"
        " WHERE user_id IN (SELECT value FROM json_each(?)) ORDER BY user_id",
        (_ids_json(ids),),
    )
    return traits_before(((u, loads(t), loads(w)) for u, t, w in rows), before_ms)


def traits_before(
    profiles: Iterable[tuple[str, dict[str, Any], dict[str, int]]], before_ms: int
) -> dict[str, dict[str, Any]]:
    """Of ``(user, traits, trait_at)`` profiles, per user, the traits written before
    ``before_ms`` and not by a call's context (users left with none left out)."""
    out: dict[str, dict[str, Any]] = {}
    for uid, traits, written in profiles:
        kept = {}
        for key, value in traits.items():
            at = written.get(key, before_ms)
            if at < before_ms and at != CONTEXT_WRITTEN:
                kept[key] = value
        if kept:
            out[str(uid)] = kept
    return out


def deployed_versions(store: Connected) -> list[DeployedVersion]:
    """Every journey version deployed, in the order of deployment (then id)."""
    rows = store.conn.execute(
        "SELECT id, version, ir, deployed_at, active FROM journeys ORDER BY deployed_at, id"
    )
    return [DeployedVersion(str(j), str(v), str(i), int(d), bool(a)) for j, v, i, d, a in rows]


def recorded_actions(store: Connected, ids: list[str]) -> list[RecordedAction]:
    """The action log's rows of ``ids``, in the order they were logged."""
    rows = store.conn.execute(
        "SELECT at, user_id, journey_id, step, action, detail FROM actions"
        " WHERE user_id IN (SELECT value FROM json_each(?)) ORDER BY seq",
        (_ids_json(ids),),
    )
    return [RecordedAction(int(at), str(u), j, s, str(a), loads(d)) for at, u, j, s, a, d in rows]


def recorded_segment_changes(store: Connected, ids: list[str]) -> list[RecordedSegmentChange]:
    """The segment changes logged for ``ids``, in the order they happened."""
    rows = store.conn.execute(
        "SELECT at, segment, entered FROM segment_changes"
        " WHERE user_id IN (SELECT value FROM json_each(?)) ORDER BY at, rowid",
        (_ids_json(ids),),
    )
    return [RecordedSegmentChange(int(at), str(s), bool(e)) for at, s, e in rows]


def last_activity(store: Connected) -> int | None:
    """The time of the last event or action the store holds, for any user: how long
    a simulation's clock ran (its users kept one another's clock going)."""
    row = store.conn.execute(
        "SELECT max(coalesce((SELECT max(at) FROM events), -1),"
        " coalesce((SELECT max(at) FROM actions), -1))"
    ).fetchone()
    return None if row[0] is None or row[0] < 0 else int(row[0])


class SqliteReplayReads:
    """:class:`journeyc.store.abc.ReplayReads` over one SQLite store: the functions
    above, bound to it."""

    def __init__(self, store: Connected) -> None:
        self._store = store

    def snapshot(self) -> AbstractContextManager[None]:
        """See :func:`snapshot`."""
        return snapshot(self._store)

    def is_known(self, user_id: str) -> bool:
        """See :func:`is_known`."""
        return is_known(self._store, user_id)

    def user_events(self, ids: list[str]) -> list[Event]:
        """See :func:`user_events`."""
        return user_events(self._store, ids)

    def profile_before(self, ids: list[str], before_ms: int) -> dict[str, dict[str, Any]]:
        """See :func:`profile_before`."""
        return profile_before(self._store, ids, before_ms)

    def deployed_versions(self) -> list[DeployedVersion]:
        """See :func:`deployed_versions`."""
        return deployed_versions(self._store)

    def recorded_actions(self, ids: list[str]) -> list[RecordedAction]:
        """See :func:`recorded_actions`."""
        return recorded_actions(self._store, ids)

    def recorded_segment_changes(self, ids: list[str]) -> list[RecordedSegmentChange]:
        """See :func:`recorded_segment_changes`."""
        return recorded_segment_changes(self._store, ids)

    def last_activity(self) -> int | None:
        """See :func:`last_activity`."""
        return last_activity(self._store)
