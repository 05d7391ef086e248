"""Partitions of the users, for a store several engine workers share (PostgreSQL).

Users are hashed into a fixed number of partitions; each partition is leased by one
live worker at a time (:mod:`journeyc.store.leases`), and a worker's engine handles the
events, timers and segment rechecks of its partitions only. The number is fixed, not a
setting: a user's partition must never change while rows name it, and 64 partitions
spread well over any sensible number of workers (at most 64 work at once).

The partition is computed by the database, as a stored generated column ``part`` on
the rows a worker selects by partition (events, instances, segment members), so that
no insert or merge computes it and every worker agrees::

    ((hashtextextended(user_id, 0) % 64) + 64) % 64

(``hashtextextended`` is the hash PostgreSQL's own hash partitioning uses: immutable,
and stable across versions.) SQLite has no partitions: one SQLite store has one engine.
"""

from __future__ import annotations

__all__ = ["PARTITIONS", "all_partitions"]

PARTITIONS = 64
"""How many partitions the users are hashed into."""


def all_partitions() -> list[int]:
    """Every partition number, in order."""
    return list(range(PARTITIONS))
