"""Drawing journeys: Mermaid and Graphviz DOT text, and SVG through Graphviz.

Both text formats are rendered from one small drawing model (``Drawing``) built
from the IR, so that a Mermaid chart and a DOT graph of a journey always show the
same boxes and arrows.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

from journeyc.compile import ir
from journeyc.lang.builtins import SPECIAL_NAMES
from journeyc.lang.literals import format_duration, quote_string

GRAPHVIZ_HINT = (
    "Graphviz's `dot` program was not found on PATH: install Graphviz "
    "(`apt-get install graphviz`, `brew install graphviz`, or https://graphviz.org/download/), "
    "or draw with `--format mermaid` or `--format dot`"
)

# Inline message bodies can be long; a box shows their start.
INLINE_WIDTH = 40


class GraphvizNotFoundError(RuntimeError):
    """The Graphviz ``dot`` program is not installed (or not on PATH)."""


class GraphvizError(RuntimeError):
    """Graphviz ran and failed."""


# ---------------------------------------------------------------- expressions as text

_COMPARISONS = ("==", "!=", "<", "<=", ">", ">=", "in", "not in")
_PREC: dict[str, int] = {
    "or": 1,
    "and": 2,
    "not": 3,
    **dict.fromkeys(_COMPARISONS, 4),
    "between": 4,
    "+": 5,
    "-": 5,
    "*": 6,
    "/": 6,
    "neg": 7,
}
_POSTFIX = 8
_ATOM = 9


def expr_to_text(e: ir.Expr) -> str:
    """An IR expression written back in the journey language, parenthesized only
    where precedence needs it: ``event.cart_value >= 50 and not push_enabled``."""
    return _render(e)[0]


def _paren(e: ir.Expr, min_prec: int) -> str:
    text, prec = _render(e)
    return f"({text})" if prec < min_prec else text


def _render(e: ir.Expr) -> tuple[str, int]:
    if isinstance(e, ir.Lit):
        return _literal(e.value), _ATOM
    if isinstance(e, ir.Dur):
        return format_duration(e.seconds), _ATOM
    if isinstance(e, ir.Attr):
        if not e.path:
            return "user", _ATOM
        path = ".".join(e.path)
        # `item` too: inside a condition on list items a bare `item` is the item.
        special = e.path[0] in SPECIAL_NAMES or e.path[0] == "item"
        return (f"user.{path}" if special else path), _ATOM
    if isinstance(e, ir.EventRef):
        return "".join(["event", *(f".{p}" for p in e.path)]), _ATOM
    if isinstance(e, ir.Now):
        return "now", _ATOM
    if isinstance(e, ir.Get):
        return f"{_paren(e.obj, _POSTFIX)}.{e.name}", _POSTFIX
    if isinstance(e, ir.ListE):
        return "[" + ", ".join(expr_to_text(i) for i in e.items) + "]", _ATOM
    if isinstance(e, ir.Call):
        return f"{e.func}(" + ", ".join(expr_to_text(a) for a in e.args) + ")", _ATOM
    if isinstance(e, ir.ItemRef):
        return "".join(["item", *(f".{p}" for p in e.path)]), _ATOM
    if isinstance(e, ir.Each):
        return f"{e.func}({expr_to_text(e.items)}, {expr_to_text(e.cond)})", _ATOM
    if isinstance(e, ir.Agg):
        inner = ".".join([e.event, *e.prop])
        if e.item is not None:
            inner += f", {expr_to_text(e.item)}"
        if e.where is not None:
            inner += f" where {expr_to_text(e.where)}"
        if e.within is not None:
            inner += f" within {format_duration(e.within)}"
        return f"{e.func}({inner})", _ATOM
    if isinstance(e, ir.Seg):
        return f"segment {e.name}", _ATOM
    return _render_op(e)


def _render_op(e: ir.Op) -> tuple[str, int]:
    prec = _PREC[e.op]
    if e.op == "not":
        return f"not {_paren(e.args[0], prec)}", prec
    if e.op == "neg":
        return f"-{_paren(e.args[0], prec)}", prec
    if e.op == "between":
        v, lo, hi = (_paren(a, prec + 1) for a in e.args)
        return f"{v} between {lo} and {hi}", prec
    left, right = e.args
    # Comparisons do not chain; the other operators group to the left.
    left_min = prec + 1 if e.op in _COMPARISONS else prec
    return f"{_paren(left, left_min)} {e.op} {_paren(right, prec + 1)}", prec


def _literal(value: bool | int | float | str | None) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return quote_string(value)
    return repr(value)


def trigger_to_text(t: ir.EventTrigger | ir.SegmentTrigger | ir.ScheduleTrigger) -> str:
    """A trigger as its clause reads: ``when cart_abandoned where event.cart_value >= 50``."""
    if isinstance(t, ir.EventTrigger):
        return _match_text(f"when {t.event}", t.where)
    if isinstance(t, ir.SegmentTrigger):
        return f"when {t.edge} {t.segment}"
    if t.interval is not None:
        schedule = format_duration(t.interval)
    else:
        schedule = f"{t.day} at {t.hour or 0:02d}:{t.minute or 0:02d}"
    return f"every {schedule} for {t.segment or 'everyone'}"


def _match_text(head: str, where: ir.Expr | None) -> str:
    return head if where is None else f"{head} where {expr_to_text(where)}"


# ---------------------------------------------------------------- the drawing model

Shape: TypeAlias = Literal[
    "entry", "wait", "branch", "split", "send", "action", "exit", "end", "note"
]


@dataclass(frozen=True)
class Box:
    """A box of a drawing: a key unique in the whole drawing, a shape, text lines."""

    key: str
    shape: Shape
    lines: tuple[str, ...]


@dataclass(frozen=True)
class Arrow:
    """An arrow between two boxes, with an optional label."""

    src: str
    dst: str
    label: str | None = None


@dataclass
class Drawing:
    """One journey's boxes and arrows, ready to render."""

    journey: ir.JourneyIR
    boxes: list[Box] = field(default_factory=list)
    arrows: list[Arrow] = field(default_factory=list)

    @property
    def title(self) -> str:
        """The journey's id, with its title when it has one."""
        j = self.journey
        return f"{j.id}: {j.title}" if j.title else j.id


def draw(journey: ir.JourneyIR, prefix: str = "j0_") -> Drawing:
    """The drawing of one journey; ``prefix`` keeps keys apart between journeys."""
    d = Drawing(journey)
    keys = {node_id: f"{prefix}n{i}" for i, node_id in enumerate(journey.nodes)}
    end = f"{prefix}end"
    used_end = False

    def to(node_id: str | None) -> str:
        nonlocal used_end
        if node_id is None:
            used_end = True
            return end
        return keys[node_id]

    for i, t in enumerate(journey.triggers):
        d.boxes.append(Box(f"{prefix}t{i}", "entry", (trigger_to_text(t),)))
        d.arrows.append(Arrow(f"{prefix}t{i}", to(journey.start)))
    for node_id, node in journey.nodes.items():
        key = keys[node_id]
        shape, lines = _describe(node)
        if not node_id[0].isdigit():
            lines = (*lines, f"as {node_id}")
        d.boxes.append(Box(key, shape, lines))
        for label, target in _exits(node):
            d.arrows.append(Arrow(key, to(target), label))
    if used_end:
        d.boxes.append(Box(end, "end", ("completed",)))
    notes = _notes(journey)
    if notes:
        d.boxes.append(Box(f"{prefix}note", "note", tuple(notes)))
    return d


def _describe(node: ir.Node) -> tuple[Shape, tuple[str, ...]]:
    if isinstance(node, ir.WaitNode):
        return "wait", (f"wait {format_duration(node.seconds)}",)
    if isinstance(node, ir.WaitUntilNode):
        on = f" on {node.day}" if node.day else ""
        return "wait", (f"wait until {node.hour:02d}:{node.minute:02d}{on}",)
    if isinstance(node, ir.WaitForNode):
        head = _match_text(f"wait for {node.event}", node.where)
        return "wait", (head, f"up to {format_duration(node.timeout)}")
    if isinstance(node, ir.BranchNode):
        return "branch", ("if",)
    if isinstance(node, ir.SplitNode):
        return "split", ("split",)
    if isinstance(node, ir.SendNode):
        lines = [f"send {_targets_text(node.targets)}"]
        if node.args:
            lines.append("with " + _args_text(node.args))
        return "send", tuple(lines)
    if isinstance(node, ir.SetNode):
        return "action", (f"set {node.attr} = {expr_to_text(node.value)}",)
    if isinstance(node, ir.UnsetNode):
        return "action", (f"unset {node.attr}",)
    if isinstance(node, ir.TrackNode):
        lines = [f"track {node.event}"]
        if node.args:
            lines.append("with " + _args_text(node.args))
        return "action", tuple(lines)
    return "exit", ("exit",)


def _exits(node: ir.Node) -> list[tuple[str | None, str | None]]:
    """The labelled ways out of a node (:func:`ir.successors`): (label, target id or
    None for completed)."""
    targets = ir.successors(node)
    labels: list[str | None]
    if isinstance(node, ir.WaitForNode):
        labels = [node.event, "timeout"]
    elif isinstance(node, ir.BranchNode):
        labels = [*(expr_to_text(c.cond) for c in node.cases), "else"]
    elif isinstance(node, ir.SplitNode):
        labels = [f"{a.name} {a.percent:g}%" for a in node.arms]
    else:
        labels = [None] * len(targets)  # one way on, or none (an exit)
    return list(zip(labels, targets, strict=True))


def _targets_text(targets: list[ir.SendTarget]) -> str:
    """``push or whatsapp → cart_reminder or email → cart_mail``."""
    groups: list[tuple[list[str], str]] = []
    for t in targets:
        if t.inline is not None:
            body = t.inline if len(t.inline) <= INLINE_WIDTH else t.inline[:INLINE_WIDTH] + "…"
            what = quote_string(body)
        else:
            what = t.message or "?"
        if groups and groups[-1][1] == what:
            groups[-1][0].append(t.channel)
        else:
            groups.append(([t.channel], what))
    return " or ".join(f"{' or '.join(chs)} → {what}" for chs, what in groups)


def _args_text(args: list[ir.WithArg]) -> str:
    return ", ".join(f"{a.name} = {expr_to_text(a.value)}" for a in args)


def _notes(j: ir.JourneyIR) -> list[str]:
    notes = [_match_text(f"exit when {x.event}", x.where) for x in j.exits]
    if j.goal is not None:
        goal = _match_text(f"goal {j.goal.event}", j.goal.where)
        if j.goal.within is not None:
            goal += f" within {format_duration(j.goal.within)}"
        notes.append(goal)
    if j.entry.mode == "always":
        notes.append("entry always")
    elif j.entry.mode == "once_per" and j.entry.per is not None:
        notes.append(f"entry once per {format_duration(j.entry.per)}")
    if j.quiet_hours is not None:
        q = j.quiet_hours
        skip = " skip" if q.skip else ""
        notes.append(f"quiet hours {_hhmm(q.start)}-{_hhmm(q.end)}{skip}")
    if j.cap is not None:
        notes.append(f"cap {j.cap.count} per {format_duration(j.cap.per)}")
    if j.holdout:
        notes.append(f"holdout {j.holdout:g}%")
    return notes


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


# ---------------------------------------------------------------- Mermaid

_MERMAID_SHAPES: dict[Shape, tuple[str, str]] = {
    "entry": ("([", "])"),
    "wait": ("(", ")"),
    "branch": ("{", "}"),
    "split": ("{{", "}}"),
    "send": ("[", "]"),
    "action": ("[[", "]]"),
    "exit": ("(((", ")))"),
    "end": ("((", "))"),
    "note": (">", "]"),
}

# Mermaid entity codes for every character that could end a label or be read as
# markup; `#` first, since the codes themselves start with it.
_MERMAID_ESCAPES = (
    ("#", "#35;"),
    ('"', "#quot;"),
    ("&", "#38;"),
    ("<", "#lt;"),
    (">", "#gt;"),
    ("[", "#91;"),
    ("]", "#93;"),
    ("{", "#123;"),
    ("}", "#125;"),
    ("|", "#124;"),
    ("`", "#96;"),
)


def mermaid_escape(text: str) -> str:
    """Text made safe inside a quoted Mermaid label."""
    for char, code in _MERMAID_ESCAPES:
        text = text.replace(char, code)
    return text.replace("\n", "<br/>")


def _mermaid_label(lines: tuple[str, ...] | list[str]) -> str:
    return '"' + "<br/>".join(mermaid_escape(line) for line in lines) + '"'


def to_mermaid(journeys: list[ir.JourneyIR]) -> str:
    """A Mermaid ``flowchart TD`` of the journeys, one subgraph each when several."""
    out = ["flowchart TD"]
    several = len(journeys) > 1
    for i, j in enumerate(journeys):
        d = draw(j, f"j{i}_")
        indent = "    " if several else "  "
        if several:
            out.append(f"  subgraph j{i}[{_mermaid_label([d.title])}]")
        for b in d.boxes:
            open_, close = _MERMAID_SHAPES[b.shape]
            out.append(f"{indent}{b.key}{open_}{_mermaid_label(b.lines)}{close}")
        for a in d.arrows:
            label = f"|{_mermaid_label([a.label])}|" if a.label is not None else ""
            out.append(f"{indent}{a.src} -->{label} {a.dst}")
        if several:
            out.append("  end")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- Graphviz

_DOT_SHAPES: dict[Shape, str] = {
    "entry": 'shape=box, style="rounded,filled", fillcolor="#dbeafe"',
    "wait": 'shape=box, style="rounded"',
    "branch": "shape=diamond",
    "split": "shape=hexagon",
    "send": 'shape=box, style="filled", fillcolor="#fef3c7"',
    "action": "shape=box",
    "exit": 'shape=octagon, style="filled", fillcolor="#fee2e2"',
    "end": 'shape=doublecircle, style="filled", fillcolor="#dcfce7"',
    "note": 'shape=note, style="filled", fillcolor="#f3f4f6"',
}


def dot_quote(text: str) -> str:
    """A DOT double-quoted string; line breaks become DOT's centered ``\\n``."""
    body = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + body.replace("\r", "").replace("\n", "\\n") + '"'


def to_dot(journeys: list[ir.JourneyIR]) -> str:
    """A Graphviz DOT digraph of the journeys, one cluster each when several."""
    out = [
        "digraph journeys {",
        "  rankdir=TB;",
        '  graph [fontname="Helvetica"];',
        '  node [fontname="Helvetica", fontsize=11];',
        '  edge [fontname="Helvetica", fontsize=10];',
    ]
    several = len(journeys) > 1
    for i, j in enumerate(journeys):
        d = draw(j, f"j{i}_")
        indent = "    " if several else "  "
        if several:
            out.append(f"  subgraph cluster_{i} {{")
        out.append(f"{indent}label={dot_quote(d.title)};")
        out.append(f"{indent}labelloc=t;")
        for b in d.boxes:
            label = dot_quote("\n".join(b.lines))
            out.append(f"{indent}{b.key} [label={label}, {_DOT_SHAPES[b.shape]}];")
        for a in d.arrows:
            attrs = f" [label={dot_quote(a.label)}]" if a.label is not None else ""
            out.append(f"{indent}{a.src} -> {a.dst}{attrs};")
        if several:
            out.append("  }")
    out.append("}")
    return "\n".join(out) + "\n"


def to_svg(dot: str) -> bytes:
    """Render DOT text to SVG with the Graphviz ``dot`` program.

    Raises :class:`GraphvizNotFoundError` when Graphviz is not installed and
    :class:`GraphvizError` when it fails.
    """
    exe = shutil.which("dot")
    if exe is None:
        raise GraphvizNotFoundError(GRAPHVIZ_HINT)
    proc = subprocess.run(
        [exe, "-Tsvg"], input=dot.encode("utf-8"), capture_output=True, check=False
    )
    if proc.returncode != 0:
        detail = proc.stderr.decode("utf-8", errors="replace").strip()
        raise GraphvizError(f"Graphviz failed: {detail}")
    return proc.stdout
