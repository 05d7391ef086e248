"""End-to-end `journeyc simulate`: the example project over the example events.

`tests/fixtures/simulate/examples.jsonl` is the expected output, reviewed against the
stories of examples/README.md; regenerate it with JOURNEYC_UPDATE_FIXTURES=1 and read
the diff before committing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

EXPECTED = ROOT / "tests" / "fixtures" / "simulate" / "examples.jsonl"
pytestmark = pytest.mark.e2e


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "journeyc", "simulate", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        check=False,
    )


@pytest.fixture(scope="module")
def example_lines() -> list[str]:
    proc = run(
        "journeys",
        "--events",
        "examples/events.jsonl",
        "--catalog",
        "examples/catalog.jsonl",
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def actions(lines: list[str], user: str | None = None) -> list[dict[str, object]]:
    out = [json.loads(line) for line in lines]
    return [a for a in out if user is None or a["user"] == user]


def test_example_output_matches_the_reviewed_fixture(example_lines: list[str]) -> None:
    if os.environ.get("JOURNEYC_UPDATE_FIXTURES"):
        EXPECTED.write_text("\n".join(example_lines) + "\n")
    assert example_lines == EXPECTED.read_text().splitlines()


def test_same_input_same_bytes(example_lines: list[str]) -> None:
    again = run(
        "journeys",
        "--events",
        "examples/events.jsonl",
        "--catalog",
        "examples/catalog.jsonl",
        "--json",
    )
    assert again.stdout.splitlines() == example_lines


def test_anna_gets_the_womenswear_push_25_minutes_after_abandoning(
    example_lines: list[str],
) -> None:
    anna = actions(example_lines, "u1")
    send = next(a for a in anna if a["action"] == "send" and a["journey"] == "cart_recovery")
    assert send["at"] == "2026-01-05T10:31:00Z"
    assert send["channel"] == "push" and send["message"] == "cart_women"
    content = send["content"]
    assert isinstance(content, dict) and "HER15" in content["body"]
    goals = [a for a in anna if a["action"] == "goal"]
    assert {a["journey"] for a in goals} >= {"cart_recovery"}


def test_ben_has_push_off_so_whatsapp_then_the_last_call_email(example_lines: list[str]) -> None:
    sends = [a for a in actions(example_lines, "u2") if a["action"] == "send"]
    assert [(a["channel"], a["message"]) for a in sends] == [
        ("whatsapp", "cart_men"),
        ("email", "cart_last_call"),
    ]
    assert sends[1]["at"] == "2026-01-06T12:30:00Z"  # the 1-day wait for a cart view timed out


def test_timeline_and_summary_without_json() -> None:
    proc = run("journeys", "--events", "examples/events.jsonl")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("u1\n")
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("summary: ") and "entries" in last and "sends (" in last


def test_bad_event_lines_stop_the_run_and_name_line_and_field(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text(
        '{"type":"track","userId":"u1","event":"cart_abandoned","timestamp":"2026-01-05T10:00:00Z"}\n'
        '{"type":"track","userId":"u1","event":"x","timestamp":"yesterday"}\n'
        '{"type":"track","event":"x","timestamp":"2026-01-05T10:00:00Z"}\n'
    )
    proc = run(str(ROOT / "journeys"), "--events", str(events), "--json")
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert f"{events}:2: $.timestamp" in proc.stderr
    assert f"{events}:3: $.userId" in proc.stderr
    assert "Traceback" not in proc.stderr


def _first_journey(tmp_path: Path) -> Path:
    project = tmp_path / "journeys"
    project.mkdir()
    (project / "cart.journey").write_text(
        "when cart_abandoned\n"
        "entry always\n"
        "wait 30m\n"
        "if count(cart_abandoned within 7d) >= 2\n"
        '  send push "again?"\n'
        "else\n"
        '  send push "first time"\n'
    )
    return project


def _events(tmp_path: Path, *stamps: str) -> Path:
    path = tmp_path / "events.jsonl"
    path.write_text(
        "".join(
            json.dumps(
                {
                    "type": "track",
                    "userId": "u1",
                    "event": "Cart Abandoned",
                    "timestamp": t,
                    "messageId": f"m{i}",
                }
            )
            + "\n"
            for i, t in enumerate(stamps)
        )
    )
    return path


def test_from_makes_earlier_events_history_that_aggregates_count(tmp_path: Path) -> None:
    project = _first_journey(tmp_path)
    events = _events(tmp_path, "2026-01-01T10:00:00Z", "2026-01-05T10:00:00Z")
    proc = run(
        str(project),
        "--events",
        str(events),
        "--profiles",
        str(_profiles(tmp_path)),
        "--from",
        "2026-01-03T00:00:00Z",
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    out = actions(proc.stdout.splitlines())
    assert [a["action"] for a in out] == ["enter", "send", "exit"]  # history did not enter
    assert out[1]["content"] == {"body": "again?"}  # but it was counted


def test_until_stops_the_clock(tmp_path: Path) -> None:
    project = _first_journey(tmp_path)
    events = _events(tmp_path, "2026-01-05T10:00:00Z")
    proc = run(
        str(project),
        "--events",
        str(events),
        "--profiles",
        str(_profiles(tmp_path)),
        "--until",
        "2026-01-05T10:29:59Z",
        "--json",
    )
    assert [a["action"] for a in actions(proc.stdout.splitlines())] == ["enter"]


def test_db_keeps_the_store_with_one_outbox_row_per_send(tmp_path: Path) -> None:
    import sqlite3

    project = _first_journey(tmp_path)
    events = _events(tmp_path, "2026-01-05T10:00:00Z", "2026-01-06T10:00:00Z")
    db = tmp_path / "sim.db"
    proc = run(
        str(project),
        "--events",
        str(events),
        "--profiles",
        str(_profiles(tmp_path)),
        "--db",
        str(db),
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    sends = [a for a in actions(proc.stdout.splitlines()) if a["action"] == "send"]
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT status, channel FROM outbox ORDER BY id").fetchall()
    assert rows == [("queued", "push")] * len(sends) and len(sends) == 2


def test_invalid_journeys_exit_1_without_running(tmp_path: Path) -> None:
    project = tmp_path / "bad"
    project.mkdir()
    (project / "x.journey").write_text("when a\nsend push nosuch\n")
    events = _events(tmp_path, "2026-01-05T10:00:00Z")
    proc = run(str(project), "--events", str(events))
    assert proc.returncode == 1
    assert "unknown_message" in proc.stderr and proc.stdout == ""


def _profiles(tmp_path: Path) -> Path:
    path = tmp_path / "profiles.jsonl"
    path.write_text('{"userId": "u1", "traits": {"push_enabled": true}}\n')
    return path


AB_TEST = """journey ab "Coupon or credit"
  when signed_up
  goal order_completed within 7d
  holdout 20%

  split
    50% as coupon
      send inapp "coupon"
    50% as credit
      send inapp "credit"
"""


def test_the_timeline_reports_each_arm_and_the_holdout_as_the_trace_shows_them(
    tmp_path: Path,
) -> None:
    (tmp_path / "ab.journey").write_text(AB_TEST)
    lines = []
    for i in range(60):
        at = f"2026-01-05T10:{i:02d}:00Z"
        lines.append({"type": "track", "userId": f"u{i}", "event": "Signed Up", "timestamp": at})
        if i % 3 == 0:
            at = f"2026-01-06T10:{i:02d}:00Z"
            lines.append(
                {"type": "track", "userId": f"u{i}", "event": "Order Completed", "timestamp": at}
            )
    events = tmp_path / "events.jsonl"
    events.write_text("".join(json.dumps(line) + "\n" for line in lines))

    traced = run(str(tmp_path / "ab.journey"), "--events", str(events), "--json")
    assert traced.returncode == 0, traced.stderr
    group: dict[str, str] = {}
    converted: set[str] = set()
    for a in actions(traced.stdout.splitlines()):
        if a["action"] == "send":
            group[str(a["user"])] = str(a["content"]["body"])  # type: ignore[index]
        elif a["action"] == "suppress" and a["reason"] == "holdout":
            group[str(a["user"])] = "holdout"
        elif a["action"] == "goal":
            converted.add(str(a["user"]))
    expected = []
    for name in ("coupon", "credit", "holdout"):
        users = [u for u, g in group.items() if g == name]
        goals = len(converted & set(users))
        assert users, name  # 60 users: every group has some
        expected.append(f"{name} {len(users)} entries, {goals} goals ({goals / len(users):.1%})")

    text = run(str(tmp_path / "ab.journey"), "--events", str(events))
    assert text.returncode == 0, text.stderr
    (report,) = [line for line in text.stdout.splitlines() if line.startswith("a/b: ")]
    assert report == "a/b: ab: " + "; ".join(expected)


def _counted(entries: int, goals: int) -> str:
    """``3 entries, 1 goal``, as an a/b line words a group's counts."""
    noun = "entry" if entries == 1 else "entries"
    return f"{entries} {noun}, {goals} {'goal' if goals == 1 else 'goals'}"


def test_a_holdout_without_a_split_shows_the_messaged_group_as_the_report_counts_it(
    tmp_path: Path, example_lines: list[str]
) -> None:
    """cart_recovery holds out 5% and has no split: its a/b line names the messaged
    group (every entry not held out) and the holdout, with the entries and goals the
    trace shows and `journeyc report --json` gives for the same store."""
    db = tmp_path / "sim.db"
    example = ("journeys", "--events", "examples/events.jsonl")
    text = run(*example, "--catalog", "examples/catalog.jsonl", "--db", str(db))
    assert text.returncode == 0, text.stderr
    ab = {
        line.split(": ")[1]: line for line in text.stdout.splitlines() if line.startswith("a/b: ")
    }

    trace = [a for a in actions(example_lines) if a["journey"] == "cart_recovery"]
    held = {a["user"] for a in trace if a["action"] == "suppress" and a["reason"] == "holdout"}
    entered = [a["user"] for a in trace if a["action"] == "enter"]
    goals = [a["user"] for a in trace if a["action"] == "goal"]
    messaged = [u for u in entered if u not in held]
    assert messaged and goals  # the example converts someone in the messaged group
    converted = len([u for u in goals if u not in held])
    assert ab["cart_recovery"].startswith(
        f"a/b: cart_recovery: messaged {_counted(len(messaged), converted)}"
    )

    report = subprocess.run(
        [sys.executable, "-m", "journeyc", "report", "journeys", "--db", str(db), "--json"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert report.returncode == 0, report.stderr
    experiments = {
        r["journey_id"]: r["experiment"]
        for r in json.loads(report.stdout)["reports"]
        if r["experiment"] is not None
    }
    assert set(experiments) == set(ab)
    for jid, experiment in experiments.items():
        names = [arm["name"] for arm in experiment["arms"]]
        assert names == [part.split(" ")[0] for part in ab[jid].split(": ", 2)[2].split("; ")]
        for arm in experiment["arms"]:
            assert f"{arm['name']} {_counted(arm['entries'], arm['conversions'])}" in ab[jid]
    cart = {arm["name"]: arm for arm in experiments["cart_recovery"]["arms"]}
    assert list(cart) == ["messaged", "holdout"]
    assert cart["messaged"]["entries"] == len(messaged)


def test_the_progress_bar_goes_to_a_terminal_on_stderr_and_stdout_stays_clean(
    tmp_path: Path,
) -> None:
    """A long replay draws a progress bar on stderr when that is a terminal (here a
    pseudo-terminal), split between processes or not; the JSON lines on stdout are
    the same bytes as without it."""
    import pty
    import threading

    (tmp_path / "j.journey").write_text(
        'journey hello "Hello"\n  when viewed\n  entry always\n  wait 1h\n  send inapp "Hi"\n',
        encoding="utf-8",
    )
    lines = [
        json.dumps(
            {
                "type": "track",
                "userId": f"u{k % 500}",
                "event": "viewed",
                "timestamp": f"2026-01-05T{k // 3600 % 24:02d}:{k // 60 % 60:02d}:{k % 60:02d}Z",
                "messageId": f"m{k}",
            }
        )
        for k in range(12_000)
    ]
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(lines) + "\n", encoding="utf-8")
    args = [str(tmp_path / "j.journey"), "--events", str(events), "--json"]
    plain = run(*args, "--workers", "1")
    assert plain.returncode == 0 and plain.stdout.count("\n") > 4_000
    for workers in ("1", "2"):
        master, slave = pty.openpty()
        drawn = bytearray()

        def drain(fd: int = master, into: bytearray = drawn) -> None:
            while True:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:  # the terminal closed
                    return
                if not chunk:
                    return
                into.extend(chunk)

        reader = threading.Thread(target=drain, daemon=True)
        reader.start()
        proc = subprocess.run(
            [sys.executable, "-m", "journeyc", "simulate", *args, "--workers", workers],
            stdout=subprocess.PIPE,
            stderr=slave,
            text=True,
            check=False,
            timeout=300,
        )
        os.close(slave)
        reader.join(timeout=10)
        os.close(master)
        assert proc.returncode == 0
        assert proc.stdout == plain.stdout, workers
        assert b"simulating" in drawn, workers


def test_rerunning_into_the_same_db_replays_again_with_the_same_output(tmp_path: Path) -> None:
    """The README's `simulate … --db sim.db`, run twice: the store an earlier simulation
    wrote is its output, started over; the second run prints what the first did (not
    `summary: 0 user(s)` beside last run's A/B line)."""
    (tmp_path / "ab.journey").write_text(AB_TEST)
    events = tmp_path / "events.jsonl"
    events.write_text(
        "".join(
            json.dumps(
                {
                    "type": "track",
                    "userId": f"u{i}",
                    "event": "Signed Up",
                    "timestamp": f"2026-01-05T10:{i:02d}:00Z",
                    "messageId": f"m{i}",
                }
            )
            + "\n"
            for i in range(20)
        )
    )
    db = tmp_path / "sim.db"
    args = (str(tmp_path / "ab.journey"), "--events", str(events), "--db", str(db))
    first = run(*args)
    assert first.returncode == 0, first.stderr
    assert "summary: 20 user(s), 20 entries" in first.stdout
    again = run(*args)
    assert again.returncode == 0, again.stderr
    assert again.stdout == first.stdout
    assert f"{db}" in again.stderr and "started it over" in again.stderr
    import sqlite3

    with sqlite3.connect(db) as conn:  # one simulation's rows, not two
        assert conn.execute("SELECT count(*) FROM entries").fetchone() == (20,)


def test_a_store_with_other_events_is_refused_unless_fresh(tmp_path: Path) -> None:
    """A store holding events that no simulation wrote (a daemon's, or `journeyc
    ingest`'s) is never replayed into nor deleted silently: exit 1 naming it and
    --fresh; with --fresh it is started over."""
    import sqlite3

    project = _first_journey(tmp_path)
    events = _events(tmp_path, "2026-01-05T10:00:00Z")
    db = tmp_path / "live.db"
    ingested = subprocess.run(
        [sys.executable, "-m", "journeyc", "ingest", str(events), "--db", str(db)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ingested.returncode == 0, ingested.stderr
    args = (str(project), "--events", str(events), "--profiles", str(_profiles(tmp_path)))
    refused = run(*args, "--db", str(db))
    assert refused.returncode == 1
    assert refused.stdout == ""
    assert str(db) in refused.stderr and "--fresh" in refused.stderr
    assert "Traceback" not in refused.stderr
    with sqlite3.connect(db) as conn:  # untouched
        assert conn.execute("SELECT count(*) FROM events").fetchone() == (1,)
        assert conn.execute("SELECT count(*) FROM entries").fetchone() == (0,)

    fresh = run(*args, "--db", str(db), "--fresh", "--json")
    plain = run(*args, "--json")
    assert fresh.returncode == 0, fresh.stderr
    assert fresh.stdout == plain.stdout and '"action":"send"' in fresh.stdout.replace(" ", "")


def test_a_db_that_is_not_a_store_is_an_error_and_kept_even_with_fresh(tmp_path: Path) -> None:
    project = _first_journey(tmp_path)
    events = _events(tmp_path, "2026-01-05T10:00:00Z")
    for extra in ((), ("--fresh",)):
        proc = run(str(project), "--events", str(events), "--db", str(events), *extra)
        assert proc.returncode == 1, extra
        assert str(events) in proc.stderr and "Traceback" not in proc.stderr
        assert events.read_text().startswith('{"type"')


def test_help_documents_fresh_and_the_exit_codes() -> None:
    proc = run("--help")
    assert proc.returncode == 0
    text = " ".join(proc.stdout.split())
    assert "--fresh" in text and "Exit codes: 0" in text and "started over" in text


def test_the_timeline_shows_local_time_beside_utc_for_users_with_a_zone(tmp_path: Path) -> None:
    """Quiet hours follow the user's zone, so the timeline says the local time too: the
    weekday and clock in the profile's `timezone` (its zone at the end of the run), the
    same split between processes or not; users without one, and --json, stay UTC only."""
    project = _first_journey(tmp_path)
    profiles = tmp_path / "profiles.jsonl"
    profiles.write_text(
        '{"userId": "u1", "traits": {"push_enabled": true, "timezone": "Asia/Bangkok"}}\n'
        '{"userId": "u2", "traits": {"push_enabled": true}}\n'
        '{"userId": "u3", "traits": {"push_enabled": true, "timezone": "Mars/Base"}}\n'
    )
    events = tmp_path / "events.jsonl"
    events.write_text(
        "".join(
            json.dumps(
                {
                    "type": "track",
                    "userId": user,
                    "event": "Cart Abandoned",
                    "timestamp": "2026-01-05T20:00:00Z",
                    "messageId": f"m-{user}",
                }
            )
            + "\n"
            for user in ("u1", "u2", "u3")
        )
    )
    args = (str(project), "--events", str(events), "--profiles", str(profiles))
    one = run(*args, "--workers", "1")
    assert one.returncode == 0, one.stderr
    lines = one.stdout.splitlines()
    # 20:30 UTC on Monday is 03:30 on Tuesday in Bangkok.
    assert "  2026-01-05T20:30:00Z (Tue 03:30 Asia/Bangkok)  cart  send push" in "\n".join(lines)
    u2 = lines[lines.index("u2") + 1 :]
    assert u2[0].startswith("  2026-01-05T20:00:00Z  cart  enter")
    u3 = lines[lines.index("u3") + 1 :]  # an unknown zone is no zone (the engine's rule)
    assert u3[0].startswith("  2026-01-05T20:00:00Z  cart  enter")
    several = run(*args, "--workers", "2")
    assert several.returncode == 0, several.stderr
    assert several.stdout == one.stdout
    as_json = run(*args, "--json")
    assert "Bangkok" not in as_json.stdout.replace('"timezone"', "")
    assert all(
        set(json.loads(line))
        <= {
            "at",
            "user",
            "journey",
            "step",
            "action",
            "channel",
            "message",
            "content",
            "reason",
            "error",
        }
        for line in as_json.stdout.splitlines()
    )


def test_users_without_a_zone_are_shown_in_the_configured_zone(tmp_path: Path) -> None:
    """The engine reads a user's local time in journeyc.toml's zone when the profile
    has none: so does the timeline."""
    project = _first_journey(tmp_path)
    config = tmp_path / "journeyc.toml"
    config.write_text('[engine]\ntimezone = "Europe/Paris"\n')
    events = _events(tmp_path, "2026-01-05T10:00:00Z")
    proc = run(
        str(project),
        "--events",
        str(events),
        "--profiles",
        str(_profiles(tmp_path)),
        "--config",
        str(config),
    )
    assert proc.returncode == 0, proc.stderr
    assert "  2026-01-05T10:00:00Z (Mon 11:00 Europe/Paris)  cart  enter" in proc.stdout


def test_a_simulation_store_a_daemon_then_used_is_not_started_over_silently(
    tmp_path: Path,
) -> None:
    """`journeyc serve --db sim.db` keeps its keys in the store: from then on it is the
    daemon's, refused without --fresh like any other."""
    import sqlite3

    project = _first_journey(tmp_path)
    events = _events(tmp_path, "2026-01-05T10:00:00Z")
    db = tmp_path / "sim.db"
    args = (str(project), "--events", str(events), "--db", str(db))
    assert run(*args).returncode == 0
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO settings (name, value) VALUES ('write_key', 'k')")
    refused = run(*args)
    assert refused.returncode == 1 and "--fresh" in refused.stderr
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT value FROM settings WHERE name = 'write_key'").fetchone()


CATALOG_LOAD = (sys.executable, "-m", "journeyc", "catalog", "load", "examples/catalog.jsonl")


def test_a_store_with_a_loaded_catalog_alone_is_simulated_into(tmp_path: Path) -> None:
    project = _first_journey(tmp_path)
    events = _events(tmp_path, "2026-01-05T10:00:00Z")
    db = tmp_path / "shop.db"
    loaded = subprocess.run(
        [*CATALOG_LOAD, "--db", str(db)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert loaded.returncode == 0, loaded.stderr
    proc = run(str(project), "--events", str(events), "--db", str(db))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # nothing started over
    import sqlite3

    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM products").fetchone()[0] > 0


def test_the_summary_counts_an_anonymous_id_merged_into_a_known_user_once(tmp_path: Path) -> None:
    journeys = tmp_path / "j"
    journeys.mkdir()
    (journeys / "cart.journey").write_text(
        'journey cart\n  when cart_abandoned\n  wait 30m\n  send push "Your cart"\n'
    )
    events = tmp_path / "events.jsonl"
    calls = [
        {
            "type": "track",
            "anonymousId": "anon-1",
            "event": "cart_abandoned",
            "timestamp": "2026-01-05T10:00:00Z",
        },
        {
            "type": "identify",
            "anonymousId": "anon-1",
            "userId": "ann",
            "traits": {"push_enabled": True},
            "timestamp": "2026-01-05T10:05:00Z",
        },
    ]
    events.write_text("".join(json.dumps(c) + "\n" for c in calls))
    proc = run(str(journeys), "--events", str(events))
    assert proc.returncode == 0, proc.stderr
    assert "anon-1\n" in proc.stdout  # the timeline shows the actions under the id they had
    assert proc.stdout.strip().splitlines()[-1].startswith("summary: 1 user(s), 1 entries")
