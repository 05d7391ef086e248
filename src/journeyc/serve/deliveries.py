"""The delivery webhook: what providers report after a send (``POST /v1/deliveries``).

A provider (or a small adapter beside it) posts ``{"deliveries": [...]}``, each item
naming a send by its outbox key (the idempotency key journeyc gave the provider with
the message) and what happened to it: ``delivered``, ``opened``, ``clicked``,
``bounced``, ``complained`` or ``unsubscribed``. The body is signed like Stripe's
webhooks: ``Journeyc-Signature: t=<unix seconds>,v1=<hex>``, the hex an
HMAC-SHA256, under the deliveries secret, of ``<t>.`` followed by the body
(:func:`sign`, :func:`verify`); a request older or newer than
:data:`TOLERANCE_S` is refused, so a captured one cannot be replayed later.

Each new report is kept in the store's ``deliveries`` table and logged as a track
event of the send's user (``message_opened`` …, :data:`EVENT_NAMES`), so journeys wait
for it, take it as a goal or enter on it. An ``unsubscribed``, a ``complained`` or a
hard ``bounced`` also turns the channel's consent trait off (:data:`CONSENT`) by an
identify event logged just before, so the reachability rules stop choosing the
channel. A report the store holds already (same key, kind and provider event id)
adds nothing. See docs/deliveries.md.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic_core import ErrorDetails

from journeyc.events import (
    IDENTIFY,
    Event,
    EventError,
    IsoTime,
    Problem,
    canonical_json,
    error_path,
    text_problems,
)
from journeyc.store.abc import Store
from journeyc.store.rows import KINDS, Delivery, Kind, Send

__all__ = [
    "CONSENT",
    "EVENT_NAMES",
    "SIGNATURE_HEADER",
    "TOLERANCE_S",
    "DeliveriesAccepted",
    "DeliveriesCall",
    "DeliveryReport",
    "DeliveryWebhook",
    "ParsedReport",
    "RefusedReport",
    "SignatureError",
    "consent_change",
    "parse_reports",
    "sign",
    "verify",
]

SIGNATURE_HEADER = "Journeyc-Signature"
"""The request header that carries the signature."""

TOLERANCE_S = 300
"""How far (seconds, either way) a signature's ``t`` may be from the server's clock."""

EVENT_NAMES: dict[Kind, str] = {kind: f"message_{kind}" for kind in KINDS}
"""The track event each kind of report is logged as."""

CONSENT: dict[str, dict[str, bool]] = {
    "email": {"email_unsubscribed": True},
    "sms": {"sms_opt_in": False},
    "whatsapp": {"whatsapp_opt_in": False},
    "push": {"push_enabled": False},
}
"""Per channel, the traits an unsubscribe, a complaint or a hard bounce sets: those
the default reachability rules read (docs/semantics.md, "Sending")."""

_ONE_MS = timedelta(milliseconds=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# ---------------------------------------------------------------- the signature


class SignatureError(ValueError):
    """A request whose signature is missing, malformed, stale or wrong."""


def _digest(secret: str, timestamp: str, body: bytes) -> str:
    signed = timestamp.encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The ``Journeyc-Signature`` header value for ``body`` sent at ``timestamp``
    (unix seconds)."""
    return f"t={timestamp:d},v1={_digest(secret, str(timestamp), body)}"


def verify(
    header: str | None, body: bytes, secret: str, now_s: float, tolerance_s: int = TOLERANCE_S
) -> None:
    """Check a ``Journeyc-Signature`` header against ``body``; raise
    :class:`SignatureError` saying what is wrong. Several ``v1`` values may be given
    (a provider signing with an old and a new secret while they change): one that
    matches is enough."""
    if not header:
        raise SignatureError(f"no {SIGNATURE_HEADER} header: sign the body (docs/deliveries.md)")
    stamps: list[str] = []
    signatures: list[str] = []
    for part in header.split(","):
        name, eq, value = part.strip().partition("=")
        if not eq:
            continue
        if name == "t":
            stamps.append(value.strip())
        elif name == "v1":
            signatures.append(value.strip())
    if len(stamps) != 1 or not stamps[0].isascii() or not stamps[0].isdigit():
        raise SignatureError(f"{SIGNATURE_HEADER}: expected t=<unix seconds>,v1=<hex>")
    if not signatures:
        raise SignatureError(f"{SIGNATURE_HEADER}: no v1 signature")
    age = now_s - int(stamps[0])
    if abs(age) > tolerance_s:
        when = f"{int(age)} s old" if age > 0 else f"{int(-age)} s in the future"
        raise SignatureError(
            f"{SIGNATURE_HEADER}: the timestamp is {when}, past the {tolerance_s} s tolerance"
        )
    expected = _digest(secret, stamps[0], body).encode("ascii")
    # Every candidate is compared (no early exit) in constant time.
    matched = False
    for given in signatures:
        matched |= hmac.compare_digest(expected, given.encode("utf-8", "surrogatepass"))
    if not matched:
        raise SignatureError(f"{SIGNATURE_HEADER}: the signature does not match the body")


# ---------------------------------------------------------------- the payload


def _id_text(value: object) -> object:
    # Some providers number their events; an id is text, the digits of the number.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


class DeliveryReport(BaseModel):
    """One thing that happened to a send, as a provider reports it."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="DeliveryReport")

    key: str = Field(min_length=1, description="The send's outbox key (its idempotency key).")
    event: Kind = Field(description="What happened.")
    timestamp: IsoTime = Field(
        default=None,
        description="When it happened (ISO-8601; UTC when no offset); default: when received.",
        json_schema_extra={"format": "date-time"},
    )
    id: Annotated[str | None, BeforeValidator(_id_text)] = Field(
        default=None,
        min_length=1,
        description="The provider's id of this report (text, or a whole number read as "
        "its digits): the same id again is a repeat. Without it, equal items are one report.",
        json_schema_extra={
            "anyOf": [{"type": "string", "minLength": 1}, {"type": "integer"}, {"type": "null"}]
        },
    )
    bounce: Literal["hard", "soft"] | None = Field(
        default=None,
        description='For `bounced` (required there): "hard" (permanent: the channel '
        'stops) or "soft" (temporary).',
    )
    url: str | None = Field(default=None, description="For `clicked`: the link clicked.")
    detail: dict[str, Any] = Field(
        default_factory=dict, description="Anything else, kept with the report."
    )


class DeliveriesCall(BaseModel):
    """The body of ``POST /v1/deliveries``, checked whole: one bad item refuses it all."""

    model_config = ConfigDict(extra="forbid", title="DeliveriesCall")

    deliveries: list[DeliveryReport]


class RefusedReport(BaseModel):
    """A report that was not taken: its path in the body, and why."""

    path: str = Field(examples=["$.deliveries[2].key"])
    message: str


class DeliveriesAccepted(BaseModel):
    """What became of the reports: how many were new, repeats, or refused (a key that
    names no send: see docs/deliveries.md)."""

    success: Literal[True] = True
    received: int = Field(description="Items in the body.")
    new: int = Field(description="Reports stored now (each logged as an event).")
    duplicates: int = Field(
        description="Reports the store held already, or given twice: nothing added."
    )
    refused: list[RefusedReport] = Field(
        default_factory=list,
        description="Items whose key names no send (or one that was suppressed), by path.",
    )


_MESSAGES = {
    "missing": "is required",
    "extra_forbidden": "unknown field",
    "dict_type": "expected an object",
    "string_type": "expected a string",
    "list_type": "expected an array",
    "model_type": "expected an object",
    "string_too_short": "must not be empty",
}


@dataclass(frozen=True, slots=True)
class ParsedReport:
    """A checked report, with its provider event id (given, or made of its content)
    and its time in epoch milliseconds (None: when it arrives)."""

    report: DeliveryReport
    provider_id: str
    at_ms: int | None


def parse_reports(body: object) -> list[ParsedReport]:
    """The reports of a decoded body, each with its provider event id (the one given,
    else a hash of the item) and time; :class:`EventError` lists every problem by its
    JSON path (``$.deliveries[2].event``) and nothing is returned."""
    problems = text_problems(body)
    if problems:
        raise EventError(problems)
    if not isinstance(body, Mapping):
        raise EventError([Problem("$", "expected an object")])
    given = body.get("deliveries")
    if not isinstance(given, list):
        message = "is required" if given is None else "expected an array"
        problems.append(Problem("$.deliveries", message))
    problems += [Problem(f"$.{k}", "unknown field") for k in body if k != "deliveries"]
    items: list[ParsedReport] = []
    for i, item in enumerate(given if isinstance(given, list) else []):
        try:
            items.append(_item(item, f"$.deliveries[{i}]"))
        except EventError as exc:
            problems += exc.problems
    if problems:
        raise EventError(problems)
    return items


def _item(given: object, where: str) -> ParsedReport:
    """One item of ``deliveries``, checked whole (every problem it has)."""
    try:
        report = DeliveryReport.model_validate(given)
    except ValidationError as exc:
        raise EventError([_problem(e, where) for e in exc.errors()]) from None
    problems: list[Problem] = []
    if report.event == "bounced" and report.bounce is None:
        problems.append(Problem(f"{where}.bounce", 'is required for bounced: "hard" or "soft"'))
    elif report.event != "bounced" and report.bounce is not None:
        problems.append(Problem(f"{where}.bounce", "only for bounced"))
    if report.url is not None and report.event != "clicked":
        problems.append(Problem(f"{where}.url", "only for clicked"))
    at_ms = None
    if report.timestamp is not None:
        try:
            at_ms = (report.timestamp - _EPOCH) // _ONE_MS
        except OverflowError:
            problems.append(Problem(f"{where}.timestamp", "out of range"))
    if problems:
        raise EventError(problems)
    provider_id = report.id
    if provider_id is None:
        # Without an id, the item's content names it: a resent item is a repeat.
        digest = hashlib.sha256(canonical_json(given).encode("utf-8")).hexdigest()
        provider_id = "jc-" + digest[:40]
    return ParsedReport(report, provider_id, at_ms)


def _problem(err: ErrorDetails, where: str) -> Problem:
    kind = err["type"]
    if kind == "literal_error":
        message = f"expected one of {err.get('ctx', {}).get('expected', '')}"
    else:
        message = _MESSAGES.get(kind, err["msg"])
    return Problem(error_path(err, where), message)


def consent_change(kind: Kind, bounce: str | None, channel: str | None) -> dict[str, bool]:
    """The traits a report turns off for its channel (empty: none): an unsubscribe, a
    complaint or a hard bounce on a channel that has a consent trait."""
    if kind in ("unsubscribed", "complained") or (kind == "bounced" and bounce == "hard"):
        return dict(CONSENT.get(channel or "", {}))
    return {}


# ---------------------------------------------------------------- the webhook


class DeliveryWebhook:
    """What ``POST /v1/deliveries`` does once the signature holds: record the reports
    and log their events and consent changes, in one transaction of ``store``."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.table = store.deliveries()

    def receive(self, body: object, received_ms: int) -> tuple[DeliveriesAccepted, list[Delivery]]:
        """Validate and store a decoded body; return the answer and the new reports.
        Raises :class:`EventError` (nothing stored) for a body that is shaped wrong."""
        items = parse_reports(body)
        refused: list[RefusedReport] = []
        taken: list[tuple[Delivery, ParsedReport, Send]] = []
        with self.store.transaction():
            sends = self.table.sends(item.report.key for item in items)
            for i, item in enumerate(items):
                send = sends.get(item.report.key)
                path = f"$.deliveries[{i}].key"
                if send is None:
                    refused.append(
                        RefusedReport(
                            path=path, message=f"no send has the key {json.dumps(item.report.key)}"
                        )
                    )
                elif send.status == "suppressed":
                    refused.append(
                        RefusedReport(
                            path=path, message="the send was suppressed: nothing went out"
                        )
                    )
                else:
                    taken.append((self._delivery(item, send, received_ms), item, send))
            added = self.table.record([d for d, _, _ in taken])
            new = [t for t, is_new in zip(taken, added, strict=True) if is_new]
            self.store.append_events(
                [event for d, item, send in new for event in _events(d, item, send)]
            )
        accepted = DeliveriesAccepted(
            received=len(items),
            new=len(new),
            duplicates=len(taken) - len(new),
            refused=refused,
        )
        return accepted, [d for d, _, _ in new]

    @staticmethod
    def _delivery(item: ParsedReport, send: Send, received_ms: int) -> Delivery:
        report = item.report
        detail = dict(report.detail)
        if report.url is not None:
            detail["url"] = report.url
        if report.bounce is not None:
            detail["bounce"] = report.bounce
        return Delivery(
            outbox_key=send.key,
            kind=report.event,
            # Nothing happened after its arrival: a provider clock ahead is taken as
            # now (a consent change dated in the future would outlive a later opt-in).
            at_ms=received_ms if item.at_ms is None else min(item.at_ms, received_ms),
            received_ms=received_ms,
            journey_id=send.journey_id,
            user_id=send.user_id,
            channel=send.channel,
            provider_event_id=item.provider_id,
            detail=detail,
        )


def _events(delivery: Delivery, item: ParsedReport, send: Send) -> Sequence[Event]:
    """The events a new report logs for the send's user: the consent change it makes
    (an identify, first, so what reacts to the report sees it), then its track event."""
    digest = hashlib.sha256(
        "\0".join((delivery.outbox_key, delivery.kind, delivery.provider_event_id)).encode()
    ).hexdigest()
    message_id = "jc-delivery-" + digest[:40]
    props: dict[str, Any] = {
        "journey": send.journey_id,
        "step": send.step,
        "message": send.message,
        "channel": send.channel,
        "key": send.key,
    }
    if item.report.url is not None:
        props["url"] = item.report.url
    if item.report.bounce is not None:
        props["bounce"] = item.report.bounce
    at, received = delivery.at_ms, delivery.received_ms
    events: list[Event] = []
    traits = consent_change(delivery.kind, item.report.bounce, send.channel)
    if traits:
        events.append(
            Event(message_id + "#consent", send.user_id, "identify", IDENTIFY, at, traits, received)
        )
    name = EVENT_NAMES[delivery.kind]
    events.append(Event(message_id, send.user_id, "track", name, at, props, received))
    return events
