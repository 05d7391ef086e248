"""Identities: aliases name their canonical user; merges move events and profiles;
forgetting by any id forgets the person, on every store."""

from __future__ import annotations

from journeyc.store.abc import Store
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
