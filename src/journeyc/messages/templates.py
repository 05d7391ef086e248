"""The Liquid environment of message fields, and checking templates against it.

Every message field, inline ``send`` string and ``file`` template is a python-liquid 2
template. The checker parses each one with :func:`make_environment` — the same
environment the engine renders with — so a template that validates also parses at
send time.

Rendering is bounded (:class:`RenderLimits`): the engine renders inside its write
transaction, so one field must never take more than milliseconds, whatever its author
wrote. Liquid's own resource limits bound loops, output, assigned values and context
depth; the filters are guarded too (:func:`_guard`), because a filter builds its whole
result before Liquid's output limit can see it (``{{ (1..100000000) | join }}``,
``{{ s | replace: "", s }}``).
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache, lru_cache
from io import StringIO
from typing import Any, TextIO

import liquid
from liquid import BoundTemplate, RenderContext
from liquid.builtin.expressions import (
    BooleanExpression,
    FilteredExpression,
    KeywordArgument,
    Path,
    TernaryFilteredExpression,
)
from liquid.builtin.expressions.filtered import Filter
from liquid.builtin.expressions.primitive import IntegerLiteral, RangeLiteral
from liquid.builtin.filters.misc import date as _builtin_date
from liquid.builtin.tags.for_tag import ForNode
from liquid.exceptions import (
    ContextDepthError,
    LiquidError,
    LocalNamespaceLimitError,
    LoopIterationLimitError,
    OutputStreamLimitError,
    ResourceLimitError,
)
from liquid.expression import Expression
from liquid.filter import with_context
from liquid.output import LimitedStringIO
from liquid.token import Token

from journeyc.messages import liquid_compat
from journeyc.messages.recommend import Recommender, install_filters

liquid_compat.install()


@dataclass(frozen=True, slots=True)
class RenderLimits:
    """What one render may use; ``journeyc.toml``'s ``[render]`` section
    (docs/config.md). The defaults are far above what a real message needs (a long
    HTML e-mail is ~100 KB, a loop over a cart or a few recommended products takes
    tens of iterations) and keep the worst a template can do to milliseconds.

    - ``loop_iterations``: iterations of all the loops of one field together (a loop
      inside another counts each of its runs), and items that filters walk (``join``,
      ``map``, ``sort`` over a list or a range).
    - ``field_bytes``: the UTF-8 size of one rendered field (Liquid's output stream
      limit; captures count too).
    - ``send_bytes``: the UTF-8 size of all the rendered fields of one send.
    - ``local_bytes``: the size of the values a field assigns (``assign``,
      ``capture``), as ``sys.getsizeof`` counts it (Liquid's local namespace limit;
      this is what stops a string doubled by ``append`` over and over).
    - ``filter_chars``: characters of text the filters of one field take and give,
      all together.
    - ``context_depth``: how deep loops nest their scopes (Liquid's context depth).
    """

    loop_iterations: int = 10_000
    field_bytes: int = 512 * 1024
    send_bytes: int = 1024 * 1024
    local_bytes: int = 1024 * 1024
    filter_chars: int = 8 * 1024 * 1024
    context_depth: int = 30

    def __post_init__(self) -> None:
        for name in self.__slots__:
            if getattr(self, name) < 1:
                raise ValueError(f"render limit {name} must be at least 1")


DEFAULT_LIMITS = RenderLimits()


class RenderLimitError(ResourceLimitError):
    """A render that reached one of the :class:`RenderLimits` in a filter.

    ``key`` is the limit's name in :class:`RenderLimits` (and in ``[render]``)."""

    def __init__(self, message: str, key: str) -> None:
        super().__init__(message, token=None)
        self.key = key


LIMIT_KEYS: dict[type[ResourceLimitError], str] = {
    LoopIterationLimitError: "loop_iterations",
    OutputStreamLimitError: "field_bytes",
    LocalNamespaceLimitError: "local_bytes",
    ContextDepthError: "context_depth",
}
"""The :class:`RenderLimits` field behind each of Liquid's resource limit errors."""


def limit_key(exc: BaseException) -> str | None:
    """The :class:`RenderLimits` field a render error reached, or None when it is not
    a limit."""
    if isinstance(exc, RenderLimitError):
        return exc.key
    return next((k for cls, k in LIMIT_KEYS.items() if isinstance(exc, cls)), None)


class _LimitedContext(RenderContext):
    """A render context that counts, over the whole render, the loop iterations
    (Liquid's own limit is on the product of the loops open at once, so a template of
    many loops in a row would go unbounded) and the work of the filters, which it
    hands out guarded (:meth:`filter`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.iterations = 0
        self.filter_chars = 0
        self._locals_size = 0  # sys.getsizeof of the locals, kept as they change
        self.limits: RenderLimits = getattr(self.env, "render_limits", DEFAULT_LIMITS)

    def assign(self, key: str, val: Any) -> None:
        """Set the local ``key`` (``assign``, ``capture``) within the local namespace
        limit. Liquid's own check sums the size of every local at each assignment,
        so a template of many locals assigning in a loop took seconds; this keeps the
        same sum as it changes."""
        limit = self.env.local_namespace_limit
        if not limit:
            self.locals[key] = val
            return
        old = self.locals.get(key, _ABSENT)
        self.locals[key] = val
        self._locals_size += sys.getsizeof(val, 1)
        if old is not _ABSENT:
            self._locals_size -= sys.getsizeof(old, 1)
        if self.get_size_of_locals() > limit:
            raise LocalNamespaceLimitError("local namespace limit reached", token=None)

    def get_size_of_locals(self) -> int:
        """The size of the locals as Liquid's limit counts it (``sys.getsizeof`` of
        each value, plus what a parent context carries)."""
        if not self.env.local_namespace_limit:
            return 0
        return self._locals_size + self.local_namespace_size_carry

    @contextmanager
    def loop(self, namespace: Mapping[str, object], forloop: Any) -> Iterator[RenderContext]:
        """Count the iterations of a loop (``for``, ``tablerow``) as it starts, then
        let Liquid check its own limit (``tablerow`` checks that one twice)."""
        self.count_iterations(forloop.length)
        with super().loop(namespace, forloop) as context:
            yield context

    def count_iterations(self, n: int) -> None:
        """Count ``n`` iterations (of a loop, or items a filter walks)."""
        self.iterations += n
        limit = self.env.loop_iteration_limit
        if limit is not None and self.iterations > limit:
            raise LoopIterationLimitError("loop iteration limit reached", token=None)

    def charge_text(self, n: int) -> None:
        """Count ``n`` characters of text a filter took or gave."""
        self.filter_chars += n
        if self.filter_chars > self.limits.filter_chars:
            raise RenderLimitError("filter work limit reached", "filter_chars")

    def charge(self, value: object) -> None:
        """Count what a filter is given: text, or a list's items and their text."""
        if isinstance(value, str):
            self.charge_text(len(value))
        elif isinstance(value, list | tuple):
            self.count_iterations(len(value))
            self.charge_text(sum(len(x) for x in value if isinstance(x, str)))
        elif isinstance(value, range):
            self.count_iterations(len(value))

    def filter(self, name: str, token: Token | None) -> Callable[..., object]:
        """The filter ``name``, counting its work against the render limits."""
        func = super().filter(name, token)
        # Made afresh for each call, as Liquid makes its partials: kept on the context,
        # the guard (which holds the context) would make a reference cycle per render.
        return func if name in _UNGUARDED else _guard(self, name, func)

    def get_buffer(self, buf: TextIO | None = None) -> StringIO:
        """A buffer (for ``capture`` and the like) within what is left of the output
        stream limit."""
        limit = self.env.output_stream_limit
        if limit is None:
            return StringIO()
        carry = buf.size if isinstance(buf, _CountingIO | LimitedStringIO) else 0
        return _counting_io(limit - carry)


class _CountingIO(StringIO):
    r"""Liquid's output stream limit, counting the UTF-8 bytes written as Liquid does.

    Unlike Liquid's ``LimitedStringIO`` it keeps text as written (that one opens its
    ``StringIO`` with ``newline=None``, which turns ``\r\n`` and ``\r`` into
    ``\n``), does not encode ASCII text to count it (``str.isascii`` is a flag
    lookup), and is made without a Python ``__init__``: see :func:`_counting_io`.
    """

    limit = 0
    size = 0

    def write(self, s: str, /) -> int:
        """Write ``s``; raise OutputStreamLimitError past the limit."""
        if s:
            self.size += len(s) if s.isascii() else len(s.encode("utf-8"))
            if self.size > self.limit:
                raise OutputStreamLimitError("output stream limit reached", token=None)
        return StringIO.write(self, s)


def _counting_io(limit: int) -> _CountingIO:
    buffer = _CountingIO()
    buffer.limit = limit
    return buffer


class _LimitedTemplate(BoundTemplate):
    context_class = _LimitedContext

    def _get_buffer(self) -> StringIO:
        limit = self.env.output_stream_limit
        return StringIO() if limit is None else _counting_io(limit)


def make_environment(
    recommender: Recommender | None = None, limits: RenderLimits = DEFAULT_LIMITS
) -> liquid.Environment:
    """The one Liquid environment of the project.

    Strict filters: a filter that does not exist fails at render time rather than
    printing nothing. ``date`` reads ``"now"`` and ``"today"`` from the template's
    ``now`` (the engine's clock), never the wall clock, so simulations repeat exactly.
    The recommendation filters (``top_sellers``, ``popular``, ``cross_sell``) are
    always registered; they read the catalog through ``recommender``, and without one
    they check their arguments and return no products.

    Rendering stays within ``limits``: a render past one raises a
    :class:`~liquid.exceptions.ResourceLimitError` (see :func:`limit_key`). Every
    filter, those registered later included, is guarded when a template calls it.
    There is no template loader: ``{% include %}`` and ``{% render %}`` find no
    template, so a template reads no file (``file`` fields are read, inside the
    project, when the project is compiled).
    """

    class Environment(liquid.Environment):
        # Liquid reads its limits from the class.
        loop_iteration_limit = limits.loop_iterations
        output_stream_limit = limits.field_bytes
        local_namespace_limit = limits.local_bytes
        context_depth_limit = limits.context_depth
        template_class = _LimitedTemplate
        render_limits = limits  # the rest, for _LimitedContext

    env = Environment(strict_filters=True, autoescape=False)
    env.filters["date"] = _clock_date
    install_filters(env, recommender)
    return env


_ABSENT = object()

# Filters that do no work worth counting.
_UNGUARDED = frozenset({"default", "size", "first", "last"})

# Above this many bits, `times` refuses to multiply two whole numbers: no price or
# count comes near, and squaring by `assign` in a loop would otherwise build numbers
# of millions of digits (each multiplication slower than the last).
MAX_PRODUCT_BITS = 4096


def _guard(context: _LimitedContext, name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` (the filter ``name``, as ``context`` hands it out), counting its work
    in ``context``.

    Every text a filter takes or gives counts towards ``filter_chars``, and every
    list or range it takes counts its items as loop iterations (and their text
    towards ``filter_chars``). ``join`` and ``replace``, whose result can be far
    larger than what they take, and ``times``, are checked before they run.
    """
    precheck = _PRECHECKS.get(name)

    def guarded(left: object, *args: object, **kwargs: object) -> Any:
        charge = context.charge
        charge(left)
        for arg in args:
            charge(arg)
        for arg in kwargs.values():
            charge(arg)
        if precheck is not None:
            precheck(context.limits, left, *args)
        result = func(left, *args, **kwargs)
        if isinstance(result, str):
            context.charge_text(len(result))
        return result

    return guarded


def _too_long(limits: RenderLimits, size: int, name: str) -> None:
    # A result over the field's limit could never be printed; refuse it before it is
    # built. Characters are at least one byte each in UTF-8.
    if size > limits.field_bytes:
        raise OutputStreamLimitError(
            f"output stream limit reached: {name} would make {size} characters", token=None
        )


def _check_replace(limits: RenderLimits, left: object, *args: object) -> None:
    if not isinstance(left, str) or not args:
        return
    seq = str(args[0])
    sub = str(args[1]) if len(args) > 1 else ""
    count = left.count(seq) if seq else len(left) + 1
    _too_long(limits, len(left) + count * (len(sub) - len(seq)), "replace")


def _check_join(limits: RenderLimits, left: object, *args: object) -> None:
    if not isinstance(left, Sequence) or isinstance(left, str):
        return
    separator = str(args[0]) if args else " "
    size = sum(len(x) if isinstance(x, str) else len(str(x)) for x in left)
    _too_long(limits, size + len(separator) * max(0, len(left) - 1), "join")


def _check_times(limits: RenderLimits, left: object, *args: object) -> None:
    right = args[0] if args else None
    if (
        isinstance(left, int)
        and isinstance(right, int)
        and left.bit_length() + right.bit_length() > MAX_PRODUCT_BITS
    ):
        raise RenderLimitError(
            f"filter work limit reached: times would make a number of over {MAX_PRODUCT_BITS} bits",
            "filter_chars",
        )


_PRECHECKS: dict[str, Callable[..., None]] = {
    "replace": _check_replace,
    "join": _check_join,
    "times": _check_times,
}


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


@lru_cache(maxsize=512)
def _parsed(source: str) -> BoundTemplate | TemplateError:
    """``source`` parsed in the project's environment, or its syntax error. The
    checks below all start here, so a template is parsed once however many look."""
    try:
        return _environment().parse(source)
    except LiquidError as exc:
        return _describe(exc, source)
    except RecursionError:
        return TemplateError(None, 1, "the template nests too deeply")


def template_errors(source: str) -> list[TemplateError]:
    """The syntax errors of a Liquid template (Liquid stops at the first one)."""
    parsed = _parsed(source)
    return [parsed] if isinstance(parsed, TemplateError) else []


def big_loops(source: str, limit: int = DEFAULT_LIMITS.loop_iterations) -> list[TemplateError]:
    """The ``for`` loops over literal ranges (``(1..100000)``) that would go past
    ``limit`` iterations, each where its tag starts: nested literal loops multiply.
    Empty when the template does not parse."""
    template = _parsed(source)
    if isinstance(template, TemplateError):
        return []
    found: list[TemplateError] = []
    static = RenderContext(template)

    def walk(nodes: Sequence[Any], runs: int) -> None:
        for node in nodes:
            times = runs
            if isinstance(node, ForNode):
                count = _literal_count(node)
                if count is not None:
                    times = runs * max(count, 1)
                    if times > limit >= runs:
                        token = node.token
                        found.append(
                            TemplateError(
                                token.start_index,
                                max(1, len(token.value)),
                                f"this loop runs {times:,} times, over the limit of "
                                f"{limit:,} iterations a message may make",
                            )
                        )
            walk(list(node.children(static, include_partials=False)), times)

    walk(template.nodes, 1)
    return found


def _literal_count(node: ForNode) -> int | None:
    """How many times a loop over a literal range runs (its ``limit`` applied when
    that is literal too); None when the range is not literal."""
    loop = node.expression
    iterable = loop.iterable
    if not isinstance(iterable, RangeLiteral):
        return None
    start, stop = iterable.start, iterable.stop
    if not (isinstance(start, IntegerLiteral) and isinstance(stop, IntegerLiteral)):
        return None
    count = max(0, stop.value - start.value + 1)
    if isinstance(loop.limit, IntegerLiteral):
        count = min(count, max(0, loop.limit.value))
    return count


def template_globals(source: str) -> dict[str, list[int]]:
    """The variables a template reads from outside itself (``user``, ``event``,
    ``with`` values), each with the offsets where it is used; empty when the template
    does not parse."""
    template = _parsed(source)
    if isinstance(template, TemplateError):
        return {}
    try:
        analysis = template.analyze()
    except (LiquidError, RecursionError):
        return {}
    return {name: [v.span.index for v in uses] for name, uses in analysis.globals.items()}


CONTEXT_NAMES: frozenset[str] = frozenset({"user", "event", "journey", "now"})
"""The names the renderer gives every template (``journeyc.messages.render``'s
``RESERVED_NAMES``); any other name a template reads from outside is a ``with``
value of the send."""


def with_values(source: str) -> dict[str, int]:
    """The ``with`` values a template needs, each with the offset of its first use:
    the names it reads from outside itself other than :data:`CONTEXT_NAMES`, except
    those it is ready to go without, because it tests them (``{% if coupon %}``,
    ``{% unless %}``, ``{% elsif %}``, ``{{ a if coupon }}``) or gives them a default
    (``{{ coupon | default: "WELCOME" }}``). Empty when the template does not parse."""
    found = template_globals(source)
    if not found:
        return {}
    template = _parsed(source)
    assert not isinstance(template, TemplateError)  # template_globals parsed it
    optional: set[str] = set()
    for expr in _expressions(template):
        if isinstance(expr, BooleanExpression):
            optional.update(_roots(expr))
        elif (
            isinstance(expr, FilteredExpression)
            and isinstance(expr.left, Path)
            and expr.filters
            and expr.filters[0].name == "default"
        ):
            optional.update(_roots(expr.left))
    return {
        name: min(offsets)
        for name, offsets in found.items()
        if name not in CONTEXT_NAMES and name not in optional and offsets
    }


@dataclass(frozen=True, slots=True)
class FilterProblem:
    """A filter a template calls that would fail every render: ``kind`` is
    ``"unknown"`` (no filter of that name) or ``"arguments"`` (arguments its
    signature cannot take). ``offset`` and ``length`` locate the filter's name in the
    template; ``suggestions`` are filter names close to an unknown one."""

    kind: str
    offset: int
    length: int
    name: str
    message: str
    label: str
    suggestions: tuple[str, ...] = ()


def filter_problems(source: str) -> list[FilterProblem]:
    """Unknown filters and filters given arguments they cannot take, in the order
    they are written; empty when the template does not parse.

    The filters are those registered in the project's environment
    (:func:`make_environment`: Liquid's own and journeyc's). Arguments are checked
    against the filter's Python signature (:func:`filter_signature`): how many
    positional arguments follow the input, and which keywords it takes. A filter
    whose signature cannot be read, or that takes any number of arguments, is not
    checked for them."""
    from journeyc.lang.diagnostics import closest, suggest

    template = _parsed(source)
    if isinstance(template, TemplateError):
        return []
    filters = _environment().filters
    found: list[FilterProblem] = []
    seen: set[int] = set()
    for expr in _expressions(template):
        for f in _filters_of(expr):
            offset = f.token.start_index
            if offset in seen or offset < 0:
                continue
            seen.add(offset)
            length = max(1, len(f.name))
            func = filters.get(f.name)
            if func is None:
                near = closest(f.name, filters, 1 if len(f.name) <= 5 else 2)
                found.append(
                    FilterProblem(
                        "unknown",
                        offset,
                        length,
                        f.name,
                        f"there is no filter `{f.name}`",
                        suggest(near) or "unknown filter",
                        tuple(near),
                    )
                )
                continue
            sig = filter_signature(f.name)
            if sig is None:
                continue
            problem = sig.problem(
                sum(1 for a in f.args if not isinstance(a, KeywordArgument)),
                [a.name for a in f.args if isinstance(a, KeywordArgument)],
            )
            if problem is not None:
                found.append(
                    FilterProblem("arguments", offset, length, f.name, problem, sig.usage())
                )
    return sorted(found, key=lambda p: p.offset)


@dataclass(frozen=True, slots=True)
class FilterSignature:
    """What a filter takes after its input, read from its Python signature:
    ``positional`` names the parameters that may be passed by position (the first
    ``required`` of them must be given, by position or by name), ``keywords`` those
    that may only be passed by name; ``more`` is true when it takes any number of
    positional arguments, ``any_keyword`` when it takes any keyword."""

    name: str
    positional: tuple[str, ...]
    required: int
    keywords: tuple[str, ...]
    more: bool
    any_keyword: bool

    def problem(self, given: int, names: Sequence[str]) -> str | None:
        """Why ``given`` positional arguments and keyword arguments ``names`` do not
        fit, or None when they do."""
        if given > len(self.positional) and not self.more:
            return f"`{self.name}` takes {self._count()}, not {given}"
        for n in names:
            known = n in self.positional[given:] or n in self.keywords
            if not known and not self.any_keyword:
                return f"`{self.name}` has no argument named `{n}`"
        filled = given + sum(1 for n in names if n in self.positional[given : self.required])
        if filled < self.required:
            return f"`{self.name}` takes {self._count()}, not {given}"
        return None

    def _count(self) -> str:
        most, least = len(self.positional), self.required
        if least == most:
            amount = f"{most}" if most else "no"
        else:
            amount = f"{least} to {most}" if least != 0 else f"at most {most}"
        plural = "" if (least == most == 1 or (least != most and most == 1)) else "s"
        return f"{amount} argument{plural}"

    def usage(self) -> str:
        """How the filter is called, optional arguments in brackets:
        "called as `replace: seq, [sub]`", "it takes no arguments"."""
        if not self.positional and not self.keywords:
            return "it takes no arguments"
        shown = [
            _shown(p) if i < self.required else f"[{_shown(p)}]"
            for i, p in enumerate(self.positional)
        ] + [f"[{_shown(k)}: …]" for k in self.keywords]
        return f"called as `{self.name}: {', '.join(shown)}`"


def _shown(param: str) -> str:
    """A parameter's name as a template writes it (``default_`` is ``default``)."""
    return param.rstrip("_") or param


# Keyword-only parameters Liquid fills itself (`with_context`, `with_environment`).
_INJECTED = frozenset({"context", "environment"})


@cache
def filter_signature(name: str) -> FilterSignature | None:
    """The :class:`FilterSignature` of the environment's filter ``name``; None when it
    is not registered, its signature cannot be read, or it takes no input."""
    func = _environment().filters.get(name)
    if func is None:
        return None
    try:
        params = list(inspect.signature(func).parameters.values())
    except (TypeError, ValueError):
        return None
    by_position = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if not params or params[0].kind not in by_position:
        return None
    rest = params[1:]
    positional = tuple(p.name for p in rest if p.kind in by_position)
    required = sum(1 for p in rest if p.kind in by_position and p.default is p.empty)
    keywords = tuple(
        p.name for p in rest if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name not in _INJECTED
    )
    return FilterSignature(
        name,
        positional,
        required,
        keywords,
        any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in rest),
        any(p.kind is inspect.Parameter.VAR_KEYWORD for p in rest),
    )


def _expressions(template: BoundTemplate) -> Iterator[Expression]:
    """Every expression of ``template``, nested ones included."""
    static = RenderContext(template)
    nodes = list(template.nodes)
    while nodes:
        node = nodes.pop()
        todo: list[Expression] = list(node.expressions())
        while todo:
            expr = todo.pop()
            yield expr
            todo.extend(expr.children())
        nodes.extend(node.children(static, include_partials=False))


def _filters_of(expr: Expression) -> list[Filter]:
    if isinstance(expr, TernaryFilteredExpression):
        return [*(expr.filters or ()), *(expr.tail_filters or ())]
    if isinstance(expr, FilteredExpression):
        return list(expr.filters or ())
    return []


def _roots(expr: Expression) -> set[str]:
    """The first names of the paths in ``expr``: ``coupon`` of ``coupon.code``."""
    todo = [expr]
    found: set[str] = set()
    while todo:
        e = todo.pop()
        if isinstance(e, Path) and isinstance(e.path[0], str):
            found.add(e.path[0])
        todo.extend(e.children())
    return found


def _describe(exc: LiquidError, source: str) -> TemplateError:
    message = str(exc.message) if exc.message is not None else "bad template"
    token = exc.token
    if token is None or token.start_index < 0 or token.start_index > len(source):
        return TemplateError(None, 1, message)
    return TemplateError(token.start_index, max(1, len(token.value)), message)
