"""The ``inapp`` provider: the inbox is the outbox.

An in-app message makes no external call. Delivering it means keeping it for the
inbox endpoint, and the outbox row marked ``sent`` is that record, so :meth:`send`
only checks that there is something to show.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from journeyc.channels.base import OutboundMessage, PermanentError, ProviderOptions, parse_options


class InappOptions(ProviderOptions):
    """``[channels.inapp] provider = "inapp"`` takes no options."""


class InappProvider:
    """Accepts in-app messages that have a title or a body."""

    @classmethod
    def from_options(cls, channel: str, options: Mapping[str, Any]) -> InappProvider:
        """A provider for ``[channels.CHANNEL]``; raises ConfigError for any option."""
        parse_options(InappOptions, channel, options)
        return cls()

    def send(self, msg: OutboundMessage) -> None:
        """Accept the message, or raise PermanentError when it has nothing to show."""
        if not any(str(msg.content.get(name, "")).strip() for name in ("title", "body")):
            raise PermanentError("an in-app message needs a title or a body")

    def close(self) -> None:
        """Nothing to release."""
