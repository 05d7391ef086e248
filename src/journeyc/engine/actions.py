"""What the engine did: one record per action, the lines `journeyc simulate` prints."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

ACTIONS = ("enter", "send", "suppress", "goal", "exit", "set", "unset", "track")
SUPPRESS_REASONS = ("no_channel", "cap", "holdout", "quiet_hours", "render_error")
EXIT_REASONS = ("completed", "exit_event", "exit_step")


_DAY_MS = 86_400_000


@lru_cache(maxsize=4096)  # a run spans few days
def _date(day: int) -> str:
    """``YYYY-MM-DDT`` of the ``day``-th day since the epoch."""
    return datetime.fromtimestamp(day * 86_400, UTC).strftime("%Y-%m-%dT")


def iso_ms(ms: int) -> str:
    """Epoch milliseconds as ISO-8601 UTC with ``Z`` (milliseconds only when present)."""
    day, in_day = divmod(ms, _DAY_MS)
    date = _date(day)
    seconds, milli = divmod(in_day, 1000)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    if milli:
        return f"{date}{hours:02d}:{minutes:02d}:{seconds:02d}.{milli:03d}Z"
    return f"{date}{hours:02d}:{minutes:02d}:{seconds:02d}Z"


@dataclass(slots=True)
class Action:
    """One thing the engine did for a user in a journey at ``at_ms``.

    ``detail`` holds the action's own keys: ``channel``, ``message``, ``content`` for
    a send; ``reason`` for suppress and exit; ``attr``/``value`` for set; ``event`` for
    track.

    Records like this one are built several times per event, so they are plain slots
    dataclasses (a frozen one takes about four times as long to build); nothing
    changes one once it is made.
    """

    at_ms: int
    user: str
    journey: str
    step: str | None
    action: str
    detail: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The JSON object of the action, keys in a fixed order."""
        return {
            "at": iso_ms(self.at_ms),
            "user": self.user,
            "journey": self.journey,
            "step": self.step,
            "action": self.action,
            **self.detail,
        }

    def to_json(self) -> str:
        """One JSON line; same action, same bytes."""
        return _LINE.encode(self.as_dict())


def _json_default(value: object) -> object:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ").replace(".000000Z", "Z")
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


# What json.dumps(..., ensure_ascii=False, separators=(", ", ": "), default=_json_default)
# writes, with the encoder built once instead of per call.
_LINE = json.JSONEncoder(ensure_ascii=False, separators=(", ", ": "), default=_json_default)
