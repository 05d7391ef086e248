"""The rules every store's segment book applies (no SQL here): how one user's segment
rows merge into another's when the users merge (an identity merge), and which segment
rows a deploy of new definitions drops and writes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import NamedTuple

from journeyc.compile import ir
from journeyc.store.abc import SegmentDefinition
from journeyc.store.rows import SegmentRow

__all__ = ["SegmentDeploy", "merged_standing", "segment_deploy"]


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


class SegmentDeploy(NamedTuple):
    """What deploying segment definitions does to a store's segment rows."""

    changed: list[str]
    """Segments whose definition changed, sorted: their member rows are dropped."""
    gone: list[str]
    """Deployed segments the project no longer has: dropped with their rows."""
    definitions: list[tuple[str, str, str, int]]
    """``(name, hash, expr as IR JSON, refreshed_at)`` to upsert, one per changed segment."""


def segment_deploy(
    deployed: Iterable[str],
    infos: Mapping[str, SegmentDefinition],
    changed: Iterable[str],
    at_ms: int,
) -> SegmentDeploy:
    """The rows a deploy of ``infos`` drops and writes, given the ``deployed`` names."""
    names = sorted(set(changed))
    gone = [n for n in deployed if n not in infos]
    definitions = [
        (n, infos[n].hash, ir.SegmentIR(name=n, expr=infos[n].expr).model_dump_json(), at_ms)
        for n in names
    ]
    return SegmentDeploy(names, gone, definitions)
