"""Stable buckets: the number a split or a holdout places a user by.

A key (``JOURNEY:STEP:USER`` for a split, ``JOURNEY:holdout:USER`` for a holdout;
docs/semantics.md) hashes to a number in [0, 100). The same key gives the same number
on every machine and in every run, so a user stays in one arm, and in or out of a
holdout, whatever order events come in.
"""

from __future__ import annotations

import hashlib

__all__ = ["bucket"]

_SHA_SPAN = 2**256


def bucket(key: str) -> float:
    """A stable number in [0, 100) for a key: splits and holdouts hash journey and user."""
    # The digest read as one big-endian number (the value of its hex text), over 2**256.
    return int.from_bytes(hashlib.sha256(key.encode()).digest()) / _SHA_SPAN * 100
