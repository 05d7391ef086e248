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
import re
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


_LONG_DIGITS = re.compile(r"[0-9]{19}")


def loads(text: str) -> Any:
    """The value of JSON ``text``, as ``json.loads`` reads it: orjson for what it reads
    the same way, the ``json`` module for the rest (integers beyond 64 bits, and the
    ``NaN`` and ``Infinity`` that ``json.dumps`` writes)."""
    # orjson reads an integer beyond 64 bits as a float: such text (19 digits or
    # more in a row) goes to the json module.
    if _LONG_DIGITS.search(text) is None:
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    return json.loads(text)


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
