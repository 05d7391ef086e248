"""A shortcut for the templates most message fields are: text and ``{{ a.b }}`` outputs.

A template whose parsed nodes are only text and outputs of a plain path (``{{
user.first_name }}``), each with at most a ``default`` filter whose one argument is a
string literal (``{{ user.first_name | default: 'there' }}``), is rendered here
without Liquid's render machinery and without converting the whole profile and event
into template variables: each output reads its one value straight from the
:class:`~journeyc.messages.render.RenderContext`.

It gives the text Liquid gives, or nothing: a path through anything but mappings, a
value other than text, a number, a boolean or null, a path naming ``size``,
``first`` or ``last`` (which Liquid reads specially), a variable that is not one of
the template's globals — each makes :meth:`Shortcut.render` return None, and the
caller renders with Liquid as before. The rules it follows are Liquid's, for these
values only: text prints as is, null and undefined as nothing, booleans as
``true``/``false``, numbers with ``str``; ``default`` replaces null, undefined,
``false`` and empty text.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import liquid
from liquid import Undefined
from liquid.builtin.content import ContentNode
from liquid.builtin.expressions import FilteredExpression, Path, PositionalArgument
from liquid.builtin.expressions.primitive import StringLiteral
from liquid.builtin.filters.misc import default as builtin_default
from liquid.builtin.output import OutputNode

if TYPE_CHECKING:
    from journeyc.messages.render import RenderContext

__all__ = ["Shortcut", "shortcut"]

_SPECIAL = frozenset({"size", "first", "last"})
_MISSING = object()  # a path that does not resolve: Liquid's undefined
_NO_SHORTCUT = object()  # a value this module does not print: Liquid decides


class Shortcut:
    """A template of text and plain outputs, ready to render from a context."""

    __slots__ = ("parts",)

    def __init__(self, parts: list[str | tuple[tuple[str, ...], str | None]]) -> None:
        # Text, or (path, default text or None).
        self.parts = parts

    def render(self, context: RenderContext) -> str | None:
        """The rendered text, or None when Liquid must render it."""
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            path, default = part
            value = _resolve(path, context)
            if value is _NO_SHORTCUT:
                return None
            text = _text(value, default)
            if text is None:
                return None
            out.append(text)
        return "".join(out)


def shortcut(template: liquid.BoundTemplate) -> Shortcut | None:
    """The shortcut form of a parsed template, or None when it has another shape (or
    its environment prints differently: undefined values, escaping, ``default``)."""
    env = template.env
    if (
        env.undefined is not Undefined
        or env.autoescape
        or env.filters.get("default") is not builtin_default
    ):
        return None
    parts: list[str | tuple[tuple[str, ...], str | None]] = []
    for node in template.nodes:
        if isinstance(node, ContentNode) and node.__class__ is ContentNode:
            parts.append(node.text)
            continue
        if not (isinstance(node, OutputNode) and node.__class__ is OutputNode):
            return None
        output = _output(node.expression)
        if output is None:
            return None
        parts.append(output)
    return Shortcut(parts)


def _output(expr: Any) -> tuple[tuple[str, ...], str | None] | None:
    """``(path, default)`` of a plain output expression, None for any other."""
    filters: list[Any] = []
    if expr.__class__ is FilteredExpression:
        expr, filters = expr.left, expr.filters or []
    if expr.__class__ is not Path:
        return None
    path: list[Any] = expr.path
    if not path or any(s.__class__ is not str or s in _SPECIAL for s in path):
        return None
    if not filters:
        return tuple(path), None
    if len(filters) != 1 or filters[0].name != "default":
        return None
    args = filters[0].args
    if (
        len(args) != 1
        or args[0].__class__ is not PositionalArgument
        or args[0].value.__class__ is not StringLiteral
    ):
        return None
    return tuple(path), str(args[0].value.value)


def _resolve(path: tuple[str, ...], context: RenderContext) -> Any:
    """The value of ``path`` as the template variables would hold it, ``_MISSING`` when
    it is undefined, ``_NO_SHORTCUT`` when this module cannot tell."""
    head, rest = path[0], path[1:]
    value: Any
    if head == "user":
        if not rest:
            return _NO_SHORTCUT
        key = rest[0]
        value = context.user.get(key, _MISSING)
        if value is _MISSING and key == "id":
            value = context.user_id
        rest = rest[1:]
    elif head == "event":
        event = context.event
        if event is None:
            return _MISSING if rest else None
        if not rest:
            return _NO_SHORTCUT
        key = rest[0]
        value = event.props.get(key, _MISSING)
        if value is _MISSING and key == "name":
            value = event.name
        elif value is _MISSING and key == "at":
            return _NO_SHORTCUT  # the event's time, as Liquid prints it
        rest = rest[1:]
    elif head == "journey":
        if not rest:
            return _NO_SHORTCUT
        value = {"id": context.journey_id, "step": context.step}.get(rest[0], _MISSING)
        rest = rest[1:]
    elif head == "now":
        return _NO_SHORTCUT
    elif head in context.values:
        value = context.values[head]
    else:
        return _NO_SHORTCUT  # not a global of ours: Liquid's builtins may know it
    for key in rest:
        if value is _MISSING:
            return _MISSING
        if value.__class__ is not dict:
            return _NO_SHORTCUT
        value = value.get(key, _MISSING)
    return value


def _text(value: Any, default: str | None) -> str | None:
    """How Liquid prints ``value`` (after ``default``), or None when it is not a value
    this module prints."""
    cls = value.__class__
    if cls is str:
        return default if default is not None and not value else value
    if value is _MISSING or value is None:
        return default if default is not None else ""
    if cls is bool:
        if not value and default is not None:
            return default
        return "true" if value else "false"
    if cls is int or cls is float:
        return str(value)
    return None
