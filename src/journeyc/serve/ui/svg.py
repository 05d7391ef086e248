"""Charts and the journey graph as SVG text, drawn on the server (no script, no
fonts to fetch). Every text that comes from data is escaped here; the pages mark the
result safe."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

from journeyc.compile import ir
from journeyc.compile.graph import Box, draw
from journeyc.compile.layout import layered_layout

CHAR_W = 6.6  # average width of a 12px sans-serif character
LINE_H = 16
BOX_PAD = 10
GAP_X = 28
GAP_Y = 46
MAX_CHARS = 38

# Fill, stroke and text colour of each kind of box.
_STYLE: dict[str, tuple[str, str]] = {
    "entry": ("#eef2ff", "#6366f1"),
    "wait": ("#fffbeb", "#d97706"),
    "branch": ("#f5f3ff", "#7c3aed"),
    "split": ("#fdf4ff", "#c026d3"),
    "send": ("#ecfdf5", "#059669"),
    "action": ("#f8fafc", "#64748b"),
    "exit": ("#fef2f2", "#dc2626"),
    "end": ("#f1f5f9", "#334155"),
}


def _clip(text: str, width: int = MAX_CHARS) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def sparkline(values: Sequence[int], width: int = 120, height: int = 28, label: str = "") -> Markup:
    """A small area chart of ``values`` (a trend), scaled to its own maximum."""
    if not values:
        values = [0]
    top = max(values) or 1
    step = width / max(len(values) - 1, 1)
    pts = [(i * step, height - 2 - (v / top) * (height - 4)) for i, v in enumerate(values)]
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
    area = f"0,{height} {line} {pts[-1][0]:.1f},{height}"
    return Markup(
        f'<svg class="spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}"'
        f' role="img" aria-label="{escape(label)}">'
        f'<polygon points="{area}" fill="#c7d2fe" opacity="0.6"/>'
        f'<polyline points="{line}" fill="none" stroke="#4f46e5" stroke-width="1.6"/>'
        "</svg>"
    )


@dataclass(frozen=True, slots=True)
class Bar:
    """One bar of a funnel: a label, a count and a test id for its number."""

    label: str
    value: int
    testid: str


def funnel(bars: Sequence[Bar], width: int = 560) -> Markup:
    """Horizontal bars, each with its count and its share of the first bar."""
    if not bars:
        return Markup("")
    first = bars[0].value or 1
    row_h, value_w = 46, 110
    height = row_h * len(bars)
    parts = [
        f'<svg class="funnel" width="100%" viewBox="0 0 {width} {height}" role="img"'
        ' aria-label="funnel">'
    ]
    for i, bar in enumerate(bars):
        y = i * row_h
        share = bar.value / first
        w = max((width - value_w) * min(share, 1.0), 2)
        parts.append(
            f'<text x="0" y="{y + 13}" class="fl">{escape(_clip(bar.label, 80))}</text>'
            f'<rect x="0" y="{y + 19}" width="{width - value_w:.1f}" height="18" rx="4"'
            ' fill="#f1f5f9"/>'
            f'<rect x="0" y="{y + 19}" width="{w:.1f}" height="18" rx="4" fill="#6366f1"'
            f' opacity="{0.95 - 0.1 * min(i, 5):.2f}"/>'
            f'<text x="{width - value_w + 10:.1f}" y="{y + 33}" class="fv">'
            f'<tspan data-testid="{escape(bar.testid)}">{bar.value:,}</tspan>'
            f'<tspan class="fs"> {share:.0%}</tspan></text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


@dataclass(frozen=True, slots=True)
class NodeCounts:
    """The live numbers shown under a step of the graph (None: not known)."""

    reached: int | None = None
    waiting: int = 0
    sent: int = 0
    suppressed: int = 0


def journey_graph(journey: ir.JourneyIR, counts: Mapping[str, NodeCounts], entries: int) -> Markup:
    """The journey's state machine laid out in layers (no Graphviz), each step with
    its live counts; the entry boxes show the journey's entries."""
    drawing = draw(journey, prefix="g")
    node_of = {f"gn{i}": node_id for i, node_id in enumerate(journey.nodes)}
    boxes = {b.key: b for b in drawing.boxes if b.shape != "note"}
    places = layered_layout(drawing)

    def stats(box: Box) -> list[tuple[str, str, str]]:
        if box.shape == "entry":
            return [("entries", f"{entries:,}", "entered")]
        node_id = node_of.get(box.key)
        c = counts.get(node_id) if node_id else None
        if c is None:
            return []
        out = []
        if c.reached is not None:
            out.append(("reached", f"{c.reached:,}", "reached"))
        if c.waiting:
            out.append(("waiting", f"{c.waiting:,}", "waiting"))
        if c.sent:
            out.append(("sent", f"{c.sent:,}", "sent"))
        if c.suppressed:
            out.append(("suppressed", f"{c.suppressed:,}", "suppressed"))
        return out

    size: dict[str, tuple[float, float]] = {}
    for key, box in boxes.items():
        lines = [_clip(t) for t in box.lines]
        stat_text = "  ".join(f"{v} {w}" for _, v, w in stats(box))
        chars = max([len(t) for t in lines] + [len(stat_text)])
        n = len(lines) + (1 if stat_text else 0)
        size[key] = (max(chars * CHAR_W + 2 * BOX_PAD, 96), n * LINE_H + 2 * BOX_PAD - 4)

    rows: dict[int, list[str]] = {}
    for key, p in sorted(places.items(), key=lambda kv: (kv[1].layer, kv[1].order)):
        rows.setdefault(p.layer, []).append(key)
    row_w = {i: sum(size[k][0] for k in ks) + GAP_X * (len(ks) - 1) for i, ks in rows.items()}
    row_h = {i: max(size[k][1] for k in ks) for i, ks in rows.items()}
    width = max(row_w.values(), default=200) + 40
    pos: dict[str, tuple[float, float]] = {}
    y = 20.0
    for i in sorted(rows):
        x = (width - row_w[i]) / 2
        for k in rows[i]:
            pos[k] = (x, y)
            x += size[k][0] + GAP_X
        y += row_h[i] + GAP_Y
    height = y - GAP_Y + 20

    out = [
        f'<svg class="graph" viewBox="0 0 {width:.0f} {height:.0f}" width="{width:.0f}"'
        f' role="img" aria-label="{escape(journey.id)} graph">',
        '<defs><marker id="arr" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7"'
        ' markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z"'
        ' fill="#94a3b8"/></marker></defs>',
    ]
    for a in drawing.arrows:
        if a.src not in pos or a.dst not in pos:
            continue
        (sx, sy), (sw, sh) = pos[a.src], size[a.src]
        (dx, dy), (dw, _) = pos[a.dst], size[a.dst]
        x1, y1, x2, y2 = sx + sw / 2, sy + sh, dx + dw / 2, dy
        if y2 <= y1:  # an arrow back up (never from lowering): go round the side
            y2 = dy
        mid = (y1 + y2) / 2
        out.append(
            f'<path d="M{x1:.1f},{y1:.1f} C{x1:.1f},{mid:.1f} {x2:.1f},{mid:.1f}'
            f' {x2:.1f},{y2 - 2:.1f}" fill="none" stroke="#94a3b8" stroke-width="1.4"'
            ' marker-end="url(#arr)"/>'
        )
        if a.label:
            lx, ly = (x1 + x2) / 2, mid
            text = escape(_clip(a.label, 26))
            tw = len(_clip(a.label, 26)) * 5.8 + 10
            out.append(
                f'<rect x="{lx - tw / 2:.1f}" y="{ly - 9:.1f}" width="{tw:.1f}" height="16"'
                f' rx="8" fill="#ffffff" stroke="#e2e8f0"/>'
                f'<text x="{lx:.1f}" y="{ly + 3:.1f}" class="el">{text}</text>'
            )
    for key, box in boxes.items():
        x, y0 = pos[key]
        w, h = size[key]
        fill, stroke = _STYLE.get(box.shape, _STYLE["action"])
        rx = 18 if box.shape in ("entry", "end", "exit") else 6
        node_id = node_of.get(key, key)
        out.append(
            f'<g class="node {box.shape}" data-node="{escape(node_id)}">'
            f'<rect x="{x:.1f}" y="{y0:.1f}" width="{w:.1f}" height="{h:.1f}" rx="{rx}"'
            f' fill="{fill}" stroke="{stroke}" stroke-width="1.4"/>'
        )
        ty = y0 + BOX_PAD + 8
        for j, line in enumerate(box.lines):
            cls = "nt" if j == 0 else "ns"
            out.append(
                f'<text x="{x + w / 2:.1f}" y="{ty:.1f}" class="{cls}">{escape(_clip(line))}</text>'
            )
            ty += LINE_H
        spans = [
            f'<tspan class="c-{name}" data-testid="node-{escape(node_id)}-{name}">{value}</tspan>'
            f"<tspan> {word}</tspan>"
            for name, value, word in stats(box)
        ]
        if spans:
            out.append(
                f'<text x="{x + w / 2:.1f}" y="{ty:.1f}" class="nc">'
                + "<tspan>  </tspan>".join(spans)
                + "</text>"
            )
        out.append("</g>")
    out.append("</svg>")
    return Markup("".join(out))
