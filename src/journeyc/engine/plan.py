"""``journeyc plan``: what deploying a project into a store would change, computed
without writing anything.

The rules are the engine's own (:meth:`journeyc.engine.core.Engine.deploy`), read here
rather than run:

- journeys: one in the project and not active in the store is added; one whose
  version differs is changed; one active in the store and not in the project is
  retired (no new entries; its users in flight finish on their version);
- users in flight of an added or changed journey, per version and step: without
  ``upgrade in place`` they stay on their version; with it, those at a step whose
  name the new version has move to the new version at that step (the engine's
  ``Runtime.upgrade``, which moves every live instance of the journey on another
  version), and those whose step the new version lacks stay on their version and
  finish there. An unchanged journey with ``upgrade in place`` whose users on older
  versions would move is listed too: the engine moves them at every deployment;
- segments: one whose definition hash (with the segments it uses) differs from the
  store's is evaluated again for every known user, silently (no change logged, no
  ``when entering``/``when leaving`` journey entered); the plan evaluates the old
  and new definitions now with the engine's set-based evaluation
  (:func:`journeyc.engine.bulk.evaluate_population`) and counts who would enter and
  leave; a segment no longer in the project loses its rows;
- schedules: the rows :meth:`ScheduleBook.planned` would write, against the store's.

All reads go through :class:`journeyc.store.abc.DeploymentReads` and the engine's own books.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal
from zoneinfo import ZoneInfo

from journeyc.compile import ir
from journeyc.compile.graph import trigger_to_text
from journeyc.engine.actions import iso_ms
from journeyc.engine.deploy import deployed_state_hash, project_hash
from journeyc.engine.schedules import ScheduleBook
from journeyc.engine.segments import analyse
from journeyc.store.abc import Store

__all__ = [
    "FORMAT_VERSION",
    "Group",
    "JourneyChange",
    "Plan",
    "ScheduleChange",
    "SegmentChange",
    "combined_hash",
    "make_plan",
]

FORMAT_VERSION = 1
"""The version of the plan's JSON form (``journeyc plan --json`` and ``--out``)."""

Outcome = Literal["stays", "moves", "step_gone", "retired", "current"]
Progress = Callable[[int, int], None]
"""Told (users evaluated, users to evaluate) while segments are evaluated."""


@dataclass(frozen=True, slots=True)
class Group:
    """Users in flight of one journey at one version and step, and what the
    deployment does to them.

    ``outcome``: ``stays`` (they finish on their version: no ``upgrade in place``),
    ``moves`` (to ``to_version`` at the same step), ``step_gone`` (``upgrade in
    place``, but the new version has no step of that name: they stay on their
    version and finish there), ``retired`` (the journey leaves the project: they
    finish on their version), ``current`` (already on the version deployed)."""

    version: str
    step: str
    users: int
    outcome: Outcome
    to_version: str | None
    kind: str | None  # what the step is in its version (wait, wait_for, send, …)
    to_kind: str | None  # what the step is in the new version, when they move
    means: str
    warning: str | None = None  # what goes wrong for them, when something does


@dataclass(frozen=True, slots=True)
class JourneyChange:
    """A journey the deployment adds (``+``), changes (``~``) or retires (``-``); or
    (``~`` too, action ``upgrade``) an unchanged journey whose users on older
    versions move to its version."""

    id: str
    action: Literal["add", "change", "retire", "upgrade"]
    from_version: str | None
    to_version: str | None
    upgrade_in_place: bool
    in_flight: list[Group]


@dataclass(frozen=True, slots=True)
class SegmentChange:
    """A segment whose definition is new, changed or gone, with its members now under
    the deployed definition (``before``) and the new one (``after``) and how many
    users would enter and leave it."""

    name: str
    action: Literal["add", "change", "remove"]
    before: int
    after: int
    entering: int
    leaving: int


@dataclass(frozen=True, slots=True)
class ScheduleChange:
    """A scheduled trigger in one time zone whose next firing changes."""

    journey: str
    trigger: int
    zone: str
    every: str
    action: Literal["add", "change", "remove"]
    next_before: str | None
    next_after: str | None


@dataclass(slots=True)
class Plan:
    """What deploying a project into a store would change, and the hashes it was
    computed against."""

    store: str
    computed_at: str
    state_hash: str
    project_hash: str
    journeys: list[JourneyChange] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    segments: list[SegmentChange] = field(default_factory=list)
    schedules: list[ScheduleChange] = field(default_factory=list)

    @property
    def hash(self) -> str:
        """The plan's hash: the store's deployed state and the project's IR."""
        return combined_hash(self.state_hash, self.project_hash)

    @property
    def changes(self) -> bool:
        """Whether deploying would change anything."""
        return bool(self.journeys or self.segments or self.schedules)

    @property
    def warnings(self) -> list[str]:
        """What would go wrong, one line per group of users it would go wrong for."""
        return [
            f"{j.id}: {g.users} user(s) at {g.step}: {g.warning}"
            for j in self.journeys
            for g in j.in_flight
            if g.warning is not None
        ]

    def summary(self) -> dict[str, int]:
        """Counts of the changes, by kind."""
        count = {a: 0 for a in ("add", "change", "retire")}
        for j in self.journeys:
            count["change" if j.action == "upgrade" else j.action] += 1
        moved = sum(g.users for j in self.journeys for g in j.in_flight if g.outcome == "moves")
        return {
            "journeys_to_add": count["add"],
            "journeys_to_change": count["change"],
            "journeys_to_retire": count["retire"],
            "users_moving": moved,
            "segments": len(self.segments),
            "schedules": len(self.schedules),
        }

    def to_json(self) -> dict[str, Any]:
        """The plan as ``journeyc plan --json`` prints it and ``--out`` writes it."""
        return {
            "format_version": FORMAT_VERSION,
            "hash": self.hash,
            "state_hash": self.state_hash,
            "project_hash": self.project_hash,
            "store": self.store,
            "computed_at": self.computed_at,
            "changes": self.changes,
            "summary": self.summary(),
            "warnings": self.warnings,
            "journeys": [asdict(j) for j in self.journeys],
            "unchanged_journeys": self.unchanged,
            "segments": [asdict(s) for s in self.segments],
            "schedules": [asdict(s) for s in self.schedules],
        }


def combined_hash(state_hash: str, project_hash: str) -> str:
    """The plan hash of a store state hash and a project hash."""
    return hashlib.sha256(f"{state_hash}\n{project_hash}".encode()).hexdigest()


def make_plan(
    store: Store,
    project: ir.ProjectIR,
    now_ms: int,
    zone: ZoneInfo,
    *,
    progress: Progress | None = None,
) -> Plan:
    """What deploying ``project`` into ``store`` at ``now_ms`` would change (``zone``:
    the project's default time zone, as the engine's)."""
    plan = Plan(
        store=store.path,
        computed_at=iso_ms(now_ms),
        state_hash=deployed_state_hash(store),
        project_hash=project_hash(project),
    )
    plan.journeys, plan.unchanged = _journeys(store, project)
    plan.segments = _segments(store, project, now_ms, progress)
    plan.schedules = _schedules(store, project, now_ms, zone)
    return plan


# ---------------------------------------------------------------- journeys


def _journeys(store: Store, project: ir.ProjectIR) -> tuple[list[JourneyChange], list[str]]:
    deployments = store.deployments()
    active = deployments.active_versions()
    flights: dict[str, list[tuple[str, str, int]]] = {}
    for f in deployments.in_flight():
        flights.setdefault(f.journey_id, []).append((f.version, f.step, f.users))
    irs: dict[tuple[str, str], ir.JourneyIR | None] = {}

    def version_ir(jid: str, version: str) -> ir.JourneyIR | None:
        key = (jid, version)
        if key not in irs:
            text = deployments.journey_ir(jid, version)
            irs[key] = None if text is None else ir.JourneyIR.model_validate_json(text)
        return irs[key]

    changes: list[JourneyChange] = []
    unchanged: list[str] = []
    for jid in sorted(project.journeys.keys() | active.keys()):
        new = project.journeys.get(jid)
        old = active.get(jid)
        groups: list[Group] = []
        for version, step, users in flights.get(jid, []):
            old_ir = version_ir(jid, version)
            groups.append(_group(new, version, step, users, _node(old_ir, step)))
        if new is None:
            changes.append(JourneyChange(jid, "retire", old, None, False, groups))
        elif old is None:
            changes.append(
                JourneyChange(jid, "add", None, new.version, new.upgrade_in_place, groups)
            )
        elif old != new.version:
            changes.append(
                JourneyChange(jid, "change", old, new.version, new.upgrade_in_place, groups)
            )
        elif any(g.outcome == "moves" for g in groups):
            changes.append(
                JourneyChange(jid, "upgrade", old, new.version, new.upgrade_in_place, groups)
            )
        else:
            unchanged.append(jid)
    return changes, unchanged


def _node(journey: ir.JourneyIR | None, step: str) -> ir.Node | None:
    return None if journey is None else journey.nodes.get(step)


def _group(
    new: ir.JourneyIR | None, version: str, step: str, users: int, node: ir.Node | None
) -> Group:
    """What deploying ``new`` (None: the journey is retired) does to ``users`` in
    flight at ``step`` of ``version`` (``node``: that step there) — as
    ``Engine.deploy`` and ``Runtime.upgrade`` do it."""
    kind = None if node is None else str(node.kind)
    if new is None:
        return Group(
            version,
            step,
            users,
            "retired",
            None,
            kind,
            None,
            f"stay on {version} at {step} and finish there; the journey takes no new entries",
        )
    if version == new.version:
        return Group(
            version,
            step,
            users,
            "current",
            None,
            kind,
            None,
            f"already on {version}, the version deployed: nothing changes for them",
        )
    if not new.upgrade_in_place:
        return Group(
            version,
            step,
            users,
            "stays",
            None,
            kind,
            None,
            f"stay on {version} and finish it (the journey has no `upgrade in place`); "
            f"new entries take {new.version}",
        )
    target = new.nodes.get(step)
    if target is None:
        return Group(
            version,
            step,
            users,
            "step_gone",
            None,
            kind,
            None,
            f"step {step} is not in {new.version}: they stay on {version} at {step} and "
            f"finish {version} (the engine moves only users whose step the new version has)",
        )
    to_kind = str(target.kind)
    return Group(
        version,
        step,
        users,
        "moves",
        new.version,
        kind,
        to_kind,
        _moved(node, target, step, new.version),
        _hazard(node, target, step, version, new.version),
    )


def _moved(old: ir.Node | None, target: ir.Node, step: str, to_version: str) -> str:
    """What happens to users moved at ``step`` from ``old`` to ``target``, as the
    engine's timers and events treat them: ``Runtime.upgrade`` changes an instance's
    version only, so its timer, the event it waits for and its variables stay as the
    old version set them, and the new version's node decides where they go on."""
    head = f"move to {to_version} at step {step}"
    if isinstance(old, ir.SendNode):
        # A send held back by quiet hours: on its timer the engine runs the node again.
        return f"{head}: held there by quiet hours, they run {step} of {to_version} when it ends"
    ends = "the wait they are in ends when it was set to end"
    if isinstance(old, ir.WaitForNode):
        ends += f" or when {old.event} arrives"
    if isinstance(target, ir.WaitForNode):
        if isinstance(old, ir.WaitForNode):
            then = f"then they take {step}'s branches in {to_version}"
        else:
            then = f"then they take {step}'s `on timeout` way in {to_version}"
    elif isinstance(target, ir.WaitNode | ir.WaitUntilNode):
        then = f"then they go on after {step} in {to_version}"
    else:
        then = (
            f"then they go on after {step} in {to_version}, where {step} is a "
            f"{target.kind} step that does not run for them"
        )
    return f"{head}: {ends}; {then}"


def _hazard(
    old: ir.Node | None, target: ir.Node, step: str, version: str, to_version: str
) -> str | None:
    """What goes wrong for users moved from ``old`` to ``target``, if anything."""
    if isinstance(old, ir.WaitForNode) and not isinstance(target, ir.WaitForNode):
        # Engine._on_track resumes an instance waiting for the event only at a
        # `wait for` node; at any other node the event passes it by.
        return (
            f"{step} waits for {old.event} in {version} and is a {target.kind} step in "
            f"{to_version}: {old.event} no longer ends their wait, they go on only when "
            f"it times out. Keep {step} a `wait for`, or rename it"
        )
    return None


# ---------------------------------------------------------------- segments


def _segments(
    store: Store, project: ir.ProjectIR, now_ms: int, progress: Progress | None
) -> list[SegmentChange]:
    from journeyc.engine.bulk import evaluate_population

    infos = analyse(project.segments)
    deployed = store.deployments().deployed_segments()
    changed = sorted(
        n for n, i in infos.items() if (d := deployed.get(n)) is None or d.hash != i.hash
    )
    gone = sorted(n for n in deployed if n not in infos)
    if not changed and not gone:
        return []
    old_segments = {
        n: ir.SegmentIR(name=n, expr=ir.SegmentIR.model_validate_json(d.expr_json).expr)
        for n, d in deployed.items()
    }
    old_names = [n for n in [*changed, *gone] if n in deployed]
    passes = (1 if changed else 0) + (1 if old_names else 0)
    total = store.deployments().known_users() * passes
    done = 0

    def members(segments: dict[str, ir.SegmentIR], names: list[str]) -> dict[str, set[str]]:
        nonlocal done
        out: dict[str, set[str]] = {n: set() for n in names}
        if not names:
            return out
        for user, membership in evaluate_population(
            store.population(), segments, now_ms, names=names
        ):
            for n, member in membership.items():
                if member:
                    out[n].add(user)
            done += 1
            if progress is not None and done % 1000 == 0:
                progress(done, total)
        return out

    after = members(dict(project.segments), changed)
    before = members(old_segments, old_names)
    if progress is not None:
        progress(total, total)
    out: list[SegmentChange] = []
    for name in sorted([*changed, *gone]):
        old = before.get(name, set())
        new = after.get(name, set())
        action: Literal["add", "change", "remove"] = (
            "remove" if name in gone else "add" if name not in deployed else "change"
        )
        out.append(SegmentChange(name, action, len(old), len(new), len(new - old), len(old - new)))
    return out


# ---------------------------------------------------------------- schedules


def _schedules(
    store: Store, project: ir.ProjectIR, now_ms: int, zone: ZoneInfo
) -> list[ScheduleChange]:
    before = {(r.journey_id, r.trigger, r.zone): r for r in store.deployments().schedule_rows()}
    _, triggers, rows = ScheduleBook(store.schedule_rows(), zone).planned(project.journeys, now_ms)
    after = {(r[0], r[1], r[2]): r for r in rows}
    out: list[ScheduleChange] = []
    for key in sorted(before.keys() | after.keys()):
        b, a = before.get(key), after.get(key)
        if b is not None and a is not None and b.next_at == a[4] and b.spec == a[3]:
            continue
        spec = a[3] if a is not None else b.spec if b is not None else ""
        trigger = triggers.get((key[0], key[1])) or ir.ScheduleTrigger.model_validate_json(spec)
        out.append(
            ScheduleChange(
                journey=key[0],
                trigger=key[1],
                zone=key[2],
                every=trigger_to_text(trigger),
                action="add" if b is None else "remove" if a is None else "change",
                next_before=None if b is None else iso_ms(b.next_at),
                next_after=None if a is None else iso_ms(a[4]),
            )
        )
    return out
