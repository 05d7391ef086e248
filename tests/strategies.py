"""Hypothesis strategies for journey ASTs, shaped by the grammar.

Every tree these build is *syntactically* valid: ``format_tree`` prints it and
``parse_source`` reads it back to an equal tree without error diagnostics. They are
not *semantically* checked: a send may name a message no file declares, split arms
need not add up to 100%. Build on them (``.filter``, ``st.builds`` with fixed
names) for tests that need checked projects.

Names never collide with the grammar's keywords; event names are already
normalized (``order_completed``), as the parser leaves them.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

from hypothesis import strategies as st

from journeyc.lang import ast
from journeyc.lang.formatter import reserved_words
from journeyc.lang.literals import normalize_event, parse_number
from journeyc.lang.transform import bare_journey_name

CHANNELS = ("push", "email", "sms", "whatsapp", "inapp", "webhook")
DAY_WORDS = ast.DAY_WORDS
_PLAIN_FUNCS = ("days_since", "hours_since", "minutes_since", "exists", "lower", "upper")

# ---------------------------------------------------------------- tokens

_NAME_POOL = (
    *"abcxyz_",
    *("a1", "b_2", "_x", "x__", "score", "total", "coupon", "vip", "buyers", "reminder"),
    *("cart_push", "first_nudge", "th", "day", "everyone_else", "count", "top", "now"),
    *("event", "user", "z9_long_name_for_width"),
)
# A fixed pool draws far faster than generated text, and names are not what the
# formatter or the engine is sensitive to; keywords are left out on purpose.
names: st.SearchStrategy[str] = st.sampled_from(
    [n for n in _NAME_POOL if n not in reserved_words()]
)
"""A bare name that is not a keyword."""

_common_names = st.sampled_from(
    ("push_enabled", "lifecycle", "first_name", "amount", "category", "brand", "x", "y")
)
attr_names = st.one_of(_common_names, names)
"""Attribute-ish names, biased towards a few so that trees repeat them."""

# Characters a string may hold: anything printable (quotes, backslashes, `#`, Liquid,
# Thai), newline and tab (which are escaped), and characters `str.splitlines` breaks
# lines at though the parser does not. A lone carriage return is left out: reading a
# file in text mode turns it into a newline.
_string_chars = st.one_of(
    st.characters(blacklist_categories=("Cs", "Cc")),
    st.sampled_from('"\\#\n\t{}\x0c\x85\u2028'),
)
string_values = st.text(_string_chars, max_size=12)
"""The value of a string literal."""

_odd_events = st.text(st.sampled_from("abcxyz019_ -.é"), min_size=1, max_size=8).map(
    normalize_event
)

events: st.SearchStrategy[str] = st.one_of(
    st.sampled_from(("order_completed", "cart_abandoned", "product_viewed", "timeout", "when")),
    names,
    _odd_events,
).filter(bool)
"""A normalized event name; some need quoting (``"3d"``, keywords, ``é``)."""


def durations(min_seconds: int = 1) -> st.SearchStrategy[ast.Duration]:
    """A duration of at least ``min_seconds``; mostly round values."""
    round_ = st.builds(
        lambda n, unit: n * unit,
        st.integers(1, 90),
        st.sampled_from((1, 60, 3600, 86400, 604800)),
    )
    seconds = st.one_of(round_, st.integers(min_seconds, 10**7)).filter(lambda s: s >= min_seconds)
    return st.builds(lambda s: ast.Duration(seconds=s), seconds)


times = st.builds(
    lambda h, m: ast.TimeOfDay(hour=h, minute=m), st.integers(0, 23), st.integers(0, 59)
)
"""A time of day."""


def percents() -> st.SearchStrategy[ast.Percent]:
    """A percentage from 0% to 100%, as written (``10``, ``33.3``)."""
    whole = st.integers(0, 99).map(str)
    raw = st.one_of(whole, st.builds("{}.{}".format, whole, st.integers(0, 9)), st.just("100"))
    return st.builds(lambda r: ast.Percent(value=float(r), raw=r), raw)


labels = st.builds(lambda n: ast.Label(name=n), names)
"""An ``as NAME`` label."""

# ---------------------------------------------------------------- expressions

_digits = st.one_of(st.integers(0, 9999).map(str), st.sampled_from(("007", "00", "49", "90")))
numbers = st.one_of(_digits, st.builds("{}.{}".format, _digits, _digits)).map(
    lambda raw: ast.Number(value=parse_number(raw), raw=raw)
)
"""A number literal, with its written form."""

literals: st.SearchStrategy[ast.Expr] = st.one_of(
    numbers,
    st.builds(lambda v: ast.String(value=v), string_values),
    st.builds(lambda v: ast.Bool(value=v), st.booleans()),
    st.just(ast.Null()),
    durations(0),
)
"""A literal: number, string, boolean, null or duration."""

_leaves: st.SearchStrategy[ast.Expr] = st.one_of(
    literals,
    st.builds(lambda n: ast.Name(name=n), attr_names),
    st.builds(lambda n: ast.SegmentRef(name=n), names),
)

_BINARY_OPS = ("or", "and", "==", "!=", "<", "<=", ">", ">=", "in", "not in", "+", "-", "*", "/")


def _aggregate(where: st.SearchStrategy[ast.Expr]) -> st.SearchStrategy[ast.Expr]:
    def build(
        func: ast.AggregateFunc,
        event: str,
        prop: list[str],
        where_: ast.Expr | None,
        within: ast.Duration | None,
    ) -> ast.Expr:
        needs_prop = func not in ("count", "last", "first")
        return ast.Aggregate(
            func=func,
            event=event,
            prop=tuple(prop) if needs_prop else (),
            where=where_,
            within=within,
        )

    def build_items(
        func: ast.AggregateFunc,
        event: str,
        prop: list[str],
        item: ast.Expr,
        where_: ast.Expr | None,
        within: ast.Duration | None,
    ) -> ast.Expr:
        return ast.Aggregate(
            func=func, event=event, prop=tuple(prop), item=item, where=where_, within=within
        )

    return st.one_of(
        st.builds(
            build,
            st.sampled_from(ast.AGGREGATES),
            events,
            st.lists(attr_names, min_size=1, max_size=2),
            st.none() | where,
            st.none() | durations(),
        ),
        # Over the items of an event's list: `sum(order_completed.products, item.price …)`.
        st.builds(
            build_items,
            st.sampled_from(("sum", "avg", "min", "max", "distinct", "top")),
            events,
            st.lists(attr_names, min_size=1, max_size=2),
            where,
            st.none() | where,
            st.none() | durations(),
        ),
    )


def _compound(inner: st.SearchStrategy[ast.Expr]) -> st.SearchStrategy[ast.Expr]:
    return st.one_of(
        st.builds(
            lambda op, a, b: ast.Binary(op=op, left=a, right=b),
            st.sampled_from(_BINARY_OPS),
            inner,
            inner,
        ),
        st.builds(lambda op, a: ast.Unary(op=op, operand=a), st.sampled_from(("not", "-")), inner),
        st.builds(lambda v, lo, hi: ast.Between(value=v, low=lo, high=hi), inner, inner, inner),
        st.builds(lambda o, n: ast.GetAttr(obj=o, name=n), inner, attr_names),
        st.builds(lambda xs: ast.ListExpr(items=tuple(xs)), st.lists(inner, max_size=3)),
        st.builds(
            lambda f, xs: ast.Call(func=f, args=tuple(xs)),
            st.one_of(st.sampled_from(_PLAIN_FUNCS), names).filter(
                lambda f: f not in ast.AGGREGATES and f not in ast.ITEM_TESTS
            ),
            st.lists(inner, max_size=2),
        ),
        _aggregate(inner),
        st.builds(
            lambda f, xs, c: ast.ItemTest(func=f, items=xs, cond=c),
            st.sampled_from(ast.ITEM_TESTS),
            inner,
            inner,
        ),
    )


@cache
def expressions(depth: int = 3) -> st.SearchStrategy[ast.Expr]:
    """An expression tree at most ``depth`` operators deep, any shape.

    Built by depth rather than with ``st.recursive``, which is several times slower
    to draw from once strategies nest (expressions inside steps inside steps).
    """
    if depth <= 0:
        return _leaves
    return st.one_of(_leaves, _compound(expressions(depth - 1)))


_COMPARE_OPS = ("==", "!=", "<", "<=", ">", ">=", "in", "not in")


@cache
def conditions(depth: int = 2) -> st.SearchStrategy[ast.Expr]:
    """An expression shaped like a condition: comparisons (of values up to ``depth``
    deep) joined by ``and``/``or``/``not`` up to ``depth`` deep."""
    if depth <= 0:
        value = expressions(1)
        compare = st.builds(
            lambda op, a, b: ast.Binary(op=op, left=a, right=b),
            st.sampled_from(_COMPARE_OPS),
            value,
            value,
        )
        return st.one_of(compare, st.builds(lambda n: ast.SegmentRef(name=n), names))
    inner = conditions(depth - 1)
    return st.one_of(
        inner,
        st.builds(
            lambda op, a, b: ast.Binary(op=op, left=a, right=b),
            st.sampled_from(("and", "or")),
            inner,
            inner,
        ),
        st.builds(lambda a: ast.Unary(op="not", operand=a), inner),
    )


_wheres = st.none() | expressions(2)

# ---------------------------------------------------------------- clauses


def _every() -> st.SearchStrategy[ast.Every]:
    segment = st.none() | names.filter(lambda n: n != "everyone")
    at = st.builds(
        lambda day, t, seg: ast.Every(day=day, at=t, segment=seg),
        st.sampled_from(("day", *DAY_WORDS)),
        times,
        segment,
    )
    interval = st.builds(lambda d, seg: ast.Every(interval=d, segment=seg), durations(), segment)
    return st.one_of(at, interval)


def _quiet_hours() -> st.SearchStrategy[ast.QuietHours]:
    return st.builds(
        lambda a, b, skip: ast.QuietHours(start=a, end=b, skip=skip), times, times, st.booleans()
    ).filter(lambda q: (q.start.hour, q.start.minute) != (q.end.hour, q.end.minute))


clauses: st.SearchStrategy[ast.Clause] = st.one_of(
    st.builds(lambda e, w: ast.WhenEvent(event=e, where=w), events, _wheres),
    st.builds(
        lambda edge, s: ast.WhenSegment(edge=edge, segment=s),
        st.sampled_from(("entering", "leaving")),
        names,
    ),
    _every(),
    st.one_of(
        st.just(ast.Entry(mode="once")),
        st.just(ast.Entry(mode="always")),
        st.builds(lambda d: ast.Entry(mode="once_per", per=d), durations()),
    ),
    st.builds(lambda e, w: ast.ExitWhen(event=e, where=w), events, _wheres),
    st.builds(
        lambda e, w, d: ast.Goal(event=e, where=w, within=d),
        events,
        _wheres,
        st.none() | durations(),
    ),
    _quiet_hours(),
    st.builds(lambda n, d: ast.Cap(count=n, per=d), st.integers(1, 1000), durations()),
    st.builds(lambda p: ast.Holdout(percent=p), percents().filter(lambda p: p.value < 100)),
    st.just(ast.UpgradeInPlace()),
)
"""Any journey clause."""

# ---------------------------------------------------------------- steps

_args = st.lists(
    st.builds(lambda n, v: ast.Arg(name=n, value=v), names, expressions(2)), max_size=2
).map(tuple)
_maybe_label = st.none() | labels


def _targets() -> st.SearchStrategy[tuple[ast.Target, ...]]:
    message = st.one_of(
        st.none(),
        st.builds(lambda n: ast.MessageRef(name=n), names),
        st.builds(lambda v: ast.MessageRef(inline=ast.String(value=v)), string_values),
    )
    target = st.builds(
        lambda c, m: ast.Target(channel=c, message=m), st.sampled_from(CHANNELS) | names, message
    )
    return st.lists(target, min_size=1, max_size=3).map(tuple)


simple_steps: st.SearchStrategy[ast.Step] = st.one_of(
    st.builds(lambda d, lb: ast.Wait(duration=d, label=lb), durations(), _maybe_label),
    st.builds(
        lambda t, day, lb: ast.WaitUntil(at=t, day=day, label=lb),
        times,
        st.none() | st.sampled_from(DAY_WORDS),
        _maybe_label,
    ),
    st.builds(
        lambda ts, a, lb: ast.Send(targets=ts, args=a, label=lb), _targets(), _args, _maybe_label
    ),
    st.builds(
        lambda n, v, lb: ast.SetAttr(name=n, value=v, label=lb), names, expressions(), _maybe_label
    ),
    st.builds(lambda n, lb: ast.UnsetAttr(name=n, label=lb), names, _maybe_label),
    st.builds(lambda e, a, lb: ast.Track(event=e, args=a, label=lb), events, _args, _maybe_label),
    st.builds(lambda lb: ast.ExitStep(label=lb), _maybe_label),
)
"""A step without a nested block."""


def _block(inner: st.SearchStrategy[ast.Step]) -> st.SearchStrategy[tuple[ast.Step, ...]]:
    return st.lists(inner, min_size=1, max_size=3).map(tuple)


def _nested(inner: st.SearchStrategy[ast.Step]) -> st.SearchStrategy[ast.Step]:
    block = _block(inner)
    cond_branch = st.builds(lambda c, b: ast.CondBranch(cond=c, steps=b), conditions(1), block)
    if_step = st.builds(
        lambda bs, orelse, lb: ast.If(branches=tuple(bs), orelse=orelse, label=lb),
        st.lists(cond_branch, min_size=1, max_size=3),
        st.none() | block,
        _maybe_label,
    )
    arm = st.builds(
        lambda p, b, lb: ast.Arm(percent=p, steps=b, label=lb), percents(), block, _maybe_label
    )
    split = st.builds(
        lambda arms, lb: ast.Split(arms=tuple(arms), label=lb),
        st.lists(arm, min_size=1, max_size=3),
        _maybe_label,
    )
    on_branch = st.builds(lambda e, b: ast.OnBranch(event=e, steps=b), st.none() | events, block)
    wait_for = st.builds(
        lambda e, w, d, bs, lb: ast.WaitFor(
            event=e, where=w, timeout=d, branches=tuple(bs), label=lb
        ),
        events,
        _wheres,
        durations(),
        st.lists(on_branch, max_size=2),
        _maybe_label,
    )
    return st.one_of(if_step, split, wait_for)


@cache
def steps(depth: int = 2) -> st.SearchStrategy[ast.Step]:
    """A step, with blocks (``if``, ``split``, ``wait for``) nested ``depth`` deep at most."""
    if depth <= 0:
        return simple_steps
    return st.one_of(simple_steps, _nested(steps(depth - 1)))


# ---------------------------------------------------------------- declarations


def journeys(
    name: st.SearchStrategy[str] = names, max_statements: int = 3
) -> st.SearchStrategy[ast.Journey]:
    """A named ``journey`` block: some clauses, then at least one step."""
    return st.builds(
        lambda n, title, cs, ss: ast.Journey(
            name=n, title=title, clauses=tuple(cs), steps=tuple(ss)
        ),
        name,
        st.none() | string_values,
        st.lists(clauses, max_size=max_statements),
        st.lists(steps(), min_size=1, max_size=max_statements),
    )


fields = st.builds(
    lambda n, v, loc, f: ast.Field(name=n, value=ast.String(value=v), locale=loc, is_file=f),
    st.sampled_from(("title", "body", "subject", "html", "deeplink")) | names,
    string_values,
    st.none() | st.sampled_from(("th", "en", "de")),
    st.booleans(),
)
"""A field of a message part."""

messages = st.builds(
    lambda n, parts: ast.Message(name=n, parts=tuple(parts)),
    names,
    st.lists(
        st.builds(
            lambda c, fs: ast.Part(channel=c, fields=tuple(fs)),
            st.sampled_from(CHANNELS),
            st.lists(fields, min_size=1, max_size=3),
        ),
        min_size=1,
        max_size=3,
    ),
)
"""A ``message`` declaration."""

segments = st.builds(lambda n, e: ast.Segment(name=n, expr=e), names, conditions())
"""A ``segment`` declaration."""


def source_files(
    path: str = "generated.journey", max_declarations: int = 3, max_statements: int = 3
) -> st.SearchStrategy[ast.SourceFile]:
    """A whole file: named journeys, messages and segments in any order, or a bare
    journey (named after ``path``) followed by messages and segments."""
    decl = st.one_of(journeys(max_statements=max_statements), messages, segments)
    named = st.lists(decl, max_size=max_declarations)
    bare_journey = st.builds(
        lambda cs, ss: ast.Journey(
            name=bare_journey_name(path), clauses=tuple(cs), steps=tuple(ss), bare=True
        ),
        st.lists(clauses, max_size=max_statements),
        st.lists(steps(), min_size=1, max_size=max_statements),
    )
    bare = st.builds(
        lambda j, rest: [j, *rest],
        bare_journey,
        st.lists(st.one_of(messages, segments), max_size=max_declarations - 1),
    )
    return st.builds(
        lambda ds: ast.SourceFile(path=path, declarations=tuple(ds)), st.one_of(named, bare)
    )


# ---------------------------------------------------------------- source text

# Characters that matter to the lexer and the indenter, and some that do not.
_NOISE = st.sampled_from(
    [*' \t\n"#()[]{}.,=<>!-+*/%:\\', "  ", "\n  ", "when ", "if ", "30m", "9:00", "é"]
)


@st.composite
def mutated_sources(draw: st.DrawFn, seeds: Sequence[str], max_mutations: int = 4) -> str:
    """One of ``seeds`` with a few characters or lines deleted, inserted, duplicated or
    swapped, or a tab put before a line (up to ``max_mutations`` of them): mostly
    broken sources, some still valid."""
    text: str = draw(st.sampled_from(seeds))
    for _ in range(draw(st.integers(1, max_mutations))):
        lines = text.split("\n")
        kind = draw(
            st.sampled_from(
                ("del_char", "ins_char", "dup_char", "del_line", "dup_line", "swap_lines", "tab")
            )
        )
        if kind in ("del_line", "dup_line", "swap_lines"):
            i = draw(st.integers(0, len(lines) - 1))
            j = draw(st.integers(0, len(lines) - 1))
            if kind == "del_line":
                del lines[i]
            elif kind == "dup_line":
                lines.insert(i, lines[i])
            else:
                lines[i], lines[j] = lines[j], lines[i]
            text = "\n".join(lines)
            continue
        pos = draw(st.integers(0, len(text)))
        if kind == "del_char":
            text = text[:pos] + text[pos + 1 :]
        elif kind == "dup_char":
            text = text[:pos] + text[pos : pos + 1] + text[pos:]
        elif kind == "tab":
            i = draw(st.integers(0, len(lines) - 1))
            lines[i] = "\t" + lines[i]
            text = "\n".join(lines)
        else:
            text = text[:pos] + draw(_NOISE) + text[pos:]
    return text
