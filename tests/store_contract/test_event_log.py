"""The event log: ordered by arrival, one row per messageId, on every store."""

from __future__ import annotations

import itertools
import threading

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from journeyc.store.abc import Store
from tests.store_contract.calls import T0, identify, track
from tests.store_contract.conftest import Opener


def logged(store: Store, after: int = 0) -> list[tuple[int, str, str, str, int]]:
    return [
        (e.seq, e.message_id, e.user_id, e.name, e.at_ms) for e in store.events_after(after, 10_000)
    ]


def test_seq_grows_with_arrival_and_events_after_reads_in_order(store: Store) -> None:
    first = store.append_events([track("a", at=T0 + 5), track("b", at=T0)])
    second = store.append_events([track("c", at=T0 - 9)])
    seqs = [*first, *second]
    assert all(s is not None for s in seqs)
    assert seqs == sorted(seqs) and len(set(seqs)) == 3
    assert [e.message_id for e in store.events_after(0)] == ["a", "b", "c"]
    assert [e.message_id for e in store.events_after(seqs[0])] == ["b", "c"]  # type: ignore[arg-type]
    assert [e.message_id for e in store.events_after(0, limit=2)] == ["a", "b"]
    assert store.has_events_after(seqs[1])  # type: ignore[arg-type]
    assert not store.has_events_after(seqs[2])  # type: ignore[arg-type]
    e = store.events_after(seqs[1])[0]  # type: ignore[arg-type]
    assert (e.user_id, e.name, e.at_ms, e.props, e.received_ms) == (
        "u1",
        "product_viewed",
        T0 - 9,
        {},
        T0 - 9,
    )


def test_props_come_back_as_given(store: Store) -> None:
    props = {"price": 19.5, "n": 2**60, "tags": ["x", "ü"], "nested": {"a": None, "b": True}}
    store.append_events([track("a", **props)])
    assert store.events_after(0)[0].props == props


def test_a_duplicate_gets_none_and_changes_nothing(store: Store) -> None:
    (s1,) = store.append_events([identify("i", plan="pro")])
    assert s1 is not None
    # A duplicate in a later call, and one within a call: logged once, merged once.
    assert store.append_events([identify("i", plan="free", at=T0 + 1)]) == [None]
    seqs = store.append_events([track("t"), track("t", name="other")])
    assert seqs[0] is not None and seqs[1] is None
    assert [e.message_id for e in store.events_after(0)] == ["i", "t"]
    assert store.events_after(s1)[0].name == "product_viewed"
    assert store.get_profile("u1") == {"plan": "pro"}


def test_unlogged_leaves_out_what_appending_would_skip(store: Store) -> None:
    store.append_events([track("a")])
    given_ = [track("a"), track("b"), track("b"), track("c")]
    assert [e.message_id for e in store.unlogged(given_)] == ["b", "c"]


def test_event_names(store: Store) -> None:
    store.append_events(
        [track("a", name="x"), track("b", name="y"), track("c", name="x"), identify("i")]
    )
    assert store.event_names() == {"x", "y"}


def test_two_stores_on_one_log_dedup(store: Store, open_again: Opener) -> None:
    other = open_again()
    assert store.append_events([track("a")])[0] is not None
    assert other.append_events([track("a"), track("b")])[0] is None
    assert [e.message_id for e in store.events_after(0)] == ["a", "b"]


def test_concurrent_appends_keep_each_writers_order_and_never_share_a_seq(
    store: Store, open_again: Opener
) -> None:
    stores = [store, open_again()]
    errors: list[BaseException] = []

    def write(k: int) -> None:
        try:
            for i in range(15):
                stores[k % 2].append_events(
                    [track(f"w{k}-{i}-{j}", user=f"u{k}") for j in range(3)]
                )
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    log = store.events_after(0, 10_000)
    assert len(log) == 4 * 15 * 3
    assert [e.seq for e in log] == sorted({e.seq for e in log})
    for k in range(4):
        mine = [e.message_id for e in log if e.user_id == f"u{k}"]
        assert mine == [f"w{k}-{i}-{j}" for i in range(15) for j in range(3)]


_runs = itertools.count()
_batches = st.lists(
    st.lists(st.tuples(st.sampled_from("abcdefgh"), st.sampled_from(["x", "y"])), max_size=6),
    min_size=1,
    max_size=5,
)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=_batches)
def test_the_log_is_the_given_calls_without_repeats_in_order(
    store: Store, batches: list[list[tuple[str, str]]]
) -> None:
    # Each example writes ids of its own after what earlier examples wrote.
    run = next(_runs)
    start = max((e.seq for e in store.events_after(0, 100_000)), default=0)
    expected: list[tuple[str, str]] = []
    seen: set[str] = set()
    for batch in batches:
        seqs = store.append_events([track(f"{run}-{mid}", name=name) for mid, name in batch])
        for (mid, name), seq in zip(batch, seqs, strict=True):
            assert (seq is None) == (mid in seen)
            if mid not in seen:
                seen.add(mid)
                expected.append((f"{run}-{mid}", name))
    log = store.events_after(start, 100_000)
    assert [(e.message_id, e.name) for e in log] == expected
    assert [e.seq for e in log] == sorted({e.seq for e in log})
