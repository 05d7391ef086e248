"""What every channel provider shares: the message it is handed, the errors it
raises, the protocol it implements, and how its options are checked.

A provider delivers one :class:`OutboundMessage` per :meth:`Provider.send` call. It
returns when the receiver has accepted the message, raises :class:`TransientError`
when a later attempt may succeed (a network error, a busy server), and
:class:`PermanentError` when no attempt will (no address, a request the receiver
refuses). The outbox key travels with every message as its idempotency key: a
dispatcher that crashes after a provider accepted a message but before the row was
marked sent sends it again with the same key, and the receiver can drop the copy.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import ErrorDetails

from journeyc.config import ConfigError

__all__ = [
    "DISPATCH_KEYS",
    "DeliveryError",
    "DispatchOptions",
    "OutboundMessage",
    "PermanentError",
    "Provider",
    "ProviderOptions",
    "TransientError",
    "option_error",
    "parse_options",
]


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """One send taken from the outbox, with the profile it goes to.

    ``key`` is the outbox key, unique per send, and doubles as the idempotency key
    providers pass to receivers. ``message`` is the declared message's name (empty
    for an inline ``send``); ``content`` its rendered fields (``title``, ``body``,
    ``subject``, ``html`` …, see the channel's part in LANGUAGE.md).
    """

    key: str
    channel: str
    user_id: str
    journey_id: str
    step: str
    message: str
    content: Mapping[str, str] = field(default_factory=dict)
    profile: Mapping[str, Any] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        """The message as a JSON object: what the file provider writes per line and
        the http provider posts when no ``body`` template is configured."""
        return {
            "key": self.key,
            "channel": self.channel,
            "user_id": self.user_id,
            "journey": self.journey_id,
            "step": self.step,
            "message": self.message,
            "content": dict(self.content),
        }


class DeliveryError(Exception):
    """A send that did not go through; ``reason`` says why, for the outbox ``error``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TransientError(DeliveryError):
    """A send that may succeed later: retry it after a backoff.

    ``retry_after_s`` is the receiver's own hint (an HTTP ``Retry-After``), if any;
    the dispatcher waits at least that long, within its maximum delay.
    """

    def __init__(self, reason: str, retry_after_s: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after_s = retry_after_s


class PermanentError(DeliveryError):
    """A send that no retry can fix: the row is marked failed with the reason."""


@runtime_checkable
class Provider(Protocol):
    """Delivers messages of one channel. Implementations are safe to call from
    several threads at once (the dispatcher runs up to ``concurrency`` sends of a
    channel together); ``close`` releases connections and may be called twice.

    ``send`` should give up by itself (a socket timeout, say): the dispatcher stops
    waiting for a send after the channel's ``deadline`` and leaves the thread behind.
    """

    def send(self, msg: OutboundMessage) -> None:
        """Deliver ``msg``; return once the receiver accepted it.

        Raises :class:`TransientError` or :class:`PermanentError`.
        """
        ...

    def close(self) -> None:
        """Release what the provider holds (connections, clients)."""
        ...


class ProviderOptions(BaseModel):
    """Base of each provider's options: unknown keys are errors, values are not
    coerced (``port = "25"`` is a mistake to report)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class DispatchOptions(ProviderOptions):
    """How the dispatcher drives one channel's provider: keys of ``[channels.X]``
    that any provider takes (they are not passed to the provider).

    ``concurrency``: sends of the channel in flight at once, each in a thread of the
    channel's own (a hung provider holds only its own channel's threads).
    ``deadline``: seconds the dispatcher waits for one send, whatever the provider
    does; a send still running then is given up (a transient failure; the row is
    tried again when its claim's lease ends).
    ``breaker_failures``: consecutive failed sends that open the channel's circuit
    breaker; ``breaker_cooldown``: seconds it stays open (rows are put off, not
    tried, and keep their attempts), before one probe send may close it again.
    """

    concurrency: int = Field(default=4, ge=1, le=256)
    deadline: float = Field(default=60.0, gt=0)
    breaker_failures: int = Field(default=5, ge=1)
    breaker_cooldown: float = Field(default=30.0, gt=0)


DISPATCH_KEYS = frozenset(DispatchOptions.model_fields)
"""The keys of ``[channels.X]`` that are the dispatcher's, not the provider's."""


_O = TypeVar("_O", bound=ProviderOptions)


def parse_options(model: type[_O], channel: str, options: Mapping[str, Any]) -> _O:
    """Check ``options`` (a ``[channels.CHANNEL]`` section without ``provider``)
    against ``model``.

    Raises :class:`~journeyc.config.ConfigError` with one line per problem, each
    naming the key: ``channels.email.port: expected a whole number``.
    """
    try:
        return model.model_validate(dict(options))
    except ValidationError as exc:
        lines = [_describe(model, channel, err) for err in exc.errors()]
        raise ConfigError("\n".join(lines)) from None


def option_error(channel: str, option: str, message: str) -> ConfigError:
    """A :class:`ConfigError` about one option of ``[channels.CHANNEL]``."""
    return ConfigError(f"channels.{channel}.{option}: {message}")


def _describe(model: type[ProviderOptions], channel: str, err: ErrorDetails) -> str:
    loc = [str(part) for part in err["loc"]]
    key = ".".join(["channels", channel, *loc]) if loc else f"channels.{channel}"
    kind = err["type"]
    if kind == "extra_forbidden":
        known = [f.alias or name for name, f in model.model_fields.items()]
        close = difflib.get_close_matches(loc[-1], known, n=1, cutoff=0.6)
        hint = f" (did you mean `{close[0]}`?)" if close else ""
        return f"{key}: unknown key{hint}"
    messages = {
        "missing": "is required",
        "string_type": "expected a string",
        "int_type": "expected a whole number",
        "float_type": "expected a number",
        "bool_type": "expected true or false",
        "dict_type": "expected a table",
    }
    if kind in messages:
        return f"{key}: {messages[kind]}"
    if kind == "literal_error":
        return f"{key}: expected one of {err.get('ctx', {}).get('expected', '')}"
    return f"{key}: {err['msg']}"
