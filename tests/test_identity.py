"""Identity: anonymous to known (docs/semantics.md, "Identity: anonymous to known").

A shopper browses under an ``anonymousId`` and logs in under a ``userId``. A call
with both ids, or an ``alias`` call, merges the anonymous user into the known one:
events, profile, segment standing, entries and journeys in flight. Later calls with
the old id land on the known user; forgetting either id forgets the person.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from operator import not_
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from journeyc.engine.parallel import in_output_order, simulate_parallel
from journeyc.events import ALIAS, PREVIOUS_ID, Event, EventError, parse_batch, parse_call
from journeyc.lang.project import load_project
from journeyc.serve.api import create_app
from journeyc.store.identities import IdentityMap, link_events
from journeyc.store.sqlite import Store
from tests.engine_helpers import (
    HOUR,
    MINUTE,
    TMP_DIR,
    PostgresStores,
    Run,
    compile_files,
    identify,
    iso,
    ms,
    run,
    select,
    track,
)
from tests.journey_strategies import USERS, Scenario, scenarios
from tests.reference import reference_simulate
from tests.test_api import (
    ADMIN,
    ADMIN_TOKEN,
    AUTH,
    WRITE_KEY,
    Api,
    assert_error,
    read_rows,
    running_server,
)
from tests.test_differential import engine_and_reference

T0 = ms("2026-01-05T10:00:00")


def call(**obj: Any) -> list[Event]:
    """The events of one call (with its derived ones), as ingest reads it."""
    obj.setdefault("timestamp", iso(T0))
    return parse_call(obj, received_ms=0)


def anon_track(anon: str, name: str, at: int, mid: str | None = None, **props: Any) -> Event:
    obj: dict[str, Any] = {
        "type": "track",
        "anonymousId": anon,
        "event": name,
        "timestamp": iso(at),
        "properties": props,
    }
    if mid is not None:
        obj["messageId"] = mid
    (event,) = parse_call(obj, received_ms=0)
    return event


def login(anon: str, user: str, at: int, mid: str | None = None, **traits: Any) -> list[Event]:
    """An identify carrying both ids: the alias event, then the identify."""
    obj: dict[str, Any] = {
        "type": "identify",
        "anonymousId": anon,
        "userId": user,
        "timestamp": iso(at),
        "traits": traits,
    }
    if mid is not None:
        obj["messageId"] = mid
    return parse_call(obj, received_ms=0)


def alias(previous: str, user: str, at: int, mid: str | None = None) -> Event:
    obj: dict[str, Any] = {
        "type": "alias",
        "previousId": previous,
        "userId": user,
        "timestamp": iso(at),
    }
    if mid is not None:
        obj["messageId"] = mid
    (event,) = parse_call(obj, received_ms=0)
    return event


# ---------------------------------------------------------------- parsing


def test_a_call_with_both_ids_makes_an_alias_event_before_its_own() -> None:
    events = call(type="identify", anonymousId="a1", userId="u1", traits={"x": 1}, messageId="m")
    assert [(e.message_id, e.kind, e.name, e.user_id, e.props) for e in events] == [
        ("m#alias", "alias", ALIAS, "u1", {PREVIOUS_ID: "a1"}),
        ("m", "identify", "identify", "u1", {"x": 1}),
    ]
    track_events = call(type="track", anonymousId="a1", userId="u1", event="Viewed", messageId="t")
    assert [e.kind for e in track_events] == ["alias", "track"]


def test_a_call_with_one_id_or_equal_ids_makes_no_alias() -> None:
    assert [e.kind for e in call(type="track", anonymousId="a1", event="x")] == ["track"]
    assert [e.kind for e in call(type="track", userId="u1", event="x")] == ["track"]
    assert [e.kind for e in call(type="track", userId="u1", anonymousId="u1", event="x")] == [
        "track"
    ]


def test_alias_calls_are_read_in_a_batch() -> None:
    body = {
        "batch": [
            {"type": "alias", "userId": "u1", "previousId": "anon-1", "messageId": "al"},
            {"type": "page", "userId": "u1", "name": "Home"},
        ]
    }
    (event,) = parse_batch(body, 0)
    assert (event.kind, event.name, event.user_id, event.props) == (
        "alias",
        ALIAS,
        "u1",
        {PREVIOUS_ID: "anon-1"},
    )


@pytest.mark.parametrize(
    ("item", "path"),
    [
        ({"type": "alias", "userId": "u1"}, "$.batch[0].previousId"),
        ({"type": "alias", "userId": "u1", "previousId": ""}, "$.batch[0].previousId"),
        ({"type": "alias", "userId": "u1", "previousId": {}}, "$.batch[0].previousId"),
        ({"type": "track", "userId": "u1", "event": "Alias"}, "$.batch[0].event"),
    ],
)
def test_a_bad_alias_call_is_refused_naming_its_field(item: dict[str, Any], path: str) -> None:
    with pytest.raises(EventError) as info:
        parse_batch({"batch": [item, {"type": "track", "userId": "u2", "event": "x"}]}, 0)
    assert path in str(info.value)


# ---------------------------------------------------------------- linking ids


def _link(events: list[Event]) -> list[tuple[str, str, Any]]:
    linked, _ = link_events(events, IdentityMap())
    return [(e.name, e.user_id, e.props.get(PREVIOUS_ID)) for e in linked if e is not None]


def test_events_after_a_merge_name_the_known_user() -> None:
    events = [
        anon_track("a1", "cart_abandoned", T0),
        *login("a1", "u1", T0 + 1),
        anon_track("a1", "cart_viewed", T0 + 2),
    ]
    assert _link(events) == [
        ("cart_abandoned", "a1", None),
        (ALIAS, "u1", "a1"),
        ("identify", "u1", None),
        ("cart_viewed", "u1", None),
    ]


def test_an_anonymous_id_joins_the_first_user_it_is_merged_into() -> None:
    # A second account logging in on the same device does not take the first one's
    # history: the id names u1, and u2's call is u2's.
    events = [*login("a1", "u1", T0), *login("a1", "u2", T0 + 1), anon_track("a1", "x", T0 + 2)]
    assert _link(events) == [
        (ALIAS, "u1", "a1"),
        ("identify", "u1", None),
        ("identify", "u2", None),
        ("x", "u1", None),
    ]


def test_a_merged_user_takes_its_aliases_along() -> None:
    events = [*login("a1", "u1", T0), alias("u1", "u2", T0 + 1), anon_track("a1", "x", T0 + 2)]
    linked, merges = link_events(events, ids := IdentityMap())
    assert merges == [("a1", "u1"), ("u1", "u2")]
    assert ids.canonical == {"a1": "u2", "u1": "u2"}
    assert [e.user_id for e in linked if e is not None] == ["u1", "u1", "u2", "u2"]


def test_linking_twice_gives_the_same_events() -> None:
    events = [*login("a1", "u1", T0), alias("u1", "u2", T0 + 1), anon_track("a1", "x", T0 + 2)]
    once, merges = link_events(events, IdentityMap())
    twice, again = link_events([e for e in once if e is not None], IdentityMap())
    assert twice == [e for e in once if e is not None]
    assert again == merges


def _store(tmp: str) -> Store:
    return Store.open(Path(tmp) / "s.db")


def test_the_store_links_ids_at_ingest_across_calls() -> None:
    with tempfile.TemporaryDirectory(dir=TMP_DIR) as tmp, _store(tmp) as store:
        first = [anon_track("a1", "cart_abandoned", T0, mid="e1")]
        assert store.append_events(first) == [1]
        seqs = store.append_events([*login("a1", "u1", T0 + 1, mid="l1")])
        assert seqs == [2, 3]
        # Segment's SDKs send both ids with every call after login: no second merge.
        again = store.append_events(
            parse_call(
                {"type": "track", "anonymousId": "a1", "userId": "u1", "event": "x"},
                received_ms=T0 + 2,
            )
        )
        assert again == [None, 4]
        store.append_events([anon_track("a1", "cart_viewed", T0 + 3, mid="e2")])
        rows = store.conn.execute("SELECT user_id, name FROM events ORDER BY seq").fetchall()
        assert rows == [
            ("a1", "cart_abandoned"),  # logged before the merge: the engine moves it
            ("u1", ALIAS),
            ("u1", "identify"),
            ("u1", "x"),
            ("u1", "cart_viewed"),
        ]
        assert store.canonical_user("a1") == "u1"
        assert store.identities_of("a1") == ["u1", "a1"]


# ---------------------------------------------------------------- the engine's merge

MESSAGES = """
message cart_reminder
  push
    title "Still thinking about {{ event.product_name }}?"
    body "Your cart is waiting{% if user.first_name %}, {{ user.first_name }}{% endif %}."
"""

CART = """
journey cart
  when cart_abandoned
  entry once per 7d
  exit when order_completed
  goal order_completed within 3d
  wait 30m as first_nudge
  send push cart_reminder as reminder
"""

PROJECT = {"messages.journey": MESSAGES, "cart.journey": CART}


def brief(r: Run) -> list[tuple[str, str, str | None, str | None, str]]:
    return [(a["at"][11:16], a["user"], a["journey"], a["step"], a["action"]) for a in r.dicts]


def test_an_anonymous_cart_journey_goes_on_for_the_known_user() -> None:
    events = [
        anon_track("a1", "cart_abandoned", T0, product_name="Watch"),
        *login("a1", "u1", T0 + 10 * MINUTE, first_name="Ann", push_enabled=True),
    ]
    r = run(PROJECT, events)
    assert brief(r) == [
        ("10:00", "a1", "cart", None, "enter"),
        ("10:30", "u1", "cart", "reminder", "send"),
        ("10:30", "u1", "cart", "reminder", "exit"),
    ]
    (send,) = r.of(action="send")
    assert send["content"]["body"] == "Your cart is waiting, Ann."
    assert [(e["user_id"], e["entry_no"]) for e in r.entries] == [("u1", 1)]
    assert r.profiles["a1"] == {}


def test_an_alias_call_merges_too() -> None:
    events = [
        anon_track("a1", "cart_abandoned", T0, product_name="Watch"),
        identify("u1", T0 + MINUTE, push_enabled=True),
        alias("a1", "u1", T0 + 2 * MINUTE),
    ]
    r = run(PROJECT, events)
    assert [(a["user"], a["action"]) for a in r.dicts] == [
        ("a1", "enter"),
        ("u1", "send"),
        ("u1", "exit"),
    ]


def test_where_both_are_in_a_journey_the_first_entered_goes_on() -> None:
    events = [
        identify("u1", T0 - HOUR, push_enabled=True),
        anon_track("a1", "cart_abandoned", T0, product_name="Watch"),
        track("u1", "cart_abandoned", T0 + 5 * MINUTE, product_name="Ring"),
        *login("a1", "u1", T0 + 10 * MINUTE),
    ]
    r = run(PROJECT, events)
    assert brief(r) == [
        ("10:00", "a1", "cart", None, "enter"),
        ("10:05", "u1", "cart", None, "enter"),
        ("10:10", "u1", "cart", "first_nudge", "exit"),
        ("10:30", "u1", "cart", "reminder", "send"),
        ("10:30", "u1", "cart", "reminder", "exit"),
    ]
    assert r.of(action="exit")[0]["reason"] == "merged"
    (send,) = r.of(action="send")
    assert send["content"]["title"] == "Still thinking about Watch?"
    # Both entries are the known user's; the one that goes on is the latest.
    assert sorted((e["entry_no"], e["entered_at"]) for e in r.entries) == [
        (1, T0 + 5 * MINUTE),
        (2, T0),
    ]


def test_the_known_users_traits_win_and_the_anonymous_ones_fill_gaps() -> None:
    events = [
        identify("a1", T0, locale="th-TH", first_name="Anon"),
        identify("u1", T0 + MINUTE, first_name="Ann"),
        *login("a1", "u1", T0 + 2 * MINUTE),
    ]
    r = run(PROJECT, events)
    assert r.profiles["u1"] == {"first_name": "Ann", "locale": "th-TH"}
    assert r.profiles["a1"] == {}


def test_the_entry_rule_counts_the_anonymous_entries() -> None:
    events = [
        anon_track("a1", "cart_abandoned", T0),
        *login("a1", "u1", T0 + HOUR),
        track("u1", "cart_abandoned", T0 + 2 * HOUR),  # once per 7d: not again
    ]
    r = run(PROJECT, events)
    assert [(a["user"], a["action"]) for a in r.dicts if a["action"] == "enter"] == [
        ("a1", "enter")
    ]


def test_a_goal_after_the_merge_counts_for_the_anonymous_entry() -> None:
    events = [
        anon_track("a1", "cart_abandoned", T0),
        *login("a1", "u1", T0 + 10 * MINUTE),
        anon_track("a1", "order_completed", T0 + 20 * MINUTE),  # lands on u1
    ]
    r = run(PROJECT, events)
    assert [(a["user"], a["action"]) for a in r.dicts] == [
        ("a1", "enter"),
        ("u1", "goal"),
        ("u1", "exit"),
    ]
    assert r.of(action="exit")[0]["reason"] == "exit_event"


SEGMENTED = {
    **PROJECT,
    "seg.journey": """
segment shoppers = count(product_viewed within 30d) >= 2

journey welcome_shopper
  when entering shoppers
  send push "Welcome {{ user.first_name }}" as hello
""",
}


def test_segment_standing_is_merged_and_evaluated_again() -> None:
    events = [
        identify("u1", T0 - HOUR, push_enabled=True, first_name="Ann"),
        anon_track("a1", "product_viewed", T0),
        track("u1", "product_viewed", T0 + MINUTE),
        *login("a1", "u1", T0 + 2 * MINUTE),
    ]
    r = run(SEGMENTED, events)
    sends = select(r.dicts, action="send")
    # Neither id alone viewed two products; the merged user did.
    assert [(s["at"][11:16], s["user"], s["content"]["body"]) for s in sends] == [
        ("10:02", "u1", "Welcome Ann")
    ]


# ---------------------------------------------------------------- the same, held or not


@pytest.mark.parametrize("hold", [True, False])
def test_a_merge_is_the_same_held_in_memory_or_written(hold: bool) -> None:
    from journeyc.engine.simulate import simulate

    project = compile_files(SEGMENTED)
    events = [
        identify("u1", T0 - HOUR, push_enabled=True, first_name="Ann"),
        anon_track("a1", "cart_abandoned", T0),
        anon_track("a1", "product_viewed", T0 + MINUTE),
        track("u1", "cart_abandoned", T0 + 2 * MINUTE),
        track("u1", "product_viewed", T0 + 3 * MINUTE),
        *login("a1", "u1", T0 + 4 * MINUTE),
        anon_track("a1", "order_completed", T0 + 2 * HOUR),
    ]
    outs = []
    for h in (True, hold):
        with tempfile.TemporaryDirectory(dir=TMP_DIR) as tmp, _store(tmp) as store:
            actions = simulate(project, events, store, hold=h)
            outs.append(
                (
                    [a.to_json() for a in actions],
                    store.conn.execute(
                        "SELECT journey_id, user_id, entry_no, entered_at, goal_at FROM entries"
                        " ORDER BY 1, 2, 3"
                    ).fetchall(),
                    store.conn.execute(
                        "SELECT user_id, count(*) FROM events GROUP BY 1 ORDER BY 1"
                    ).fetchall(),
                    store.conn.execute("SELECT alias, user_id FROM identities").fetchall(),
                )
            )
    assert outs[0] == outs[1]
    _, _, events_per_user, links = outs[0]
    assert events_per_user == [("u1", 8)]
    assert links == [("a1", "u1")]


def test_forgetting_by_either_id_forgets_every_identity() -> None:
    with tempfile.TemporaryDirectory(dir=TMP_DIR) as tmp, _store(tmp) as store:
        store.append_events([anon_track("a1", "cart_abandoned", T0, mid="e1")])
        store.append_events(login("a1", "u1", T0 + 1, mid="l1", email="x@example.com"))
        store.append_events([anon_track("a1", "cart_viewed", T0 + 2, mid="e2")])
        removed = store.forget_user("a1")
        assert removed["events"] == 4
        assert removed["profiles"] == 2  # a1's row (not merged yet: no engine ran) and u1's
        assert removed["identities"] == 1
        for table in ("events", "profiles", "identities"):
            assert store.conn.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,)
        # The id is free again: a new call under it is a new user of its own.
        store.append_events([anon_track("a1", "x", T0 + 3, mid="e3")])
        assert store.canonical_user("a1") == "a1"


# ---------------------------------------------------------------- several processes


def test_linked_ids_replay_in_one_process() -> None:
    project = compile_files(PROJECT)
    events: list[Event] = []
    for k in range(40):
        anon, user = f"anon-{k}", f"user-{k}"
        at = T0 + k * MINUTE
        events += [
            anon_track(anon, "cart_abandoned", at, mid=f"c{k}", product_name=f"P{k}"),
            *login(anon, user, at + 5 * MINUTE, mid=f"l{k}", push_enabled=True),
        ]
    with tempfile.TemporaryDirectory(dir=TMP_DIR) as tmp, _store(tmp) as store:
        from journeyc.engine.simulate import simulate

        one = [a.to_json() for a in in_output_order(simulate(project, events, store))]
    split, _ = simulate_parallel(project, events, workers=2)
    assert [a.to_json() for a in split] == one
    assert sum('"action": "send"' in line for line in one) == 40


# ---------------------------------------------------------------- merged = known from the start

PROPERTY_PROJECT = {
    "messages.journey": MESSAGES,
    "cart.journey": """
journey cart
  when cart_abandoned
  entry once per 1d
  exit when order_completed
  goal order_completed within 3d
  wait 30m as first_nudge
  send push cart_reminder as reminder
  wait for cart_viewed up to 1d as second_look
    on cart_viewed
      send push "Saved for you, {{ user.first_name | default: 'friend' }}" as saved
    on timeout
      send push "Last call" as last_call
""",
    "seg.journey": """
segment browsers = count(product_viewed within 2d) >= 2

journey browsing
  when entering browsers
  entry always
  wait 2h
  if exists(user.first_name)
    send push "Hi {{ user.first_name }}, more like this?" as named
  else
    send push "More like this?" as anonymous
""",
}

_ANON_EVENTS = ["cart_abandoned", "product_viewed", "cart_viewed", "order_completed"]


@st.composite
def merged_timelines(draw: st.DrawFn) -> tuple[list[dict[str, Any]], int]:
    """Calls (as JSON objects) of one shopper: anonymous ones, a login carrying both
    ids, then calls under either id; and the index of the login."""
    n_before = draw(st.integers(0, 6))
    n_after = draw(st.integers(0, 6))
    offsets = sorted(
        draw(
            st.lists(
                st.integers(0, 3 * 24 * 60),
                min_size=n_before + n_after + 1,
                max_size=n_before + n_after + 1,
            )
        )
    )
    calls: list[dict[str, Any]] = []

    def one(ids: dict[str, str], minute: int, k: int) -> dict[str, Any]:
        obj: dict[str, Any] = {**ids, "messageId": f"m{k}", "timestamp": iso(T0 + minute * MINUTE)}
        if draw(st.integers(0, 4)) == 0:
            obj |= {"type": "identify", "traits": {"push_enabled": draw(st.booleans())}}
        else:
            obj |= {"type": "track", "event": draw(st.sampled_from(_ANON_EVENTS))}
        return obj

    for k in range(n_before):
        calls.append(one({"anonymousId": "anon"}, offsets[k], k))
    login_traits: dict[str, Any] = {"push_enabled": True}
    if draw(st.booleans()):
        login_traits["first_name"] = "Ann"
    calls.append(
        {
            "type": "identify",
            "anonymousId": "anon",
            "userId": "known",
            "traits": login_traits,
            "messageId": "login",
            "timestamp": iso(T0 + offsets[n_before] * MINUTE),
        }
    )
    for k in range(n_after):
        ids = draw(
            st.sampled_from(
                [
                    {"anonymousId": "anon"},
                    {"userId": "known"},
                    {"anonymousId": "anon", "userId": "known"},
                ]
            )
        )
        calls.append(one(ids, offsets[n_before + 1 + k], n_before + 1 + k))
    return calls, n_before


def _events(calls: list[dict[str, Any]]) -> list[Event]:
    return [e for c in calls for e in parse_call(c, received_ms=0)]


def _as_known(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The same calls, every one under the known id from the start."""
    out = []
    for c in calls:
        c = {k: v for k, v in c.items() if k != "anonymousId"}
        c["userId"] = "known"
        out.append(c)
    return out


@settings(deadline=None)
@given(merged_timelines())
def test_a_merged_timeline_sends_what_the_known_id_from_the_start_sends(
    timeline: tuple[list[dict[str, Any]], int],
) -> None:
    """docs/semantics.md, "Identity: anonymous to known": when the known id has no
    history of its own before the merge, merging changes nothing but the id the
    actions before it name."""
    calls, _ = timeline
    project = compile_files(PROPERTY_PROJECT)
    merged = run(project, _events(calls), until=T0 + 5 * 24 * HOUR)
    known = run(project, _events(_as_known(calls)), until=T0 + 5 * 24 * HOUR)
    renamed = [{**a, "user": "known"} for a in merged.dicts]
    assert renamed == known.dicts
    assert merged.profiles.get("anon", {}) == {}
    assert merged.profiles["known"] == known.profiles["known"]
    keyed = [(e["journey_id"], e["entered_at"], e["goal_at"]) for e in merged.entries]
    assert sorted(keyed) == sorted(
        (e["journey_id"], e["entered_at"], e["goal_at"]) for e in known.entries
    )
    assert {e["user_id"] for e in merged.entries} <= {"known"}


# Each example forks replay processes: an eighth of the profile's examples.
@settings(max_examples=max(8, settings.default.max_examples // 8), deadline=None)
@given(st.lists(merged_timelines(), min_size=1, max_size=4))
def test_linked_ids_split_between_processes_give_one_processes_actions(
    timelines: list[tuple[list[dict[str, Any]], int]],
) -> None:
    project = compile_files(PROPERTY_PROJECT)
    events: list[Event] = []
    for k, (calls, _) in enumerate(timelines):
        for c in calls:
            c = dict(c, messageId=f"{k}-{c['messageId']}")
            if "anonymousId" in c:
                c["anonymousId"] = f"anon-{k}"
            if "userId" in c:
                c["userId"] = f"known-{k}"
            events += parse_call(c, received_ms=0)
    until = T0 + 5 * 24 * HOUR
    with tempfile.TemporaryDirectory(dir=TMP_DIR) as tmp, _store(tmp) as store:
        from journeyc.engine.simulate import simulate

        one = in_output_order(simulate(project, events, store, until_ms=until))
    split, _ = simulate_parallel(project, events, workers=3, until_ms=until)
    assert [a.to_json() for a in split] == [a.to_json() for a in one]


# ---------------------------------------------------------------- the HTTP API


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    """The HTTP API over a real uvicorn server and a real store (as tests/test_api.py)."""
    db = tmp_path / "journeyc.db"
    app = create_app(db, write_key=WRITE_KEY, admin_token=ADMIN_TOKEN)
    with running_server(app) as url, httpx.Client(base_url=url, timeout=10) as client:
        yield Api(url, db, client)


def test_the_api_takes_alias_calls_and_shows_a_user_by_an_old_id(api: Api) -> None:
    anon = {"anonymousId": "anon-1", "event": "Cart Abandoned", "messageId": "c1"}
    assert api.client.post("/v1/track", json=anon, headers=AUTH).status_code == 200
    ident = {"userId": "u1", "traits": {"first_name": "Ann"}, "messageId": "i1"}
    assert api.client.post("/v1/identify", json=ident, headers=AUTH).status_code == 200
    merge = {"previousId": "anon-1", "userId": "u1", "messageId": "a1"}
    assert api.client.post("/v1/alias", json=merge, headers=AUTH).status_code == 200
    later = {"anonymousId": "anon-1", "event": "Cart Viewed", "messageId": "c2"}
    assert api.client.post("/v1/t", json=later, headers=AUTH).status_code == 200
    assert [(mid, user, name) for mid, user, name, _, _ in api.events()] == [
        ("c1", "anon-1", "cart_abandoned"),  # the engine moves it when it merges
        ("i1", "u1", "identify"),
        ("a1", "u1", ALIAS),
        ("c2", "u1", "cart_viewed"),
    ]
    shown = api.client.get("/v1/users/anon-1", headers=ADMIN).json()
    assert (shown["user_id"], shown["traits"]) == ("u1", {"first_name": "Ann"})
    inbox = api.client.get("/v1/users/anon-1/inbox", headers=ADMIN).json()
    assert inbox["user_id"] == "u1"
    metrics = api.client.get("/metrics").text
    assert 'journeyc_events_received_total{endpoint="alias",outcome="accepted"} 1.0' in metrics


def test_a_batch_with_a_bad_alias_call_stores_nothing(api: Api) -> None:
    body = {
        "batch": [
            {"type": "identify", "anonymousId": "anon-1", "userId": "u1", "traits": {}},
            {"type": "alias", "userId": "u1"},
        ]
    }
    reply = api.client.post("/v1/batch", json=body, headers=AUTH)
    assert_error(reply, 400, "$.batch[1].previousId")
    assert api.events() == []
    assert read_rows(api.db, "SELECT * FROM identities") == []


def test_forgetting_an_old_id_over_the_api_forgets_the_known_user(api: Api) -> None:
    body = {
        "batch": [
            {"type": "track", "anonymousId": "anon-1", "event": "Viewed", "messageId": "v"},
            {"type": "identify", "anonymousId": "anon-1", "userId": "u1", "messageId": "l"},
        ]
    }
    assert api.client.post("/v1/batch", json=body, headers=AUTH).status_code == 200
    removed = api.client.delete("/v1/users/anon-1", headers=ADMIN).json()["removed"]
    assert (removed["events"], removed["identities"]) == (3, 1)
    assert api.events() == []
    assert_error(api.client.get("/v1/users/u1", headers=ADMIN), 404)


@st.composite
def tangled_timelines(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Calls of a few ids where both sides have history, some merged more than once:
    logins of two accounts on one device, `alias` of an old user id into a new one."""
    ids = ["anon-1", "anon-2", "u1", "u2"]
    calls: list[dict[str, Any]] = []
    for k in range(draw(st.integers(1, 14))):
        # Within hours of each other: journeys of two ids are in flight at a merge.
        minute = draw(st.integers(0, 8 * 60))
        base: dict[str, Any] = {"messageId": f"m{k}", "timestamp": iso(T0 + minute * MINUTE)}
        kind = draw(st.sampled_from(["track", "track", "identify", "login", "alias"]))
        if kind == "login":
            anon, user = draw(st.sampled_from(ids[:2])), draw(st.sampled_from(ids[2:]))
            traits = {"push_enabled": draw(st.booleans()), "first_name": user.title()}
            calls.append(
                base | {"type": "identify", "anonymousId": anon, "userId": user, "traits": traits}
            )
        elif kind == "alias":
            previous, user = draw(st.sampled_from(ids)), draw(st.sampled_from(ids[2:]))
            calls.append(base | {"type": "alias", "previousId": previous, "userId": user})
        else:
            who = draw(st.sampled_from(ids))
            key = "anonymousId" if who.startswith("anon") else "userId"
            if kind == "identify":
                traits = {"push_enabled": draw(st.booleans())}
                calls.append(base | {"type": "identify", key: who, "traits": traits})
            else:
                event = draw(st.sampled_from(["cart_abandoned", "product_viewed", *_ANON_EVENTS]))
                calls.append(base | {"type": "track", key: who, "event": event})
    return calls


@settings(deadline=None)
@given(tangled_timelines())
def test_merges_held_in_memory_and_written_to_the_store_agree(calls: list[dict[str, Any]]) -> None:
    """The simulator's held rows and the daemon's written ones (the same engine, two
    ways of keeping its rows) give the same actions, entries and links, and leave no
    merged id with data of its own."""
    from journeyc.engine.simulate import simulate

    project = compile_files(PROPERTY_PROJECT)
    events = _events(calls)
    until = T0 + 4 * 24 * HOUR
    outs = []
    for hold, scratch in ((True, True), (True, False), (False, False)):
        with tempfile.TemporaryDirectory(dir=TMP_DIR) as tmp, _store(tmp) as store:
            actions = simulate(project, events, store, until_ms=until, hold=hold, scratch=scratch)
            conn = store.conn
            links = dict(conn.execute("SELECT alias, user_id FROM identities").fetchall())
            for table in ("events", "profiles", "segment_members", "entries", "instances"):
                users = {u for (u,) in conn.execute(f"SELECT DISTINCT user_id FROM {table}")}
                assert not users & links.keys(), (table, users, links)
            live = conn.execute(
                "SELECT journey_id, user_id, count(*) FROM instances GROUP BY 1, 2"
                " HAVING count(*) > 1"
            ).fetchall()
            assert live == []
            outs.append(
                (
                    [a.to_json() for a in actions],
                    conn.execute(
                        "SELECT journey_id, user_id, entry_no, entered_at, goal_at FROM entries"
                        " ORDER BY 1, 2, 3"
                    ).fetchall(),
                    links,
                )
            )
    assert outs[0] == outs[1] == outs[2]


# ---------------------------------------------------------------- the reference interpreter


@st.composite
def merged_scenarios(draw: st.DrawFn) -> Scenario:
    """A generated project and timeline (tests/journey_strategies.py) where some users
    browse anonymously first: their calls before a login carry only an anonymousId,
    the login carries both (or is an `alias` call), and calls after it either id;
    now and then an old user id is aliased into another user."""
    scenario = draw(scenarios())
    raw = [dict(obj) for obj in scenario.raw_events]
    grid = [obj["timestamp"] for obj in raw]
    for user in USERS:
        if not draw(st.booleans()):
            continue
        anon, login_at = f"anon-{user}", draw(st.sampled_from(grid))
        for obj in raw:
            # Before the login both ids have calls (their journeys meet at the merge);
            # after it, now and then the old id still calls.
            if obj.get("userId") == user and draw(
                st.booleans() if obj["timestamp"] < login_at else st.integers(0, 3).map(not_)
            ):
                del obj["userId"]
                obj["anonymousId"] = anon
        if draw(st.booleans()):
            raw.append({"type": "alias", "previousId": anon, "userId": user, "timestamp": login_at})
        else:
            login = {"type": "identify", "anonymousId": anon, "userId": user}
            raw.append(login | {"timestamp": login_at, "traits": {"push_enabled": True}})
    if draw(st.integers(0, 3)) == 0:
        old, new = draw(st.permutations(USERS))[:2]
        raw.append({"type": "alias", "previousId": old, "userId": new, "timestamp": grid[-1]})
    events = [e for obj in raw for e in parse_call(obj, received_ms=0)]
    return Scenario(scenario.files, events, scenario.start_ms, scenario.until_ms, raw)


@settings(deadline=None)
@given(merged_scenarios())
def test_merges_match_the_reference_interpreter(
    engine_stores: PostgresStores | None, scenario: Scenario
) -> None:
    """The engine against tests/reference.py, which merges ids its own plain way, on
    each kind of store (the unit of work's merge_user is each store's statements)."""
    got, want = engine_and_reference(scenario, on=engine_stores)
    assert got == want, "\n".join(
        [scenario.describe(), "engine:", *map(str, got), "reference:", *map(str, want)]
    )


def test_calls_after_a_login_carrying_both_ids_are_not_counted_as_duplicates(api: Api) -> None:
    for k in range(3):
        call = {"anonymousId": "anon-1", "userId": "u1", "event": "Viewed", "messageId": f"v{k}"}
        assert api.client.post("/v1/track", json=call, headers=AUTH).status_code == 200
    metrics = api.client.get("/metrics").text
    assert 'journeyc_events_received_total{endpoint="track",outcome="accepted"} 4.0' in metrics
    assert 'journeyc_events_received_total{endpoint="track",outcome="duplicate"} 0.0' in metrics


def _engine_and_reference(files: dict[str, str], events: list[Event]) -> list[dict[str, Any]]:
    """The actions of the engine, checked equal (content aside) to the reference's."""
    from journeyc.engine.simulate import simulate_project

    with tempfile.TemporaryDirectory() as tmp:
        for name, text in files.items():
            (Path(tmp) / name).write_text(text, encoding="utf-8")
        want = reference_simulate(load_project([tmp]).trees, events)
        got = simulate_project(Path(tmp), events)
    assert [{k: v for k, v in a.items() if k != "content"} for a in got] == want
    return got


ONCE_PER = """
journey cart
  when cart_abandoned
  entry once per 2h
  goal order_completed
  wait 1h as first_nudge
  send push "Back?" as reminder
"""


@pytest.mark.parametrize(
    ("anon_at", "known_at", "kept"),
    [
        (0, 5, "anon"),  # the anonymous one entered first: it goes on
        (5, 0, "known"),
        (0, 0, "known"),  # at equal times, the known user's
    ],
)
def test_the_instance_kept_is_the_reference_interpreters(
    anon_at: int, known_at: int, kept: str
) -> None:
    events = [
        identify("u1", T0 - HOUR, push_enabled=True),
        anon_track("a1", "cart_abandoned", T0 + anon_at * MINUTE, mid="a"),
        track("u1", "cart_abandoned", T0 + known_at * MINUTE, mid="k"),
        *login("a1", "u1", T0 + 10 * MINUTE, mid="l"),
        # Within the window of the kept entry only if the kept one is the latest.
        track("u1", "cart_abandoned", T0 + 2 * HOUR + 3 * MINUTE, mid="again"),
        track("u1", "order_completed", T0 + 2 * HOUR + 4 * MINUTE, mid="goal"),
    ]
    got = _engine_and_reference({"cart.journey": ONCE_PER}, events)
    (merged,) = [a for a in got if a.get("reason") == "merged"]
    assert merged["user"] == "u1"
    kept_at = anon_at if kept == "anon" else known_at
    sends = [a["at"] for a in got if a["action"] == "send"]
    assert sends[0] == iso(T0 + kept_at * MINUTE + HOUR).replace(".000", "")
    # The kept entry is the latest: `once per 2h` counts from it, so the user enters
    # again 2h03 after it, and the goal counts for that new entry.
    enters = [a["at"][11:16] for a in got if a["action"] == "enter"]
    assert len(enters) == 3 and enters[-1] == "12:03"
    assert [a["at"][11:16] for a in got if a["action"] == "goal"] == ["12:04"]


def test_journeyc_ingest_links_ids_and_counts_no_empty_merge_as_a_duplicate(tmp_path: Path) -> None:
    from journeyc.cli.ingest import append_all

    events = [
        anon_track("a1", "cart_abandoned", T0, mid="c"),
        *login("a1", "u1", T0 + 1, mid="l"),
        *login("a1", "u1", T0 + 2, mid="l2"),  # both ids again: no second merge
        anon_track("a1", "cart_viewed", T0 + 3, mid="v"),
    ]
    with _store(str(tmp_path)) as store:
        assert append_all(store, events) == (5, 0)
        assert append_all(store, events) == (0, 4)  # the calls, not the merges
        users = store.conn.execute("SELECT user_id FROM events ORDER BY seq").fetchall()
        assert [u for (u,) in users] == ["a1", "u1", "u1", "u1", "u1"]
