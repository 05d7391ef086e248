"""JSON text for the engine's hot paths: orjson where it gives the same values as the
``json`` module, the ``json`` module everywhere else.

:func:`loads` reads JSON text as ``json.loads`` does.

:func:`dumps` writes compact JSON (UTF-8 kept as is). What it writes reads back, with
``json.loads``, as exactly what ``json.dumps(value, ensure_ascii=False,
default=default)`` would have written: orjson serialises the plain JSON types
(``dict`` with ``str`` keys, ``list``, ``tuple``, ``str``, ``int`` within 64 bits,
finite ``float``, ``bool``, ``None``); for anything else (another key type, a larger
integer, a datetime, a dataclass, a subclass of a builtin, a lone surrogate) it
refuses, and so does orjson's silent ``null`` for NaN and the infinities, and the
``json`` module writes the value instead. (orjson also writes enums and UUIDs by
value, where ``json`` calls ``default``; the engine's values are never either.) Bytes
differ from ``json.dumps`` (no spaces), so this is for text that is read back, not
compared.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import orjson

__all__ = ["dumps", "loads"]

_OPTIONS = (
    orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)


def dumps(value: Any, default: Callable[[Any], Any] | None = None) -> str:
    """Compact JSON text of ``value``; ``default`` as in ``json.dumps`` (used only by
    the ``json`` module, for values orjson does not write the same way)."""
    try:
        out = orjson.dumps(value, option=_OPTIONS)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=default)
    if b"null" in out and _non_finite(value):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=default)
    return out.decode()


# Digits to "9", every other byte to a space: 19 nines in a row are 19 digits in a row.
_DIGITS = bytes(0x39 if 0x30 <= b <= 0x39 else 0x20 for b in range(256))
_LONG_RUN = b"9" * 19


def loads(text: str, fallback: Callable[[str], Any] = json.loads) -> Any:
    """The value of JSON ``text``, as ``fallback`` (``json.loads``) reads it: orjson for
    what it reads the same way, ``fallback`` for the rest (integers beyond 64 bits, lone
    surrogates, the ``NaN`` and ``Infinity`` that ``json.dumps`` writes, and text that
    is not JSON, whose error is then ``fallback``'s)."""
    # orjson reads an integer beyond 64 bits as a float: such text (19 digits or
    # more in a row) goes to ``fallback``. (A regular expression looked for the run
    # five times more slowly than this table.)
    if _LONG_RUN not in text.encode("utf-8", "surrogatepass").translate(_DIGITS):
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    return fallback(text)


def _non_finite(value: Any) -> bool:
    """Whether a NaN or an infinity is anywhere in ``value`` (which orjson wrote)."""
    cls = value.__class__
    if cls is float:
        return not math.isfinite(value)
    if cls is dict:
        value = value.values()
    elif cls is not list and cls is not tuple:
        return False
    for v in value:
        c = v.__class__
        if (c is float and not math.isfinite(v)) or (
            (c is dict or c is list or c is tuple) and _non_finite(v)
        ):
            return True
    return False
