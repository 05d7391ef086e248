"""Parsing `.journey` sources into ASTs, reporting every syntax error it can.

The grammar (``grammar/journey.lark`` in the checkout, see :func:`grammar_path`) is
LALR and loads from lark's cache after the first run. Recovery: on a syntax error,
the offending line and the lines indented under it are blanked out (offsets kept)
and the source is parsed again, until it parses or ``max_errors`` is reached. Each
error is worded in terms of the language ("expected a duration like `30m`"), never
lark's token names.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import ClassVar

from lark import Lark, Token, UnexpectedCharacters, UnexpectedInput, UnexpectedToken
from lark.exceptions import UnexpectedEOF, VisitError
from lark.indenter import Indenter

from journeyc.lang.ast import SourceFile
from journeyc.lang.depth import find_too_deep, whole_file_too_deep
from journeyc.lang.diagnostics import Diagnostic, closest, error, suggest
from journeyc.lang.span import Span
from journeyc.lang.transform import ToAst

GRAMMAR = "journey.lark"


class BadIndentError(Exception):
    """A dedent to a column no enclosing block started at."""

    def __init__(self, token: Token, column: int, expected: list[int]) -> None:
        super().__init__("bad indent")
        self.token = token
        self.column = column
        self.expected = expected


class JourneyIndenter(Indenter):
    """Turns leading spaces into block tokens; brackets continue lines."""

    NL_type = "_NL"
    OPEN_PAREN_types: ClassVar[list[str]] = ["LPAR", "LSQB"]
    CLOSE_PAREN_types: ClassVar[list[str]] = ["RPAR", "RSQB"]
    INDENT_type = "_INDENT"
    DEDENT_type = "_DEDENT"
    tab_len = 8

    def handle_NL(self, token: Token) -> Iterator[Token]:  # noqa: N802 (lark's name)
        """As lark's, but a bad dedent names its line."""
        if self.paren_level > 0:
            return
        yield token
        indent_str = token.rsplit("\n", 1)[1]
        indent = len(indent_str.expandtabs(self.tab_len))
        if indent > self.indent_level[-1]:
            self.indent_level.append(indent)
            yield Token.new_borrow_pos(self.INDENT_type, indent_str, token)
        else:
            levels = list(self.indent_level)
            while indent < self.indent_level[-1]:
                self.indent_level.pop()
                yield Token.new_borrow_pos(self.DEDENT_type, indent_str, token)
            if indent != self.indent_level[-1]:
                raise BadIndentError(token, indent, levels)


_LAYOUT = frozenset({"_NL", "_INDENT", "_DEDENT"})


class _Positioned:
    """Layout tokens carry no position of a node: a statement ends at its last word.

    A class, not a function, because lark keys its grammar cache on ``str()`` of the
    options, and a function's text holds its address, which changes every run.
    """

    def __call__(self, node: object) -> bool:
        return not (isinstance(node, Token) and node.type in _LAYOUT)

    def __repr__(self) -> str:
        return "journeyc.positioned"


_positioned = _Positioned()


def grammar_path() -> Path:
    """Where the grammar is: beside this module in an installed wheel (the build
    copies it there), else ``grammar/journey.lark`` of the checkout, its one source
    (an editable install runs from the checkout)."""
    # A path beside this module is all it takes; importlib.resources would add ~0.1 s
    # to every cold start.
    installed = Path(__file__).parent / GRAMMAR
    if installed.is_file():
        return installed
    return Path(__file__).resolve().parents[3] / "grammar" / GRAMMAR


@cache
def parser() -> Lark:
    """The LALR parser, built once per process and cached on disk by lark."""
    grammar = grammar_path().read_text(encoding="utf-8")
    return Lark(
        grammar,
        parser="lalr",
        postlex=JourneyIndenter(),
        propagate_positions=_positioned,
        maybe_placeholders=True,
        strict=True,
        cache=True,
    )


@dataclass
class ParseResult:
    """A parsed file: its AST (None when it had syntax errors) and diagnostics."""

    path: str
    text: str
    tree: SourceFile | None
    diagnostics: list[Diagnostic] = field(default_factory=list)


def parse_file(path: Path | str, display: str | None = None, max_errors: int = 50) -> ParseResult:
    """Read and parse one file; ``display`` is the name diagnostics use for it."""
    name = display or str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        return ParseResult(
            name,
            "",
            None,
            [
                error(
                    "unreadable_file",
                    f"the file is not UTF-8 text ({exc.reason})",
                    Span.whole_file(name),
                )
            ],
        )
    except OSError as exc:
        return ParseResult(
            name,
            "",
            None,
            [
                error(
                    "unreadable_file",
                    f"cannot read the file: {exc.strerror}",
                    Span.whole_file(name),
                )
            ],
        )
    return parse_source(text, name, max_errors)


def parse_source(text: str, path: str = "<string>", max_errors: int = 50) -> ParseResult:
    """Parse ``text``; ``path`` names it in spans and gives a bare journey its name.

    A file nested past the limits of :mod:`journeyc.lang.depth` gets a ``too_deep``
    error and no tree.
    """
    try:
        return _parse_source(text, path, max_errors)
    except RecursionError:
        # A last line of defence: parsing and building the AST do not recurse, and
        # the nesting limits are checked before anything else walks the tree.
        return ParseResult(path, text, None, [whole_file_too_deep(path, text)])


def _parse_source(text: str, path: str, max_errors: int) -> ParseResult:
    diags = _tab_errors(text, path)
    work = text.expandtabs(2) if diags else text
    # Spans are made against the text parsed; with tabs expanded, they are mapped back.
    src = work if diags else text
    if not work.endswith("\n"):
        work += "\n"
    syntax: list[Diagnostic] = []
    seen_lines: set[int] = set()
    while True:
        try:
            tree = parser().parse(work)
        except BadIndentError as exc:
            line = exc.token.end_line or 1
            d = _bad_indent(src, path, line, exc)
        except UnexpectedInput as exc:
            d, line = _syntax_error(src, work, path, exc)
        else:
            builder = ToAst(path, src)
            try:
                ast = builder.transform(tree)
            except VisitError as exc:  # a bug of ours, not the user's: let it show
                raise exc.orig_exc from exc
            deep = find_too_deep(ast, src) if builder.too_deep else None
            if deep is not None or syntax or diags:
                # No tree. What survived recovery still gets its literal checks; the tree
                # does not go on to the checker, which would only report echoes of the
                # syntax errors, nor (too deep) to any later stage, which walk it
                # recursively.
                found = syntax + builder.diagnostics + ([deep] if deep is not None else [])
                if diags:
                    found = _untab(text, found)
                return ParseResult(path, text, None, diags + found)
            return ParseResult(path, text, ast, builder.diagnostics)
        if line in seen_lines or len(syntax) >= max_errors:
            found = _untab(text, syntax) if diags else syntax
            return ParseResult(path, text, None, diags + found)
        seen_lines.add(line)
        syntax.append(d)
        work = _blank_statement(work, line)


def _untab(text: str, found: list[Diagnostic]) -> list[Diagnostic]:
    """Move spans made against ``text.expandtabs(2)`` back onto ``text``."""
    origin: list[int] = []
    column = 0
    for i, c in enumerate(text):
        width = 2 - column % 2 if c == "\t" else 1
        origin.extend([i] * width)
        column = 0 if c in "\r\n" else column + width
    origin.append(len(text))

    def back(offset: int) -> int:
        return origin[min(offset, len(origin) - 1)]

    out = []
    for d in found:
        start, end = back(d.span.start), back(d.span.end)
        out.append(replace(d, span=Span.point(d.span.file, text, start, end - start)))
    return out


def _tab_errors(text: str, path: str) -> list[Diagnostic]:
    out = []
    for m in re.finditer(r"^[ ]*\t[ \t]*", text, re.M):
        col = m.group().index("\t")
        out.append(
            error(
                "tab_indent",
                "a tab in the indentation: indent with spaces",
                Span.point(path, text, m.start() + col),
                "tab here",
            )
        )
    return out


def _bad_indent(text: str, path: str, line: int, exc: BadIndentError) -> Diagnostic:
    lines = text.splitlines()
    content = lines[line - 1] if line <= len(lines) else ""
    offset = sum(len(x) + 1 for x in lines[: line - 1]) + exc.column
    levels = " or ".join(str(c) for c in exc.expected)
    return error(
        "bad_indent",
        "this line's indentation matches no enclosing block",
        Span.point(path, text, offset, max(1, len(content.strip()))),
        f"indented {exc.column} spaces; blocks here start at {levels}",
    )


_WORDS = {
    "NAME": "a name",
    "STRING": "a string",
    "NUMBER": "a number",
    "DURATION": "a duration like `30m`",
    "TIME": "a time like `09:00`",
    "PERCENT": "a percentage like `10%`",
    "_NL": "the end of the line",
    "_INDENT": "an indented block",
    "_DEDENT": "the end of the block",
    "$END": "the end of the file",
}
_EXPR_START = {
    "NAME",
    "NUMBER",
    "STRING",
    "DURATION",
    "LPAR",
    "LSQB",
    "TRUE",
    "FALSE",
    "NULL",
    "NOT",
    "MINUS",
    "SEGMENT",
}
_OPERATORS = {
    "EQUAL",
    "NOTEQUAL",
    "LESSTHAN",
    "MORETHAN",
    "__ANON_0",
    "__ANON_1",
    "__ANON_2",
    "__ANON_3",
    "PLUS",
    "MINUS",
    "STAR",
    "SLASH",
    "AND",
    "OR",
    "IN",
    "NOT",
    "BETWEEN",
    "DOT",
}


def _describe_terminal(name: str) -> str:
    if name in _WORDS:
        return _WORDS[name]
    term = next((t for t in parser().terminals if t.name == name), None)
    if term is not None and term.pattern.type == "str":
        return f"`{term.pattern.value}`"
    return name.lower()


def _describe_expected(expected: set[str]) -> str:
    names = set(expected)
    words: list[str] = []
    if _EXPR_START - {"NOT", "MINUS"} <= names:
        names -= _EXPR_START
        words.append("an expression")
    ops = {n for n in names if n in _OPERATORS or _is_operator(n)}
    if len(ops) > 3:
        names -= ops
        words.append("an operator")
    words += sorted(_describe_terminal(n) for n in names)
    if len(words) > 6:
        words = [*words[:6], "…"]
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " or " + words[-1]


def _is_operator(name: str) -> bool:
    term = next((t for t in parser().terminals if t.name == name), None)
    return bool(term and term.pattern.type == "str" and not term.pattern.value.isalpha())


def _describe_token(tok: Token) -> str:
    if tok.type in ("_NL", "_INDENT", "_DEDENT", "$END"):
        return {
            "_NL": "end of line",
            "_INDENT": "an indented line",
            "_DEDENT": "end of block",
            "$END": "end of file",
        }[tok.type]
    return f"`{tok}`"


def _syntax_error(text: str, work: str, path: str, exc: UnexpectedInput) -> tuple[Diagnostic, int]:
    if isinstance(exc, UnexpectedCharacters):
        offset = exc.pos_in_stream or 0
        line = exc.line
        clock = _time_in_expression(work, offset, set(exc.allowed or ()))
        if clock is not None:
            start, end = clock
            return _time_of_day_error(path, text, work, start, end), line
        if exc.char == '"':
            end = work.find("\n", offset)
            return error(
                "unterminated_string",
                'this string has no closing `"`',
                Span.point(path, text, offset, (end if end >= 0 else len(work)) - offset),
                "strings end on the line they start",
            ), line
        return error(
            "journey_parse_error",
            f"unexpected character `{exc.char}`",
            Span.point(path, text, offset),
            f"expected {_describe_expected(set(exc.allowed or ()))}",
        ), line
    if isinstance(exc, UnexpectedToken):
        tok = exc.token
        accepts = _accepted(exc)
        expected = _describe_expected(accepts)
        if tok.type in ("_INDENT", "_DEDENT"):
            line = tok.end_line or 1
            offset = tok.end_pos or 0
            lines = work.splitlines()
            width = len(lines[line - 1].strip()) if line <= len(lines) else 1
            summary = (
                "unexpected indentation" if tok.type == "_INDENT" else "this block ended too early"
            )
            return error(
                "journey_parse_error",
                summary,
                Span.point(path, text, offset, max(1, width)),
                f"expected {expected}",
            ), line
        if tok.type == "$END":
            offset = len(text.rstrip())
            line = text.count("\n", 0, offset) + 1
            return error(
                "journey_parse_error",
                "the file ends too early",
                Span.point(path, text, max(0, offset - 1)),
                f"expected {expected}",
            ), line
        offset = tok.start_pos or 0
        line = tok.line or 1
        length = 1 if tok.type == "_NL" else len(str(tok))
        if tok.type == "_NL":
            offset = _line_end(work, offset)
        # A word may be a keyword of another place (`no`, a test file's, for `on`).
        word_like = tok.type == "NAME" or tok.type in _keywords()
        guess = _keyword_guess(work, tok, accepts) if word_like else None
        if guess is not None:
            start, word, label, after_keyword = guess
            return error(
                "journey_parse_error",
                f"unexpected `{word}`",
                Span.point(path, text, start, len(word)),
                label,
                # What the parser expected after the keyword it split off is no help.
                detail="" if after_keyword else f"expected {expected}",
            ), line
        return error(
            "journey_parse_error",
            f"unexpected {_describe_token(tok)}",
            Span.point(path, text, offset, length),
            f"expected {expected}",
        ), line
    if isinstance(exc, UnexpectedEOF):
        offset = len(text.rstrip())
        return error(
            "journey_parse_error",
            "the file ends too early",
            Span.point(path, text, max(0, offset - 1)),
        ), text.count("\n", 0, offset) + 1
    raise exc


def _accepted(exc: UnexpectedToken) -> set[str]:
    """The terminals the parser could have taken instead of ``exc.token``.

    lark's ``accepts`` tries each terminal from the state of the error; ``expected``
    (the table's lookahead, a superset merged across states) is the fallback when
    the interactive parser cannot say."""
    try:
        accepts = exc.accepts
    except Exception:  # lark's own machinery: its fallback will do
        accepts = None
    return set(accepts or exc.expected)


@cache
def _keywords() -> dict[str, str]:
    """Every keyword of the grammar by its terminal's name: ``{"SEND": "send"}``."""
    return {
        t.name: str(t.pattern.value)
        for t in parser().terminals
        if t.pattern.type == "str" and str(t.pattern.value).isalpha()
    }


def _keyword_guess(work: str, tok: Token, accepts: set[str]) -> tuple[int, str, str, bool] | None:
    """For a word where a keyword was expected (``sned push "x"``): where the word
    starts, the word, a "did you mean" among the keywords valid there, and whether
    the lexer had split a keyword off the word (see below); None when no keyword is
    close.

    Close means one edit (a letter added, dropped, changed, or two swapped) for a
    word of up to five letters, two for a longer one. Two slips are recognized
    besides: a keyword run into more letters, which the lexer splits after the
    keyword (``wait untill 09:00`` reaches the parser as `until` and `l`), and a
    misspelt word just before the unexpected one (``when enterng hero``: `enterng`
    parsed as an event name)."""
    keywords = _keywords()
    every = set(keywords.values())
    start = tok.start_pos or 0
    word = str(tok)
    head = start
    while head > 0 and (work[head - 1].isalnum() or work[head - 1] == "_"):
        head -= 1
    if head < start:
        whole = work[head:start] + word
        choices = closest(whole, every)
        return (head, whole, suggest(choices), True) if choices else None
    valid = {keywords[n] for n in accepts if n in keywords}
    choices = closest(word, valid)
    if choices:
        return start, word, suggest(choices), False
    before = _word_before(work, start)
    if before is None or before in every or len(before) < 3:
        return None
    near = closest(before, every, 1)
    if not near:
        return None
    return start, word, f"`{before}` before it: {suggest(near)}", False


def _word_before(work: str, offset: int) -> str | None:
    """The word just before ``offset`` on its line, if a word is there."""
    line_start = work.rfind("\n", 0, offset) + 1
    m = re.search(r"([A-Za-z_][A-Za-z0-9_]*)[ \t]+$", work[line_start:offset])
    return m.group(1) if m else None


_CLOCK = re.compile(r"[0-9]{1,2}:[0-9]{2}(?![0-9:])")
_COMPARISONS = frozenset({"LESSTHAN", "MORETHAN", "EQUAL", "NOTEQUAL", "BETWEEN", "IN"})


def _time_in_expression(work: str, offset: int, allowed: set[str]) -> tuple[int, int] | None:
    """Where a time of day such as ``09:00`` stands in an expression (the parser read
    ``09`` as a number and stopped at ``:``), as (start, end); None otherwise."""
    if not offset or work[offset : offset + 1] != ":" or not allowed & _COMPARISONS:
        return None
    start = offset
    while start > 0 and work[start - 1].isdigit():
        start -= 1
    if start > 0 and (work[start - 1].isalnum() or work[start - 1] in "_."):
        return None
    m = _CLOCK.match(work, start)
    return (start, m.end()) if m else None


def _time_of_day_error(path: str, text: str, work: str, start: int, end: int) -> Diagnostic:
    clock = work[start:end]
    return error(
        "type_error",
        f"a time of day (`{clock}`) is not a value an expression can compare",
        Span.point(path, text, start, end - start),
        "a time of day",
        detail=(
            "event and profile values are JSON (numbers, strings, true/false, lists, "
            "objects; times are ISO-8601 strings): none of them is ever a time of day"
        ),
        hints=[
            "for the time since something, use `days_since(...)`, `hours_since(...)` or "
            "`minutes_since(...)`: `hours_since(event.at) >= 2`; for an hour held in a "
            "property, compare a number: `event.hour >= 9`",
            "to act at a time of day, use a step: `wait until 09:00`",
        ],
    )


def _line_end(work: str, offset: int) -> int:
    """A `_NL` token may start at a comment: point at the end of the code instead."""
    line_start = work.rfind("\n", 0, offset) + 1
    return line_start + len(work[line_start:offset].rstrip())


def _indent_of(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _blank_statement(work: str, line: int) -> str:
    """Blank out line ``line`` (1-based) and the lines indented under it — and the
    parent header too when that line was its only child — keeping every offset."""
    lines = work.split("\n")
    idx = line - 1
    if idx >= len(lines):
        return work
    lo, hi = idx, idx + 1
    base = _indent_of(lines[idx])
    while hi < len(lines) and (not lines[hi].strip() or _indent_of(lines[hi]) > base):
        hi += 1
    # An only child leaves its parent header with an empty block: take the parent too.
    while base > 0:
        prev = next((j for j in range(lo - 1, -1, -1) if lines[j].strip()), None)
        nxt = next((j for j in range(hi, len(lines)) if lines[j].strip()), None)
        if prev is None or _indent_of(lines[prev]) >= base:
            break
        if nxt is not None and _indent_of(lines[nxt]) == base:
            break
        lo, base = prev, _indent_of(lines[prev])
        while hi < len(lines) and (not lines[hi].strip() or _indent_of(lines[hi]) > base):
            hi += 1
    for j in range(lo, hi):
        lines[j] = " " * len(lines[j])
    return "\n".join(lines)
