"""`journeyc segments`: sizes, entered and left today, and one user's reasons, read from
a store the example simulation filled."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from journeyc.cli import main
from tests.conftest import ROOT

JOURNEYS = ROOT / "journeys"
EVENTS = ROOT / "examples" / "events.jsonl"
AT = "2026-01-09T12:00:00Z"


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("seg") / "store.db"
    result = run("simulate", str(JOURNEYS), "--events", str(EVENTS), "--db", str(db), "--json")
    assert result.exit_code == 0, result.output
    return db


def test_sizes_and_changes_of_today(store: Path) -> None:
    result = run("segments", str(JOURNEYS), "--db", str(store), "--at", AT, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    by = {s["name"]: s for s in report["segments"]}
    assert report["at"] == AT and report["today_from"] == "2026-01-09T00:00:00Z"
    assert all(s["status"] == "deployed" for s in by.values())
    # Eve (u6) is the one hero; Carla (u3) the one dormant customer.
    assert by["hero"]["members"] == 1 and by["dormant"]["members"] == 1
    assert by["dormant"]["definition"] == "days_since(last(order_completed).at) >= 180"
    # Two days earlier Eve's fifth order made her a hero and took her out of regular.
    early = json.loads(
        run(
            "segments", str(JOURNEYS), "--db", str(store), "--at", "2026-01-02T20:00:00Z", "--json"
        ).stdout
    )
    early_by = {s["name"]: s for s in early["segments"]}
    assert early_by["hero"]["entered_today"] == 1
    assert early_by["regular"]["left_today"] == 1
    text = run("segments", str(JOURNEYS), "--db", str(store), "--at", AT).stdout
    assert "segment" in text and "members" in text and "hero" in text


def test_one_users_reasons(store: Path) -> None:
    result = run(
        "segments", str(JOURNEYS), "--db", str(store), "--user", "u3", "--at", AT, "--json"
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    dormant = next(s for s in report["segments"] if s["name"] == "dormant")
    assert dormant["member"] is True
    assert dormant["stored"] == {"member": True, "since": "2025-12-17T08:30:00Z"}
    assert dormant["terms"] == [
        {"text": "days_since(last(order_completed).at) >= 180", "value": True, "depth": 0},
        # Carla ordered on 2025-06-20 at 08:30.
        {"text": "days_since(last(order_completed).at)", "value": 203, "depth": 1},
    ]
    text = run("segments", str(JOURNEYS), "--db", str(store), "--user", "u3", "--at", AT).stdout
    assert "dormant: in  (kept: in since 2025-12-17T08:30:00Z)" in text


def test_a_changed_definition_is_counted_by_evaluating_it(store: Path, tmp_path: Path) -> None:
    project = tmp_path / "journeys"
    shutil.copytree(JOURNEYS, project)
    seg = project / "segments.journey"
    seg.write_text(
        seg.read_text().replace(
            "segment buyer = count(order_completed within 365d) >= 1",
            "segment buyer = count(order_completed within 365d) >= 5",
        )
    )
    result = run("segments", str(project), "--db", str(store), "--at", AT, "--json")
    assert result.exit_code == 0, result.output
    buyer = next(s for s in json.loads(result.stdout)["segments"] if s["name"] == "buyer")
    assert buyer == {
        "name": "buyer",
        "members": 1,  # only Eve has five orders
        "entered_today": None,
        "left_today": None,
        "status": "changed",
        "definition": "count(order_completed within 365d) >= 5",
    }


def test_errors_name_what_is_wrong(store: Path, tmp_path: Path) -> None:
    unknown = run("segments", str(JOURNEYS), "--db", str(store), "--user", "nobody")
    assert unknown.exit_code == 1 and "no user 'nobody'" in unknown.output
    missing = run("segments", str(JOURNEYS), "--db", str(tmp_path / "none.db"))
    assert missing.exit_code == 2 and "no store at" in missing.output
    bad_at = run("segments", str(JOURNEYS), "--db", str(store), "--at", "tuesday")
    assert bad_at.exit_code == 2 and "--at" in bad_at.output
