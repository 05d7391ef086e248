"""Diagnostics: one type, rendered as compiler-style text or terraform-style JSON."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from journeyc.lang.span import Span


class Severity(StrEnum):
    """How bad a diagnostic is: errors make a project invalid, warnings do not."""

    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """A problem found in a source file, with a stable ``code`` and a ``span``.

    ``summary`` is one line; ``label`` is the short text shown beside the carets;
    ``detail`` and ``hints`` add explanation.
    """

    severity: Severity
    code: str
    summary: str
    span: Span
    label: str = ""
    detail: str = ""
    hints: tuple[str, ...] = field(default=())

    @property
    def is_error(self) -> bool:
        """True for errors, False for warnings."""
        return self.severity is Severity.ERROR


def error(
    code: str,
    summary: str,
    span: Span,
    label: str = "",
    detail: str = "",
    hints: Iterable[str] = (),
) -> Diagnostic:
    """Build an error diagnostic."""
    return Diagnostic(Severity.ERROR, code, summary, span, label, detail, tuple(hints))


def warning(
    code: str,
    summary: str,
    span: Span,
    label: str = "",
    detail: str = "",
    hints: Iterable[str] = (),
) -> Diagnostic:
    """Build a warning diagnostic."""
    return Diagnostic(Severity.WARNING, code, summary, span, label, detail, tuple(hints))


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """A "did you mean `x`?" label for the closest candidate, or ``""``."""
    close = difflib.get_close_matches(name, sorted(set(candidates)), n=1, cutoff=0.6)
    return f"did you mean `{close[0]}`?" if close else ""


def suggest(choices: Iterable[str]) -> str:
    """A suggestion of ``choices`` in order (at most three): "did you mean `a`?",
    "did you mean `a` or `b`?"; ``""`` for none."""
    shown = [f"`{c}`" for c in dict.fromkeys(choices)]
    if not shown:
        return ""
    if len(shown) > 3:
        shown = shown[:3]
    head = ", ".join(shown[:-1])
    return f"did you mean {head + ' or ' if head else ''}{shown[-1]}?"


def edit_distance(a: str, b: str, limit: int | None = None) -> int:
    """The number of edits that turn ``a`` into ``b``: inserting, deleting or
    replacing one character, or swapping two adjacent ones (the optimal string
    alignment distance). With ``limit``, any distance above it is reported as
    ``limit + 1`` (and found sooner)."""
    if a == b:
        return 0
    cap = limit + 1 if limit is not None else len(a) + len(b)
    if abs(len(a) - len(b)) >= cap:
        return cap
    before: list[int] | None = None
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        row = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            d = min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + cost)
            if (
                before is not None
                and i > 1
                and j > 1
                and a[i - 1] == b[j - 2]
                and a[i - 2] == b[j - 1]
            ):
                d = min(d, before[j - 2] + 1)
            row[j] = d
        if min(row) >= cap:
            return cap
        before, prev = prev, row
    return min(prev[-1], cap)


def closest(name: str, candidates: Iterable[str], max_distance: int | None = None) -> list[str]:
    """The candidates fewest edits away from ``name`` (:func:`edit_distance`), at
    most ``max_distance``, in sorted order; empty when none is that close. By
    default a slip: one edit for a name of up to five characters, two for a longer."""
    if max_distance is None:
        max_distance = 1 if len(name) <= 5 else 2
    best: list[str] = []
    best_d = max_distance + 1
    for c in sorted(set(candidates)):
        if c == name:
            continue
        d = edit_distance(name, c, best_d)
        if d < best_d:
            best, best_d = [c], d
        elif d == best_d and d <= max_distance:
            best.append(c)
    return best


def sort_key(d: Diagnostic) -> tuple[str, int, int, str]:
    """Diagnostics are reported by file, then position, then code."""
    return (d.span.file, d.span.start, d.span.end, d.code)


def render_text(
    diagnostics: Iterable[Diagnostic], sources: Mapping[str, str], color: bool = False
) -> str:
    """Render diagnostics compiler-style, with the source line and carets.

    ``sources`` maps a span's file name to the file's text.
    """
    out: list[str] = []
    for d in diagnostics:
        out.append(_render_one(d, sources.get(d.span.file), color))
    return "\n".join(out)


def _paint(text: str, style: str, color: bool) -> str:
    codes = {"error": "1;31", "warning": "1;33", "bold": "1", "blue": "1;34"}
    return f"\x1b[{codes[style]}m{text}\x1b[0m" if color else text


def _render_one(d: Diagnostic, source: str | None, color: bool) -> str:
    sev = d.severity.value
    head = _paint(f"{sev}[{d.code}]", sev, color) + _paint(f": {d.summary}", "bold", color)
    lines = [head]
    s = d.span
    gutter = " " * len(str(s.line))
    lines.append(f"{gutter}{_paint('-->', 'blue', color)} {s.file}:{s.line}:{s.column}")
    if source is not None:
        src_lines = source.splitlines()
        if 1 <= s.line <= len(src_lines):
            text = src_lines[s.line - 1]
            width = (s.end_column - s.column) if s.end_line == s.line else len(text) - s.column + 1
            width = max(1, width)
            bar = _paint("|", "blue", color)
            lines.append(f"{gutter} {bar}")
            lines.append(f"{_paint(str(s.line), 'blue', color)} {bar} {text}")
            pad = " " * (s.column - 1)
            carets = _paint("^" * width, sev, color)
            label = f" {d.label}" if d.label else ""
            lines.append(f"{gutter} {bar} {pad}{carets}{label}")
    elif d.label:
        lines.append(f"{gutter}  = {d.label}")
    if d.detail:
        lines.append(f"{gutter}  = note: {d.detail}")
    for hint in d.hints:
        lines.append(f"{gutter}  = help: {hint}")
    return "\n".join(lines) + "\n"


def to_json(diagnostics: list[Diagnostic]) -> dict[str, Any]:
    """The ``--json`` shape, modelled on ``terraform validate -json``."""
    errors = sum(1 for d in diagnostics if d.is_error)
    return {
        "format_version": "1.0",
        "valid": errors == 0,
        "error_count": errors,
        "warning_count": len(diagnostics) - errors,
        "diagnostics": [
            {
                "severity": d.severity.value,
                "code": d.code,
                "summary": d.summary,
                "detail": "\n".join(x for x in (d.label, d.detail, *d.hints) if x),
                "range": {
                    "filename": d.span.file,
                    "start": {"line": d.span.line, "column": d.span.column, "byte": d.span.start},
                    "end": {
                        "line": d.span.end_line,
                        "column": d.span.end_column,
                        "byte": d.span.end,
                    },
                },
            }
            for d in diagnostics
        ],
    }
