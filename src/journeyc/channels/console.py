"""The ``console`` provider: one readable block per message on a stream.

The default for every channel without a ``[channels.X]`` section, so a daemon run
without configuration shows what it would send::

    2026-01-05T10:31:00.000Z [push] u1 cart/reminder (cart_reminder) key=cart:u1:1:reminder
      title: Your cart misses you
      body: 2 items are waiting

The time is the send's, in UTC (the daemon's log lines and the API use UTC too).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

from journeyc.channels.base import (
    OutboundMessage,
    ProviderOptions,
    TransientError,
    parse_options,
)


class ConsoleOptions(ProviderOptions):
    """``[channels.X] provider = "console"``: ``stream`` is ``stdout`` (default) or ``stderr``."""

    stream: Literal["stdout", "stderr"] = "stdout"


class ConsoleProvider:
    """Prints each message to ``stream``; with None, to ``sys.stdout`` as it is at
    send time (so a redirected or captured stdout is honoured)."""

    def __init__(
        self, stream: TextIO | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        self._stream = stream
        self._clock = clock
        self._lock = threading.Lock()

    @classmethod
    def from_options(cls, channel: str, options: Mapping[str, Any]) -> ConsoleProvider:
        """A provider for ``[channels.CHANNEL]``; raises ConfigError for bad options."""
        opts = parse_options(ConsoleOptions, channel, options)
        return cls(sys.stderr if opts.stream == "stderr" else None)

    def send(self, msg: OutboundMessage) -> None:
        """Print the message's block and flush."""
        stream = self._stream if self._stream is not None else sys.stdout
        try:
            with self._lock:
                stream.write(format_block(msg, self._clock()))
                stream.flush()
        except (OSError, ValueError) as exc:
            # ValueError: the stream was closed under us.
            raise TransientError(f"cannot write to the console: {exc}") from exc

    def close(self) -> None:
        """Nothing to release: the stream belongs to the caller."""


def format_block(msg: OutboundMessage, at: float) -> str:
    """The text the console provider prints for ``msg`` sent at ``at`` (epoch
    seconds), ending in a newline."""
    name = f" ({msg.message})" if msg.message else ""
    stamp = datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"
    header = f"[{msg.channel}] {msg.user_id} {msg.journey_id}/{msg.step}{name} key={msg.key}"
    lines = [f"{stamp} {header}"]
    for field, value in msg.content.items():
        first, *rest = str(value).splitlines() or [""]
        lines.append(f"  {field}: {first}")
        lines.extend(f"    {line}" for line in rest)
    return "\n".join(lines) + "\n"
