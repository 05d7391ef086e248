"""Checker tests, driven by fixture files in the style of sqlglot.

Each case of ``tests/fixtures/diagnostics/`` is a file ``NAME.journey`` (a one-file
project) or a directory ``NAME/`` (every ``.journey`` file under it, one project),
with ``NAME.expected`` beside it: the expected diagnostics, one per line, as
``severity code file:line:col`` (``file`` relative to the case directory), in the
order the checker reports them (by file, then position). A diagnostic that makes a
suggestion ("did you mean `send`?") has it after ``~``, so the fixtures check what is
suggested too: ``error journey_parse_error a.journey:3:3 ~ did you mean `send`?``.
Lines starting with ``#`` are comments. An empty ``.expected`` says the case is
valid with no warnings.

To rewrite every ``.expected`` file from the checker's actual output (keeping the
leading comment lines), run::

    JOURNEYC_UPDATE_FIXTURES=1 pytest -q -n0 tests/test_checker.py

then read the diff: each change must be one you meant.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from journeyc.compile.bounds import global_cap_warnings
from journeyc.compile.lower import lower_project
from journeyc.config import load_config
from journeyc.lang.builtins import Type
from journeyc.lang.checker import check_project
from journeyc.lang.diagnostics import Diagnostic, render_text, sort_key
from journeyc.lang.parser import parse_source
from journeyc.lang.project import Project, load_project
from journeyc.lang.types import TypeChecker

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / "fixtures" / "diagnostics"
CASES = sorted(p.name for p in FIXTURES.iterdir() if p.suffix == ".journey" or p.is_dir())
UPDATE = os.environ.get("JOURNEYC_UPDATE_FIXTURES") == "1"

# Every code the checker, the parser and the literal checks can report; each must
# appear in at least one fixture.
ALL_CODES = {
    # parser
    "journey_parse_error",
    "unterminated_string",
    "tab_indent",
    "bad_indent",
    "too_deep",
    # literal checks
    "bad_duration",
    "zero_duration",
    "bad_time",
    "bad_day",
    "bad_holdout",
    "bad_cap",
    "bad_entry",
    "bad_escape",
    "bad_quiet_hours",
    "bad_call",
    "mixed_journey_forms",
    "clause_after_step",
    # checker
    "unknown_message",
    "unknown_segment",
    "unknown_channel",
    "unknown_field",
    "unknown_channel_part",
    "missing_message",
    "unknown_function",
    "duplicate_name",
    "duplicate_step",
    "duplicate_clause",
    "duplicate_part",
    "duplicate_field",
    "duplicate_arg",
    "bad_split",
    "bad_on_branch",
    "bad_set",
    "segment_cycle",
    "liquid_syntax_error",
    "missing_file",
    "file_outside_project",
    "template_loop_over_limit",
    "unknown_filter",
    "bad_filter_args",
    "missing_with_value",
    "similar_event_name",
    "type_error",
    "event_without_event_entry",
    "event_in_segment",
    "item_outside_list",
    "unreachable_step",
    "no_entry",
    # static bounds (journeyc.compile.bounds); over_global_cap from `validate --config`
    "unreachable_branch",
    "wait_for_exits_first",
    "over_global_cap",
}


def _project(files: dict[str, str]) -> Project:
    return Project([parse_source(text, path) for path, text in files.items()])


def _check(files: dict[str, str]) -> list[Diagnostic]:
    return check_project(_project(files))


def _codes(files: dict[str, str]) -> list[str]:
    return [d.code for d in _check(files)]


def _line(d: Diagnostic) -> str:
    line = f"{d.severity.value} {d.code} {d.span.file}:{d.span.line}:{d.span.column}"
    return f"{line} ~ {d.label}" if "did you mean" in d.label else line


def _run_case(name: str, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    case = FIXTURES / name
    if case.is_dir():
        monkeypatch.chdir(case)
        project = load_project(["."])
    else:
        monkeypatch.chdir(FIXTURES)
        project = load_project([name])
    diagnostics = check_project(project)
    if Path("journeyc.toml").is_file():
        # A case with a configuration: the warnings `validate --config` adds too.
        diagnostics = sorted([*diagnostics, *_config_warnings(project)], key=sort_key)
    return [_line(d) for d in diagnostics]


def _config_warnings(project: Project) -> list[Diagnostic]:
    """What ``validate --config journeyc.toml`` adds to the checker's diagnostics."""
    cfg = load_config(Path("journeyc.toml"))
    cap = cfg.engine.global_cap
    if cap is None:
        return []
    compiled = lower_project(project)
    quiet = cfg.engine.quiet_hours.rule
    return global_cap_warnings(compiled, project.trees, cap.rule, quiet)


def _expected_path(name: str) -> Path:
    return FIXTURES / f"{Path(name).stem}.expected"


def _read_expected(path: Path) -> tuple[list[str], list[str]]:
    """The leading comment lines and the expected diagnostic lines of a file."""
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    comments = []
    for line in lines:
        if not line.startswith("#"):
            break
        comments.append(line)
    body = [x.strip() for x in lines if x.strip() and not x.startswith("#")]
    return comments, body


# ------------------------------------------------------------------ fixtures


@pytest.mark.parametrize("name", CASES)
def test_fixture(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    actual = _run_case(name, monkeypatch)
    path = _expected_path(name)
    comments, expected = _read_expected(path)
    if UPDATE:
        path.write_text("".join(f"{x}\n" for x in [*comments, *actual]), encoding="utf-8")
        return
    assert path.exists(), f"{path.name} is missing (JOURNEYC_UPDATE_FIXTURES=1 writes it)"
    assert actual == expected


def test_every_fixture_has_an_expected_file_and_back() -> None:
    expected = {p.stem for p in FIXTURES.glob("*.expected")}
    assert expected == {Path(c).stem for c in CASES}


def test_fixtures_cover_every_code() -> None:
    seen = set()
    for path in FIXTURES.glob("*.expected"):
        for line in _read_expected(path)[1]:
            seen.add(line.split()[1])
    assert ALL_CODES - seen == set()
    assert seen - ALL_CODES == set(), "a code in a fixture is missing from ALL_CODES"


# ------------------------------------------------------------------ rendering

CART = """\
message cart_reminder
  push
    title "Your cart"

journey cart
  when cart_abandoned
  send push cart_remindr
"""


def test_render_points_at_the_name_and_suggests() -> None:
    project = _project({"journeys/cart.journey": CART})
    text = render_text(check_project(project), project.sources)
    assert text == (
        "error[unknown_message]: no message named `cart_remindr`\n"
        " --> journeys/cart.journey:7:13\n"
        "  |\n"
        "7 |   send push cart_remindr\n"
        "  |             ^^^^^^^^^^^^ did you mean `cart_reminder`?\n"
        "   = help: declare it with `message NAME` and a part per channel\n"
    )


def test_no_suggestion_when_nothing_is_close() -> None:
    diags = _check({"a.journey": "when x\nsend push zzzzzz\n"})
    assert [(d.code, d.label) for d in diags] == [("unknown_message", "unknown message")]


def test_liquid_error_column_counts_escapes() -> None:
    # `\"` takes two characters in the source but one in the template.
    src = 'when x\nsend push "say \\"hi\\" {% endif %}"\n'
    [d] = _check({"a.journey": src})
    assert d.code == "liquid_syntax_error"
    assert src.splitlines()[1][d.span.column - 1 :].startswith("endif")
    assert (d.span.line, d.span.end_column - d.span.column) == (2, 5)


def test_liquid_error_without_position_points_at_the_string() -> None:
    src = 'when x\nsend push "{% if vip %}no end"\n'
    [d] = _check({"a.journey": src})
    assert (d.code, d.span.line, d.span.column) == ("liquid_syntax_error", 2, 11)
    assert src[d.span.start : d.span.end] == '"{% if vip %}no end"'


def test_liquid_error_in_template_file_renders_that_file(tmp_path: Path) -> None:
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "mail.html").write_text("<p>hi</p>\n<p>{% endif %}</p>\n")
    journey = tmp_path / "m.journey"
    journey.write_text('message m\n  email\n    html file "t/mail.html"\n')
    project = load_project([journey])
    [d] = check_project(project)
    template = (Path(project.files[0].path).parent / "t" / "mail.html").as_posix()
    assert (d.code, d.span.file, d.span.line, d.span.column) == (
        "liquid_syntax_error",
        template,
        2,
        7,
    )
    assert "2 | <p>{% endif %}</p>" in render_text([d], project.sources)


def test_missing_template_file(tmp_path: Path) -> None:
    journey = tmp_path / "m.journey"
    journey.write_text('message m\n  email\n    html file "nope.html"\n')
    [d] = check_project(load_project([journey]))
    assert (d.code, d.span.line, d.span.column) == ("missing_file", 3, 15)


# ------------------------------------------------------------------ semantics


@pytest.mark.parametrize(
    ("send", "codes"),
    [
        ("send push or email both", []),
        ("send push p or email e", []),
        ("send push or email", ["missing_message"]),
        ("send push p or email", ["missing_message"]),
        ("send sms both", ["unknown_channel_part"]),
        ("send sms or push both", ["unknown_channel_part"]),
        ('send sms "Hi"', []),
        ("send push nope or email both", ["unknown_message"]),
        ("send pigeon both", ["unknown_channel"]),
    ],
)
def test_send_targets(send: str, codes: list[str]) -> None:
    src = (
        'message both\n  push\n    body "b"\n  email\n    subject "s"\n'
        'message p\n  push\n    body "p"\n'
        'message e\n  email\n    subject "e"\n'
        f"when x\n{send}\n"
    )
    assert _codes({"a.journey": src}) == codes


def test_unknown_message_shared_by_targets_is_reported_once() -> None:
    assert _codes({"a.journey": "when x\nsend push or email nope\n"}) == ["unknown_message"]


@pytest.mark.parametrize(
    ("arms", "ok"),
    [
        (["50%", "50%"], True),
        (["33.3%", "33.3%", "33.4%"], True),
        (["50%", "40%"], False),
        (["100%"], False),
        (["60%", "60%"], False),
    ],
)
def test_split_sums(arms: list[str], ok: bool) -> None:
    body = "".join(f"  {a}\n    wait 1h\n" for a in arms)
    codes = _codes({"a.journey": f"when x\nsplit\n{body}"})
    assert (codes == []) is ok
    assert set(codes) <= {"bad_split"}


def test_split_sum_is_in_the_message() -> None:
    [d] = _check({"a.journey": "when x\nsplit\n  50%\n    exit\n  40%\n    exit\n"})
    assert "90%" in d.summary


def test_duplicate_names_are_per_kind() -> None:
    files = {
        "a.journey": 'message welcome\n  push\n    body "x"\nsegment welcome = vip\n',
        "welcome.journey": "when signed_up\nsend push welcome\n",
    }
    assert _codes(files) == []
    files["b.journey"] = "segment welcome = vip\n"
    [d] = _check(files)
    assert (d.code, d.span.file) == ("duplicate_name", "b.journey")


def test_semantic_checks_wait_for_syntax_errors() -> None:
    files = {
        "a.journey": "when x\nsend push nope\n",
        "b.journey": "when x\nwait\n",
    }
    assert _codes(files) == ["journey_parse_error"]


def test_unreachable_after_if_needs_an_else() -> None:
    without_else = "when x\nif vip\n  exit\nwait 1h\n"
    with_else = "when x\nif vip\n  exit\nelse\n  exit\nwait 1h\nwait 2h\n"
    assert _codes({"a.journey": without_else}) == []
    assert _codes({"a.journey": with_else}) == ["unreachable_step"]


def test_unreachable_after_wait_for_whose_branches_all_exit() -> None:
    src = "when x\nwait for y up to 1d\n  on y\n    exit\n  on timeout\n    exit\nwait 1h\n"
    assert _codes({"a.journey": src}) == ["unreachable_step"]
    partial = "when x\nwait for y up to 1d\n  on y\n    exit\nwait 1h\n"
    assert _codes({"a.journey": partial}) == []


def test_event_in_focus_inside_on_branch_and_where() -> None:
    src = (
        "segment s = vip\n"
        "journey j\n"
        "  when entering s\n"
        "  exit when y where event.a == 1\n"
        "  wait for y where event.b == 2 up to 1d\n"
        '    on y\n      send push "{{ event.c }}" with v = event.d\n'
        "    on timeout\n      set z = count(y where event.e > 1)\n"
    )
    assert _codes({"a.journey": src}) == []


# ------------------------------------------------------------------ types


def _type(expr: str) -> tuple[Type, list[str]]:
    result = parse_source(f"segment s = {expr}\n", "t.journey")
    assert result.tree is not None, result.diagnostics
    checker = TypeChecker()
    t = checker.infer(result.tree.segments[0].expr)
    return t, [d.code for d in checker.diagnostics]


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("3", Type.NUMBER),
        ('"a"', Type.STRING),
        ("null", Type.NULL),
        ("2d", Type.DURATION),
        ("now", Type.TIMESTAMP),
        ("plan", Type.ANY),
        ("user.plan", Type.ANY),
        ("event.amount", Type.ANY),
        ("count(x within 7d)", Type.NUMBER),
        ("last(x)", Type.EVENT),
        ("last(x).at", Type.TIMESTAMP),
        ("first(x).amount", Type.ANY),
        ("top(x.brand)", Type.ANY),
        ("last(x).at + 7d", Type.TIMESTAMP),
        ("now - 1h", Type.TIMESTAMP),
        ("now - last(x).at", Type.DURATION),
        ("1d + 2h", Type.DURATION),
        ("2h * 3", Type.DURATION),
        ("1d / 1h", Type.NUMBER),
        ('"a" + "b"', Type.STRING),
        ("age + 1", Type.ANY),
        ("days_since(signup_at)", Type.NUMBER),
        ('lower("A")', Type.STRING),
        ("x between 1 and 2", Type.BOOL),
        ('plan in ["a", "b"]', Type.BOOL),
        ("not vip", Type.BOOL),
        ("segment s", Type.BOOL),
        ("-2h", Type.DURATION),
    ],
)
def test_inferred_types(expr: str, expected: Type) -> None:
    assert _type(expr) == (expected, [])


@pytest.mark.parametrize(
    "expr",
    [
        "count(x) > 2d",
        "now > 5",
        "now + now",
        "1 + 2d",
        '"a" - "b"',
        '"a" + 1',
        "true + 1",
        "[1] * 2",
        "last(x) + 1",
        "plan in 3",
        "plan in true",
        '3 in "abc"',
        "days_since(3)",
        "lower(2d)",
        "now.day",
        "x between 1 and 2d",
        "now between 1 and 2",
        "true < false",
        '2d == "2d"',
        "-true",
        "contains(3, 1)",
        # Stored values are JSON: never a duration, never a weekday.
        "event.delay > 2d",
        "plan == 2h",
        "-user.wait != 1h",
        "user.x between 1d and 2d",
        "waited in [1d, 2d]",
        "2d in waited",
        "last(x).delay < 3d",
        "max(x.took) >= 1h",
        "day == monday",
        "day in [saturday, sunday]",
    ],
)
def test_type_errors(expr: str) -> None:
    assert "type_error" in _type(expr)[1]


@pytest.mark.parametrize(
    "expr",
    [
        "age > null",
        "null == 3d",
        "plan == 3",
        "event.at > now",
        "user.x in plan",
        "x + null",
        # A difference of timestamps is a duration; arithmetic on stored values may be.
        "now - event.at > 30d",
        "now - last(x).at >= 2h",
        "last(x).at > now - 2d",
        "user.x * 2 > 2d",
        "weekend == true",
        'day == "monday"',
        "user.monday == 1",
    ],
)
def test_any_and_null_go_with_everything(expr: str) -> None:
    assert _type(expr)[1] == []


def test_a_stored_value_against_a_duration_hints_at_days_since() -> None:
    [d] = _check({"a.journey": "when x where event.delay > 2d\nexit\n"})
    assert d.code == "type_error"
    assert d.summary == (
        "`event.delay` (an event value) is never a duration: this comparison can never hold"
    )
    assert "days_since(...)" in d.hints[0] and "hours_since(...)" in d.hints[0]
    assert "a number" in d.hints[1]


def test_a_bare_weekday_points_at_the_word() -> None:
    src = "when x where event.day == monday\nexit\n"
    [d] = _check({"a.journey": src})
    assert (d.code, d.span.column, d.span.end_column) == ("type_error", 27, 33)
    assert '`"monday"`' in d.hints[0]


# ------------------------------------------------------------------ the command


def _validate(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["journeyc", "validate", *args], cwd=cwd, capture_output=True, text=True, check=False
    )


@pytest.mark.e2e
def test_json_shape(tmp_path: Path) -> None:
    (tmp_path / "cart.journey").write_text(CART)
    proc = _validate("--json", "cart.journey", cwd=tmp_path)
    assert proc.returncode == 1
    data = json.loads(proc.stdout)
    assert (data["valid"], data["error_count"], data["warning_count"]) == (False, 1, 0)
    [d] = data["diagnostics"]
    assert (d["severity"], d["code"]) == ("error", "unknown_message")
    assert d["range"]["filename"] == "cart.journey"
    assert d["range"]["start"] == {"line": 7, "column": 13, "byte": CART.index("cart_remindr")}
    assert (d["range"]["end"]["line"], d["range"]["end"]["column"]) == (7, 25)
    assert "did you mean `cart_reminder`?" in d["detail"]


@pytest.mark.e2e
def test_validate_db_compares_event_names_with_the_store(tmp_path: Path) -> None:
    events = [
        {"type": "track", "userId": "u1", "event": "Order Completed", "messageId": "m1"},
        {"type": "track", "userId": "u1", "event": "Cart Abandoned", "messageId": "m2"},
        {"type": "identify", "userId": "u1", "traits": {"a": 1}, "messageId": "m3"},
    ]
    (tmp_path / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    subprocess.run(["journeyc", "ingest", "events.jsonl", "--db", "s.db"], cwd=tmp_path, check=True)
    from journeyc.store.sqlite import Store

    with Store.open(tmp_path / "s.db") as store:
        assert store.event_names() == {"order_completed", "cart_abandoned"}
    # Used once each, the project alone cannot tell; the store can.
    (tmp_path / "j.journey").write_text(
        'journey j\n  when cart_abandoned\n  exit when order_complete\n  send push "x"\n'
    )
    alone = _validate("--json", "j.journey", cwd=tmp_path)
    assert json.loads(alone.stdout)["warning_count"] == 0
    proc = _validate("--json", "--db", "s.db", "j.journey", cwd=tmp_path)
    assert proc.returncode == 0
    [d] = json.loads(proc.stdout)["diagnostics"]
    assert (d["code"], d["range"]["start"]["line"], d["range"]["start"]["column"]) == (
        "similar_event_name",
        3,
        13,
    )
    assert "did you mean `order_completed`?" in d["detail"]
    assert _validate("--db", "nothere.db", "j.journey", cwd=tmp_path).returncode == 2


def test_seen_events_decide_and_a_seen_name_is_never_warned() -> None:
    src = "journey j\n  when order_completed\n  exit when order_complete\n  goal order_complete\n"
    project = _project({"a.journey": src})
    # Alone: `order_complete` is used twice, `order_completed` once.
    assert [d.code for d in check_project(project)] == ["similar_event_name"]
    assert [d.span.line for d in check_project(project)] == [2]
    # The store has seen `order_completed`: each use of the other is warned about.
    found = check_project(project, seen_events={"order_completed"})
    assert [(d.code, d.span.line) for d in found] == [
        ("similar_event_name", 3),
        ("similar_event_name", 4),
    ]
    assert found[0].label == "did you mean `order_completed`?"
    # The store has seen both: they are meant.
    assert check_project(project, seen_events={"order_completed", "order_complete"}) == []


def test_event_name_spans_cover_every_place_a_name_goes() -> None:
    src = (
        "segment s = count(\n  order_complted within 1d) > 0 and count(order_completed) > 1\n"
        "journey j\n  when order_completed\n"
        '  wait for "Order Complete" up to 1d\n'
        "  track ordr_completed\n"
    )
    found = _check({"a.journey": src})
    names = {d.summary.split("`")[1]: (d.span.line, d.span.column) for d in found}
    assert names == {
        "order_complted": (2, 3),
        "order_complete": (5, 12),
        "ordr_completed": (6, 9),
    }


def test_exit_codes(tmp_path: Path) -> None:
    (tmp_path / "ok.journey").write_text('journey ok\n  when x\n  send push "Hi"\n')
    (tmp_path / "warn.journey").write_text('journey warn\n  send push "Hi"\n')
    (tmp_path / "bad.journey").write_text(CART)
    assert _validate("ok.journey", "warn.journey", cwd=tmp_path).returncode == 0
    assert _validate("bad.journey", cwd=tmp_path).returncode == 1
    assert _validate("nowhere.journey", cwd=tmp_path).returncode == 2
    assert _validate(cwd=tmp_path).returncode == 2


# The language contract, beside the repository; `language_examples/` holds a copy of
# its examples so that the fixture runs anywhere.
CONTRACT = ROOT.parent / "shared" / "LANGUAGE.md"


def test_language_reference_examples_validate(tmp_path: Path) -> None:
    """Every code block of the language contract, validated as one project with the
    template file the messages read, has no error and no warning."""
    if not CONTRACT.exists():
        pytest.skip("no language contract beside this checkout")
    blocks = re.findall(r"```\n(.*?)```", CONTRACT.read_text(encoding="utf-8"), re.S)
    assert len(blocks) >= 4
    for i, block in enumerate(blocks):
        first = block.splitlines()[0]
        named = re.match(r"# journeys/(\w+\.journey)$", first)
        (tmp_path / (named.group(1) if named else f"block{i}.journey")).write_text(block)
    shutil.copytree(FIXTURES / "language_examples" / "templates", tmp_path / "templates")
    diags = check_project(load_project([tmp_path]))
    assert [_line(d) for d in diags] == []


# ------------------------------------------------------------------ robustness

_EXAMPLES = "".join(
    p.read_text(encoding="utf-8")
    for p in sorted((FIXTURES / "language_examples").glob("*.journey"))
) + (FIXTURES / "structure.journey").read_text(encoding="utf-8")


@given(st.integers(0, len(_EXAMPLES)), st.integers(0, 40), st.text(max_size=8))
def test_checker_never_raises(start: int, length: int, insert: str) -> None:
    mutated = _EXAMPLES[:start] + insert + _EXAMPLES[start + length :]
    for d in _check({"m.journey": mutated}):
        assert d.span.line >= 1 and d.span.column >= 1


def test_syntax_errors_say_what_was_expected_in_words() -> None:
    [d] = _check({"a.journey": "journey j\n  when x\n  entry once per\n"})
    assert (d.code, d.label) == ("journey_parse_error", "expected a duration like `30m`")


def test_template_file_is_checked_once_but_each_missing_reference_reported(
    tmp_path: Path,
) -> None:
    (tmp_path / "bad.html").write_text("{% endif %}")
    (tmp_path / "m.journey").write_text(
        'message a\n  email\n    html file "bad.html"\n    text file "gone.txt"\n'
        'message b\n  email\n    html file "bad.html"\n    text file "gone.txt"\n'
    )
    codes = [d.code for d in check_project(load_project([tmp_path]))]
    assert sorted(codes) == ["liquid_syntax_error", "missing_file", "missing_file"]


def test_message_template_file_reading_event_warns_in_scheduled_journey(tmp_path: Path) -> None:
    (tmp_path / "t.html").write_text("<p>{{ event.total }}</p>")
    (tmp_path / "m.journey").write_text(
        'message m\n  email\n    html file "t.html"\n'
        "journey j\n  every day at 10:00 for everyone\n  send email m\n"
        "journey k\n  when x\n  send email m\n"
    )
    diags = check_project(load_project([tmp_path]))
    assert [(d.code, d.span.line) for d in diags] == [("event_without_event_entry", 6)]


# ------------------------------------------------------------------ segments nested deep


def test_a_lattice_of_segments_is_checked_in_linear_time() -> None:
    # Each level uses both segments of the next: 2^40 paths, which the cycle check
    # once followed one by one.
    src = "".join(
        f"segment x{i} = segment x{i + 1} and segment y{i + 1}\n"
        f"segment y{i} = segment x{i + 1} or segment y{i + 1}\n"
        for i in range(40)
    )
    src += "segment x40 = vip\nsegment y40 = vip\nsegment z = segment z\n"
    assert _codes({"a.journey": src}) == ["segment_cycle"]


def test_a_long_chain_of_segments_is_too_deep_where_it_passes_the_limit() -> None:
    from journeyc.lang.depth import MAX_SEGMENT_DEPTH

    # `segment sN` is 1 level over the segment it names.
    n = 3000
    src = "".join(f"segment s{i} = segment s{i + 1}\n" for i in range(n)) + f"segment s{n} = vip\n"
    [d] = _check({"a.journey": src})
    first_too_deep = n - MAX_SEGMENT_DEPTH
    assert (d.code, d.span.line) == ("too_deep", first_too_deep + 1)
    assert f"segment `s{first_too_deep}`" in d.summary
    assert str(MAX_SEGMENT_DEPTH) in d.summary


def test_the_deepest_segments_allowed_go_through_the_engine() -> None:
    """At the limit, the engine's planner (which inlines segments, three frames a
    level) and evaluation work within 500 Python frames of the 1000 allowed."""
    import sys
    from datetime import UTC, datetime

    from journeyc.compile.lower import lower_project
    from journeyc.engine.expr import Scope, compile_predicate
    from journeyc.engine.segments import Horizon, segment_resolver
    from journeyc.lang.depth import MAX_EXPR_DEPTH, MAX_SEGMENT_DEPTH
    from journeyc.store.sqlite import Store

    # Each segment is a `not` chain MAX_EXPR_DEPTH deep over the next `segment`.
    hops, rest = divmod(MAX_SEGMENT_DEPTH, MAX_EXPR_DEPTH)
    nots = "not " * (MAX_EXPR_DEPTH - 1)
    src = "".join(f"segment s{i} = {nots}segment s{i + 1}\n" for i in range(hops))
    limit = src + f"segment s{hops} = {'not ' * (rest - 1)}vip\n"
    project = _project({"a.journey": limit})
    assert check_project(project) == []
    assert _codes({"a.journey": limit.replace(" vip", " not vip")}) == ["too_deep"]

    compiled = lower_project(project)
    preds = {n: compile_predicate(s.expr) for n, s in compiled.segments.items()}
    scope = Scope(
        now=datetime(2026, 1, 1, tzinfo=UTC),
        profile={"vip": True},
        segments=segment_resolver(preds),
    )
    horizon = Horizon(Store.open(":memory:").event_history(), compiled.segments)
    frame, depth = sys._getframe(), 0
    while frame is not None:
        frame, depth = frame.f_back, depth + 1
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(depth + 500)
    try:
        assert horizon.next_change(compiled.segments["s0"].expr, scope) is None
        preds["s0"](scope)
    finally:
        sys.setrecursionlimit(old)
