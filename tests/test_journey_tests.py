"""`journeyc test`: test files, their checks and formatting, the runner, the report.

Fixtures, run against the example project and compared with ``NAME.expected``: the
report of a failing run (``tests/fixtures/test_output/report/*.test.journey``) and the
checker's diagnostics (``…/diagnostics/*.test.journey``). Regenerate with

    JOURNEYC_UPDATE_FIXTURES=1 pytest -q -n0 tests/test_journey_tests.py
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from journeyc.cli import main
from journeyc.cli.test import coverage_report, report
from journeyc.compile.lower import lower_project
from journeyc.lang.diagnostics import render_text, sort_key
from journeyc.lang.formatter import format_source
from journeyc.lang.parser import parse_source
from journeyc.lang.project import find_files, load_project
from journeyc.lang.testfile import check_tests
from journeyc.testing.coverage import coverage
from journeyc.testing.runner import Case, run_cases

ROOT = Path(__file__).resolve().parents[1]
JOURNEYS = ROOT / "journeys"
FIXTURES = Path(__file__).parent / "fixtures" / "test_output"
UPDATE = os.environ.get("JOURNEYC_UPDATE_FIXTURES") == "1"


@pytest.fixture(scope="module")
def program():  # type: ignore[no-untyped-def]
    return lower_project(load_project([JOURNEYS]))


def _cases(text: str, name: str = "t.test.journey") -> list[Case]:
    result = parse_source(text, name)
    assert result.tree is not None, result.diagnostics
    return [Case(name, t) for t in result.tree.tests]


def _run(program, text: str):  # type: ignore[no-untyped-def]
    return run_cases(program, _cases(text))


def _assert_golden(path: Path, text: str) -> None:
    """``text`` is the ``.expected`` file beside the fixture ``path`` (written first
    under JOURNEYC_UPDATE_FIXTURES=1)."""
    expected = path.with_name(path.name.removesuffix(".test.journey") + ".expected")
    if UPDATE:
        expected.write_text(text)
    assert expected.exists(), f"{expected.name} is missing (JOURNEYC_UPDATE_FIXTURES=1 writes it)"
    assert text == expected.read_text()


@pytest.mark.parametrize(
    "path", sorted((FIXTURES / "report").glob("*.test.journey")), ids=lambda p: p.stem
)
def test_failure_report_fixture(program, path: Path) -> None:  # type: ignore[no-untyped-def]
    run = run_cases(program, _cases(path.read_text(), path.name))
    _assert_golden(path, report(run))


def test_example_project_passes_with_full_coverage(program) -> None:  # type: ignore[no-untyped-def]
    project = load_project([JOURNEYS])
    cases = [Case(f.path, t) for f in project.tests if f.tree for t in f.tree.tests]
    assert len(cases) >= 25
    run = run_cases(program, cases)
    assert run.passed == len(cases), report(run)
    rows = coverage(program, run.visits)
    assert {r.journey for r in rows} == set(program.journeys)
    assert all(r.percent == 100.0 for r in rows), coverage_report(rows)


def test_expectations_fail_when_they_should(program) -> None:  # type: ignore[no-untyped-def]
    base = (
        'test "t"\n'
        "  profile ana with push_enabled = true\n"
        '  track cart_abandoned for ana at +0 with cart_value = 120, category = "menswear", '
        'product_name = "Shirt"\n'
    )
    holds = [
        "expect send push cart_men to ana at +25m",
        "expect send cart_men to ana",
        'expect send push to ana with title "Your Shirt is ready when you are"',
        'expect send push to ana with body including "HIM10"',
        "expect no send email to ana",
        "expect no send to bob",
        "expect enter cart_recovery for ana at +0",
        "expect send to ana as nudge_men",
        "expect suppress to ana as last_call reason no_channel",
    ]
    fails = [
        "expect send push cart_men to ana at +24m",
        "expect send push cart_women to ana",
        'expect send push to ana with title "Your Shirt"',
        'expect send push to ana with body including "HER15"',
        "expect send email to ana",
        "expect no send to ana",
        "expect goal cart_recovery for ana",
        "expect exit cart_recovery for ana reason exit_event",
        "expect suppress to ana reason quiet_hours",
        "expect segment hero for ana",
    ]
    for line in holds:
        run = _run(program, base + "  " + line + "\n")
        assert run.passed == 1, (line, report(run))
    for line in fails:
        run = _run(program, base + "  " + line + "\n")
        assert run.passed == 0, line


def test_segment_expectations_follow_time(program) -> None:  # type: ignore[no-untyped-def]
    text = (
        'test "t"\n'
        "  profile sam with push_enabled = true\n"
        "  track order_completed for sam at -59d with revenue = 900\n"
        "  until +2d\n"
        "  expect no segment at_risk for sam at +0\n"
        "  expect segment at_risk for sam at +1d\n"
        "  expect segment at_risk for sam\n"
    )
    run = _run(program, text)
    assert run.passed == 1, report(run)
    flipped = text.replace(
        "expect no segment at_risk for sam at +0", "expect segment at_risk for sam at +0"
    )
    assert _run(program, flipped).passed == 0


def test_checker_names_unknown_names_with_did_you_mean() -> None:
    project = load_project([JOURNEYS])
    text = (
        'test "t"\n'
        "  track cart_abandoned for ana at +0\n"
        "  expect send pushh cart_womn to ana in cart_recovry as nudge_wmen\n"
        "  expect segment heroo for ana\n"
        "  expect exit cart_recovery for ana reason exit_evnt\n"
    )
    result = parse_source(text, "x.test.journey")
    found = check_tests(project.trees, [result])
    got = sorted((d.code, d.span.line, d.span.column, d.label) for d in found)
    assert got == [
        ("bad_reason", 5, 44, "did you mean `exit_event`?"),
        ("unknown_channel", 3, 15, "did you mean `push`?"),
        ("unknown_journey", 3, 41, "did you mean `cart_recovery`?"),
        ("unknown_message", 3, 21, "did you mean `cart_women`?"),
        ("unknown_segment", 4, 18, "did you mean `hero`?"),
        ("unknown_step", 3, 57, "did you mean `nudge_men` or `nudge_women`?"),
    ]


def test_declarations_and_tests_stay_in_their_files() -> None:
    project = load_project([JOURNEYS])
    mixed = parse_source('message m\n  push\n    title "x"\n', "x.test.journey")
    found = check_tests(project.trees, [mixed])
    assert [d.code for d in found] == ["declaration_in_test_file"]


def test_formatter_round_trips_test_files() -> None:
    messy = (
        'test   "t"\n'
        "    profile ana with push_enabled=true   # on\n"
        "    track cart_abandoned for ana at +0 with cart_value=120\n"
        '    expect send push to ana at +25m with title including "x",body "y"\n'
    )
    out = format_source(messy, "t.test.journey")
    assert out == (
        'test "t"\n'
        "  profile ana with push_enabled = true  # on\n"
        "  track cart_abandoned for ana at +0 with cart_value = 120\n"
        '  expect send push to ana at +25m with title including "x", body "y"\n'
    )
    assert format_source(out, "t.test.journey") == out


def test_project_leaves_test_files_out() -> None:
    files = find_files([JOURNEYS], tests=False)
    assert files and not any(f.name.endswith(".test.journey") for f in files)
    project = load_project([JOURNEYS])
    assert len(project.tests) >= 9


def _copy_project(tmp_path: Path) -> Path:
    target = tmp_path / "journeys"
    shutil.copytree(JOURNEYS, target)
    return target


def test_cli_exit_codes_json_run_and_threshold(tmp_path: Path) -> None:
    runner = CliRunner()
    project = _copy_project(tmp_path)
    ok = runner.invoke(main, ["test", str(project)])
    assert ok.exit_code == 0, ok.output
    assert ok.output.strip().endswith("PASS: 31/31") or "PASS: " in ok.output
    as_json = runner.invoke(main, ["test", str(project), "--json", "--run", "quiet hours"])
    data = json.loads(as_json.output)
    assert data["total"] == 1 and data["passed"] == 1
    assert "quiet hours" in data["tests"][0]["name"]
    verbose = runner.invoke(main, ["test", str(project), "-v", "--run", "^a small cart"])
    assert "PASS: a small cart does not enter" in verbose.output
    low = runner.invoke(main, ["test", str(project), "--run", "^a small cart", "--threshold", "50"])
    assert low.exit_code == 1 and "under --threshold 50%" in low.output
    bad = runner.invoke(main, ["test", str(project), "--run", "("])
    assert bad.exit_code == 2
    missing = runner.invoke(main, ["test", str(tmp_path / "nowhere")])
    assert missing.exit_code == 2
    broken = project / "cart_recovery.test.journey"
    broken.write_text(
        broken.read_text().replace('body including "HER15"', 'body including "HER99"')
    )
    failed = runner.invoke(main, ["test", str(project)])
    assert failed.exit_code == 1 and "FAIL: 1/" in failed.output
    (project / "cart_recovery.test.journey").write_text(
        'test "t"\n  track cart_abandoned for ana at +0\n  expect send to ana in cart_recovry\n'
    )
    invalid = runner.invoke(main, ["test", str(project)])
    assert invalid.exit_code == 1 and "unknown_journey" in invalid.output
    invalid_json = runner.invoke(main, ["test", str(project), "--json"])
    assert invalid_json.exit_code == 1
    document = json.loads(invalid_json.stdout)
    assert document["total"] == 0 and document["diagnostics"]["valid"] is False
    assert [d["code"] for d in document["diagnostics"]["diagnostics"]] == ["unknown_journey"]
    validated = runner.invoke(main, ["validate", str(project)])
    assert validated.exit_code == 1 and "unknown_journey" in validated.output


def test_identify_changes_traits_mid_test(program) -> None:  # type: ignore[no-untyped-def]
    text = (
        'test "t"\n'
        '  profile ana with first_name = "Ana"\n'
        "  track identify for ana at +0 with push_enabled = true\n"
        '  track cart_abandoned for ana at +1m with cart_value = 120, category = "womenswear"\n'
        "  expect send push cart_women to ana at +26m\n"
    )
    assert _run(program, text).passed == 1
    without = text.replace("  track identify for ana at +0 with push_enabled = true\n", "")
    assert _run(program, without).passed == 0


def test_a_run_that_fails_fails_its_test_with_the_reason(program) -> None:  # type: ignore[no-untyped-def]
    text = (
        'test "t"\n'
        '  product "p-1" with price = -5\n'
        "  track cart_abandoned for ana at +0 with cart_value = 120\n"
        "  expect enter cart_recovery for ana\n"
    )
    run = _run(program, text)
    (result,) = run.results
    assert not result.passed
    assert result.error is not None and "price" in result.error
    assert "error: bad product price" in report(run)


def test_a_misspelt_event_is_warned_about() -> None:
    project = load_project([JOURNEYS])
    text = (
        'test "t"\n'
        "  track cart_abanoned for ana at +0\n"
        "  track something_else for ana at +0\n"
        "  expect no send to ana\n"
    )
    found = check_tests(project.trees, [parse_source(text, "x.test.journey")])
    assert [(d.code, d.span.line, d.label) for d in found] == [
        ("unknown_test_event", 2, "did you mean `cart_abandoned`?")
    ]


@pytest.mark.parametrize(
    "path", sorted((FIXTURES / "diagnostics").glob("*.test.journey")), ids=lambda p: p.stem
)
def test_diagnostics_fixture(path: Path) -> None:
    """The checker's diagnostics for a test file, rendered as `validate` prints them."""
    project = load_project([JOURNEYS])
    result = parse_source(path.read_text(), path.name)
    found = [*result.diagnostics]
    if result.tree is not None:
        found += check_tests(project.trees, [result])
    _assert_golden(path, render_text(sorted(found, key=sort_key), {path.name: path.read_text()}))


def test_coverage_closes_over_dominators(program) -> None:  # type: ignore[no-untyped-def]
    text = (
        'test "t"\n'
        "  profile bob with push_enabled = true\n"
        '  track cart_abandoned for bob at +0 with cart_value = 80, category = "menswear"\n'
        "  expect send to bob as nudge_men\n"
    )
    run = _run(program, text)
    (cart,) = [r for r in coverage(program, run.visits) if r.journey == "cart_recovery"]
    missed = {m.step: m for m in cart.missed}
    # The `if` (node 2) took no action; the elif's send it leads to did.
    assert "2" not in missed and "nudge_men" not in missed and "first_nudge" not in missed
    assert set(missed) == {"nudge_women", "nudge", "saved"}
    assert missed["nudge_women"].branch == "if branch of 2"
    assert missed["saved"].branch == "on cart_viewed of second_look"
    assert (cart.reached, cart.steps, cart.branches_reached, cart.branches) == (5, 8, 2, 5)
    assert "nudge_women (send, line 24), the if branch of 2" in coverage_report([cart], 90)
    assert "under --threshold 90%" in coverage_report([cart], 90)


def test_a_segment_expectation_without_a_user_asks_every_user(program) -> None:  # type: ignore[no-untyped-def]
    # `expect segment buyer` names no user: any user of the test in it at that time
    # holds it, whether or not a journey acted on them (an order alone makes a buyer).
    run = _run(
        program,
        'test "a buyer"\n'
        "  profile ana\n"
        "  track order_completed for ana at +0 with revenue = 10\n"
        "  expect segment buyer at +1m\n"
        "  expect no segment dormant at +1m\n"
        "\n"
        'test "no buyer"\n'
        "  profile ana\n"
        "  track order_completed for ana at +0 with revenue = 10\n"
        "  expect no segment buyer at +1m\n",
    )
    first, second = run.results
    assert first.passed, report(run)
    assert not second.passed
    (failure,) = second.failures
    assert failure.message == "ana in buyer at 2026-01-05T10:01:00Z"


def test_with_compares_values_as_the_language_does(program) -> None:  # type: ignore[no-untyped-def]
    # `with value true` is a boolean: a set of 1 is not it (Python's True == 1), and a
    # number matches across int and float.
    from journeyc.engine.actions import Action
    from journeyc.testing.runner import matches

    (case,) = _cases(
        'test "t"\n  profile ana\n'
        "  expect set vip for ana with value true\n"
        "  expect set vip for ana with value 1\n"
    )
    is_true, is_one = case.test.expectations

    def set_to(value: object) -> Action:
        return Action(0, "ana", "welcome", None, "set", {"attr": "vip", "value": value})

    assert matches(is_true, set_to(True), program, 0)
    assert not matches(is_true, set_to(1), program, 0)
    assert not matches(is_one, set_to(True), program, 0)
    assert matches(is_one, set_to(1.0), program, 0)


def test_no_test_files_cost_no_walk_of_the_project(monkeypatch: pytest.MonkeyPatch) -> None:
    # validate (and the language server, at every check) asks for the test checks of
    # projects that have no tests: the names of a big project are not walked for them.
    from journeyc.lang import testfile

    def walked(trees: object) -> None:
        raise AssertionError("walked the project for no tests")

    monkeypatch.setattr(testfile, "_project_names", walked)
    trees = [t for t in load_project([JOURNEYS]).trees]
    assert check_tests(trees, []) == []


def test_a_journey_file_is_not_a_test_path(tmp_path: Path) -> None:
    # PATH is a directory or a test file (--help, docs/testing.md): a journey file
    # alone is a usage error that says so, not its unknown messages and segments.
    project = _copy_project(tmp_path)
    result = CliRunner().invoke(main, ["test", str(project / "cart_recovery.journey")])
    assert result.exit_code == 2, result.output
    assert "not a test file" in result.output
    assert "unknown_message" not in result.output


def test_a_missing_config_file_is_a_usage_error(tmp_path: Path) -> None:
    # As for validate and serve: a --config that names no file is not run with the
    # defaults in its place (a typo in CI would test other quiet hours and caps).
    missing = str(tmp_path / "nope.toml")
    runner = CliRunner()
    tested = runner.invoke(main, ["test", str(JOURNEYS), "--config", missing])
    assert tested.exit_code == 2 and "nope.toml" in tested.output, tested.output
    events = str(ROOT / "examples" / "events.jsonl")
    simulated = runner.invoke(
        main, ["simulate", str(JOURNEYS), "--events", events, "--config", missing]
    )
    assert simulated.exit_code == 2 and "nope.toml" in simulated.output, simulated.output
