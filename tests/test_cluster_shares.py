"""Sharing the partitions out among workers (serve/cluster.py): whatever the members
and whoever holds what, beats in any order reach a state where every partition has
one holder and each worker holds its fair share, and stay there."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from journeyc.serve.cluster import fair_share, plan, ranges

P = 16


def test_fair_shares_add_up_and_differ_by_one_at_most() -> None:
    for n in range(1, 20):
        members = [f"w{k:02d}" for k in range(n)]
        shares = [fair_share(members, m, P) for m in members]
        assert sum(shares) == P
        assert max(shares) - min(shares) <= 1


def test_a_worker_beyond_its_share_gives_its_highest_partitions_back() -> None:
    holders = dict.fromkeys(range(P), "a")
    shares = plan("a", ["a", "b"], holders, P)
    assert shares.take == [] and shares.give == list(range(8, 16))


def test_a_newcomer_takes_only_free_partitions() -> None:
    holders = {p: "a" for p in range(12)}
    shares = plan("b", ["a", "b"], holders, P)
    assert shares.give == [] and sorted(shares.take) == [12, 13, 14, 15]


def testranges_for_the_log() -> None:
    assert ranges([5, 0, 1, 2, 9, 10]) == "0-2, 5, 9-10"
    assert ranges([]) == ""


def _settle(members: list[str], holders: dict[int, str], order: list[int]) -> dict[int, str]:
    """Beats in rounds (each round every member in ``order``'s order) until one round
    changes nothing; the leases as the store keeps them."""
    for _ in range(4 * len(members) + 4):
        before = dict(holders)
        for k in order:
            me = members[k % len(members)]
            shares = plan(me, members, holders, P)
            for p in shares.give:
                del holders[p]
            for p in shares.take:
                holders.setdefault(p, me)  # acquire: free ones only; a racer may win
        if holders == before:
            return holders
    raise AssertionError(f"no fixpoint: {holders}")


@given(
    st.integers(1, 7),
    st.dictionaries(st.integers(0, P - 1), st.integers(0, 9)),
    st.lists(st.integers(0, 20), min_size=1, max_size=12),
)
def test_beats_reach_fair_shares_from_any_state(
    n: int, held: dict[int, int], order: list[int]
) -> None:
    members = [f"w{k}" for k in range(n)]
    # Leases of members that died are gone (expired): only live members hold any.
    holders = {p: members[w] for p, w in held.items() if w < n}
    settled = _settle(members, holders, order + list(range(n)))
    assert sorted(settled) == list(range(P))
    for m in members:
        assert sum(1 for w in settled.values() if w == m) == fair_share(members, m, P)
