"""The tracer ``journeyc why`` sets on the engine: it turns each decision the engine
tells it of (:class:`journeyc.engine.trace.Tracer`) into a :class:`Decision` with the
values that decided it.

Values are worked out here, only while tracing, from the engine's own pieces: a
condition's terms by :func:`journeyc.engine.segments.explain` (the compiler of
expressions, applied to each part), the reachability rules the engine compiled, the
quiet-hours window with :mod:`journeyc.engine.localtime`, the cap counts from the
engine's runtime. Nothing here decides anything the engine does not.
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import TYPE_CHECKING, Any

from journeyc.compile import ir
from journeyc.compile.graph import expr_to_text
from journeyc.compile.lower import lower_expr
from journeyc.engine.actions import iso_ms
from journeyc.engine.aggregates import to_ms
from journeyc.engine.localtime import in_window, user_zone, window_end
from journeyc.engine.segments import explain
from journeyc.engine.values import json_value
from journeyc.why.model import CapCheck, CaseCheck, ChannelCheck, Decision, QuietCheck, Term

if TYPE_CHECKING:
    from journeyc.engine.core import Engine
    from journeyc.engine.expr import Scope
    from journeyc.engine.program import Program
    from journeyc.store.rows import Instance, StoredEvent

__all__ = ["WhyTracer", "local_time"]


def local_time(at_ms: int, zone: tzinfo) -> str:
    """``Mon 17:30 Asia/Bangkok``: the weekday and clock at ``at_ms`` in ``zone``."""
    return datetime.fromtimestamp(at_ms // 1000, zone).strftime(f"%a %H:%M {zone}")


def _clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def duration_text(seconds: int) -> str:
    """``7d``, ``1h30m``: a duration as the language writes it."""
    out = ""
    for unit, size in (("w", 604_800), ("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)):
        if unit == "w" and seconds % size:
            continue
        n, seconds = divmod(seconds, size)
        if n:
            out += f"{n}{unit}"
    return out or "0s"


def entry_rule_text(rule: ir.EntryRule) -> str:
    """``entry once``, ``entry once per 7d``, ``entry always``."""
    if rule.mode == "once_per":
        return f"entry once per {duration_text(rule.per or 0)}"
    return f"entry {rule.mode}"


def trigger_text(t: ir.Trigger) -> str:
    """A trigger as the journey writes it."""
    if isinstance(t, ir.EventTrigger):
        return f"when {t.event}" + (f" where {expr_to_text(t.where)}" if t.where else "")
    if isinstance(t, ir.SegmentTrigger):
        return f"when {t.edge} {t.segment}"
    when = f"every {duration_text(t.interval)}" if t.interval else f"every {t.day}"
    if t.hour is not None:
        when += f" at {_clock(t.hour * 60 + (t.minute or 0))}"
    return when + f" for {t.segment or 'everyone'}"


class WhyTracer:
    """Records the decisions of one user's replay, in order, per journey.

    Local times are shown in the user's zone as the engine reads it then.
    ``segments`` are the project's, for explaining ``segment NAME`` terms; ``user``
    is the one user replayed; ``reach_text`` each channel's reachability rule."""

    def __init__(
        self,
        engine: Engine,
        user: str,
        segments: dict[str, ir.SegmentIR],
        reach_text: dict[str, str],
    ) -> None:
        self.engine = engine
        self.user = user
        self.segments = segments
        self.reach_text = reach_text
        self.decisions: list[Decision] = []
        self.now_ms = 0
        self._event: StoredEvent | None = None

    @classmethod
    def for_engine(cls, engine: Engine, user: str, segments: dict[str, ir.SegmentIR]) -> WhyTracer:
        """A tracer for ``engine``: the texts of its reachability rules from its config."""
        config = engine.config
        texts: dict[str, str] = {
            ch: expr_to_text(lower_expr(config.reachability_expr(ch)))
            for ch in sorted(config.reachability)
        }
        return cls(engine, user, segments, texts)

    # ------------------------------------------------------------ helpers
    def _terms(self, e: ir.Expr | None, scope: Scope | None, depth: int = 0) -> list[Term]:
        if e is None or scope is None:
            return []
        return [
            Term(text=t.text, value=json_value(t.value), depth=t.depth + depth)
            for t in explain(e, scope, self.segments)
        ]

    def _zone(self, user: str) -> tzinfo:
        return user_zone(self.engine.store.get_profile(user), self.engine.zone)

    def _add(self, user: str, at_ms: int, **fields: Any) -> None:
        self.now_ms = at_ms
        ev = self._event
        if (
            ev is not None
            and "event_name" not in fields
            and fields["kind"]
            in (
                "trigger",
                "goal",
                "exit_check",
                "resume",
            )
        ):
            fields["event_name"] = ev.name
            fields["props"] = json_value(ev.props)
        self.decisions.append(
            Decision(at=iso_ms(at_ms), local=local_time(at_ms, self._zone(user)), **fields)
        )

    def _of(self, inst: Instance, at_ms: int, step: str | None, **fields: Any) -> None:
        """A decision about one entry (its journey and number) at ``step``."""
        self._add(
            inst.user_id,
            at_ms,
            journey=inst.journey_id,
            entry_no=inst.entry_no,
            step=step,
            **fields,
        )

    # ------------------------------------------------------------ the Tracer protocol
    def event(self, ev: StoredEvent, now_ms: int) -> None:
        """Remember the event in hand: the decisions it leads to name it."""
        self._event = ev
        self.now_ms = now_ms

    def timer(self, inst: Instance, node: ir.Node, now_ms: int) -> None:
        """A wait ended."""
        self._event = None
        held = bool(inst.vars.get("deferred"))
        what = "quiet hours ended" if held else f"{node.kind.replace('_', ' ')} ended"
        if type(node) is ir.WaitForNode and not held:
            what = f"no {node.event} within the wait: timeout"
        self._of(
            inst,
            now_ms,
            node.id,
            kind="wake",
            outcome="quiet_hours_over" if held else "timeout",
            summary=what,
        )

    def trigger(
        self, prog: Program, ev: StoredEvent, scope: Scope, matched: bool, now_ms: int
    ) -> None:
        """A ``when`` names the event."""
        terms: list[Term] = []
        for t in prog.journey.triggers:
            if isinstance(t, ir.EventTrigger) and t.event == ev.name:
                terms += self._terms(t.where, scope)
        self._add(
            ev.user_id,
            now_ms,
            kind="trigger",
            journey=prog.id,
            outcome="matched" if matched else "not_matched",
            summary=f"{ev.name}: "
            + ("trigger matched" if matched else "trigger did not match (its where is false)"),
            terms=terms,
        )

    def entry(
        self,
        prog: Program,
        user: str,
        outcome: str,
        last: tuple[int, int, int | None] | None,
        holdout: bool,
        now_ms: int,
    ) -> None:
        """The entry rule's answer."""
        rule = entry_rule_text(prog.journey.entry)
        next_at = None
        entry_no = None
        if outcome == "entered":
            entry_no = (last[0] + 1) if last else 1
            first = "first entry" if last is None else f"last entry {iso_ms(last[1])}"
            held = prog.journey.holdout
            text = f"entered (entry {entry_no}; {rule}: {first}"
            if held:
                text += f"; holdout {held:g}%: " + ("held out" if holdout else "not held out")
            text += ")"
        elif outcome == "already_in":
            text = "not entered: already in the journey (a user is in it once at a time)"
        elif outcome == "once_used":
            assert last is not None
            text = f"not entered: {rule}, entered already at {iso_ms(last[1])}"
        else:
            assert last is not None
            next_at = iso_ms(last[1] + (prog.journey.entry.per or 0) * 1000)
            text = f"not entered: {rule}, last entry {iso_ms(last[1])}, next from {next_at}"
        self._add(
            user,
            now_ms,
            kind="entry",
            journey=prog.id,
            entry_no=entry_no,
            outcome=outcome,
            summary=text,
            holdout=holdout if outcome == "entered" else None,
            next_entry_at=next_at,
        )

    def goal(self, prog: Program, ev: StoredEvent, scope: Scope, outcome: str, now_ms: int) -> None:
        """A goal event, counted or not."""
        goal = prog.journey.goal
        assert goal is not None
        words = {
            "reached": "goal reached",
            "recorded_already": "not a goal: reached already for this entry",
            "before_entry": "not a goal: the event is older than the entry",
            "after_within": "not a goal: more than "
            f"{duration_text(goal.within or 0)} after the entry",
            "entry_over": "not a goal: the entry had ended",
            "where_false": "not a goal: its where is false",
        }
        self._add(
            ev.user_id,
            now_ms,
            kind="goal",
            journey=prog.id,
            outcome=outcome,
            summary=f"{ev.name}: {words.get(outcome, outcome)}",
            terms=self._terms(goal.where, scope) if outcome in ("reached", "where_false") else [],
        )

    def exit_check(
        self, inst: Instance, ev: StoredEvent, scope: Scope, matched: bool, now_ms: int
    ) -> None:
        """An ``exit when`` names the event."""
        prog = self.engine.programs.of(inst)
        terms: list[Term] = []
        for x in prog.journey.exits:
            if x.event == ev.name:
                terms += self._terms(x.where, scope)
        self._of(
            inst,
            now_ms,
            inst.node or None,
            kind="exit_check",
            outcome="matched" if matched else "not_matched",
            summary=f"{ev.name}: exit when "
            + ("holds: the user leaves" if matched else "is false"),
            terms=terms,
        )

    def resume(
        self,
        inst: Instance,
        node: ir.WaitForNode,
        ev: StoredEvent,
        scope: Scope,
        resumed: bool,
        now_ms: int,
    ) -> None:
        """The awaited event came."""
        way = "its on-event branch" if node.on_event is not None else "straight on"
        self._of(
            inst,
            now_ms,
            node.id,
            kind="resume",
            outcome="resumed" if resumed else "where_false",
            summary=f"{ev.name} ends the wait: {way}"
            if resumed
            else f"{ev.name} does not end the wait: its where is false",
            terms=self._terms(node.where, scope),
        )

    def branch(
        self, prog: Program, inst: Instance, node: ir.BranchNode, scope: Scope, now_ms: int
    ) -> None:
        """An ``if``: each condition tried, in order, until one holds."""
        cases: list[CaseCheck] = []
        taken: int | None = None
        for k, case in enumerate(node.cases):
            tried = taken is None  # the cases after the one taken are not
            terms = self._terms(case.cond, scope) if tried else []
            value = (bool(terms[0].value) if terms else False) if tried else None
            cases.append(
                CaseCheck(condition=expr_to_text(case.cond), value=value, tried=tried, terms=terms)
            )
            if value:
                taken = k
        if taken is not None:
            outcome = "if" if taken == 0 else f"elif {taken}"
            said = f"{outcome}: {cases[taken].condition}"
        else:
            outcome = "else" if node.orelse is not None else "none"
            said = "else" if node.orelse is not None else "no condition holds: straight on"
        self._of(
            inst,
            now_ms,
            node.id,
            kind="branch",
            outcome=outcome,
            summary=f"branch: {said}",
            cases=cases,
        )

    def split(
        self, prog: Program, inst: Instance, node: ir.SplitNode, bucket: float, arm: ir.SplitArm
    ) -> None:
        """A split arm."""
        shares = ", ".join(f"{a.name} {a.percent:g}%" for a in node.arms)
        self._of(
            inst,
            self.now_ms,
            node.id,
            kind="split",
            outcome=arm.name,
            summary=f"split ({shares}): arm {arm.name} (the user's number is {bucket:.2f})",
            bucket=round(bucket, 4),
        )

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
        """A send step: the channels tried, quiet hours, caps."""
        engine, user = self.engine, inst.user_id
        channels: list[ChannelCheck] = []
        chosen: ir.SendTarget | None = None
        if scope is not None:
            for t in node.targets:
                rule = engine.send_policy.reach.get(t.channel)
                tried = chosen is None  # the channels after the one chosen are not
                ok = tried and rule is not None and bool(rule(scope))
                terms = (
                    self._terms(lower_expr(engine.config.reachability_expr(t.channel)), scope)
                    if tried and rule is not None
                    else []
                )
                channels.append(
                    ChannelCheck(
                        channel=t.channel,
                        message=t.message,
                        rule=self.reach_text.get(t.channel, "not configured"),
                        reachable=ok if tried else None,
                        tried=tried,
                        terms=terms,
                    )
                )
                if ok:
                    chosen = t
        quiet: QuietCheck | None = None
        rule_q = prog.journey.quiet_hours or engine.send_policy.default_quiet
        if chosen is not None and rule_q is not None and scope is not None:
            zone = user_zone(scope.profile, engine.zone)
            inside = in_window(scope.now, rule_q.start, rule_q.end, zone)
            end = window_end(scope.now, rule_q.start, rule_q.end, zone) if inside else None
            quiet = QuietCheck(
                window=f"{_clock(rule_q.start)}-{_clock(rule_q.end)}",
                skip=rule_q.skip,
                local_time=local_time(now_ms, zone),
                inside=inside,
                ends_at=iso_ms(to_ms(end)) if end is not None else None,
            )
        caps: list[CapCheck] = []
        if chosen is not None and (quiet is None or not quiet.inside):
            for cap, journey, kind in (
                (prog.journey.cap, prog.id, "journey"),
                (engine.send_policy.global_cap, None, "global"),
            ):
                if cap is None:
                    continue
                count = engine.rt.sends_since(user, now_ms - cap.per * 1000, journey)
                caps.append(
                    CapCheck(
                        scope="journey" if kind == "journey" else "global",
                        limit=cap.count,
                        per_seconds=cap.per,
                        count=count,
                        reached=count >= cap.count,
                    )
                )
                if count >= cap.count:
                    break
        what = chosen.message or "inline message" if chosen is not None else None
        if outcome == "sent":
            assert chosen is not None
            text = f"sent {chosen.channel} {what}"
        elif outcome == "deferred":
            assert quiet is not None
            text = f"held by quiet hours {quiet.window} until {quiet.ends_at}"
        else:
            text = f"suppressed: {reason}" + (f" ({error})" if error else "")
        self._of(
            inst,
            now_ms,
            node.id,
            kind="send",
            outcome=outcome,
            summary=text,
            channels=channels,
            quiet=quiet,
            caps=caps,
            reason=reason,
            error=error,
            channel=chosen.channel if chosen is not None else None,
            message=chosen.message if chosen is not None else None,
        )

    def wait(self, inst: Instance, wake_at: int, event: str | None) -> None:
        """The entry waits."""
        if inst.vars.get("deferred"):
            return  # the send's decision says it (held by quiet hours)
        text = f"waits until {iso_ms(wake_at)}" + (f" for {event}" if event else "")
        self._of(
            inst,
            self.now_ms,
            inst.node,
            kind="wait",
            outcome="waiting",
            summary=text,
            until=iso_ms(wake_at),
            waiting_for=event,
        )

    def finish(self, inst: Instance, reason: str, now_ms: int) -> None:
        """The entry ends."""
        words = {
            "completed": "completed: no step left",
            "exit_step": "left: an exit step",
            "exit_event": "left: exit when",
            "merged": "ended: merged into another id's entry",
        }
        self._of(
            inst,
            now_ms,
            inst.node or None,
            kind="exit",
            outcome=reason,
            summary=words.get(reason, reason),
            reason=reason,
        )

    def segment(self, user: str, name: str, entered: bool, now_ms: int) -> None:
        """A segment change: recorded against each journey it may enter."""
        edge = "entering" if entered else "leaving"
        for prog in self.engine.active.values():
            if any(
                isinstance(t, ir.SegmentTrigger) and t.segment == name and t.edge == edge
                for t in prog.journey.triggers
            ):
                self._add(
                    user,
                    now_ms,
                    kind="segment",
                    journey=prog.id,
                    outcome=edge,
                    summary=f"{'entered' if entered else 'left'} segment {name}",
                    segment=name,
                )

    def firing(self, journey_id: str, now_ms: int) -> None:
        """A scheduled firing (the replay's one user is in its audience)."""
        self._event = None
        self._add(
            self.user,
            now_ms,
            kind="firing",
            journey=journey_id,
            outcome="fired",
            summary="scheduled firing: the user is in its audience",
        )

    def by_journey(self) -> dict[str, list[Decision]]:
        """The decisions per journey, in order."""
        out: dict[str, list[Decision]] = {}
        for d in self.decisions:
            if d.journey is not None:
                out.setdefault(d.journey, []).append(d)
        return out
