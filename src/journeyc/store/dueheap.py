"""Keys that each come due at a time, earliest first: what the simulator asks of the
indexed ``wake_at`` and ``recheck_at`` columns while it holds its writes."""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from typing import Generic, TypeVar

K = TypeVar("K", int, tuple[str, str])


class DueHeap(Generic[K]):
    """Each key's due time, popped in ``(time, key)`` order.

    A heap whose entries are never removed in place: setting a key's time pushes an
    entry, and an entry that no longer is its key's time is skipped when it surfaces.
    """

    def __init__(self, items: Iterable[tuple[int, K]] = ()) -> None:
        self._heap: list[tuple[int, K]] = list(items)
        heapq.heapify(self._heap)
        self._due: dict[K, int] = {k: t for t, k in self._heap}

    def set(self, key: K, at: int | None) -> None:
        """Make ``key`` due at ``at`` (None: not due at all)."""
        if at is None:
            self._due.pop(key, None)
        elif self._due.get(key) != at:
            self._due[key] = at
            heapq.heappush(self._heap, (at, key))

    def pop_due(self, now: int, limit: int) -> list[tuple[int, K]]:
        """Up to ``limit`` keys due by ``now``, earliest first, with their times; they
        are due no more until set again."""
        heap, due = self._heap, self._due
        out: list[tuple[int, K]] = []
        while heap and heap[0][0] <= now and len(out) < limit:
            at, key = heapq.heappop(heap)
            if due.get(key) == at:
                del due[key]
                out.append((at, key))
        return out

    def next(self) -> int | None:
        """The earliest due time."""
        heap, due = self._heap, self._due
        while heap and due.get(heap[0][1]) != heap[0][0]:
            heapq.heappop(heap)
        return heap[0][0] if heap else None
