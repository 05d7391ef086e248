"""The rows the store's interfaces (:mod:`journeyc.store.abc`) hand out and take in:
plain values, the same whichever store holds them. No SQL here."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, TypeAlias, get_args

from journeyc.events import ALIAS, IDENTIFY

__all__ = [
    "DAY_MS",
    "KINDS",
    "ActionCount",
    "ActionRecord",
    "Cohort",
    "Delivery",
    "Deployed",
    "DeployedJourney",
    "DeployedSegment",
    "Entry",
    "EntryGroup",
    "FeedbackCount",
    "InFlight",
    "InboxRow",
    "Instance",
    "JourneyTotals",
    "JourneyVersion",
    "Kind",
    "LiveInstance",
    "OutboxCount",
    "RecordedAction",
    "RecordedSegmentChange",
    "ScheduleRow",
    "ScheduleRowValues",
    "SegmentRow",
    "Send",
    "StoredEvent",
    "UserHit",
    "UserRecord",
    "which_new",
]


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


@dataclass(frozen=True, slots=True)
class JourneyVersion:
    """One deployed version of a journey, with its IR (JSON)."""

    version: str
    deployed_at: int
    active: bool
    ir_json: str


@dataclass(frozen=True, slots=True)
class EntryGroup:
    """Entries of one (holdout, arm) group and how many reached the goal."""

    holdout: bool
    arm: str | None
    entries: int
    conversions: int


@dataclass(frozen=True, slots=True)
class ActionCount:
    """How many ``action`` rows with ``label`` were logged at ``step`` ('' for none)."""

    step: str
    action: str
    label: str
    n: int


@dataclass(frozen=True, slots=True)
class OutboxCount:
    """Outbox rows of one channel and status, and how many were tried more than once."""

    channel: str
    status: str
    rows: int
    retried: int


@dataclass(frozen=True, slots=True)
class FeedbackCount:
    """Distinct messages (outbox keys) of one channel with a provider report of ``kind``."""

    channel: str
    kind: str
    messages: int


@dataclass(frozen=True, slots=True)
class InFlight:
    """How many users in flight one journey version holds at one step."""

    journey_id: str
    version: str
    step: str
    users: int


@dataclass(frozen=True, slots=True)
class DeployedSegment:
    """A segment as deployed: the hash of its definition (with the segments it uses)
    and its own expression as IR JSON."""

    name: str
    hash: str
    expr_json: str


@dataclass(frozen=True, slots=True)
class ScheduleRow:
    """One row of ``schedules``: a journey's scheduled trigger in one time zone."""

    journey_id: str
    trigger: int
    zone: str
    spec: str
    next_at: int


@dataclass(frozen=True, slots=True)
class DeployedJourney:
    """A journey version the store deployed: its IR (JSON), when it was first
    deployed, and whether it is the active one now."""

    journey_id: str
    version: str
    ir_json: str
    deployed_at: int
    active: bool


@dataclass(frozen=True, slots=True)
class RecordedAction:
    """One row of the action log: the id it was logged under, the journey, the step,
    the action and its detail."""

    at_ms: int
    user_id: str
    journey_id: str | None
    step: str | None
    action: str
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class RecordedSegmentChange:
    """A logged change of one user's standing in a segment."""

    at_ms: int
    segment: str
    entered: bool


Kind: TypeAlias = Literal["delivered", "opened", "clicked", "bounced", "complained", "unsubscribed"]
"""What a provider reports (the table's ``kind`` CHECK)."""

KINDS: tuple[Kind, ...] = get_args(Kind)
"""Every :data:`Kind`, in the order of a message's life."""


@dataclass(frozen=True, slots=True)
class Send:
    """The outbox row a report names: where the send came from and how it went out
    (``channel`` None: suppressed before one was chosen). ``user_id`` is the user the
    send's user id names now (the known user an anonymous id was merged into)."""

    key: str
    journey_id: str
    user_id: str
    step: str
    channel: str | None
    message: str
    status: str


@dataclass(frozen=True, slots=True)
class Delivery:
    """One report as the table keeps it; times are UTC epoch milliseconds."""

    outbox_key: str
    kind: Kind
    at_ms: int
    received_ms: int
    journey_id: str
    user_id: str
    channel: str | None
    provider_event_id: str
    detail: Mapping[str, Any] = field(default_factory=dict)


class LiveInstance(NamedTuple):
    """A user's running (``active`` or ``waiting``) instance of a journey; times in
    epoch ms."""

    journey_id: str
    version: str
    entry_no: int
    node: str
    status: str
    entered_at: int
    wake_at: int | None
    waiting_for: str | None


class ActionRecord(NamedTuple):
    """One thing the engine did for a user (``at`` in epoch ms)."""

    at: int
    journey_id: str | None
    step: str | None
    action: str
    detail: dict[str, Any]


DAY_MS = 86_400_000
"""A UTC day in milliseconds: :attr:`JourneyTotals.entries_by_day` is keyed by epoch
day numbers (``ms // DAY_MS``)."""


@dataclass(frozen=True, slots=True)
class Deployed:
    """A journey's active version (or its latest, when none is active) and its IR."""

    journey_id: str
    version: str
    deployed_at: int
    active: bool
    ir_json: str


@dataclass(slots=True)
class JourneyTotals:
    """One journey over a range: entries by day, goals reached, messages queued
    (sent or not), sends suppressed."""

    journey_id: str
    entries: int = 0
    goals: int = 0
    sends: int = 0
    suppressed: int = 0
    entries_by_day: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class UserHit:
    """A user a search found, with the e-mail of their profile if any."""

    user_id: str
    email: str | None


@dataclass(frozen=True, slots=True)
class Entry:
    """One entry of the user into a journey, and when it reached the goal."""

    journey_id: str
    entry_no: int
    entered_at: int
    goal_at: int | None
    arm: str | None
    held_out: bool


@dataclass(frozen=True, slots=True)
class InboxRow:
    """An in-app message the user was sent."""

    journey_id: str
    step: str
    message: str
    content: dict[str, Any]
    sent_at: int | None


@dataclass(slots=True)
class UserRecord:
    """Everything the user page shows of one user."""

    user_id: str
    traits: dict[str, Any]
    aliases: list[str]
    segments: list[tuple[str, int]]
    live: list[LiveInstance]
    entries: list[Entry]
    actions: list[ActionRecord]
    inbox: list[InboxRow]


def which_new(deliveries: Sequence[Delivery], new: set[tuple[str, str, str]]) -> list[bool]:
    """For each of ``deliveries``, whether it is one of the ``new`` reports (by outbox
    key, kind and provider event id) and the first of its key in ``deliveries``."""
    new = set(new)
    added = []
    for d in deliveries:
        report = (d.outbox_key, d.kind, d.provider_event_id)
        added.append(report in new)
        new.discard(report)  # a repeat later in ``deliveries`` is not new
    return added
