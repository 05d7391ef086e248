"""Reading literal tokens: durations, times, percentages, strings, event names.

Each reader returns the value, or raises :class:`LiteralError` with a message that
says what a good literal looks like.
"""

from __future__ import annotations

import re

UNIT_SECONDS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)([A-Za-z_]+)")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "t": "\t"}


class LiteralError(ValueError):
    """A literal token that is shaped wrong; ``offset`` is relative to the token."""

    def __init__(self, message: str, offset: int = 0, length: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset
        self.length = length


def parse_duration(text: str) -> int:
    """Seconds in a duration such as ``30m``, ``2d``, ``1h30m`` or ``1.5h``."""
    pos = 0
    seen: list[str] = []
    total = 0.0
    order = list(UNIT_SECONDS)
    for m in _DURATION_PART.finditer(text):
        if m.start() != pos:
            break
        number, unit = m.groups()
        if unit not in UNIT_SECONDS:
            raise LiteralError(
                f"bad duration `{text}`: unknown unit `{unit}` (units are s, m, h, d, w)",
                m.start(2),
                len(unit),
            )
        if seen and order.index(unit) <= order.index(seen[-1]):
            raise LiteralError(
                f"bad duration `{text}`: write units once each, largest first (`1h30m`)"
            )
        seen.append(unit)
        total += float(number) * UNIT_SECONDS[unit]
        pos = m.end()
    if pos != len(text) or not seen:
        raise LiteralError(f"bad duration `{text}`: write a number and a unit, like `30m`")
    if total != int(total):
        raise LiteralError(f"bad duration `{text}`: it must come to whole seconds")
    return int(total)


def format_duration(seconds: int) -> str:
    """The canonical spelling of a duration: days, hours, minutes, seconds (``1h30m``)."""
    if seconds == 0:
        return "0s"
    out = []
    rest = seconds
    for unit in ("d", "h", "m", "s"):
        n, rest = divmod(rest, UNIT_SECONDS[unit])
        if n:
            out.append(f"{n}{unit}")
    return "".join(out)


def parse_time(text: str) -> tuple[int, int]:
    """Hour and minute of a 24-hour time of day such as ``09:00``."""
    hh, mm = text.split(":")
    hour, minute = int(hh), int(mm)
    if hour > 23 or minute > 59:
        raise LiteralError(f"bad time `{text}`: times run from 00:00 to 23:59")
    return hour, minute


def parse_percent(text: str) -> tuple[float, str]:
    """The value and written number of a percentage such as ``33.3%``."""
    raw = text.rstrip("%")
    return float(raw), raw


def parse_number(text: str) -> int | float:
    """An int for ``3``, a float for ``49.90``."""
    return float(text) if "." in text else int(text)


def unescape_string(token: str) -> tuple[str, list[int]]:
    """The value of a string token (with its quotes) and, for each character of the
    value, its offset in the token — so that errors inside the value (Liquid) can be
    pointed at in the source."""
    body = token[1:-1]
    out: list[str] = []
    offsets: list[int] = []
    i = 0
    while i < len(body):
        c = body[i]
        if c == "\\":
            nxt = body[i + 1] if i + 1 < len(body) else ""
            if nxt not in _ESCAPES:
                raise LiteralError(
                    f'unknown escape `\\{nxt}` in string (use \\", \\\\, \\n or \\t)', i + 1, 2
                )
            out.append(_ESCAPES[nxt])
            offsets.append(i + 1)
            i += 2
        else:
            out.append(c)
            offsets.append(i + 1)
            i += 1
    offsets.append(len(token) - 1)  # one past the end: the closing quote
    return "".join(out), offsets


def quote_string(value: str) -> str:
    """A string token for ``value``, escaping what must be escaped."""
    body = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return f'"{body}"'


def normalize_event(name: str) -> str:
    """Event names are matched lower-cased with spaces, dashes and dots as ``_``."""
    return re.sub(r"[ \-.]", "_", name.strip().lower())


def is_name(text: str) -> bool:
    """Whether ``text`` can be written as a bare name."""
    return bool(_NAME.match(text))
