"""A deliberately plain second interpreter of journeys, written from docs/semantics.md.

The engine (``journeyc.engine``) runs compiled IR against a SQLite store; this module
walks the AST directly with in-memory lists and dicts, and is written to be obvious,
not fast. ``tests/test_differential.py`` checks that both produce the same actions.

What it shares with the engine: the parser's AST, the value rules of
:mod:`journeyc.engine.values` (comparison, arithmetic, paths), and local time from
:mod:`journeyc.engine.localtime`. Everything else (the clock, the order of work,
entries, steps, sends, aggregates, hashing, step names) is written again here.

Out of scope: segment and scheduled entries (``when entering``, ``every``), the
reachability rules of a config file (the documented defaults are used), and message
rendering (``content`` is left out of every action).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar
from zoneinfo import ZoneInfo

from journeyc.engine import values as v
from journeyc.engine.localtime import next_local_time, user_zone, window_end
from journeyc.events import Event
from journeyc.lang import ast

__all__ = ["ReferenceRunawayError", "iso", "reference_simulate", "step_names"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_ITEMS = 2_000
"""How many events and timers one simulation may handle before it is called a runaway
(a journey that tracks the event that enters it again, at the same instant)."""


class ReferenceRunawayError(RuntimeError):
    """The simulation handled more than :data:`MAX_ITEMS` events and timers."""


class _QuietRule(Protocol):
    start: int
    end: int
    skip: bool


class _CapRule(Protocol):
    count: int
    per: int


# ---------------------------------------------------------------- small helpers


def to_dt(ms: int) -> datetime:
    """Epoch milliseconds as an aware UTC datetime."""
    return _EPOCH + timedelta(milliseconds=ms)


def to_ms(t: datetime) -> int:
    """An aware datetime as epoch milliseconds."""
    return (t - _EPOCH) // timedelta(milliseconds=1)


def iso(ms: int) -> str:
    """``2026-01-05T10:30:00Z``; milliseconds are written only when there are some."""
    text = to_dt(ms).strftime("%Y-%m-%dT%H:%M:%S")
    if ms % 1000:
        text += f".{ms % 1000:03d}"
    return text + "Z"


def hash_percent(key: str) -> float:
    """``sha256(key)`` read as a number in [0, 100)."""
    return int(hashlib.sha256(key.encode("utf-8")).hexdigest(), 16) / 2**256 * 100


def step_names(steps: Sequence[ast.Step], prefix: str = "") -> dict[int, str]:
    """``id(step)`` → the step's name: its ``as NAME``, else its position.

    ``3`` is the third step of the journey; ``3.2.1`` the first step of the second
    block of step 3 (if/elif/else in order, split arms in order, ``on`` branches in
    order).
    """
    names: dict[int, str] = {}
    for n, step in enumerate(steps, start=1):
        pos = f"{prefix}{n}"
        names[id(step)] = step.label.name if step.label is not None else pos
        for b, block in enumerate(ast.child_blocks(step), start=1):
            names.update(step_names(block, f"{pos}.{b}."))
    return names


# ---------------------------------------------------------------- state


@dataclass
class _Logged:
    """An event of the log: input (history included) and events made by ``track``."""

    seq: int
    user: str
    kind: str
    name: str
    at_ms: int
    props: dict[str, Any]

    def view(self) -> v.EventView:
        return v.EventView(self.name, to_dt(self.at_ms), self.props)


@dataclass
class _Frame:
    """A block being run: its steps, the index of the current one, the event in focus."""

    steps: tuple[ast.Step, ...]
    index: int
    focus: v.EventView | None


@dataclass
class _Instance:
    """One entry of a user into a journey."""

    no: int  # creation order: timers due at the same instant run in this order
    journey: ast.Journey
    user: str
    entered_ms: int
    held_out: bool
    frames: list[_Frame]
    running: bool = True
    goal_done: bool = False
    # Where it is parked: the step, what kind of park, and when the timer is due.
    parked_at: ast.Step | None = None
    park_kind: str = ""  # "wait", "wait_for" or "send" (deferred by quiet hours)
    wake_ms: int | None = None
    last_step: ast.Step | None = None
    # Which of a user's entries into a journey is the latest (the highest): creation
    # order, until an identity merge orders the two users' entries (see merge_users).
    rank: int = -1


_NO_ITEM = object()


@dataclass
class _Ctx:
    """What an expression is evaluated against. ``item`` is the list item in focus
    inside ``any``/``all`` and an item aggregate (elsewhere ``item`` is a profile
    attribute like any other name)."""

    now_ms: int
    user: str
    focus: v.EventView | None
    item: Any = _NO_ITEM


@dataclass
class _Sim:
    journeys: list[ast.Journey]  # sorted by id (name)
    segments: dict[str, ast.Expr]
    default_zone: ZoneInfo
    quiet_default: _QuietRule | None
    global_cap: _CapRule | None
    log: list[_Logged] = field(default_factory=list)
    pending: list[_Logged] = field(default_factory=list)
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    instances: list[_Instance] = field(default_factory=list)
    actions: list[dict[str, Any]] = field(default_factory=list)
    sent: list[tuple[str, str, int]] = field(default_factory=list)  # user, journey, at
    names: dict[int, str] = field(default_factory=dict)
    ranks: int = 0  # the last entry rank handed out (_Instance.rank)

    # ------------------------------------------------------------ bookkeeping

    def profile(self, user: str) -> dict[str, Any]:
        return self.profiles.setdefault(user, {})

    def name_of(self, step: ast.Step) -> str:
        return self.names[id(step)]

    def act(
        self, now_ms: int, inst: _Instance, step: ast.Step | None, action: str, **detail: Any
    ) -> None:
        self.actions.append(
            {
                "at": iso(now_ms),
                "user": inst.user,
                "journey": inst.journey.name,
                "step": None if step is None else self.name_of(step),
                "action": action,
                **detail,
            }
        )

    def append_log(
        self, user: str, kind: str, name: str, at_ms: int, props: dict[str, Any]
    ) -> _Logged:
        ev = _Logged(len(self.log), user, kind, name, at_ms, props)
        self.log.append(ev)
        return ev

    # ------------------------------------------------------------ expressions

    def eval(self, e: ast.Expr, ctx: _Ctx) -> Any:
        """The value of ``e``, by the null rules of LANGUAGE.md."""
        if isinstance(e, ast.Number | ast.String | ast.Bool):
            return e.value
        if isinstance(e, ast.Null):
            return None
        if isinstance(e, ast.Duration):
            return timedelta(seconds=e.seconds)
        if isinstance(e, ast.Name):
            if e.name == "user":
                return self.profile(ctx.user)
            if e.name == "event":
                return ctx.focus
            if e.name == "now":
                return to_dt(ctx.now_ms)
            if e.name == "item" and ctx.item is not _NO_ITEM:
                return ctx.item
            return self.profile(ctx.user).get(e.name)
        if isinstance(e, ast.GetAttr):
            return v.get(self.eval(e.obj, ctx), e.name)
        if isinstance(e, ast.ListExpr):
            return [self.eval(i, ctx) for i in e.items]
        if isinstance(e, ast.Unary):
            x = self.eval(e.operand, ctx)
            return (not v.truthy(x)) if e.op == "not" else v.neg(x)
        if isinstance(e, ast.Binary):
            return self.binary(e, ctx)
        if isinstance(e, ast.Between):
            x = self.eval(e.value, ctx)
            return v.ge(x, self.eval(e.low, ctx)) and v.le(x, self.eval(e.high, ctx))
        if isinstance(e, ast.Call):
            return self.call(e, ctx)
        if isinstance(e, ast.Aggregate):
            return self.aggregate(e, ctx)
        if isinstance(e, ast.ItemTest):
            items = self.eval(e.items, ctx)
            if not isinstance(items, list):
                return None
            held = [
                v.truthy(self.eval(e.cond, _Ctx(ctx.now_ms, ctx.user, ctx.focus, x))) for x in items
            ]
            return any(held) if e.func == "any" else all(held)
        if isinstance(e, ast.SegmentRef):
            seg = self.segments[e.name]
            return v.truthy(self.eval(seg, _Ctx(ctx.now_ms, ctx.user, None)))
        raise TypeError(f"not an expression: {e!r}")

    def binary(self, e: ast.Binary, ctx: _Ctx) -> Any:
        if e.op == "and":
            return v.truthy(self.eval(e.left, ctx)) and v.truthy(self.eval(e.right, ctx))
        if e.op == "or":
            return v.truthy(self.eval(e.left, ctx)) or v.truthy(self.eval(e.right, ctx))
        a, b = self.eval(e.left, ctx), self.eval(e.right, ctx)
        if e.op == "==":
            return v.eq(a, b)
        if e.op == "!=":
            return not v.eq(a, b)
        if e.op == "<":
            return v.lt(a, b)
        if e.op == "<=":
            return v.le(a, b)
        if e.op == ">":
            return v.gt(a, b)
        if e.op == ">=":
            return v.ge(a, b)
        if e.op == "in":
            return v.in_(a, b)
        if e.op == "not in":
            return not v.in_(a, b)
        if e.op == "+":
            return v.add(a, b)
        if e.op == "-":
            return v.sub(a, b)
        if e.op == "*":
            return v.mul(a, b)
        return v.div(a, b)

    def call(self, e: ast.Call, ctx: _Ctx) -> Any:
        args = [self.eval(a, ctx) for a in e.args]
        now = to_dt(ctx.now_ms)
        if e.func == "days_since":
            return v.days_since(now, args[0])
        if e.func == "hours_since":
            return v.hours_since(now, args[0])
        if e.func == "minutes_since":
            return v.minutes_since(now, args[0])
        if e.func == "exists":
            return args[0] is not None
        if e.func == "lower":
            return v.lower(args[0])
        if e.func == "upper":
            return v.upper(args[0])
        if e.func == "contains":
            return v.contains(args[0], args[1])
        raise ValueError(f"unknown function {e.func}()")

    def aggregate(self, e: ast.Aggregate, ctx: _Ctx) -> Any:
        """Scan the log: this user's events named ``e.event`` with
        ``now - within < at <= now`` whose ``where`` holds, in log-time order."""
        lo = None if e.within is None else ctx.now_ms - e.within.seconds * 1000
        matched: list[_Logged] = []
        for ev in self.log:
            if ev.user != ctx.user or ev.kind != "track" or ev.name != e.event:
                continue
            if ev.at_ms > ctx.now_ms or (lo is not None and ev.at_ms <= lo):
                continue
            if e.item is not None:
                matched.append(ev)  # its items are filtered below
                continue
            if e.where is not None and not v.truthy(
                self.eval(e.where, _Ctx(ctx.now_ms, ctx.user, ev.view()))
            ):
                continue
            matched.append(ev)
        matched.sort(key=lambda ev: (ev.at_ms, ev.seq))
        if e.item is None:
            return _reduce(e.func, [_prop(ev.props, e.prop) for ev in matched], matched)
        # Over list items: each object of each event's list, in list order; the
        # event's `where` and value see the item as `item` and the event as `event`.
        values: list[Any] = []
        for ev in matched:
            items = _prop(ev.props, e.prop)
            for x in items if isinstance(items, list) else []:
                inner = _Ctx(ctx.now_ms, ctx.user, ev.view(), x)
                if e.where is None or v.truthy(self.eval(e.where, inner)):
                    values.append(self.eval(e.item, inner))
        return _reduce(e.func, values, [])

    def holds(self, e: ast.Expr | None, ctx: _Ctx) -> bool:
        return e is None or v.truthy(self.eval(e, ctx))

    # ------------------------------------------------------------ the clock

    def run(self, until_ms: int | None) -> None:
        """Visit events and due timers in time order; at equal times, events first
        (by log order), then timers (by instance creation)."""
        handled = 0
        while True:
            ev = min(self.pending, key=lambda x: (x.at_ms, x.seq), default=None)
            timed = [i for i in self.instances if i.running and i.wake_ms is not None]
            inst = min(timed, key=lambda i: (i.wake_ms or 0, i.no), default=None)
            if ev is not None and (inst is None or ev.at_ms <= (inst.wake_ms or 0)):
                if until_ms is not None and ev.at_ms > until_ms:
                    return
                self.pending.remove(ev)
                self.handle_event(ev)
            elif inst is not None:
                if until_ms is not None and (inst.wake_ms or 0) > until_ms:
                    return
                self.handle_timer(inst)
            else:
                return
            handled += 1
            if handled > MAX_ITEMS:
                raise ReferenceRunawayError(f"more than {MAX_ITEMS} events and timers")

    def handle_event(self, ev: _Logged) -> None:
        now = ev.at_ms
        if ev.kind == "identify":
            merge_traits(self.profile(ev.user), ev.props)
            return
        if ev.kind == "alias":
            self.merge_users(ev.props["previousId"], ev.user, now)
            return
        view = ev.view()
        ctx = _Ctx(now, ev.user, view)
        # 1. goals, journeys by id
        for j in self.journeys:
            goal = _clause(j, ast.Goal)
            if goal is None or goal.event != ev.name:
                continue
            entries = [i for i in self.instances if i.journey is j and i.user == ev.user]
            if not entries:
                continue
            latest = max(entries, key=_rank)
            if now < latest.entered_ms or latest.goal_done:
                continue
            if not self.holds(goal.where, ctx):
                continue
            if goal.within is not None:
                if now - latest.entered_ms > goal.within.seconds * 1000:
                    continue
            elif not latest.running:
                continue
            latest.goal_done = True
            self.act(now, latest, None, "goal")
        # 2. exits, instances in creation order
        for inst in self.running_of(ev.user):
            for x in _clauses(inst.journey, ast.ExitWhen):
                if x.event == ev.name and self.holds(x.where, ctx):
                    inst.running = False
                    self.act(now, inst, inst.parked_at, "exit", reason="exit_event")
                    break
        # 3. waits for this event, instances in creation order
        for inst in self.running_of(ev.user):
            step = inst.parked_at
            if not (inst.park_kind == "wait_for" and isinstance(step, ast.WaitFor)):
                continue
            if step.event != ev.name or not inst.running:
                continue
            if not self.holds(step.where, ctx):
                continue
            self.unpark(inst)
            branch = next((b for b in step.branches if b.event == ev.name), None)
            if branch is not None:
                inst.frames.append(_Frame(branch.steps, 0, view))
            else:
                inst.frames[-1].index += 1
            self.run_steps(inst, now)
        # 4. entries, journeys by id
        for j in self.journeys:
            whens = _clauses(j, ast.WhenEvent)
            if not any(w.event == ev.name and self.holds(w.where, ctx) for w in whens):
                continue
            if not self.entry_allowed(j, ev.user, now):
                continue
            held_out = False
            holdout = _clause(j, ast.Holdout)
            if holdout is not None:
                held_out = hash_percent(f"{j.name}:holdout:{ev.user}") < holdout.percent.value
            inst = _Instance(
                no=len(self.instances),
                rank=self.next_rank(),
                journey=j,
                user=ev.user,
                entered_ms=now,
                held_out=held_out,
                frames=[_Frame(j.steps, 0, view)],
            )
            self.instances.append(inst)
            self.act(now, inst, None, "enter")
            self.run_steps(inst, now)

    def running_of(self, user: str) -> list[_Instance]:
        return [i for i in self.instances if i.running and i.user == user]

    def entry_allowed(self, j: ast.Journey, user: str, now: int) -> bool:
        before = [i for i in self.instances if i.journey is j and i.user == user]
        if any(i.running for i in before):
            return False
        if not before:
            return True
        entry = _clause(j, ast.Entry)
        mode = "once" if entry is None else entry.mode
        if mode == "always":
            return True
        if mode == "once" or entry is None or entry.per is None:
            return False
        return now - max(before, key=_rank).entered_ms >= entry.per.seconds * 1000

    def merge_users(self, frm: str, into: str, now: int) -> None:
        """An identity merge (docs/semantics.md, "Identity: anonymous to known"): the
        events, profile, sends and entries of ``frm`` become ``into``'s; of two running
        instances of one journey the one entered first goes on (at equal times,
        ``into``'s), the other exits with reason ``merged``."""
        for ev in self.log:
            if ev.user == frm:
                ev.user = into
        theirs = self.profiles.pop(frm, {})
        mine = self.profile(into)
        for key, value in theirs.items():
            mine.setdefault(key, value)
        self.sent = [(into if u == frm else u, j, at) for u, j, at in self.sent]
        ended: list[_Instance] = []
        for j in self.journeys:
            own = [i for i in self.instances if i.journey is j and i.user == into]
            other = [i for i in self.instances if i.journey is j and i.user == frm]
            if not other:
                continue
            running = [i for i in (*own, *other) if i.running]
            if len(running) == 2:
                first, second = running
                # own's first: at equal times, the known user's goes on
                ended.append(second if second.entered_ms >= first.entered_ms else first)
            stays = [i for i in running if i not in ended]
            # The latest entry: the one that goes on, else the one entered last
            # (at equal times, the anonymous user's, then the one created later).
            side = {id(i): k for k, i in enumerate((*own, *other))}
            latest = (
                stays[0]
                if stays
                else max((*own, *other), key=lambda i: (i.entered_ms, side[id(i)]))
            )
            for inst in other:
                inst.user = into
                inst.rank = self.next_rank()
            latest.rank = self.next_rank()
        for inst in sorted(ended, key=lambda i: i.no):
            inst.running = False
            self.act(now, inst, inst.parked_at, "exit", reason="merged")

    def next_rank(self) -> int:
        self.ranks += 1
        return self.ranks

    def handle_timer(self, inst: _Instance) -> None:
        now = inst.wake_ms
        assert now is not None
        kind, step = inst.park_kind, inst.parked_at
        self.unpark(inst)
        if kind == "wait_for" and isinstance(step, ast.WaitFor):
            branch = next((b for b in step.branches if b.event is None), None)
            if branch is not None:
                # `on timeout` keeps the event in focus of the block around the wait.
                inst.frames.append(_Frame(branch.steps, 0, inst.frames[-1].focus))
            else:
                inst.frames[-1].index += 1
        elif kind == "wait":
            inst.frames[-1].index += 1
        # kind == "send": run the send step again from the start.
        self.run_steps(inst, now)

    def park(self, inst: _Instance, step: ast.Step, kind: str, wake_ms: int) -> None:
        inst.parked_at, inst.park_kind, inst.wake_ms = step, kind, wake_ms

    def unpark(self, inst: _Instance) -> None:
        inst.parked_at, inst.park_kind, inst.wake_ms = None, "", None

    # ------------------------------------------------------------ steps

    def run_steps(self, inst: _Instance, now: int) -> None:
        """Run steps at ``now`` until one waits or the journey ends."""
        while inst.running:
            frame = inst.frames[-1]
            if frame.index >= len(frame.steps):
                inst.frames.pop()
                if not inst.frames:
                    inst.running = False
                    self.act(now, inst, inst.last_step, "exit", reason="completed")
                    return
                inst.frames[-1].index += 1  # the step whose block this was is done
                continue
            step = frame.steps[frame.index]
            inst.last_step = step
            ctx = _Ctx(now, inst.user, frame.focus)
            if isinstance(step, ast.Wait):
                self.park(inst, step, "wait", now + step.duration.seconds * 1000)
                return
            if isinstance(step, ast.WaitUntil):
                zone = user_zone(self.profile(inst.user), self.default_zone)
                due = next_local_time(to_dt(now), step.at.hour, step.at.minute, zone, step.day)
                self.park(inst, step, "wait", to_ms(due))
                return
            if isinstance(step, ast.WaitFor):
                self.park(inst, step, "wait_for", now + step.timeout.seconds * 1000)
                return
            if isinstance(step, ast.If):
                block = step.orelse
                for branch in step.branches:
                    if self.holds(branch.cond, ctx):
                        block = branch.steps
                        break
                if block is not None:
                    inst.frames.append(_Frame(block, 0, frame.focus))
                else:
                    frame.index += 1
                continue
            if isinstance(step, ast.Split):
                h = hash_percent(f"{inst.journey.name}:{self.name_of(step)}:{inst.user}")
                chosen, cumulative = step.arms[-1], 0.0
                for arm in step.arms:
                    cumulative += arm.percent.value
                    if h < cumulative:
                        chosen = arm
                        break
                inst.frames.append(_Frame(chosen.steps, 0, frame.focus))
                continue
            if isinstance(step, ast.Send):
                if self.send(inst, step, now):
                    return  # deferred by quiet hours
                frame.index += 1
                continue
            if isinstance(step, ast.SetAttr):
                value = self.eval(step.value, ctx)
                self.profile(inst.user)[step.name] = value
                self.act(now, inst, step, "set", attr=step.name, value=value)
            elif isinstance(step, ast.UnsetAttr):
                self.profile(inst.user).pop(step.name, None)
                self.act(now, inst, step, "unset", attr=step.name)
            elif isinstance(step, ast.Track):
                props = {a.name: self.eval(a.value, ctx) for a in step.args}
                self.act(now, inst, step, "track", event=step.event)
                self.pending.append(self.append_log(inst.user, "track", step.event, now, props))
            elif isinstance(step, ast.ExitStep):
                inst.running = False
                self.act(now, inst, step, "exit", reason="exit_step")
                return
            frame.index += 1

    def send(self, inst: _Instance, step: ast.Send, now: int) -> bool:
        """Do one send step; True when quiet hours defer it (the instance is parked)."""
        if inst.held_out:
            self.act(now, inst, step, "suppress", reason="holdout")
            return False
        profile = self.profile(inst.user)
        chosen = next(((ch, msg) for ch, msg in _targets(step) if reachable(ch, profile)), None)
        if chosen is None:
            self.act(now, inst, step, "suppress", reason="no_channel")
            return False
        channel, message = chosen
        quiet: _QuietRule | None = None
        clause = _clause(inst.journey, ast.QuietHours)
        if clause is not None:
            quiet = _Quiet(
                clause.start.hour * 60 + clause.start.minute,
                clause.end.hour * 60 + clause.end.minute,
                clause.skip,
            )
        elif self.quiet_default is not None:
            quiet = self.quiet_default
        if quiet is not None:
            zone = user_zone(profile, self.default_zone)
            end = window_end(to_dt(now), quiet.start, quiet.end, zone)
            if end is not None:
                if quiet.skip:
                    self.act(now, inst, step, "suppress", reason="quiet_hours")
                    return False
                self.park(inst, step, "send", to_ms(end))
                return True
        caps: list[tuple[_CapRule, str | None]] = []
        cap = _clause(inst.journey, ast.Cap)
        if cap is not None:
            caps.append((_Cap(cap.count, cap.per.seconds), inst.journey.name))
        if self.global_cap is not None:
            caps.append((self.global_cap, None))
        for rule, journey in caps:
            recent = [
                1
                for user, j, at in self.sent
                if user == inst.user
                and (journey is None or j == journey)
                and at > now - rule.per * 1000
            ]
            if len(recent) >= rule.count:
                self.act(now, inst, step, "suppress", reason="cap")
                return False
        self.sent.append((inst.user, inst.journey.name, now))
        self.act(now, inst, step, "send", channel=channel, message=message)
        return False


@dataclass
class _Quiet:
    start: int
    end: int
    skip: bool


@dataclass
class _Cap:
    count: int
    per: int


# ---------------------------------------------------------------- pure pieces


def _rank(inst: _Instance) -> int:
    return inst.rank


def merge_traits(profile: dict[str, Any], traits: Mapping[str, Any]) -> None:
    """An identify call: traits merge; a trait set to null is removed."""
    for key, value in traits.items():
        if value is None:
            profile.pop(key, None)
        else:
            profile[key] = value


def reachable(channel: str, p: Mapping[str, Any]) -> bool:
    """The documented default reachability rules."""
    if channel == "push":
        return v.eq(p.get("push_enabled"), True)
    if channel == "email":
        return p.get("email") is not None and not v.truthy(p.get("email_unsubscribed"))
    if channel == "sms":
        return p.get("phone") is not None and v.eq(p.get("sms_opt_in"), True)
    if channel == "whatsapp":
        return p.get("phone") is not None and v.eq(p.get("whatsapp_opt_in"), True)
    return channel in ("inapp", "webhook")


def _targets(step: ast.Send) -> list[tuple[str, str | None]]:
    """(channel, message name) per target: a channel uses the message written after it,
    or the next one written; an inline string has no name (None)."""
    out: list[tuple[str, str | None]] = []
    for i, t in enumerate(step.targets):
        ref = next((u.message for u in step.targets[i:] if u.message is not None), None)
        out.append((t.channel, None if ref is None else ref.name))
    return out


_C = TypeVar("_C")


def _clauses(j: ast.Journey, kind: type[_C]) -> list[_C]:
    return [c for c in j.clauses if isinstance(c, kind)]


def _clause(j: ast.Journey, kind: type[_C]) -> _C | None:
    found = _clauses(j, kind)
    return found[0] if found else None


def _prop(props: Mapping[str, Any], path: Sequence[str]) -> Any:
    value: Any = props
    for name in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(name)
    return value


def _is_number(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _key(x: object) -> tuple[str, object] | None:
    if isinstance(x, bool):
        return ("bool", x)
    if _is_number(x):
        return ("number", x)
    if isinstance(x, str):
        return ("string", x)
    return None


def _reduce(func: str, values: list[Any], events: list[_Logged]) -> Any:
    """An aggregate over the ``values`` taken of matched events (or list items) in
    (at, seq, place in the list) order; ``events`` are the matched events."""
    if func == "count":
        return len(events)
    if func == "last":
        return events[-1].view() if events else None
    if func == "first":
        return events[0].view() if events else None
    numbers = [x for x in values if _is_number(x)]
    strings = [x for x in values if isinstance(x, str)]
    if func == "sum":
        return sum(numbers)
    if func == "avg":
        return sum(numbers) / len(numbers) if numbers else None
    if func == "min":  # numbers rank below strings
        return min(numbers) if numbers else (min(strings) if strings else None)
    if func == "max":
        return max(strings) if strings else (max(numbers) if numbers else None)
    keys = [_key(x) for x in values]
    if func == "distinct":
        return len({k for k in keys if k is not None})
    if func == "top":
        counts: dict[tuple[str, object], int] = {}
        for k in keys:
            if k is not None:
                counts[k] = counts.get(k, 0) + 1
        if not counts:
            return None
        most = max(counts.values())
        # Ties go to the value seen most recently: the last such one in (at, seq) order.
        return [x for k, x in zip(keys, values, strict=True) if k and counts[k] == most][-1]
    raise ValueError(f"unknown aggregate {func}")


# ---------------------------------------------------------------- entry point


def reference_simulate(
    trees: list[ast.SourceFile],
    events: list[Event],
    *,
    default_zone: str = "UTC",
    start_ms: int | None = None,
    until_ms: int | None = None,
    quiet_default: _QuietRule | None = None,
    global_cap: _CapRule | None = None,
) -> list[dict[str, Any]]:
    """Simulate ``events`` against the journeys of ``trees``; return the actions.

    Input is sorted by time (stably) and logged up front, once per ``message_id``
    (a repeat is ignored, as the event log does). Events before ``start_ms``
    are history: logged (aggregates count them; identify calls update profiles) with
    no reactions. The clock stops at ``until_ms``: nothing due after it happens.
    ``quiet_default`` (``.start``/``.end`` in minutes, ``.skip``) and ``global_cap``
    (``.count``/``.per`` in seconds) are the project-wide policies.
    """
    journeys = sorted((j for t in trees for j in t.journeys), key=lambda j: j.name)
    for j in journeys:
        for c in j.clauses:
            if isinstance(c, ast.WhenSegment | ast.Every):
                raise NotImplementedError("the reference runs event entries only")
    segments = {s.name: s.expr for t in trees for s in t.segments}
    sim = _Sim(journeys, segments, ZoneInfo(default_zone), quiet_default, global_cap)
    for j in journeys:
        sim.names.update(step_names(j.steps))
    seen: set[str] = set()
    names: dict[str, str] = {}  # an id merged into another user: that user
    for e in sorted(events, key=lambda e: e.at_ms):
        if e.message_id in seen:
            continue  # idempotent ingest: a repeated messageId is ignored
        seen.add(e.message_id)
        user, props = names.get(e.user_id, e.user_id), dict(e.props)
        if e.kind == "alias":
            # Logged only when it merges two users, the first not another's already.
            previous = props["previousId"]
            if previous in names or previous == user:
                continue
            for alias, named in list(names.items()):
                if named == previous:
                    names[alias] = user
            names[previous] = user
        logged = sim.append_log(user, e.kind, e.name, e.at_ms, props)
        if start_ms is not None and e.at_ms < start_ms:
            if e.kind == "alias":
                for ev in sim.log:
                    if ev.user == props["previousId"]:
                        ev.user = user
                for key, value in sim.profiles.pop(props["previousId"], {}).items():
                    sim.profile(user).setdefault(key, value)
            if e.kind == "identify":
                merge_traits(sim.profile(user), e.props)
        else:
            sim.pending.append(logged)
    sim.run(until_ms)
    return sim.actions
