"""Let filter keyword arguments use names Liquid reserves for its own tags.

LANGUAGE.md writes ``{{ "Rolex" | popular: by: "brand", days: 10, limit: 3 }}``.
python-liquid 2 lexes ``limit`` (like ``offset``, ``cols``, ``reversed``, ``with``,
``for``, ``as``, ``if``, ``else``, ``required``, ``in``, ``contains``) as a keyword
token, and its filter-argument parser only takes a plain word before ``:``, so the
contract's example would be a syntax error. The parser offers no hook for this, so we
wrap ``Filter.parse``: inside a filter's argument list, a keyword token that stands
where an argument name stands (after ``:`` or ``,``, before ``:``) is read as a word.
Nothing else changes: ``{% for p in picks limit: 3 %}`` is parsed by the loop parser,
which never passes through here.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from liquid.builtin.expressions import filtered
from liquid.stream import TokenStream
from liquid.token import TOKEN_COLON, TOKEN_COMMA, TOKEN_WORD

_ARGUMENT_NAMES = frozenset(
    {
        "limit",
        "offset",
        "cols",
        "reversed",
        "with",
        "for",
        "as",
        "if",
        "else",
        "required",
        "in",
        "contains",
        "continue",
    }
)
_original_parse = filtered.Filter.parse


def _parse_filters(env: Any, tokens: TokenStream, *, delim: tuple[str, ...]) -> Any:
    toks = tokens.tokens
    for i in range(max(tokens.pos, 1), len(toks) - 1):
        tok = toks[i]
        if (
            tok.kind in _ARGUMENT_NAMES
            and toks[i + 1].kind == TOKEN_COLON
            and toks[i - 1].kind in (TOKEN_COLON, TOKEN_COMMA)
        ):
            toks[i] = tok._replace(kind=TOKEN_WORD)
    return _original_parse(env, tokens, delim=delim)


def install() -> None:
    """Apply the wrapper (idempotent)."""
    if filtered.Filter.parse is not _parse_filters:
        filtered.Filter.parse = staticmethod(_parse_filters)  # type: ignore[method-assign]


@contextmanager
def as_published() -> Iterator[None]:
    """python-liquid's own filter-argument parser while the block runs, the wrapper
    (if installed) back after it: templates parsed inside are parsed as python-liquid
    publishes it, to compare journeyc with plain Liquid (tests/test_golden_liquid.py).
    The parser is global to the process: not for use while other threads parse."""
    wrapped = filtered.Filter.parse is _parse_filters
    filtered.Filter.parse = staticmethod(_original_parse)  # type: ignore[method-assign]
    try:
        yield
    finally:
        if wrapped:
            install()
