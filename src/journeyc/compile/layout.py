"""A layered layout of a journey's drawing, in pure Python (no Graphviz).

A journey's state machine is a directed acyclic graph from its triggers to its exits,
so a simple Sugiyama-style layout reads well: each box goes to the layer of its
longest path from an entry (``layer``), boxes in a layer are ordered by the mean
position of their parents (a few down-and-up sweeps to uncross arrows), and each
layer is a row, centred. The dashboard draws the result as SVG; ``journeyc graph
--format svg`` keeps Graphviz for files.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from journeyc.compile.graph import Drawing

SWEEPS = 4
"""Down-and-up passes of the barycentre ordering: enough for journey-sized graphs."""


@dataclass(frozen=True, slots=True)
class Placed:
    """A box's place: its layer (row, from the top) and its order within the row."""

    key: str
    layer: int
    order: int


def layered_layout(drawing: Drawing) -> dict[str, Placed]:
    """Each box of ``drawing`` (notes left out) placed in a row and an order.

    Layers follow the longest path from a box without arrows in (triggers); a box on
    a cycle, which lowering never makes, still gets a place (its cycle is cut where
    the depth-first walk first meets it again).
    """
    keys = [b.key for b in drawing.boxes if b.shape != "note"]
    known = set(keys)
    children: dict[str, list[str]] = defaultdict(list)
    parents: dict[str, list[str]] = defaultdict(list)
    for a in drawing.arrows:
        if a.src in known and a.dst in known and a.dst not in children[a.src]:
            children[a.src].append(a.dst)
            parents[a.dst].append(a.src)
    order = _topological(keys, children)
    rank = {k: i for i, k in enumerate(order)}
    layer: dict[str, int] = {}
    for k in order:
        # Only parents earlier in the order count: that cuts any cycle.
        earlier = [layer[p] for p in parents[k] if rank[p] < rank[k]]
        layer[k] = max(earlier) + 1 if earlier else 0
    rows: dict[int, list[str]] = defaultdict(list)
    for k in order:
        rows[layer[k]].append(k)
    depth = max(rows) + 1 if rows else 0
    for sweep in range(SWEEPS):
        down = sweep % 2 == 0
        span = range(1, depth) if down else range(depth - 2, -1, -1)
        for i in span:
            near = parents if down else children
            pos = {k: j for j, k in enumerate(rows[i - 1 if down else i + 1])}
            rows[i] = _by_barycentre(rows[i], near, pos)
    return {k: Placed(k, i, j) for i in rows for j, k in enumerate(rows[i])}


def _topological(keys: list[str], children: dict[str, list[str]]) -> list[str]:
    """A depth-first topological order, starting from the boxes in drawing order."""
    seen: set[str] = set()
    post: list[str] = []
    for root in keys:
        if root in seen:
            continue
        seen.add(root)
        stack = [(root, iter(children[root]))]
        while stack:
            node, it = stack[-1]
            nxt = next((c for c in it if c not in seen), None)
            if nxt is None:
                post.append(node)
                stack.pop()
            else:
                seen.add(nxt)
                stack.append((nxt, iter(children[nxt])))
    return post[::-1]


def _by_barycentre(row: list[str], near: dict[str, list[str]], pos: dict[str, int]) -> list[str]:
    """``row`` sorted by the mean position of each box's neighbours in ``pos``; a box
    without any keeps its place."""

    def key(item: tuple[int, str]) -> float:
        j, k = item
        places = [pos[n] for n in near[k] if n in pos]
        return sum(places) / len(places) if places else float(j)

    return [k for _, k in sorted(enumerate(row), key=key)]
