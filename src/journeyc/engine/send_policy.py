"""The send policy: what one ``send`` step does for a user (docs/semantics.md, "Sending").

In order: a user held out of the journey (drawn at entry: :func:`held_out`) is
suppressed, reason ``holdout``; the first channel of the step whose reachability rule
holds is chosen, none → ``no_channel``; inside quiet hours (the journey's, else the
project's) the send is skipped (``quiet_hours``) or held until they end; a journey's
cap, then the global cap, reached → ``cap``; the message is rendered, an error (or a
template past the ``[render]`` limits) → ``render_error``. What is left is queued.
Every outcome but a hold is an outbox row (suppressed ones too: reports count them)
and an action.

:class:`SendPolicy` decides and records; the step interpreter holds a deferred send
(a wait that runs the step again).
"""

from __future__ import annotations

from typing import Any

from journeyc.compile import ir
from journeyc.compile.lower import lower_expr
from journeyc.config import Config
from journeyc.engine.actions import Action
from journeyc.engine.aggregates import to_ms
from journeyc.engine.buckets import bucket
from journeyc.engine.expr import Predicate, Scope, compile_predicate
from journeyc.engine.localtime import in_window, user_zone, window_end
from journeyc.engine.program import Program
from journeyc.engine.trace import Tracer
from journeyc.messages.render import RenderContext, Renderer, RenderError
from journeyc.store.abc import UnitOfWork
from journeyc.store.rows import Instance

__all__ = ["SendPolicy", "held_out"]


def held_out(prog: Program, user: str) -> bool:
    """Whether ``user``, entering ``prog``'s journey, is held out of its sends: when
    ``sha256("JOURNEY:holdout:USER")`` read as a number in [0, 100) is below the
    journey's holdout percentage."""
    # bucket() is never below 0: with no holdout, no need to hash.
    return prog.journey.holdout > 0 and bucket(f"{prog.id}:holdout:{user}") < (prog.journey.holdout)


def _templates(project: ir.ProjectIR) -> list[str]:
    """Every Liquid template of a project: its messages' fields (each locale) and the
    inline bodies of its sends."""
    out = [
        text
        for m in project.messages.values()
        for fields in m.parts.values()
        for f in fields.values()
        for text in (f.default, *f.locales.values())
        if text is not None
    ]
    for j in project.journeys.values():
        for node in j.nodes.values():
            if isinstance(node, ir.SendNode):
                out += [t.inline for t in node.targets if t.inline is not None]
    return out


class SendPolicy:
    """Decides what each ``send`` step does (the module's rules) and records it: the
    outbox row in the engine's unit of work ``rt``, the action, the tracer's record.

    ``reach``: each configured channel's reachability rule, compiled; ``default_quiet``
    the project's quiet hours, for journeys without their own; ``global_cap`` the cap
    over all journeys; ``zone`` the zone of users without one; ``messages`` the
    deployed project's messages (:meth:`prepare`)."""

    def __init__(self, config: Config, renderer: Renderer, rt: UnitOfWork) -> None:
        self.zone = config.engine.zone
        self.default_quiet = config.engine.quiet_hours.rule
        cap = config.engine.global_cap
        self.global_cap = cap.rule if cap is not None else None
        self.reach: dict[str, Predicate] = {
            ch: compile_predicate(lower_expr(config.reachability_expr(ch)))
            for ch in sorted(config.reachability)
        }
        self.renderer = renderer
        self.rt = rt
        self.messages: dict[str, ir.MessageIR] = {}
        # Told of every decision (journeyc why): set with the engine's tracer.
        self.tracer: Tracer | None = None

    def prepare(self, project: ir.ProjectIR) -> None:
        """Take the messages of ``project``, which is being deployed, and compile every
        template it may render."""
        self.messages = dict(project.messages)
        self.renderer.prepare(_templates(project))

    def send(
        self,
        prog: Program,
        inst: Instance,
        node: ir.SendNode,
        scope: Scope | None,
        now_ms: int,
        actions: list[Action],
    ) -> int | None:
        """Send, suppress or hold one ``send`` step of ``inst``, in ``scope`` (the
        user's profile and the event the step reads; None for an instance held out,
        whose send reads nothing). Returns when a send held by quiet hours is due again
        (epoch ms: the caller waits until then), None once it is sent or suppressed."""
        user, jid, step = inst.user_id, prog.id, node.id
        key = f"{jid}:{user}:{inst.entry_no}:{step}"

        def suppress(reason: str, error: str | None = None) -> None:
            if self.tracer is not None:  # a holdout reads nothing of the scope: none shown
                self.tracer.send(prog, inst, node, scope, "suppressed", reason, error, now_ms)
            self.rt.queue(key, inst, step, None, "", {}, now_ms, "suppressed", reason)
            detail: dict[str, Any] = {"reason": reason}
            if error:
                detail["error"] = error
            actions.append(Action(now_ms, user, jid, step, "suppress", detail))

        if inst.holdout:
            suppress("holdout")
            return None
        assert scope is not None  # made for every instance not held out
        profile = scope.profile
        reach = self.reach
        for target in node.targets:
            rule = reach.get(target.channel)
            if rule is not None and rule(scope):
                break
        else:
            suppress("no_channel")
            return None
        quiet = prog.journey.quiet_hours or self.default_quiet
        if quiet is not None:
            zone = user_zone(profile, self.zone)
            now = scope.now
            if in_window(now, quiet.start, quiet.end, zone):
                if quiet.skip:
                    suppress("quiet_hours")
                    return None
                end = window_end(now, quiet.start, quiet.end, zone)
                assert end is not None
                if self.tracer is not None:
                    self.tracer.send(prog, inst, node, scope, "deferred", None, None, now_ms)
                return to_ms(end)
        for cap, journey in ((prog.journey.cap, jid), (self.global_cap, None)):
            if (
                cap is not None
                and self.rt.sends_since(user, now_ms - cap.per * 1000, journey) >= cap.count
            ):
                suppress("cap")
                return None
        values = {name: fn(scope) for name, fn in prog.args.get(step, [])}
        context = RenderContext(
            user_id=user,
            user=profile,
            event=scope.event,
            journey_id=jid,
            step=step,
            now=scope.now,
            values=values,
        )
        message = self.messages.get(target.message) if target.message else None
        # This runs inside the engine's write transaction, holding the store's write
        # lock: that is fine because rendering is bounded work ([render] limits keep
        # one send to milliseconds, and a send past them is suppressed here).
        try:
            content = self.renderer.render(message, target.inline, target.channel, context)
        except RenderError as exc:
            suppress("render_error", str(exc))
            return None
        if self.tracer is not None:
            self.tracer.send(prog, inst, node, scope, "sent", None, None, now_ms)
        self.rt.queue(key, inst, step, target.channel, target.message or "", content, now_ms)
        actions.append(
            Action(
                now_ms,
                user,
                jid,
                step,
                "send",
                {"channel": target.channel, "message": target.message, "content": content},
            )
        )
        return None
