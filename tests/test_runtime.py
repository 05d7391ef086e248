"""The engine's unit of work: new instances and entries are written at flush, in their
state then, and every query in the unit sees them before that."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from journeyc.store import Store
from journeyc.store.rows import Instance

T0 = 1_767_225_600_000


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(tmp_path / "rt.db")
    with s.transaction() as conn:
        conn.execute(
            "INSERT INTO journeys (id, version, ir, source, deployed_at, active)"
            " VALUES ('cart', 'v1', '{}', '', ?, 1)",
            (T0,),
        )
    yield s
    s.close()


def new(user: str, entry_no: int, at: int = T0) -> Instance:
    return Instance(0, "cart", "v1", user, entry_no, "1", "active", at, vars={"entry": None})


def rows(store: Store, sql: str) -> list[tuple[object, ...]]:
    return store.conn.execute(sql).fetchall()


def test_a_created_instance_is_seen_before_it_is_written(store: Store) -> None:
    rt = store.runtime()
    with store.transaction():
        inst = rt.create(new("u1", 1))
        assert rows(store, "SELECT COUNT(*) FROM instances") == [(0,)]
        assert rt.live("u1") == [inst] and rt.live_in("cart", "u1") is inst
        assert rt.last_entry("cart", "u1") == (1, T0, None)
        inst.status, inst.wake_at = "waiting", T0 + 60_000
        rt.save(inst)
        rt.end()
    assert rows(store, "SELECT id, status, wake_at, vars FROM instances") == [
        (inst.id, "waiting", T0 + 60_000, '{"entry":null}')
    ]
    assert rows(store, "SELECT entry_no, entered_at, goal_at FROM entries") == [(1, T0, None)]


def test_an_instance_that_ended_frees_its_slot_before_the_next_is_inserted(store: Store) -> None:
    rt = store.runtime()
    with store.transaction():
        first = rt.create(new("u1", 1))
        rt.end()  # written live: the one-live-instance index now holds it
    with store.transaction():
        (again,) = rt.live("u1")
        assert again.id == first.id
        again.status = "completed"
        rt.save(again)
        assert rt.live_in("cart", "u1") is None
        second = rt.create(new("u1", 2))
        third_user = rt.create(new("u2", 1))
        rt.record_goal("cart", "u1", 2, T0 + 5)
        rt.end()
    assert second.id > first.id and third_user.id > second.id
    # The table holds live instances only: the one that ended is gone.
    assert rows(store, "SELECT id, user_id, status FROM instances ORDER BY id") == [
        (second.id, "u1", "active"),
        (third_user.id, "u2", "active"),
    ]
    assert rows(store, "SELECT user_id, entry_no, goal_at FROM entries ORDER BY rowid") == [
        ("u1", 1, None),
        ("u1", 2, T0 + 5),
        ("u2", 1, None),
    ]


def test_ids_are_never_reused_after_a_delete(store: Store) -> None:
    rt = store.runtime()
    with store.transaction():
        first = rt.create(new("u1", 1))
        rt.end()
    with store.transaction() as conn:
        conn.execute("DELETE FROM instances")
    with store.transaction():
        second = rt.create(new("u1", 2))
        rt.end()
    assert second.id == first.id + 1


def test_an_instance_that_ends_unwritten_is_never_inserted_and_its_id_never_reused(
    store: Store,
) -> None:
    rt = store.runtime()
    with store.transaction():
        done = rt.create(new("u1", 1))
        done.status = "completed"
        rt.save(done)
        rt.end()
    assert rows(store, "SELECT COUNT(*) FROM instances") == [(0,)]
    assert rows(store, "SELECT entry_no FROM entries") == [(1,)]
    # A runtime starting afresh (a restarted daemon) hands out the next id.
    again = store.runtime()
    with store.transaction():
        later = again.create(new("u2", 1))
        again.end()
    assert later.id == done.id + 1
    assert rows(store, "SELECT id FROM instances") == [(later.id,)]


def test_a_rolled_back_unit_is_discarded(store: Store) -> None:
    rt = store.runtime()
    with pytest.raises(RuntimeError), store.transaction():
        rt.create(new("u1", 1))
        rt.flush()
        raise RuntimeError("boom")
    rt.discard()
    with store.transaction():
        assert rt.live("u1") == [] and rt.last_entry("cart", "u1") is None
        again = rt.create(new("u1", 1))
        rt.end()
    assert rows(store, "SELECT id FROM instances") == [(again.id,)]


def test_prefetch_reads_what_the_per_user_queries_read(store: Store) -> None:
    writer = store.runtime()
    with store.transaction():
        for user, entries in (("u1", 2), ("u2", 1)):
            for no in range(1, entries + 1):
                inst = writer.create(new(user, no, at=T0 + no))
                inst.status = "waiting" if no == entries else "completed"
                inst.wake_at = T0 + 60_000
                writer.save(inst)
                writer.end()
    users = ["u1", "u2", "u3"]
    one_by_one, batched = store.runtime(), store.runtime()
    batched.prefetch(users)
    for user in users:
        assert [i.id for i in batched.live(user)] == [i.id for i in one_by_one.live(user)]
        assert batched.last_entry("cart", user) == one_by_one.last_entry("cart", user)
    assert batched.last_entry("cart", "u1") == (2, T0 + 2, None)
    # What the unit already holds in memory is not read over.
    with store.transaction():
        fresh = batched.create(new("u3", 1))
        batched.prefetch(["u3"])
        assert batched.live("u3") == [fresh]
        batched.end()
