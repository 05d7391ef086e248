"""Test files: ``*.test.journey`` (docs/testing.md).

A test file holds ``test`` blocks: given users, products and events at times, the
actions the project's journeys are expected to take. The same grammar and parser
read them (the test-file section of ``grammar/journey.lark``); this module holds
their AST nodes, the rule methods that build them (:class:`CaseRules`, a base
of :class:`~journeyc.lang.transform.ToAst`), their checks against the project
(:func:`check_tests`) and their canonical text for ``journeyc fmt``
(:func:`test_lines`).

Test files sit beside the journeys and are not part of the project: loading a
project leaves them out (:func:`is_test_file`), so they never deploy.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import PurePath
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from lark import Token, v_args
from lark.tree import Meta

from journeyc.lang import ast
from journeyc.lang.builtins import CHANNELS
from journeyc.lang.diagnostics import Diagnostic, closest, error, suggest, warning
from journeyc.lang.literals import quote_string
from journeyc.lang.span import Span

if TYPE_CHECKING:
    from journeyc.lang.parser import ParseResult

TEST_SUFFIX = ".test.journey"
DEFAULT_START = "2026-01-05T10:00:00Z"
"""When a test's clock starts unless it says ``start``: a Monday, 10:00 UTC (17:00 in
Bangkok), outside every quiet-hours window of the example project."""

SUPPRESS_REASONS = ("no_channel", "cap", "holdout", "quiet_hours", "render_error")
EXIT_REASONS = ("completed", "exit_event", "exit_step", "merged")

ExpectKind: TypeAlias = Literal[
    "enter", "send", "suppress", "goal", "exit", "set", "unset", "track", "segment"
]


def is_test_file(path: str | PurePath) -> bool:
    """Whether ``path`` names a test file (``*.test.journey``)."""
    return str(path).endswith(TEST_SUFFIX)


def parse_timestamp(text: str) -> int | None:
    """ISO-8601 ``text`` (``2026-01-05T10:00:00Z``; no zone is UTC) in epoch
    milliseconds, or None when it is not such a time."""
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return int(t.timestamp() * 1000)


# ---------------------------------------------------------------- AST


@dataclass(frozen=True, slots=True, kw_only=True)
class At:
    """A time in a test: ``+25m``/``-30d`` from the test's start, or an absolute
    ISO-8601 time (``absolute_ms``); ``raw`` is its written form."""

    offset_ms: int = 0
    absolute_ms: int | None = None
    raw: str
    span: Span = field(default=ast.NO_SPAN, compare=False, repr=False)

    def resolve(self, start_ms: int) -> int:
        """Epoch milliseconds, given the test's start."""
        return self.absolute_ms if self.absolute_ms is not None else start_ms + self.offset_ms


@dataclass(frozen=True, slots=True, kw_only=True)
class Start:
    """``start "2026-01-05T10:00:00Z"``: when the test's clock starts."""

    value: str
    at_ms: int | None
    span: Span = field(default=ast.NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Until:
    """``until +3d``: stop the clock there (schedules and segment rechecks run until it)."""

    at: At
    span: Span = field(default=ast.NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class GivenUser:
    """``user ID with NAME = VALUE, …``: a starting profile."""

    id: str
    traits: tuple[ast.Arg, ...]
    id_span: Span = field(default=ast.NO_SPAN, compare=False, repr=False)
    span: Span = field(default=ast.NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class GivenProduct:
    """``product ID with NAME = VALUE, …``: a catalog row."""

    id: str
    fields: tuple[ast.Arg, ...]
    id_span: Span = field(default=ast.NO_SPAN, compare=False, repr=False)
    span: Span = field(default=ast.NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class GivenEvent:
    """``event NAME for USER at TIME with NAME = VALUE, …``: an event that arrives."""

    name: str
    user: str
    at: At
    props: tuple[ast.Arg, ...]
    name_span: Span = field(default=ast.NO_SPAN, compare=False, repr=False)
    user_span: Span = field(default=ast.NO_SPAN, compare=False, repr=False)
    span: Span = field(default=ast.NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class FieldMatch:
    """``NAME VALUE`` (equal) or ``NAME contains "TEXT"`` (a substring) in ``with``."""

    name: str
    contains: bool
    value: ast.Expr
    span: Span = field(default=ast.NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Word:
    """A name written in an expectation, with where it is."""

    name: str
    span: Span = field(default=ast.NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Expectation:
    """``expect [no] KIND [NAMES] [to USER] [in JOURNEY] [as STEP] [at TIME]
    [reason R] [with …]``."""

    negated: bool
    kind: ExpectKind
    names: tuple[Word, ...] = ()
    user: Word | None = None
    journey: Word | None = None
    step: Word | None = None
    at: At | None = None
    reason: Word | None = None
    matches: tuple[FieldMatch, ...] = ()
    span: Span = field(default=ast.NO_SPAN, compare=False, repr=False)


CaseLine: TypeAlias = Start | Until | GivenUser | GivenProduct | GivenEvent | Expectation


@dataclass(frozen=True, slots=True, kw_only=True)
class JourneyTest:
    """``test "NAME"`` and its lines, in source order."""

    name: str
    lines: tuple[CaseLine, ...]
    name_span: Span = field(default=ast.NO_SPAN, compare=False, repr=False)
    span: Span = field(default=ast.NO_SPAN, compare=False, repr=False)

    @property
    def start(self) -> Start | None:
        """The ``start`` line, if any (the last one counts)."""
        found = [x for x in self.lines if isinstance(x, Start)]
        return found[-1] if found else None

    @property
    def until(self) -> Until | None:
        """The ``until`` line, if any (the last one counts)."""
        found = [x for x in self.lines if isinstance(x, Until)]
        return found[-1] if found else None

    @property
    def users(self) -> tuple[GivenUser, ...]:
        """The starting profiles."""
        return tuple(x for x in self.lines if isinstance(x, GivenUser))

    @property
    def products(self) -> tuple[GivenProduct, ...]:
        """The catalog rows."""
        return tuple(x for x in self.lines if isinstance(x, GivenProduct))

    @property
    def events(self) -> tuple[GivenEvent, ...]:
        """The events, in source order."""
        return tuple(x for x in self.lines if isinstance(x, GivenEvent))

    @property
    def expectations(self) -> tuple[Expectation, ...]:
        """The expectations, in source order."""
        return tuple(x for x in self.lines if isinstance(x, Expectation))


# ---------------------------------------------------------------- building the AST


@dataclass(frozen=True, slots=True)
class _Opt:
    key: str
    value: Any


class CaseRules:
    """The rule methods of the test-file grammar, for lark's transformer.

    A base of :class:`~journeyc.lang.transform.ToAst`, which provides the helpers
    declared here (its own definitions come first in the method order)."""

    path: str
    text: str
    diagnostics: list[Diagnostic]

    def _span(self, meta: Meta) -> Span:
        raise NotImplementedError

    def _tok(self, tok: Token) -> Span:
        raise NotImplementedError

    def _string(self, tok: Token) -> ast.String:
        raise NotImplementedError

    def _duration(self, tok: Token, positive: bool = True) -> ast.Duration:
        raise NotImplementedError

    def _with_args(self, children: list[Any]) -> tuple[ast.Arg, ...]:
        raise NotImplementedError

    def number(self, meta: Meta, children: list[Any]) -> ast.Number:
        raise NotImplementedError

    @v_args(meta=True)
    def test(self, meta: Meta, children: list[Any]) -> JourneyTest:
        name = self._string(children[0])
        lines = tuple(c for c in children[1:] if c is not None)
        return JourneyTest(name=name.value, lines=lines, name_span=name.span, span=self._span(meta))

    @v_args(meta=True)
    def test_start(self, meta: Meta, children: list[Any]) -> Start:
        s, at_ms = self._timestamp(children[0])
        return Start(value=s.value, at_ms=at_ms, span=self._span(meta))

    @v_args(meta=True)
    def test_until(self, meta: Meta, children: list[Any]) -> Until:
        at: At = children[0]
        return Until(at=at, span=self._span(meta))

    @v_args(meta=True)
    def given_user(self, meta: Meta, children: list[Any]) -> GivenUser:
        who: Word = children[0]
        return GivenUser(
            id=who.name, traits=self._with_args(children), id_span=who.span, span=self._span(meta)
        )

    @v_args(meta=True)
    def given_product(self, meta: Meta, children: list[Any]) -> GivenProduct:
        what: Word = children[0]
        return GivenProduct(
            id=what.name, fields=self._with_args(children), id_span=what.span, span=self._span(meta)
        )

    @v_args(meta=True)
    def given_event(self, meta: Meta, children: list[Any]) -> GivenEvent:
        event, who, at = children[0], children[1], children[2]
        return GivenEvent(
            name=event.name,
            user=who.name,
            at=at,
            props=self._with_args(children),
            name_span=event.span,
            user_span=who.span,
            span=self._span(meta),
        )

    def test_id(self, children: list[Any]) -> Word:
        tok = children[0]
        if tok.type == "STRING":
            s = self._string(tok)
            return Word(name=s.value, span=s.span)
        return Word(name=str(tok), span=self._tok(tok))

    def test_at(self, children: list[Any]) -> At:
        at: At = children[0]
        return at

    @v_args(meta=True)
    def at_absolute(self, meta: Meta, children: list[Any]) -> At:
        s, at_ms = self._timestamp(children[0])
        return At(absolute_ms=at_ms or 0, raw=quote_string(s.value), span=s.span)

    @v_args(meta=True)
    def at_offset(self, meta: Meta, children: list[Any]) -> At:
        sign, tok = str(children[0]), children[1]
        if tok.type == "NUMBER":
            if str(tok).strip("0.") != "":
                self.diagnostics.append(
                    error(
                        "bad_duration",
                        f"`{sign}{tok}` has no unit: write a duration like `{sign}{tok}m`",
                        self._tok(tok),
                        "a duration after + or -",
                        hints=["`+0` is the start itself; other times take a unit: s m h d w"],
                    )
                )
            seconds = 0
        else:
            seconds = self._duration(tok, positive=False).seconds
        offset = seconds * 1000 * (-1 if sign == "-" else 1)
        raw = f"{sign}{tok}"
        return At(offset_ms=offset, raw=raw, span=self._span(meta))

    def test_sign(self, children: list[Any]) -> str:
        return str(children[0])

    @v_args(meta=True)
    def expect(self, meta: Meta, children: list[Any]) -> Expectation:
        negated = False
        kind: ExpectKind = "send"
        names: list[Word] = []
        opts: dict[str, Any] = {}
        for c in children:
            if isinstance(c, Token) and c.type == "NAME":
                names.append(Word(name=str(c), span=self._tok(c)))
            elif isinstance(c, _Opt):
                if c.key == "no":
                    negated = True
                elif c.key == "kind":
                    kind = c.value
                else:
                    opts[c.key] = c.value
            elif isinstance(c, At):
                opts["at"] = c
        return Expectation(
            negated=negated,
            kind=kind,
            names=tuple(names),
            user=opts.get("user"),
            journey=opts.get("journey"),
            step=opts.get("step"),
            at=opts.get("at"),
            reason=opts.get("reason"),
            matches=opts.get("with", ()),
            span=self._span(meta),
        )

    def expect_no(self, children: list[Any]) -> _Opt:
        return _Opt("no", True)

    def expect_kind(self, children: list[Any]) -> _Opt:
        return _Opt("kind", str(children[0]))

    def expect_user(self, children: list[Any]) -> _Opt:
        return _Opt("user", children[-1])

    def _word_opt(self, key: str, children: list[Any]) -> _Opt:
        tok = children[-1]
        return _Opt(key, Word(name=str(tok), span=self._tok(tok)))

    def expect_in(self, children: list[Any]) -> _Opt:
        return self._word_opt("journey", children)

    def expect_as(self, children: list[Any]) -> _Opt:
        return self._word_opt("step", children)

    def expect_reason(self, children: list[Any]) -> _Opt:
        return self._word_opt("reason", children)

    def expect_with(self, children: list[Any]) -> _Opt:
        return _Opt("with", tuple(children))

    @v_args(meta=True)
    def field_match(self, meta: Meta, children: list[Any]) -> FieldMatch:
        contains = any(isinstance(c, Token) and c.type == "INCLUDING" for c in children)
        value = children[-1]
        return FieldMatch(
            name=str(children[0]), contains=contains, value=value, span=self._span(meta)
        )

    def match_contains(self, children: list[Any]) -> Token:
        tok: Token = children[0]
        return tok

    @v_args(meta=True)
    def negative(self, meta: Meta, children: list[Any]) -> ast.Unary:
        return ast.Unary(op="-", operand=self.number(meta, children), span=self._span(meta))

    def _timestamp(self, tok: Token) -> tuple[ast.String, int | None]:
        """A quoted ISO-8601 time, and it in epoch milliseconds (None, reported, when
        it is not a time)."""
        s = self._string(tok)
        at_ms = parse_timestamp(s.value)
        if at_ms is None:
            self.diagnostics.append(
                error(
                    "bad_timestamp",
                    f"`{s.value}` is not a time",
                    s.span,
                    "an ISO-8601 time like 2026-01-05T10:00:00Z",
                    hints=["or a time from the test's start: `at +25m`, `at -30d`"],
                )
            )
        return s, at_ms


# ---------------------------------------------------------------- literal values


class NotLiteralError(ValueError):
    """A test value that is not a literal; ``span`` says where."""

    def __init__(self, span: Span) -> None:
        super().__init__("not a literal")
        self.span = span


def literal_value(e: ast.Expr) -> Any:
    """The JSON value of a literal test value: a number, string, boolean, null, a
    negative number, a duration (in seconds) or a list of these."""
    if isinstance(e, ast.Number | ast.String | ast.Bool):
        return e.value
    if isinstance(e, ast.Null):
        return None
    if isinstance(e, ast.Duration):
        return e.seconds
    if isinstance(e, ast.Unary) and e.op == "-" and isinstance(e.operand, ast.Number):
        return -e.operand.value
    if isinstance(e, ast.ListExpr):
        return [literal_value(x) for x in e.items]
    raise NotLiteralError(e.span)


def literal_text(e: ast.Expr) -> str:
    """A literal test value as written canonically."""
    from journeyc.lang.formatter import format_expr

    return format_expr(e)


# ---------------------------------------------------------------- checks


@dataclass
class _Names:
    """What the project declares, for the checks."""

    journeys: set[str] = field(default_factory=set)
    messages: set[str] = field(default_factory=set)
    segments: set[str] = field(default_factory=set)
    steps: dict[str, set[str]] = field(default_factory=dict)  # journey -> step labels
    events: set[str] = field(default_factory=set)


def _project_names(trees: Iterable[ast.SourceFile]) -> _Names:
    names = _Names()
    for t in trees:
        for decl in t.declarations:
            labels: set[str] = set()
            # Every event the project reads: triggers, exits, goals, waits, `on`
            # branches, tracks and aggregates all name it in an `event` field.
            for node in ast.walk(decl):
                event = getattr(node, "event", None)
                if isinstance(event, str):
                    names.events.add(event)
                label = getattr(node, "label", None)
                if isinstance(label, ast.Label):
                    labels.add(label.name)
            if isinstance(decl, ast.Journey):
                names.journeys.add(decl.name)
                names.steps.setdefault(decl.name, set()).update(labels)
        names.messages.update(m.name for m in t.messages)
        names.segments.update(s.name for s in t.segments)
    return names


def _unknown(code: str, what: str, word: Word, known: Iterable[str]) -> Diagnostic:
    near = closest(word.name, known)
    where = "" if what == "channel" else " in the project"
    return error(
        code,
        f"no {what} `{word.name}`{where}",
        word.span,
        suggest(near) or f"an unknown {what}",
    )


def check_tests(
    project_trees: Sequence[ast.SourceFile], tests: Sequence[ParseResult]
) -> list[Diagnostic]:
    """The diagnostics of the test files ``tests`` against the project's ASTs
    ``project_trees``: names a test uses that the project does not declare (with a
    did-you-mean), expectations that do not fit their kind, values that are not
    literals, repeated test names; and declarations in a test file."""
    if not tests:
        return []  # walking the project's trees for its names is not free
    names = _project_names(project_trees)
    out: list[Diagnostic] = []
    for f in tests:
        if f.tree is None:
            continue
        for d in f.tree.declarations:
            what = type(d).__name__.lower()
            out.append(
                error(
                    "declaration_in_test_file",
                    f"a test file holds tests only, not a {what}",
                    d.name_span if not getattr(d, "bare", False) else d.span,
                    "move it to a .journey file beside the tests",
                    detail="test files are not part of the project: what they declare "
                    "would never deploy",
                )
            )
        seen: dict[str, JourneyTest] = {}
        for t in f.tree.tests:
            if t.name in seen:
                out.append(
                    error(
                        "duplicate_test",
                        f'a second test named "{t.name}" in this file',
                        t.name_span,
                        f"the first is on line {seen[t.name].span.line}",
                    )
                )
            seen.setdefault(t.name, t)
            out += _check_test(t, names)
    return out


def check_journey_file_tests(tree: ast.SourceFile) -> list[Diagnostic]:
    """A ``test`` block in a journey file (not ``*.test.journey``) is an error."""
    return [
        error(
            "test_outside_test_file",
            "a `test` block belongs in a test file",
            t.name_span,
            "tests go in a *.test.journey file",
            detail="journey files deploy; test files beside them do not",
        )
        for t in tree.tests
    ]


def _check_values(args: Iterable[ast.Arg], out: list[Diagnostic]) -> None:
    for a in args:
        try:
            literal_value(a.value)
        except NotLiteralError as exc:
            out.append(
                error(
                    "test_value_not_literal",
                    f"`{a.name}` must be a literal value in a test",
                    exc.span,
                    "a number, string, true/false, null, a duration or a list of them",
                )
            )


def _check_test(t: JourneyTest, names: _Names) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    users = {u.id for u in t.users} | {e.user for e in t.events}
    for u in t.users:
        _check_values(u.traits, out)
    for p in t.products:
        _check_values(p.fields, out)
    for e in t.events:
        _check_values(e.props, out)
        name = e.name  # normalized by the parser
        if name not in names.events and name != "identify":
            # Only a near miss is reported: a test may send events nothing reads.
            near = closest(name, names.events)
            if near:
                out.append(
                    warning(
                        "unknown_test_event",
                        f"no journey or segment reads the event `{name}`",
                        e.name_span,
                        suggest(near),
                    )
                )
    if not t.events and not any(x.kind == "segment" for x in t.expectations):
        out.append(
            warning(
                "test_without_events",
                f'test "{t.name}" gives no events: no journey can react',
                t.name_span,
            )
        )
    if not t.expectations:
        out.append(
            warning("test_without_expectations", f'test "{t.name}" expects nothing', t.name_span)
        )
    for x in t.expectations:
        out += _check_expectation(x, names, users)
    return out


_ONE_NAME: dict[str, str] = {
    "enter": "journey",
    "goal": "journey",
    "exit": "journey",
    "set": "attribute",
    "unset": "attribute",
    "track": "event",
    "segment": "segment",
}


def _check_expectation(x: Expectation, names: _Names, users: set[str]) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    if x.user is not None and x.user.name not in users:
        near = closest(x.user.name, users)
        out.append(
            warning(
                "unknown_test_user",
                f"no user `{x.user.name}` in this test (no `profile` line, no event of theirs)",
                x.user.span,
                suggest(near) or "nothing happens to an unknown user",
            )
        )
    if x.journey is not None and x.journey.name not in names.journeys:
        out.append(_unknown("unknown_journey", "journey", x.journey, names.journeys))
    journey = x.journey.name if x.journey is not None else None
    if x.kind in ("send", "suppress"):
        if len(x.names) > 2:
            out.append(_extra_name(x.names[2], "a channel and a message"))
        for i, w in enumerate(x.names[:2]):
            first_of_two = i == 0 and len(x.names) == 2
            if first_of_two or (len(x.names) == 1 and w.name in CHANNELS):
                if w.name not in CHANNELS:
                    out.append(_unknown("unknown_channel", "channel", w, CHANNELS))
            elif w.name not in names.messages:
                out.append(_unknown("unknown_message", "message", w, [*names.messages, *CHANNELS]))
    else:
        what = _ONE_NAME[x.kind]
        if x.kind == "segment" and not x.names:
            out.append(
                error(
                    "expect_needs_name",
                    "`expect segment` names the segment: `expect segment hero for ana`",
                    x.span,
                )
            )
        if len(x.names) > 1:
            out.append(_extra_name(x.names[1], f"one {what}"))
        if x.names:
            w = x.names[0]
            if what == "journey" and w.name not in names.journeys:
                out.append(_unknown("unknown_journey", "journey", w, names.journeys))
            elif what == "journey":
                journey = journey or w.name
            elif what == "segment" and w.name not in names.segments:
                out.append(_unknown("unknown_segment", "segment", w, names.segments))
    if x.step is not None and not x.step.name.replace(".", "").isdigit():
        every: set[str] = set().union(*names.steps.values())
        pool = names.steps.get(journey or "", every)
        if x.step.name not in pool:
            out.append(_unknown("unknown_step", "step", x.step, pool))
    if x.reason is not None:
        reasons = {"suppress": SUPPRESS_REASONS, "exit": EXIT_REASONS}.get(x.kind)
        if reasons is None:
            out.append(
                error(
                    "bad_reason",
                    f"`reason` is for `expect suppress` and `expect exit`, not `{x.kind}`",
                    x.reason.span,
                )
            )
        elif x.reason.name not in reasons:
            near = closest(x.reason.name, reasons, 3)
            out.append(
                error(
                    "bad_reason",
                    f"`{x.reason.name}` is not a reason of `expect {x.kind}`",
                    x.reason.span,
                    suggest(near) or "one of " + ", ".join(reasons),
                )
            )
    if x.kind == "segment" and (x.matches or x.reason or x.step or x.journey):
        out.append(
            error(
                "bad_expectation",
                "`expect segment` takes a user and a time only: `expect segment hero for ana "
                "at +1d`",
                x.span,
            )
        )
    return out


def _extra_name(w: Word, wanted: str) -> Diagnostic:
    return error(
        "bad_expectation",
        f"`{w.name}`: this expectation names {wanted} at most",
        w.span,
        "one name too many",
    )


# ---------------------------------------------------------------- formatting


def _with(args: Sequence[ast.Arg]) -> str:
    if not args:
        return ""
    return " with " + ", ".join(f"{a.name} = {literal_text(a.value)}" for a in args)


def _id(name: str) -> str:
    from journeyc.lang.formatter import reserved_words
    from journeyc.lang.literals import is_name

    return name if is_name(name) and name not in reserved_words() else quote_string(name)


def line_text(line: CaseLine) -> str:
    """One line of a test in canonical form."""
    if isinstance(line, Start):
        return f"start {quote_string(line.value)}"
    if isinstance(line, Until):
        return f"until {line.at.raw}"
    if isinstance(line, GivenUser):
        return f"profile {_id(line.id)}{_with(line.traits)}"
    if isinstance(line, GivenProduct):
        return f"product {_id(line.id)}{_with(line.fields)}"
    if isinstance(line, GivenEvent):
        from journeyc.lang.formatter import format_event

        return (
            f"track {format_event(line.name)} for {_id(line.user)} at {line.at.raw}"
            f"{_with(line.props)}"
        )
    words = ["expect"]
    if line.negated:
        words.append("no")
    words.append(line.kind)
    words += [w.name for w in line.names]
    if line.user is not None:
        words.append(("to " if line.kind in ("send", "suppress") else "for ") + _id(line.user.name))
    if line.journey is not None:
        words.append(f"in {line.journey.name}")
    if line.step is not None:
        words.append(f"as {line.step.name}")
    if line.at is not None:
        words.append(f"at {line.at.raw}")
    if line.reason is not None:
        words.append(f"reason {line.reason.name}")
    if line.matches:
        words.append(
            "with "
            + ", ".join(
                f"{m.name} {'including ' if m.contains else ''}{literal_text(m.value)}"
                for m in line.matches
            )
        )
    return " ".join(words)


def header_text(t: JourneyTest) -> str:
    """The first line of a test."""
    return f"test {quote_string(t.name)}"


def project_test_diagnostics(
    project_files: Sequence[ParseResult], tests: Sequence[ParseResult]
) -> list[Diagnostic]:
    """Everything ``validate`` reports about tests: the test files' syntax errors and
    checks (:func:`check_tests`, when the project parsed), and ``test`` blocks
    written in journey files."""
    out = [d for f in tests for d in f.diagnostics]
    trees = [f.tree for f in project_files if f.tree is not None]
    for tree in trees:
        out += check_journey_file_tests(tree)
    if all(f.tree is not None for f in project_files):
        out += check_tests(trees, tests)
    return out
