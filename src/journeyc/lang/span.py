"""Source positions: every AST node and diagnostic points at a span of a file."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Span:
    """A range of a source file: 0-based offsets, 1-based lines and columns.

    ``end_line``/``end_column`` point just past the last character, as lark's
    positions do.
    """

    file: str
    start: int
    end: int
    line: int
    column: int
    end_line: int
    end_column: int

    @classmethod
    def point(cls, file: str, text: str, offset: int, length: int = 1) -> Span:
        """A span of ``length`` characters at ``offset`` of ``text``."""
        offset = max(0, min(offset, len(text)))
        end = min(len(text), offset + max(length, 0))
        line, column = line_col(text, offset)
        end_line, end_column = line_col(text, end)
        return cls(file, offset, end, line, column, end_line, end_column)

    def head(self, length: int) -> Span:
        """The first ``length`` characters of this span, on its first line."""
        return Span(
            self.file,
            self.start,
            self.start + length,
            self.line,
            self.column,
            self.line,
            self.column + length,
        )

    @classmethod
    def whole_file(cls, file: str) -> Span:
        """A span for problems with a file as a whole (unreadable, empty)."""
        return cls(file, 0, 0, 1, 1, 1, 1)


def line_col(text: str, offset: int) -> tuple[int, int]:
    """1-based line and column of ``offset`` in ``text``."""
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return line, column
