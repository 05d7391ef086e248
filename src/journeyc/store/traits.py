"""How traits merge into a profile: the rule every store applies (no SQL here).

Per trait, the latest write wins: a change older than the trait's last write (an
identify that arrived late) is ignored; at equal times, the later call wins. A trait
set to None is removed (and its time kept, so an older value cannot come back).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from journeyc.events import CONTEXT_DEFAULTS

__all__ = ["CONTEXT_WRITTEN", "merge_into"]


def merge_into(
    traits: dict[str, Any], written: dict[str, int], changes: Mapping[str, Any], at_ms: int
) -> None:
    """Merge ``changes`` made at ``at_ms`` into a profile's ``traits``, each trait's
    latest time in ``written`` winning (see :meth:`journeyc.store.abc.Profiles.set_traits`).

    The attributes under :data:`~journeyc.events.CONTEXT_DEFAULTS` (a call's
    ``context.timezone`` and ``context.locale``) fill only a trait the profile does not
    hold, or holds from such a context: they are written at :data:`CONTEXT_WRITTEN`,
    before any time, so any trait a call sets wins over them whenever it was set."""
    defaults = None
    for key, value in changes.items():
        if key == CONTEXT_DEFAULTS and isinstance(value, dict):
            defaults = value
            continue
        if written.get(key, at_ms) > at_ms:
            continue
        written[key] = at_ms
        if value is None:
            traits.pop(key, None)
        else:
            traits[key] = value
    if defaults:
        for key, value in defaults.items():
            if key not in traits or written.get(key) == CONTEXT_WRITTEN:
                written[key] = CONTEXT_WRITTEN
                traits[key] = value


CONTEXT_WRITTEN = -(1 << 53)
"""The write time of a trait filled from a call's context (see :func:`merge_into`)."""
