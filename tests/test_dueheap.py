"""DueHeap against a plain dict of due times: the same keys come due, in the same
order, whatever the sequence of settings."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from journeyc.store.dueheap import DueHeap

ops = st.lists(
    st.one_of(
        st.tuples(st.just("set"), st.integers(0, 6), st.none() | st.integers(0, 20)),
        st.tuples(st.just("pop"), st.integers(0, 20), st.integers(1, 4)),
    ),
    max_size=40,
)


@given(st.dictionaries(st.integers(0, 6), st.integers(0, 20)), ops)
def test_due_heap_agrees_with_a_dict(
    start: dict[int, int], steps: list[tuple[str, int, int | None]]
) -> None:
    heap = DueHeap((t, k) for k, t in start.items())
    model = dict(start)
    for op, a, b in steps:
        if op == "set":
            heap.set(a, b)
            if b is None:
                model.pop(a, None)
            else:
                model[a] = b
        else:
            assert b is not None
            want = sorted((t, k) for k, t in model.items() if t <= a)[:b]
            assert heap.pop_due(a, b) == want
            for _, k in want:
                del model[k]
        assert heap.next() == min(model.values(), default=None)
