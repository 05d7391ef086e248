"""Incoming events in Segment's tracking spec, validated into normalized records.

Existing pipelines feed journeyc unchanged: ``track`` and ``identify`` calls as
Segment's libraries send them (one per JSON line, or a ``/v1/batch`` body). Each
call becomes a frozen :class:`Event`; a call that is shaped wrong raises
:class:`EventError`, whose every problem names the JSON path of the bad field
(``$.properties: expected an object``), so nothing half-valid reaches the log.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal, TypeAlias

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from journeyc.fastjson import loads
from journeyc.fastread import read_in_parts
from journeyc.lang.literals import normalize_event

# Streams repeat a few event names: normalise each once.
_normalize_event = lru_cache(maxsize=4096)(normalize_event)

Kind: TypeAlias = Literal["track", "identify"]
# Calls of Segment's spec that journeys have no use for (yet): acknowledged in a batch and
# not stored, so a batch that mixes them with track calls is not refused whole.
IGNORED_TYPES = frozenset({"page", "screen", "group", "alias"})

IDENTIFY = "identify"
"""The name an identify call is logged under (no track event may take it)."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)


@dataclass(slots=True)
class Event:
    """A validated, normalized call: what the event log stores.

    ``name`` is the normalized event name (``order_completed``), or ``"identify"``;
    ``props`` holds the track call's properties or the identify call's traits;
    ``at_ms`` and ``received_ms`` are UTC epoch milliseconds.
    """

    message_id: str
    user_id: str
    kind: Kind
    name: str
    at_ms: int
    props: dict[str, Any]
    received_ms: int


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with an input: a JSON path, a message, and where it was read."""

    path: str
    message: str
    location: str = ""

    def __str__(self) -> str:
        where = f"{self.location}: " if self.location else ""
        return f"{where}{self.path}: {self.message}"


class EventError(ValueError):
    """Input that is not a valid call; ``problems`` lists everything wrong with it."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


# ---------------------------------------------------------------- wire models


def _iso_time(value: object) -> object:
    if value is None:
        return None
    if not isinstance(value, str):
        raise PydanticCustomError("iso_time", "expected an ISO-8601 time string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise PydanticCustomError(
            "iso_time", "not an ISO-8601 time {value}", {"value": json.dumps(value)}
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


IsoTime = Annotated[datetime | None, BeforeValidator(_iso_time)]


def _id_text(value: object) -> object:
    # Some pipelines send numeric ids; they name the same user as their digits.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


UserId = Annotated[str | None, BeforeValidator(_id_text)]


class _Call(BaseModel):
    """Fields every Segment call shares; unknown top-level keys are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    user_id: UserId = Field(default=None, alias="userId")
    anonymous_id: UserId = Field(default=None, alias="anonymousId")
    timestamp: IsoTime = None
    message_id: str | None = Field(default=None, alias="messageId")
    context: dict[str, Any] | None = None


class TrackEvent(_Call):
    """A Segment ``track`` call: the user did ``event`` with ``properties``."""

    type: Literal["track"]
    event: str
    properties: dict[str, Any] = Field(default_factory=dict)


class IdentifyEvent(_Call):
    """A Segment ``identify`` call: the user's ``traits`` changed."""

    type: Literal["identify"]
    traits: dict[str, Any] = Field(default_factory=dict)


_MODELS: dict[str, type[TrackEvent] | type[IdentifyEvent]] = {
    "track": TrackEvent,
    "identify": IdentifyEvent,
}

_MESSAGES = {
    "missing": "is required",
    "dict_type": "expected an object",
    "string_type": "expected a string",
    "list_type": "expected an array",
}


# ---------------------------------------------------------------- parsing


def parse_event(obj: object, received_ms: int, kind: Kind | None = None) -> Event:
    """Validate one call (a decoded JSON object) and normalize it.

    ``received_ms`` is when it arrived; it stands in for a missing ``timestamp``.
    ``kind`` is for endpoints that imply the type (``/v1/track``): a missing
    ``type`` is taken as ``kind``. Raises :class:`EventError`.
    """
    return _parse(obj, received_ms, kind, "$")


def parse_batch(body: object, received_ms: int) -> list[Event]:
    """Validate a Segment ``/v1/batch`` body (``{"batch": [...]}``), all or nothing.

    ``page``, ``screen``, ``group`` and ``alias`` calls are skipped (see IGNORED_TYPES).

    Every call is checked; if any is bad, :class:`EventError` lists each problem
    under its index (``$.batch[3].event: is required``) and no event is returned.
    """
    if not isinstance(body, Mapping):
        raise EventError([Problem("$", "expected an object")])
    batch = body.get("batch")
    if not isinstance(batch, list):
        message = "is required" if batch is None else "expected an array"
        raise EventError([Problem("$.batch", message)])
    events: list[Event] = []
    problems: list[Problem] = []
    for i, item in enumerate(batch):
        kind = item.get("type") if isinstance(item, Mapping) else None
        if isinstance(kind, str) and kind in IGNORED_TYPES:
            continue  # Segment's SDKs batch these with track calls; journeys don't use them
        try:
            events.append(_parse(item, received_ms, None, f"$.batch[{i}]"))
        except EventError as exc:
            problems.extend(exc.problems)
    if problems:
        raise EventError(problems)
    return events


PARALLEL_READ_BYTES = 16 << 20
"""Files at least this large are read in parts on several cores (``workers``)."""


def read_events_jsonl(
    path: Path | str, received_ms: int | None = None, *, workers: int = 1
) -> list[Event]:
    """Read a file of calls, one JSON object per line (blank lines are skipped).

    Every line is checked before any event is returned, so a run stops before
    anything runs; the error lists each bad line as ``FILE:LINE: $.field: message``.
    ``received_ms`` (default: now) stands in for missing timestamps. With ``workers``
    above 1, a file of :data:`PARALLEL_READ_BYTES` or more is read in that many parts
    at once (processes forked from this one, where the platform can); the events and
    errors are the same, in the same order.
    """
    if received_ms is None:
        received_ms = time.time_ns() // 1_000_000
    name = str(path)
    events: list[Event] = []
    problems: list[Problem] = []
    data = Path(path).read_bytes()
    parts = workers if len(data) >= PARALLEL_READ_BYTES else 1
    for part_events, part_problems in read_in_parts(
        data, parts, functools.partial(_read_lines, name, received_ms), _pack, _unpack
    ):
        events += part_events
        problems += part_problems
    if problems:
        raise EventError(problems)
    return events


_Read = tuple[list[Event], list[Problem]]  # a part of a file read


def _pack(read: _Read) -> tuple[list[tuple[Any, ...]], list[tuple[str, str, str]]]:
    events, problems = read
    return (
        [
            (e.message_id, e.user_id, e.kind, e.name, e.at_ms, e.props, e.received_ms)
            for e in events
        ],
        [(p.path, p.message, p.location) for p in problems],
    )


def _unpack(values: tuple[list[tuple[Any, ...]], list[tuple[str, str, str]]]) -> _Read:
    events, problems = values
    return [Event(*e) for e in events], [Problem(*p) for p in problems]


def _read_lines(name: str, received_ms: int, first: int, lines: Iterable[bytes]) -> _Read:
    """The events of ``lines`` (the first is line ``first`` of file ``name``), and the
    problems of the bad ones."""
    events: list[Event] = []
    problems: list[Problem] = []
    for lineno, raw in enumerate(lines, start=first):
        where = f"{name}:{lineno}"
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            problems.append(Problem("$", f"not UTF-8 text ({exc.reason})", where))
            continue
        if not line.strip():
            continue
        try:
            obj = loads(line, _STRICT.decode)
        except ValueError as exc:
            problems.append(Problem("$", f"not valid JSON ({json_reason(exc)})", where))
            continue
        try:
            events.append(_parse(obj, received_ms, None, "$", decoded=True))
        except EventError as exc:
            problems.extend(Problem(p.path, p.message, where) for p in exc.problems)
    return events, problems


# json.dumps with these options builds an encoder per call; this one is built once.
_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


def first_of_each_id(events: Iterable[Event], seen: set[str] | None = None) -> list[Event]:
    """``events`` without those whose ``message_id`` came earlier (in ``events``, or in
    ``seen``, which is updated): what appending them to the log keeps."""
    seen = set() if seen is None else seen
    out = []
    for e in events:
        if e.message_id not in seen:
            seen.add(e.message_id)
            out.append(e)
    return out


def canonical_json(value: object) -> str:
    """JSON with sorted keys and no spaces: equal values give equal text."""
    return _CANONICAL.encode(value)


def _parse(
    obj: object, received_ms: int, kind: Kind | None, root: str, decoded: bool = False
) -> Event:
    # decoded: ``obj`` was read from JSON text, so its values are JSON data already.
    if not isinstance(obj, Mapping):
        raise EventError([Problem(root, "expected an object")])
    type_ = obj.get("type", kind)
    if not isinstance(type_, str) or type_ not in _MODELS:
        message = "is required" if type_ is None else 'expected "track" or "identify"'
        raise EventError([Problem(f"{root}.type", message)])
    if kind is not None and type_ != kind:
        raise EventError([Problem(f"{root}.type", f"expected {json.dumps(kind)} here")])
    problems: list[Problem] = []
    model: TrackEvent | IdentifyEvent | None = None
    try:
        # The object as given when it names its type already (validation copies it).
        given = obj if obj.get("type") == type_ else {**obj, "type": type_}
        model = _MODELS[type_].model_validate(given)
    except ValidationError as exc:
        problems.extend(_problem(err, root) for err in exc.errors())
    user_id = _user_id(obj)
    if user_id is None and not {p.path for p in problems} & {
        f"{root}.userId",
        f"{root}.anonymousId",
    }:
        problems.append(Problem(f"{root}.userId/anonymousId", "one is required"))
    name, field = IDENTIFY, "traits"
    if model is not None and isinstance(model, TrackEvent):
        name, field = _normalize_event(model.event), "properties"
        if not name:
            problems.append(Problem(f"{root}.event", "must not be empty"))
        elif name == IDENTIFY:
            problems.append(Problem(f"{root}.event", '"identify" is kept for identify calls'))
    if problems or model is None or user_id is None:
        raise EventError(problems)
    props = model.properties if isinstance(model, TrackEvent) else model.traits
    try:
        if not decoded:
            canonical_json(props)
    except (TypeError, ValueError) as exc:
        raise EventError([Problem(f"{root}.{field}", f"not JSON data ({exc})")]) from None
    message_id = model.message_id or _generated_id(
        canonical_json(model.model_dump(mode="json", by_alias=True, exclude={"message_id"}))
    )
    at_ms = _epoch_ms(model.timestamp) if model.timestamp else received_ms
    if at_ms is None:
        raise EventError([Problem(f"{root}.timestamp", "out of range")])
    return Event(message_id, user_id, model.type, name, at_ms, props, received_ms)


def _user_id(obj: Mapping[str, Any]) -> str | None:
    for key in ("userId", "anonymousId"):
        value = _id_text(obj.get(key))
        if isinstance(value, str) and value:
            return value
    return None


def _generated_id(canonical: str) -> str:
    # Hashing the validated call (not the arrival time) makes a replayed file dedup.
    return "jc-" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:40]


def _epoch_ms(at: datetime) -> int | None:
    try:
        return (at - _EPOCH) // _ONE_MS
    except OverflowError:
        return None


def _problem(err: ErrorDetails, root: str) -> Problem:
    return Problem(error_path(err, root), _MESSAGES.get(err["type"], err["msg"]))


def error_path(err: ErrorDetails, root: str = "$") -> str:
    """The JSON path of a pydantic error under ``root``: ``$.batch[3].event``."""
    path = root
    for part in err["loc"]:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def reject_constant(name: str) -> object:
    """``json.loads``'s ``parse_constant``: ``NaN`` and ``Infinity`` are not JSON."""
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text} is out of range")
    return value


# What the reader decodes is JSON data (the check parse_event makes is not needed):
# no NaN, no infinity, not even from a number too large for a float. Built once
# (json.loads with these options builds a decoder per call).
_STRICT = json.JSONDecoder(parse_constant=reject_constant, parse_float=_finite_float)


def json_reason(exc: ValueError) -> str:
    """Why a line is not JSON, in a few words with the column."""
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at column {exc.colno}"
    return str(exc)
