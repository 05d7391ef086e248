"""How the dashboard's reads (:class:`~journeyc.store.abc.DashboardReads`) turn a
store's rows into their answers, written once for both stores
(:mod:`journeyc.store.sqlite.ui`, :mod:`journeyc.store.postgres.ui`): each store runs
its own SQL, these shape what it read, so both give the same values of the same
types. No SQL here."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from journeyc.store.abc import AdminReads
from journeyc.store.errors import StoreError
from journeyc.store.rows import Deployed, Entry, InboxRow, JourneyTotals, UserHit, UserRecord

__all__ = [
    "UserReads",
    "check_version",
    "latest_deployed",
    "totals_by_journey",
    "user_hits",
    "user_record",
]


def check_version(path: str, found: int, known: int, upgrade: str) -> None:
    """Raise :class:`StoreError` naming ``path`` when the store's schema version
    ``found`` is not this journeyc's (``known``): read-only, the dashboard cannot
    migrate an older store, so the message says how to (``upgrade``)."""
    if found < known:
        raise StoreError(
            f"{path}: a store of schema version {found}, older than this journeyc's"
            f" ({known}); the dashboard opens it read-only: upgrade it once {upgrade}"
        )
    if found > known:
        raise StoreError(
            f"{path}: a store of schema version {found}, from a newer journeyc"
            f" (this one reads {known})"
        )


def latest_deployed(rows: Iterable[tuple[Any, ...]]) -> list[Deployed]:
    """Per journey id, by id, the last of ``rows`` (id, version, deployed_at, active,
    IR JSON) of that id: read ordered by id, active, then deployed_at, the active
    version, else the latest deployed."""
    latest: dict[str, Deployed] = {}
    for jid, version, deployed_at, active, ir_json in rows:
        latest[jid] = Deployed(jid, version, int(deployed_at), bool(active), ir_json)
    return [latest[k] for k in sorted(latest)]


def totals_by_journey(rows: Iterable[tuple[Any, ...]]) -> dict[str, JourneyTotals]:
    """The totals per journey of ``rows`` (journey id, hour number since the epoch,
    entries, goals, sends, suppressions), entries by UTC day (epoch day number)."""
    totals: dict[str, JourneyTotals] = {}
    for jid, hour, entries, goals, sends, suppressed in rows:
        t = totals.get(jid) or totals.setdefault(jid, JourneyTotals(jid))
        t.entries += entries
        t.goals += goals
        t.sends += sends
        t.suppressed += suppressed
        if entries:
            day = hour // 24
            t.entries_by_day[day] = t.entries_by_day.get(day, 0) + entries
    return totals


def user_hits(rows: Iterable[tuple[Any, ...]], limit: int) -> list[UserHit]:
    """The first ``limit`` users of ``rows`` (user id, the profile's e-mail), each
    once, with the e-mail of its first row (None unless it is text)."""
    hits: dict[str, str | None] = {}
    for user_id, email in rows:
        hits.setdefault(user_id, email if isinstance(email, str) else None)
    return [UserHit(u, e) for u, e in list(hits.items())[:limit]]


class UserReads(AdminReads, Protocol):
    """What the user page reads of one snapshot: the admin reads of a user, and the
    dashboard's own."""

    def aliases(self, user_id: str) -> list[str]:
        """The ids merged into the user, in the order they were linked."""
        ...

    def entries(self, user_id: str) -> list[Entry]:
        """The user's entries into journeys, newest first."""
        ...

    def inapp_messages(self, user_id: str, limit: int) -> list[InboxRow]:
        """The user's last in-app messages, sent or queued (a simulation's store
        delivers nothing), newest first."""
        ...


def user_record(reads: UserReads, user_id: str, actions: int, inbox: int) -> UserRecord | None:
    """The user ``user_id`` names (an alias reads the user it was merged into), with
    the latest ``actions`` and ``inbox`` messages; None for a stranger (no profile,
    instance, entry nor action)."""
    user_id = reads.canonical_user(user_id)
    traits = reads.traits(user_id)
    live = reads.live_instances(user_id)
    entries = reads.entries(user_id)
    recent = reads.recent_actions(user_id, actions)
    if traits is None and not live and not entries and not recent:
        return None
    return UserRecord(
        user_id=user_id,
        traits=traits or {},
        aliases=reads.aliases(user_id),
        segments=reads.memberships(user_id),
        live=live,
        entries=entries,
        actions=recent,
        inbox=reads.inapp_messages(user_id, inbox),
    )
