"""Rendered fields remembered by what they read.

A template's output depends only on the values at the variable paths it reads, so a
field rendered once for those values need not be rendered again: the next user with
the same first name, coupon and percent gets the same text from a dictionary instead
of from Liquid. A template is remembered only when that reasoning holds, which
python-liquid's static analysis tells: every filter is a function of its input and
arguments (not the recommendation filters, which read the catalog and the event log),
every tag is one of Liquid's own that renders nothing from outside the template (no
``include`` or ``render``), and every path it reads is a chain of plain names and
indexes (``user[key]`` with a variable ``key`` is not). ``date`` reads the template's
``now`` for ``"now"`` and ``"today"``, so a template using it depends on ``now`` too.

The key holds the value found at each path: the value itself where the path leads
through mappings to its end, "missing" where a mapping lacks the next name (Liquid
sees nothing there, whatever else the mapping holds), and the whole value where the
path goes on into something else (``tags.size``, ``tags[0]``, ``name.first``: what
Liquid derives from it depends on all of it), as is a mapping asked for ``size``,
``first`` or ``last`` that has no such key.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

import liquid

from journeyc.fastjson import dumps

__all__ = ["IMPURE_FILTERS", "PURE_TAGS", "Memo", "Path", "dependencies"]

PURE_TAGS: frozenset[str] = frozenset(
    {
        "assign",
        "break",
        "capture",
        "case",
        "comment",
        "continue",
        "cycle",
        "decrement",
        "doc",
        "echo",
        "for",
        "if",
        "ifchanged",
        "increment",
        "liquid",
        "raw",
        "tablerow",
        "unless",
    }
)
"""Liquid's own tags whose output depends on nothing but the template's variables."""

IMPURE_FILTERS: frozenset[str] = frozenset({"top_sellers", "popular", "cross_sell"})
"""Filters whose output depends on more than their input and arguments."""

_DERIVED = frozenset({"size", "first", "last"})  # what Liquid derives from a whole value

Path = tuple[str | int, ...]


def dependencies(template: liquid.BoundTemplate) -> tuple[Path, ...] | None:
    """The variable paths ``template``'s output depends on, or None when it depends
    on something else too (or on paths that are not plain)."""
    try:
        filters = set(template.filter_names())
        tags = set(template.tag_names())
        found = template.global_variable_segments()
        # Liquid's analysis calls a name local from its first `assign` or `capture`
        # on, even inside a branch that may not run, and then not global where it is
        # read: `{% if a %}{% assign c = 'x' %}{% endif %}{{ c }}` prints the global
        # `c` when `a` does not hold. So a name the template assigns is read whole.
        assigned = list(template.analyze().locals)
    # Analysis loads what `render` and `include` name, which may not exist (the
    # render says so); deep nesting raises RecursionError.
    except Exception:
        return None
    if filters & IMPURE_FILTERS or not tags <= PURE_TAGS:
        return None
    paths: set[Path] = set()
    for segments in found:
        path = tuple(s for s in segments if isinstance(s, str | int))
        if len(path) != len(segments):  # a path with a variable in it
            return None
        paths.add(path)
    paths.update((name,) for name in assigned)
    if "date" in filters:
        paths.add(("now",))
    return tuple(sorted(paths, key=repr))


_MISSING: list[Any] = []  # a marker no JSON value is identical to


def _at(variables: Mapping[str, Any], path: Path) -> Any:
    obj: Any = variables
    for seg in path:
        if obj.__class__ is not dict:
            break  # into a list, string or number: the whole value decides
        if seg in obj:
            obj = obj[seg]
        elif seg in _DERIVED:
            break
        else:
            return _MISSING
    return obj


class Memo:
    """A bounded memo of rendered fields, keyed by template source and the values at
    the template's :func:`dependencies`."""

    def __init__(self, max_entries: int = 16_384) -> None:
        self._max = max_entries
        self._texts: dict[str, str] = {}
        self._lock = threading.Lock()

    def key(self, source: str, paths: Sequence[Path], variables: Mapping[str, Any]) -> str | None:
        """The key of ``source`` rendered with ``variables``; None when a value there
        is not JSON (then the field is rendered, not remembered)."""
        values = []
        for path in paths:
            value = _at(variables, path)
            values.append(0 if value is _MISSING else [value])
        try:
            return source + "\0" + dumps(values)
        except (TypeError, ValueError):
            return None

    def get(self, key: str) -> str | None:
        """The text remembered under ``key``."""
        return self._texts.get(key)

    def put(self, key: str, text: str) -> None:
        """Remember ``text`` under ``key`` (forgetting everything when full)."""
        with self._lock:
            if len(self._texts) >= self._max:
                self._texts.clear()
            self._texts[key] = text
