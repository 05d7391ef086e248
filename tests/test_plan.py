"""`journeyc plan` and `journeyc deploy` end to end, on a real SQLite store with users in
flight: the plan's groups are what the deployment then does to them; a saved plan is
refused once the store or the project changed; the exit codes."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner, Result
from hypothesis import event, given, settings
from hypothesis import strategies as st

from journeyc.cli import main
from journeyc.compile.ir import ProjectIR
from journeyc.compile.lower import lower_project
from journeyc.engine.actions import iso_ms
from journeyc.engine.core import Engine
from journeyc.engine.deploy import deploy_project, deployed_project
from journeyc.engine.plan import make_plan
from journeyc.events import Event, parse_event
from journeyc.lang.project import load_project
from journeyc.store.sqlite import Store
from journeyc.store.sqlite.deployments import active_versions, in_flight, schedule_rows
from tests.daemon_helpers import Daemon, poll, serve_once
from tests.engine_helpers import compile_files

T0 = 1_767_607_200_000  # 2026-01-05T10:00:00Z
HOUR = 3_600_000

V1 = {
    "promo.journey": (
        "journey promo\n  when visit\n  entry always\n  upgrade in place\n"
        "  wait 1h as pause\n"
        '  send inapp "one" as hello\n'
        "  wait 2h as later\n"
        '  send inapp "two" as bye\n'
    ),
    "plain.journey": (
        'journey plain\n  when visit\n  wait 1h as pause\n  send inapp "plain one" as hi\n'
    ),
    "old.journey": 'journey old\n  when visit\n  wait 5h as nap\n  send inapp "old" as hi\n',
    "segments.journey": "segment big = count(visit) >= 2\n",
}

# promo: new text, and `later` renamed (users there have lost their step); plain: new
# text (no upgrade in place); old: gone; fresh: new, on a schedule; big: changed.
V2 = {
    "promo.journey": V1["promo.journey"]
    .replace('"one"', '"uno"')
    .replace("as later", "as afterwards"),
    "plain.journey": V1["plain.journey"].replace("plain one", "plain uno"),
    "fresh.journey": (
        'journey fresh\n  every day at 10:00 for everyone\n  send inapp "daily" as daily\n'
    ),
    "segments.journey": "segment big = count(visit) >= 1\n",
}


def write_project(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for old in root.glob("*.journey"):
        old.unlink()
    for name, text in files.items():
        (root / name).write_text(text, encoding="utf-8")
    return root


def compiled(root: Path) -> ProjectIR:
    return lower_project(load_project([root]))


def visit(user: str, at: int, event: str = "visit") -> Event:
    return parse_event(
        {
            "type": "track",
            "userId": user,
            "event": event,
            "timestamp": iso_ms(at),
            "messageId": f"{user}-{event}-{at}",
        },
        0,
    )


def flights(db: Path) -> dict[tuple[str, str, str], int]:
    with Store.open(db) as store:
        return {(f.journey_id, f.version, f.step): f.users for f in in_flight(store)}


@pytest.fixture
def busy(tmp_path: Path) -> tuple[Path, Path]:
    """A store where v1 was deployed and users are in flight at several steps of each
    journey; and the project directory, holding v1."""
    project = write_project(tmp_path / "project", V1)
    db = tmp_path / "journeyc.db"
    with Store.open(db) as store:
        engine = Engine(store)
        deploy_project(engine, compiled(project), T0)
        # a and b visit twice (segment big), then sit at promo's `later`; c at `pause`.
        store.append_events([visit("a", T0), visit("b", T0), visit("a", T0 + 1)])
        engine.advance(T0 + 1)
        store.append_events([visit("b", T0 + 2)])
        engine.advance(T0 + 2)
        engine.advance(T0 + HOUR + 2)
        store.append_events([visit("c", T0 + HOUR + 3)])
        engine.advance(T0 + HOUR + 3)
    return project, db


def members(project: Path, db: Path) -> dict[str, int]:
    """Each segment's members as the store keeps them (`journeyc segments`)."""
    result = cli("segments", str(project), "--db", str(db), "--json")
    assert result.exit_code == 0, result.output
    return {s["name"]: s["members"] for s in json.loads(result.stdout)["segments"]}


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def saved_plan(project: Path, db: Path, out: Path) -> Path:
    """``journeyc plan --out OUT`` of ``project`` against ``db``: changes (exit 2), saved."""
    assert cli("plan", str(project), "--db", str(db), "--out", str(out)).exit_code == 2
    return out


def plan_json(project: Path, db: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    result = cli("plan", str(project), "--db", str(db), "--json", *extra)
    assert result.exit_code in (0, 2), result.output
    return result.exit_code, json.loads(result.stdout)


def test_an_unchanged_project_plans_no_changes_and_exits_0(busy: tuple[Path, Path]) -> None:
    project, db = busy
    code, plan = plan_json(project, db)
    assert code == 0
    assert plan["changes"] is False
    assert plan["journeys"] == plan["segments"] == plan["schedules"] == []
    assert plan["unchanged_journeys"] == ["old", "plain", "promo"]
    text = cli("plan", str(project), "--db", str(db))
    assert text.exit_code == 0
    assert "No changes" in text.stdout


def test_plan_shows_what_happens_to_each_group_and_deploy_does_exactly_that(
    busy: tuple[Path, Path], tmp_path: Path
) -> None:
    project, db = busy
    before = flights(db)
    with Store.open(db) as store:
        v1 = active_versions(store)
    assert before == {
        ("old", v1["old"], "nap"): 3,
        ("plain", v1["plain"], "pause"): 1,
        ("promo", v1["promo"], "later"): 2,
        ("promo", v1["promo"], "pause"): 1,
    }

    big_before = members(project, db)["big"]  # as kept, read with v1's definitions

    write_project(project, V2)
    v2 = {jid: j.version for jid, j in compiled(project).journeys.items()}
    out = tmp_path / "plan.json"
    code, plan = plan_json(project, db, "--out", str(out))
    assert code == 2
    assert json.loads(out.read_text()) == plan

    by_id = {j["id"]: j for j in plan["journeys"]}
    assert {j: (c["action"], c["from_version"], c["to_version"]) for j, c in by_id.items()} == {
        "fresh": ("add", None, v2["fresh"]),
        "old": ("retire", v1["old"], None),
        "plain": ("change", v1["plain"], v2["plain"]),
        "promo": ("change", v1["promo"], v2["promo"]),
    }
    groups = {
        (jid, g["version"], g["step"]): (g["users"], g["outcome"], g["to_version"])
        for jid, j in by_id.items()
        for g in j["in_flight"]
    }
    assert groups == {
        ("old", v1["old"], "nap"): (3, "retired", None),
        ("plain", v1["plain"], "pause"): (1, "stays", None),
        ("promo", v1["promo"], "later"): (2, "step_gone", None),
        ("promo", v1["promo"], "pause"): (1, "moves", v2["promo"]),
    }
    assert plan["summary"] == {
        "journeys_to_add": 1,
        "journeys_to_change": 2,
        "journeys_to_retire": 1,
        "users_moving": 1,
        "segments": 1,
        "schedules": 1,
    }
    # big: a and b had two visits (members under both definitions); c one (enters).
    assert plan["segments"] == [
        {
            "name": "big",
            "action": "change",
            "before": 2,
            "after": 3,
            "entering": 1,
            "leaving": 0,
        }
    ]
    (schedule,) = plan["schedules"]
    assert schedule["journey"] == "fresh"
    assert schedule["action"] == "add"
    assert schedule["zone"] == "UTC"
    assert schedule["every"] == "every day at 10:00 for everyone"
    assert schedule["next_before"] is None
    assert schedule["next_after"].endswith("T10:00:00Z")

    deployed = cli("deploy", str(project), "--db", str(db), "--plan", str(out), "--json")
    assert deployed.exit_code == 0, deployed.output
    assert json.loads(deployed.stdout)["deployed"] is True

    # What the plan said of each group is where its users now are.
    predicted: dict[tuple[str, str, str], int] = {}
    for (jid, version, step), (users, _, to_version) in groups.items():
        key = (jid, to_version or version, step)
        predicted[key] = predicted.get(key, 0) + users
    assert flights(db) == predicted
    with Store.open(db) as store:
        assert active_versions(store) == v2
        stored = deployed_project(store)
        assert stored is not None and sorted(stored.journeys) == sorted(v2)
        rows = schedule_rows(store)
        assert [(r.journey_id, r.zone, iso_ms(r.next_at)) for r in rows] == [
            ("fresh", "UTC", schedule["next_after"])
        ]
    assert (big_before, members(project, db)["big"]) == (
        plan["segments"][0]["before"],
        plan["segments"][0]["after"],
    )
    code, after = plan_json(project, db)
    assert (code, after["changes"]) == (0, False)


def test_plan_text_reads_like_terraform(busy: tuple[Path, Path]) -> None:
    project, db = busy
    write_project(project, V2)
    result = cli("plan", str(project), "--db", str(db))
    assert result.exit_code == 2, result.output
    text = result.stdout
    assert "  + fresh  new, version" in text
    assert "  - old  retired (was version" in text
    assert "  ~ promo  version" in text and "(upgrade in place)" in text
    assert "2 at later (wait, on" in text and "step later is not in" in text
    assert "1 at pause (wait, on" in text and "move to" in text
    assert "  ~ big  members 2 → 3: 1 enter, 0 leave" in text
    assert "  + fresh  every day at 10:00 for everyone  in UTC: none →" in text
    assert "Plan: 1 to add, 2 to change, 1 to retire; 1 user(s) in flight move;" in text


def test_deploy_refuses_a_plan_once_the_project_changed(
    busy: tuple[Path, Path], tmp_path: Path
) -> None:
    project, db = busy
    write_project(project, V2)
    out = saved_plan(project, db, tmp_path / "plan.json")
    (project / "plain.journey").write_text(V2["plain.journey"].replace("uno", "dos"))
    before = flights(db)
    result = cli("deploy", str(project), "--db", str(db), "--plan", str(out))
    assert result.exit_code == 1
    assert "the project changed since the plan was made" in result.stderr
    assert flights(db) == before
    # A change of layout only (a comment) is no change to what the project does.
    (project / "plain.journey").write_text("# reviewed\n" + V2["plain.journey"])
    assert cli("deploy", str(project), "--db", str(db), "--plan", str(out)).exit_code == 0


def test_deploy_refuses_a_plan_once_the_store_changed(
    busy: tuple[Path, Path], tmp_path: Path
) -> None:
    project, db = busy
    write_project(project, V2)
    out = saved_plan(project, db, tmp_path / "plan.json")
    # Someone else deploys another project into the store meanwhile.
    other = write_project(tmp_path / "other", {"x.journey": V1["plain.journey"]})
    assert cli("deploy", str(other), "--db", str(db)).exit_code == 0
    with Store.open(db) as store:
        deployed = active_versions(store)
    result = cli("deploy", str(project), "--db", str(db), "--plan", str(out))
    assert result.exit_code == 1
    assert "the store's deployed journeys or segments changed" in result.stderr
    with Store.open(db) as store:
        assert active_versions(store) == deployed


def test_deploy_without_a_plan_plans_prints_and_applies(busy: tuple[Path, Path]) -> None:
    project, db = busy
    write_project(project, V2)
    result = cli("deploy", str(project), "--db", str(db))
    assert result.exit_code == 0, result.output
    assert "Plan: 1 to add, 2 to change, 1 to retire" in result.stdout
    assert "Deployed into" in result.stdout
    again = cli("deploy", str(project), "--db", str(db))
    assert again.exit_code == 0
    assert "Nothing to deploy." in again.stdout


def test_a_missing_store_is_planned_as_empty_and_not_created(tmp_path: Path) -> None:
    project = write_project(tmp_path / "project", V1)
    db = tmp_path / "new.db"
    code, plan = plan_json(project, db)
    assert code == 2
    assert [(j["id"], j["action"]) for j in plan["journeys"]] == [
        ("old", "add"),
        ("plain", "add"),
        ("promo", "add"),
    ]
    assert [(s["name"], s["action"], s["after"]) for s in plan["segments"]] == [("big", "add", 0)]
    assert not db.exists()
    out = saved_plan(project, db, tmp_path / "plan.json")
    assert cli("deploy", str(project), "--db", str(db), "--plan", str(out)).exit_code == 0
    assert plan_json(project, db)[0] == 0


def test_plan_warns_when_users_waiting_for_an_event_would_move_to_another_kind_of_step(
    tmp_path: Path,
) -> None:
    waiting = (
        "journey j\n  when go\n  upgrade in place\n"
        "  wait for ping up to 1h as w\n"
        '  send inapp "a" as s\n'
    )
    project = write_project(tmp_path / "project", {"j.journey": waiting})
    db = tmp_path / "journeyc.db"
    with Store.open(db) as store:
        engine = Engine(store)
        deploy_project(engine, compiled(project), T0)
        store.append_events([visit("u", T0, "go")])
        engine.advance(T0)
    write_project(project, {"j.journey": waiting.replace("wait for ping up to 1h", "wait 1h")})
    code, plan = plan_json(project, db)
    assert code == 2
    ((group,),) = [j["in_flight"] for j in plan["journeys"]]
    assert (group["step"], group["outcome"], group["kind"], group["to_kind"]) == (
        "w",
        "moves",
        "wait_for",
        "wait",
    )
    assert "ping no longer ends their wait, they go on only when it times out" in group["warning"]
    assert plan["warnings"] == [f"j: 1 user(s) at w: {group['warning']}"]
    text = cli("plan", str(project), "--db", str(db)).stdout
    assert "Warning: j: 1 user(s) at w: w waits for ping in" in text


def test_plan_exits_1_on_errors_including_usage_errors(tmp_path: Path) -> None:
    project = write_project(tmp_path / "project", {"bad.journey": "journey j\n  when\n"})
    db = tmp_path / "journeyc.db"
    assert cli("plan", str(project), "--db", str(db)).exit_code == 1
    assert cli("plan", str(tmp_path / "nowhere"), "--db", str(db)).exit_code == 1
    assert cli("plan", "--no-such-option", str(project)).exit_code == 1
    assert cli("plan").exit_code == 1
    foreign = tmp_path / "foreign.db"
    foreign.write_text("not a database, not at all" * 100)
    good = write_project(tmp_path / "good", V1)
    result = cli("plan", str(good), "--db", str(foreign))
    assert result.exit_code == 1
    assert "foreign.db" in result.stderr


def test_deploy_refuses_a_file_that_is_not_a_plan(busy: tuple[Path, Path], tmp_path: Path) -> None:
    project, db = busy
    bogus = tmp_path / "plan.json"
    bogus.write_text('{"hello": 1}')
    result = cli("deploy", str(project), "--db", str(db), "--plan", str(bogus))
    assert result.exit_code == 1
    assert "not a plan written by this journeyc" in result.stderr
    result = cli("deploy", str(project), "--db", str(db), "--plan", str(tmp_path / "none.json"))
    assert result.exit_code == 1
    assert "cannot read the plan" in result.stderr


def test_help_documents_the_exit_codes() -> None:
    plan_help = cli("plan", "--help")
    assert plan_help.exit_code == 0
    assert "0 no changes, 1 error" in plan_help.stdout and "2 changes present" in plan_help.stdout
    deploy_help = cli("deploy", "--help")
    assert deploy_help.exit_code == 0
    assert "Exit codes: 0 deployed" in deploy_help.stdout


# ---------------------------------------------------------------- serve --no-watch


def serve_no_watch(project: Path, db: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return serve_once([str(project), "--db", str(db), "--port", "0", "--no-watch"], cwd)


def test_serve_no_watch_refuses_to_start_when_nothing_was_deployed(tmp_path: Path) -> None:
    project = write_project(tmp_path / "project", V1)
    missing = tmp_path / "missing.db"
    proc = serve_no_watch(project, missing, tmp_path)
    assert proc.returncode == 1
    assert "no store at" in proc.stderr and "journeyc deploy" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not missing.exists()
    empty = tmp_path / "empty.db"
    Store.open(empty).close()
    proc = serve_no_watch(project, empty, tmp_path)
    assert proc.returncode == 1
    assert "nothing was ever deployed into" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_serve_no_watch_runs_what_was_deployed_and_takes_a_journeyc_deploy(
    tmp_path: Path, daemons: list[Daemon]
) -> None:
    project = write_project(tmp_path / "project", V1)
    db = tmp_path / "journeyc.db"
    assert cli("deploy", str(project), "--db", str(db)).exit_code == 0
    with Store.open(db) as store:
        v1 = active_versions(store)
    # On disk, the project is v2 before the daemon starts: it must not deploy it.
    write_project(project, V2)
    v2 = {jid: j.version for jid, j in compiled(project).journeys.items()}
    daemon = Daemon([str(project), "--db", str(db), "--port", "0", "--no-watch"], tmp_path)
    daemons.append(daemon)
    daemon.start()
    assert daemon.admin("/v1/status")["daemon"]["journeys"] == v1
    assert daemon.admin("/v1/status")["daemon"]["watching"] is False

    # A change on disk while it runs is not deployed either (a watched daemon deploys
    # one within a second).
    (project / "plain.journey").write_text(V2["plain.journey"].replace("uno", "dos"))
    time.sleep(2.5)
    assert daemon.admin("/v1/status")["daemon"]["journeys"] == v1
    with Store.open(db) as store:
        assert active_versions(store) == v1
    daemon.track("u1", "visit")
    poll(lambda: ("promo", v1["promo"], "pause") in flights(db), 10, "u1 entering promo v1")

    # journeyc deploy while it runs: the daemon takes it on its poll.
    write_project(project, V2)
    mark = len(daemon.log())
    assert cli("deploy", str(project), "--db", str(db)).exit_code == 0
    poll(lambda: daemon.admin("/v1/status")["daemon"]["journeys"] == v2, 15, "the new versions")
    daemon.wait_for_log(r"a deployment was made into the store", after=mark)
    # u1 moved (upgrade in place), and a new entry takes v2.
    daemon.track("u2", "visit")
    poll(lambda: flights(db).get(("promo", v2["promo"], "pause")) == 2, 10, "u2 entering v2")
    assert daemon.stop() == 0


def test_deploy_keeps_the_usual_exit_codes(tmp_path: Path) -> None:
    db = tmp_path / "journeyc.db"
    assert cli("deploy", str(tmp_path / "nowhere"), "--db", str(db)).exit_code == 2
    assert cli("deploy", "--no-such-option").exit_code == 2
    bad = write_project(tmp_path / "bad", {"bad.journey": "journey j\n  when\n"})
    assert cli("deploy", str(bad), "--db", str(db)).exit_code == 1
    assert not db.exists()


# ---------------------------------------------------------------- generated


STEP_NAMES = ("a", "b", "c", "d", "e")


@st.composite
def journey_text(draw: st.DrawFn) -> str:
    """A journey of one-hour waits (plain or `wait for`) with names from a small pool,
    with or without `upgrade in place`."""
    names = draw(st.lists(st.sampled_from(STEP_NAMES), min_size=1, max_size=4, unique=True))
    lines = ["journey j", "  when visit", "  entry always"]
    if draw(st.booleans()):
        lines.append("  upgrade in place")
    for name in names:
        wait = draw(st.sampled_from(["wait 1h", "wait for ping up to 1h"]))
        lines.append(f"  {wait} as {name}")
    lines.append(f'  send inapp "{draw(st.integers(0, 3))}" as last')
    return "\n".join(lines) + "\n"


@settings(max_examples=40, deadline=None)
@given(
    v1=journey_text(),
    v2=st.one_of(st.none(), journey_text()),
    entries=st.lists(st.integers(0, 4 * 60), min_size=1, max_size=6),
)
def test_generated_plans_predict_where_deploy_leaves_every_user(
    v1: str, v2: str | None, entries: list[int]
) -> None:
    """For generated versions and users at generated steps, the plan's groups (users,
    outcome, target version) are the instances per version and step after the
    deployment; v2 None retires the journey."""
    other = 'journey other\n  when visit\n  wait 1h as nap\n  send inapp "x" as hi\n'
    first = compile_files({"j.journey": v1, "other.journey": other})
    second = compile_files({"other.journey": other, **({"j.journey": v2} if v2 else {})})
    with Store.open(":memory:") as store:
        engine = Engine(store)
        deploy_project(engine, first, T0)
        for i, minute in enumerate(sorted(entries)):
            at = T0 + minute * 60_000
            store.append_events([visit(f"u{i}", at)])
            engine.advance(at)
        now = T0 + 4 * HOUR + 1
        engine.advance(now)
        before = {(f.journey_id, f.version, f.step): f.users for f in in_flight(store)}
        plan = make_plan(store, second, now, ZoneInfo("UTC"))
        deploy_project(engine, second, now)
        after = {(f.journey_id, f.version, f.step): f.users for f in in_flight(store)}

    listed = {j.id for j in plan.journeys}
    planned = {(j.id, g.version, g.step): g.users for j in plan.journeys for g in j.in_flight}
    assert planned == {k: n for k, n in before.items() if k[0] in listed}
    # Journeys not listed: nothing happens to their users.
    predicted = {k: n for k, n in before.items() if k[0] not in listed}
    for j in plan.journeys:
        for g in j.in_flight:
            key = (j.id, g.to_version or g.version, g.step)
            predicted[key] = predicted.get(key, 0) + g.users
            event(g.outcome)
            if v2 is None:
                assert g.outcome == "retired"
            elif not second.journeys["j"].upgrade_in_place:
                assert g.outcome in ("stays", "current")
    assert after == predicted
    actions = [(j.id, j.action) for j in plan.journeys]
    if v2 is None:
        assert actions == [("j", "retire")]
    elif first.journeys["j"].version != second.journeys["j"].version:
        assert actions == [("j", "change")]
    else:  # listed only when users on older versions would move: none here
        assert actions == []
    assert "other" in plan.unchanged
