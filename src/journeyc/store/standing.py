"""How one user's segment rows merge into another's when the users merge (an identity
merge): the rule every store's segment book applies (no SQL here)."""

from __future__ import annotations

from collections.abc import Mapping

from journeyc.store.rows import SegmentRow

__all__ = ["merged_standing"]


def merged_standing(
    theirs: Mapping[str, SegmentRow], mine: Mapping[str, SegmentRow]
) -> list[tuple[str, SegmentRow]]:
    """The rows of ``theirs`` (the merged user's) that replace ``mine`` (the user merged
    into), by segment: per segment, a member row of either (the earlier ``since`` when
    both are in), else ``mine``, else ``theirs``."""
    new: list[tuple[str, SegmentRow]] = []
    for seg, row in sorted(theirs.items()):
        own = mine.get(seg)
        if own is None or (row.member and (not own.member or row.since < own.since)):
            new.append((seg, row))
    return new
