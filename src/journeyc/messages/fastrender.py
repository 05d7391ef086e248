"""A shortcut for the templates most message fields are: text, ``{{ a.b }}`` outputs
and ``{% if a.b %}`` around them.

A template whose parsed nodes are only text, outputs of a plain path (``{{
user.first_name }}``), each with at most a ``default`` filter whose one argument is a
string literal (``{{ user.first_name | default: 'there' }}``), and ``if`` blocks
(``elsif`` and ``else`` too) whose conditions are plain paths and whose bodies are of
the same shape (``Hi{% if user.first_name %} {{ user.first_name }}{% endif %}``), is
rendered here without Liquid's render machinery and without converting the whole
profile and event into template variables: each output and condition reads its one
value straight from the :class:`~journeyc.messages.context.RenderContext`.

It gives the text Liquid gives, or nothing: a text past the environment's output
stream limit (Liquid raises its limit error for it), a path through anything but
mappings, a value other than text, a number, a boolean or null, a path naming ``size``,
``first`` or ``last`` (which Liquid reads specially), a variable that is not one of
the template's globals — each makes :meth:`Shortcut.render` return None, and the
caller renders with Liquid as before. The rules it follows are Liquid's, for these
values only: text prints as is, null and undefined as nothing, booleans as
``true``/``false``, numbers with ``str``; ``default`` replaces null, undefined,
``false`` and empty text; a condition holds unless its value is null, undefined or
``false`` (empty text and 0 hold). Comments (``{% comment %}``, ``{% # %}``, ``{% doc
%}``) print nothing and do nothing.

A block whose bodies are all "blank" prints nothing, as Liquid's environment
suppresses blank blocks — but Liquid still runs the chosen body, to a discarded
output, and ``assign``, ``capture``, loops and any tag that prints nothing count as
blank: ``{% if user.vip %}{% assign coupon = 'VIP20' %}{% endif %}`` changes
``coupon`` and ``{% if a %}{% assign x = y | nosuch %}{% endif %}`` fails. So a blank
body is held to the same shapes as any other (text, outputs, comments, ``if`` blocks,
none of which can change a variable or fail), and then left out; a template that
says otherwise takes no shortcut.
"""

from __future__ import annotations

from typing import Any

import liquid
from liquid import Undefined
from liquid.builtin.content import ContentNode
from liquid.builtin.expressions import (
    BooleanExpression,
    FilteredExpression,
    Path,
    PositionalArgument,
)
from liquid.builtin.expressions.primitive import StringLiteral
from liquid.builtin.filters.misc import default as builtin_default
from liquid.builtin.output import OutputNode
from liquid.builtin.tags.comment_tag import CommentNode
from liquid.builtin.tags.doc_tag import DocNode
from liquid.builtin.tags.if_tag import IfNode
from liquid.builtin.tags.inline_comment_tag import InlineCommentNode

from journeyc.messages.context import RenderContext

__all__ = ["Shortcut", "shortcut"]

_SPECIAL = frozenset({"size", "first", "last"})
# Nodes that render nothing and read nothing (exactly these classes: a subclass may
# render something).
_QUIET = frozenset({CommentNode, InlineCommentNode, DocNode})
_MISSING = object()  # a path that does not resolve: Liquid's undefined
_NO_SHORTCUT = object()  # a value this module does not print: Liquid decides


_Output = tuple[tuple[str, ...], str | None]  # (path, default text or None)


class _If:
    """An ``if`` block: the first branch whose path holds, else ``orelse``."""

    __slots__ = ("branches", "orelse")

    def __init__(self, branches: list[tuple[tuple[str, ...], _Parts]], orelse: _Parts) -> None:
        self.branches = branches
        self.orelse = orelse


_Parts = list["str | _Output | _If"]


class Shortcut:
    """A template of text, plain outputs and ``if`` blocks, ready to render from a
    context.

    ``limit`` is the environment's output stream limit (UTF-8 bytes, None for none):
    a text past it is left to Liquid, which raises its limit error.
    """

    __slots__ = ("limit", "parts")

    def __init__(self, parts: _Parts, limit: int | None = None) -> None:
        self.parts = parts
        self.limit = limit

    def render(self, context: RenderContext) -> str | None:
        """The rendered text, or None when Liquid must render it."""
        out: list[str] = []
        if not _render(self.parts, context, out):
            return None
        text = "".join(out)
        limit = self.limit
        # Liquid counts the UTF-8 bytes written (blank blocks write to a null stream,
        # so they count as the shortcut leaves them out: not at all). A character is
        # at most 4 bytes, so short texts need no encoding to tell.
        if limit is not None and len(text) * 4 > limit and len(text.encode()) > limit:
            return None
        return text


def _render(parts: _Parts, context: RenderContext, out: list[str]) -> bool:
    """Append the text of ``parts`` to ``out``; False when Liquid must render it."""
    for part in parts:
        if isinstance(part, str):
            out.append(part)
        elif isinstance(part, _If):
            chosen = _chosen(part, context)
            if chosen is None or not _render(chosen, context, out):
                return False
        else:
            path, default = part
            value = _resolve(path, context)
            if value is _NO_SHORTCUT:
                return False
            text = _text(value, default)
            if text is None:
                return False
            out.append(text)
    return True


def _chosen(block: _If, context: RenderContext) -> _Parts | None:
    """The parts of the branch of ``block`` that runs; None when Liquid must tell."""
    for path, parts in block.branches:
        value = _resolve(path, context)
        if value is _NO_SHORTCUT:
            return None
        if not (value is _MISSING or value is None or value is False):
            return parts
    return block.orelse


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
    if not env.suppress_blank_control_flow_blocks:
        return None
    parts = _parts(template.nodes)
    return None if parts is None else Shortcut(parts, env.output_stream_limit)


def _parts(nodes: list[Any]) -> _Parts | None:
    """The shortcut parts of parsed ``nodes``, None when one has another shape."""
    parts: _Parts = []
    for node in nodes:
        cls = node.__class__
        if cls is ContentNode:
            parts.append(node.text)
        elif cls is OutputNode:
            output = _output(node.expression)
            if output is None:
                return None
            parts.append(output)
        elif cls is IfNode:
            block = _if(node)
            if block is None:
                return None
            parts.append(block)
        elif cls not in _QUIET:
            return None
    return parts


def _if(node: IfNode) -> _If | None:
    """The shortcut form of an ``if`` block, None when a condition is not a plain path
    or a body has another shape."""
    branches = [(node.condition, node.consequence)]
    branches += [(alt.expression, alt.block) for alt in node.alternatives]
    found: list[tuple[tuple[str, ...], _Parts]] = []
    for condition, body in branches:
        if condition.__class__ is not BooleanExpression:
            return None
        path = _plain(condition.expression)
        parts = _body(body)
        if path is None or parts is None:
            return None
        found.append((path, parts))
    orelse = _body(node.default) if node.default is not None else []
    return None if orelse is None else _If(found, orelse)


def _body(block: Any) -> _Parts | None:
    """The parts of an ``if`` body: none for a blank one, which Liquid renders to a
    discarded output; None when a node has another shape.

    A blank body is checked all the same: Liquid runs it, so an ``assign`` or
    ``capture`` in it holds and a failing filter fails. What :func:`_parts` takes has
    no effect but its text (a blank body holds no outputs: Liquid never calls an
    output blank), so leaving that text out is all Liquid does with it.
    """
    parts = _parts(block.nodes)
    return [] if parts is not None and block.blank else parts


def _plain(expr: Any) -> tuple[str, ...] | None:
    """The path of a plain path expression (names only, none Liquid reads
    specially), None for any other expression."""
    if expr.__class__ is not Path:
        return None
    path: list[Any] = expr.path
    if not path or any(s.__class__ is not str or s in _SPECIAL for s in path):
        return None
    return tuple(path)


def _output(expr: Any) -> _Output | None:
    """``(path, default)`` of a plain output expression, None for any other."""
    filters: list[Any] = []
    if expr.__class__ is FilteredExpression:
        expr, filters = expr.left, expr.filters or []
    path = _plain(expr)
    if path is None:
        return None
    if not filters:
        return path, None
    if len(filters) != 1 or filters[0].name != "default":
        return None
    args = filters[0].args
    if (
        len(args) != 1
        or args[0].__class__ is not PositionalArgument
        or args[0].value.__class__ is not StringLiteral
    ):
        return None
    return path, str(args[0].value.value)


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
