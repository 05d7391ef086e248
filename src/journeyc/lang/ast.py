"""The typed syntax tree of a `.journey` file.

Every node carries the span it was parsed from. Spans do not take part in equality,
so two sources that differ only in layout (``fmt``) give equal trees.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeAlias
from typing import Literal as L  # noqa: N817 (keeps the node fields readable)

from journeyc.lang.span import Span

if TYPE_CHECKING:
    from journeyc.lang.testfile import JourneyTest

NO_SPAN = Span("<generated>", 0, 0, 1, 1, 1, 1)


def _span() -> Span:
    return field(default=NO_SPAN, compare=False, repr=False)


# ---------------------------------------------------------------- expressions


@dataclass(frozen=True, slots=True, kw_only=True)
class Number:
    """A number literal; ``raw`` keeps the written form (``49.90``)."""

    value: int | float
    raw: str
    span: Span = _span()


@dataclass(frozen=True, slots=True, kw_only=True)
class String:
    """A string literal (unescaped ``value``); may hold Liquid."""

    value: str
    span: Span = _span()


@dataclass(frozen=True, slots=True, kw_only=True)
class Bool:
    """``true`` or ``false``."""

    value: bool
    span: Span = _span()


@dataclass(frozen=True, slots=True, kw_only=True)
class Null:
    """``null``."""

    span: Span = _span()


@dataclass(frozen=True, slots=True, kw_only=True)
class Duration:
    """A duration such as ``1h30m``, held in whole seconds."""

    seconds: int
    span: Span = _span()


@dataclass(frozen=True, slots=True, kw_only=True)
class Name:
    """A bare name: a profile attribute, or ``user``, ``event``, ``now``."""

    name: str
    span: Span = _span()


@dataclass(frozen=True, slots=True, kw_only=True)
class GetAttr:
    """``obj.name``: a step along a dotted path."""

    obj: Expr
    name: str
    span: Span = _span()


@dataclass(frozen=True, slots=True, kw_only=True)
class ListExpr:
    """``[a, b, c]``."""

    items: tuple[Expr, ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True, kw_only=True)
class Unary:
    """``not x`` or ``-x``."""

    op: L["not", "-"]
    operand: Expr
    span: Span = _span()


BinaryOp: TypeAlias = L[
    "or", "and", "==", "!=", "<", "<=", ">", ">=", "in", "not in", "+", "-", "*", "/"
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Binary:
    """A binary operation; ``and``/``or`` chains are nested to the left."""

    op: BinaryOp
    left: Expr
    right: Expr
    span: Span = _span()


@dataclass(frozen=True, slots=True, kw_only=True)
class Between:
    """``value between low and high``, i.e. ``value >= low and value <= high``."""

    value: Expr
    low: Expr
    high: Expr
    span: Span = _span()


@dataclass(frozen=True, slots=True, kw_only=True)
class Call:
    """A plain function call: ``days_since(x)``, ``lower(s)``, ``exists(email)``."""

    func: str
    args: tuple[Expr, ...]
    span: Span = _span()


AGGREGATES = ("count", "sum", "avg", "min", "max", "distinct", "top", "last", "first")
AggregateFunc: TypeAlias = L[
    "count", "sum", "avg", "min", "max", "distinct", "top", "last", "first"
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Aggregate:
    """An aggregate over the user's events: ``count(EVENT where … within 7d)``.

    ``prop`` is the property path for ``sum(order_completed.amount)`` and kin.
    With ``item`` set (``sum(order_completed.products, item.price where …)``),
    ``prop`` is the path of a list in each event, and the aggregate runs over the
    objects of those lists: ``item`` is the value taken of each, and inside it and
    ``where`` the name ``item`` is that object (``event`` the event it came from).
    """

    func: AggregateFunc
    event: str
    prop: tuple[str, ...] = ()
    where: Expr | None = None
    within: Duration | None = None
    item: Expr | None = None
    span: Span = _span()


ITEM_TESTS = ("any", "all")
ItemTestFunc: TypeAlias = L["any", "all"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ItemTest:
    """``any(LIST, COND)`` / ``all(LIST, COND)``: whether some (every) item of a list
    satisfies ``cond``, in which ``item`` is that item."""

    func: ItemTestFunc
    items: Expr
    cond: Expr
    span: Span = _span()


@dataclass(frozen=True, slots=True, kw_only=True)
class SegmentRef:
    """``segment NAME``: whether the user is in the segment now."""

    name: str
    span: Span = _span()


Expr: TypeAlias = (
    Number
    | String
    | Bool
    | Null
    | Duration
    | Name
    | GetAttr
    | ListExpr
    | Unary
    | Binary
    | Between
    | Call
    | Aggregate
    | ItemTest
    | SegmentRef
)

# ---------------------------------------------------------------- journey clauses


@dataclass(frozen=True, slots=True, kw_only=True)
class TimeOfDay:
    """A local time of day, ``HH:MM``."""

    hour: int
    minute: int
    span: Span = _span()

    def __str__(self) -> str:
        return f"{self.hour:02d}:{self.minute:02d}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Percent:
    """A percentage such as ``10%`` or ``33.3%``; ``raw`` is the number as written."""

    value: float
    raw: str
    span: Span = _span()


@dataclass(frozen=True, slots=True, kw_only=True)
class WhenEvent:
    """``when EVENT [where EXPR]``."""

    event: str
    where: Expr | None = None
    span: Span = _span()


@dataclass(frozen=True, slots=True, kw_only=True)
class WhenSegment:
    """``when entering SEGMENT`` / ``when leaving SEGMENT``."""

    edge: L["entering", "leaving"]
    segment: str
    span: Span = _span()


DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
DAY_WORDS = (*DAYS, "weekday", "weekend")


@dataclass(frozen=True, slots=True, kw_only=True)
class Every:
    """``every day at 10:00 for SEGMENT`` / ``every 6h for everyone``.

    Exactly one of ``at`` (with ``day``: ``day``, a weekday name, ``weekday`` or
    ``weekend``) and ``interval`` is set. ``segment`` is None for ``everyone``.
    """

    day: str | None = None
    at: TimeOfDay | None = None
    interval: Duration | None = None
    segment: str | None = None
    span: Span = _span()


@dataclass(frozen=True, slots=True, kw_only=True)
class Entry:
    """``entry once`` / ``entry once per D`` / ``entry always``."""

    mode: L["once", "once_per", "always"]
    per: Duration | None = None
    span: Span = _span()


@dataclass(frozen=True, slots=True, kw_only=True)
class ExitWhen:
    """``exit when EVENT [where EXPR]``."""

    event: str
    where: Expr | None = None
    span: Span = _span()


@dataclass(frozen=True, slots=True, kw_only=True)
class Goal:
    """``goal EVENT [where EXPR] [within D]``."""

    event: str
    where: Expr | None = None
    within: Duration | None = None
    span: Span = _span()


@dataclass(frozen=True, slots=True, kw_only=True)
class QuietHours:
    """``quiet hours HH:MM-HH:MM [skip]``."""

    start: TimeOfDay
    end: TimeOfDay
    skip: bool = False
    span: Span = _span()


@dataclass(frozen=True, slots=True, kw_only=True)
class Cap:
    """``cap N per D``."""

    count: int
    per: Duration
    span: Span = _span()


@dataclass(frozen=True, slots=True, kw_only=True)
class Holdout:
    """``holdout P%``."""

    percent: Percent
    span: Span = _span()


@dataclass(frozen=True, slots=True, kw_only=True)
class UpgradeInPlace:
    """``upgrade in place``: users in flight move to a new version at their step."""

    span: Span = _span()


Clause: TypeAlias = (
    WhenEvent
    | WhenSegment
    | Every
    | Entry
    | ExitWhen
    | Goal
    | QuietHours
    | Cap
    | Holdout
    | UpgradeInPlace
)

# ---------------------------------------------------------------- steps


@dataclass(frozen=True, slots=True, kw_only=True)
class Label:
    """The ``as NAME`` of a step."""

    name: str
    span: Span = _span()


@dataclass(frozen=True, slots=True, kw_only=True)
class Wait:
    """``wait D``."""

    duration: Duration
    label: Label | None = None
    span: Span = _span()


@dataclass(frozen=True, slots=True, kw_only=True)
class WaitUntil:
    """``wait until HH:MM [on DAY]``."""

    at: TimeOfDay
    day: str | None = None
    day_span: Span = _span()
    label: Label | None = None
    span: Span = _span()


@dataclass(frozen=True, slots=True, kw_only=True)
class OnBranch:
    """``on EVENT`` (``event`` set) or ``on timeout`` (``event`` None) under a wait for."""

    event: str | None
    steps: tuple[Step, ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True, kw_only=True)
class WaitFor:
    """``wait for EVENT [where EXPR] up to D`` with optional ``on`` branches."""

    event: str
    timeout: Duration
    where: Expr | None = None
    branches: tuple[OnBranch, ...] = ()
    label: Label | None = None
    span: Span = _span()


@dataclass(frozen=True, slots=True, kw_only=True)
class CondBranch:
    """One ``if``/``elif`` condition with its block."""

    cond: Expr
    steps: tuple[Step, ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True, kw_only=True)
class If:
    """``if``/``elif``/``else``; ``branches[0]`` is the ``if``."""

    branches: tuple[CondBranch, ...]
    orelse: tuple[Step, ...] | None = None
    label: Label | None = None
    span: Span = _span()


@dataclass(frozen=True, slots=True, kw_only=True)
class Arm:
    """One arm of a ``split``: ``P% [as NAME]`` and its block."""

    percent: Percent
    steps: tuple[Step, ...]
    label: Label | None = None
    span: Span = _span()


@dataclass(frozen=True, slots=True, kw_only=True)
class Split:
    """``split``: an A/B/n test."""

    arms: tuple[Arm, ...]
    label: Label | None = None
    span: Span = _span()


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageRef:
    """The message of a send target: a declared ``name`` or an ``inline`` string."""

    name: str | None = None
    inline: String | None = None
    span: Span = _span()


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """One ``CHANNEL [MESSAGE]`` of a send; without a message it uses the next one."""

    channel: str
    message: MessageRef | None = None
    span: Span = _span()


@dataclass(frozen=True, slots=True, kw_only=True)
class Arg:
    """A ``NAME = EXPR`` of a ``with`` list."""

    name: str
    value: Expr
    span: Span = _span()


@dataclass(frozen=True, slots=True, kw_only=True)
class Send:
    """``send CHANNEL [or CHANNEL …] MESSAGE [with …]``."""

    targets: tuple[Target, ...]
    args: tuple[Arg, ...] = ()
    label: Label | None = None
    span: Span = _span()


@dataclass(frozen=True, slots=True, kw_only=True)
class SetAttr:
    """``set NAME = EXPR``."""

    name: str
    value: Expr
    label: Label | None = None
    span: Span = _span()


@dataclass(frozen=True, slots=True, kw_only=True)
class UnsetAttr:
    """``unset NAME``."""

    name: str
    label: Label | None = None
    span: Span = _span()


@dataclass(frozen=True, slots=True, kw_only=True)
class Track:
    """``track EVENT [with …]``."""

    event: str
    args: tuple[Arg, ...] = ()
    label: Label | None = None
    span: Span = _span()


@dataclass(frozen=True, slots=True, kw_only=True)
class ExitStep:
    """``exit``."""

    label: Label | None = None
    span: Span = _span()


Step: TypeAlias = (
    Wait | WaitUntil | WaitFor | If | Split | Send | SetAttr | UnsetAttr | Track | ExitStep
)

# ---------------------------------------------------------------- declarations


@dataclass(frozen=True, slots=True, kw_only=True)
class Journey:
    """A journey: its clauses and its steps.

    ``bare`` journeys are the top-level statements of a file, named after the file.
    """

    name: str
    title: str | None = None
    clauses: tuple[Clause, ...] = ()
    steps: tuple[Step, ...] = ()
    bare: bool = False
    name_span: Span = _span()
    span: Span = _span()


@dataclass(frozen=True, slots=True, kw_only=True)
class Field:
    """A field of a message part: ``title th "…"`` or ``html file "x.html"``."""

    name: str
    value: String
    locale: str | None = None
    is_file: bool = False
    span: Span = _span()


@dataclass(frozen=True, slots=True, kw_only=True)
class Part:
    """A message's part for one channel."""

    channel: str
    fields: tuple[Field, ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True, kw_only=True)
class Message:
    """``message NAME`` with a part per channel."""

    name: str
    parts: tuple[Part, ...]
    name_span: Span = _span()
    span: Span = _span()


@dataclass(frozen=True, slots=True, kw_only=True)
class Segment:
    """``segment NAME = EXPR``."""

    name: str
    expr: Expr
    name_span: Span = _span()
    span: Span = _span()


Declaration: TypeAlias = Journey | Message | Segment


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceFile:
    """One parsed `.journey` file: its declarations in source order."""

    path: str
    declarations: tuple[Declaration, ...]
    span: Span = _span()
    # The `test` blocks of a test file (journeyc.lang.testfile), kept apart from the
    # declarations: they are not part of the project.
    tests: tuple[JourneyTest, ...] = ()

    @property
    def journeys(self) -> tuple[Journey, ...]:
        """The journeys of the file."""
        return tuple(d for d in self.declarations if isinstance(d, Journey))

    @property
    def messages(self) -> tuple[Message, ...]:
        """The messages of the file."""
        return tuple(d for d in self.declarations if isinstance(d, Message))

    @property
    def segments(self) -> tuple[Segment, ...]:
        """The segments of the file."""
        return tuple(d for d in self.declarations if isinstance(d, Segment))


def step_label(step: Step) -> str | None:
    """The ``as NAME`` of a step, if it has one."""
    return step.label.name if step.label else None


def walk(node: object) -> Iterator[object]:
    """Every AST node in ``node`` (a node, or a tuple of them), depth first."""
    if isinstance(node, tuple):
        for item in node:
            yield from walk(item)
        return
    if not dataclasses.is_dataclass(node) or isinstance(node, type):
        return
    yield node
    for f in dataclasses.fields(node):
        yield from walk(getattr(node, f.name))


def child_blocks(step: Step) -> list[tuple[Step, ...]]:
    """The nested blocks of a step, in source order."""
    if isinstance(step, If):
        blocks = [b.steps for b in step.branches]
        return blocks + ([step.orelse] if step.orelse is not None else [])
    if isinstance(step, Split):
        return [a.steps for a in step.arms]
    if isinstance(step, WaitFor):
        return [b.steps for b in step.branches]
    return []


def walk_steps(steps: tuple[Step, ...]) -> list[Step]:
    """Every step of a block and its nested blocks, depth first, in source order."""
    out: list[Step] = []
    for s in steps:
        out.append(s)
        for block in child_blocks(s):
            out.extend(walk_steps(block))
    return out
