"""The rows the store's interfaces (:mod:`journeyc.store.abc`) hand out and take in:
plain values, the same whichever store holds them. No SQL here."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from journeyc.events import ALIAS, IDENTIFY

__all__ = ["Cohort", "Instance", "ScheduleRowValues", "SegmentRow", "StoredEvent"]


@dataclass(slots=True)
class Instance:
    """A user's entry into a journey version, and where it stands."""

    id: int
    journey_id: str
    version: str
    user_id: str
    entry_no: int
    node: str
    status: str
    entered_at: int
    wake_at: int | None = None
    waiting_for: str | None = None
    vars: dict[str, Any] = field(default_factory=dict)
    arm: str | None = None
    holdout: bool = False


@dataclass(frozen=True, slots=True)
class SegmentRow:
    """A user's standing in one segment: in or out, since when, and when the clock
    alone may change it (None: only the user's data can)."""

    member: bool
    since: int
    recheck_at: int | None


ScheduleRowValues = tuple[str, int, str, str, int, str | None]
"""A ``schedules`` row: journey, trigger index, zone, spec (the trigger's IR JSON),
next_at, after_user (how far the audience of the firing due got)."""


Cohort = tuple[str, str | None, bool, int, int]
"""A/B counts: ``(journey, arm, held out, entries, goals)``."""


@dataclass(slots=True)
class StoredEvent:
    """An event as the log holds it: its ``seq`` is its place in arrival order."""

    seq: int
    message_id: str
    user_id: str
    name: str
    at_ms: int
    props: dict[str, Any]
    received_ms: int

    @property
    def kind(self) -> str:
        """``"identify"`` for identify calls, ``"alias"`` for merges of two ids,
        ``"track"`` for the rest."""
        name = self.name
        return "identify" if name == IDENTIFY else "alias" if name == ALIAS else "track"
