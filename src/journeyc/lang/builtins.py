"""The language's fixed vocabulary: value types, functions, channels and their fields.

The checker, the compiler and the engine all read these tables, so the three never
disagree on what a name means.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Type(StrEnum):
    """The static types the checker knows. ``ANY`` is a profile or event value."""

    ANY = "any"
    NUMBER = "number"
    STRING = "string"
    BOOL = "boolean"
    DURATION = "duration"
    TIMESTAMP = "timestamp"
    LIST = "list"
    NULL = "null"
    EVENT = "event"  # what last()/first() return: `.at` and properties


@dataclass(frozen=True, slots=True)
class Function:
    """A built-in function: its parameter types and result type."""

    name: str
    params: tuple[Type, ...]
    result: Type
    doc: str


FUNCTIONS: dict[str, Function] = {
    f.name: f
    for f in (
        Function("days_since", (Type.TIMESTAMP,), Type.NUMBER, "whole days from T to now"),
        Function("hours_since", (Type.TIMESTAMP,), Type.NUMBER, "whole hours from T to now"),
        Function("minutes_since", (Type.TIMESTAMP,), Type.NUMBER, "whole minutes from T to now"),
        Function("exists", (Type.ANY,), Type.BOOL, "the attribute is set and not null"),
        Function("lower", (Type.STRING,), Type.STRING, "lower-cased string"),
        Function("upper", (Type.STRING,), Type.STRING, "upper-cased string"),
        Function(
            "contains",
            (Type.ANY, Type.ANY),
            Type.BOOL,
            "a string holds a substring, or a list holds an item",
        ),
    )
}

# Aggregates are written as calls but take an event (and property) with optional
# `where` and `within`; their result type depends on the function.
AGGREGATE_RESULTS: dict[str, Type] = {
    "count": Type.NUMBER,
    "sum": Type.NUMBER,
    "avg": Type.NUMBER,
    "min": Type.ANY,
    "max": Type.ANY,
    "distinct": Type.NUMBER,
    "top": Type.ANY,
    "last": Type.EVENT,
    "first": Type.EVENT,
}

CHANNELS: tuple[str, ...] = ("push", "email", "sms", "whatsapp", "inapp", "webhook")

CHANNEL_FIELDS: dict[str, tuple[str, ...]] = {
    "push": ("title", "body", "image", "deeplink", "data"),
    "email": ("subject", "html", "text", "from"),
    "sms": ("body",),
    "whatsapp": ("body", "template"),
    "inapp": ("title", "body", "button"),
    "webhook": ("endpoint", "body"),
}

# The field an inline message (`send push "Hi"`) fills on each channel.
INLINE_FIELD: dict[str, str] = {
    "push": "body",
    "email": "text",
    "sms": "body",
    "whatsapp": "body",
    "inapp": "body",
    "webhook": "body",
}

# Names with a meaning of their own in expressions; any other bare name is a profile
# attribute.
SPECIAL_NAMES: tuple[str, ...] = ("user", "event", "now")
