"""Parser unit tests: shapes, spans, worded syntax errors and recovery."""

from __future__ import annotations

from journeyc.lang import ast
from journeyc.lang.parser import parse_source


def parse_ok(text: str, path: str = "j.journey") -> ast.SourceFile:
    result = parse_source(text, path)
    assert result.tree is not None, result.diagnostics
    assert [d for d in result.diagnostics if d.is_error] == []
    return result.tree


def codes(text: str, path: str = "j.journey") -> list[tuple[str, int, int]]:
    result = parse_source(text, path)
    return [(d.code, d.span.line, d.span.column) for d in result.diagnostics]


def test_bare_file_is_one_journey_named_after_the_file() -> None:
    tree = parse_ok(
        "when cart_abandoned\nwait 30m\nsend push x\n", "journeys/cart-abandoned.journey"
    )
    (journey,) = tree.journeys
    assert journey.name == "cart_abandoned"
    assert journey.bare
    assert isinstance(journey.clauses[0], ast.WhenEvent)
    assert [type(s) for s in journey.steps] == [ast.Wait, ast.Send]


def test_named_journeys_beside_messages_and_segments() -> None:
    src = (
        'journey a "Title A"\n  when x\n  exit\n\n'
        "journey b\n  when y\n  wait 1h\n\n"
        "segment s = count(x) > 1\n\n"
        'message m\n  push\n    title "t"\n'
    )
    tree = parse_ok(src)
    assert [j.name for j in tree.journeys] == ["a", "b"]
    assert tree.journeys[0].title == "Title A"
    assert [s.name for s in tree.segments] == ["s"]
    assert tree.messages[0].parts[0].fields[0].value.value == "t"


def test_event_names_are_normalized() -> None:
    tree = parse_ok(
        'when "Order Completed"\nexit when checkout-started\n'.replace(
            "checkout-started", '"Checkout-Started"'
        )
    )
    (journey,) = tree.journeys
    assert isinstance(journey.clauses[0], ast.WhenEvent)
    assert journey.clauses[0].event == "order_completed"
    assert isinstance(journey.clauses[1], ast.ExitWhen)
    assert journey.clauses[1].event == "checkout_started"


def test_durations_times_percentages() -> None:
    tree = parse_ok("when x\nentry once per 1h30m\nquiet hours 22:00-08:00 skip\nholdout 33.3%\n")
    _, entry, quiet, holdout = tree.journeys[0].clauses
    assert isinstance(entry, ast.Entry) and entry.per is not None
    assert (entry.mode, entry.per.seconds) == ("once_per", 5400)
    assert isinstance(quiet, ast.QuietHours)
    assert (str(quiet.start), str(quiet.end), quiet.skip) == ("22:00", "08:00", True)
    assert isinstance(holdout, ast.Holdout) and holdout.percent.value == 33.3


def test_expression_precedence_and_between() -> None:
    tree = parse_ok(
        "segment s = a or b and not c == 1 + 2 * 3\nsegment t = x between 1 and 2 and y\n"
    )
    s, t = tree.segments
    assert isinstance(s.expr, ast.Binary) and s.expr.op == "or"
    right = s.expr.right
    assert isinstance(right, ast.Binary) and right.op == "and"
    assert isinstance(right.right, ast.Unary) and right.right.op == "not"
    cmp = right.right.operand
    assert isinstance(cmp, ast.Binary) and cmp.op == "=="
    assert isinstance(cmp.right, ast.Binary) and cmp.right.op == "+"
    assert isinstance(t.expr, ast.Binary) and t.expr.op == "and"
    assert isinstance(t.expr.left, ast.Between)


def test_aggregates_take_event_property_where_within() -> None:
    tree = parse_ok(
        'segment s = sum(order_completed.amount where event.currency == "THB" within 365d) >= 5\n'
    )
    expr = tree.segments[0].expr
    assert isinstance(expr, ast.Binary)
    agg = expr.left
    assert isinstance(agg, ast.Aggregate)
    assert (agg.func, agg.event, agg.prop) == ("sum", "order_completed", ("amount",))
    assert agg.within is not None and agg.within.seconds == 365 * 86400
    assert agg.where is not None


def test_continuation_inside_brackets() -> None:
    tree = parse_ok('when x\nif lifecycle in ["new",\n      "dormant"] and (a or\n  b)\n  exit\n')
    step = tree.journeys[0].steps[0]
    assert isinstance(step, ast.If)


def test_spans_point_at_source() -> None:
    src = "when x\nwait 30m as first_nudge\n"
    tree = parse_ok(src)
    wait = tree.journeys[0].steps[0]
    assert isinstance(wait, ast.Wait) and wait.label is not None
    assert (wait.span.line, wait.span.column) == (2, 1)
    assert src[wait.span.start : wait.span.end] == "wait 30m as first_nudge"
    assert src[wait.label.span.start : wait.label.span.end] == "first_nudge"


def test_spans_do_not_take_part_in_equality() -> None:
    a = parse_ok("when x\nwait 30m\n").journeys[0]
    b = parse_ok("# a comment\n\nwhen   x\n\n\nwait    30m\n").journeys[0]
    assert a == b


def test_crlf_no_trailing_newline_and_comment_only_lines() -> None:
    tree = parse_ok("when x\r\n# note\r\n  # indented note\r\nwait 1h")
    assert len(tree.journeys[0].steps) == 1


def test_syntax_error_words_and_position() -> None:
    result = parse_source("when x\nentry once per\n", "j.journey")
    (d,) = result.diagnostics
    assert d.code == "journey_parse_error"
    assert (d.span.line, d.span.column) == (2, 15)
    assert "a duration like `30m`" in d.label
    assert "DURATION" not in d.label and "_NL" not in d.label


def test_recovery_reports_every_bad_line() -> None:
    src = "when x\nwait\nsend\nif\n  exit\nwait 30m\nexit when\n"
    found = codes(src)
    assert [line for _, line, _ in found] == [2, 3, 4, 7]
    assert all(code == "journey_parse_error" for code, _, _ in found)


def test_tabs_name_their_line() -> None:
    assert codes("when x\nif a\n\tsend push m\n")[0] == ("tab_indent", 3, 1)


def test_literal_errors_are_all_reported() -> None:
    found = codes("when x\nholdout 120%\nwait 30x\nwait until 25:00\nwait 0m\n")
    assert [c for c, _, _ in found] == ["bad_holdout", "bad_duration", "bad_time", "zero_duration"]


def test_unterminated_string() -> None:
    assert codes('when x\nsend push "hello\n') == [("unterminated_string", 2, 11)]


def test_bad_dedent_names_its_line() -> None:
    found = codes("when x\nif a\n    exit\n  exit\n")
    assert found[0][:2] == ("bad_indent", 4)


def test_empty_and_comment_only_files_parse() -> None:
    assert parse_ok("").declarations == ()
    assert parse_ok("# nothing yet\n\n").declarations == ()


def test_keywords_are_not_names() -> None:
    assert codes("segment s = exists(email) and and\n") == [("journey_parse_error", 1, 31)]
    assert codes("segment s = not\n")[0][0] == "journey_parse_error"


# ------------------------------------------------------------------ did you mean


def _one(text: str) -> tuple[str, str, str, int, int]:
    [d] = parse_source(text, "j.journey").diagnostics
    return (d.code, d.summary, d.label, d.span.line, d.span.column)


def test_a_mistyped_keyword_gets_the_keywords_valid_there() -> None:
    assert _one('when x\nsned push "x"\n') == (
        "journey_parse_error",
        "unexpected `sned`",
        "did you mean `send`?",
        2,
        1,
    )
    # The expected words stay, as a note.
    [d] = parse_source("when x\nentry onse\n", "j.journey").diagnostics
    assert (d.label, d.detail) == ("did you mean `once`?", "expected `always` or `once`")


def test_only_keywords_valid_at_that_point_are_suggested() -> None:
    # `when` is a keyword, but not one that can follow `wait … up`.
    assert _one("when x\nwait for y up ot 2d\n")[2] == "did you mean `to`?"
    assert _one("when x\nif a adn b\n  exit\n")[2] == "did you mean `and`?"
    assert _one("when x\nwait 1h\nwait until 10:00 no monday\n")[2] == "did you mean `on`?"


def test_two_keywords_as_close_are_both_suggested() -> None:
    assert _one('when x\nsent push "x"\n')[2] == "did you mean `send` or `set`?"


def test_no_suggestion_when_no_keyword_is_close() -> None:
    code, summary, label, _, _ = _one("when x\nfrobnicate the cart\n")
    assert (code, summary) == ("journey_parse_error", "unexpected `frobnicate`")
    assert label.startswith("expected ") and "did you mean" not in label


def test_a_keyword_run_into_more_letters_is_one_word() -> None:
    # The lexer reads `until` and then `l`: the whole word is reported.
    assert _one("when x\nwait untill 09:00\n") == (
        "journey_parse_error",
        "unexpected `untill`",
        "did you mean `until`?",
        2,
        6,
    )


def test_a_misspelt_word_before_the_unexpected_one() -> None:
    _, summary, label, line, column = _one("when enterng hero\nexit\n")
    assert (summary, line, column) == ("unexpected `hero`", 1, 14)
    assert label == "`enterng` before it: did you mean `entering`?"


def test_a_time_of_day_in_an_expression_is_a_type_error() -> None:
    [d] = parse_source("when x where event.hour >= 18:30\nexit\n", "j.journey").diagnostics
    assert (d.code, d.span.line, d.span.column, d.span.end_column) == ("type_error", 1, 28, 33)
    assert "`18:30`" in d.summary
    assert any("days_since(...)" in h and "hours_since(...)" in h for h in d.hints)
    # Where a time belongs, it is one; elsewhere the usual words.
    assert codes("when x\nwait until 18:30\n") == []
    assert codes("when x\nwait 18:30\n")[0][0] == "journey_parse_error"
