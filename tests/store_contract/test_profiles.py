"""Profiles: traits merged per trait, the latest write winning, on every store."""

from __future__ import annotations

import itertools
import threading
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from journeyc.store.abc import Store
from tests.store_contract.calls import T0, identify, track
from tests.store_contract.conftest import Opener


def test_identify_merges_shallowly_and_null_removes(store: Store) -> None:
    store.append_events([identify("1", plan="free", address={"city": "Oslo", "zip": "0150"})])
    store.append_events([identify("2", at=T0 + 1, address={"city": "Bergen"}, plan=None, vip=True)])
    assert store.get_profile("u1") == {"address": {"city": "Bergen"}, "vip": True}


def test_a_late_identify_does_not_undo_a_newer_change(store: Store) -> None:
    store.append_events([identify("new", at=T0 + 10, plan="pro")])
    store.append_events([identify("old", at=T0, plan="free", age=30)])
    assert store.get_profile("u1") == {"plan": "pro", "age": 30}


def test_identify_without_merging_only_logs(store: Store) -> None:
    store.append_events([identify("1", plan="pro")], merge_traits=False)
    assert store.get_profile("u1") == {}
    assert store.events_after(0)[0].props == {"plan": "pro"}


def test_every_user_the_log_names_has_a_profile(store: Store) -> None:
    store.append_events([track("t", user="anon")])
    assert store.get_profile("anon") == {}
    assert store.counts()["profiles"] == 1
    assert store.get_profile("nobody") == {}


def test_get_profiles(store: Store) -> None:
    store.set_traits("a", {"x": 1}, T0)
    store.set_traits("b", {"y": 2}, T0)
    assert store.get_profiles(["a", "b", "c"]) == {"a": {"x": 1}, "b": {"y": 2}, "c": {}}


def test_merges_of_one_user_from_many_writers_lose_nothing(
    store: Store, open_again: Opener
) -> None:
    stores = [store, open_again()]

    def write(k: int) -> None:
        for i in range(10):
            stores[k % 2].set_traits("u", {f"t{k}_{i}": i}, T0 + i)

    threads = [threading.Thread(target=write, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.get_profile("u") == {f"t{k}_{i}": i for k in range(4) for i in range(10)}


def model(changes: list[tuple[str, Any, int]]) -> dict[str, Any]:
    """Per trait, the value of the latest change (at equal times, the later call);
    None removes the trait."""
    latest: dict[str, tuple[int, Any]] = {}
    for key, value, at in changes:
        if key not in latest or at >= latest[key][0]:
            latest[key] = (at, value)
    return {k: v for k, (_, v) in latest.items() if v is not None}


_users = itertools.count()
_changes = st.lists(
    st.tuples(
        st.dictionaries(
            st.sampled_from(["plan", "age", "city"]),
            st.none() | st.integers(-3, 3) | st.text(max_size=3, alphabet="ab"),
            max_size=3,
        ),
        st.integers(0, 5),
    ),
    max_size=8,
)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes=_changes, via_log=st.booleans())
def test_a_profile_is_the_latest_value_of_each_trait(
    store: Store, changes: list[tuple[dict[str, Any], int]], via_log: bool
) -> None:
    user = f"p{next(_users)}"
    if via_log:
        store.append_events(
            [identify(f"{user}-{i}", user, T0 + at, **c) for i, (c, at) in enumerate(changes)]
        )
    else:
        for c, at in changes:
            store.set_traits(user, c, T0 + at)
    flat = [(k, v, at) for c, at in changes for k, v in c.items()]
    assert store.get_profile(user) == model(flat)
