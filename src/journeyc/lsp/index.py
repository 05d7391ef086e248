"""Where names are declared and used in a project, and what sits at a position.

The index is built from the parsed files alone (no checking), so that go to
definition and hover keep working while another file of the project has errors.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum

from journeyc.lang import ast
from journeyc.lang.span import Span


class Kind(StrEnum):
    """The kinds of names that can be navigated."""

    MESSAGE = "message"
    SEGMENT = "segment"
    STEP = "step"
    JOURNEY = "journey"


@dataclass(frozen=True, slots=True)
class Occurrence:
    """One place a name is written: its declaration (``definition``) or a use.

    ``scope`` is the journey of a step name (step names are unique per journey); it
    is empty for project-wide names.
    """

    kind: Kind
    name: str
    scope: str
    span: Span
    definition: bool

    @property
    def key(self) -> tuple[Kind, str, str]:
        """What two occurrences of the same name share."""
        return (self.kind, self.name, self.scope)


@dataclass
class Index:
    """The occurrences of names in a project's files."""

    occurrences: list[Occurrence] = field(default_factory=list)
    messages: dict[str, ast.Message] = field(default_factory=dict)
    segments: dict[str, ast.Segment] = field(default_factory=dict)
    journeys: dict[str, ast.Journey] = field(default_factory=dict)
    # Event names the project's journeys and segments mention (for completion).
    events: set[str] = field(default_factory=set)

    @classmethod
    def build(cls, trees: Iterable[ast.SourceFile], texts: dict[str, str]) -> Index:
        """Index ``trees``; ``texts`` maps each file name to its text (some names are
        found by reading the text of their clause)."""
        index = cls()
        for tree in trees:
            text = texts.get(tree.path, "")
            for decl in tree.declarations:
                index._declaration(decl, text)
        return index

    def at(self, file: str, offset: int) -> Occurrence | None:
        """The occurrence under a cursor at ``offset`` of ``file`` (a cursor just after
        a name is on it, as editors place it after a double click)."""
        for occ in self.occurrences:
            if occ.span.file == file and occ.span.start <= offset <= occ.span.end:
                return occ
        return None

    def definitions(self, occ: Occurrence) -> list[Occurrence]:
        """Where the name of ``occ`` is declared (several places when it is declared
        twice, which the checker reports)."""
        return [o for o in self.occurrences if o.definition and o.key == occ.key]

    def references(self, occ: Occurrence, include_declaration: bool = True) -> list[Occurrence]:
        """Every occurrence of the name of ``occ``, across the project."""
        return [
            o
            for o in self.occurrences
            if o.key == occ.key and (include_declaration or not o.definition)
        ]

    def names(self, kind: Kind) -> list[str]:
        """The declared names of a kind, sorted, each once."""
        return sorted({o.name for o in self.occurrences if o.kind is kind and o.definition})

    # ------------------------------------------------------------ building
    def _add(self, kind: Kind, name: str, span: Span, definition: bool, scope: str = "") -> None:
        self.occurrences.append(Occurrence(kind, name, scope, span, definition))

    def _declaration(self, decl: ast.Declaration, text: str) -> None:
        if isinstance(decl, ast.Message):
            self.messages.setdefault(decl.name, decl)
            self._add(Kind.MESSAGE, decl.name, decl.name_span, True)
        elif isinstance(decl, ast.Segment):
            self.segments.setdefault(decl.name, decl)
            self._add(Kind.SEGMENT, decl.name, decl.name_span, True)
            self._uses(decl, decl.name, text)
        else:
            self.journeys.setdefault(decl.name, decl)
            if not decl.bare:
                self._add(Kind.JOURNEY, decl.name, decl.name_span, True)
            self._uses(decl, decl.name, text)

    def _uses(self, decl: ast.Journey | ast.Segment, scope: str, text: str) -> None:
        for node in ast.walk(decl):
            if isinstance(node, ast.MessageRef) and node.name is not None:
                self._add(Kind.MESSAGE, node.name, node.span, False)
            elif isinstance(node, ast.SegmentRef):
                self._add(Kind.SEGMENT, node.name, _tail(node.span, node.name, text), False)
            elif isinstance(node, ast.WhenSegment | ast.Every) and node.segment is not None:
                self._add(Kind.SEGMENT, node.segment, _tail(node.span, node.segment, text), False)
            elif isinstance(node, ast.Label):
                self._add(Kind.STEP, node.name, node.span, True, scope)
            elif isinstance(node, _EVENT_NODES):
                self.events.add(node.event)


_EVENT_NODES = (ast.WhenEvent, ast.ExitWhen, ast.Goal, ast.WaitFor, ast.Track, ast.Aggregate)


def _tail(span: Span, name: str, text: str) -> Span:
    """The span of ``name`` written last in ``span`` (``when entering NAME``,
    ``segment NAME``): the clause's span ends at its last word."""
    at = text.rfind(name, span.start, span.end)
    if at < 0:
        at = max(span.start, span.end - len(name))
    return Span.point(span.file, text, at, len(name))


def nodes_at(root: object, offset: int) -> list[object]:
    """The AST nodes under ``root`` whose span holds ``offset``, outermost first."""
    out: list[object] = []
    for node in _walk_spanned(root):
        span = getattr(node, "span", None)
        if isinstance(span, Span) and span.start <= offset <= span.end:
            out.append(node)
    return out


def _walk_spanned(root: object) -> Iterator[object]:
    """:func:`ast.walk`, less the spans themselves (dataclasses too)."""
    for node in ast.walk(root):
        if not isinstance(node, Span):
            yield node


def declaration_at(tree: ast.SourceFile, offset: int) -> ast.Declaration | None:
    """The declaration of ``tree`` that holds ``offset``."""
    for decl in tree.declarations:
        if decl.span.start <= offset <= decl.span.end:
            return decl
    return None


def step_at(journey: ast.Journey, offset: int) -> ast.Step | None:
    """The innermost step of ``journey`` whose span holds ``offset``."""
    found: ast.Step | None = None
    for step in ast.walk_steps(journey.steps):
        if step.span.start <= offset <= step.span.end:
            found = step
    return found
