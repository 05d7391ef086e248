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
from journeyc.lang.diagnostics import Diagnostic, error
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
            if deep is not None:
                # No tree: every later stage walks it recursively.
                found = [*syntax, *builder.diagnostics, deep]
                if diags:
                    found = _untab(text, found)
                return ParseResult(path, text, None, diags + found)
            if syntax or diags:
                # What survived recovery still gets its literal checks; the tree does not
                # go on to the checker, which would only report echoes of the syntax errors.
                found = syntax + builder.diagnostics
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
        expected = _describe_expected(set(exc.expected))
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
