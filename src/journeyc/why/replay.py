"""Why a user did (or did not) get a message: their events replayed through the
engine with a tracer.

The engine is deterministic, so nothing is logged in production for this: the user's
events (under every id that names them) are replayed by the simulator's driver
(:class:`~journeyc.engine.simulate.Replay`, as ``journeyc test`` runs each test) in
a scratch in-memory store, through the journey versions the store deployed, at the
times it deployed them, with a :class:`~journeyc.why.tracer.WhyTracer` on the
engine. The replay's actions are compared with those the store recorded, so the
answer says when it differs (docs/why.md lists where it can).
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable, Mapping
from contextlib import closing
from dataclasses import dataclass
from typing import Any

from journeyc.compile import ir
from journeyc.config import Config
from journeyc.engine.actions import iso_ms
from journeyc.engine.deploy import deployed_project
from journeyc.engine.localtime import user_zone
from journeyc.engine.parallel import fill_store
from journeyc.engine.simulate import Replay
from journeyc.fastjson import dumps, loads
from journeyc.store.abc import Store
from journeyc.store.open import open_simulation_store
from journeyc.store.rows import DeployedJourney
from journeyc.why.model import Decision, JourneyWhy, MessageReach, Mismatch, WhyReport
from journeyc.why.tracer import WhyTracer, entry_rule_text, trigger_text

__all__ = [
    "SIMULATED_RUN",
    "UnknownNameError",
    "UnknownUserError",
    "WhyError",
    "explain_user",
    "simulated_run",
]

SIMULATED_RUN = "simulate.run"
"""The store setting in which ``journeyc simulate --db`` keeps what it ran (the
project's IR, ``--until``, the config), for ``journeyc why``: the journeys table
keeps each version's steps, not its messages or segments."""

DAEMON_SLACK_MS = 60_000
"""How long after the replay's time a daemon's recorded action may be and still be
the same action: its engine handles an event, or a due wait, when it runs (within
milliseconds when it keeps up; longer behind a backlog)."""

TRACKED = "jc-track:"
"""How the message ids of the events ``track`` steps log begin (engine/core.py)."""

COMPARED = ("enter", "send", "suppress", "goal", "exit")
"""The actions a replay is checked against the store's action log with."""


class WhyError(Exception):
    """A question ``why`` cannot answer (the message says why)."""


class UnknownUserError(WhyError):
    """The store knows no such user."""


class UnknownNameError(WhyError):
    """``journey`` or ``message`` (``param``) names nothing the store deployed;
    ``detail`` says so (the CLI names the option, the API the query parameter)."""

    def __init__(self, param: str, detail: str) -> None:
        super().__init__(f"{param}: {detail}")
        self.param = param
        self.detail = detail


def simulated_run(
    project: ir.ProjectIR,
    until_ms: int | None,
    config: Config,
    profiles: Mapping[str, Mapping[str, Any]] | None = None,
) -> str:
    """The value of :data:`SIMULATED_RUN` for a simulation: its project, ``--until``,
    config and the starting profiles it loaded (``--profiles``)."""
    return dumps(
        {
            "project": project.model_dump(mode="json"),
            "until": until_ms,
            "config": config.model_dump(mode="json", by_alias=True),
            "profiles": profiles or {},
        },
        default=str,
    )


@dataclass(frozen=True)
class _Source:
    """What the store says was deployed: the projects in order, with their times."""

    phases: list[tuple[int, ir.ProjectIR]]
    until_ms: int | None
    horizon_ms: int | None
    simulated: bool  # a simulation's store (journeyc simulate --db)
    config: Config | None  # the simulation's
    profiles: dict[str, dict[str, Any]] | None  # the simulation's starting profiles
    notes: list[str]


def _source(store: Store, now_ms: int | None) -> _Source:
    """The deployments to replay through, and when the replay stops."""
    versions = store.replay_reads().deployed_versions()
    if not versions:
        raise WhyError(f"{store.path}: no journey was ever deployed into this store")
    notes: list[str] = []
    run = store.get_setting(SIMULATED_RUN)
    base: ir.ProjectIR | None
    until: int | None
    config: Config | None = None
    profiles: dict[str, dict[str, Any]] | None = None
    if run is not None:
        data = loads(run)
        base = ir.ProjectIR.model_validate(data["project"])
        until = data.get("until")
        config = Config.model_validate(data["config"])
        profiles = data.get("profiles", {})
    else:
        base = deployed_project(store)
        until = now_ms
    if base is None:
        base = ir.ProjectIR()
        notes.append(
            "the store keeps no deployed project (messages, segments): sends render no "
            "declared message, and segment conditions are false"
        )
    phases = _phases(versions, base)
    retired = sorted(
        {v.journey_id for v in versions} - {v.journey_id for v in versions if v.active}
    )
    if retired:
        notes.append(
            "retired journeys (" + ", ".join(retired) + ") are replayed as deployed to the end: "
            "the store does not keep when a journey was retired"
        )
    horizon = store.replay_reads().last_activity() if run is not None else None
    return _Source(phases, until, horizon, run is not None, config, profiles, notes)


def _phases(versions: list[DeployedJourney], base: ir.ProjectIR) -> list[tuple[int, ir.ProjectIR]]:
    """The project deployed at each deployment time: every journey's latest version
    deployed by then, with the messages and segments of ``base``."""
    phases: list[tuple[int, ir.ProjectIR]] = []
    current: dict[str, ir.JourneyIR] = {}
    times = sorted({v.deployed_at for v in versions})
    for t in times:
        for v in versions:
            if v.deployed_at == t:
                current[v.journey_id] = ir.JourneyIR.model_validate_json(v.ir_json)
        phases.append(
            (
                t,
                ir.ProjectIR(
                    journeys=dict(sorted(current.items())),
                    messages=base.messages,
                    segments=base.segments,
                ),
            )
        )
    return phases


_Key = tuple[str | None, str | None, str, str | None, str | None, str | None, str | None]
"""What an action (or a segment change) is compared by, beside its time: journey,
step, kind, channel, message, reason, segment."""

Timed = tuple[int, _Key]


def _actions(
    rows: Iterable[tuple[int, str | None, str | None, str, dict[str, Any]]],
) -> list[Timed]:
    """``(at, journey, step, action, detail)`` rows as compared (enter, send,
    suppress, goal, exit only)."""
    return [
        (at, (journey, step, action, d.get("channel"), d.get("message"), d.get("reason"), None))
        for at, journey, step, action, d in rows
        if action in COMPARED
    ]


def _segments(rows: Iterable[tuple[int, str, bool]]) -> list[Timed]:
    """``(at, segment, entered)`` changes as compared."""
    return [
        (at, (None, None, "segment_entered" if entered else "segment_left", None, None, None, seg))
        for at, seg, entered in rows
    ]


def _compare(replayed: list[Timed], recorded: list[Timed], slack_ms: int) -> list[Mismatch]:
    """What is on one side and not the other. A recorded action matches a replayed
    one with the same key, at its time or up to ``slack_ms`` after it (a daemon's
    engine handles an event, and a due wait, a moment after its time); each side is
    taken in order."""
    pending: dict[_Key, deque[int]] = defaultdict(deque)
    for at, key in replayed:
        pending[key].append(at)
    unmatched: list[tuple[str, int, _Key]] = []
    for at, key in recorded:
        times = pending[key]
        while times and at - times[0] > slack_ms:  # replayed, never recorded
            unmatched.append(("replay", times.popleft(), key))
        if times and 0 <= at - times[0] <= slack_ms:
            times.popleft()
        else:
            unmatched.append(("store", at, key))
    unmatched += [("replay", at, key) for key, times in pending.items() for at in times]
    out = []
    for side, at, (journey, step, action, channel, message, reason, segment) in sorted(
        unmatched, key=lambda u: (u[1], u[0], str(u[2]))
    ):
        detail = {
            k: v
            for k, v in (
                ("channel", channel),
                ("message", message),
                ("reason", reason),
                ("segment", segment),
            )
            if v is not None
        }
        out.append(
            Mismatch(
                side="store" if side == "store" else "replay",
                at=iso_ms(at),
                journey=journey,
                step=step,
                action=action,
                detail=detail,
            )
        )
    return out


def _sends(j: ir.JourneyIR, message: str) -> list[str]:
    """The steps of ``j`` that may send ``message``."""
    return [
        n.id
        for n in j.nodes.values()
        if isinstance(n, ir.SendNode) and any(t.message == message for t in n.targets)
    ]


def _reach(message: str, steps: list[str], decisions: list[Decision]) -> MessageReach:
    """Whether the decisions of one journey got the user ``message``, and if not,
    where they stopped: the latest send of it, else the latest rule that kept them out
    or the step their latest entry ended (or waits) at."""

    def never(stopped_at: str | None, why: str) -> MessageReach:
        return MessageReach(
            message=message, outcome="never_reached", stopped_at=stopped_at, why=why
        )

    sends = [d for d in decisions if d.kind == "send" and d.step in steps]
    got = [d for d in sends if d.outcome == "sent" and d.message == message]
    if got:
        d = got[-1]
        return MessageReach(
            message=message, outcome="sent", stopped_at=d.step, why=f"{d.summary} at {d.at}"
        )
    final = [d for d in sends if d.outcome != "deferred"]
    if final:
        d = final[-1]
        reason = d.reason or "sent_other"  # the step sent another channel's message
        return MessageReach(
            message=message,
            outcome="suppressed",
            reason=reason,
            stopped_at=d.step,
            why=f"step {d.step} at {d.at}: {d.summary}",
        )
    if not decisions:
        return never(
            "trigger", "no event, segment change or schedule of the user triggers this journey"
        )
    last = decisions[-1]
    earlier = ""
    ended = next((d for d in reversed(decisions) if d.kind == "exit"), None)
    if last.kind in ("trigger", "entry") and last.outcome != "entered":
        if ended is not None:
            earlier = f"; the entry before ended at step {ended.step} at {ended.at}"
        where = "entry" if last.kind == "entry" else "trigger"
        return never(where, f"at {last.at}, {last.summary}{earlier}")
    if last.kind == "wait" or (last.kind == "send" and last.outcome == "deferred"):
        return never(last.step, f"not reached yet: at step {last.step}, {last.summary}")
    assert ended is not None  # an entry that does not wait has ended
    why = f"the entry ended at step {ended.step} at {ended.at} ({ended.summary}"
    exits = [d for d in decisions if d.kind == "exit_check" and d.outcome == "matched"]
    if ended.reason == "exit_event" and exits:
        why += f": {exits[-1].event_name}"
    turns = [d for d in decisions if d.kind in ("branch", "split") and d.entry_no == ended.entry_no]
    if turns:
        why += f"; at step {turns[-1].step} it took {turns[-1].outcome}"
    return never(ended.step, why + ")")


def _for_message(decisions: list[Decision], steps: list[str]) -> list[Decision]:
    """The decisions leading to sends of one message: all but the other sends."""
    return [d for d in decisions if d.kind != "send" or d.step in steps]


def explain_user(
    store: Store,
    user_id: str,
    *,
    config: Config | None = None,
    now_ms: int | None = None,
    journey: str | None = None,
    message: str | None = None,
) -> WhyReport:
    """Replay ``user_id``'s events and say every decision made for them.

    ``now_ms``: where a daemon's store is replayed to (the wall clock; a simulation's
    store is replayed as the simulation ran). ``config``: the daemon's (default: the
    simulation's, for its store, else the defaults). ``journey``, ``message``: only
    that journey, only the decisions leading to sends of that message.

    Raises :class:`UnknownUserError` for a user the store does not know,
    :class:`UnknownNameError` for an unknown journey or message, :class:`WhyError`
    for a store where nothing was deployed.
    """
    with store.replay_reads().snapshot():  # the events and the recorded actions of one moment
        return _explain(store, user_id, config, now_ms, journey, message)


def _explain(
    store: Store,
    user_id: str,
    config: Config | None,
    now_ms: int | None,
    journey: str | None,
    message: str | None,
) -> WhyReport:
    """The body of :func:`explain_user`."""
    reads = store.replay_reads()
    ids = store.identities_of(user_id)
    user = ids[0]
    if not reads.is_known(user):
        raise UnknownUserError(f"no user {user_id!r} in {store.path}")
    src = _source(store, now_ms)
    config = config or src.config or Config()
    last_project = src.phases[-1][1]
    if journey is not None and journey not in last_project.journeys:
        known = ", ".join(sorted(last_project.journeys)) or "none"
        raise UnknownNameError("journey", f"no journey {journey!r} was deployed (known: {known})")
    if message is not None and not any(_sends(j, message) for j in last_project.journeys.values()):
        raise UnknownNameError("message", f"no deployed journey sends a message {message!r}")
    start_ms, first = src.phases[0]
    # The events the journeys' `track` steps logged are the replay's to log again.
    events = [e for e in reads.user_events(ids) if not e.message_id.startswith(TRACKED)]
    with closing(open_simulation_store(":memory:")) as scratch:
        # A simulation's starting profiles as it loaded them; a daemon's profiles are
        # made by events only: as they stood at the first deployment (history).
        start = (
            {uid: src.profiles[uid] for uid in ids if uid in src.profiles}
            if src.profiles is not None
            else reads.profile_before(ids, start_ms)
        )
        fill_store(scratch, start, [])
        with scratch.bulk():
            replay = Replay(
                first, events, scratch, config, start_ms, src.until_ms, None, True, True
            )
            engine = replay.engine
            tracer = WhyTracer.for_engine(engine, user, dict(first.segments))
            engine.tracer = tracer
            for t, project in src.phases[1:]:
                replay.until_ms = t - 1
                replay.run()
                engine.deploy(project, t)
            replay.until_ms = src.until_ms
            replay.run(src.horizon_ms)
        zone = user_zone(scratch.get_profile(user), engine.zone).key
        changed = [
            (c.at_ms, c.segment, c.entered)
            for c in scratch.replay_reads().recorded_segment_changes([user])
        ]
    slack = 0 if src.simulated else DAEMON_SLACK_MS  # a simulation's: exact
    mismatches = _compare(
        _actions((a.at_ms, a.journey, a.step, a.action, a.detail) for a in replay.actions)
        + _segments(changed),
        _actions(
            (r.at_ms, r.journey_id, r.step, r.action, r.detail) for r in reads.recorded_actions(ids)
        )
        + _segments((c.at_ms, c.segment, c.entered) for c in reads.recorded_segment_changes(ids)),
        slack,
    )
    notes = list(src.notes)
    if len(ids) > 1:
        notes.append(
            "merged ids (" + ", ".join(ids[1:]) + "): their events are replayed as "
            f"{user}'s from the start (split arms and holdouts drawn before the merge "
            "read the other id)"
        )
    journeys = _journeys(tracer.by_journey(), src.phases, journey, message)
    # A simulation's clock ran while any user had work: to its last action or event.
    until = src.until_ms if src.until_ms is not None else src.horizon_ms
    return WhyReport(
        user=user,
        ids=ids,
        timezone=zone,
        replayed_from=iso_ms(start_ms),
        replayed_until=iso_ms(until) if until is not None else None,
        journeys=journeys,
        agrees=not mismatches,
        mismatches=mismatches,
        notes=notes,
    )


def _journeys(
    decided: dict[str, list[Decision]],
    phases: list[tuple[int, ir.ProjectIR]],
    only: str | None,
    message: str | None,
) -> list[JourneyWhy]:
    """One :class:`JourneyWhy` per journey with decisions (with ``message``: per
    journey that sends it), by id."""
    latest: dict[str, ir.JourneyIR] = {}
    versions: dict[str, list[str]] = {}
    for _, project in phases:
        for jid, j in project.journeys.items():
            latest[jid] = j
            seen = versions.setdefault(jid, [])
            if j.version not in seen:
                seen.append(j.version)
    out = []
    for jid in sorted(latest):
        j = latest[jid]
        decisions = decided.get(jid, [])
        if only is not None and jid != only:
            continue
        reach = None
        if message is not None:
            steps = sorted(
                {
                    s
                    for _, p in phases
                    if jid in p.journeys
                    for s in _sends(p.journeys[jid], message)
                }
            )
            if not steps:
                continue
            decisions = _for_message(decisions, steps)
            reach = _reach(message, steps, decisions)
        elif not decisions:
            continue
        out.append(
            JourneyWhy(
                journey=jid,
                title=j.title,
                triggers=[trigger_text(t) for t in j.triggers],
                entry_rule=entry_rule_text(j.entry),
                versions=versions[jid],
                entries=sum(1 for d in decisions if d.kind == "entry" and d.outcome == "entered"),
                decisions=decisions,
                message=reach,
            )
        )
    return out
