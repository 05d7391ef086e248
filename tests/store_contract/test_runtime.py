"""The engine's unit of work (:class:`journeyc.store.abc.UnitOfWork`) on every store:
instances created, saved, ended and read back, due timers, entries and goals, identity
merges, the outbox's unique keys, the action log; and what only one kind has (the
partitions of a PostgreSQL store, the simulator's ``hold`` on SQLite)."""

from __future__ import annotations

import psycopg
import pytest

from journeyc.store.abc import Store, UnitOfWork
from journeyc.store.errors import StoreError
from journeyc.store.open import is_url
from journeyc.store.partitions import PARTITIONS
from journeyc.store.rows import InFlight, Instance
from tests.store_contract.calls import read_rows
from tests.store_contract.conftest import Opener

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z

POSTGRES_ONLY = pytest.mark.parametrize("target", ["postgres"], indirect=True)
SQLITE_ONLY = pytest.mark.parametrize("target", ["sqlite"], indirect=True)


def deployed(store: Store, *journeys: str) -> UnitOfWork:
    """A unit of work of ``store`` with ``journeys`` deployed (instances name one)."""
    rt = store.runtime()
    with store.transaction():
        for jid in journeys:
            rt.deploy(jid, "v1", "{}", "", T0)
    return rt


def new(journey: str, user: str, *, entry_no: int = 1, at: int = T0, **kw: object) -> Instance:
    """An instance to create (its id is given by create())."""
    fields: dict[str, object] = {"node": "start", "status": "active", **kw}
    return Instance(0, journey, "v1", user, entry_no, entered_at=at, **fields)  # type: ignore[arg-type]


def test_created_instances_are_written_at_the_end_of_the_unit(target: str, store: Store) -> None:
    rt = deployed(store, "j", "k")
    with store.transaction():
        a = rt.create(new("j", "u", vars={"n": 1, "s": "x"}, holdout=True, arm="A"))
        b = rt.create(new("k", "u"))
        assert b.id > a.id > 0
        # Read in the unit before it is written: the same objects.
        assert rt.live("u") == [a, b]
        assert rt.live_in("k", "u") is b
        assert rt.last_entry("j", "u") == (1, T0, None)
        assert read_rows(target, "SELECT count(*) FROM instances") == [(0,)]  # not yet
        rt.end()
    again = store.runtime()
    with store.transaction():
        got = again.live("u")
        assert [(i.id, i.journey_id, i.vars, i.holdout, i.arm) for i in got] == [
            (a.id, "j", {"n": 1, "s": "x"}, True, "A"),
            (b.id, "k", {}, False, None),
        ]
        assert again.last_entry("j", "u") == (1, T0, None)
        assert again.last_entry("j", "nobody") is None
    assert store.deployments().in_flight() == [
        InFlight("j", "v1", "start", 1),
        InFlight("k", "v1", "start", 1),
    ]


def test_saved_instances_change_and_ended_ones_leave_the_table(store: Store) -> None:
    rt = deployed(store, "j")
    with store.transaction():
        one = rt.create(new("j", "u"))
        two = rt.create(new("j", "v"))
        rt.end()
    with store.transaction():
        (inst,) = rt.live("u")
        assert inst.id == one.id and inst is not one  # a new unit reads afresh
        inst.node, inst.status, inst.wake_at = "w1", "waiting", T0 + 60
        inst.vars = {"stage": "mid"}
        rt.save(inst)
        (other,) = rt.live("v")
        other.status = "completed"
        rt.save(other)
        rt.end()
    with store.transaction():
        (inst,) = rt.live("u")
        assert (inst.node, inst.status, inst.wake_at, inst.vars) == (
            "w1",
            "waiting",
            T0 + 60,
            {"stage": "mid"},
        )
        assert rt.live("v") == []
        # The entry stays when the instance ends; a new entry takes the next number.
        assert rt.last_entry("j", "v") == (1, T0, None)
        three = rt.create(new("j", "v", entry_no=2, at=T0 + 5))
        assert three.id > two.id
        rt.record_goal("j", "v", 2, T0 + 6)
        rt.record_goal("j", "u", 1, T0 + 7)  # an entry written already
        assert rt.last_entry("j", "v") == (2, T0 + 5, T0 + 6)
        rt.end()
    with store.transaction():
        assert rt.last_entry("j", "v") == (2, T0 + 5, T0 + 6)
        assert rt.last_entry("j", "u") == (1, T0, T0 + 7)


def test_an_instance_ended_before_it_was_written_is_never_inserted(
    target: str, store: Store
) -> None:
    rt = deployed(store, "j")
    with store.transaction():
        inst = rt.create(new("j", "u"))
        inst.status = "exited"
        rt.save(inst)
        rt.end()
    assert read_rows(target, "SELECT count(*) FROM instances") == [(0,)]
    assert read_rows(target, "SELECT journey_id, user_id, entry_no FROM entries") == [("j", "u", 1)]
    with store.transaction():
        # Its id is never handed out again.
        assert rt.create(new("j", "u", entry_no=2)).id > inst.id
        rt.end()


def test_ids_are_never_handed_out_twice_across_units(store: Store) -> None:
    rt = deployed(store, "j")
    other = store.runtime()
    ids = []
    with store.transaction():
        ids.append(rt.create(new("j", "a")).id)
        rt.end()
    with store.transaction():
        ids.append(other.create(new("j", "b")).id)
        other.end()
    with store.transaction():
        ids.append(rt.create(new("j", "c")).id)
        rt.end()
    assert ids == sorted(set(ids))


def test_one_live_instance_per_journey_and_user(store: Store) -> None:
    rt = deployed(store, "j")
    with store.transaction():
        rt.create(new("j", "u"))
        rt.end()
    other = store.runtime()  # a second engine that did not read u's instance
    with pytest.raises(StoreError), store.transaction():
        other.create(new("j", "u", entry_no=2))
        other.end()
    other.discard()
    with store.transaction():
        assert len(store.runtime().live("u")) == 1


def test_an_instance_ended_frees_its_slot_for_a_new_one_in_the_same_unit(store: Store) -> None:
    rt = deployed(store, "j")
    with store.transaction():
        rt.create(new("j", "u"))
        rt.end()
    with store.transaction():
        (old,) = rt.live("u")
        old.status = "completed"
        rt.save(old)
        fresh = rt.create(new("j", "u", entry_no=2))
        rt.end()
    with store.transaction():
        assert [i.id for i in rt.live("u")] == [fresh.id]


def test_due_timers_earliest_first_and_the_next_wake(store: Store) -> None:
    rt = deployed(store, "j")
    assert rt.next_wake() is None
    with store.transaction():
        for user, wake in (("a", T0 + 30), ("b", T0 + 10), ("c", T0 + 10), ("d", None)):
            rt.create(new("j", user, status="waiting" if wake else "active", wake_at=wake))
        rt.end()
    assert rt.next_wake() == T0 + 10
    with store.transaction():
        due = rt.due(T0 + 10, 10)
        assert [i.user_id for i in due] == ["b", "c"]  # equal times: the older first
        assert rt.due(T0 + 100, 1)[0] is due[0]  # the same objects within a unit
        # One moves on: the next query does not return it.
        due[0].wake_at = T0 + 50
        rt.save(due[0])
        assert [i.user_id for i in rt.due(T0 + 30, 10)] == ["c", "a"]
        rt.rearm(due[1:])
        rt.end()
    assert rt.next_wake() == T0 + 10
    with store.transaction():
        assert [i.user_id for i in rt.due(T0 + 60, 10)] == ["c", "a", "b"]
        rt.end()


def test_prefetch_reads_many_users_at_once(store: Store) -> None:
    rt = deployed(store, "j", "k")
    with store.transaction():
        rt.create(new("j", "a"))
        rt.create(new("k", "a", entry_no=3))
        rt.create(new("j", "b"))
        rt.end()
    with store.transaction():
        rt.prefetch(["a", "b", "c", "a"])
        assert [i.journey_id for i in rt.live("a")] == ["j", "k"]
        assert rt.live("c") == []
        assert rt.last_entry("k", "a") == (3, T0, None)
        assert rt.last_entry("k", "b") is None


def test_split_arms_are_kept_with_the_entry(target: str, store: Store) -> None:
    rt = deployed(store, "j")
    with store.transaction():
        inst = rt.create(new("j", "u"))
        inst.arm = "B"
        rt.record_arm(inst)  # the entry is not written yet
        rt.end()
    with store.transaction():
        (inst,) = rt.live("u")
        inst.arm = "C"
        rt.save(inst)
        rt.record_arm(inst)  # written already
        rt.end()
    assert read_rows(target, "SELECT arm FROM entries") == [("C",)]


def test_outbox_rows_once_per_key_and_sends_since(target: str, store: Store) -> None:
    rt = deployed(store, "j", "k")
    with store.transaction():
        inst = rt.create(new("j", "u"))
        other = rt.create(new("k", "u"))
        rt.queue("j:u:1:s1", inst, "s1", "email", "hi", {"subject": "a"}, T0 + 1)
        rt.queue("j:u:1:s1", inst, "s1", "email", "again", {"subject": "b"}, T0 + 2)
        rt.queue("k:u:1:s1", other, "s1", None, "quiet", {}, T0 + 3, "suppressed", "cap")
        rt.end()
    with store.transaction():
        # A key written in an earlier unit changes nothing either (a step redone).
        rt.queue("j:u:1:s1", inst, "s1", "email", "third", {}, T0 + 4)
        rt.queue("k:u:1:s2", other, "s2", "push", "yo", {}, T0 + 5)
        assert rt.sends_since("u", T0, None) == 2  # the unit's own rows count
        assert rt.sends_since("u", T0, "k") == 1
        assert rt.sends_since("u", T0 + 1, None) == 1
        assert rt.sends_since("nobody", 0, None) == 0
        rt.end()
    rows = read_rows(
        target,
        "SELECT key, instance_id, message, status, next_attempt_at, created_at, error"
        " FROM outbox ORDER BY key",
    )
    assert rows == [
        ("j:u:1:s1", inst.id, "hi", "queued", T0 + 1, T0 + 1, None),
        ("k:u:1:s1", other.id, "quiet", "suppressed", None, T0 + 3, "cap"),
        ("k:u:1:s2", other.id, "yo", "queued", T0 + 5, T0 + 5, None),
    ]


def test_actions_are_logged_and_summed_for_reports(target: str, store: Store) -> None:
    rt = deployed(store, "j")
    hour = 3_600_000
    with store.transaction():
        rt.log_actions(
            [
                (T0, "u", "j", None, "enter", "{}"),
                (T0 + 1, "u", "j", "s1", "send", '{"channel": "email"}'),
                (T0 + 2, "v", "j", "s1", "send", '{"channel": "email"}'),
                (T0 + hour, "v", "j", "s1", "suppress", '{"reason": "cap"}'),
            ]
        )
    with store.transaction():
        rt.log_actions([(T0 + 3, "w", "j", "s1", "send", '{"channel": "email"}')])
        rt.log_actions([])
    assert read_rows(target, "SELECT count(*) FROM actions") == [(5,)]
    assert read_rows(
        target,
        "SELECT hour, step, action, label, n FROM action_counts WHERE journey_id = 'j'"
        " ORDER BY hour, step, action",
    ) == [
        (T0 // hour, "", "enter", "", 1),
        (T0 // hour, "s1", "send", "email", 3),
        (T0 // hour + 1, "s1", "suppress", "cap", 1),
    ]


def test_merge_user_moves_instances_entries_and_sends(target: str, store: Store) -> None:
    rt = deployed(store, "j", "k", "m")
    with store.transaction():
        # Both have a live instance of j: the one entered first (anon's) stays.
        mine_j = rt.create(new("j", "known", at=T0 + 5))
        theirs_j = rt.create(new("j", "anon", at=T0 + 1))
        theirs_k = rt.create(new("k", "anon", at=T0 + 2))
        # An old entry of m by anon, and one by known.
        rt.create(new("m", "anon", at=T0, status="exited"))
        rt.create(new("m", "known", at=T0 + 3, status="exited"))
        rt.queue("k:anon:1:s", theirs_k, "s", "push", "x", {}, T0 + 2)
        rt.end()
    with store.transaction():
        dropped = rt.merge_user("anon", "known")
        assert [i.id for i in dropped] == [mine_j.id]
        rt.end()
    with store.transaction():
        live = rt.live("known")
        assert [(i.id, i.journey_id) for i in live] == [(theirs_j.id, "j"), (theirs_k.id, "k")]
        assert rt.live("anon") == []
        # anon's entries are numbered after known's; the live one is the latest.
        assert rt.last_entry("j", "known") == (2, T0 + 1, None)
        assert rt.last_entry("k", "known") == (1, T0 + 2, None)
        # m: known's entry (entered last) stays the latest, after anon's moved in.
        assert rt.last_entry("m", "known") == (3, T0 + 3, None)
        assert rt.sends_since("known", 0, None) == 1
    assert read_rows(target, "SELECT count(*) FROM entries WHERE user_id = 'anon'") == [(0,)]
    assert read_rows(target, "SELECT user_id FROM outbox") == [("known",)]


def test_upgrade_moves_live_instances_at_steps_the_version_keeps(store: Store) -> None:
    rt = deployed(store, "j")
    with store.transaction():
        rt.create(new("j", "a", node="w1"))
        rt.create(new("j", "b", node="gone"))
        rt.end()
    with store.transaction():
        rt.deploy("j", "v2", "{}", "", T0 + 1)
        assert rt.upgrade("j", "v2", ["w1", "w2"]) == 1
    with store.transaction():
        assert [i.version for i in rt.live("a")] == ["v2"]
        assert [i.version for i in rt.live("b")] == ["v1"]
    assert store.deployments().active_versions() == {"j": "v2"}
    with store.transaction():
        rt.retire_except([])
    assert store.deployments().active_versions() == {}


def test_deployment_reads(target: str, store: Store) -> None:
    rt = deployed(store, "b", "a")
    with store.transaction():
        rt.create(new("a", "u", node="w"))
        rt.create(new("a", "v", node="w"))
        rt.end()
    reads = store.deployments()
    assert reads.active_versions() == {"a": "v1", "b": "v1"}
    assert list(reads.active_versions()) == ["a", "b"]
    assert reads.journey_ir("a", "v1") == "{}"
    assert reads.journey_ir("a", "v9") is None
    assert reads.in_flight() == [InFlight("a", "v1", "w", 2)]
    assert reads.deployed_segments() == {}
    assert reads.schedule_rows() == []
    assert reads.known_users() == 0


def test_a_rolled_back_unit_is_discarded(target: str, store: Store) -> None:
    rt = deployed(store, "j")
    with pytest.raises(RuntimeError), store.transaction():
        rt.create(new("j", "u"))
        rt.end()
        raise RuntimeError
    rt.discard()
    with store.transaction():
        assert rt.live("u") == []
        rt.create(new("j", "u"))
        rt.end()
    assert read_rows(target, "SELECT count(*) FROM instances") == [(1,)]


# ---------------------------------------------------------------- partitions


def partition(target: str, user: str) -> int:
    """The user's partition as the database computes it."""
    with psycopg.connect(target) as conn:
        row = conn.execute(
            "SELECT ((hashtextextended(%s, 0) %% 64) + 64) %% 64", (user,)
        ).fetchone()
    assert row is not None
    return int(row[0])


@POSTGRES_ONLY
def test_only_some_partitions_timers(target: str, store: Store) -> None:
    users = [f"user{i}" for i in range(40)]
    parts = {u: partition(target, u) for u in users}
    assert len(set(parts.values())) > 10  # spread over the partitions
    rt = deployed(store, "j")
    with store.transaction():
        for n, user in enumerate(users):
            rt.create(new("j", user, status="waiting", wake_at=T0 + n))
        rt.end()
    # The generated column is the database's: every row has it.
    assert read_rows(target, "SELECT count(*) FROM instances WHERE part IS NULL") == [(0,)]
    mine = sorted({parts["user3"], parts["user7"]})
    rt.only(mine)
    want = [u for u in users if parts[u] in mine]
    assert rt.next_wake() == T0 + users.index(want[0])
    with store.transaction():
        assert [i.user_id for i in rt.due(T0 + 100, 100)] == want
        assert [i.user_id for i in rt.due(T0 + 100, 1)] == want[:1]
    rt.only([])
    assert rt.next_wake() is None
    with store.transaction():
        assert rt.due(T0 + 100, 100) == []
    rt.only(None)
    assert rt.next_wake() == T0
    with store.transaction():
        assert len(rt.due(T0 + 100, 100)) == len(users)


@POSTGRES_ONLY
def test_workers_on_complementary_partitions_see_each_timer_once(
    target: str, store: Store, open_again: Opener
) -> None:
    users = [f"user{i}" for i in range(30)]
    rt = deployed(store, "j")
    with store.transaction():
        for n, user in enumerate(users):
            rt.create(new("j", user, status="waiting", wake_at=T0 + n))
        rt.end()
    # Two workers (two stores, as two processes) share the partitions.
    mine = [p for p in range(PARTITIONS) if p % 3 == 0]
    one, two = store.runtime(), open_again().runtime()
    one.only(mine)
    two.only([p for p in range(PARTITIONS) if p not in mine])
    with store.transaction():
        first = [i.user_id for i in one.due(T0 + 100, 100)]
    second = [i.user_id for i in two.due(T0 + 100, 100)]
    assert sorted(first + second) == sorted(users)
    assert first and second
    assert {partition(target, u) for u in first} <= set(mine)
    wakes = [w for w in (one.next_wake(), two.next_wake()) if w is not None]
    assert min(wakes) == T0


@POSTGRES_ONLY
def test_the_partition_columns_follow_the_user(target: str, store: Store) -> None:
    rt = deployed(store, "j")
    with store.transaction():
        rt.create(new("j", "anon"))
        rt.end()
    with store.transaction():
        rt.merge_user("anon", "known")
        rt.end()
    assert read_rows(target, "SELECT part FROM instances") == [(partition(target, "known"),)]
    with psycopg.connect(target) as conn:
        conn.execute(
            "INSERT INTO events (message_id, user_id, name, at, props, received_at)"
            " VALUES ('m', 'u9', 'e', 0, '{}', 0)"
        )
        conn.execute(
            "INSERT INTO segment_members (user_id, segment, member, since)"
            " VALUES ('u9', 's', true, 0)"
        )
    want = [(partition(target, "u9"),)]
    assert read_rows(target, "SELECT part FROM events") == want
    assert read_rows(target, "SELECT part FROM segment_members") == want


@POSTGRES_ONLY
@pytest.mark.parametrize("bad", [[64], [-1], [0, 99]])
def test_only_refuses_what_is_no_partition(store: Store, bad: list[int]) -> None:
    with pytest.raises(StoreError, match=f"{bad[-1]} is no partition.*0 to {PARTITIONS - 1}"):
        store.runtime().only(bad)


@POSTGRES_ONLY
def test_hold_is_the_simulators_and_sqlites(store: Store) -> None:
    rt = store.runtime()
    with pytest.raises(StoreError, match="cannot hold the engine's rows in memory"):
        rt.hold()
    assert not rt.scratch


@SQLITE_ONLY
def test_a_sqlite_store_has_no_partitions(target: str, store: Store) -> None:
    assert not is_url(target)
    rt = store.runtime()
    rt.only(None)
    with pytest.raises(StoreError, match="SQLite store has no partitions"):
        rt.only([0])
