"""Incoming events in Segment's tracking spec, validated into normalized records.

Existing pipelines feed journeyc unchanged: ``track`` and ``identify`` calls as
Segment's libraries send them (one per JSON line, or a ``/v1/batch`` body). Each
call becomes a frozen :class:`Event`; a call that is shaped wrong raises
:class:`EventError`, whose every problem names the JSON path of the bad field
(``$.properties: expected an object``), so nothing half-valid reaches the log.
Text that cannot be written as UTF-8 (a lone surrogate, which a JSON ``\\ud800``
escape makes) is refused the same way, wherever it is in the call, keys included.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal, TypeAlias
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from journeyc.fastjson import loads
from journeyc.fastread import read_in_parts
from journeyc.lang.literals import normalize_event

# Streams repeat a few event names: normalise each once.
_normalize_event = lru_cache(maxsize=4096)(normalize_event)

Kind: TypeAlias = Literal["track", "identify", "alias"]
# Calls of Segment's spec that journeys have no use for (yet): acknowledged in a batch and
# not stored, so a batch that mixes them with track calls is not refused whole.
IGNORED_TYPES = frozenset({"page", "screen", "group"})

IDENTIFY = "identify"
"""The name an identify call is logged under (no track event may take it)."""

ALIAS = "alias"
"""The name a merge of two ids is logged under (no track event may take it): an
``alias`` call (``previousId`` into ``userId``), or a call that carries both an
``anonymousId`` and a ``userId``. Its ``props`` hold ``previousId``, the id merged
into the event's user (docs/semantics.md, "Identity: anonymous to known")."""

PREVIOUS_ID = "previousId"
"""The key of an alias event's ``props`` naming the id merged into its user."""

ALIAS_SUFFIX = "#alias"
"""Appended to a call's ``messageId`` to name the alias event a call carrying both
``anonymousId`` and ``userId`` makes."""

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


UserId = Annotated[
    str | None,
    BeforeValidator(_id_text),
    WithJsonSchema({"anyOf": [{"type": "string"}, {"type": "integer"}, {"type": "null"}]}),
]

# The schema of "one of userId and anonymousId, not empty": what _user_id requires.
_ONE_ID: dict[str, Any] = {
    "anyOf": [
        {
            "required": ["userId"],
            "properties": {
                "userId": {"anyOf": [{"type": "string", "minLength": 1}, {"type": "integer"}]}
            },
        },
        {
            "required": ["anonymousId"],
            "properties": {"anonymousId": {"type": "string", "minLength": 1}},
        },
    ]
}


class _Call(BaseModel):
    """Fields every Segment call shares; unknown top-level keys are ignored.

    ``userId`` may be a number (some pipelines send them); ``anonymousId`` is a
    string, as Segment's spec says. One of them must be given and not empty.
    """

    model_config = ConfigDict(extra="ignore", frozen=True, json_schema_extra=_ONE_ID)

    user_id: UserId = Field(default=None, alias="userId")
    anonymous_id: str | None = Field(default=None, alias="anonymousId")
    timestamp: IsoTime = None
    # sentAt, originalTimestamp and receivedAt are read by _event_ms, from the call as
    # given, and only when there: most calls have none, and each field the model
    # validates costs every call.
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


class AliasEvent(_Call):
    """A Segment ``alias`` call: ``previousId`` (an anonymous id, or an old user id)
    and ``userId`` name one user from now on; the first merges into the second."""

    type: Literal["alias"]
    previous_id: Annotated[str, BeforeValidator(_id_text)] = Field(alias="previousId")


_MODELS: dict[str, type[TrackEvent] | type[IdentifyEvent] | type[AliasEvent]] = {
    "track": TrackEvent,
    "identify": IdentifyEvent,
    "alias": AliasEvent,
}

_MESSAGES = {
    "missing": "is required",
    "dict_type": "expected an object",
    "string_type": "expected a string",
    "list_type": "expected an array",
}


# ---------------------------------------------------------------- parsing


NewId: TypeAlias = Callable[[], str]
"""Makes the ``messageId`` of a call that has none."""

Ignored: TypeAlias = Callable[[str], None]
"""Told the name of a field a call carried and parsing ignored (``context.timezone``
naming no IANA zone, ``context.locale`` not text): the daemon counts them."""

CONTEXT_DEFAULTS = "$context_defaults"
"""The key under which an identify event's props carry the profile attributes a
call's context fills only where the profile has none (``timezone`` from
``context.timezone``, ``locale`` from ``context.locale``); the store's profile merge
reads it (:meth:`journeyc.store.abc.Profiles.set_traits`) and never keeps it as a trait."""

CONTEXT_SUFFIX = "#context"
"""Appended to a track call's ``messageId`` to name the identify event its context
makes (``context.traits``, ``context.timezone``, ``context.locale``)."""


def random_id() -> str:
    """A fresh random ``messageId`` (``jc-`` and 32 hex digits): for a call that
    arrives without one, which is then an event of its own however alike another."""
    return "jc-" + uuid.uuid4().hex


def parse_event(
    obj: object, received_ms: int, kind: Kind | None = None, *, new_id: NewId | None = None
) -> Event:
    """Validate one call (a decoded JSON object) and normalize it.

    ``received_ms`` is when it arrived; it stands in for a missing ``timestamp``.
    ``kind`` is for endpoints that imply the type (``/v1/track``): a missing
    ``type`` is taken as ``kind``. ``new_id()`` gives the ``messageId`` of a call
    that has none (the HTTP API passes :func:`random_id`); without it, the id is a
    hash of the call's content, so equal calls are one event. Raises
    :class:`EventError`.

    This is the call's own event only: the identify event a track call's
    ``context`` makes is left out (:func:`parse_call` gives both).
    """
    return _parse(obj, received_ms, kind, "$", new_id, check_text=not _is_utf8(obj))


def parse_call(
    obj: object,
    received_ms: int,
    kind: Kind | None = None,
    *,
    new_id: NewId | None = None,
    on_ignored: Ignored | None = None,
) -> list[Event]:
    """The events of one call, as :func:`parse_event` reads it: a track call whose
    ``context`` carries ``traits``, ``timezone`` or ``locale`` gives an identify event
    (``messageId`` + :data:`CONTEXT_SUFFIX`, the same time) and then its own, so the
    profile is updated before the track is handled. A call carrying both
    ``anonymousId`` and ``userId`` gives an alias event first (``messageId`` +
    :data:`ALIAS_SUFFIX`): the anonymous id merges into the user. ``on_ignored`` is
    told each field that was ignored (an unknown ``context.timezone``). Raises
    :class:`EventError`."""
    events: list[Event] = []
    check_text = not _is_utf8(obj)
    events.append(
        _parse(obj, received_ms, kind, "$", new_id, check_text, derived=events, ignored=on_ignored)
    )
    return events


def parse_batch(
    body: object,
    received_ms: int,
    *,
    new_id: NewId | None = None,
    on_ignored: Ignored | None = None,
) -> list[Event]:
    """Validate a Segment ``/v1/batch`` body (``{"batch": [...]}``), all or nothing.

    ``page``, ``screen`` and ``group`` calls are skipped (see IGNORED_TYPES).
    ``new_id`` is as for :func:`parse_event`; the calls give their events as in
    :func:`parse_call` (``on_ignored`` likewise). The body's own ``sentAt`` (Segment's
    SDKs send it there) stands for each call's that has none.

    Every call is checked; if any is bad, :class:`EventError` lists each problem
    under its index (``$.batch[3].event: is required``) and no event is returned.
    """
    if not isinstance(body, Mapping):
        raise EventError([Problem("$", "expected an object")])
    batch = body.get("batch")
    if not isinstance(batch, list):
        message = "is required" if batch is None else "expected an array"
        raise EventError([Problem("$.batch", message)])
    # One look at the whole body; only a body with bad text is walked, call by call.
    check_text = not _is_utf8(body)
    events: list[Event] = []
    problems: list[Problem] = []
    sent_at = _batch_sent_at(body, problems)
    for i, item in enumerate(batch):
        kind = item.get("type") if isinstance(item, Mapping) else None
        if isinstance(kind, str) and kind in IGNORED_TYPES:
            # Segment's SDKs batch these with track calls; journeys don't use them
            if check_text:
                problems += _bad_text(item, f"$.batch[{i}]")
            continue
        try:
            events.append(
                _parse(
                    item,
                    received_ms,
                    None,
                    f"$.batch[{i}]",
                    new_id,
                    check_text,
                    sent_at=sent_at,
                    derived=events,
                    ignored=on_ignored,
                )
            )
        except EventError as exc:
            problems.extend(exc.problems)
    if check_text:
        problems += _bad_text({k: v for k, v in body.items() if k != "batch"}, "$")
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
    ``received_ms`` (default: now) stands in for missing timestamps. A line without
    a ``messageId`` gets one made of its line number and its text (see
    :func:`line_id`): reading the file again gives the same ids, so the store keeps
    its events once, while two equal lines are two events. With ``workers``
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
    # Text that is not UTF-8 can only come from an escape: one scan of the file (in C)
    # spares the lines of a file without any a search each.
    escapes = _SURROGATE_ESCAPE.search(data) is not None
    for part_events, part_problems in read_in_parts(
        data, parts, functools.partial(_read_lines, name, received_ms, escapes), _pack, _unpack
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


def _read_lines(
    name: str, received_ms: int, escapes: bool, first: int, lines: Iterable[bytes]
) -> _Read:
    """The events of ``lines`` (the first is line ``first`` of file ``name``), and the
    problems of the bad ones; ``escapes``: whether the file holds an escape of a
    surrogate (else no line is searched for one)."""
    events: list[Event] = []
    problems: list[Problem] = []
    new_id = _LineId()
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
        # The line is UTF-8, so only an escape can make a lone surrogate: a line is
        # walked for one only if it holds such an escape.
        check_text = escapes and _SURROGATE_ESCAPE.search(raw) is not None
        new_id.lineno, new_id.line = lineno, raw
        try:
            events.append(
                _parse(
                    obj,
                    received_ms,
                    None,
                    "$",
                    new_id,
                    check_text,
                    True,
                    derived=events,
                    recorded=True,
                )
            )
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


class _LineId:
    """The ``new_id`` of the line in hand (set for each line: cheaper than a new
    callable per line on the reader's hot path)."""

    __slots__ = ("line", "lineno")

    def __init__(self) -> None:
        self.lineno = 0
        self.line = b""

    def __call__(self) -> str:
        return line_id(self.lineno, self.line)


def line_id(lineno: int, line: bytes) -> str:
    """The ``messageId`` of a file's line that has none: a hash of its number and its
    bytes. The same line at the same place is the same event (a file read again, or
    with lines added at its end); equal lines at two places are two events."""
    return "jc-" + hashlib.sha256(b"%d\n%b" % (lineno, line)).hexdigest()[:40]


def _parse(
    obj: object,
    received_ms: int,
    kind: Kind | None,
    root: str,
    new_id: NewId | None = None,
    check_text: bool = True,
    decoded: bool = False,
    *,
    sent_at: datetime | None = None,
    derived: list[Event] | None = None,
    ignored: Ignored | None = None,
    recorded: bool = False,
) -> Event:
    # decoded: ``obj`` was read from JSON text, so its values are JSON data already.
    # check_text: ``obj`` may hold text that is not UTF-8 (a caller's quick test said so).
    # sent_at: the batch's ``sentAt``, for a call without its own.
    # recorded: a file's call, received before (see _event_ms).
    # derived: where the identify event a track call's context makes is appended (just
    # before the caller appends the call's own); None: it is not made.
    problems = _bad_text(obj, root) if check_text else []
    if not isinstance(obj, Mapping):
        raise EventError([Problem(root, "expected an object")])
    type_ = obj.get("type", kind)
    if not isinstance(type_, str) or type_ not in _MODELS:
        message = "is required" if type_ is None else 'expected "track", "identify" or "alias"'
        raise EventError([*problems, Problem(f"{root}.type", message)])
    if kind is not None and type_ != kind:
        raise EventError([*problems, Problem(f"{root}.type", f"expected {json.dumps(kind)} here")])
    model: TrackEvent | IdentifyEvent | AliasEvent | None = None
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
        elif name == ALIAS:
            problems.append(Problem(f"{root}.event", '"alias" is kept for alias calls'))
    elif model is not None and isinstance(model, AliasEvent):
        name, field = ALIAS, "previousId"
        if not model.previous_id:
            problems.append(Problem(f"{root}.previousId", "must not be empty"))
    if problems or model is None or user_id is None:
        raise EventError(problems)
    if isinstance(model, AliasEvent):
        props = {PREVIOUS_ID: model.previous_id}
    else:
        props = model.properties if isinstance(model, TrackEvent) else model.traits
    try:
        if not decoded:
            canonical_json(props)
    except (TypeError, ValueError) as exc:
        raise EventError([Problem(f"{root}.{field}", f"not JSON data ({exc})")]) from None
    if model.message_id:
        message_id = model.message_id
    elif new_id is not None:
        message_id = new_id()
    else:
        message_id = _content_id(
            canonical_json(model.model_dump(mode="json", by_alias=True, exclude={"message_id"}))
        )
    if sent_at is None and "sentAt" not in obj and "originalTimestamp" not in obj:
        # The common case (a server-side call, a file's line): the time as given.
        at_ms = _epoch_ms(model.timestamp) if model.timestamp else received_ms
        if at_ms is None:
            raise EventError([Problem(f"{root}.timestamp", "out of range")])
    else:
        at_ms = _event_ms(obj, model.timestamp, sent_at, received_ms, root, recorded)
    anonymous_id = model.anonymous_id
    if anonymous_id and derived is not None and name != ALIAS and anonymous_id != user_id:
        # A call with both ids (an identify at login, and every call after it from
        # Segment's SDKs): the anonymous id merges into the user, before the call's own
        # events. The store drops the merge where the two are one user already.
        derived.append(
            Event(
                message_id + ALIAS_SUFFIX,
                user_id,
                "alias",
                ALIAS,
                at_ms,
                {PREVIOUS_ID: anonymous_id},
                received_ms,
            )
        )
    context = model.context
    if context:
        # Only a call with a context pays for reading it (most server-side calls have
        # none, and those that do carry little but ``library``).
        traits = _context_profile(context, root, ignored)
        if traits is not None:
            if not decoded:
                try:
                    canonical_json(traits)
                except (TypeError, ValueError) as exc:
                    path = f"{root}.context.traits"
                    raise EventError([Problem(path, f"not JSON data ({exc})")]) from None
            if name == IDENTIFY:
                # One profile update: the call's own traits win over its context's.
                props = {**traits, **props}
            elif derived is not None:
                derived.append(
                    Event(
                        message_id + CONTEXT_SUFFIX,
                        user_id,
                        "identify",
                        IDENTIFY,
                        at_ms,
                        traits,
                        received_ms,
                    )
                )
    return Event(message_id, user_id, model.type, name, at_ms, props, received_ms)


def _event_ms(
    obj: Mapping[str, Any],
    timestamp: datetime | None,
    batch_sent_at: datetime | None,
    received_ms: int,
    root: str,
    recorded: bool = False,
) -> int:
    """The time of a call that carries a client clock: Segment's clock-skew rule.

    With ``sentAt`` (the call's own, else the batch's), the client's clock is trusted
    only for the distance between the call and its sending: ``receivedAt − (sentAt −
    originalTimestamp)``, ``timestamp`` standing for ``originalTimestamp`` where only it
    is sent (a device whose clock is hours off, or that queued the call offline,
    still gets the right time). Without ``sentAt`` there is nothing to correct by:
    ``timestamp`` (else ``originalTimestamp``) is taken as is.

    ``recorded``: a call read from a file was received before, when its own
    ``receivedAt`` says (a Segment export keeps it); the time of reading is not, so
    without a ``receivedAt`` its ``sentAt`` is not used."""
    sent_at = _time_field(obj, "sentAt", root) or batch_sent_at
    original = _time_field(obj, "originalTimestamp", root)
    if recorded and sent_at is not None:
        received_at = _time_field(obj, "receivedAt", root)
        if received_at is None:
            sent_at = None
        else:
            received = _epoch_ms(received_at)
            if received is None:
                raise EventError([Problem(f"{root}.receivedAt", "out of range")])
            received_ms = received
    if sent_at is None:
        when = timestamp or original
        field = "timestamp" if timestamp else "originalTimestamp"
        at_ms = received_ms if when is None else _epoch_ms(when)
    elif original is None and timestamp is None:
        return received_ms  # sent, but not said when it happened: when it came
    else:
        if original is not None:
            when, field = original, "originalTimestamp"
        else:
            assert timestamp is not None
            when, field = timestamp, "timestamp"
        try:
            at_ms = received_ms - (sent_at - when) // _ONE_MS
        except OverflowError:
            at_ms = None
    if at_ms is None or _out_of_range(at_ms):
        raise EventError([Problem(f"{root}.{field}", "out of range")])
    return at_ms


def _out_of_range(at_ms: int) -> bool:
    # A time skew can push out of what a datetime holds (years 1 to 9999).
    return not -62_135_596_800_000 <= at_ms <= 253_402_300_799_999


def _batch_sent_at(body: Mapping[str, Any], problems: list[Problem]) -> datetime | None:
    """The ``sentAt`` of a batch body (None when it has none); a bad one is a problem."""
    try:
        return _time_field(body, "sentAt", "$")
    except EventError as exc:
        problems.extend(exc.problems)
        return None


def _time_field(obj: Mapping[str, Any], key: str, root: str) -> datetime | None:
    """The ISO-8601 time of ``obj[key]`` (None when it has none or null), UTC where it
    names no offset; one that is not such a time is an :class:`EventError`."""
    value = obj.get(key)
    if value is None:
        return None
    try:
        parsed = _iso_time(value)
    except PydanticCustomError as exc:
        raise EventError([Problem(f"{root}.{key}", exc.message())]) from None
    assert isinstance(parsed, datetime)
    return parsed


def _context_profile(
    context: Mapping[str, Any], root: str, ignored: Ignored | None
) -> dict[str, Any] | None:
    """The profile update a call's ``context`` carries, or None when it carries none:
    ``context.traits`` as traits, and ``context.timezone`` (an IANA zone) and
    ``context.locale`` under :data:`CONTEXT_DEFAULTS` (they fill the profile's
    ``timezone`` and ``locale`` only where it has none). A ``context.traits`` that is
    not an object is an error; a zone or locale that cannot be used is ignored and
    ``ignored`` told its field."""
    traits = context.get("traits")
    if traits is None:
        update: dict[str, Any] = {}
    elif isinstance(traits, dict):
        update = dict(traits)
    else:
        raise EventError([Problem(f"{root}.context.traits", "expected an object")])
    defaults: dict[str, str] = {}
    zone = context.get("timezone")
    if zone is not None:
        if isinstance(zone, str) and _is_zone(zone):
            defaults["timezone"] = zone
        elif ignored is not None:
            ignored("context.timezone")
    locale = context.get("locale")
    if locale is not None:
        if isinstance(locale, str) and locale.strip():
            defaults["locale"] = locale.strip()
        elif ignored is not None:
            ignored("context.locale")
    if defaults:
        update[CONTEXT_DEFAULTS] = defaults
    return update or None


@lru_cache(maxsize=1024)
def _is_zone(name: str) -> bool:
    """Whether ``name`` is an IANA zone key the engine can use (as
    :func:`journeyc.engine.localtime.user_zone` reads it): ``Europe/Paris``."""
    if name == "localtime" or not name:  # the server's own zone, not an IANA key
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


def _user_id(obj: Mapping[str, Any]) -> str | None:
    for value in (_id_text(obj.get("userId")), obj.get("anonymousId")):
        if isinstance(value, str) and value:
            return value
    return None


def _content_id(canonical: str) -> str:
    # Hashing the validated call (not the arrival time): equal calls are one event.
    return "jc-" + hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()[:40]


# A JSON escape of a surrogate (half of a pair, or alone): \ud800 to \udfff.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _is_utf8(value: object) -> bool:
    """Whether every string in ``value`` (decoded JSON), keys included, can be
    written as UTF-8; a quick test, in C: False may also mean another kind of value
    orjson does not write (then :func:`_bad_text` finds nothing)."""
    try:
        orjson.dumps(value)
    except TypeError:  # orjson.JSONEncodeError
        return False
    return True


def _bad_text(value: object, root: str) -> list[Problem]:
    """A problem for each string in ``value`` (keys too, at any depth) that cannot be
    written as UTF-8, named by its JSON path under ``root``."""
    problems: list[Problem] = []
    stack: list[tuple[str, object]] = [(root, value)]  # not recursive: any depth is fine
    while stack:
        path, node = stack.pop()
        if isinstance(node, str):
            reason = _not_utf8(node)
            if reason:
                problems.append(Problem(path, f"not valid text ({reason})"))
        elif isinstance(node, Mapping):
            children = []
            for key, child in node.items():
                reason = _not_utf8(key) if isinstance(key, str) else ""
                if reason:
                    # The key, escaped: a path must be text that can be written anywhere.
                    child_path = f"{path}[{json.dumps(key)}]"
                    problems.append(Problem(child_path, f"the key is not valid text ({reason})"))
                else:
                    child_path = f"{path}.{key}"
                children.append((child_path, child))
            stack.extend(reversed(children))
        elif isinstance(node, list | tuple):
            stack.extend(reversed([(f"{path}[{i}]", child) for i, child in enumerate(node)]))
    return problems


def text_problems(value: object, root: str = "$") -> list[Problem]:
    """A problem for each string in ``value`` (decoded JSON, keys too, at any depth)
    that cannot be written as UTF-8, named by its JSON path under ``root``: what
    parsing a call reports, for other inputs (a profiles file). Quick when all is
    text."""
    return [] if _is_utf8(value) else _bad_text(value, root)


def _not_utf8(text: str) -> str:
    """Why ``text`` cannot be written as UTF-8, or "" when it can."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"a lone surrogate \\u{ord(text[exc.start]):04x} cannot be written as UTF-8"
    return ""


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
