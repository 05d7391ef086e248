"""A replay split between processes gives what one replay gives: the same actions in
the output order, and the same A/B cohorts (journeyc.engine.parallel)."""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import given, reject
from hypothesis import strategies as st

from journeyc import pipes
from journeyc.compile import ir
from journeyc.compile.lower import lower_project
from journeyc.engine import parallel
from journeyc.engine.parallel import (
    WorkerError,
    in_output_order,
    part_of,
    simulate_parallel,
)
from journeyc.engine.reads import shared_reads
from journeyc.engine.simulate import simulate
from journeyc.events import Event
from journeyc.lang.project import load_project
from journeyc.store.sqlite import Cohort, Store, entry_cohorts
from tests.engine_helpers import (
    DAY,
    EVERY_LINE,
    TMP_DIR,
    compile_files,
    identify,
    ms,
    reject_runaways,
    time_limit,
    track,
)
from tests.journey_strategies import Scenario, scenarios

ROOT = Path(__file__).resolve().parent.parent

Outcome = tuple[list[str], list[Cohort]]


def _one(
    project: ir.ProjectIR,
    events: list[Event],
    start_ms: int | None = None,
    until_ms: int | None = None,
    profiles: dict[str, dict[str, Any]] | None = None,
) -> Outcome:
    with tempfile.TemporaryDirectory(dir=TMP_DIR) as tmp:
        store = Store.open(Path(tmp) / "s.db")
        try:
            parallel.fill_store(store, profiles or {}, ())
            with time_limit(30):
                actions = simulate(project, events, store, start_ms=start_ms, until_ms=until_ms)
            return [a.to_json() for a in in_output_order(actions)], entry_cohorts(store.conn)
        finally:
            store.close()


def _split(
    project: ir.ProjectIR,
    events: list[Event],
    workers: int,
    start_ms: int | None = None,
    until_ms: int | None = None,
    profiles: dict[str, dict[str, Any]] | None = None,
) -> Outcome:
    actions, cohorts = simulate_parallel(
        project, events, workers=workers, start_ms=start_ms, until_ms=until_ms, profiles=profiles
    )
    return [a.to_json() for a in actions], cohorts


def _users_in_parts(n: int, parts: int = 2) -> list[str]:
    """``n`` user ids, each in a part of its own (``n <= parts``)."""
    found: dict[int, str] = {}
    i = 0
    while len(found) < n:
        found.setdefault(part_of(f"user{i}", parts), f"user{i}")
        i += 1
    return [found[k] for k in sorted(found)]


# ---------------------------------------------------------------- the same outcome


@given(scenarios(scheduled=True), st.sampled_from([2, 3, 4]), st.booleans())
def test_a_split_replay_agrees_with_one_replay_on_generated_scenarios(
    scenario: Scenario, workers: int, open_ended: bool
) -> None:
    # Without --until, an `every` entry into a journey that waits keeps the clock going
    # for ever: scheduled projects run to the scenario's end.
    scheduled = any(EVERY_LINE.search(text) for text in scenario.files.values())
    until_ms = None if open_ended and not scheduled else scenario.until_ms
    reject_runaways(scenario.files, scenario.events, scenario.start_ms, until_ms)
    project = compile_files(scenario.files)
    if shared_reads(project) is not None:
        reject()
    one = _one(project, scenario.events, scenario.start_ms, until_ms)
    assert _split(project, scenario.events, workers, scenario.start_ms, until_ms) == one


def test_a_split_replay_agrees_with_one_replay_on_a_shop() -> None:
    """The benchmark's ten journeys (segments, splits, holdouts, caps, quiet hours,
    waits for events, sets and tracks) over a seeded slice of its shop."""
    sys.path.insert(0, str(ROOT))
    from bench import bench_simulate as shop

    with tempfile.TemporaryDirectory() as tmp:
        project = shop.compile_project(shop.write_project(Path(tmp) / "proj"))
    events = shop.EventMaker(3_000, 300, seed=7).make()
    one = _one(project, events, shop.START_MS)
    assert len(one[0]) > 1_000 and any(arm is not None for _, arm, *_ in one[1])
    for workers in (2, 3):
        assert _split(project, events, workers, shop.START_MS) == one
    # The lines the replay processes write are the records' lines, in the same order.
    out = io.StringIO()
    actions, cohorts = simulate_parallel(
        project, events, workers=2, start_ms=shop.START_MS, json_out=out
    )
    assert actions == [] and cohorts == one[1]
    assert out.getvalue().splitlines() == one[0]


SEGMENT_EDGE = {
    "s.journey": """segment browsing = count(viewed within 1d) >= 1

journey lapsed "Stopped browsing"
  when leaving browsing
  send inapp "Still looking?"

journey slow "A long wait"
  when ordered
  wait 3d
  send inapp "Thanks again"
"""
}


def test_a_part_with_nothing_waiting_runs_on_while_another_part_waits() -> None:
    """The whole replay lasts while any user waits: a user whose own replay is over
    still leaves the segment a day after browsing, because another user in another
    part waits three days. And with nobody waiting, the replay ends before that."""
    project = compile_files(SEGMENT_EDGE)
    browser, buyer = _users_in_parts(2)
    t0 = ms("2026-01-05T10:00:00Z")
    both = [track(browser, "viewed", t0), track(buyer, "ordered", t0 + 60_000)]
    one = _one(project, both)
    lapsed = [line for line in one[0] if '"journey": "lapsed"' in line]
    assert [json.loads(line)["action"] for line in lapsed] == ["enter", "send", "exit"]
    assert _split(project, both, 2) == one

    alone = _one(project, both[:1])
    assert not any('"journey": "lapsed"' in line for line in alone[0])
    assert _split(project, both[:1], 2) == alone


def test_profiles_and_repeated_message_ids_are_split_as_one_replay_sees_them() -> None:
    """Starting profiles go to their user's part, and a messageId repeated by another
    user is dropped once for all (the first one stays), as one replay drops it."""
    project = compile_files(
        {
            "p.journey": """journey vip "VIP"
  when viewed
  entry always
  if tier == "gold"
    send inapp "Hello gold"
  else
    send inapp "Hello"
"""
        }
    )
    a, b = _users_in_parts(2)
    t0 = ms("2026-01-05T10:00:00Z")
    events = [
        track(a, "viewed", t0, mid="m1"),
        track(b, "viewed", t0 + 1, mid="m1"),  # repeats m1: dropped
        track(b, "viewed", t0 + 2, mid="m2"),
        identify(a, t0 + 3, mid="m3", tier="silver"),
        track(a, "viewed", t0 + 4, mid="m4"),
    ]
    profiles = {a: {"tier": "gold"}, b: {"tier": "gold"}}
    one = _one(project, events, profiles=profiles)
    bodies = [
        (json.loads(x)["user"], json.loads(x)["content"]["body"]) for x in one[0] if "send" in x
    ]
    assert bodies == [(a, "Hello gold"), (b, "Hello gold"), (a, "Hello")]
    assert _split(project, events, 2, profiles=profiles) == one


# ---------------------------------------------------------------- what cannot be split


def test_shared_reads_names_what_a_user_reads_of_the_others() -> None:
    examples = lower_project(load_project([ROOT / "journeys"]))
    reason = shared_reads(examples)
    assert reason is not None and "every user's events" in reason
    with pytest.raises(ValueError, match="not independent"):
        simulate_parallel(examples, [], workers=2)

    plain = {"a.journey": 'journey a "A"\n  when viewed\n  send inapp "most popular today"\n'}
    assert shared_reads(compile_files(plain)) is None  # the word in copy, not a filter
    inline = {
        "a.journey": 'journey a "A"\n  when viewed\n'
        "  send inapp \"{{ 'shoes' | top_sellers: 3 | map: 'name' | join: ', ' }}\"\n"
    }
    assert "journey a" in str(shared_reads(compile_files(inline)))
    scheduled = {
        "a.journey": 'segment all = exists(email)\n\njourney a "A"\n'
        '  every day at 09:00 for all\n  send inapp "Morning"\n'
    }
    assert shared_reads(compile_files(scheduled)) is None  # each process fires its own


# ---------------------------------------------------------------- failures


@pytest.mark.parametrize("until", [None, "2026-01-06T00:00:00Z"])
def test_a_replay_process_that_fails_or_dies_is_reported(until: str | None) -> None:
    """Open-ended (the parts agree on the end) and with --until (one round)."""
    project = compile_files(SEGMENT_EDGE)
    events = [track(u, "viewed", "2026-01-05T10:00:00Z") for u in _users_in_parts(2)]
    until_ms = None if until is None else ms(until)

    def fail(self: Any, horizon: int | None = None) -> int | None:
        raise RuntimeError("engine bug")

    # The processes fork from this one: the patch is theirs too.
    failing = mock.patch.object(parallel.Replay, "run", fail)
    with failing, pytest.raises(WorkerError, match=r"(?s)failed:.*RuntimeError: engine bug"):
        simulate_parallel(project, events, workers=2, until_ms=until_ms)
    dying = mock.patch.object(parallel.Replay, "run", lambda *_: os._exit(3))
    with dying, pytest.raises(WorkerError, match=r"died \(exit code 3\)"):
        simulate_parallel(project, events, workers=2, until_ms=until_ms)


@pytest.mark.parametrize(
    "message",
    [
        ("ok", ([(1, "u1", "j", "s", "send", {"content": {"body": "é"}, "n": [1.5, None]})], [])),
        ("ok", (None, 7)),
        ("ok", ([(1, "u1", "j", None, "set", {"value": datetime(2026, 1, 5, tzinfo=UTC)})], [])),
    ],
)
def test_what_a_replay_process_sends_arrives_whole(message: Any) -> None:
    """Actions go over the pipe with marshal; a value marshal does not write (a
    datetime) goes with pickle."""
    mine, theirs = multiprocessing.Pipe()
    with mine, theirs:
        pipes.send(theirs, message)
        assert pipes.receive(mine) == message


# ---------------------------------------------------------------- the command


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "journeyc", "simulate", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_simulate_workers_prints_the_same_lines_as_one_process(tmp_path: Path) -> None:
    (tmp_path / "s.journey").write_text(SEGMENT_EDGE["s.journey"], encoding="utf-8")
    users = _users_in_parts(2) * 20
    lines = [
        json.dumps(
            {
                "type": "track",
                "userId": f"{u}-{k}",
                "event": "ordered" if k % 3 else "viewed",
                "timestamp": f"2026-01-05T10:{k % 60:02d}:00Z",
                "messageId": f"m{k}",
            }
        )
        for k, u in enumerate(users)
    ]
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(lines) + "\n", encoding="utf-8")
    runs = {
        n: _cli(str(tmp_path / "s.journey"), "--events", str(events), "--json", "--workers", n)
        for n in ("1", "2", "3")
    }
    assert all(r.returncode == 0 and r.stderr == "" for r in runs.values()), runs
    assert runs["1"].stdout.count("\n") > 40
    assert runs["2"].stdout == runs["1"].stdout == runs["3"].stdout
    text = {
        n: _cli(str(tmp_path / "s.journey"), "--events", str(events), "--workers", n)
        for n in ("1", "2")
    }
    assert text["1"].stdout == text["2"].stdout and "summary:" in text["1"].stdout


def test_simulate_workers_says_why_it_replays_in_one_process(tmp_path: Path) -> None:
    events = ROOT / "examples" / "events.jsonl"
    shared = _cli(str(ROOT / "journeys"), "--events", str(events), "--workers", "2", "--json")
    assert shared.returncode == 0, shared.stderr
    assert shared.stderr.startswith("journeyc: replaying in one process: ")
    alone = _cli(str(ROOT / "journeys"), "--events", str(events), "--json")
    assert alone.stdout == shared.stdout and alone.stderr == ""

    (tmp_path / "s.journey").write_text(SEGMENT_EDGE["s.journey"], encoding="utf-8")
    kept = _cli(
        str(tmp_path / "s.journey"),
        "--events",
        str(events),
        "--workers",
        "2",
        "--db",
        str(tmp_path / "kept.db"),
    )
    assert kept.returncode == 0, kept.stderr
    assert "replaying in one process: --db keeps one store file" in kept.stderr
    assert (tmp_path / "kept.db").stat().st_size > 0


SCHEDULED = {
    "s.journey": """segment dormant = lifecycle == "dormant"
segment buyer = count(ordered within 3d) >= 1

journey daily "Daily"
  every day at 10:00 for dormant
  entry once per 2d
  send inapp "Come back"

journey pulse "Pulse"
  every 6h for everyone
  entry once per 1d
  wait 2h
  send inapp "Ping"

journey monday "Monday"
  every monday at 09:00 for buyer
  send inapp "Monday picks"

journey thanks "Thanks"
  when ordered
  wait 1d
  set lifecycle = "dormant"
"""
}


@pytest.mark.parametrize("open_ended", [False, True], ids=["until", "open-ended"])
def test_scheduled_entries_split_as_one_replay_makes_them(open_ended: bool) -> None:
    """`every` schedules enter each process's own users: per zone (users in four
    time zones), for a segment, for everyone, on an interval; a segment a journey's
    `set` changes; the clock's end agreed without --until."""
    project = compile_files(SCHEDULED)
    zones = ["UTC", "Asia/Bangkok", "Europe/Paris", "America/New_York"]
    users = _users_in_parts(3, 3) + [f"x{k}" for k in range(9)]
    t0 = ms("2026-01-05T08:00:00Z")  # a Monday
    events: list[Event] = []
    for k, user in enumerate(users):
        life = "dormant" if k % 3 == 0 else "active"
        events.append(identify(user, t0 + k * 60_000, timezone=zones[k % 4], lifecycle=life))
        if k % 2:
            events.append(track(user, "ordered", t0 + (k + 1) * 3_600_000))
    until = None if open_ended else t0 + 9 * DAY
    one = _one(project, events, until_ms=until)
    kinds = {json.loads(line)["journey"] for line in one[0]}
    assert {"daily", "pulse", "monday", "thanks"} <= kinds
    for workers in (2, 3):
        assert _split(project, events, workers, until_ms=until) == one, workers
