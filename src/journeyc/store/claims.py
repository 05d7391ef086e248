"""What a claim for several channels at once asks of an outbox
(:meth:`journeyc.store.abc.Outbox.claim_lanes`), checked the same way by every store.
No SQL here."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["lane_limits"]


def lane_limits(wants: Sequence[tuple[str, int]]) -> dict[str, int]:
    """``wants`` (``(channel, limit)`` pairs) as channel → limit, in the given order.

    Raises ValueError when a channel is wanted twice: two limits for one channel say
    nothing clear, and a PostgreSQL claim would lease the channel's rows twice over
    (a transaction does not skip the rows it has itself locked)."""
    limits: dict[str, int] = {}
    for channel, limit in wants:
        if channel in limits:
            raise ValueError(f"claim_lanes: channel {channel!r} is wanted twice")
        limits[channel] = limit
    return limits
