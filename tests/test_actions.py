"""An action's JSON line: the bytes `journeyc simulate --json` prints."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from journeyc.engine.actions import Action, iso_ms

# Year 1 to year 9999, in epoch milliseconds.
MS = st.integers(-62_135_596_800_000, 253_402_300_799_999)


def datetime_iso(ms: int) -> str:
    """The formula iso_ms follows, written with datetime."""
    t = datetime.fromtimestamp(ms / 1000, UTC)
    text = t.strftime("%Y-%m-%dT%H:%M:%S")
    return text + (f".{ms % 1000:03d}" if ms % 1000 else "") + "Z"


@given(MS)
@example(0)
@example(-1)
@example(86_399_999)
@example(1_767_225_600_123)
def test_iso_ms_is_the_utc_time_with_milliseconds_only_when_present(ms: int) -> None:
    assert iso_ms(ms) == datetime_iso(ms)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=6,
)


@given(
    at=MS,
    user=st.text(max_size=6),
    step=st.none() | st.text(max_size=6),
    detail=st.dictionaries(st.text(max_size=6), JSON, max_size=3),
)
def test_a_line_is_json_dumps_of_the_action_with_spaces_after_separators(
    at: int, user: str, step: str | None, detail: dict[str, Any]
) -> None:
    action = Action(at, user, "j", step, "send", detail)
    line = action.to_json()
    assert line == json.dumps(action.as_dict(), ensure_ascii=False, separators=(", ", ": "))
    assert json.loads(line) == action.as_dict()
