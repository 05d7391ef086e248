"""Drawing journeys: expressions back to text, Mermaid, DOT and SVG."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from journeyc.compile import ir
from journeyc.compile.graph import (
    GRAPHVIZ_HINT,
    GraphvizError,
    GraphvizNotFoundError,
    dot_quote,
    draw,
    expr_to_text,
    mermaid_escape,
    to_dot,
    to_mermaid,
    to_svg,
    trigger_to_text,
)
from journeyc.compile.lower import lower_expr, lower_project
from journeyc.lang.parser import parse_source
from journeyc.lang.project import Project

SAMPLE = """\
journey cart_recovery "Cart \\"abandonment\\" recovery"
  when cart_abandoned where event.cart_value >= 50
  when entering vip
  every monday at 09:00 for everyone
  entry once per 7d
  exit when order_completed where event.total > 0
  goal order_completed within 3d
  quiet hours 22:00-08:00
  cap 2 per 1d
  holdout 10%

  wait 30m as first_nudge
  send push or whatsapp cart_reminder or email cart_mail as reminder
  wait for cart_viewed up to 2d
    on cart_viewed
      send push "Still deciding? Your {{ event.item_count }} [items] are saved."
    on timeout
      if lifecycle in ["new", "dormant"]
        send email cart_mail with coupon = "COMEBACK10", percent = 10
      elif score > 3
        set stage = 2
      else
        exit
  split
    50% as control
      track control_seen
    50%
      unset stage
  wait until 10:00 on monday

segment vip = true
"""


def project_of(text: str) -> ir.ProjectIR:
    result = parse_source(text, "sample.journey")
    assert result.tree is not None, result.diagnostics
    return lower_project(Project([result]))


@pytest.fixture
def journey() -> ir.JourneyIR:
    return project_of(SAMPLE).journeys["cart_recovery"]


def parse_expr(text: str) -> ir.Expr:
    tree = parse_source(f"segment s = {text}\n").tree
    assert tree is not None, text
    return lower_expr(tree.segments[0].expr)


# ---------------------------------------------------------------- expressions as text


@pytest.mark.parametrize(
    "text",
    [
        "event.cart_value >= 50",
        "not push_enabled",
        "not (a and b)",
        "a or b and c",
        "(a or b) and c",
        "a and (b or c)",
        "a - (b - c)",
        "a - b - c",
        "(a + b) * c",
        "-(a + b)",
        "-a * b",
        "a between 1 and 2 + 3",
        'lifecycle not in ["new", null, true, 1.5]',
        "user",
        "user.event",
        "event",
        "event.product.brand",
        "now - 2h",
        "days_since(last(order_completed).at) >= 180",
        "count(order_completed where event.amount > 5 within 7d) == 0",
        "sum(order_completed.amount within 365d)",
        "segment vip and exists(email)",
        'contains(lower(name), "a\\"b")',
        "(a == b) == c",
    ],
)
def test_expr_to_text_round_trips(text: str) -> None:
    e = parse_expr(text)
    rendered = expr_to_text(e)
    assert parse_expr(rendered) == e
    assert rendered == text


def test_trigger_text() -> None:
    j = project_of(SAMPLE).journeys["cart_recovery"]
    assert [trigger_to_text(t) for t in j.triggers] == [
        "when cart_abandoned where event.cart_value >= 50",
        "when entering vip",
        "every monday at 09:00 for everyone",
    ]
    assert trigger_to_text(ir.ScheduleTrigger(interval=21600, segment="vip")) == "every 6h for vip"


# ---------------------------------------------------------------- the drawing


def test_drawing_boxes_and_arrows(journey: ir.JourneyIR) -> None:
    d = draw(journey, "x_")
    texts = {b.key: "\n".join(b.lines) for b in d.boxes}
    assert texts["x_t0"] == "when cart_abandoned where event.cart_value >= 50"
    assert texts["x_n0"] == "wait 30m\nas first_nudge"
    assert texts["x_n1"] == (
        "send push or whatsapp → cart_reminder or email → cart_mail\nas reminder"
    )
    assert texts["x_n2"] == "wait for cart_viewed\nup to 2d"
    assert texts["x_n3"].startswith('send push → "Still deciding?')
    assert texts["x_n5"] == 'send email → cart_mail\nwith coupon = "COMEBACK10", percent = 10'
    assert texts["x_end"] == "completed"
    assert texts["x_note"].splitlines() == [
        "exit when order_completed where event.total > 0",
        "goal order_completed within 3d",
        "entry once per 7d",
        "quiet hours 22:00-08:00",
        "cap 2 per 1d",
        "holdout 10%",
    ]
    keys = {node_id: f"x_n{i}" for i, node_id in enumerate(journey.nodes)}
    arrows = {(a.src, a.dst, a.label) for a in d.arrows}
    wait_for, branch, split = keys["3"], keys["3.2.1"], keys["4"]
    assert (keys["3"], keys["3.1.1"], "cart_viewed") in arrows
    assert (wait_for, branch, "timeout") in arrows
    assert (branch, keys["3.2.1.1.1"], 'lifecycle in ["new", "dormant"]') in arrows
    assert (branch, keys["3.2.1.2.1"], "score > 3") in arrows
    assert (branch, keys["3.2.1.3.1"], "else") in arrows
    assert (split, keys["4.1.1"], "control 50%") in arrows
    assert (split, keys["4.2.1"], "B 50%") in arrows
    assert (keys["3.2.1.1.1"], split, None) in arrows
    assert (keys["5"], "x_end", None) in arrows
    # Every trigger leads to the first step; an exit leads nowhere.
    assert {(f"x_t{i}", keys["first_nudge"], None) for i in range(3)} <= arrows
    assert not [a for a in d.arrows if a.src == keys["3.2.1.3.1"]]
    assert {b.shape for b in d.boxes} == {
        "entry",
        "wait",
        "send",
        "branch",
        "split",
        "action",
        "exit",
        "end",
        "note",
    }


def test_missing_branches_go_straight_on() -> None:
    j = project_of("when go\nwait for x up to 1h\nif a\n  exit\n").journeys["sample"]
    arrows = {(a.src, a.dst, a.label) for a in draw(j, "").arrows}
    assert ("n0", "n1", "x") in arrows
    assert ("n0", "n1", "timeout") in arrows
    assert ("n1", "end", "else") in arrows
    # No goal, exit or policy: no note.
    assert "note" not in {b.key for b in draw(j, "").boxes}


# ---------------------------------------------------------------- Mermaid


def test_mermaid(journey: ir.JourneyIR) -> None:
    text = to_mermaid([journey])
    lines = text.splitlines()
    assert lines[0] == "flowchart TD"
    assert "subgraph" not in text
    assert '  j0_n0("wait 30m<br/>as first_nudge")' in lines
    assert '  j0_n2 -->|"cart_viewed"| j0_n3' in lines
    assert '  j0_n2 -->|"timeout"| j0_n4' in lines
    assert '  j0_n4 -->|"lifecycle in #91;#quot;new#quot;, #quot;dormant#quot;#93;"| j0_n5' in lines
    assert '  j0_n4 -->|"else"| j0_n7' in lines
    assert any(line.startswith("  j0_n4{") for line in lines)
    assert any(line.startswith('  j0_n8{{"split') for line in lines)
    assert '  j0_end(("completed"))' in lines
    assert "#123;#123; event.item_count" in text
    # No raw character that would end a label or open markup survives inside labels.
    for label in re.findall(r'"([^"]*)"', text):
        assert not set(label.replace("<br/>", "")) & set("[]{}|<>`"), label


def test_mermaid_several_journeys_get_subgraphs() -> None:
    p = project_of(SAMPLE + 'journey other "O"\n  when go\n  exit\n')
    text = to_mermaid(list(p.journeys.values()))
    assert '  subgraph j0["cart_recovery: Cart #quot;abandonment#quot; recovery"]' in text
    assert '  subgraph j1["other: O"]' in text
    assert text.count("\n  end\n") == 2
    assert '    j1_t0(["when go"])' in text
    assert "    j1_t0 --> j1_n0" in text


def test_mermaid_escape() -> None:
    assert mermaid_escape('a "b" [c] {{ d }} <e> | #f & `g`') == (
        "a #quot;b#quot; #91;c#93; #123;#123; d #125;#125; #lt;e#gt; #124; #35;f #38; #96;g#96;"
    )


# ---------------------------------------------------------------- DOT and SVG


def test_dot(journey: ir.JourneyIR) -> None:
    text = to_dot([journey])
    assert text.startswith("digraph journeys {\n")
    assert text.rstrip().endswith("}")
    assert 'label="cart_recovery: Cart \\"abandonment\\" recovery";' in text
    assert 'j0_n0 [label="wait 30m\\nas first_nudge", shape=box' in text
    assert 'j0_n2 -> j0_n3 [label="cart_viewed"];' in text
    assert 'j0_n2 -> j0_n4 [label="timeout"];' in text
    assert 'j0_n4 -> j0_n5 [label="lifecycle in [\\"new\\", \\"dormant\\"]"];' in text
    assert 'j0_n8 -> j0_n9 [label="control 50%"];' in text
    assert "shape=diamond" in text
    assert "shape=note" in text
    assert '"Still deciding? Your {{ event.item_count…\\"' in text
    assert "subgraph" not in text


def test_dot_quote() -> None:
    assert dot_quote('say "hi"\\n\nnext') == '"say \\"hi\\"\\\\n\\nnext"'


def test_dot_several_journeys_get_clusters() -> None:
    p = project_of(SAMPLE + "journey other\n  when go\n  exit\n")
    text = to_dot(list(p.journeys.values()))
    assert "subgraph cluster_0 {" in text
    assert "subgraph cluster_1 {" in text
    assert '    label="other";' in text


needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz not installed")


@needs_dot
def test_svg_with_graphviz(journey: ir.JourneyIR) -> None:
    svg = to_svg(to_dot([journey]))
    assert b"<svg" in svg
    assert b"first_nudge" in svg
    assert b"cart_viewed" in svg


@needs_dot
def test_svg_of_every_escaped_label_renders() -> None:
    p = project_of('when go\nsend push "a \\\\ b \\"q\\" {x} <y> |z|"\n')
    svg = to_svg(to_dot(list(p.journeys.values())))
    assert b"&lt;y&gt;" in svg


@needs_dot
def test_graphviz_failure_is_reported() -> None:
    with pytest.raises(GraphvizError, match="Graphviz failed"):
        to_svg("digraph { this is not dot")


def test_svg_without_graphviz(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(GraphvizNotFoundError) as info:
        to_svg("digraph {}")
    assert str(info.value) == GRAPHVIZ_HINT
    assert "install Graphviz" in GRAPHVIZ_HINT
