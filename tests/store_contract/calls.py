"""Events for the contract suite, made directly (the store takes them validated)."""

from __future__ import annotations

from typing import Any

from journeyc.events import ALIAS, IDENTIFY, PREVIOUS_ID, Event

T0 = 1_700_000_000_000


def track(
    mid: str, user: str = "u1", name: str = "product_viewed", at: int = T0, **props: Any
) -> Event:
    return Event(mid, user, "track", name, at, props, at)


def identify(mid: str, user: str = "u1", at: int = T0, **traits: Any) -> Event:
    return Event(mid, user, "identify", IDENTIFY, at, traits, at)


def alias(mid: str, previous: str, user: str, at: int = T0) -> Event:
    return Event(mid, user, "alias", ALIAS, at, {PREVIOUS_ID: previous}, at)
