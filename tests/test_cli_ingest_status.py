"""`journeyc ingest` and `journeyc status` over real SQLite files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from journeyc.cli import main
from journeyc.cli.ingest import CHUNK, append_all
from journeyc.compile.lower import lower_project
from journeyc.engine.core import Engine
from journeyc.events import parse_event
from journeyc.lang.project import load_project
from journeyc.serve.dispatcher import Dispatcher
from journeyc.store.sqlite import Store

PROJECT = """\
journey ping "Waits an hour"
  when pinged
  entry always
  wait 1h as pause
  send push "later" as later

journey greet "Greets at once"
  when greeted
  send push "hi" as hi
"""

T0 = 1_767_600_000_000  # 2026-01-05T08:00:00Z


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no journeyc.toml of the repository is read


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def lines(*objs: object) -> str:
    return "".join(json.dumps(o) + "\n" for o in objs)


GOOD = lines(
    {"type": "identify", "userId": "u1", "traits": {"plan": "pro"}, "messageId": "m1"},
    {"type": "track", "userId": "u1", "event": "Order Completed", "messageId": "m2"},
    {"type": "track", "userId": "u2", "event": "pinged", "timestamp": "2026-01-05T10:00:00Z"},
)


def event_count(db: Path) -> int:
    store = Store.open(db)
    try:
        return store.counts()["events"]
    finally:
        store.close()


# ---------------------------------------------------------------- ingest


def test_ingest_counts_new_events_then_duplicates(tmp_path: Path) -> None:
    events, db = tmp_path / "events.jsonl", tmp_path / "store.db"
    events.write_text(GOOD)

    first = run("ingest", str(events), "--db", str(db))
    assert first.exit_code == 0, first.output
    assert "3 event(s) read" in first.stdout
    assert "3 new, 0 duplicate(s)" in first.stdout

    again = run("ingest", str(events), "--db", str(db))
    assert again.exit_code == 0
    assert "0 new, 3 duplicate(s)" in again.stdout
    store = Store.open(db)
    try:
        assert store.counts()["events"] == 3
        assert store.get_profile("u1") == {"plan": "pro"}
        names = [e.name for e in store.events_after(0)]
        assert names == ["identify", "order_completed", "pinged"]
    finally:
        store.close()


def test_ingest_lists_every_bad_line_and_stores_nothing(tmp_path: Path) -> None:
    events, db = tmp_path / "events.jsonl", tmp_path / "store.db"
    events.write_text(GOOD)
    assert run("ingest", str(events), "--db", str(db)).exit_code == 0
    events.write_text(
        lines({"type": "track", "userId": "u3", "event": "fresh", "messageId": "m9"})
        + lines({"type": "track", "userId": "u3"})
        + "{not json\n"
        + lines({"type": "track", "event": "x"})
    )

    result = run("ingest", str(events), "--db", str(db))
    assert result.exit_code == 1
    assert "nothing was stored" in result.stderr
    assert f"{events}:2: $.event: is required" in result.stderr
    assert f"{events}:3: $: not valid JSON" in result.stderr
    assert f"{events}:4: $.userId/anonymousId: one is required" in result.stderr
    assert f"{events}:1:" not in result.stderr
    assert event_count(db) == 3  # the good first line was not stored either


def test_ingest_of_a_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    result = run("ingest", str(tmp_path / "nope.jsonl"), "--db", str(tmp_path / "s.db"))
    assert result.exit_code == 2
    assert "no such file" in result.stderr
    assert not (tmp_path / "s.db").exists()


def test_ingest_reads_the_store_path_of_journeyc_toml(tmp_path: Path) -> None:
    (tmp_path / "journeyc.toml").write_text('[store]\npath = "data/j.db"\n')
    (tmp_path / "data").mkdir()
    (tmp_path / "events.jsonl").write_text(GOOD)
    result = run("ingest", "events.jsonl")
    assert result.exit_code == 0, result.output
    assert event_count(tmp_path / "data" / "j.db") == 3


def test_append_all_commits_in_chunks_and_reports_progress(tmp_path: Path) -> None:
    events = [
        parse_event({"type": "track", "userId": f"u{i}", "event": "e"}, T0)
        for i in range(CHUNK * 2 + 5)
    ]
    seen: list[int] = []
    store = Store.open(tmp_path / "s.db")
    try:
        assert append_all(store, events, seen.append) == (len(events), 0)
        assert seen == [CHUNK, CHUNK * 2, CHUNK * 2 + 5]
        assert append_all(store, events[:10]) == (0, 10)
    finally:
        store.close()


LONE = '"\\ud800"'  # a JSON string whose text is a lone surrogate: no UTF-8 text


def test_ingest_refuses_text_that_is_not_utf8_naming_line_and_path(tmp_path: Path) -> None:
    events, db = tmp_path / "events.jsonl", tmp_path / "store.db"
    events.write_text(
        GOOD
        + f'{{"type": "track", "userId": {LONE}, "event": "x"}}\n'
        + f'{{"type": "identify", "userId": "u", "traits": {{"a": {{{LONE}: 1}}}}}}\n'
    )
    result = run("ingest", str(events), "--db", str(db))
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert "nothing was stored" in result.stderr
    assert f"{events}:4: $.userId: not valid text (a lone surrogate \\ud800" in result.stderr
    assert f'{events}:5: $.traits.a["\\ud800"]: the key is not valid text' in result.stderr
    assert not db.exists() or event_count(db) == 0


def test_ingest_keeps_equal_lines_without_message_id_and_a_rerun_adds_nothing(
    tmp_path: Path,
) -> None:
    events, db = tmp_path / "events.jsonl", tmp_path / "store.db"
    call = {"type": "track", "userId": "u1", "event": "pinged", "timestamp": "2026-01-05T10:00:00Z"}
    events.write_text(lines(call, call))
    first = run("ingest", str(events), "--db", str(db))
    assert first.exit_code == 0, first.output
    assert "2 new, 0 duplicate(s)" in first.stdout
    again = run("ingest", str(events), "--db", str(db))
    assert "0 new, 2 duplicate(s)" in again.stdout
    # the file grown by a line: only the new line is new
    events.write_text(lines(call, call, call))
    grown = run("ingest", str(events), "--db", str(db))
    assert "1 new, 2 duplicate(s)" in grown.stdout
    assert event_count(db) == 3


def test_simulate_refuses_text_that_is_not_utf8_naming_line_and_path(tmp_path: Path) -> None:
    journeys = tmp_path / "journeys"
    journeys.mkdir()
    (journeys / "main.journey").write_text(PROJECT)
    events = tmp_path / "events.jsonl"
    events.write_text(GOOD + f'{{"type": "track", "userId": "u", "event": {LONE}}}\n')
    result = run("simulate", str(journeys), "--events", str(events))
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert f"{events}:4: $.event: not valid text (a lone surrogate \\ud800" in result.stderr

    profiles = tmp_path / "profiles.jsonl"
    profiles.write_text(f'{{"userId": "u1", "traits": {{"name": {LONE}}}}}\n')
    events.write_text(GOOD)
    result = run("simulate", str(journeys), "--events", str(events), "--profiles", str(profiles))
    assert result.exit_code == 1, result.output
    assert f"{profiles}:1: $.traits.name: not valid text" in result.stderr


def test_a_catalog_with_text_that_is_not_utf8_is_refused_naming_line_and_path(
    tmp_path: Path,
) -> None:
    journeys = tmp_path / "journeys"
    journeys.mkdir()
    (journeys / "main.journey").write_text(PROJECT)
    events, catalog = tmp_path / "events.jsonl", tmp_path / "catalog.jsonl"
    events.write_text(GOOD)
    catalog.write_text(
        '{"id": "p1", "name": "Tote", "price": 10}\n'
        f'{{"id": "p2", "name": {LONE}, "price": 10, "extra": {{{LONE}: 1}}}}\n'
    )
    result = run("simulate", str(journeys), "--events", str(events), "--catalog", str(catalog))
    assert result.exit_code == 1, result.output
    assert f"{catalog}:2: $.name: not valid text (a lone surrogate \\ud800" in result.stderr
    assert f'{catalog}:2: $.extra["\\ud800"]: the key is not valid text' in result.stderr

    db = tmp_path / "store.db"
    loaded = run("catalog", "load", str(catalog), "--db", str(db))
    assert loaded.exit_code == 1, loaded.output
    assert loaded.exception is None or isinstance(loaded.exception, SystemExit)
    assert f"{catalog}:2: $.name: not valid text" in loaded.output
    assert "1 loaded" in loaded.output


def test_simulate_replays_equal_lines_without_message_id_as_two_events(tmp_path: Path) -> None:
    journeys = tmp_path / "journeys"
    journeys.mkdir()
    (journeys / "main.journey").write_text(
        'journey hello "Says hello"\n  when greeted\n  entry always\n  send push "hi" as hi\n'
    )
    greeted = {"type": "track", "userId": "u1", "event": "greeted"}
    events = tmp_path / "events.jsonl"
    events.write_text(lines(*[{**greeted, "timestamp": "2026-01-05T10:00:00Z"}] * 2))
    result = run("simulate", str(journeys), "--events", str(events), "--json")
    assert result.exit_code == 0, result.output
    actions = [json.loads(line)["action"] for line in result.stdout.splitlines()]
    assert actions.count("enter") == 2
    assert run("simulate", str(journeys), "--events", str(events), "--json").stdout == (
        result.stdout
    )


# ---------------------------------------------------------------- status


@pytest.fixture
def busy_store(tmp_path: Path) -> Path:
    """A store with two users waiting in `ping` and one failed send from `greet`."""
    journeys = tmp_path / "journeys"
    journeys.mkdir()
    (journeys / "main.journey").write_text(PROJECT)
    db = tmp_path / "store.db"
    store = Store.open(db)
    try:
        engine = Engine(store)
        engine.deploy(lower_project(load_project([journeys])), T0)
        store.append_events(
            [
                parse_event({"type": "track", "userId": "u1", "event": "pinged"}, T0),
                parse_event({"type": "track", "userId": "u2", "event": "pinged"}, T0),
                parse_event(
                    {"type": "identify", "userId": "u3", "traits": {"push_enabled": True}}, T0
                ),
                parse_event({"type": "track", "userId": "u3", "event": "greeted"}, T0),
            ]
        )
        engine.advance(T0 + 1000)
    finally:
        store.close()
    # No provider for push: the dispatcher fails the row with its reason.
    with Dispatcher.open(db, {}) as dispatcher:
        assert dispatcher.run_once(T0 + 2000).failed == 1
    return db


def test_status_reports_journeys_users_in_flight_outbox_and_failures(busy_store: Path) -> None:
    result = run("status", "--db", str(busy_store))
    assert result.exit_code == 0, result.output
    out = result.stdout
    # Every user the log names has a profile, traits or not.
    assert f"store {busy_store}: 4 event(s), 3 profile(s)" in out
    assert "  ping  version " in out and "deployed 2026-01-05T08:00:00Z" in out
    assert "in flight: 2  (pause 2)" in out
    assert "queued 0, sent 0, failed 1, suppressed 0" in out
    assert "delivered 0, opened 0, clicked 0, bounced 0, complained 0, unsubscribed 0" in out
    assert "u3  greet/hi  attempts 0: no provider for channel `push`" in out


def test_status_json_shape(busy_store: Path) -> None:
    result = run("status", "--db", str(busy_store), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report) == {
        "store",
        "events",
        "profiles",
        "journeys",
        "outbox",
        "deliveries",
        "recent_failures",
        "cluster",
    }
    assert report["cluster"] is None  # a SQLite store: one engine, no workers to show
    assert report["deliveries"] == {
        "delivered": {},
        "opened": {},
        "clicked": {},
        "bounced": {},
        "complained": {},
        "unsubscribed": {},
    }
    ping, greet = sorted(report["journeys"], key=lambda j: j["id"] != "ping")
    assert set(ping) == {
        "id",
        "version",
        "deployed_at",
        "live",
        "live_total",
        "live_on_older_versions",
    }
    assert ping["live"] == {"pause": 2} and ping["live_total"] == 2
    assert ping["live_on_older_versions"] == 0
    assert greet["live"] == {} and len(greet["version"]) == 16
    assert report["outbox"] == {"queued": 0, "sent": 0, "failed": 1, "suppressed": 0}
    (failure,) = report["recent_failures"]
    assert failure == {
        "key": "greet:u3:1:hi",
        "journey": "greet",
        "user": "u3",
        "step": "hi",
        "channel": "push",
        "attempts": 0,
        "queued_at": "2026-01-05T08:00:01Z",
        "error": "no provider for channel `push`",
    }


def test_status_without_a_store_is_a_usage_error_and_a_foreign_file_is_invalid(
    tmp_path: Path,
) -> None:
    missing = run("status", "--db", str(tmp_path / "none.db"))
    assert missing.exit_code == 2
    assert "no store at" in missing.stderr
    assert not (tmp_path / "none.db").exists()

    foreign = tmp_path / "notes.db"
    foreign.write_text("not a database, just notes\n" * 100)
    result = run("status", "--db", str(foreign))
    assert result.exit_code == 1
    assert "journeyc:" in result.stderr and "Traceback" not in result.output


def test_every_command_reports_a_busy_store_and_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `catalog load` has no busy handling of its own: the command group's does it.
    from tests.test_store import file_lock_held

    db = tmp_path / "s.db"
    Store.open(db).close()
    real_open = Store.open.__func__  # type: ignore[attr-defined]
    monkeypatch.setattr(
        Store, "open", classmethod(lambda cls, path, **kw: real_open(cls, path, lock_timeout_s=0.3))
    )
    catalog = tmp_path / "catalog.jsonl"
    catalog.write_text('{"product_id": "p1", "name": "Watch", "category": "watches"}\n')
    with file_lock_held(db):
        result = CliRunner().invoke(main, ["catalog", "load", str(catalog), "--db", str(db)])
    assert result.exit_code == 1, result.output
    assert "the store is busy" in result.output
    assert "Traceback" not in result.output
