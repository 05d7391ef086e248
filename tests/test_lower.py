"""Lowering the AST to the IR: node ids and wiring, sends, clauses, messages, segments,
versions — and fixture files whose expected IR is reviewed by hand."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from journeyc.compile import ir
from journeyc.compile.lower import LowerError, lower_expr, lower_project
from journeyc.lang import ast
from journeyc.lang.checker import check_project
from journeyc.lang.parser import parse_source
from journeyc.lang.project import Project, load_project

FIXTURES = Path(__file__).parent / "fixtures" / "compile"


def compile_files(tmp_path: Path, files: dict[str, str]) -> ir.ProjectIR:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    project = load_project([tmp_path])
    assert not project.parse_diagnostics, project.parse_diagnostics
    return lower_project(project)


def compile_text(text: str, path: str = "j.journey") -> ir.ProjectIR:
    result = parse_source(text, path)
    assert result.tree is not None, result.diagnostics
    return lower_project(Project([result]))


def journey_of(text: str) -> ir.JourneyIR:
    (journey,) = compile_text(text).journeys.values()
    return journey


def expr(text: str) -> ir.Expr:
    tree = parse_source(f"segment s = {text}\n").tree
    assert tree is not None
    (seg,) = tree.segments
    return lower_expr(seg.expr)


# ---------------------------------------------------------------- fixtures


def fixture_names() -> list[str]:
    return sorted(p.stem for p in FIXTURES.glob("*.journey"))


@pytest.mark.parametrize("name", fixture_names())
def test_fixture(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(FIXTURES)
    project = load_project([f"{name}.journey"])
    assert not [d for d in check_project(project) if d.is_error]
    got = lower_project(project).model_dump(mode="json")
    expected_path = FIXTURES / f"{name}.ir.json"
    if os.environ.get("JOURNEYC_UPDATE_FIXTURES") == "1":
        expected_path.write_text(
            json.dumps(got, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
    expected = json.loads(expected_path.read_text(encoding="utf-8"))
    assert got == expected
    # The JSON is the engine's input: it must load back to the same IR.
    assert ir.ProjectIR.model_validate(expected).model_dump(mode="json") == expected


def test_every_fixture_has_expected_ir() -> None:
    assert len(fixture_names()) >= 3
    for name in fixture_names():
        assert (FIXTURES / f"{name}.ir.json").is_file(), name


# ---------------------------------------------------------------- expressions


def test_names_and_paths() -> None:
    assert expr("push_enabled") == ir.Attr(path=["push_enabled"])
    assert expr("user.a.b") == ir.Attr(path=["a", "b"])
    assert expr("user") == ir.Attr(path=[])
    assert expr("address.city") == ir.Attr(path=["address", "city"])
    assert expr("event.a.b") == ir.EventRef(path=["a", "b"])
    assert expr("event") == ir.EventRef(path=[])
    assert expr("now") == ir.Now()
    assert expr("now.x") == ir.Get(obj=ir.Now(), name="x")
    last = ir.Agg(func="last", event="order_completed")
    assert expr("last(order_completed).at") == ir.Get(obj=last, name="at")
    assert expr("last(order_completed).product.brand") == ir.Get(
        obj=ir.Get(obj=last, name="product"), name="brand"
    )


def test_literals_and_operators() -> None:
    assert expr('[1, 2.5, "x", true, null]') == ir.ListE(
        items=[
            ir.Lit(value=1),
            ir.Lit(value=2.5),
            ir.Lit(value="x"),
            ir.Lit(value=True),
            ir.Lit(value=None),
        ]
    )
    assert expr("1h30m") == ir.Dur(seconds=5400)
    assert expr("not a") == ir.Op(op="not", args=[ir.Attr(path=["a"])])
    assert expr("-a") == ir.Op(op="neg", args=[ir.Attr(path=["a"])])
    assert expr("a between 1 and 2") == ir.Op(
        op="between", args=[ir.Attr(path=["a"]), ir.Lit(value=1), ir.Lit(value=2)]
    )
    assert expr("a not in b") == ir.Op(op="not in", args=[ir.Attr(path=["a"]), ir.Attr(path=["b"])])
    a, b, c = (ir.Attr(path=[n]) for n in "abc")
    assert expr("a or b and c") == ir.Op(op="or", args=[a, ir.Op(op="and", args=[b, c])])
    assert expr("a - b - c") == ir.Op(op="-", args=[ir.Op(op="-", args=[a, b]), c])


def test_calls_aggregates_and_segments() -> None:
    assert expr("days_since(x)") == ir.Call(func="days_since", args=[ir.Attr(path=["x"])])
    assert expr("sum(order_completed.amount where event.amount > 5 within 7d)") == ir.Agg(
        func="sum",
        event="order_completed",
        prop=["amount"],
        where=ir.Op(op=">", args=[ir.EventRef(path=["amount"]), ir.Lit(value=5)]),
        within=7 * 86400,
    )
    assert expr('count("Order Completed")') == ir.Agg(func="count", event="order_completed")
    assert expr("segment vip") == ir.Seg(name="vip")


def test_lower_expr_from_ast_directly() -> None:
    e = ast.Binary(op="+", left=ast.Number(value=1, raw="1"), right=ast.Null())
    assert lower_expr(e) == ir.Op(op="+", args=[ir.Lit(value=1), ir.Lit(value=None)])


# ---------------------------------------------------------------- node ids and wiring

NESTED = """\
when go
wait 1m
if a
  send push "a1"
  send push "a2"
elif b
  split
    50%
      send push "s1"
    50% as treat
      wait for clicked up to 1d as w
        on clicked
          set x = 1
        on timeout
          exit
      unset x
else
  track done
send push "last" as final
"""


def test_positional_and_named_ids() -> None:
    j = journey_of(NESTED)
    assert list(j.nodes) == [
        "1",
        "2",
        "2.1.1",
        "2.1.2",
        "2.2.1",
        "2.2.1.1.1",
        "w",
        "2.2.1.2.1.1.1",
        "2.2.1.2.1.2.1",
        "2.2.1.2.2",
        "2.3.1",
        "final",
    ]
    assert j.start == "1"


def test_ids_inside_a_named_step_stay_positional() -> None:
    # Positions never depend on names: renaming a parent must not rename its children.
    j = journey_of(NESTED)
    assert "2.2.1.2.1.1.1" in j.nodes
    assert "2.2.1.2.1.2.1" in j.nodes


def test_next_wiring_through_nested_blocks() -> None:
    n = journey_of(NESTED).nodes
    assert n["1"].next == "2"
    branch = n["2"]
    assert isinstance(branch, ir.BranchNode)
    assert branch.next == "final"
    assert [c.then for c in branch.cases] == ["2.1.1", "2.2.1"]
    assert branch.orelse == "2.3.1"
    assert n["2.1.1"].next == "2.1.2"
    assert n["2.1.2"].next == "final"
    split = n["2.2.1"]
    assert isinstance(split, ir.SplitNode)
    assert split.next == "final"
    assert [(a.name, a.percent, a.then) for a in split.arms] == [
        ("A", 50.0, "2.2.1.1.1"),
        ("treat", 50.0, "w"),
    ]
    assert n["2.2.1.1.1"].next == "final"
    wait_for = n["w"]
    assert isinstance(wait_for, ir.WaitForNode)
    assert (wait_for.on_event, wait_for.on_timeout) == ("2.2.1.2.1.1.1", "2.2.1.2.1.2.1")
    assert wait_for.next == "2.2.1.2.2"
    assert wait_for.timeout == 86400
    assert n["2.2.1.2.1.1.1"].next == "2.2.1.2.2"
    assert isinstance(n["2.2.1.2.1.2.1"], ir.ExitNode)
    assert n["2.2.1.2.1.2.1"].next is None
    assert n["2.2.1.2.2"].next == "final"
    assert n["2.3.1"].next == "final"
    assert n["final"].next is None


def test_branch_without_else_and_wait_for_without_branches() -> None:
    j = journey_of("when go\nif a\n  exit\nwait for x up to 1h\n")
    branch = j.nodes["1"]
    assert isinstance(branch, ir.BranchNode)
    assert branch.orelse is None
    assert branch.next == "2"
    wait_for = j.nodes["2"]
    assert isinstance(wait_for, ir.WaitForNode)
    assert (wait_for.on_event, wait_for.on_timeout, wait_for.next) == (None, None, None)


def test_only_a_timeout_branch() -> None:
    j = journey_of("when go\nwait for x up to 1h\n  on timeout\n    exit\nwait 1m\n")
    wait_for = j.nodes["1"]
    assert isinstance(wait_for, ir.WaitForNode)
    assert (wait_for.on_event, wait_for.on_timeout, wait_for.next) == (None, "1.1.1", "2")


def test_journey_without_steps_has_no_start() -> None:
    j = journey_of("journey empty\n  when go\n")
    assert j.start is None
    assert j.nodes == {}


def test_source_map_points_at_each_step() -> None:
    j = journey_of(NESTED)
    assert j.source_map["1"] == ir.SourcePos(file="j.journey", line=2, column=1)
    assert j.source_map["2.1.2"] == ir.SourcePos(file="j.journey", line=5, column=3)
    assert j.source_map["w"].line == 11
    assert set(j.source_map) == set(j.nodes)


def test_split_arm_letters() -> None:
    arms = "".join(f"  {p}%\n    exit\n" for p in (25, 25, 25, 25))
    split = journey_of(f"when go\nsplit\n{arms}").nodes["1"]
    assert isinstance(split, ir.SplitNode)
    assert [a.name for a in split.arms] == ["A", "B", "C", "D"]


# ---------------------------------------------------------------- steps


def test_send_targets_take_the_next_message() -> None:
    j = journey_of(
        "when go\n"
        "send push or email cart_reminder\n"
        "send push p or sms or email e\n"
        'send inapp or push "Hi {{ user.first_name }}"\n'
        'send email offer with coupon = "X", percent = 10 * 2\n'
    )
    first, second, third, fourth = j.nodes.values()
    assert isinstance(first, ir.SendNode)
    assert first.targets == [
        ir.SendTarget(channel="push", message="cart_reminder"),
        ir.SendTarget(channel="email", message="cart_reminder"),
    ]
    assert isinstance(second, ir.SendNode)
    assert [(t.channel, t.message) for t in second.targets] == [
        ("push", "p"),
        ("sms", "e"),
        ("email", "e"),
    ]
    assert isinstance(third, ir.SendNode)
    assert third.targets == [
        ir.SendTarget(channel="inapp", inline="Hi {{ user.first_name }}"),
        ir.SendTarget(channel="push", inline="Hi {{ user.first_name }}"),
    ]
    assert isinstance(fourth, ir.SendNode)
    assert fourth.args == [
        ir.WithArg(name="coupon", value=ir.Lit(value="X")),
        ir.WithArg(name="percent", value=ir.Op(op="*", args=[ir.Lit(value=10), ir.Lit(value=2)])),
    ]
    assert j.messages == ["cart_reminder", "e", "offer", "p"]


def test_other_steps() -> None:
    j = journey_of(
        "when go\n"
        "wait until 09:05 on weekday\n"
        "wait until 23:00\n"
        'set tier = "gold"\n'
        "unset tier\n"
        'track "Coupon Sent" with code = "X"\n'
        "exit\n"
    )
    nodes = list(j.nodes.values())
    assert nodes[0] == ir.WaitUntilNode(id="1", next="2", hour=9, minute=5, day="weekday")
    assert nodes[1] == ir.WaitUntilNode(id="2", next="3", hour=23, minute=0)
    assert nodes[2] == ir.SetNode(id="3", next="4", attr="tier", value=ir.Lit(value="gold"))
    assert nodes[3] == ir.UnsetNode(id="4", next="5", attr="tier")
    assert nodes[4] == ir.TrackNode(
        id="5",
        next="6",
        event="coupon_sent",
        args=[ir.WithArg(name="code", value=ir.Lit(value="X"))],
    )
    assert nodes[5] == ir.ExitNode(id="6", next=None)


# ---------------------------------------------------------------- clauses


def test_clauses() -> None:
    j = journey_of(
        'journey full "Full"\n'
        "  when a where event.x > 1\n"
        "  when entering vip\n"
        "  when leaving vip\n"
        "  every day at 10:00 for vip\n"
        "  every weekend at 08:15 for everyone\n"
        "  every 6h for everyone\n"
        "  entry once per 7d\n"
        "  exit when b\n"
        "  exit when c where event.y == 2\n"
        "  goal d where event.z within 3d\n"
        "  quiet hours 22:00-08:30 skip\n"
        "  cap 3 per 1w\n"
        "  holdout 12.5%\n"
        "  upgrade in place\n"
        "  exit\n"
        "segment vip = true\n"
    )
    assert j.title == "Full"
    assert j.triggers == [
        ir.EventTrigger(
            event="a", where=ir.Op(op=">", args=[ir.EventRef(path=["x"]), ir.Lit(value=1)])
        ),
        ir.SegmentTrigger(edge="entering", segment="vip"),
        ir.SegmentTrigger(edge="leaving", segment="vip"),
        ir.ScheduleTrigger(day="day", hour=10, minute=0, segment="vip"),
        ir.ScheduleTrigger(day="weekend", hour=8, minute=15),
        ir.ScheduleTrigger(interval=6 * 3600),
    ]
    assert j.entry == ir.EntryRule(mode="once_per", per=7 * 86400)
    assert j.exits == [
        ir.EventMatch(event="b"),
        ir.EventMatch(
            event="c", where=ir.Op(op="==", args=[ir.EventRef(path=["y"]), ir.Lit(value=2)])
        ),
    ]
    assert j.goal == ir.GoalRule(event="d", where=ir.EventRef(path=["z"]), within=3 * 86400)
    assert j.quiet_hours == ir.QuietHoursRule(start=22 * 60, end=8 * 60 + 30, skip=True)
    assert j.cap == ir.CapRule(count=3, per=7 * 86400)
    assert j.holdout == 12.5
    assert j.upgrade_in_place is True


def test_clause_defaults() -> None:
    j = journey_of("when go\nexit\n")
    assert j.id == "j"
    assert j.entry == ir.EntryRule(mode="once")
    assert (j.goal, j.quiet_hours, j.cap, j.holdout, j.upgrade_in_place) == (
        None,
        None,
        None,
        0.0,
        False,
    )
    assert journey_of("when go\nentry always\nexit\n").entry == ir.EntryRule(mode="always")


# ---------------------------------------------------------------- messages and segments


def test_messages_read_file_fields_relative_to_the_journey(tmp_path: Path) -> None:
    p = compile_files(
        tmp_path,
        {
            "sub/m.journey": (
                "message m\n"
                "  email\n"
                '    subject "Hi"\n'
                '    subject th "สวัสดี"\n'
                '    html file "tpl/m.html"\n'
                '    html th file "tpl/m.th.html"\n'
                "  push\n"
                '    body "b"\n'
            ),
            "sub/tpl/m.html": "<p>{{ user.first_name }}</p>\n",
            "sub/tpl/m.th.html": "<p>th</p>\n",
        },
    )
    assert p.messages["m"] == ir.MessageIR(
        name="m",
        parts={
            "email": {
                "subject": ir.FieldIR(default="Hi", locales={"th": "สวัสดี"}),
                "html": ir.FieldIR(
                    default="<p>{{ user.first_name }}</p>\n", locales={"th": "<p>th</p>\n"}
                ),
            },
            "push": {"body": ir.FieldIR(default="b")},
        },
    )


def test_unreadable_template_is_a_lower_error(tmp_path: Path) -> None:
    with pytest.raises(LowerError, match=r"message `m`.*missing\.html"):
        compile_files(tmp_path, {"m.journey": 'message m\n  email\n    html file "missing.html"\n'})


def test_segments_are_collected_transitively(tmp_path: Path) -> None:
    p = compile_files(
        tmp_path,
        {
            "segs.journey": (
                "segment a = segment b or segment c\n"
                "segment b = segment d\n"
                "segment c = count(x where segment e) > 0\n"
                "segment d = true\n"
                "segment e = false\n"
                "segment unused = segment d\n"
                "segment loop1 = segment loop2\n"
                "segment loop2 = segment loop1\n"
                "segment sched = true\n"
            ),
            "j.journey": (
                "journey j\n"
                "  when go where segment a\n"
                "  every day at 10:00 for sched\n"
                "  exit\n"
                "journey k\n"
                "  when entering loop1\n"
                "  exit\n"
                "journey n\n"
                "  when go\n"
                "  set s = 1\n"
            ),
        },
    )
    assert p.journeys["j"].segments == ["a", "b", "c", "d", "e", "sched"]
    assert p.journeys["k"].segments == ["loop1", "loop2"]
    assert p.journeys["n"].segments == []
    assert set(p.segments) == {"a", "b", "c", "d", "e", "unused", "loop1", "loop2", "sched"}
    assert p.segments["b"] == ir.SegmentIR(name="b", expr=ir.Seg(name="d"))


def test_segments_found_in_every_step_expression() -> None:
    p = compile_text(
        "when go\n"
        "wait for x where segment s1 up to 1h\n"
        "if segment s2\n"
        "  set a = segment s3\n"
        "send push m with v = segment s4\n"
        "track t with v = segment s5\n"
        "exit when y where segment s6\n"
        "goal z where segment s7\n" + "".join(f"segment s{i} = true\n" for i in range(1, 9))
    )
    assert p.journeys["j"].segments == [f"s{i}" for i in range(1, 8)]


def test_project_ir_holds_everything_sorted(tmp_path: Path) -> None:
    p = compile_files(
        tmp_path,
        {
            "b.journey": 'journey zeta\n  when go\n  exit\nmessage mz\n  push\n    body "z"\n',
            "a.journey": "journey alpha\n  when go\n  exit\nsegment sb = true\nsegment sa = true\n",
        },
    )
    assert list(p.journeys) == ["alpha", "zeta"]
    assert list(p.segments) == ["sa", "sb"]
    assert p.journeys["alpha"].file.endswith("a.journey")


# ---------------------------------------------------------------- versions

BASE = """\
journey j
  when cart_abandoned where event.cart_value >= 50
  wait 30m
  send push cart_reminder
  if segment vip
    exit

message cart_reminder
  push
    body "Your cart is waiting"

message unused
  push
    body "not sent"

segment vip = segment big
segment big = true
"""


def version_of(tmp_path: Path, name: str, text: str, file: str = "j.journey") -> str:
    d = tmp_path / name
    (d / file).parent.mkdir(parents=True)
    (d / file).write_text(text, encoding="utf-8")
    return lower_project(load_project([d])).journeys["j"].version


def test_version_ignores_layout_and_location(tmp_path: Path) -> None:
    base = version_of(tmp_path, "base", BASE)
    assert len(base) == 16
    reformatted = "# a comment\n\n" + BASE.replace("  wait 30m", "  wait    30m   # pause").replace(
        ">= 50", ">=   50"
    ).replace("\n  ", "\n    ")
    assert version_of(tmp_path, "fmt", reformatted) == base
    assert version_of(tmp_path, "moved", BASE, file="deep/other.journey") == base
    # Declarations may move between files too.
    d = tmp_path / "split"
    d.mkdir()
    journey_text, _, decls = BASE.partition("message cart_reminder")
    (d / "j.journey").write_text(journey_text, encoding="utf-8")
    (d / "decls.journey").write_text("message cart_reminder" + decls, encoding="utf-8")
    assert lower_project(load_project([d])).journeys["j"].version == base


def test_version_changes_with_behaviour_and_what_it_uses(tmp_path: Path) -> None:
    base = version_of(tmp_path, "base", BASE)
    changed = {
        "step": BASE.replace("wait 30m", "wait 31m"),
        "clause": BASE.replace(">= 50", ">= 51"),
        "message": BASE.replace("Your cart is waiting", "Your cart waits"),
        "segment": BASE.replace("segment big = true", "segment big = false"),
        "label": BASE.replace("wait 30m", "wait 30m as pause"),
    }
    versions = {name: version_of(tmp_path, name, text) for name, text in changed.items()}
    assert base not in versions.values()
    assert len(set(versions.values())) == len(versions)
    # A message or segment the journey does not use leaves its version alone.
    unrelated = BASE.replace("not sent", "still not sent") + "segment other = false\n"
    assert version_of(tmp_path, "unrelated", unrelated) == base


def test_version_follows_template_files(tmp_path: Path) -> None:
    files = {
        "j.journey": (
            "journey j\n  when go\n  send email m\n"
            'message m\n  email\n    subject "s"\n    html file "m.html"\n'
        ),
        "m.html": "<p>one</p>",
    }
    one = compile_files(tmp_path / "one", files).journeys["j"].version
    files["m.html"] = "<p>two</p>"
    two = compile_files(tmp_path / "two", files).journeys["j"].version
    assert one != two


def test_version_is_content_hash_of_the_bare_journey() -> None:
    p = compile_text(BASE)
    j = p.journeys["j"]
    bare = j.model_copy(update={"version": "", "file": "", "source_map": {}})
    expected = ir.content_hash(
        bare, p.messages["cart_reminder"], p.segments["big"], p.segments["vip"]
    )
    assert j.version == expected
    assert j.messages == ["cart_reminder"]
    assert j.segments == ["big", "vip"]


def test_lowering_refuses_a_template_file_outside_the_project(tmp_path: Path) -> None:
    # The checker says `file_outside_project` first; lowering without checking must
    # not read the file either.
    (tmp_path / "secret.txt").write_text("s3cret")
    project_dir = tmp_path / "proj"
    project_dir.mkdir()
    (project_dir / "main.journey").write_text(
        'message leak\n  email\n    subject "x"\n    html file "../secret.txt"\n\n'
        "when a\nsend email leak\n"
    )
    project = load_project([str(project_dir)])
    with pytest.raises(LowerError, match="outside the project"):
        lower_project(project)
