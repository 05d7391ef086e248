"""Tracing the engine's decisions, for ``journeyc why``.

The engine calls a :class:`Tracer` at each decision it makes for a user: a trigger
matched or not, an entry rule, a goal, an ``exit when``, a ``wait for`` resumed, a
branch taken, a split arm, a send (sent, suppressed or held by quiet hours), a wait,
an exit, a segment change and a scheduled firing. It passes what it decided and the
scope it decided in; the tracer works out the values to show (the terms of a
condition, the channels' rules, the cap counts) itself, from the same compiled
pieces, so the engine does no extra work for it.

Production never traces: :attr:`journeyc.engine.core.Engine.tracer` is None and each
call site is one ``is not None`` test. ``journeyc why`` replays one user's events
through the same engine with a tracer set (see :mod:`journeyc.why.replay`).

A tracer must not change anything the engine reads: it may evaluate expressions and
read counts, never write.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from journeyc.compile import ir
    from journeyc.engine.expr import Scope
    from journeyc.engine.program import Program
    from journeyc.store.rows import Instance, StoredEvent

__all__ = ["ENTRY_OUTCOMES", "GOAL_OUTCOMES", "SEND_OUTCOMES", "Tracer"]

ENTRY_OUTCOMES = ("entered", "already_in", "once_used", "once_per_wait")
"""What an entry decision can be: entered (``holdout`` says whether held out), the
user is in the journey already, ``entry once`` used, ``once per D`` not over yet."""

GOAL_OUTCOMES = (
    "reached",
    "recorded_already",
    "before_entry",
    "after_within",
    "entry_over",
    "where_false",
)
"""What a goal decision can be (docs/semantics.md, "Time and order", goals). A goal
event of a user who never entered the journey is not told (the common case)."""

SEND_OUTCOMES = ("sent", "suppressed", "deferred")
"""What a ``send`` step can do: send, suppress (with a reason), or wait for the end of
quiet hours."""


class Tracer(Protocol):
    """What the engine tells about each decision (all times epoch ms)."""

    def event(self, ev: StoredEvent, now_ms: int) -> None:
        """An event of the user is handled (before its goals, exits, waits, entries)."""

    def timer(self, inst: Instance, node: ir.Node, now_ms: int) -> None:
        """A wait of ``inst`` at ``node`` ended (its time came)."""

    def trigger(
        self, prog: Program, ev: StoredEvent, scope: Scope, matched: bool, now_ms: int
    ) -> None:
        """A ``when`` of ``prog`` names ``ev``: whether its condition held."""

    def entry(
        self,
        prog: Program,
        user: str,
        outcome: str,
        last: tuple[int, int, int | None] | None,
        holdout: bool,
        now_ms: int,
    ) -> None:
        """The entry rule's answer (one of :data:`ENTRY_OUTCOMES`); ``last`` is the
        latest entry (number, entered at, goal at)."""

    def goal(self, prog: Program, ev: StoredEvent, scope: Scope, outcome: str, now_ms: int) -> None:
        """A goal event of a user who entered the journey: counted or why not (one of
        :data:`GOAL_OUTCOMES`)."""

    def exit_check(
        self, inst: Instance, ev: StoredEvent, scope: Scope, matched: bool, now_ms: int
    ) -> None:
        """An ``exit when`` of the instance's journey names ``ev``: whether it held."""

    def resume(
        self,
        inst: Instance,
        node: ir.WaitForNode,
        ev: StoredEvent,
        scope: Scope,
        resumed: bool,
        now_ms: int,
    ) -> None:
        """The event a ``wait for`` waits for came: whether its ``where`` held."""

    def branch(
        self,
        prog: Program,
        inst: Instance,
        node: ir.BranchNode,
        scope: Scope,
        now_ms: int,
    ) -> None:
        """An ``if``, decided in ``scope`` (its cases are tried in order)."""

    def split(
        self,
        prog: Program,
        inst: Instance,
        node: ir.SplitNode,
        bucket: float,
        arm: ir.SplitArm,
    ) -> None:
        """A ``split``: the user's bucket in [0, 100) and the arm it falls in (at the
        time of the decision told last)."""

    def send(
        self,
        prog: Program,
        inst: Instance,
        node: ir.SendNode,
        scope: Scope | None,
        outcome: str,
        reason: str | None,
        error: str | None,
        now_ms: int,
    ) -> None:
        """A ``send`` step, before anything is queued (one of :data:`SEND_OUTCOMES`;
        ``reason`` for a suppression). ``scope`` is None for a held-out user (decided
        first, before the engine reads the profile)."""

    def wait(self, inst: Instance, wake_at: int, event: str | None) -> None:
        """The instance waits at its node until ``wake_at`` (or ``event``), from the
        time of the decision told last."""

    def finish(self, inst: Instance, reason: str, now_ms: int) -> None:
        """The instance ends (``completed``, ``exit_step``, ``exit_event``, ``merged``)."""

    def segment(self, user: str, name: str, entered: bool, now_ms: int) -> None:
        """The user entered (or left) a segment."""

    def firing(self, journey_id: str, now_ms: int) -> None:
        """A scheduled ``every`` firing of the journey enters its audience."""
