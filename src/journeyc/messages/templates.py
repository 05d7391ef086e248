"""The Liquid environment of message fields, and checking templates against it.

Every message field, inline ``send`` string and ``file`` template is a python-liquid 2
template. The checker parses each one with :func:`make_environment` — the same
environment the engine renders with — so a template that validates also parses at
send time.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import liquid
from liquid import RenderContext
from liquid.builtin.filters.misc import date as _builtin_date
from liquid.exceptions import LiquidError
from liquid.filter import with_context

from journeyc.messages import liquid_compat
from journeyc.messages.recommend import Recommender, install_filters

liquid_compat.install()


def make_environment(recommender: Recommender | None = None) -> liquid.Environment:
    """The one Liquid environment of the project.

    Strict filters: a filter that does not exist fails at render time rather than
    printing nothing. ``date`` reads ``"now"`` and ``"today"`` from the template's
    ``now`` (the engine's clock), never the wall clock, so simulations repeat exactly.
    The recommendation filters (``top_sellers``, ``popular``, ``cross_sell``) are
    always registered; they read the catalog through ``recommender``, and without one
    they check their arguments and return no products.
    """
    env = liquid.Environment(strict_filters=True, autoescape=False)
    env.filters["date"] = _clock_date
    install_filters(env, recommender)
    return env


@with_context
def _clock_date(value: Any, fmt: Any, *, context: RenderContext) -> str:
    if value in ("now", "today"):
        now = context.resolve("now", default=None)
        value = now if now is not None else value
    result: str = _builtin_date(value, fmt, environment=context.env)
    return result


@cache
def _environment() -> liquid.Environment:
    return make_environment()


@dataclass(frozen=True, slots=True)
class TemplateError:
    """A Liquid syntax error: ``offset`` into the template source (None when Liquid
    could not say where), ``length`` of the offending token, and the message."""

    offset: int | None
    length: int
    message: str


def template_errors(source: str) -> list[TemplateError]:
    """The syntax errors of a Liquid template (Liquid stops at the first one)."""
    try:
        _environment().parse(source)
    except LiquidError as exc:
        return [_describe(exc, source)]
    except RecursionError:
        return [TemplateError(None, 1, "the template nests too deeply")]
    return []


def template_globals(source: str) -> dict[str, list[int]]:
    """The variables a template reads from outside itself (``user``, ``event``,
    ``with`` values), each with the offsets where it is used; empty when the template
    does not parse."""
    try:
        analysis = _environment().parse(source).analyze()
    except (LiquidError, RecursionError):
        return {}
    return {name: [v.span.index for v in uses] for name, uses in analysis.globals.items()}


def _describe(exc: LiquidError, source: str) -> TemplateError:
    message = str(exc.message) if exc.message is not None else "bad template"
    token = exc.token
    if token is None or token.start_index < 0 or token.start_index > len(source):
        return TemplateError(None, 1, message)
    return TemplateError(token.start_index, max(1, len(token.value)), message)
