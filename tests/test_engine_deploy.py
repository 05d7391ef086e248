"""Deploying new versions: users in flight finish on their version unless the journey
says `upgrade in place` and their step still exists (by name) in the new one."""

from __future__ import annotations

from pathlib import Path

from journeyc.compile.ir import ProjectIR
from journeyc.compile.lower import lower_project
from journeyc.engine.actions import iso_ms
from journeyc.engine.core import Engine
from journeyc.events import Event, parse_event
from journeyc.lang.project import load_project
from journeyc.store.sqlite import Store

T0 = 1_767_607_200_000  # 2026-01-05T10:00:00Z
HOUR = 3_600_000


def project(tmp: Path, body: str, upgrade: bool) -> ProjectIR:
    d = tmp / "p"
    d.mkdir(exist_ok=True)
    (d / "promo.journey").write_text(
        "journey promo\n"
        "  when visit\n"
        "  entry always\n" + ("  upgrade in place\n" if upgrade else "") + "  wait 1h as pause\n"
        f'  send inapp "{body}" as hello\n'
    )
    return lower_project(load_project([d]))


def visit(user: str, at: int, mid: str) -> Event:
    return parse_event(
        {
            "type": "track",
            "userId": user,
            "event": "visit",
            "timestamp": iso_ms(at),
            "messageId": mid,
        },
        0,
    )


def run(tmp: Path, upgrade: bool) -> dict[str, str]:
    store = Store.open(tmp / "db.sqlite")
    engine = Engine(store)
    v1 = project(tmp, "old text", upgrade)
    engine.deploy(v1, T0)
    store.append_events([visit("early", T0, "m1")])
    engine.advance(T0)
    v2 = project(tmp, "new text", upgrade)
    assert v1.journeys["promo"].version != v2.journeys["promo"].version
    engine.deploy(v2, T0 + 1)
    store.append_events([visit("late", T0 + 2, "m2")])
    engine.advance(T0 + 2)
    sent = {
        a.user: a.detail["content"]["body"]
        for a in engine.advance(T0 + 2 + HOUR)
        if a.action == "send"
    }
    store.close()
    return sent


def test_users_in_flight_finish_on_the_version_they_entered(tmp_path: Path) -> None:
    assert run(tmp_path, upgrade=False) == {"early": "old text", "late": "new text"}


def test_upgrade_in_place_moves_them_to_the_new_version(tmp_path: Path) -> None:
    assert run(tmp_path, upgrade=True) == {"early": "new text", "late": "new text"}


def test_entry_always_reenters_at_the_same_instant(tmp_path: Path) -> None:
    # Found by the differential test: the finished instance must be written before
    # the new one, or the one-live-instance index refuses the new entry.
    d = tmp_path / "p"
    d.mkdir()
    (d / "j1.journey").write_text(
        'journey j1\n  when a\n  when b\n  entry always\n  send inapp "x"\n'
    )
    store = Store.open(tmp_path / "db.sqlite")
    engine = Engine(store)
    engine.deploy(lower_project(load_project([d])), T0)
    for name, mid in (("a", "m1"), ("b", "m2")):
        store.append_events(
            [
                parse_event(
                    {
                        "type": "track",
                        "userId": "u1",
                        "event": name,
                        "timestamp": iso_ms(T0),
                        "messageId": mid,
                    },
                    0,
                )
            ]
        )
    actions = [a.action for a in engine.advance(T0)]
    store.close()
    assert actions == ["enter", "send", "exit"] * 2


def test_journeys_removed_from_the_project_are_retired(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "db.sqlite")
    engine = Engine(store)
    engine.deploy(project(tmp_path, "hi", False), T0)
    engine.deploy(ProjectIR(), T0 + 1)
    active = store.conn.execute("SELECT id, active FROM journeys").fetchall()
    store.close()
    assert active == [("promo", 0)]


def test_a_wait_for_moved_to_a_step_that_is_not_one_ignores_the_event(tmp_path: Path) -> None:
    # upgrade in place moves the entry by step name; its step `w` is a `wait for ping`
    # in v1 and a plain wait in v2. `ping` then no longer ends the wait (the engine
    # failed on an assertion there, and retried the event forever): the entry goes on
    # when its wait was set to end, past the new `w`.
    def deploy(engine: Engine, step: str, at: int) -> None:
        d = tmp_path / "p"
        d.mkdir(exist_ok=True)
        (d / "j.journey").write_text(
            "journey j\n  when visit\n  upgrade in place\n"
            f"  {step} as w\n"
            '  send inapp "after" as after\n'
        )
        engine.deploy(lower_project(load_project([d])), at)

    store = Store.open(tmp_path / "db.sqlite")
    engine = Engine(store)
    deploy(engine, "wait for ping up to 2h", T0)
    store.append_events([visit("u", T0, "m1")])
    engine.advance(T0)
    deploy(engine, "wait 30m", T0 + 1)
    ping = {"type": "track", "userId": "u", "event": "ping", "messageId": "m2"}
    store.append_events([parse_event({**ping, "timestamp": iso_ms(T0 + HOUR)}, 0)])
    assert [a.action for a in engine.advance(T0 + HOUR)] == []
    sent = [a for a in engine.advance(T0 + 2 * HOUR) if a.action == "send"]
    assert [(a.user, a.step) for a in sent] == [("u", "after")]
