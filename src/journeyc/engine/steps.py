"""The step interpreter: runs a journey instance's steps until it waits or ends
(docs/semantics.md, "Steps").

:class:`Steps` runs from a step (:meth:`Steps.run`: an entry's first step, the one
after a wait), and ends waits: a wait whose time came (:meth:`Steps.wake`) and a
``wait for`` whose event came (:meth:`Steps.resume_at`). Waits, exits and split arms
are written to the engine's unit of work; sends go to the send policy
(:mod:`journeyc.engine.send_policy`), whose hold for quiet hours is a wait here.

What a step needs of the user (the profile, a scope to evaluate in, a change of
traits, logging a ``track`` step's event) it asks of the engine running it, which is
passed in (:class:`StepHost`): the interpreter holds no reference back to the engine,
so an engine is freed by reference counting.
"""

from __future__ import annotations

from typing import Any, Protocol
from zoneinfo import ZoneInfo

from journeyc.compile import ir
from journeyc.engine.actions import Action
from journeyc.engine.aggregates import from_ms, to_ms
from journeyc.engine.buckets import bucket
from journeyc.engine.expr import Scope
from journeyc.engine.localtime import next_local_time, user_zone
from journeyc.engine.program import Program
from journeyc.engine.send_policy import SendPolicy
from journeyc.engine.trace import Tracer
from journeyc.engine.values import EventView, json_value
from journeyc.events import Event
from journeyc.store.abc import UnitOfWork
from journeyc.store.rows import Instance, StoredEvent

__all__ = ["KEPT_VIEWS", "StepHost", "Steps", "event_dict"]

KEPT_VIEWS = 65_536  # events in focus whose views are kept (a view per instance's event)


def event_dict(name: str, at_ms: int, props: dict[str, Any]) -> dict[str, Any]:
    """An event as an instance keeps it (its ``entry``, each ``focus``)."""
    return {"name": name, "at": at_ms, "props": props}


def _view(d: dict[str, Any] | None) -> EventView | None:
    return None if d is None else EventView(d["name"], from_ms(d["at"]), d["props"])


class StepHost(Protocol):
    """What a step asks of the engine running it (engine/core.py's own methods)."""

    def _profile(self, user: str) -> dict[str, Any]: ...

    def _scope(
        self,
        user: str,
        now_ms: int,
        event: EventView | None,
        profile: dict[str, Any] | None = None,
    ) -> Scope: ...

    def _set_traits(self, user: str, changes: dict[str, Any], now_ms: int) -> None: ...

    def _log_tracked(self, event: Event) -> None: ...


class Steps:
    """The step interpreter of one engine: ``rt`` its unit of work, ``zone`` the zone
    of users without one, ``send_policy`` what ``send`` steps do.

    ``since_ms``: while a late event's steps run (its time before now), its time,
    which the waits they start are measured from (the engine sets it; see
    ``Engine._on_event``). ``tracer``: told of every decision (engine/trace.py), set
    with the engine's."""

    def __init__(self, rt: UnitOfWork, zone: ZoneInfo, send_policy: SendPolicy) -> None:
        self.rt = rt
        self.zone = zone
        self.send_policy = send_policy
        self.since_ms: int | None = None
        self.tracer: Tracer | None = None
        self._views: dict[int, tuple[dict[str, Any], EventView | None]] = {}  # focus()

    def focus(self, prog: Program, inst: Instance, node_id: str) -> EventView | None:
        """The event the step ``node_id`` of ``inst`` reads: the one that resumed the
        innermost ``wait for … on EVENT`` around it, else the entry's."""
        wid = prog.focus_of.get(node_id)
        focus = inst.vars.get("focus", {})
        d = focus[wid] if wid is not None and wid in focus else inst.vars.get("entry")
        if d is None:
            return None
        # The event a step reads is read by every step of the instance: one view of it.
        hit = self._views.get(id(d))
        if hit is not None and hit[0] is d:
            return hit[1]
        if len(self._views) >= KEPT_VIEWS:
            self._views.clear()
        view = _view(d)
        self._views[id(d)] = (d, view)  # d is kept with it: its id is not reused
        return view

    # ------------------------------------------------------------ waits ending
    def wake(
        self, engine: StepHost, prog: Program, inst: Instance, now_ms: int, actions: list[Action]
    ) -> None:
        """The wait ``inst`` is at ended at its time: run the step after it (a ``wait
        for``'s ``on timeout`` branch; a send held by quiet hours again)."""
        node = prog.journey.nodes[inst.node]
        if self.tracer is not None:
            self.tracer.timer(inst, node, now_ms)
        if inst.vars.pop("deferred", False):
            nxt: str | None = node.id  # a send held by quiet hours runs again
        elif type(node) is ir.WaitForNode:
            nxt = node.on_timeout if node.on_timeout is not None else node.next
        else:
            nxt = node.next
        self.run(engine, prog, inst, nxt, now_ms, actions)

    def resume_at(self, inst: Instance, node: ir.WaitForNode, ev: StoredEvent) -> str | None:
        """The step ``inst`` goes on at when ``ev`` ends its ``wait for`` at ``node``:
        the ``on EVENT`` branch, with the event in focus there, or else the step after
        the wait (the caller runs it)."""
        if node.on_event is None:
            return node.next
        inst.vars.setdefault("focus", {})[node.id] = event_dict(ev.name, ev.at_ms, ev.props)
        return node.on_event

    # ------------------------------------------------------------ running steps
    def run(
        self,
        engine: StepHost,
        prog: Program,
        inst: Instance,
        node_id: str | None,
        now_ms: int,
        actions: list[Action],
    ) -> None:
        """Run steps from ``node_id`` until the instance waits or ends."""
        inst.status, inst.wake_at, inst.waiting_for = "active", None, None
        nodes = prog.journey.nodes
        user = inst.user_id
        while node_id is not None:
            node = nodes[node_id]
            inst.node = node_id
            # By exact class: isinstance() on the IR's pydantic classes costs ~4x more.
            if type(node) is ir.WaitNode:
                self.wait(inst, self._wait_end(now_ms, node.seconds))
                return
            if type(node) is ir.WaitUntilNode:
                zone = user_zone(engine._profile(user), self.zone)
                since = self.since_ms
                start = from_ms(now_ms if since is None else since)
                at = next_local_time(start, node.hour, node.minute, zone, node.day)
                self.wait(inst, max(now_ms, to_ms(at)))
                return
            if type(node) is ir.WaitForNode:
                self.wait(inst, self._wait_end(now_ms, node.timeout), node.event)
                return
            if type(node) is ir.BranchNode:
                scope = engine._scope(user, now_ms, self.focus(prog, inst, node_id))
                chosen: str | None = node.orelse if node.orelse is not None else node.next
                for pred, case in zip(prog.preds[node.id], node.cases, strict=True):
                    if pred(scope):
                        chosen = case.then if case.then is not None else node.next
                        break
                if self.tracer is not None:
                    self.tracer.branch(prog, inst, node, scope, now_ms)
                node_id = chosen
                continue
            if type(node) is ir.SplitNode:
                node_id = self._split(prog, inst, node)
                continue
            if type(node) is ir.SendNode:
                # A held-out instance's send reads nothing: no scope (no profile read).
                made = (
                    None
                    if inst.holdout
                    else engine._scope(user, now_ms, self.focus(prog, inst, node_id))
                )
                held = self.send_policy.send(prog, inst, node, made, now_ms, actions)
                if held is not None:  # quiet hours: the step runs again when they end
                    inst.vars["deferred"] = True
                    self.wait(inst, held)
                    return
            elif type(node) is ir.SetNode:
                scope = engine._scope(user, now_ms, self.focus(prog, inst, node_id))
                value = json_value(prog.values[node.id](scope))
                engine._set_traits(user, {node.attr: value}, now_ms)
                actions.append(
                    Action(
                        now_ms, user, prog.id, node.id, "set", {"attr": node.attr, "value": value}
                    )
                )
            elif type(node) is ir.UnsetNode:
                engine._set_traits(user, {node.attr: None}, now_ms)
                actions.append(Action(now_ms, user, prog.id, node.id, "unset", {"attr": node.attr}))
            elif type(node) is ir.TrackNode:
                self._track(engine, prog, inst, node, now_ms, actions)
            elif type(node) is ir.ExitNode:
                self.finish(inst, "exited", "exit_step", now_ms, actions)
                return
            node_id = node.next
        self.finish(inst, "completed", "completed", now_ms, actions)

    def _wait_end(self, now_ms: int, seconds: int) -> int:
        """When a wait of ``seconds`` starting now ends: measured from the late event's
        time while one is handled (:attr:`since_ms`), never before now."""
        since = self.since_ms
        if since is None:
            return now_ms + seconds * 1000
        return max(now_ms, since + seconds * 1000)

    def wait(self, inst: Instance, wake_at: int, event: str | None = None) -> None:
        """``inst`` waits at its step until ``wake_at`` (epoch ms) or, with ``event``,
        until that event comes first."""
        if self.tracer is not None:
            self.tracer.wait(inst, wake_at, event)
        inst.status, inst.wake_at, inst.waiting_for = "waiting", wake_at, event
        self.rt.save(inst)

    def finish(
        self, inst: Instance, status: str, reason: str, now_ms: int, actions: list[Action]
    ) -> None:
        """End ``inst``'s entry with ``status`` (``completed``, ``exited``) for
        ``reason`` (docs/semantics.md: the exit reasons)."""
        if self.tracer is not None:
            self.tracer.finish(inst, reason, now_ms)
        inst.status, inst.wake_at, inst.waiting_for = status, None, None
        self.rt.save(inst)
        step = inst.node or None
        actions.append(
            Action(now_ms, inst.user_id, inst.journey_id, step, "exit", {"reason": reason})
        )

    def _split(self, prog: Program, inst: Instance, node: ir.SplitNode) -> str | None:
        b = bucket(f"{prog.id}:{node.id}:{inst.user_id}")
        total = 0.0
        chosen = node.arms[-1]
        for arm in node.arms:
            total += arm.percent
            if b < total:
                chosen = arm
                break
        inst.arm = chosen.name
        if self.tracer is not None:
            self.tracer.split(prog, inst, node, b, chosen)
        self.rt.record_arm(inst)
        return chosen.then if chosen.then is not None else node.next

    def _track(
        self,
        engine: StepHost,
        prog: Program,
        inst: Instance,
        node: ir.TrackNode,
        now_ms: int,
        actions: list[Action],
    ) -> None:
        scope = engine._scope(inst.user_id, now_ms, self.focus(prog, inst, node.id))
        props = {name: json_value(fn(scope)) for name, fn in prog.args.get(node.id, [])}
        key = f"jc-track:{prog.id}:{inst.user_id}:{inst.entry_no}:{node.id}"
        engine._log_tracked(Event(key, inst.user_id, "track", node.event, now_ms, props, now_ms))
        actions.append(
            Action(now_ms, inst.user_id, prog.id, node.id, "track", {"event": node.event})
        )
