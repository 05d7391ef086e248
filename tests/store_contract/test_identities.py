"""Identities: aliases name their canonical user; merges move events and profiles;
forgetting by any id forgets the person, on every store."""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from journeyc.store.abc import Store
from journeyc.store.identities import IdentityMap, link_events
from tests.store_contract.calls import T0, alias, identify, track


def test_an_alias_names_its_canonical_user_from_then_on(store: Store) -> None:
    store.append_events([track("1", user="anon"), alias("a", "anon", "known", at=T0 + 1)])
    assert store.canonical_user("anon") == "known"
    assert store.canonical_user("known") == "known"
    assert store.identities_of("anon") == ["known", "anon"]
    store.append_events([track("2", user="anon", at=T0 + 2)])
    assert [e.user_id for e in store.events_after(0)][-1] == "known"
    # linked by link_events the same way, without logging
    assert [e.user_id for e in store.link_events([track("3", user="anon")])] == ["known"]


def test_an_alias_stays_with_the_first_user_it_joined(store: Store) -> None:
    seqs = store.append_events([alias("a", "anon", "k1"), alias("b", "anon", "k2")])
    assert seqs[0] is not None and seqs[1] is None
    assert store.canonical_user("anon") == "k1"


def test_merging_a_user_moves_its_aliases_along(store: Store) -> None:
    store.append_events([alias("a", "anon", "k1"), alias("b", "k1", "k2")])
    assert store.identities_of("anon") == ["k2", "anon", "k1"]


def test_merge_users_moves_events_and_profile(store: Store) -> None:
    store.append_events(
        [
            identify("i1", "anon", T0, city="Oslo", plan="free"),
            track("t1", user="anon"),
            identify("i2", "known", T0 + 5, plan="pro"),
        ]
    )
    with store.transaction():
        store.merge_users("anon", "known")
    assert {e.user_id for e in store.events_after(0)} == {"known"}
    assert store.get_profile("known") == {"city": "Oslo", "plan": "pro"}
    assert store.get_profiles(["anon"]) == {"anon": {}}
    # the moved trait kept its time: an older change does not undo it
    store.set_traits("known", {"city": "Bergen"}, T0 - 1)
    assert store.get_profile("known")["city"] == "Oslo"


def test_forgetting_any_id_forgets_the_person(store: Store) -> None:
    store.append_events(
        [
            track("1", user="anon"),
            identify("2", "known", plan="pro"),
            alias("a", "anon", "known", at=T0 + 1),
            track("3", user="other"),
        ]
    )
    removed = store.forget_user("anon")
    # anon's profile row stays until the engine merges it (merge_users): both go
    assert removed["events"] == 3 and removed["profiles"] == 2 and removed["identities"] == 1
    assert [e.user_id for e in store.events_after(0)] == ["other"]
    assert store.get_profile("known") == {}
    assert store.canonical_user("anon") == "anon"
    assert store.forget_user("anon")["events"] == 0


_runs = itertools.count()
_calls = st.lists(
    st.tuples(st.booleans(), st.sampled_from("abcde"), st.sampled_from("abcde")),
    min_size=1,
    max_size=12,
)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(calls=_calls, cuts=st.sets(st.integers(1, 11)))
def test_merges_are_remembered_across_calls(
    store: Store, calls: list[tuple[bool, str, str]], cuts: set[int]
) -> None:
    # Alias events (previous → user) and tracks, logged in batches cut anywhere: the
    # log and every id's user are those of linking them all at once, in memory.
    run = next(_runs)
    events = [
        alias(f"{run}-{i}", f"{run}{a}", f"{run}{b}")
        if is_alias
        else track(f"{run}-{i}", user=f"{run}{a}")
        for i, (is_alias, a, b) in enumerate(calls)
    ]
    model = IdentityMap()
    expected = [e for e in link_events(events, model)[0] if e is not None]
    start = max((e.seq for e in store.events_after(0, 100_000)), default=0)
    bounds = [0, *sorted(c for c in cuts if c < len(events)), len(events)]
    for lo, hi in itertools.pairwise(bounds):
        store.append_events(events[lo:hi])
    assert [(e.message_id, e.user_id) for e in store.events_after(start, 100_000)] == [
        (e.message_id, e.user_id) for e in expected
    ]
    for x in "abcde":
        assert store.canonical_user(f"{run}{x}") == model.resolve(f"{run}{x}")


def test_aliases_are_listed_in_code_point_order(store: Store) -> None:
    names = ["b", "B", "é", "a", "Z", "_"]
    store.append_events([alias(f"m{i}", n, "user") for i, n in enumerate(names)])
    assert store.identities_of("a") == ["user", *sorted(names)]
