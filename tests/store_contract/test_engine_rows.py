"""The store's parts the engine reads and writes through (store/abc.py's engine
section): the schedules' rows, the segments' book, the event history, the unit of
work's deployed journeys and the Store's own reads for simulations, on every store
(the unit of work's instances, entries and outbox: test_runtime.py)."""

from __future__ import annotations

from journeyc.compile import ir
from journeyc.store.abc import EventHistory, ScheduleRows, SegmentBook, Store, UnitOfWork
from journeyc.store.rows import SegmentRow
from tests.engine_helpers import identify, track
from tests.store_contract.calls import write_rows

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z


# ---------------------------------------------------------------- schedules


def test_schedule_rows_replace_add_and_move_on(store: Store) -> None:
    rows: ScheduleRows = store.schedule_rows()
    assert rows.rows() == [] and rows.next_at() is None and rows.due(T0) is None
    with store.transaction():
        rows.replace(
            [("j", 0, "UTC", "{}", T0 + 10, None), ("j", 0, "Asia/Bangkok", "{}", T0, "u3")]
        )
        # An existing (journey, trigger, zone) keeps its row and its progress.
        rows.add([("j", 0, "Asia/Bangkok", "{}", T0 + 99), ("k", 1, "UTC", "{}", T0)])
    assert sorted(rows.rows()) == [
        ("j", 0, "Asia/Bangkok", "{}", T0, "u3"),
        ("j", 0, "UTC", "{}", T0 + 10, None),
        ("k", 1, "UTC", "{}", T0, None),
    ]
    assert rows.next_at() == T0
    # Ties at one time go by journey, then trigger, then zone.
    assert rows.due(T0) == ("j", 0, "Asia/Bangkok", "{}", T0, "u3")
    assert rows.due(T0 - 1) is None
    with store.transaction():
        rows.set_next_at("j", 0, "Asia/Bangkok", T0 + 50)
        rows.set_after_user("k", 1, "UTC", "u7")
    assert rows.due(T0) == ("k", 1, "UTC", "{}", T0, "u7")
    assert ("j", 0, "Asia/Bangkok", "{}", T0 + 50, None) in rows.rows()
    with store.transaction():
        rows.replace([])
    assert rows.rows() == []


def test_schedule_audience_pages_by_user_and_reads_zones(store: Store) -> None:
    events = [
        identify("a", T0, timezone="Europe/Paris"),
        identify("b", T0, timezone=7),  # not a name: no zone, but still a user
        identify("c", T0),
        identify("d", T0, timezone="Asia/Bangkok"),
    ]
    store.append_events(events)
    rows = store.schedule_rows()
    assert rows.zone_names() == {"Europe/Paris", "Asia/Bangkok"}
    assert rows.audience(None, None, 2) == [("a", "Europe/Paris"), ("b", 7)]
    assert rows.audience(None, "b", 5) == [("c", None), ("d", "Asia/Bangkok")]


def test_schedule_audience_of_a_segment(store: Store) -> None:
    store.append_events([identify("b", T0, timezone=7), identify("c", T0)])
    book: SegmentBook = store.segment_book()
    with store.transaction():
        book.write_baseline([("b", "vip", True, None), ("c", "vip", False, None)], T0)
        book.write_baseline([("ghost", "vip", True, None)], T0)  # no profile
    rows = store.schedule_rows()
    # Members only (c is out); a member without a profile has no zone.
    assert rows.audience("vip", None, 5) == [("b", 7), ("ghost", None)]
    assert rows.audience("vip", "b", 5) == [("ghost", None)]


# ---------------------------------------------------------------- segments


def test_segment_book_counts_changes_and_members(store: Store) -> None:
    book = store.segment_book()
    with store.transaction():
        book.write("a", [("vip", SegmentRow(True, T0, None))], [("vip", True)], T0)
        book.write("b", [("vip", SegmentRow(True, T0, T0 + 5))], [("vip", True)], T0 + 1)
        book.write("b", [("vip", SegmentRow(False, T0 + 2, None))], [("vip", False)], T0 + 2)
        book.write("c", [("new", SegmentRow(True, T0 + 3, None))], [("new", True)], T0 + 3)
    assert book.member_counts() == {"vip": 1, "new": 1}
    assert book.change_counts(T0 + 1, T0 + 2) == {"vip": (1, 1)}
    assert book.change_counts(T0, T0 + 3) == {"vip": (2, 1), "new": (1, 0)}
    assert book.change_counts(T0 + 4, T0 + 9) == {}
    assert book.changes() == [
        ("vip", "a", T0, True),
        ("vip", "b", T0 + 1, True),
        ("vip", "b", T0 + 2, False),
        ("new", "c", T0 + 3, True),
    ]
    assert book.members() == {("a", "vip"): True, ("b", "vip"): False, ("c", "new"): True}
    assert book.rows("b") == {"vip": SegmentRow(False, T0 + 2, None)}
    assert book.next_recheck() is None


def test_segment_book_define_drops_changed_and_gone_segments(store: Store) -> None:
    class Definition:
        def __init__(self, hash: str) -> None:
            self.hash = hash
            self.expr: ir.Expr = ir.Lit(value=True)

    book = store.segment_book()
    with store.transaction():
        book.define({"a": Definition("h1"), "b": Definition("h2")}, ["a", "b"], T0)
        book.write_baseline([("u", "a", True, None), ("u", "b", True, T0 + 1)], T0)
        book.define({"a": Definition("h3")}, ["a"], T0 + 1)  # a changed, b gone
    assert book.deployed() == {"a": "h3"}
    assert book.rows("u") == {}
    assert book.due(T0 + 5, 10) == []


# ---------------------------------------------------------------- the event history


def test_event_history_per_user(store: Store) -> None:
    history: EventHistory = store.event_history()
    assert history.last_seq() == 0
    store.append_events(
        [
            track("u", "view", T0 + 30, sku="x"),
            track("u", "view", T0 + 10),
            track("v", "view", T0 + 20),
            track("u", "order", T0 + 20, amount=5),
            track("u", "view", T0 + 50),
        ]
    )
    assert history.last_seq() == 5
    assert [(seq, name, at, props) for seq, name, at, props in history.user_events("u", 4)] == [
        (2, "view", T0 + 10, {}),
        (4, "order", T0 + 20, {"amount": 5}),
        (1, "view", T0 + 30, {"sku": "x"}),
    ]
    assert history.user_events("nobody", 5) == []
    # After T0 + 10: the earliest view past now (T0 + 40) and the earliest up to it.
    assert history.times("u", "view", T0 + 10, T0 + 40) == (T0 + 50, T0 + 30)
    assert history.times("u", "view", T0 + 50, T0 + 60) == (None, None)


# ---------------------------------------------------------------- the store's own reads


def test_store_reads_for_simulations(store: Store) -> None:
    assert store.in_use("simulated_from") == (False, False)
    store.put_setting("simulated_from", "events.jsonl")
    assert store.in_use("simulated_from") == (False, False)
    store.put_setting("api_key", "k")
    assert store.in_use("simulated_from") == (False, True)
    assert not store.has_profile("u")
    store.append_events([track("u", "view", T0)])
    assert store.in_use("simulated_from") == (True, True)
    assert store.has_profile("u")  # known by a track call alone, traits empty
    assert store.get_profile("u") == {}
    store.append_events([identify("v", T0, timezone="Europe/Paris"), identify("w", T0, timezone=3)])
    assert store.profile_zones() == {"v": "Europe/Paris"}
    assert store.entry_cohorts() == []
    assert not store.in_transaction
    with store.transaction():
        assert store.in_transaction


def test_in_use_leaves_out_any_number_of_settings(store: Store) -> None:
    # journeyc simulate leaves out two settings (SIMULATED_FROM, SIMULATED_RUN).
    assert [store.in_use(), store.in_use("a"), store.in_use("a", "b")] == [(False, False)] * 3
    store.put_setting("a", "1")
    assert store.in_use() == (False, True)
    assert store.in_use("a") == (False, False)
    assert store.in_use("b") == (False, True)
    store.put_setting("b", "2")
    assert store.in_use("a") == (False, True)
    assert store.in_use("b") == (False, True)
    assert store.in_use("a", "b") == (False, False)
    assert store.in_use("b", "a", "c") == (False, False)
    store.put_setting("c", "3")
    assert store.in_use("a", "b") == (False, True)
    # A setting's name is matched whole: not as a pattern nor in another case.
    assert store.in_use("%", "A", "b", "c") == (False, True)
    store.append_events([track("u", "view", T0)])
    assert store.in_use() == (True, True)
    assert store.in_use("a", "b", "c") == (True, False)


def test_unit_of_work_reads_deployed_journeys(store: Store) -> None:
    rt: UnitOfWork = store.runtime()
    with store.transaction():
        rt.deploy("j", "v1", '{"ir": 1}', "", T0)
        rt.deploy("j", "v2", '{"ir": 2}', "", T0 + 1)
    assert rt.journey_ir("j", "v1") == '{"ir": 1}'
    assert rt.journey_ir("j", "v2") == '{"ir": 2}'
    assert rt.journey_ir("j", "v3") is None
    assert rt.versions() == [("j", "v1", '{"ir": 1}', False), ("j", "v2", '{"ir": 2}', True)]


def test_entry_cohorts_per_journey_and_group(target: str, store: Store) -> None:
    write_rows(
        target,
        "INSERT INTO entries (journey_id, user_id, entry_no, entered_at, goal_at, arm, holdout)"
        " VALUES (?, ?, 1, ?, ?, ?, ?)",
        [
            ("j", "a", T0, T0 + 5, "B", False),
            ("j", "b", T0, None, "A", False),
            ("j", "c", T0, T0 + 1, "A", False),
            ("j", "d", T0, None, "A", True),  # held out: counted apart, whatever its arm
            ("j", "e", T0, T0 + 9, None, False),
            ("Z", "a", T0, None, None, False),
        ],
    )
    assert store.entry_cohorts() == [
        ("Z", None, False, 1, 0),
        ("j", None, False, 1, 1),
        ("j", "A", False, 2, 1),
        ("j", "B", False, 1, 1),
        ("j", None, True, 1, 0),
    ]


def test_segment_book_keeping_rows_writes_them_at_flush(store: Store) -> None:
    book = store.segment_book()
    with store.transaction():
        book.write_baseline([("u", "vip", True, T0 + 5)], T0)
    book.hold()  # the simulator: this book is the only writer
    with store.transaction():
        book.write("v", [("vip", SegmentRow(True, T0, T0 + 3))], [("vip", True)], T0)
        assert book.rows("v") == {}  # not read before: nothing kept for v
        assert store.segment_book().members() == {("u", "vip"): True}  # held back
        assert book.due(T0 + 4, 10) == [("v", "vip")]  # from memory, earliest first
        assert book.next_recheck() == T0 + 5
        book.flush()
    assert store.segment_book().members() == {("u", "vip"): True, ("v", "vip"): True}
    assert book.changes() == [("vip", "v", T0, True)]


def test_segment_book_merge_keeps_the_earlier_membership(store: Store) -> None:
    book = store.segment_book()
    with store.transaction():
        book.write("anon", [("vip", SegmentRow(True, T0, None))], [("vip", True)], T0)
        book.write("anon", [("new", SegmentRow(False, T0, None))], [], T0)
        book.write("known", [("vip", SegmentRow(True, T0 + 9, None))], [("vip", True)], T0 + 9)
        book.merge("anon", "known", T0 + 10)
    assert book.rows("known") == {
        "vip": SegmentRow(True, T0, None),
        "new": SegmentRow(False, T0, None),
    }
    assert book.rows("anon") == {}
    assert len(book.changes()) == 2  # a merge logs no change
