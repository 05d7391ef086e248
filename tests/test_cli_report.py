"""End to end: `journeyc report` on a simulation's store, and
`GET /v1/journeys/{id}/report` through a real `journeyc serve`."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT
from tests.daemon_helpers import Daemon, clean_env, poll, write_file

pytestmark = pytest.mark.e2e

EXAMPLES = ["--events", "examples/events.jsonl", "--catalog", "examples/catalog.jsonl"]


def journeyc(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "journeyc", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=clean_env(),
        check=False,
        timeout=120,
    )


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, object]]]:
    """The example project simulated into a store, and the action lines it printed."""
    db = tmp_path_factory.mktemp("report") / "sim.db"
    done = journeyc("simulate", "journeys", *EXAMPLES, "--db", str(db), "--json")
    assert done.returncode == 0, done.stderr
    return db, [json.loads(line) for line in done.stdout.splitlines()]


def test_report_json_of_a_simulation_matches_its_actions(
    sim: tuple[Path, list[dict[str, object]]],
) -> None:
    db, actions = sim
    done = journeyc("report", "journeys", "--db", str(db), "--json")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["store"] == str(db)
    reports = {r["journey_id"]: r for r in out["reports"]}
    assert set(reports) == {a["journey"] for a in actions} | set(reports)
    for jid, r in reports.items():
        mine = [a for a in actions if a["journey"] == jid]
        kinds = Counter(a["action"] for a in mine)
        assert r["entries"] == kinds["enter"], jid
        if r["goal"] is not None:
            assert r["goal"]["conversions"] == kinds["goal"], jid
        sends = Counter((a["step"], a["channel"]) for a in mine if a["action"] == "send")
        got = Counter({(s["id"], ch): n for s in r["steps"] for ch, n in s["sends"].items()})
        assert got == sends, jid
    cart = reports["cart_recovery"]
    assert cart["entries"] == 3 and cart["goal"]["conversions"] == 1
    assert {d["channel"]: d["queued"] for d in cart["delivery"]} == {
        "email": 2,
        "push": 3,
        "whatsapp": 1,
    }
    ab = reports["second_purchase_test"]["experiment"]
    assert ab["baseline"] == "holdout"
    assert all(not c["enough_data"] for c in ab["comparisons"])
    assert {a["group"] for a in ab["arms"]} == {"arm", "holdout"}
    # cart_recovery: `holdout 5%` and no split, so the messaged group against the
    # holdout (one conversion in three entries, none held out: not enough data).
    cart_ab = cart["experiment"]
    assert [(a["name"], a["group"]) for a in cart_ab["arms"]] == [
        ("messaged", "messaged"),
        ("holdout", "holdout"),
    ]
    messaged, holdout = cart_ab["arms"]
    assert (messaged["entries"], messaged["conversions"], holdout["entries"]) == (3, 1, 0)
    assert messaged["ci_low"] < messaged["rate"] < messaged["ci_high"]
    assert cart_ab["unassigned"] == 0 and cart_ab["baseline"] == "holdout"
    (vs,) = cart_ab["comparisons"]
    assert (vs["arm"], vs["baseline"], vs["enough_data"], vs["p_value"]) == (
        "messaged",
        "holdout",
        False,
        None,
    )
    assert vs["note"] == (
        "not enough data: messaged: 3 entries (needs 30); holdout: 0 entries (needs 30)"
    )


def test_report_prints_tables_and_one_journey(sim: tuple[Path, list[dict[str, object]]]) -> None:
    db, _ = sim
    done = journeyc("report", "--db", str(db), "--journey", "cart_recovery")
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert text.startswith("cart_recovery — Cart abandonment recovery, by category")
    for part in ("steps", "funnel", "experiment", "delivery", "nudge_women", "last_call"):
        assert part in text
    assert "goal order_completed: 1 conversion(s), rate 33.3%" in text
    assert "[case 1] nudge_women (1)" in text  # the funnel's way through the branch
    # The experiment: the messaged group (holdout, no split) against the holdout.
    assert re.search(r"messaged\W+3\W+1\W+33\.3%\W+6\.1%\W+79\.2%", text), text
    assert re.search(r"holdout\W+0\W+0\W+-", text), text
    assert "messaged: every entry not held out" in text
    assert "messaged vs holdout: not enough data: messaged: 3 entries (needs 30)" in text


def test_report_refuses_an_unknown_journey_with_a_suggestion(
    sim: tuple[Path, list[dict[str, object]]],
) -> None:
    db, _ = sim
    done = journeyc("report", "--db", str(db), "--journey", "cart_recovry")
    assert done.returncode == 1 and done.stdout == ""
    assert "no journey 'cart_recovry'" in done.stderr
    assert "did you mean 'cart_recovery'?" in done.stderr
    done = journeyc("report", "--db", str(db), "--journey", "welcome", "--version", "nope")
    assert done.returncode == 1 and "no version 'nope'" in done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "yesterday"], "--from: not an ISO-8601 time: 'yesterday'"),
        (["--version", "abc"], "--version needs --journey"),
        (["--db", "missing.db"], "no store at missing.db"),
    ],
)
def test_report_usage_errors_exit_2(
    args: list[str], message: str, sim: tuple[Path, list[dict[str, object]]], tmp_path: Path
) -> None:
    db, _ = sim
    done = journeyc("report", "--db", str(db), *args, cwd=tmp_path)
    assert done.returncode == 2 and message in done.stderr, done.stderr


def test_report_over_a_range_counts_only_what_happened_in_it(
    sim: tuple[Path, list[dict[str, object]]],
) -> None:
    db, actions = sim
    since, until = "2026-01-05T10:00:00Z", "2026-01-05T10:40:00Z"
    done = journeyc(
        "report",
        "--db",
        str(db),
        "--journey",
        "cart_recovery",
        "--from",
        since,
        "--until",
        until,
        "--json",
    )
    assert done.returncode == 0, done.stderr
    (r,) = json.loads(done.stdout)["reports"]
    assert (r["since"], r["until"]) == (since, until)
    inside = [
        a for a in actions if a["journey"] == "cart_recovery" and since <= str(a["at"]) < until
    ]
    sends = sum(1 for a in inside if a["action"] == "send")
    assert sum(n for s in r["steps"] for n in s["sends"].values()) == sends
    assert r["entries"] == sum(1 for a in inside if a["action"] == "enter")


GREET = """\
journey greet "Greets"
  when greeted
  goal bought within 1d
  split
    50% as warm
      send inapp "Welcome back" as hello
    50% as cool
      send inapp "Hi" as hi
"""


def test_the_api_serves_a_report_of_a_live_daemon(tmp_path: Path) -> None:
    write_file(tmp_path / "journeys" / "greet.journey", GREET)
    args = [str(tmp_path / "journeys"), "--db", str(tmp_path / "live.db"), "--port", "0"]
    daemon = Daemon(args, tmp_path).start()
    try:
        for user in ("u1", "u2", "u3", "u4"):
            daemon.track(user, "greeted")
        daemon.track("u1", "bought")

        def entered() -> dict[str, object] | None:
            r = daemon.admin("/v1/journeys/greet/report")
            goal = r["goal"]
            return r if r["entries"] == 4 and goal and goal["conversions"] == 1 else None

        report = poll(entered, 20, "the entries in the report")
        arms = {a["name"]: a["entries"] for a in report["experiment"]["arms"]}
        assert sum(arms.values()) == 4 and set(arms) == {"warm", "cool"}
        sends = {s["id"]: s["sends"] for s in report["steps"] if s["sends"]}
        assert sum(n for by in sends.values() for n in by.values()) == 4
        assert report["experiment"]["baseline"] == "warm"

        auth = {"Authorization": f"Bearer {daemon.admin_token}"}
        base = f"{daemon.url}/v1/journeys"
        missing = httpx.get(f"{base}/greeet/report", headers=auth)
        assert missing.status_code == 404
        assert "did you mean 'greet'?" in missing.json()["error"]
        bad = httpx.get(f"{base}/greet/report", params={"from": "soon"}, headers=auth)
        assert bad.status_code == 400 and "`from`" in bad.json()["error"]
        bad = httpx.get(f"{base}/greet/report", params={"version": "v9"}, headers=auth)
        assert bad.status_code == 400 and "`version`" in bad.json()["error"]
        closed = httpx.get(
            f"{base}/greet/report",
            params={"from": "2020-01-01T00:00:00Z", "until": "2020-01-02T00:00:00Z"},
            headers=auth,
        )
        assert closed.status_code == 200 and closed.json()["entries"] == 0
        # Times in the API's one form, milliseconds always.
        assert closed.json()["since"] == "2020-01-01T00:00:00.000Z"
        assert re.fullmatch(
            r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", report["versions"][0]["deployed_at"]
        )
        assert httpx.get(f"{base}/greet/report").status_code == 401
    finally:
        assert daemon.stop() == 0
