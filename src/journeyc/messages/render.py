"""Rendering a message's fields for one send.

The engine keeps one :class:`Renderer`. It renders the part of a declared message
(or an inline ``send`` string) for the channel chosen, against a
:class:`RenderContext`: the profile, the event in focus, the journey and step, the
engine's clock and the ``with`` values (LANGUAGE.md, "Inside a template").

Templates are compiled once, with :func:`~journeyc.messages.templates.make_environment`,
and kept in a bounded cache keyed by their source text. Rendering reads no wall clock:
the same message and context give the same fields.

Rendering is bounded by :class:`~journeyc.messages.templates.RenderLimits` (each field,
and all the fields of a send together), so that a send renders in milliseconds
whatever its template says: the engine renders inside its write transaction. A send
past a limit raises :class:`RenderError` naming the limit and its ``[render]`` key.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import liquid
from liquid.exceptions import LiquidError, TemplateNotFoundError

from journeyc.compile.ir import FieldIR, MessageIR
from journeyc.engine.values import EventView
from journeyc.lang.builtins import INLINE_FIELD
from journeyc.messages.context import RenderContext
from journeyc.messages.fastrender import Shortcut, shortcut
from journeyc.messages.memo import Memo, Path, dependencies
from journeyc.messages.recommend import Recommender
from journeyc.messages.templates import (
    DEFAULT_LIMITS,
    RenderLimits,
    limit_key,
    make_environment,
)
from journeyc.store.abc import RecommendationReads

__all__ = ["RenderContext", "RenderError", "Renderer", "iso_z"]

# Names the renderer itself gives templates; a `with` value of the same name is hidden.
RESERVED_NAMES: frozenset[str] = frozenset({"user", "event", "journey", "now"})


class RenderError(Exception):
    """A field that could not be rendered: a template that does not parse, an unknown
    filter, a bad filter argument, a filter that failed. ``message`` names the
    channel, the field and what Liquid said."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def iso_z(t: datetime) -> str:
    """``t`` as ISO-8601 in UTC with a ``Z`` suffix (a naive ``t`` is taken as UTC):
    ``2024-03-05T10:30:00Z``."""
    t = t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)
    return t.isoformat().removesuffix("+00:00") + "Z"


def _event_mapping(e: EventView) -> dict[str, Any]:
    props = {k: _liquid_value(v) for k, v in e.props.items()}
    props.setdefault("name", e.name)
    props.setdefault("at", iso_z(e.at))
    return props


def _liquid_value(v: Any) -> Any:
    """``v`` as templates see it: timestamps as ISO-8601 ``Z`` strings, events as
    mappings of their properties, at any depth."""
    if isinstance(v, str | int | float | bool) or v is None:
        return v
    if isinstance(v, datetime):
        return iso_z(v)
    if isinstance(v, Mapping):
        return {k: _liquid_value(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_liquid_value(x) for x in v]
    if isinstance(v, EventView):
        return _event_mapping(v)
    return v


def template_variables(context: RenderContext) -> dict[str, Any]:
    """The global variables of a template rendered in ``context``: the ``with``
    values, then ``user``, ``event``, ``journey`` and ``now`` (which a ``with`` value
    of the same name does not shadow)."""
    user = {k: _liquid_value(v) for k, v in context.user.items()}
    user.setdefault("id", context.user_id)
    variables = {k: _liquid_value(v) for k, v in context.values.items()}
    variables.update(
        user=user,
        event=None if context.event is None else _event_mapping(context.event),
        journey={"id": context.journey_id, "step": context.step},
        now=iso_z(context.now),
    )
    return variables


def pick_locale(f: FieldIR, locale: object) -> str | None:
    """The template of field ``f`` for a user whose ``locale`` attribute is ``locale``:
    the variant of that exact locale, else of its language (``th_TH`` and ``th-TH`` →
    ``th``), else the plain field; None when nothing fits (a field with only locale
    variants, none of them the user's). Locales compare case-insensitively, with
    ``-`` read as ``_``."""
    if isinstance(locale, str) and locale and f.locales:
        if locale in f.locales:
            return f.locales[locale]
        wanted = locale.strip().replace("-", "_").lower()
        language = wanted.split("_", 1)[0]
        by_key = {k.replace("-", "_").lower(): text for k, text in f.locales.items()}
        for key in (wanted, language):
            if key in by_key:
                return by_key[key]
    return f.default


class Renderer:
    """Renders message fields; one per engine.

    Each template source is compiled once and kept in a least-recently-used cache of
    ``max_templates`` entries (a template that does not parse is remembered too, with
    its error). Safe to share between threads.

    Undefined variables render as empty text (Liquid's default ``Undefined``):
    ``{{ user.nickname }}`` for a profile without one prints nothing, and
    ``{{ user.first_name | default: "there" }}`` prints ``there``. Unknown filters
    are errors (strict filters).

    The recommendation filters read the catalog through ``recommender``; without one
    they render no products.

    ``limits`` bound each render (see :class:`~journeyc.messages.templates.RenderLimits`).
    """

    def __init__(
        self,
        max_templates: int = 1024,
        *,
        recommender: Recommender | None = None,
        limits: RenderLimits = DEFAULT_LIMITS,
    ) -> None:
        if max_templates < 1:
            raise ValueError("max_templates must be at least 1")
        self.recommender = recommender
        self.limits = limits
        self.environment: liquid.Environment = make_environment(recommender, limits)
        self._max = max_templates
        self._cache: OrderedDict[str, liquid.BoundTemplate | str] = OrderedDict()
        # What each compiled template allows: its shortcut, the paths it reads.
        self._known: dict[str, _Known] = {}
        # Fields Liquid rendered, by what they read (see journeyc.messages.memo).
        self._memo = Memo()
        self._lock = threading.Lock()

    @classmethod
    def with_catalog(
        cls, reads: RecommendationReads, limits: RenderLimits = DEFAULT_LIMITS
    ) -> Renderer:
        """A renderer whose recommendation filters read the catalog and events of a
        store (``store.recommendations()``; see
        :class:`~journeyc.messages.recommend.Recommender`)."""
        return cls(recommender=Recommender(reads), limits=limits)

    def render(
        self,
        message: MessageIR | None,
        inline: str | None,
        channel: str,
        context: RenderContext,
    ) -> dict[str, str]:
        """The rendered fields of ``message``'s part for ``channel``, in the part's
        declared order — or, for an inline string, ``{INLINE_FIELD[channel]: text}``.

        The profile's ``locale`` picks each field's variant (see :func:`pick_locale`);
        a field with no variant for the user and no plain form is left out.

        Raises :class:`RenderError` when a field does not parse or fails to render,
        a field or the whole send goes past a render limit, or the message has no part
        for ``channel``; ``ValueError`` unless exactly one of ``message`` and
        ``inline`` is given.
        """
        if (message is None) == (inline is None):
            raise ValueError("render takes exactly one of a message and an inline string")
        if message is None:
            assert inline is not None  # for mypy: checked just above
            name = INLINE_FIELD.get(channel)
            if name is None:
                raise RenderError(f"inline message: unknown channel `{channel}`")
            sources = {name: inline}
            where = "inline message"
        else:
            part = message.parts.get(channel)
            if part is None:
                raise RenderError(f"message `{message.name}` has no {channel} part")
            locale = context.user.get("locale")
            sources = {}
            for fname, f in part.items():
                text = pick_locale(f, locale)
                if text is not None:
                    sources[fname] = text
            where = f"message `{message.name}`"
        rendered: dict[str, str] = {}
        variables: dict[str, Any] | None = None  # built only when Liquid renders a field
        chars = 0
        for fname, source in sources.items():
            text = self._shortcut(source, context)
            if text is None:
                if variables is None:
                    variables = template_variables(context)
                text = self._render_one(source, variables, f"{where}, {channel} {fname}")
            rendered[fname] = text
            chars += len(text)
        # No need to encode to tell most sends: a character is at most 4 bytes.
        if chars * 4 > self.limits.send_bytes:
            self._check_send_size(rendered, f"{where}, {channel}")
        return rendered

    def _check_send_size(self, rendered: Mapping[str, str], where: str) -> None:
        """Raise :class:`RenderError` when the fields of one send are together past
        ``send_bytes`` (UTF-8)."""
        limit = self.limits.send_bytes
        size = sum(len(text.encode()) for text in rendered.values())
        if size > limit:
            raise RenderError(
                f"{where}: the rendered fields are {size:,} bytes together, over the "
                f"per-send limit (render.send_bytes = {limit})"
            )

    def prepare(self, sources: Iterable[str]) -> None:
        """Compile ``sources`` now (a deployment's templates), so that the first
        sends after a deploy do not pay for parsing them."""
        for source in sources:
            self._template(source)

    def _what(self, source: str) -> _Known | str:
        """What the compiled template of ``source`` allows, or why it does not parse."""
        template = self._template(source)  # also keeps the cache's recency order
        if isinstance(template, str):
            return template
        known = self._known.get(source)
        if known is None or known.template is not template:
            known = _Known(template, shortcut(template), dependencies(template))
            with self._lock:
                if len(self._known) >= self._max:
                    self._known.clear()
                self._known[source] = known
        return known

    def _shortcut(self, source: str, context: RenderContext) -> str | None:
        """The field rendered by :mod:`~journeyc.messages.fastrender`; None when
        Liquid renders it."""
        known = self._what(source)
        if isinstance(known, str) or known.shortcut is None:
            return None
        return known.shortcut.render(context)

    def _render_one(self, source: str, variables: Mapping[str, Any], where: str) -> str:
        known = self._what(source)
        if isinstance(known, str):
            raise RenderError(f"{where}: {known}")
        paths = known.paths
        key = None if paths is None else self._memo.key(source, paths, variables)
        if key is not None:
            text = self._memo.get(key)
            if text is not None:
                return text
        try:
            text = known.template.render(**variables)
        # Liquid lets a filter's own exceptions through (a KeyError from a catalog
        # lookup, say); the engine must only ever see RenderError.
        except Exception as exc:
            raise RenderError(f"{where}: {self._describe_limit(exc)}") from exc
        if key is not None:
            self._memo.put(key, text)
        return text

    def _describe_limit(self, exc: Exception) -> str:
        """What went wrong, naming the ``[render]`` limit when one was reached."""
        text = _describe(exc)
        key = limit_key(exc)
        if key is None:
            return text
        return f"{text} (render.{key} = {getattr(self.limits, key)})"

    def _template(self, source: str) -> liquid.BoundTemplate | str:
        """The compiled template of ``source``, or the reason it does not parse."""
        with self._lock:
            hit = self._cache.get(source)
            if hit is not None:
                self._cache.move_to_end(source)
                return hit
        # Parse outside the lock: two threads may parse the same new source once each,
        # which is cheaper than serialising every parse.
        compiled: liquid.BoundTemplate | str
        try:
            compiled = self.environment.from_string(source)
        # Not only LiquidError: deep nesting raises RecursionError.
        except Exception as exc:
            compiled = _describe(exc)
        with self._lock:
            self._cache[source] = compiled
            self._cache.move_to_end(source)
            while len(self._cache) > self._max:
                self._cache.popitem(last=False)
        return compiled


@dataclass(frozen=True, slots=True)
class _Known:
    """A compiled template, its shortcut (None: Liquid renders it) and the variable
    paths its output depends on (None: not only on them, so it is not remembered)."""

    template: liquid.BoundTemplate
    shortcut: Shortcut | None
    paths: tuple[Path, ...] | None


def _describe(exc: Exception) -> str:
    if isinstance(exc, TemplateNotFoundError):
        # The environment has no loader: a template never reads another file.
        return f"template not found: `{exc.message}` (include and render load no templates)"
    if isinstance(exc, LiquidError):
        if exc.message:
            return str(exc.message)
        return str(exc).split("\n", 1)[0] or type(exc).__name__
    if isinstance(exc, RecursionError):
        return "the template nests too deeply"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
