"""Hover texts: what a name means where the cursor is, as Markdown.

- a message: its declaration (parts and fields) and where it is;
- a segment: its definition;
- a step (anywhere on it, or its ``as NAME``): the IR node the compiler makes of it;
- a function or aggregate: its signature (:mod:`journeyc.lang.builtins`);
- a channel: its fields;
- a journey clause: what it means.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from journeyc.compile.lower import lower_journey
from journeyc.lang import ast
from journeyc.lang.builtins import AGGREGATE_RESULTS, CHANNEL_FIELDS, CHANNELS, FUNCTIONS
from journeyc.lang.span import Span
from journeyc.lsp.index import Index, Kind, Occurrence, declaration_at, nodes_at, step_at

# Declarations longer than this are cut in hovers (a message with many locales).
_MAX_LINES = 24

AGGREGATE_DOCS: dict[str, str] = {
    "count": "how many of the user's events match",
    "sum": "the sum of a property over the matching events",
    "avg": "the average of a property over the matching events",
    "min": "the smallest value of a property over the matching events",
    "max": "the largest value of a property over the matching events",
    "distinct": "how many different values a property takes over the matching events",
    "top": "the most frequent value of a property over the matching events",
    "last": "the most recent matching event (`.at` is its time)",
    "first": "the earliest matching event (`.at` is its time)",
}
ITEM_TEST_DOCS: dict[str, str] = {
    "any": "whether some item of a list satisfies the condition (`item` is that item)",
    "all": "whether every item of a list satisfies the condition (`item` is that item)",
}


# What each journey clause means (docs/language.md, "Journey clauses").
CLAUSE_DOCS: dict[type, str] = {
    ast.WhenEvent: "`when EVENT [where EXPR]`: enter when the event arrives and the "
    "condition holds; several `when` lines mean any of them",
    ast.WhenSegment: "`when entering SEGMENT` / `when leaving SEGMENT`: enter when the user "
    "becomes (stops being) a member",
    ast.Every: "`every SCHEDULE for SEGMENT`: enter the segment's members on a schedule, in "
    "each user's local time; `for everyone` takes all users",
    ast.Entry: "`entry once` (default) / `entry once per DURATION` / `entry always`: re-entry "
    "rules; a user is never in the same journey twice at once",
    ast.ExitWhen: "`exit when EVENT [where EXPR]`: leave at once when the event arrives, "
    "whatever step the user is on",
    ast.Goal: "`goal EVENT [where EXPR] [within DURATION]`: the conversion, recorded once "
    "per entry",
    ast.QuietHours: "`quiet hours HH:MM-HH:MM [skip]`: sends in this local window wait "
    "until it ends (`skip`: are dropped)",
    ast.Cap: "`cap N per DURATION`: at most N sends from this journey to one user in any "
    "DURATION window",
    ast.Holdout: "`holdout P%`: P% of entrants go through with every send suppressed",
    ast.UpgradeInPlace: "`upgrade in place`: users in flight move to a new version of the "
    "journey at their step",
}


@dataclass(frozen=True, slots=True)
class Hover:
    """A hover's Markdown and the span it is about."""

    markdown: str
    span: Span


def signature(name: str) -> str | None:
    """The signature of a function, aggregate or item test, as Markdown, or None."""
    if name in FUNCTIONS:
        f = FUNCTIONS[name]
        params = ", ".join(p.value for p in f.params)
        return f"```journey\n{name}({params}) -> {f.result.value}\n```\n{f.doc}"
    if name in AGGREGATE_RESULTS:
        prop = "" if name in ("count", "last", "first") else ".PROPERTY"
        result = AGGREGATE_RESULTS[name].value
        shape = f"{name}(EVENT{prop} [where CONDITION] [within DURATION]) -> {result}"
        return f"```journey\n{shape}\n```\naggregate: {AGGREGATE_DOCS[name]}"
    if name in ITEM_TEST_DOCS:
        return f"```journey\n{name}(LIST, CONDITION) -> boolean\n```\n{ITEM_TEST_DOCS[name]}"
    return None


def channel_doc(channel: str) -> str:
    """A channel and its message fields, as Markdown."""
    fields = ", ".join(f"`{f}`" for f in CHANNEL_FIELDS.get(channel, ()))
    return f"channel `{channel}`\n\nfields: {fields}"


def _where(span: Span) -> str:
    return f"{span.file}:{span.line}"


def _source(text: str, span: Span) -> str:
    lines = text[span.start : span.end].split("\n")
    # The first line starts at the keyword; the others keep their indentation.
    if len(lines) > _MAX_LINES:
        lines = [*lines[:_MAX_LINES], "  …"]
    return "\n".join(lines)


def message_doc(msg: ast.Message, text: str) -> str:
    """A message's parts and fields, and its declaration."""
    parts = "; ".join(
        f"`{p.channel}` ({', '.join(dict.fromkeys(f.name for f in p.fields))})" for p in msg.parts
    )
    return (
        f"**message** `{msg.name}` — {_where(msg.name_span)}\n\n"
        f"parts: {parts}\n\n```journey\n{_source(text, msg.span)}\n```"
    )


def segment_doc(seg: ast.Segment, text: str) -> str:
    """A segment's definition."""
    source = _source(text, seg.span)
    return f"**segment** `{seg.name}` — {_where(seg.name_span)}\n\n```journey\n{source}\n```"


def step_doc(journey: ast.Journey, step: ast.Step) -> str | None:
    """The IR node the compiler makes of ``step``, as JSON."""
    ir = lower_journey(journey, journey.span.file, {}, {})
    for node_id, pos in ir.source_map.items():
        if pos.line == step.span.line and pos.column == step.span.column:
            node = ir.nodes[node_id]
            body = node.model_dump_json(indent=2, exclude_none=True)
            return (
                f"**step** `{node_id}` of journey `{journey.name}` (`{node.kind}` node)\n\n"
                f"```json\n{body}\n```"
            )
    return None


def hover(
    index: Index,
    texts: dict[str, str],
    tree: ast.SourceFile | None,
    file: str,
    offset: int,
    text: str,
) -> Hover | None:
    """The hover at ``offset`` of ``file``, whose text is ``text`` and AST ``tree``
    (None when it does not parse: then only words the text alone explains get a
    hover). ``texts`` are the texts the spans of ``index`` point into."""
    if tree is None:
        return _word(text, file, offset)
    occ = index.at(file, offset)
    if occ is not None:
        found = _occurrence(index, texts, occ)
        if found is not None:
            return Hover(found, occ.span)
    for node in reversed(nodes_at(tree, offset)):
        found_node = _node(node, offset)
        if found_node is not None:
            return found_node
    decl = declaration_at(tree, offset)
    if isinstance(decl, ast.Journey):
        step = step_at(decl, offset)
        if step is not None:
            doc = step_doc(decl, step)
            if doc is not None:
                return Hover(doc, step.span)
    return None


def _occurrence(index: Index, texts: dict[str, str], occ: Occurrence) -> str | None:
    if occ.kind is Kind.MESSAGE:
        msg = index.messages.get(occ.name)
        if msg is None:
            return f"no message named `{occ.name}` in this project"
        return message_doc(msg, texts.get(msg.span.file, ""))
    if occ.kind is Kind.SEGMENT:
        seg = index.segments.get(occ.name)
        if seg is None:
            return f"no segment named `{occ.name}` in this project"
        return segment_doc(seg, texts.get(seg.span.file, ""))
    if occ.kind is Kind.STEP:
        journey = index.journeys.get(occ.scope)
        if journey is None:
            return None
        for step in ast.walk_steps(journey.steps):
            if step.label is not None and step.label.span == occ.span:
                return step_doc(journey, step)
        # An arm's `as NAME` names the arm of a split, not a step.
        return f"split arm `{occ.name}` of journey `{occ.scope}`"
    if occ.kind is Kind.JOURNEY:
        journey = index.journeys.get(occ.name)
        if journey is None:
            return None
        title = f" — {journey.title}" if journey.title else ""
        return (
            f"**journey** `{journey.name}`{title}\n\n"
            f"{len(journey.clauses)} clause(s), {len(ast.walk_steps(journey.steps))} step(s)"
        )
    return None


def _within(start: int, length: int, offset: int) -> bool:
    return start <= offset <= start + length


def _node(node: object, offset: int) -> Hover | None:
    # Calls, aggregates and item tests (`any`, `all`) all name their function first.
    func = getattr(node, "func", None)
    span = getattr(node, "span", None)
    if isinstance(func, str) and isinstance(span, Span):
        if _within(span.start, len(func), offset):
            doc = signature(func)
            if doc is not None:
                return Hover(doc, span.head(len(func)))
    elif isinstance(node, ast.Target | ast.Part):
        if _within(node.span.start, len(node.channel), offset) and node.channel in CHANNELS:
            return Hover(channel_doc(node.channel), node.span.head(len(node.channel)))
    elif isinstance(node, ast.Field) and _within(node.span.start, len(node.name), offset):
        return Hover(f"field `{node.name}` of a message part", node.span.head(len(node.name)))
    elif type(node) in CLAUSE_DOCS and isinstance(span, Span):
        return Hover(f"**clause** {CLAUSE_DOCS[type(node)]}", span)
    return None


_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _word(text: str, file: str, offset: int) -> Hover | None:
    """A hover from the text alone: a function called or a channel, in a file that
    does not parse."""
    line_start = text.rfind("\n", 0, offset) + 1
    line_end = text.find("\n", offset)
    line = text[line_start : line_end if line_end >= 0 else len(text)]
    for m in _WORD.finditer(line):
        if m.start() <= offset - line_start <= m.end():
            word = m.group()
            span = Span.point(file, text, line_start + m.start(), len(word))
            called = line[m.end() :].lstrip().startswith("(")
            doc = signature(word) if called else None
            if doc is None and word in CHANNELS:
                doc = channel_doc(word)
            return Hover(doc, span) if doc is not None else None
    return None
