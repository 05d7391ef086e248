"""Hypothesis strategies for differential testing: small valid projects and timelines.

A project is 1–3 journeys, each written as source text from a restricted grammar
(event entries with optional `where`, entry rules, `exit when`, `goal`, `cap`,
`holdout`, `quiet hours`; steps `wait`, `wait for … up to` with `on` branches,
`if`/`elif`/`else`, `split`, inline `send`, `set`/`unset`, `track`, `exit`). Every
project passes the checker with no errors (``test_differential`` checks it).

Timelines use a small alphabet on purpose: events `a`, `b`, `c` (half of them with
a `products` list of objects `c`, `p`, `q`, for `any`/`all` and aggregates over list
items), users `u1`–`u3`, times on a 5-minute grid over three days (so events often
coincide with each other and with timers), and identify calls that flip
`push_enabled`, `email`, `timezone` and `tier`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import strategies as st

from journeyc.events import Event, parse_event

EVENTS = ("a", "b", "c")
CATEGORIES = ("x", "y", "z")
USERS = ("u1", "u2", "u3")
DURATIONS = ("5m", "10m", "30m", "1h", "6h", "1d")
CHANNELS = ("push", "email", "sms", "whatsapp", "inapp", "inapp", "webhook")
BASE = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday
BASE_MS = int(BASE.timestamp() * 1000)
GRID_MINUTES = 5
SPAN_STEPS = 3 * 24 * 60 // GRID_MINUTES  # three days of 5-minute steps
ZONES = ("UTC", "Asia/Bangkok", "America/New_York")
SCHEDULES = ("day at 10:00", "6h", "weekday at 18:30")
_TRACK_STEP = re.compile(r"^\s+track ", re.M)
SPLITS = ((50, 50), (30, 70), (90, 10), (20, 30, 50), (34, 33, 33))
_WHEN = re.compile(r"^  when (\w+)", re.MULTILINE)
QUIET = (("22:00", "08:00"), ("00:00", "06:00"), ("09:00", "17:00"), ("12:30", "13:00"))


@dataclass
class Scenario:
    """A generated project and timeline."""

    files: dict[str, str]
    events: list[Event]
    start_ms: int | None = None
    until_ms: int | None = None
    raw_events: list[dict[str, Any]] = field(default_factory=list)

    def describe(self) -> str:
        """The scenario as text, to paste into a bug report."""
        parts = [f"# {name}\n{text}" for name, text in self.files.items()]
        parts.append(f"start_ms={self.start_ms} until_ms={self.until_ms}")
        parts += [str(e) for e in self.raw_events]
        return "\n".join(parts)


class _Namer:
    """Unique `as` names within a journey."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self, prefix: str = "s") -> str:
        self.n += 1
        return f"{prefix}{self.n}"


# ---------------------------------------------------------------- expressions


@st.composite
def simple_conditions(draw: st.DrawFn, event_in_focus: bool = True) -> str:
    """One condition on the profile, an aggregate, or (when in focus) the event."""
    options = [
        "push_enabled == true",
        'tier == "gold"',
        'tier in ["gold", "silver"]',
        "exists(email)",
        "score > 1",
        "not flag",
        "tier != null",
    ]
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return draw(st.sampled_from(options))
    if kind == 1:
        name, within = draw(st.sampled_from(EVENTS)), draw(st.sampled_from(DURATIONS))
        return f"count({name} within {within}) >= {draw(st.integers(1, 3))}"
    if kind == 2:
        return draw(item_conditions(event_in_focus))
    if event_in_focus:
        return f"event.n >= {draw(st.integers(0, 3))}"
    return draw(st.sampled_from(options))


@st.composite
def item_conditions(draw: st.DrawFn, event_in_focus: bool = True) -> str:
    """A condition over the `products` lists of events: `any`/`all`, or an aggregate
    over list items."""
    name, within = draw(st.sampled_from(EVENTS)), draw(st.sampled_from(DURATIONS))
    cat = draw(st.sampled_from(CATEGORIES))
    test = draw(
        st.sampled_from(
            (
                f'item.c == "{cat}"',
                f"item.p >= {draw(st.integers(1, 3))}",
                f'item.c != "{cat}" and item.q > 1',
            )
        )
    )
    func = draw(st.sampled_from(("any", "all")))
    options = [
        f"count({name} where {func}(event.products, {test}) within {within}) >= 1",
        f"sum({name}.products, item.p * item.q where {test} within {within}) >= "
        f"{draw(st.integers(1, 6))}",
        f"sum({name}.products, 1 within {within}) > {draw(st.integers(0, 3))}",
        f"distinct({name}.products, item.c within {within}) >= 2",
        f'top({name}.products, item.c) == "{cat}"',
        f"avg({name}.products, item.p) > 1",
        f"max({name}.products, item.p where {test}) == {draw(st.integers(1, 3))}",
    ]
    if event_in_focus:
        options.append(f"{func}(event.products, {test})")
    return draw(st.sampled_from(options))


@st.composite
def conditions(draw: st.DrawFn) -> str:
    """A simple condition, or two joined by `and`/`or`."""
    first = draw(simple_conditions())
    if draw(st.integers(0, 3)) == 0:
        op = draw(st.sampled_from(("and", "or")))
        return f"{first} {op} {draw(simple_conditions())}"
    return first


VALUES = (
    '"gold"',
    '"silver"',
    "true",
    "false",
    "null",
    "event.n",
    "score + 1",
    "3",
    "top(a.products, item.c within 1d)",
)


# ---------------------------------------------------------------- steps


def _indent(lines: list[str]) -> list[str]:
    return ["  " + line for line in lines]


def _label(draw: st.DrawFn, namer: _Namer) -> str:
    return f" as {namer()}" if draw(st.integers(0, 4)) == 0 else ""


@st.composite
def blocks(draw: st.DrawFn, namer: _Namer, depth: int, max_steps: int = 4) -> list[str]:
    """A block of 1..max_steps steps; `exit` only as the last one."""
    lines: list[str] = []
    simple = ["wait", "wait", "send", "send", "send", "set", "unset", "track"]
    nested = ["wait_for", "if", "split"] if depth > 0 else []
    for _ in range(draw(st.integers(1, max_steps))):
        kind = draw(st.sampled_from(simple + nested))
        if kind == "wait":
            lines.append(f"wait {draw(st.sampled_from(DURATIONS))}{_label(draw, namer)}")
        elif kind == "send":
            channels = draw(st.lists(st.sampled_from(CHANNELS), min_size=1, max_size=2))
            text = draw(st.sampled_from(("hello", "come back", "last chance")))
            lines.append(f'send {" or ".join(channels)} "{text}"{_label(draw, namer)}')
        elif kind == "set":
            attr = draw(st.sampled_from(("tier", "score", "flag", "push_enabled")))
            lines.append(f"set {attr} = {draw(st.sampled_from(VALUES))}{_label(draw, namer)}")
        elif kind == "unset":
            attr = draw(st.sampled_from(("tier", "score", "flag", "push_enabled")))
            lines.append(f"unset {attr}{_label(draw, namer)}")
        elif kind == "track":
            name = draw(st.sampled_from(EVENTS))
            args = f" with n = {draw(st.integers(0, 3))}" if draw(st.booleans()) else ""
            lines.append(f"track {name}{args}{_label(draw, namer)}")
        elif kind == "wait_for":
            name = draw(st.sampled_from(EVENTS))
            where = f" where {draw(simple_conditions())}" if draw(st.integers(0, 3)) == 0 else ""
            up_to = draw(st.sampled_from(DURATIONS))
            lines.append(f"wait for {name}{where} up to {up_to}{_label(draw, namer)}")
            branches = draw(st.sampled_from(((), ("e",), ("t",), ("e", "t"), ("t", "e"))))
            for b in branches:
                lines.append(f"  on {name}" if b == "e" else "  on timeout")
                lines += _indent(_indent(draw(blocks(namer, depth - 1, 2))))
        elif kind == "if":
            lines.append(f"if {draw(conditions())}{_label(draw, namer)}")
            lines += _indent(draw(blocks(namer, depth - 1, 2)))
            for _ in range(draw(st.integers(0, 1))):
                lines.append(f"elif {draw(conditions())}")
                lines += _indent(draw(blocks(namer, depth - 1, 2)))
            if draw(st.booleans()):
                lines.append("else")
                lines += _indent(draw(blocks(namer, depth - 1, 2)))
        else:
            lines.append(f"split{_label(draw, namer)}")
            for pct in draw(st.sampled_from(SPLITS)):
                arm = f" as {namer('arm')}" if draw(st.booleans()) else ""
                lines.append(f"  {pct}%{arm}")
                lines += _indent(_indent(draw(blocks(namer, depth - 1, 2))))
    if draw(st.integers(0, 5)) == 0:
        lines.append(f"exit{_label(draw, namer)}")
    return lines


# ---------------------------------------------------------------- journeys


@st.composite
def journeys(draw: st.DrawFn, name: str) -> str:
    """One `journey NAME` block with its clauses and steps."""
    lines = [f"journey {name}"]
    for _ in range(draw(st.integers(1, 2))):
        event = draw(st.sampled_from(EVENTS))
        where = f" where {draw(conditions())}" if draw(st.integers(0, 3)) == 0 else ""
        lines.append(f"  when {event}{where}")
    entry = draw(st.sampled_from(("", "entry once", "entry always", "once_per")))
    if entry == "once_per":
        entry = f"entry once per {draw(st.sampled_from(DURATIONS))}"
    if entry:
        lines.append(f"  {entry}")
    for _ in range(draw(st.integers(0, 1))):
        event = draw(st.sampled_from(EVENTS))
        where = f" where {draw(simple_conditions())}" if draw(st.booleans()) else ""
        lines.append(f"  exit when {event}{where}")
    if draw(st.booleans()):
        event = draw(st.sampled_from(EVENTS))
        where = f" where {draw(simple_conditions())}" if draw(st.integers(0, 2)) == 0 else ""
        within = f" within {draw(st.sampled_from(DURATIONS))}" if draw(st.booleans()) else ""
        lines.append(f"  goal {event}{where}{within}")
    if draw(st.integers(0, 2)) == 0:
        per = draw(st.sampled_from(DURATIONS))
        lines.append(f"  cap {draw(st.integers(1, 2))} per {per}")
    if draw(st.integers(0, 2)) == 0:
        lines.append(f"  holdout {draw(st.sampled_from((10, 25, 50)))}%")
    if draw(st.integers(0, 2)) == 0:
        start, end = draw(st.sampled_from(QUIET))
        skip = " skip" if draw(st.booleans()) else ""
        lines.append(f"  quiet hours {start}-{end}{skip}")
    lines.append("")
    lines += _indent(draw(blocks(_Namer(), depth=2)))
    return "\n".join(lines) + "\n"


@st.composite
def projects(draw: st.DrawFn, scheduled: bool = False) -> dict[str, str]:
    """File name → source text: 1–3 journeys, one file each.

    ``scheduled``: in a project with no `track` step, some journeys get an
    `every … for everyone` entry too. (The reference interpreter has none; without a
    `track` step, entries cannot set off more entries at one instant, so
    :func:`tests.engine_helpers.reject_runaways` can leave them out.)"""
    count = draw(st.integers(1, 3))
    files = {f"j{n}.journey": draw(journeys(f"j{n}")) for n in range(1, count + 1)}
    if scheduled and not any(_TRACK_STEP.search(text) for text in files.values()):
        for name, text in files.items():
            if draw(st.integers(0, 2)) == 0:
                header, rest = text.split("\n", 1)
                every = f"  every {draw(st.sampled_from(SCHEDULES))} for everyone"
                files[name] = f"{header}\n{every}\n{rest}"
    return files


# ---------------------------------------------------------------- timelines


@st.composite
def raw_events(draw: st.DrawFn, likely: tuple[str, ...] = EVENTS) -> dict[str, Any]:
    """One Segment call as JSON: a track (mostly, half the time of one of ``likely``)
    or an identify."""
    user = draw(st.sampled_from(USERS))
    at = BASE + timedelta(minutes=GRID_MINUTES * draw(st.integers(0, SPAN_STEPS)))
    stamp = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    if draw(st.integers(0, 3)) == 0:
        traits = draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "push_enabled": st.sampled_from((True, False, None)),
                    "email": st.sampled_from(("x@example.com", None)),
                    "timezone": st.sampled_from((*ZONES, None)),
                    "tier": st.sampled_from(("gold", "silver", None)),
                    "email_unsubscribed": st.booleans(),
                },
            )
        )
        return {"type": "identify", "userId": user, "timestamp": stamp, "traits": traits}
    props: dict[str, Any] = {"n": draw(st.integers(0, 3))} if draw(st.booleans()) else {}
    if draw(st.booleans()):
        # Segment's e-commerce shape: a list of product objects (now and then
        # something else in the list, or a `products` that is not a list).
        product = st.fixed_dictionaries(
            {},
            optional={
                "c": st.sampled_from(CATEGORIES),
                "p": st.integers(0, 3),
                "q": st.integers(1, 2),
            },
        )
        props["products"] = draw(
            st.one_of(
                st.lists(product, max_size=3),
                st.lists(st.one_of(product, st.sampled_from(("x", 1, None))), max_size=2),
                st.sampled_from(("x", None)),
            )
        )
    name = draw(st.sampled_from(likely if draw(st.booleans()) else EVENTS))
    return {"type": "track", "userId": user, "event": name, "timestamp": stamp, "properties": props}


@st.composite
def scenarios(draw: st.DrawFn, scheduled: bool = False) -> Scenario:
    """A project, a timeline of 3 to 16 calls (unsorted), and sometimes a `--from`;
    ``scheduled``: journeys may have `every` entries (see :func:`journeys`)."""
    files = draw(projects(scheduled))
    # Half the tracks are of events that enter a journey, so most timelines do something.
    triggers = tuple(sorted({m for text in files.values() for m in _WHEN.findall(text)}))
    raw = draw(st.lists(raw_events(triggers), min_size=3, max_size=16))
    events = [parse_event(obj, received_ms=0) for obj in raw]
    start_ms = None
    if draw(st.integers(0, 3)) == 0:
        # Within the first day: some history, and most of the timeline still to run.
        start_ms = BASE_MS + draw(st.integers(0, SPAN_STEPS // 3)) * GRID_MINUTES * 60_000
    until_ms = BASE_MS + 5 * 24 * 3600 * 1000
    return Scenario(files, events, start_ms, until_ms, raw)
