"""The intermediate representation: each journey as a state machine, JSON-serializable.

The engine runs this, never the AST. Expressions stay trees here (``Expr``); the
engine compiles each once into a Python callable when a version is deployed.

Node ids are the step's ``as NAME`` or its position: ``"3"`` for the third top-level
step, ``"3.2.1"`` for the first step of the second branch (elif, split arm, or ``on``
branch, in source order) of step 3. A positional id never looks like a name.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Annotated, Any, ClassVar, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer

# ---------------------------------------------------------------- expressions


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _OmitsUnset(_Model):
    """A model whose fields named in ``_omit_unset`` are left out of its JSON when
    None: a field added later leaves the JSON, and the content hashes, of models
    without it as they were."""

    _omit_unset: ClassVar[tuple[str, ...]] = ()

    @model_serializer(mode="wrap")
    def _drop_unset(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        out: dict[str, Any] = handler(self)
        for name in self._omit_unset:
            if getattr(self, name) is None:
                out.pop(name, None)
        return out


class Lit(_Model):
    """A literal value: number, string, boolean or null."""

    k: Literal["lit"] = "lit"
    value: bool | int | float | str | None


class Dur(_Model):
    """A duration in seconds (it adds to timestamps)."""

    k: Literal["dur"] = "dur"
    seconds: int


class Attr(_Model):
    """A profile attribute path: ``push_enabled`` → ``["push_enabled"]``; ``user`` → ``[]``."""

    k: Literal["attr"] = "attr"
    path: list[str]


class EventRef(_Model):
    """A path into the event in focus: ``event.product.brand`` → ``["product", "brand"]``."""

    k: Literal["event"] = "event"
    path: list[str]


class ItemRef(_Model):
    """A path into the list item in focus (``item.price`` → ``["price"]``): inside an
    item aggregate's value and ``where``, and the condition of ``any``/``all``."""

    k: Literal["item"] = "item"
    path: list[str]


class Now(_Model):
    """The engine's clock."""

    k: Literal["now"] = "now"


class Get(_Model):
    """A property of a computed value: ``last(order_completed).at``."""

    k: Literal["get"] = "get"
    obj: Expr
    name: str


class ListE(_Model):
    """A list literal."""

    k: Literal["list"] = "list"
    items: list[Expr]


OpName: TypeAlias = Literal[
    "or",
    "and",
    "not",
    "neg",
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "in",
    "not in",
    "+",
    "-",
    "*",
    "/",
    "between",
]


class Op(_Model):
    """An operator over ``args`` (1 for ``not``/``neg``, 3 for ``between``, else 2)."""

    k: Literal["op"] = "op"
    op: OpName
    args: list[Expr]


class Call(_Model):
    """A built-in function: ``days_since``, ``exists``, ``lower``, ``contains`` …"""

    k: Literal["call"] = "call"
    func: str
    args: list[Expr]


class Agg(_OmitsUnset):
    """An aggregate over the user's events, compiled by the engine to SQL.

    With ``item`` set, ``prop`` is the path of a list in each event and the aggregate
    runs over the list's items: ``item`` is the value taken of each (``where`` is
    asked per item too). ``item`` is left out of the JSON when unset, so aggregates
    without it keep the JSON, and the content hashes, they always had.
    """

    k: Literal["agg"] = "agg"
    func: Literal["count", "sum", "avg", "min", "max", "distinct", "top", "last", "first"]
    event: str
    prop: list[str] = []
    where: Expr | None = None
    within: int | None = None  # seconds
    item: Expr | None = None
    _omit_unset = ("item",)


class Each(_Model):
    """``any(LIST, COND)`` / ``all(LIST, COND)``: ``cond`` is asked per item of the
    list ``items`` evaluates to (null when that is not a list)."""

    k: Literal["each"] = "each"
    func: Literal["any", "all"]
    items: Expr
    cond: Expr


class Seg(_Model):
    """Whether the user is in a segment now."""

    k: Literal["seg"] = "seg"
    name: str


Expr = Annotated[
    Lit | Dur | Attr | EventRef | ItemRef | Now | Get | ListE | Op | Call | Agg | Each | Seg,
    Field(discriminator="k"),
]

# ---------------------------------------------------------------- triggers and policies


class EventTrigger(_Model):
    """``when EVENT [where EXPR]``."""

    k: Literal["event"] = "event"
    event: str
    where: Expr | None = None


class SegmentTrigger(_Model):
    """``when entering|leaving SEGMENT``."""

    k: Literal["segment"] = "segment"
    edge: Literal["entering", "leaving"]
    segment: str


class ScheduleTrigger(_Model):
    """``every …``: ``day`` is ``day``, ``weekday``, ``weekend`` or a weekday name with
    ``hour``/``minute`` in each user's local time; or ``interval`` seconds.
    ``segment`` None means everyone."""

    k: Literal["schedule"] = "schedule"
    day: str | None = None
    hour: int | None = None
    minute: int | None = None
    interval: int | None = None
    segment: str | None = None


Trigger = Annotated[EventTrigger | SegmentTrigger | ScheduleTrigger, Field(discriminator="k")]


class EventMatch(_Model):
    """An event name with an optional condition (``exit when``)."""

    event: str
    where: Expr | None = None


class EntryRule(_Model):
    """Re-entry: ``once``, ``once_per`` (with ``per`` seconds) or ``always``."""

    mode: Literal["once", "once_per", "always"] = "once"
    per: int | None = None


class GoalRule(_Model):
    """``goal EVENT [where] [within]``; ``within`` None means while in the journey."""

    event: str
    where: Expr | None = None
    within: int | None = None


class QuietHoursRule(_Model):
    """A local-time window, minutes after midnight; ``end < start`` wraps midnight."""

    start: int
    end: int
    skip: bool = False


class CapRule(_Model):
    """At most ``count`` sends per ``per`` seconds from this journey to one user."""

    count: int
    per: int


# ---------------------------------------------------------------- nodes


class _Node(_Model):
    id: str
    next: str | None = None  # None: the journey completes after this node


class WaitNode(_Node):
    """Resume after ``seconds``."""

    kind: Literal["wait"] = "wait"
    seconds: int


class WaitUntilNode(_Node):
    """Resume at the next local ``hour:minute`` strictly after now (on ``day`` if set)."""

    kind: Literal["wait_until"] = "wait_until"
    hour: int
    minute: int
    day: str | None = None


class WaitForNode(_Node):
    """Resume on the event or after ``timeout`` seconds; branch heads are node ids, or
    None to go straight on to ``next``."""

    kind: Literal["wait_for"] = "wait_for"
    event: str
    where: Expr | None = None
    timeout: int
    on_event: str | None = None
    on_timeout: str | None = None


class Case(_Model):
    """One condition of a branch and the node it leads to (None: straight on)."""

    cond: Expr
    then: str | None


class BranchNode(_Node):
    """``if``/``elif``/``else``: the first case that holds; else ``orelse``; ``next``
    is where every block goes on to (and where a missing else goes)."""

    kind: Literal["branch"] = "branch"
    cases: list[Case]
    orelse: str | None = None


class SplitArm(_Model):
    """A split arm: its share, its name (``as NAME`` or ``A``, ``B`` …), its head."""

    percent: float
    name: str
    then: str | None


class SplitNode(_Node):
    """An A/B/n split by a stable hash of journey and user."""

    kind: Literal["split"] = "split"
    arms: list[SplitArm]


class SendTarget(_Model):
    """A channel and its message: a declared ``message`` or an ``inline`` body."""

    channel: str
    message: str | None = None
    inline: str | None = None


class WithArg(_Model):
    """A ``with NAME = EXPR`` value."""

    name: str
    value: Expr


class SendNode(_Node):
    """Send on the first reachable channel of ``targets``."""

    kind: Literal["send"] = "send"
    targets: list[SendTarget]
    args: list[WithArg] = []


class SetNode(_Node):
    """Set a profile attribute."""

    kind: Literal["set"] = "set"
    attr: str
    value: Expr


class UnsetNode(_Node):
    """Remove a profile attribute."""

    kind: Literal["unset"] = "unset"
    attr: str


class TrackNode(_Node):
    """Record an event for the user, as if it had arrived."""

    kind: Literal["track"] = "track"
    event: str
    args: list[WithArg] = []


class ExitNode(_Node):
    """Leave the journey."""

    kind: Literal["exit"] = "exit"


Node = Annotated[
    WaitNode
    | WaitUntilNode
    | WaitForNode
    | BranchNode
    | SplitNode
    | SendNode
    | SetNode
    | UnsetNode
    | TrackNode
    | ExitNode,
    Field(discriminator="kind"),
]


class SourcePos(_Model):
    """Where a node was written: for reports, graphs and runtime errors."""

    file: str
    line: int
    column: int


class JourneyBounds(_Model):
    """What one journey can do at most, proved from its graph
    (:mod:`journeyc.compile.bounds`). A ``None`` is unbounded, with the reason under
    its name in ``unbounded``. Sends are counted per user, from this journey alone."""

    sends_per_entry: int | None
    seconds_per_entry: int | None
    sends_per_user_per_day: int | None
    sends_per_user_per_week: int | None
    unbounded: dict[str, str] = {}


class JourneyIR(_OmitsUnset):
    """One journey as a state machine. ``version`` hashes everything it does
    (its nodes, policies, and the messages and segments it uses), not its layout."""

    id: str
    title: str | None = None
    file: str
    version: str = ""
    triggers: list[Trigger] = []
    entry: EntryRule = EntryRule()
    exits: list[EventMatch] = []
    goal: GoalRule | None = None
    quiet_hours: QuietHoursRule | None = None
    cap: CapRule | None = None
    holdout: float = 0.0
    upgrade_in_place: bool = False
    start: str | None = None
    nodes: dict[str, Node] = {}
    messages: list[str] = []  # the messages its sends use
    segments: list[str] = []  # the segments it refers to, directly or through segments
    source_map: dict[str, SourcePos] = {}
    # Filled in by `compile --json` (not by lowering) and left out of the JSON when
    # unset, so stored IR and content versions are the same with or without it.
    bounds: JourneyBounds | None = None
    _omit_unset = ("bounds",)


# ---------------------------------------------------------------- messages and segments


class FieldIR(_Model):
    """A message field: its default template and its locale variants."""

    default: str | None = None
    locales: dict[str, str] = {}


class MessageIR(_Model):
    """A message: for each channel, its fields' Liquid templates (files read in)."""

    name: str
    parts: dict[str, dict[str, FieldIR]]


class SegmentIR(_Model):
    """A segment's condition."""

    name: str
    expr: Expr


class ProjectIR(_Model):
    """Everything the engine needs to run a project."""

    journeys: dict[str, JourneyIR] = {}
    messages: dict[str, MessageIR] = {}
    segments: dict[str, SegmentIR] = {}


def sub_exprs(e: Expr) -> Iterator[Expr]:
    """The sub-expressions evaluated in the same scope as ``e`` (an aggregate's
    ``where`` is evaluated per counted event, and the condition of ``any``/``all``
    per item, so they are not among them)."""
    if isinstance(e, Get):
        yield e.obj
    elif isinstance(e, ListE):
        yield from e.items
    elif isinstance(e, Op | Call):
        yield from e.args
    elif isinstance(e, Each):
        yield e.items


def walk(e: Expr) -> Iterator[Expr]:
    """``e`` and everything inside it, aggregate ``where`` clauses and item values,
    and the conditions of ``any``/``all``, included."""
    yield e
    for c in sub_exprs(e):
        yield from walk(c)
    if isinstance(e, Agg):
        if e.item is not None:
            yield from walk(e.item)
        if e.where is not None:
            yield from walk(e.where)
    elif isinstance(e, Each):
        yield from walk(e.cond)


def successors(node: Node) -> list[str | None]:
    """Where a node can go on to, every way it can, in order (None: the journey
    completes): each case of a branch then its ``else``, each arm of a split, a
    ``wait for``'s event then its timeout; an exit nowhere."""
    if isinstance(node, ExitNode):
        return []
    if isinstance(node, BranchNode):
        outs = [c.then for c in node.cases] + [node.orelse]
    elif isinstance(node, SplitNode):
        outs = [a.then for a in node.arms]
    elif isinstance(node, WaitForNode):
        outs = [node.on_event, node.on_timeout]
    else:
        return [node.next]
    return [o if o is not None else node.next for o in outs]


def segment_closure(names: Iterable[str], segments: Mapping[str, SegmentIR]) -> set[str]:
    """``names`` and every segment they use, however indirectly (a name that is not
    in ``segments`` is kept, and uses nothing)."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        seg = segments.get(name)
        if seg is not None:
            todo.extend(x.name for x in walk(seg.expr) if isinstance(x, Seg))
    return seen


def content_hash(*parts: BaseModel) -> str:
    """A short, stable hash of models' JSON (keys sorted)."""
    h = hashlib.sha256()
    for p in parts:
        h.update(
            json.dumps(p.model_dump(mode="json"), sort_keys=True, separators=(",", ":")).encode()
        )
    return h.hexdigest()[:16]


for _m in (
    Get,
    ListE,
    Op,
    Call,
    Agg,
    Each,
    EventTrigger,
    EventMatch,
    GoalRule,
    WaitForNode,
    Case,
    BranchNode,
    WithArg,
    SendNode,
    SetNode,
    TrackNode,
    SegmentIR,
):
    _m.model_rebuild()


def free_event_refs(e: Expr) -> bool:
    """Whether ``e`` reads the event in focus (an aggregate's own ``where`` reads its
    counted events, not this one)."""
    return _reads_free(e, EventRef, True)


def free_item_refs(e: Expr) -> bool:
    """Whether ``e`` reads the list item in focus (``any``/``all`` bind their own in
    their condition, and an aggregate in its value and ``where``)."""
    return _reads_free(e, ItemRef, False)


def _reads_free(e: Expr, ref: type[EventRef | ItemRef], in_each_cond: bool) -> bool:
    """Whether ``e`` holds a ``ref`` node outside aggregates (and, unless
    ``in_each_cond``, outside the condition of ``any``/``all``)."""
    if isinstance(e, ref):
        return True
    if isinstance(e, Get):
        return _reads_free(e.obj, ref, in_each_cond)
    if isinstance(e, ListE):
        return any(_reads_free(i, ref, in_each_cond) for i in e.items)
    if isinstance(e, Op | Call):
        return any(_reads_free(a, ref, in_each_cond) for a in e.args)
    if isinstance(e, Each):
        return _reads_free(e.items, ref, in_each_cond) or (
            in_each_cond and _reads_free(e.cond, ref, in_each_cond)
        )
    return False
