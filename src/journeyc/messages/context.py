"""What a template sees at one send: :class:`RenderContext`, apart from the renderers
(:mod:`journeyc.messages.render` and its shortcut, :mod:`journeyc.messages.fastrender`)
that both read it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from journeyc.engine.values import EventView

__all__ = ["RenderContext"]


@dataclass(slots=True, kw_only=True)
class RenderContext:
    """What a template sees at one send.

    ``user`` is the profile (its ``locale`` attribute picks locale variants);
    ``user_id`` is exposed as ``user.id`` unless the profile has an ``id`` of its own.
    ``event`` is the event in focus (None for segment and scheduled entries).
    ``values`` are the send's ``with`` values, each a top-level variable.
    """

    user_id: str
    user: Mapping[str, Any]
    event: EventView | None
    journey_id: str
    step: str
    now: datetime
    values: Mapping[str, Any] = field(default_factory=dict)
