"""The JSON model of ``journeyc why`` and ``GET /v1/users/{id}/why`` (docs/why.md).

One :class:`WhyReport` per user: for each journey the user entered or could have
entered, every decision the engine made for them, in order, with the values that
decided it. The dashboard's user page reads this structure; its fields are stable
(new optional fields may be added).

Times are ISO-8601 UTC (``2026-01-05T10:30:00Z``), with the user's local time
beside them in ``local`` (``Mon 17:30 Asia/Bangkok``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

__all__ = [
    "CapCheck",
    "CaseCheck",
    "ChannelCheck",
    "Decision",
    "DecisionKind",
    "JourneyWhy",
    "MessageReach",
    "Mismatch",
    "QuietCheck",
    "Term",
    "WhyReport",
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Term(_Model):
    """One part of a condition and its value for the user then: each ``and``/``or``/
    ``not`` and comparison with its truth, and under a comparison its sides that are
    not literals (``event.cart_value`` = 35). ``depth`` is how deep it sits (the parts
    of a term are one deeper)."""

    text: str
    value: Any
    depth: int


class ChannelCheck(_Model):
    """One channel of a ``send`` step, as tried in order: its message, its
    reachability rule (journeyc.toml's, or the default) and the rule's value with its
    terms. ``tried`` is False for the channels after the one chosen."""

    channel: str
    message: str | None
    rule: str
    reachable: bool | None
    tried: bool
    terms: list[Term] = []


class QuietCheck(_Model):
    """Quiet hours at a send: the window (``22:00-08:00``, with ``skip`` or not), the
    user's local time then, whether it was inside, and when the window ends (for a
    send held until then)."""

    window: str
    skip: bool
    local_time: str
    inside: bool
    ends_at: str | None = None


class CapCheck(_Model):
    """A cap at a send: ``journey`` (the journey's ``cap N per D``) or ``global``
    (journeyc.toml's), its limit, its window in seconds, and how many sends the user
    had in the window before this one."""

    scope: Literal["journey", "global"]
    limit: int
    per_seconds: int
    count: int
    reached: bool


DecisionKind = Literal[
    "trigger",
    "entry",
    "goal",
    "exit_check",
    "resume",
    "branch",
    "split",
    "send",
    "wait",
    "wake",
    "exit",
    "segment",
    "firing",
]
"""What a decision is about:

- ``trigger``: a ``when`` of the journey names that event; ``outcome`` ``matched`` or
  ``not_matched``, ``terms`` the values of its ``where``;
- ``entry``: the entry rule; ``outcome`` ``entered``, ``already_in``, ``once_used``,
  ``once_per_wait`` (``next_entry_at``); ``holdout`` for an entry;
- ``goal``: a goal event after an entry; ``outcome`` ``reached`` or why not
  (``recorded_already``, ``before_entry``, ``after_within``, ``entry_over``,
  ``where_false``);
- ``exit_check``: an ``exit when`` names the event; ``matched`` or ``not_matched``;
- ``resume``: the event a ``wait for`` waits for came; ``resumed`` or ``where_false``;
- ``branch``: an ``if``; ``outcome`` the branch taken (``if``, ``elif 2``, ``else``,
  ``none``), ``cases`` each condition tried with its terms;
- ``split``: an A/B split; ``outcome`` the arm, ``bucket`` the user's number in
  [0, 100);
- ``send``: ``sent``, ``suppressed`` (``reason``, ``error``) or ``deferred`` (quiet
  hours); ``channels``, ``quiet``, ``caps``;
- ``wait``: the entry waits until ``until`` (or for ``waiting_for``);
- ``wake``: a wait ended;
- ``exit``: the entry ended; ``outcome`` the reason (``completed``, ``exit_step``,
  ``exit_event``, ``merged``);
- ``segment``: the user ``entered`` or ``left`` segment ``segment``;
- ``firing``: a scheduled ``every`` firing entered its audience.
"""


class CaseCheck(_Model):
    """One condition of an ``if``/``elif`` as tried: its text, its value and terms.
    Conditions after the one taken are not tried (``tried`` False)."""

    condition: str
    value: bool | None
    tried: bool
    terms: list[Term] = []


class Decision(_Model):
    """One decision of the engine for the user."""

    at: str
    local: str | None = None
    kind: DecisionKind
    journey: str | None = None
    entry_no: int | None = None
    step: str | None = None
    outcome: str
    summary: str
    event_name: str | None = None
    props: dict[str, Any] | None = None
    terms: list[Term] = []
    cases: list[CaseCheck] = []
    channels: list[ChannelCheck] = []
    quiet: QuietCheck | None = None
    caps: list[CapCheck] = []
    reason: str | None = None
    error: str | None = None
    channel: str | None = None
    message: str | None = None
    holdout: bool | None = None
    bucket: float | None = None
    next_entry_at: str | None = None
    until: str | None = None
    waiting_for: str | None = None
    segment: str | None = None


class MessageReach(_Model):
    """With ``--message``: whether the user got the message in this journey.
    ``outcome`` is ``sent``, ``suppressed`` (the last ``reason``) or
    ``never_reached``, then ``stopped_at`` is where the user stopped: the step
    (``journey:step``) or the rule that kept them out (``trigger``, ``entry``),
    with ``why`` in words."""

    message: str
    outcome: Literal["sent", "suppressed", "never_reached"]
    reason: str | None = None
    stopped_at: str | None = None
    why: str


class JourneyWhy(_Model):
    """One journey the user entered or could have entered (a trigger names one of
    their events, a segment they were in or a schedule): how it starts, the versions
    replayed, and the decisions in order."""

    journey: str
    title: str | None = None
    triggers: list[str]
    entry_rule: str
    versions: list[str]
    entries: int
    decisions: list[Decision]
    message: MessageReach | None = None


class Mismatch(_Model):
    """An action the store recorded that the replay did not make, or the other way
    round (``side``: ``store`` or ``replay``): the replay is exact within the limits
    of docs/why.md, and this lists where it was not."""

    side: Literal["store", "replay"]
    at: str
    journey: str | None
    step: str | None
    action: str
    detail: dict[str, Any] = {}


class WhyReport(_Model):
    """Why a user did (or did not) get what the journeys send: the answer of
    ``journeyc why USER --json`` and ``GET /v1/users/{id}/why``."""

    user: str
    ids: list[str]
    timezone: str
    replayed_from: str | None
    replayed_until: str | None
    journeys: list[JourneyWhy]
    agrees: bool
    mismatches: list[Mismatch] = []
    notes: list[str] = []
