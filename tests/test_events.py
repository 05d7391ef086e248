from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from journeyc import events as events_module
from journeyc.events import (
    Event,
    EventError,
    parse_batch,
    parse_event,
    read_events_jsonl,
)

RECEIVED = 1_700_000_000_000


def track(**fields: Any) -> dict[str, Any]:
    return {"type": "track", "userId": "u1", "event": "Order Completed", **fields}


def error_lines(obj: object, **kw: Any) -> list[str]:
    with pytest.raises(EventError) as info:
        parse_event(obj, RECEIVED, **kw)
    return str(info.value).splitlines()


def test_track_is_normalized() -> None:
    e = parse_event(
        track(
            properties={"amount": 49.9, "items": [1, 2]},
            timestamp="2024-03-01T10:00:00.250Z",
            messageId="m-1",
            context={"ip": "1.2.3.4"},
            channel="server",  # an extra top-level key is ignored (sentAt is read now)
        ),
        RECEIVED,
    )
    assert e == Event(
        message_id="m-1",
        user_id="u1",
        kind="track",
        name="order_completed",
        at_ms=1709287200250,
        props={"amount": 49.9, "items": [1, 2]},
        received_ms=RECEIVED,
    )


@pytest.mark.parametrize(
    ("raw", "name"),
    [
        ("Order Completed", "order_completed"),
        ("product-viewed", "product_viewed"),
        ("App.Opened", "app_opened"),
        ("cart_abandoned", "cart_abandoned"),
    ],
)
def test_event_names_are_normalized(raw: str, name: str) -> None:
    assert parse_event(track(event=raw), RECEIVED).name == name


def test_identify_carries_traits() -> None:
    e = parse_event(
        {"type": "identify", "anonymousId": "anon-7", "traits": {"email": "a@b.c"}}, RECEIVED
    )
    assert (e.kind, e.name, e.user_id, e.props) == (
        "identify",
        "identify",
        "anon-7",
        {"email": "a@b.c"},
    )


def test_user_id_wins_over_anonymous_id_and_numbers_become_text() -> None:
    assert parse_event(track(anonymousId="a"), RECEIVED).user_id == "u1"
    assert parse_event(track(userId=42), RECEIVED).user_id == "42"
    assert parse_event(track(userId="", anonymousId="a"), RECEIVED).user_id == "a"


@pytest.mark.parametrize(
    ("stamp", "at_ms"),
    [
        ("2024-01-01T00:00:00Z", 1704067200000),
        ("2024-01-01T07:00:00+07:00", 1704067200000),
        ("2024-01-01T00:00:00", 1704067200000),  # naive is UTC
        ("2024-01-01T00:00:00.123456Z", 1704067200123),
    ],
)
def test_timestamps(stamp: str, at_ms: int) -> None:
    assert parse_event(track(timestamp=stamp), RECEIVED).at_ms == at_ms


def test_missing_timestamp_uses_received_time() -> None:
    assert parse_event(track(), RECEIVED).at_ms == RECEIVED


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (track(properties=[1]), "$.properties: expected an object"),
        (track(timestamp="yesterday"), '$.timestamp: not an ISO-8601 time "yesterday"'),
        (track(timestamp=1700000000), "$.timestamp: expected an ISO-8601 time string"),
        (track(userId=None), "$.userId/anonymousId: one is required"),
        (track(userId=["x"]), "$.userId: expected a string"),
        (track(event=None), "$.event: expected a string"),
        ({"type": "track", "userId": "u"}, "$.event: is required"),
        (track(event=" "), "$.event: must not be empty"),
        (track(event="Identify"), '$.event: "identify" is kept for identify calls'),
        (track(context="web"), "$.context: expected an object"),
        (track(messageId=7), "$.messageId: expected a string"),
        ({"type": "page", "userId": "u"}, '$.type: expected "track", "identify" or "alias"'),
        ({"userId": "u", "event": "x"}, "$.type: is required"),
        ({"type": "identify", "userId": "u", "traits": "vip"}, "$.traits: expected an object"),
        ([1, 2], "$: expected an object"),
    ],
)
def test_each_error_names_its_json_path(obj: object, expected: str) -> None:
    assert expected in error_lines(obj)


def test_all_problems_of_one_event_are_reported() -> None:
    lines = error_lines({"type": "track", "properties": 3, "timestamp": "soon", "event": "x"})
    assert sorted(lines) == [
        "$.properties: expected an object",
        '$.timestamp: not an ISO-8601 time "soon"',
        "$.userId/anonymousId: one is required",
    ]


def test_non_json_numbers_are_refused() -> None:
    lines = error_lines(track(properties={"x": float("nan")}))
    assert lines[0].startswith("$.properties: not JSON data")


def test_endpoint_kind_fills_a_missing_type_and_must_match() -> None:
    e = parse_event({"userId": "u", "event": "Signed Up"}, RECEIVED, kind="track")
    assert e.name == "signed_up"
    assert error_lines(track(), kind="identify") == ['$.type: expected "identify" here']


def test_generated_message_id_is_deterministic() -> None:
    a = parse_event(track(properties={"a": 1, "b": 2}), RECEIVED)
    b = parse_event({"properties": {"b": 2, "a": 1}, **track()}, RECEIVED + 5000)
    assert a.message_id == b.message_id
    assert a.message_id.startswith("jc-")
    # any meaningful difference gives another id
    assert parse_event(track(properties={"a": 2, "b": 2}), RECEIVED).message_id != a.message_id
    assert (
        parse_event(track(userId="u2"), RECEIVED).message_id
        != parse_event(track(), RECEIVED).message_id
    )
    # a given messageId is kept as it is
    assert parse_event(track(messageId="abc"), RECEIVED).message_id == "abc"


def test_batch_is_all_or_nothing(tmp_path: Path) -> None:
    good = [track(messageId=f"m{i}") for i in range(5)]
    events = parse_batch({"batch": good}, RECEIVED)
    assert [e.message_id for e in events] == [f"m{i}" for i in range(5)]

    bad = [*good[:3], {"type": "track", "userId": "u"}, good[4], track(properties=1)]
    with pytest.raises(EventError) as info:
        parse_batch({"batch": bad}, RECEIVED)
    assert str(info.value).splitlines() == [
        "$.batch[3].event: is required",
        "$.batch[5].properties: expected an object",
    ]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({}, "$.batch: is required"),
        ({"batch": {}}, "$.batch: expected an array"),
        ([], "$: expected an object"),
        ({"batch": [1]}, "$.batch[0]: expected an object"),
    ],
)
def test_batch_shape_errors(body: object, expected: str) -> None:
    with pytest.raises(EventError, match=expected.replace("[", r"\[").replace("$", r"\$")):
        parse_batch(body, RECEIVED)


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_read_jsonl(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "events.jsonl",
        [
            json.dumps(track(timestamp="2024-01-01T00:00:00Z")),
            "",
            json.dumps({"type": "identify", "userId": "u1", "traits": {"plan": "pro"}}),
        ],
    )
    events = read_events_jsonl(path, received_ms=RECEIVED)
    assert [(e.name, e.at_ms) for e in events] == [
        ("order_completed", 1704067200000),
        ("identify", RECEIVED),
    ]
    # reading the same file again yields the same ids, so a replay dedups
    again = read_events_jsonl(path, received_ms=RECEIVED + 60_000)
    assert [e.message_id for e in again] == [e.message_id for e in events]


def test_read_jsonl_reports_bytes_that_are_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(json.dumps(track()).encode() + b"\n" + b'{"event": "caf\xe9"}\n')
    with pytest.raises(EventError) as info:
        read_events_jsonl(path, received_ms=RECEIVED)
    assert str(info.value).startswith(f"{path}:2: $: not UTF-8 text")


def test_read_jsonl_lists_every_bad_line(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "bad.jsonl",
        [
            json.dumps(track()),
            "{not json",
            json.dumps(track(properties="x")),
            json.dumps(track()),
            json.dumps(track(timestamp="yesterday", userId=None)),
            '{"type": "track", "userId": "u", "event": "x", "properties": {"v": NaN}}',
            '{"type": "track", "userId": "u", "event": "x", "properties": {"v": -1e400}}',
        ],
    )
    with pytest.raises(EventError) as info:
        read_events_jsonl(path, received_ms=RECEIVED)
    lines = str(info.value).splitlines()
    assert lines[0].startswith(f"{path}:2: $: not valid JSON (")
    assert lines[1:] == [
        f"{path}:3: $.properties: expected an object",
        f'{path}:5: $.timestamp: not an ISO-8601 time "yesterday"',
        f"{path}:5: $.userId/anonymousId: one is required",
        f"{path}:6: $: not valid JSON (NaN is not JSON)",
        f"{path}:7: $: not valid JSON (the number -1e400 is out of range)",
    ]
    assert len(lines) == 6


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.dictionaries(st.text(), json_values, max_size=4), min_size=1, max_size=5))
@example([{"n": 2**64 + 1}, {"deep": [{"m": -(2**63) - 1}], "é": "١٢٣"}])
def test_a_file_reads_as_its_lines_parse(tmp_path: Path, props: list[dict[str, Any]]) -> None:
    """The reader's fast path (orjson, no second check that the values are JSON data)
    gives the events that parsing each line with the json module gives: integers
    beyond 64 bits and text in any script."""
    lines = [
        json.dumps(track(properties=p, messageId=f"m{i}"), ensure_ascii=i % 2 == 0)
        for i, p in enumerate(props)
    ]
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8", errors="surrogatepass")
    want = [parse_event(json.loads(line), RECEIVED) for line in lines]
    got = read_events_jsonl(path, received_ms=RECEIVED)
    assert json.dumps([e.props for e in got]) == json.dumps([e.props for e in want])
    assert got == want


LINES = st.one_of(
    st.builds(lambda i: json.dumps(track(messageId=f"m{i}")), st.integers(0, 99)),
    st.sampled_from(
        [
            "",
            "   ",
            "{not json",
            '{"type": "track", "userId": "u1", "event": "x",',
            json.dumps(track(properties="x")),
            json.dumps(track(timestamp="yesterday", userId=None)),
            json.dumps(track(event="Cart Viewed", timestamp="2026-01-05T10:00:00Z")),
        ]
    ),
)


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    lines=st.lists(LINES, max_size=40), workers=st.integers(2, 4), end=st.sampled_from(["", "\n"])
)
def test_a_file_read_in_parts_reads_as_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lines: list[str], workers: int, end: str
) -> None:
    """A large file is read in parts on several cores: the same events in the same
    order, and the same bad lines with their numbers, wherever the parts are cut."""
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + end, encoding="utf-8")

    def read(n: int) -> list[Event] | str:
        try:
            return read_events_jsonl(path, received_ms=RECEIVED, workers=n)
        except EventError as exc:
            return str(exc)

    whole = read(1)
    monkeypatch.setattr(events_module, "PARALLEL_READ_BYTES", 0)
    assert read(workers) == whole


def test_batch_skips_the_call_types_journeys_do_not_use() -> None:
    body = {
        "batch": [
            {"type": "page", "userId": "u1", "name": "Home"},
            {
                "type": "track",
                "userId": "u1",
                "event": "Cart Abandoned",
                "timestamp": "2026-01-05T10:00:00Z",
            },
            {"type": "group", "userId": "u1", "groupId": "g1"},
        ]
    }
    events = parse_batch(body, 0)
    assert [(e.kind, e.name) for e in events] == [("track", "cart_abandoned")]


def test_a_batch_item_whose_type_is_not_a_string_is_a_clear_error() -> None:
    # Found by schemathesis: `"type": {}` once made the skip check raise (a 500).
    with pytest.raises(EventError) as info:
        parse_batch({"batch": [{"type": {}, "userId": "u1", "traits": {}}]}, 0)
    assert "$.batch[0]" in str(info.value)


# ---------------------------------------------------------------- text that is not UTF-8

LONE = "\ud800"  # a lone surrogate: a Python str, but no UTF-8 text (JSON may carry it)


@pytest.mark.parametrize(
    ("obj", "path"),
    [
        (track(userId=LONE), "$.userId"),
        (track(anonymousId="a" + LONE), "$.anonymousId"),
        (track(event=LONE), "$.event"),
        (track(messageId=LONE), "$.messageId"),
        (track(timestamp=LONE), "$.timestamp"),
        (track(properties={"foo": LONE}), "$.properties.foo"),
        (track(properties={"a": [1, {"b": ["x", LONE]}]}), "$.properties.a[1].b[1]"),
        (track(properties={"a": {LONE: 1}}), '$.properties.a["\\ud800"]: the key is'),
        (track(context={"ip": LONE}), "$.context.ip"),
        (track(sentAt=LONE), "$.sentAt"),
        ({"type": "identify", "userId": "u", "traits": {"name": LONE}}, "$.traits.name"),
        (
            {"type": "identify", "userId": "u", "traits": {LONE + "x": 1}},
            '$.traits["\\ud800x"]: the key is',
        ),
    ],
)
def test_text_that_is_not_utf8_is_refused_naming_its_path(obj: object, path: str) -> None:
    lines = error_lines(obj)
    where = path if path.endswith(" is") else f"{path}:"
    assert f"{where} not valid text (a lone surrogate \\ud800 cannot be written as UTF-8)" in (
        lines
    ), lines
    # The report itself is text that can be written anywhere.
    "\n".join(lines).encode("utf-8")


def test_every_bad_string_of_a_call_is_reported_with_its_other_problems() -> None:
    lines = error_lines(
        {"type": "track", "userId": LONE, "event": "x", "properties": {LONE: LONE}, "timestamp": 5}
    )
    assert sorted(line.split(":")[0] for line in lines) == [
        '$.properties["\\ud800"]',
        '$.properties["\\ud800"]',
        "$.timestamp",
        "$.userId",
    ]


def test_a_bad_string_in_a_batch_names_its_item_and_nothing_is_returned() -> None:
    calls = [track(messageId="m0"), track(messageId="m1"), track(properties={"foo": LONE})]
    with pytest.raises(EventError) as info:
        parse_batch({"batch": calls, "context": {"library": LONE}}, RECEIVED)
    paths = [p.path for p in info.value.problems]
    assert paths == ["$.batch[2].properties.foo", "$.context.library"]


def test_a_surrogate_pair_is_text() -> None:
    e = parse_event(json.loads('{"type": "track", "userId": "\\ud83d\\ude00", "event": "x"}'), 0)
    assert e.user_id == "\U0001f600"


def test_a_file_with_a_lone_surrogate_names_the_line_and_path(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "events.jsonl",
        [
            json.dumps(track(userId="caf\u00e9")),  # an escape that is fine
            '{"type": "track", "userId": "\\ud800", "event": "x"}',
            '{"type": "track", "userId": "u", "event": "x", "properties": {"k": {"\\uDFFF": 1}}}',
        ],
    )
    with pytest.raises(EventError) as info:
        read_events_jsonl(path, received_ms=RECEIVED)
    assert str(info.value).splitlines() == [
        f"{path}:2: $.userId: not valid text (a lone surrogate \\ud800 cannot be written as UTF-8)",
        f'{path}:3: $.properties.k["\\udfff"]: the key is not valid text '
        "(a lone surrogate \\udfff cannot be written as UTF-8)",
    ]


def test_anonymous_id_must_be_a_string() -> None:
    call = {"type": "track", "anonymousId": 0, "event": "x"}
    assert error_lines(call) == ["$.anonymousId: expected a string"]
    assert error_lines({**call, "userId": "u"}) == ["$.anonymousId: expected a string"]


# ---------------------------------------------------------------- generated message ids


def test_the_caller_chooses_the_id_of_a_call_without_one() -> None:
    ids = iter(f"id-{i}" for i in range(1, 10))
    assert parse_event(track(), RECEIVED, new_id=lambda: next(ids)).message_id == "id-1"
    # a given messageId is kept (new_id is not asked)
    assert parse_event(track(messageId="m"), RECEIVED, new_id=lambda: next(ids)).message_id == "m"
    body = {"batch": [track(), track(messageId="m"), track()]}
    events = parse_batch(body, RECEIVED, new_id=lambda: next(ids))
    assert [e.message_id for e in events] == ["id-2", "m", "id-3"]


def test_identical_lines_of_a_file_are_two_events_and_a_rerun_is_the_same(
    tmp_path: Path,
) -> None:
    line = json.dumps(track(timestamp="2024-01-01T00:00:00Z"))
    path = write_lines(tmp_path / "events.jsonl", [line, "", line])
    first = read_events_jsonl(path, received_ms=RECEIVED)
    assert len(first) == 2
    assert first[0].message_id != first[1].message_id
    assert all(e.message_id.startswith("jc-") for e in first)
    # the same file read again (later, or from elsewhere) gives the same ids
    again = read_events_jsonl(path, received_ms=RECEIVED + 1)
    assert [e.message_id for e in again] == [e.message_id for e in first]
    # an id is the line's: lines added at the end leave the earlier ids alone
    longer = write_lines(tmp_path / "events.jsonl", [line, "", line, line])
    assert [e.message_id for e in read_events_jsonl(longer, received_ms=RECEIVED)][:2] == [
        e.message_id for e in first
    ]
    # another line at the same place is another event
    other = write_lines(tmp_path / "events.jsonl", [json.dumps(track(event="x")), "", line])
    ids = [e.message_id for e in read_events_jsonl(other, received_ms=RECEIVED)]
    assert ids[0] != first[0].message_id and ids[1] == first[1].message_id
