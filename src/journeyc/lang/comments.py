"""Finding the comments of a source, so that ``fmt`` can put them back."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Comment:
    """A ``#`` comment: where it starts and whether it has a line to itself."""

    line: int
    column: int
    text: str
    own_line: bool


def scan_comments(text: str) -> list[Comment]:
    """Every comment in ``text``; a ``#`` inside a string is not one.

    Strings never span lines, so a per-line scan is exact. Lines are split at ``\n``
    only, as the parser counts them (``str.splitlines`` would also split at U+2028
    and kin, which may stand inside a string).
    """
    found: list[Comment] = []
    for lineno, raw in enumerate(text.split("\n"), start=1):
        line = raw.removesuffix("\r")
        in_string = False
        i = 0
        while i < len(line):
            c = line[i]
            if in_string:
                if c == "\\":
                    i += 1
                elif c == '"':
                    in_string = False
            elif c == '"':
                in_string = True
            elif c == "#":
                found.append(Comment(lineno, i + 1, line[i:].rstrip(), not line[:i].strip()))
                break
            i += 1
    return found
