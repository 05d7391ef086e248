"""The reads of ``journeyc why``'s replay of one user (store/abc.py's ReplayReads) on
every store: a user's events and recorded rows under all their ids, their profile
before a time, the deployed versions, and a snapshot the store's other reads share."""

from __future__ import annotations

from journeyc.events import CONTEXT_DEFAULTS
from journeyc.store.abc import Store
from journeyc.store.rows import RecordedAction, RecordedSegmentChange, SegmentRow
from tests.store_contract.calls import T0, alias, identify, log_actions, track, write_rows
from tests.store_contract.conftest import Opener
from tests.store_contract.test_report_reads import action, deploy


def test_a_users_events_under_all_their_ids_in_log_order(store: Store) -> None:
    store.append_events(
        [
            track("1", "anon", at=T0 + 50, sku="x"),
            track("2", "u1", at=T0 + 10),
            identify("3", "u1", at=T0 + 20, plan="pro"),
            alias("4", "anon", "u1", at=T0 + 30),
            track("5", "u2", at=T0),
        ]
    )
    reads = store.replay_reads()
    ids = store.identities_of("u1")
    assert ids == ["u1", "anon"]
    events = reads.user_events(ids)
    # Logged before the alias, anon's event stays anon's: read under both ids.
    assert [(e.message_id, e.user_id, e.kind, e.at_ms) for e in events] == [
        ("1", "anon", "track", T0 + 50),
        ("2", "u1", "track", T0 + 10),
        ("3", "u1", "identify", T0 + 20),
        ("4", "u1", "alias", T0 + 30),
    ]
    assert events[0].props == {"sku": "x"} and events[0].received_ms == T0 + 50
    assert reads.is_known("u1") and reads.is_known("u2") and not reads.is_known("nobody")
    assert reads.user_events(["nobody"]) == []


def test_the_profile_before_a_time_leaves_out_later_and_context_traits(store: Store) -> None:
    store.set_traits("u", {"plan": "free", "city": "Oslo"}, T0)
    store.set_traits("u", {"plan": "pro"}, T0 + 100)
    store.set_traits("u", {CONTEXT_DEFAULTS: {"timezone": "Europe/Oslo"}}, T0 + 5)
    store.set_traits("v", {"plan": "x"}, T0 + 200)
    reads = store.replay_reads()
    assert store.get_profile("u")["timezone"] == "Europe/Oslo"
    assert reads.profile_before(["u", "v"], T0 + 100) == {"u": {"city": "Oslo"}}
    assert reads.profile_before(["u", "v"], T0 + 201) == {
        "u": {"city": "Oslo", "plan": "pro"},
        "v": {"plan": "x"},
    }
    assert reads.profile_before(["u"], T0) == {}


def test_recorded_actions_segment_changes_versions_and_last_activity(
    target: str, store: Store
) -> None:
    reads = store.replay_reads()
    assert reads.last_activity() is None and reads.deployed_versions() == []
    deploy(target, "b", ("v1", T0 + 1, True))
    deploy(target, "a", ("v1", T0 + 1, False), ("v2", T0 + 9, True))
    log_actions(
        target,
        [
            action(T0 + 30, "a", "s1", "send", channel="email"),
            (T0 + 10, "v", "a", None, "enter", "{}"),
            action(T0 + 20, "a", None, "enter"),
        ],
    )
    book = store.segment_book()
    with store.transaction():
        book.write("u", [("vip", SegmentRow(True, T0 + 5, None))], [("vip", True)], T0 + 5)
        book.write("v", [("vip", SegmentRow(True, T0 + 5, None))], [("vip", True)], T0 + 5)
        book.write("u", [("new", SegmentRow(True, T0 + 5, None))], [("new", True)], T0 + 5)
        book.write("u", [("vip", SegmentRow(False, T0 + 6, None))], [("vip", False)], T0 + 6)
    assert [
        (v.journey_id, v.version, v.deployed_at, v.active) for v in reads.deployed_versions()
    ] == [
        ("a", "v1", T0 + 1, False),
        ("b", "v1", T0 + 1, True),
        ("a", "v2", T0 + 9, True),
    ]
    assert reads.recorded_actions(["u"]) == [
        RecordedAction(T0 + 30, "u", "a", "s1", "send", {"channel": "email"}),
        RecordedAction(T0 + 20, "u", "a", None, "enter", {}),
    ]
    assert [a.user_id for a in reads.recorded_actions(["v", "u"])] == ["u", "v", "u"]
    assert reads.recorded_segment_changes(["u"]) == [
        RecordedSegmentChange(T0 + 5, "vip", True),
        RecordedSegmentChange(T0 + 5, "new", True),
        RecordedSegmentChange(T0 + 6, "vip", False),
    ]
    assert reads.last_activity() == T0 + 30
    store.append_events([track("e", "u", at=T0 + 99)])
    assert reads.last_activity() == T0 + 99
    write_rows(target, "DELETE FROM actions", [()])
    assert reads.last_activity() == T0 + 99


def test_a_snapshot_holds_for_every_read_of_the_store(store: Store, open_again: Opener) -> None:
    store.append_events([track("1", "u1"), identify("2", "u1", plan="pro")])
    store.put_setting("deployed", "one")
    writer = open_again()
    reads = store.replay_reads()
    with reads.snapshot():
        assert len(reads.user_events(["u1"])) == 2
        writer.append_events([track("3", "u1"), alias("4", "anon", "u1")])
        writer.put_setting("deployed", "two")
        # Neither these reads nor the store's own see what was committed meanwhile.
        assert len(reads.user_events(["u1"])) == 2
        assert store.get_setting("deployed") == "one"
        assert store.identities_of("u1") == ["u1"]
        assert store.get_profile("u1") == {"plan": "pro"}
    assert len(reads.user_events(["u1"])) == 4
    assert store.get_setting("deployed") == "two"
    assert store.identities_of("u1") == ["u1", "anon"]


def test_a_snapshot_inside_a_transaction_is_that_transactions(store: Store) -> None:
    reads = store.replay_reads()
    with store.transaction():
        store.append_events([track("1", "u1")])
        with reads.snapshot():
            assert len(reads.user_events(["u1"])) == 1  # its own write
        store.append_events([track("2", "u1")])  # the transaction goes on
    assert len(reads.user_events(["u1"])) == 2
