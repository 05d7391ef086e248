"""Partition leases: which engine worker handles which partition of the users, for a
store several workers run on (no SQL here: each store keeps them in its ``leases``
table, see :class:`journeyc.store.abc.Leases`).

A worker takes partitions for a time to live and renews them (its heartbeat) well
within it; a worker that stops renewing (it died, it hung, it lost the network) loses
its partitions when they expire, and another worker takes them over. Times are the
store's clock (PostgreSQL's, for workers on several machines), epoch milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Member", "WorkerLeases"]


@dataclass(frozen=True, slots=True)
class WorkerLeases:
    """What one worker holds: its partitions (sorted), its last heartbeat, and when the
    first of its leases expires unless renewed."""

    worker_id: str
    partitions: tuple[int, ...]
    heartbeat_ms: int
    expires_ms: int


@dataclass(frozen=True, slots=True)
class Member:
    """A live engine worker (its heartbeat renews it; it is gone when it expires),
    whether or not it holds a partition yet: the partitions are shared out among the
    members. ``about`` is what the worker says of itself (JSON text: host, pid, …)."""

    worker_id: str
    heartbeat_ms: int
    expires_ms: int
    about: str
