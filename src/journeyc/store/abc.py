"""What journeyc needs of a store, as small interfaces (after APScheduler 4's data stores).

The engine, the daemon, the CLI and the message renderer talk to a store only through
these; every SQL statement and every database driver import lives in the packages
that implement them (:mod:`journeyc.store.sqlite`, the embedded default, and
:mod:`journeyc.store.postgres`). No connection object crosses this boundary.

Each interface is named for what it holds. :class:`Store` is their sum: one object
per open store, whose factory methods hand out the per-use parts (the engine's unit
of work, the outbox, ...). One contract suite (``tests/store_contract/``) runs over
every implementation; a behaviour the engine relies on is written there, once.

The interfaces are :class:`typing.Protocol` classes: an implementation does not
inherit from them; mypy checks it structurally where the contract suite assigns it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from journeyc.events import Event

__all__ = [
    "Cursors",
    "EventLog",
    "Identities",
    "LoggedEvent",
    "Profiles",
    "Settings",
    "Store",
]


class LoggedEvent(Protocol):
    """An event as the log holds it: ``seq`` is its place in arrival order."""

    seq: int
    message_id: str
    user_id: str
    name: str
    at_ms: int
    props: dict[str, Any]
    received_ms: int


class EventLog(Protocol):
    """The event log: append-only, ordered by arrival (``seq``), one row per messageId."""

    def append_events(
        self, events: Sequence[Event], *, merge_traits: bool = True, link: bool = True
    ) -> list[int | None]:
        """Log ``events`` in order, in one transaction; the seq of each, or None for a
        messageId already logged (nothing is written twice). ``merge_traits`` merges
        identify traits into profiles; ``link`` names each event's canonical user."""
        ...

    def link_events(self, events: Sequence[Event]) -> list[Event]:
        """``events`` with each user id replaced by the canonical user it names."""
        ...

    def unlogged(self, events: Sequence[Event]) -> list[Event]:
        """Those of ``events`` whose messageId is not in the log yet."""
        ...

    def has_events_after(self, seq: int) -> bool:
        """Whether the log holds an event later than ``seq``."""
        ...

    def events_after(self, seq: int, limit: int = 1000) -> Sequence[LoggedEvent]:
        """At most ``limit`` events after ``seq``, in order."""
        ...

    def event_names(self) -> set[str]:
        """Every event name the log has seen."""
        ...


class Profiles(Protocol):
    """Users' traits, merged from identify calls (later ``at`` wins per trait)."""

    def get_profile(self, user_id: str) -> dict[str, Any]:
        """The user's traits (empty for an unknown user)."""
        ...

    def get_profiles(self, user_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The traits of each of ``user_ids`` that has a profile."""
        ...

    def set_traits(self, user_id: str, changes: Mapping[str, Any], at_ms: int) -> None:
        """Merge ``changes`` into the user's traits as of ``at_ms``."""
        ...


class Identities(Protocol):
    """Ids merged into another user (anonymous to known)."""

    def canonical_user(self, user_id: str) -> str:
        """The user ``user_id`` names: itself, or the user it was merged into."""
        ...

    def identities_of(self, user_id: str) -> list[str]:
        """Every id that names the same user as ``user_id``, the canonical one first."""
        ...

    def merge_users(self, frm: str, into: str) -> None:
        """Make ``frm`` an alias of ``into``: its events and profile move along."""
        ...


class Cursors(Protocol):
    """Named positions in the event log (how far a reader has got)."""

    def get_cursor(self, name: str) -> int:
        """The cursor's seq (0 when never set)."""
        ...

    def set_cursor(self, name: str, seq: int) -> None:
        """Move the cursor to ``seq``."""
        ...


class Settings(Protocol):
    """Small named values the daemon keeps (its generated keys and tokens)."""

    def get_setting(self, name: str) -> str | None:
        """The value, or None."""
        ...

    def put_setting(self, name: str, value: str) -> None:
        """Set the value."""
        ...

    def setting(self, name: str, default: Callable[[], str]) -> str:
        """The value, first set to ``default()`` when missing (once, across processes)."""
        ...


class Store(EventLog, Profiles, Identities, Cursors, Settings, Protocol):
    """One open store: the parts above, its transactions and its lifecycle."""

    @property
    def path(self) -> str:
        """Where the store is (a file path, ``:memory:``, or a URL without its password)."""
        ...

    @property
    def schema_version(self) -> int:
        """The schema version of the open store."""
        ...

    def transaction(self) -> AbstractContextManager[object]:
        """A block whose writes, through any part of this store, commit together or
        not at all; blocks nest (savepoints). A writer that cannot start within the
        store's lock timeout raises :class:`~journeyc.store.errors.StoreBusyError`."""
        ...

    def forget_user(self, user_id: str) -> dict[str, int]:
        """Delete everything kept of the user (every id of theirs); rows per table."""
        ...

    def counts(self) -> dict[str, int]:
        """Rows per table, for status pages."""
        ...

    def close(self) -> None:
        """Release the store; it cannot be used afterwards."""
        ...

    # -- the engine's unit of work and its rows (instances, entries, segments,
    #    schedules, the event index): added as they move into the store ----------

    # -- compiled reads (aggregates, set-based segment evaluation, recommendations,
    #    the catalog): added as they move into the store ---------------------------

    # -- the daemon's parts (the outbox, admin reads, worker leases): added as they
    #    move into the store -------------------------------------------------------
