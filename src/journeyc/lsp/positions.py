"""Offsets into a source text and LSP positions, both ways.

Spans count characters (code points) and lines split at ``\\n`` only, as the parser
does; LSP counts lines the same way but columns in the negotiated encoding's code
units (UTF-16 unless the client offered another).
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field

from lsprotocol import types

from journeyc.lang.span import Span


def _units(text: str, encoding: str) -> int:
    """How many code units of ``encoding`` the characters of ``text`` take."""
    if encoding == types.PositionEncodingKind.Utf8:
        return len(text.encode("utf-8"))
    if encoding == types.PositionEncodingKind.Utf32:
        return len(text)
    return len(text) + sum(1 for c in text if ord(c) > 0xFFFF)


@dataclass
class LineIndex:
    """A text's line starts, for converting offsets and LSP positions."""

    text: str
    encoding: str = types.PositionEncodingKind.Utf16
    starts: list[int] = field(init=False)

    def __post_init__(self) -> None:
        self.starts = [0]
        self.starts.extend(i + 1 for i, c in enumerate(self.text) if c == "\n")

    def position(self, offset: int) -> types.Position:
        """The LSP position of a character offset."""
        offset = max(0, min(offset, len(self.text)))
        line = bisect_right(self.starts, offset) - 1
        start = self.starts[line]
        return types.Position(line=line, character=_units(self.text[start:offset], self.encoding))

    def offset(self, position: types.Position) -> int:
        """The character offset of an LSP position (clamped to its line)."""
        if position.line >= len(self.starts):
            return len(self.text)
        start = self.starts[position.line]
        end = self.starts[position.line + 1] - 1 if position.line + 1 < len(self.starts) else None
        line = self.text[start:end]
        units = 0
        for i, c in enumerate(line):
            if units >= position.character:
                return start + i
            units += _units(c, self.encoding)
        return start + len(line)

    def range(self, span: Span) -> types.Range:
        """The LSP range of a span of this text."""
        return types.Range(start=self.position(span.start), end=self.position(span.end))

    def line_text(self, line: int) -> str:
        """The text of a 0-based line, without its newline."""
        if line >= len(self.starts):
            return ""
        start = self.starts[line]
        end = self.text.find("\n", start)
        return self.text[start : end if end >= 0 else len(self.text)]
