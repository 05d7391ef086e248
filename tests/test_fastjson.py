"""fastjson against the json module: what ``dumps`` writes reads back as what
``json.dumps`` would have written, and ``loads`` reads any text as ``json.loads``
does (values and their types, at any depth)."""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from journeyc.fastjson import dumps, loads

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),  # beyond 64 bits too
    st.floats(),  # NaN and the infinities too
    st.text(),  # lone surrogates too
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=12,
)


def same(a: Any, b: Any) -> bool:
    """Equal values of equal types, NaN equal to NaN."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and str(a) == str(b))
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


@given(values)
def test_dumps_reads_back_as_json_dumps(value: Any) -> None:
    assert same(json.loads(dumps(value)), json.loads(json.dumps(value, ensure_ascii=False)))


@given(values, st.booleans())
def test_loads_reads_as_json_loads(value: Any, ascii_only: bool) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only)
    assert same(loads(text), json.loads(text))


def test_loads_keeps_integers_beyond_64_bits() -> None:
    big = 2**64 + 1
    assert loads(f'{{"n": {big}, "m": -{big}}}') == {"n": big, "m": -big}
    assert type(loads(str(2**63 - 1))) is int
