"""``journeyc why``: a replay of one user's events through the engine with a tracer.

The property: on generated projects and timelines of several users, simulated into a
store, each user's replay makes exactly the entries, sends, suppressions, goals and
exits the store recorded for them, and its traced decisions say the same (a traced
send decision for each send and suppression, an exit for each exit, …). Then the
report itself: the human timeline and the JSON of a few example journeys (fixture
files), ``--message``, unknown users and names, the CLI end to end (``simulate --db``
then ``why``) and the API through a real ``journeyc serve``.

    JOURNEYC_UPDATE_FIXTURES=1 pytest -q -n0 tests/test_why.py   # rewrite the fixtures
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from journeyc.config import Config
from journeyc.engine.parallel import fill_store
from journeyc.engine.simulate import simulate
from journeyc.store.sqlite import Store
from journeyc.why.model import Decision, WhyReport
from journeyc.why.render import render_text
from journeyc.why.replay import SIMULATED_RUN, UnknownUserError, explain_user, simulated_run
from tests.daemon_helpers import ADMIN_TOKEN, Daemon, poll
from tests.engine_helpers import TMP_DIR, compile_files, reject_runaways, time_limit
from tests.journey_strategies import USERS, ZONES, Scenario, scenarios

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "why"
UPDATE = os.environ.get("JOURNEYC_UPDATE_FIXTURES") == "1"


# ---------------------------------------------------------------- the property


def _what(d: Decision) -> tuple[str, str | None, str | None, str] | None:
    """The action a traced decision stands for, as (at, journey, step, action)."""
    if d.kind == "entry" and d.outcome == "entered":
        return (d.at, d.journey, None, "enter")
    if d.kind == "send" and d.outcome in ("sent", "suppressed"):
        return (d.at, d.journey, d.step, "send" if d.outcome == "sent" else "suppress")
    if d.kind == "goal" and d.outcome == "reached":
        return (d.at, d.journey, None, "goal")
    if d.kind == "exit":
        return (d.at, d.journey, d.step, "exit")
    return None


# Starting profiles, as `journeyc simulate --profiles` loads them: most users can be
# reached by push, so that what the replay starts with shows in what it sends
# (identify calls of the timelines change the same traits later).
PROFILES = st.fixed_dictionaries(
    {
        user: st.fixed_dictionaries(
            {"push_enabled": st.sampled_from((True, True, False))},
            optional={
                "email": st.just("x@example.com"),
                "timezone": st.sampled_from(ZONES),
                "tier": st.sampled_from(("gold", "silver")),
            },
        )
        for user in USERS
    }
)


@given(scenarios(scheduled=True), PROFILES)
def test_each_users_replay_makes_what_the_store_recorded(
    scenario: Scenario, profiles: dict[str, dict[str, Any]]
) -> None:
    reject_runaways(scenario.files, scenario.events, scenario.start_ms, scenario.until_ms)
    project = compile_files(scenario.files)
    with tempfile.TemporaryDirectory(dir=TMP_DIR) as tmp:
        store = Store.open(Path(tmp) / "s.db")
        try:
            with time_limit(60):
                fill_store(store, profiles, [])
                actions = simulate(
                    project,
                    scenario.events,
                    store,
                    start_ms=scenario.start_ms,
                    until_ms=scenario.until_ms,
                )
                run = simulated_run(project, scenario.until_ms, Config(), profiles)
                store.put_setting(SIMULATED_RUN, run)
                for user in sorted({e.user_id for e in scenario.events}):
                    report = explain_user(store, user)
                    assert report.mismatches == [], scenario.describe()
                    assert report.agrees
                    # The trace says what happened: one decision per action, and the
                    # actions simulate returned for the user.
                    traced = Counter(
                        w for j in report.journeys for d in j.decisions if (w := _what(d))
                    )
                    done = Counter(
                        (a["at"], a["journey"], a["step"], a["action"])
                        for a in (x.as_dict() for x in actions)
                        if a["user"] == user
                        and a["action"] in ("enter", "send", "suppress", "goal", "exit")
                    )
                    assert traced == done, scenario.describe()
        finally:
            store.close()


# ---------------------------------------------------------------- the report, end to end

CASES = {
    # channel fallback (push off → WhatsApp) held by quiet hours, then no channel
    "ann": ["ann"],
    "ann.json": ["ann", "--json"],
    # the trigger's where is false, then the user leaves on the goal before the wait
    "ben-cart_reminder": ["ben", "--message", "cart_reminder"],
    # a split arm, then `entry once` used
    "cara-welcome_coupon": ["cara", "--message", "welcome_coupon"],
    # a capped send, and a split arm whose channel is unreachable
    "dan": ["dan"],
    # a render error, and a held-out user
    "eve": ["eve"],
    "eve-welcome_test.json": ["eve", "--journey", "welcome_test", "--json"],
}


def journeyc(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "journeyc", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        check=False,
    )


@pytest.fixture(scope="module")
def shop_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`journeyc simulate --db` of the fixture project, events and profiles."""
    tmp = tmp_path_factory.mktemp("why")
    db = tmp / "shop.db"
    proc = journeyc(
        "simulate",
        str(FIXTURES / "project"),
        "--events",
        str(FIXTURES / "events.jsonl"),
        "--profiles",
        str(FIXTURES / "profiles.jsonl"),
        "--db",
        str(db),
        cwd=tmp,
    )
    assert proc.returncode == 0, proc.stderr
    return db


@pytest.mark.e2e
@pytest.mark.parametrize("case", sorted(CASES))
def test_the_report_of_each_example(case: str, shop_db: Path) -> None:
    proc = journeyc("why", *CASES[case], "--db", str(shop_db), cwd=shop_db.parent)
    assert proc.returncode == 0, proc.stderr
    path = FIXTURES / (case if case.endswith(".json") else f"{case}.txt")
    if UPDATE:
        path.write_text(proc.stdout, encoding="utf-8")
        return
    assert path.exists(), f"{path.name} is missing (JOURNEYC_UPDATE_FIXTURES=1 writes it)"
    assert proc.stdout == path.read_text(encoding="utf-8")
    if case.endswith(".json"):
        report = WhyReport.model_validate_json(proc.stdout)  # the documented model
        assert report.agrees and report.mismatches == []


@pytest.mark.e2e
def test_the_decisions_say_what_decided_them(shop_db: Path) -> None:
    """The values in the report: read from the JSON, not from the fixtures."""

    def report(*args: str) -> WhyReport:
        proc = journeyc("why", *args, "--json", "--db", str(shop_db), cwd=shop_db.parent)
        assert proc.returncode == 0, proc.stderr
        return WhyReport.model_validate_json(proc.stdout)

    (cart,) = report("ann", "--journey", "cart_recovery").journeys
    held, sent = [d for d in cart.decisions if d.kind == "send" and d.step == "reminder"]
    assert held.outcome == "deferred" and held.quiet is not None and held.quiet.inside
    assert held.quiet.local_time == "Mon 22:15 Asia/Bangkok"
    assert [(c.channel, c.reachable, c.tried) for c in sent.channels] == [
        ("push", False, True),
        ("whatsapp", True, True),
        ("email", None, False),
    ]
    assert (sent.outcome, sent.channel, sent.at) == ("sent", "whatsapp", "2026-01-06T01:00:00Z")

    (cart,) = report("ben", "--journey", "cart_recovery").journeys
    first = cart.decisions[0]
    assert (first.kind, first.outcome) == ("trigger", "not_matched")
    assert [(t.text, t.value) for t in first.terms] == [
        ("event.cart_value >= 50", False),
        ("event.cart_value", 20),
    ]

    (browse,) = report("dan", "--journey", "browse").journeys
    capped = [d for d in browse.decisions if d.kind == "send"][-1]
    assert (capped.outcome, capped.reason) == ("suppressed", "cap")
    assert [(c.limit, c.count, c.reached) for c in capped.caps] == [(2, 2, True)]

    (shipped,) = report("eve", "--journey", "shipped").journeys
    (bad,) = [d for d in shipped.decisions if d.kind == "send"]
    assert bad.reason == "render_error" and bad.error is not None and "divide" in bad.error

    (welcome,) = report("eve", "--message", "welcome_coupon").journeys
    entered = next(d for d in welcome.decisions if d.kind == "entry")
    assert entered.holdout is True


@pytest.mark.e2e
def test_why_not_says_where_the_user_stopped(shop_db: Path) -> None:
    def reach(user: str, message: str) -> tuple[str, str | None, str]:
        proc = journeyc(
            "why", user, "--message", message, "--json", "--db", str(shop_db), cwd=shop_db.parent
        )
        assert proc.returncode == 0, proc.stderr
        (j,) = WhyReport.model_validate_json(proc.stdout).journeys
        assert j.message is not None
        return j.message.outcome, j.message.stopped_at, j.message.why

    outcome, stopped, why = reach("ben", "cart_reminder")
    assert (outcome, stopped) == ("never_reached", "first_nudge")
    assert "exit when: order_completed" in why
    outcome, stopped, why = reach("cara", "welcome_coupon")
    assert (outcome, stopped) == ("never_reached", "entry")
    assert "entry once" in why
    assert reach("dan", "welcome_coupon")[:2] == ("suppressed", "coupon_mail")
    assert reach("ann", "cart_reminder")[:2] == ("sent", "reminder")
    # A journey that sends the message but that none of the user's events triggers.
    outcome, stopped, _ = reach("eve", "cart_reminder")
    assert (outcome, stopped) == ("never_reached", "trigger")


@pytest.mark.e2e
def test_unknown_users_journeys_and_messages_are_clear_errors(shop_db: Path) -> None:
    for args, said in (
        (["zoe"], "no user 'zoe'"),
        (["ann", "--journey", "nope"], "--journey: no journey 'nope'"),
        (["ann", "--message", "nope"], "--message: no deployed journey sends a message 'nope'"),
    ):
        proc = journeyc("why", *args, "--db", str(shop_db), cwd=shop_db.parent)
        assert proc.returncode == 1, proc.stderr
        assert said in proc.stderr and "Traceback" not in proc.stderr
        assert proc.stdout == ""
    missing = journeyc("why", "ann", "--db", str(shop_db.parent / "none.db"), cwd=shop_db.parent)
    assert missing.returncode == 2


def test_a_store_nothing_was_deployed_into_is_an_error(tmp_path: Path) -> None:
    from journeyc.events import parse_event
    from journeyc.why.replay import WhyError

    with Store.open(tmp_path / "s.db") as store:
        store.append_events(
            [parse_event({"type": "track", "userId": "u1", "event": "a"}, received_ms=0)]
        )
        with pytest.raises(WhyError, match="no journey was ever deployed"):
            explain_user(store, "u1")
        with pytest.raises(UnknownUserError):
            explain_user(store, "u2")


# ---------------------------------------------------------------- the API


@pytest.mark.e2e
def test_the_api_replays_a_users_events_on_a_real_daemon(tmp_path: Path) -> None:
    project = tmp_path / "journeys"
    project.mkdir()
    (project / "shop.journey").write_text(
        (FIXTURES / "project" / "shop.journey").read_text(encoding="utf-8"), encoding="utf-8"
    )
    daemon = Daemon([str(project), "--db", str(tmp_path / "store.db"), "--port", "0"], tmp_path)
    daemon.start()
    try:
        daemon.identify("dan", first_name="Dan")
        for name in ("Silk dress", "Wool coat", "Linen shirt"):
            daemon.track("dan", "product_viewed", name=name)

        def handled() -> bool:
            actions = daemon.admin("/v1/users/dan")["actions"]
            return sum(a["action"] == "exit" for a in actions) == 3

        poll(handled, 20, "the three entries to end")
        auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        reply = httpx.get(
            f"{daemon.url}/v1/users/dan/why", params={"journey": "browse"}, headers=auth
        )
        assert reply.status_code == 200, reply.text
        report = WhyReport.model_validate(reply.json())
        assert report.agrees, report.mismatches
        (browse,) = report.journeys
        sends = [d for d in browse.decisions if d.kind == "send"]
        assert [(d.outcome, d.reason) for d in sends] == [
            ("sent", None),
            ("sent", None),
            ("suppressed", "cap"),
        ]
        message = httpx.get(
            f"{daemon.url}/v1/users/dan/why", params={"message": "cart_reminder"}, headers=auth
        ).json()
        assert message["journeys"][0]["message"]["outcome"] == "never_reached"

        unknown = httpx.get(f"{daemon.url}/v1/users/zoe/why", headers=auth)
        assert unknown.status_code == 404
        assert unknown.json()["error"].startswith("no user 'zoe'")
        bad = httpx.get(f"{daemon.url}/v1/users/dan/why", params={"message": "nope"}, headers=auth)
        assert bad.status_code == 400
        assert bad.json()["error"] == (
            "query parameter `message`: no deployed journey sends a message 'nope'"
        )
        assert httpx.get(f"{daemon.url}/v1/users/dan/why").status_code == 401
        assert daemon.stop() == 0
    finally:
        if daemon.proc is not None and daemon.proc.poll() is None:
            daemon.kill()


def test_every_user_of_the_example_project_replays_as_recorded(tmp_path: Path) -> None:
    """The example shop: segments (their changes are compared too), scheduled
    entries, identities, recommendation filters, quiet hours in Bangkok."""
    import json

    from journeyc.compile.lower import lower_project
    from journeyc.events import parse_event
    from journeyc.lang.project import load_project

    project = lower_project(load_project([ROOT / "journeys"]))
    events = [
        parse_event(json.loads(line), received_ms=0)
        for line in (ROOT / "examples" / "events.jsonl").read_text().splitlines()
        if line.strip()
    ]
    with Store.open(tmp_path / "shop.db") as store:
        simulate(project, events, store)
        store.put_setting(SIMULATED_RUN, simulated_run(project, None, Config()))
        users = sorted({e.user_id for e in events})
        assert len(users) >= 5
        changes = 0
        for user in users:
            report = explain_user(store, user)
            assert report.mismatches == [], user
            changes += sum(d.kind == "segment" for j in report.journeys for d in j.decisions)
        assert changes > 0  # segment entries were replayed and compared
        # Carla is dormant: a daily firing her entry rule refuses, day after day, is
        # printed once and counted; the JSON keeps each one.
        carla = explain_user(store, "u3", journey="dormant_cross_sell")
    (cross_sell,) = carla.journeys
    firings = [d.at for d in cross_sell.decisions if d.kind == "firing"]
    text = render_text(carla)
    assert len(firings) > 10
    assert firings[-1] in text and firings[-2] not in text
    assert f"… the same 18 more times, the last at {firings[-1]}" in text


def _why_of_shop(
    tmp_path: Path, calls: list[dict[str, Any]], user: str, message: str | None = None
) -> WhyReport:
    """``why`` of ``user`` after a simulation of the fixture project over ``calls``."""
    from journeyc.compile.lower import lower_project
    from journeyc.events import parse_call
    from journeyc.lang.project import load_project

    project = lower_project(load_project([FIXTURES / "project"]))
    events = [e for c in calls for e in parse_call(c, received_ms=0)]  # with alias events
    with Store.open(tmp_path / "s.db") as store:
        simulate(project, events, store)
        store.put_setting(SIMULATED_RUN, simulated_run(project, None, Config()))
        return explain_user(store, user, message=message)


def test_an_anonymous_id_merged_into_the_user_is_replayed_as_theirs(tmp_path: Path) -> None:
    calls = [
        {"type": "track", "anonymousId": "anon-1", "event": "cart_abandoned",
         "timestamp": "2026-01-05T09:00:00Z", "properties": {"cart_value": 120}},
        {"type": "identify", "anonymousId": "anon-1", "userId": "kim",
         "timestamp": "2026-01-05T09:10:00Z", "traits": {"push_enabled": True}},
    ]  # fmt: skip
    report = _why_of_shop(tmp_path, calls, "anon-1")  # the id names kim now
    assert (report.user, report.ids) == ("kim", ["kim", "anon-1"])
    assert report.agrees, report.mismatches
    assert any("anon-1" in note for note in report.notes)
    (cart,) = report.journeys
    (sent,) = [d for d in cart.decisions if d.kind == "send" and d.outcome == "sent"]
    assert (sent.step, sent.channel) == ("reminder", "push")  # kim's push_enabled, merged


def test_a_trigger_whose_where_is_false_is_where_the_user_stopped(tmp_path: Path) -> None:
    calls = [
        {"type": "track", "userId": "zed", "event": "cart_abandoned",
         "timestamp": "2026-01-05T09:00:00Z", "properties": {"cart_value": 20}},
    ]  # fmt: skip
    report = _why_of_shop(tmp_path, calls, "zed", message="cart_reminder")
    (cart,) = report.journeys
    assert cart.message is not None
    assert (cart.message.outcome, cart.message.stopped_at) == ("never_reached", "trigger")
    assert "trigger did not match" in cart.message.why
    (trigger,) = cart.decisions
    assert [(t.text, t.value) for t in trigger.terms] == [
        ("event.cart_value >= 50", False),
        ("event.cart_value", 20),
    ]


def test_each_deployed_version_is_replayed_from_its_deployment(tmp_path: Path) -> None:
    """A store written as the daemon writes it, with a second version deployed between
    two events: the first entry runs version 1, the second version 2."""
    from journeyc.engine.deploy import deploy_project
    from journeyc.engine.simulate import Replay
    from tests.engine_helpers import ms, track

    one = 'journey j\n  when a\n  entry always\n  send inapp "one" as s\n'
    two = 'journey j\n  when a\n  entry always\n  send inapp "two" as t\n'
    v1, v2 = compile_files({"j.journey": one}), compile_files({"j.journey": two})
    first, second = (
        track("u1", "a", "2026-01-05T10:00:00Z"),
        track("u1", "a", "2026-01-05T12:00:00Z"),
    )
    with Store.open(tmp_path / "s.db") as store:
        replay = Replay(v1, [first, second], store, until_ms=ms("2026-01-05T11:00:00Z"), hold=False)
        replay.run()
        deploy_project(replay.engine, v2, ms("2026-01-05T11:00:00Z"))
        replay.until_ms = ms("2026-01-05T13:00:00Z")
        replay.run()
        report = explain_user(store, "u1", now_ms=ms("2026-01-05T13:00:00Z"))
    assert report.agrees, report.mismatches
    (j,) = report.journeys
    assert j.versions == [v1.journeys["j"].version, v2.journeys["j"].version]
    sends = [(d.at, d.step) for d in j.decisions if d.kind == "send"]
    assert sends == [("2026-01-05T10:00:00Z", "s"), ("2026-01-05T12:00:00Z", "t")]
