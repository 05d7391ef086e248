"""Completion: what may be written at the cursor, read from the text around it.

A document being typed rarely parses, so completion does not use the AST. It looks
at the words before the cursor on its line, and at the headers of the blocks the
line sits in (the nearest less indented lines above it):

- at the start of a line, the keywords that may start one there: declarations at the
  top level, clauses and steps in a journey, steps in a branch, ``on`` under a
  ``wait for``, ``elif``/``else`` after an ``if``, channels in a message, a
  channel's fields in a part;
- after ``send`` / ``or``: channels; after a channel: messages (and ``or``);
- after ``segment``, ``when entering`` or ``for``: segments;
- the keyword that may follow another (``wait`` → ``until``/``for``, ``entry`` →
  ``once``/``always``, ``quiet`` → ``hours``, …);
- in an expression (``if``, ``where``, ``=``): functions and aggregates, segments
  through ``segment``, ``user``/``event``/``now`` and the operator words.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from lsprotocol import types

from journeyc.lang.ast import AGGREGATES, DAY_WORDS
from journeyc.lang.builtins import AGGREGATE_RESULTS, CHANNEL_FIELDS, CHANNELS, FUNCTIONS
from journeyc.lsp.hover import ITEM_TEST_DOCS

DECLARATIONS = ("journey", "message", "segment")
CLAUSES = (
    "when",
    "every",
    "entry",
    "exit when",
    "goal",
    "quiet hours",
    "cap",
    "holdout",
    "upgrade in place",
)
STEPS = ("wait", "if", "split", "send", "set", "unset", "track", "exit")
EXPRESSION_WORDS = (
    "not",
    "and",
    "or",
    "in",
    "between",
    "true",
    "false",
    "null",
    "user",
    "event",
    "now",
    "segment",
)
# After this word (in a statement starting with the key), these keywords may follow.
FOLLOWERS: dict[tuple[str, str], tuple[str, ...]] = {
    ("wait", "wait"): ("until", "for"),
    ("entry", "entry"): ("once", "always"),
    ("entry", "once"): ("per",),
    ("exit", "exit"): ("when", "as"),
    ("quiet", "quiet"): ("hours",),
    ("upgrade", "upgrade"): ("in",),
    ("upgrade", "in"): ("place",),
    ("every", "every"): ("day", *DAY_WORDS),
    ("wait", "up"): ("to",),
}


@dataclass(frozen=True, slots=True)
class Names:
    """The project's declared names completion offers."""

    messages: Sequence[str] = ()
    segments: Sequence[str] = ()
    events: Sequence[str] = ()


_TOKEN = re.compile(
    r'"(?:[^"\\\n]|\\.)*"?|[A-Za-z_][A-Za-z0-9_]*|[0-9][0-9A-Za-z_.:%]*|==|!=|<=|>=|\S'
)
_WORDLIKE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _first_word(line: str) -> str:
    m = re.match(r"\s*([A-Za-z_][A-Za-z0-9_]*|[0-9.]+%)", line)
    return m.group(1) if m else ""


def _code(line: str) -> str:
    """A line without its comment (a ``#`` outside strings)."""
    in_string = False
    escaped = False
    for i, c in enumerate(line):
        if escaped:
            escaped = False
        elif c == "\\" and in_string:
            escaped = True
        elif c == '"':
            in_string = not in_string
        elif c == "#" and not in_string:
            return line[:i]
    return line


def _headers(lines: Sequence[str], row: int, indent: int) -> list[str]:
    """The lines that open the blocks line ``row`` (indented ``indent``) sits in,
    nearest first."""
    out: list[str] = []
    for j in range(row - 1, -1, -1):
        code = _code(lines[j])
        if not code.strip():
            continue
        ind = _indent(code)
        if ind < indent:
            out.append(code)
            indent = ind
            if ind == 0:
                break
    return out


def _sibling(lines: Sequence[str], row: int, indent: int) -> str:
    """The nearest line above ``row`` at the same indentation in the same block."""
    for j in range(row - 1, -1, -1):
        code = _code(lines[j])
        if not code.strip():
            continue
        ind = _indent(code)
        if ind == indent:
            return code
        if ind < indent:
            return ""
    return ""


def _item(
    label: str, kind: types.CompletionItemKind, detail: str = "", snippet: str = ""
) -> types.CompletionItem:
    return types.CompletionItem(
        label=label,
        kind=kind,
        detail=detail or None,
        insert_text=snippet or None,
        insert_text_format=types.InsertTextFormat.Snippet if snippet else None,
    )


def _keywords(words: Iterable[str]) -> list[types.CompletionItem]:
    return [_item(w, types.CompletionItemKind.Keyword) for w in words]


def _channels() -> list[types.CompletionItem]:
    return [
        _item(c, types.CompletionItemKind.EnumMember, "channel: " + ", ".join(CHANNEL_FIELDS[c]))
        for c in CHANNELS
    ]


def _messages(names: Names) -> list[types.CompletionItem]:
    return [_item(m, types.CompletionItemKind.Reference, "message") for m in names.messages]


def _segments(names: Names) -> list[types.CompletionItem]:
    return [_item(s, types.CompletionItemKind.Class, "segment") for s in names.segments]


def _events(names: Names) -> list[types.CompletionItem]:
    return [_item(e, types.CompletionItemKind.Event, "event") for e in names.events]


def expression_items(names: Names) -> list[types.CompletionItem]:
    """What may be written in an expression: functions, aggregates, words."""
    items = [
        _item(
            f.name,
            types.CompletionItemKind.Function,
            f"({', '.join(p.value for p in f.params)}) -> {f.result.value}",
            f"{f.name}($1)",
        )
        for f in FUNCTIONS.values()
    ]
    items += [
        _item(
            a,
            types.CompletionItemKind.Function,
            f"aggregate -> {AGGREGATE_RESULTS[a].value}",
            f"{a}($1)",
        )
        for a in AGGREGATES
    ]
    items += [
        _item(t, types.CompletionItemKind.Function, "(list, condition) -> boolean", f"{t}($1)")
        for t in ITEM_TEST_DOCS
    ]
    return items + _keywords(EXPRESSION_WORDS)


def _line_start(lines: Sequence[str], row: int, indent: int) -> list[types.CompletionItem]:
    headers = _headers(lines, row, indent)
    parent = _first_word(headers[0]) if headers else ""
    grand = _first_word(headers[1]) if len(headers) > 1 else ""
    sibling = _first_word(_sibling(lines, row, indent))
    branch = ["elif", "else"] if sibling in ("if", "elif") else []
    if not headers:
        return _keywords([*DECLARATIONS, *CLAUSES, *STEPS, *branch])
    if parent == "journey":
        return _keywords([*CLAUSES, *STEPS, *branch])
    if parent == "message":
        return _channels()
    if grand == "message" and parent in CHANNEL_FIELDS:
        return [
            _item(f, types.CompletionItemKind.Field, f"field of {parent}")
            for f in CHANNEL_FIELDS[parent]
        ]
    if parent == "wait":
        return _keywords(["on"])
    if parent == "split":
        return []
    return _keywords([*STEPS, *branch])


def complete(text: str, offset: int, names: Names) -> list[types.CompletionItem]:
    """The completion items at ``offset`` of ``text``."""
    lines = text.split("\n")
    row = text.count("\n", 0, offset)
    col = offset - (text.rfind("\n", 0, offset) + 1)
    line = lines[row] if row < len(lines) else ""
    before = line[:col]
    code = _code(before)
    if code != before:
        return []  # in a comment
    tokens = _TOKEN.findall(code)
    if (
        tokens
        and tokens[-1].startswith('"')
        and (len(tokens[-1]) == 1 or not tokens[-1].endswith('"'))
    ):
        return []  # in a string
    # The word being typed is not context; the words before it are.
    typing = _WORDLIKE.search(code)
    if typing is not None and tokens and tokens[-1] == typing.group():
        tokens = tokens[:-1]
    if not tokens:
        return _line_start(lines, row, _indent(line))
    return _after(tokens, names, lines, row)


def _after(
    tokens: list[str], names: Names, lines: Sequence[str], row: int
) -> list[types.CompletionItem]:
    first, prev = tokens[0], tokens[-1]
    words = set(tokens)
    if first == "send":
        if prev in ("send", "or"):
            return _channels()
        if prev in CHANNELS and tokens[-2] in ("send", "or"):
            return [*_messages(names), *_keywords(["or"])]
        if "with" not in words and "as" not in words and prev != "as":
            return _keywords(["or", "with", "as"])
    if prev == "segment" and first != "segment":
        return _segments(names)
    if prev in ("entering", "leaving") or (first == "every" and prev == "for"):
        return _segments(names) + (_keywords(["everyone"]) if first == "every" else [])
    follow = FOLLOWERS.get((first, prev))
    if first == "wait" and prev == "until" and len(tokens) == 2:
        return []
    if first == "wait" and "until" in words and prev == "on":
        return _keywords(DAY_WORDS)
    if first == "on" and prev == "on":
        waited = _waited_event(lines, row)
        return _keywords(["timeout", *([waited] if waited else [])])
    if follow is not None:
        return _keywords(follow)
    if first == "when" and prev == "when":
        return _keywords(["entering", "leaving"]) + _events(names)
    if (prev in ("for", "track", "goal") and first in ("wait", "track", "goal")) or prev == "when":
        return _events(names)
    if first == "every" and (prev in DAY_WORDS or prev == "day"):
        return _keywords(["at"])
    if _in_expression(tokens):
        return expression_items(names) + _segments_after_segment(prev, names)
    return _clause_tail(first, prev, words)


def _segments_after_segment(prev: str, names: Names) -> list[types.CompletionItem]:
    return _segments(names) if prev == "segment" else []


def _in_expression(tokens: list[str]) -> bool:
    return tokens[0] in ("if", "elif") or "where" in tokens or "=" in tokens


def _clause_tail(first: str, prev: str, words: set[str]) -> list[types.CompletionItem]:
    """What may follow a complete clause or step (``where``, ``within``, ``as``)."""
    if first in ("when", "exit") and "where" not in words:
        return _keywords(["where"])
    if first == "goal":
        return _keywords([w for w in ("where", "within") if w not in words])
    if first == "wait" and "for" in words and "up" not in words:
        return _keywords(["where", "up"])
    if first in ("wait", "set", "unset", "track", "if", "split", "exit") and "as" not in words:
        return _keywords(["as", *(["with"] if first == "track" else [])])
    return []


def _waited_event(lines: Sequence[str], row: int) -> str:
    """The event of the ``wait for`` an ``on`` line sits under."""
    for header in _headers(lines, row, _indent(lines[row])):
        m = re.match(r"\s*wait\s+for\s+([A-Za-z_][A-Za-z0-9_]*|\"[^\"]*\")", header)
        if m:
            return m.group(1)
    return ""
