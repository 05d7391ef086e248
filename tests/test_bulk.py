"""Set-based aggregates and population evaluation agree exactly with the per-user path.

:class:`BulkAggregates` must give every user what :class:`StoreAggregates` gives, value
and type (``1`` is not ``1.0``, an event's props are the same dict), for every
aggregate: all functions, with and without a window, ``where`` clauses SQL can and
cannot take, and ones that read the profile. :func:`evaluate_population` must give
what evaluating each user's segments one by one gives, for the project's segments
and generated ones.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from journeyc.compile import ir
from journeyc.compile.lower import lower_expr, lower_project
from journeyc.engine.aggregates import StoreAggregates, from_ms, to_ms
from journeyc.engine.bulk import BulkAggregates, aggregates_in, evaluate_population
from journeyc.engine.expr import CompileError, EventView, Scope, compile_predicate
from journeyc.engine.segments import segment_resolver
from journeyc.lang.project import load_project
from journeyc.store.abc import AggregateReads, PopulationReads
from journeyc.store.sqlite.aggregates import SqliteAggregates
from journeyc.store.sqlite.dialect import SqliteRunner
from journeyc.store.sqlite.population import SqlitePopulation
from journeyc.store.sqlite.schema import migrate
from tests import strategies
from tests.compiled_stores import PostgresRows, rows_on
from tests.conftest import ROOT
from tests.postgres_server import PostgresServer

# The contract suite of the aggregate sources, run again here against BulkAggregates
# (pytest collects imported tests with this module's ``make_source`` fixture).
from tests.test_aggregates import (  # noqa: F401
    NOW,
    Factory,
    LoggedEvent,
    insert,
    item_conditions,
    item_values,
    list_props,
    parse_expr,
    prop_values,
    test_aggregates_over_list_items,
    test_avg_of_large_integers_is_exact,
    test_bare_items_are_true_as_python_says,
    test_count_window_user_and_name,
    test_distinct,
    test_last_and_first,
    test_min_and_max,
    test_sum_and_avg_take_numbers_only,
    test_sum_keeps_integers_whole,
    test_top_breaks_ties_by_most_recent,
    test_where,
    test_window_bounds,
)
from tests.test_aggregates import conditions as sql_conditions

NOW_MS = to_ms(NOW)
HOUR, DAY = 3_600_000, 86_400_000
SEGMENTS = lower_project(load_project([ROOT / "journeys" / "segments.journey"])).segments

# ---------------------------------------------------------------- the store


@pytest.fixture(scope="module")
def conn() -> Iterator[sqlite3.Connection]:
    """The real schema (its indexes and STRICT tables), emptied by each example."""
    c = sqlite3.connect(":memory:", isolation_level=None)
    migrate(c)
    yield c
    c.close()


class SqliteDb:
    """The SQLite side of :class:`tests.compiled_stores.PostgresRows`."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def load(self, events: Sequence[Row], profiles: Mapping[str, dict[str, Any]] = {}) -> None:
        load(self.conn, events, profiles)

    def population(self) -> PopulationReads:
        return SqlitePopulation(self.conn)

    def aggregates(self) -> AggregateReads:
        return SqliteAggregates(self.conn)

    def profile(self, uid: str) -> dict[str, Any]:
        return profile_of(self.conn, uid)

    def everyone(self) -> list[str]:
        return everyone(self.conn)


Db = SqliteDb | PostgresRows


@pytest.fixture(scope="module")
def pg_rows(postgres_server: PostgresServer | str) -> Iterator[PostgresRows]:
    """One PostgreSQL database for the module's tests (each load replaces the rows)."""
    with rows_on(postgres_server) as rows:
        yield rows


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, conn: sqlite3.Connection) -> Db:
    """The test's rows in each SQL store (emptied by each example)."""
    if request.param == "sqlite":
        return SqliteDb(conn)
    rows: PostgresRows = request.getfixturevalue("pg_rows")
    return rows


# The store's rows are replaced by each example: one database serves them all.
REUSES_ITS_STORE = settings(
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)


class BulkAtEachTime:
    """A :class:`BulkAggregates` for each time and user a scope asks about (with a
    second user beside it), built on first use: every answer comes from a grouped
    statement, whatever ``now`` a contract test picks."""

    def __init__(self, population: PopulationReads, dense: bool) -> None:
        self.population, self.dense = population, dense
        self.sources: dict[tuple[Any, str], BulkAggregates] = {}

    def value(self, agg: ir.Agg, key: str, scope: Scope) -> Any:
        where = (scope.now, scope.user_id)
        if where not in self.sources:
            users = [scope.user_id, "u2"]
            self.sources[where] = BulkAggregates(
                self.population, scope.now, users, dense=self.dense
            )
        return self.sources[where].value(agg, key, scope)


@pytest.fixture(params=["dense", "seeks", "postgres-dense", "postgres-seeks"])
def make_source(request: pytest.FixtureRequest, conn: sqlite3.Connection) -> Factory:
    dense = request.param.endswith("dense")

    def make(events: Sequence[LoggedEvent]) -> BulkAtEachTime:
        if request.param.startswith("postgres"):
            pg: PostgresRows = request.getfixturevalue("pg_rows")
            pg.load_events(events)
            return BulkAtEachTime(pg.population(), dense)
        load(conn, [], {})
        insert(conn, events)
        return BulkAtEachTime(SqlitePopulation(conn), dense)

    return make


Row = tuple[int, str, str, int, dict[str, Any]]  # seq, user, name, at, props


def load(
    conn: sqlite3.Connection, events: Sequence[Row], profiles: Mapping[str, dict[str, Any]]
) -> None:
    conn.execute("DELETE FROM events")
    conn.execute("DELETE FROM profiles")
    conn.executemany(
        "INSERT INTO events (seq, message_id, user_id, name, at, props, received_at)"
        " VALUES (?, ?, ?, ?, ?, ?, 0)",
        [(seq, f"m{seq}", u, n, at, json.dumps(p)) for seq, u, n, at, p in events],
    )
    conn.executemany(
        "INSERT INTO profiles (user_id, traits, updated_at) VALUES (?, ?, 0)",
        [(u, json.dumps(t)) for u, t in profiles.items()],
    )
    # As the store keeps it: every user the log names has a profile row.
    conn.execute(
        "INSERT INTO profiles (user_id, traits, updated_at)"
        " SELECT DISTINCT user_id, '{}', 0 FROM events WHERE true ON CONFLICT DO NOTHING"
    )


def profile_of(conn: sqlite3.Connection, uid: str) -> dict[str, Any]:
    row = conn.execute("SELECT traits FROM profiles WHERE user_id = ?", (uid,)).fetchone()
    return {} if row is None else dict(json.loads(row[0]))


# ---------------------------------------------------------------- exact equality


def same(a: Any, b: Any) -> bool:
    """Equal values of the same types all the way down (``1 != 1.0``, ``0.0 != -0.0``)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (a == b and math.copysign(1, a) == math.copysign(1, b)) or (a != a and b != b)
    if isinstance(a, EventView):
        return a.name == b.name and a.at == b.at and same(dict(a.props), dict(b.props))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def test_same_tells_types_apart() -> None:
    assert same(1, 1) and not same(1, 1.0) and not same(True, 1) and not same(0.0, -0.0)
    assert same({"a": [1, 2.5]}, {"a": [1, 2.5]}) and not same({"a": [1]}, {"a": [1.0]})


# ---------------------------------------------------------------- generated logs

USERS = ("u1", "u2", "u3", "u4", "w9")  # w9 never has a profile
NAMES = ("x", "y", "order_completed", "product_viewed", "cart_updated", "feedback_submitted")
PROPS = ("p", "q", "amount", "price", "brand", "rating", "at")
# Times near the windows' edges (the 1h … 365d of the segments, 60/180 days since),
# equal times, and events after now, which nothing may count.
EDGES = [0, 1, HOUR - 1, HOUR, HOUR + 1, DAY - 1, DAY, DAY + 1, 10 * DAY, 30 * DAY, 60 * DAY]
EDGES += [60 * DAY + 1, 90 * DAY, 179 * DAY, 180 * DAY, 181 * DAY, 365 * DAY, 366 * DAY]
EDGES += [-1, -HOUR]
ages = st.one_of(st.sampled_from(EDGES), st.integers(-DAY, 400 * DAY))
# Floats whose sum depends on the order they are added in, and equal values of
# different types (which min and max keep the first of).
ORDERED = [1e16, -1e16, 1.0, 0.1, 0.2, 0.3, 2.5, 1, -0.0, 0, 0.0, True]
event_props = st.dictionaries(
    st.sampled_from(PROPS),
    st.one_of(
        prop_values,
        st.sampled_from([5, 49.9, 120, "Rolex", "Seiko", 1, 2, 3]),
        st.sampled_from(ORDERED),
    ),
    max_size=4,
)
profiles = st.dictionaries(
    st.sampled_from((*USERS[:-1], "p7")),  # p7 has a profile and no events
    st.dictionaries(st.sampled_from(["a", "b", "x", "lifecycle"]), prop_values, max_size=3),
    max_size=5,
)


@st.composite
def logs(draw: st.DrawFn, names: Sequence[str] = NAMES) -> list[Row]:
    """Events in log order; seqs rise (with gaps), times do not follow them."""
    one = st.tuples(st.sampled_from(USERS), st.sampled_from(names), ages, event_props)
    raw = draw(st.lists(one, max_size=24))
    seqs = sorted(
        draw(st.lists(st.integers(1, 10**6), min_size=len(raw), max_size=len(raw), unique=True))
    )
    return [(s, u, n, NOW_MS - age, p) for s, (u, n, age, p) in zip(seqs, raw, strict=True)]


# ---------------------------------------------------------------- generated aggregates

FUNCS = ("count", "sum", "avg", "min", "max", "distinct", "top", "last", "first")
# Where clauses SQL cannot take (SQLite's lower(), arithmetic, an event's time), and
# ones that read what differs per user (profile, segments, other aggregates).
OTHER_WHERES = [
    'lower(event.brand) == "rolex"',
    "event.p + 1 > 2",
    "event.at > now - 2d",
    "event.p == a",
    "event.amount > b",
    "segment s1",
    "count(x) > 1",
    'event.p in ["a", 1, true]',
    "event.rating <= 2",
    "exists(event.q) and not event.p",
]


def _agg(
    func: str, event: str, prop: list[str], where: ir.Expr | None, within: int | None
) -> ir.Agg:
    return ir.Agg(
        func=func,  # type: ignore[arg-type]
        event=event,
        prop=[] if func in ("count", "last", "first") else prop,
        where=where,
        within=within,
    )


aggs = st.builds(
    _agg,
    st.sampled_from(FUNCS),
    st.sampled_from(NAMES[:3]),
    st.sampled_from([["p"], ["q"], ["amount"], ["p", "x"], ["at"], ["we ird"]]),
    st.one_of(
        st.none(),
        sql_conditions,
        st.sampled_from(OTHER_WHERES).map(parse_expr),
    ),
    st.one_of(st.none(), st.sampled_from([1, 3600, 3601, 86400, 30 * 86400, 400 * 86400])),
)


def scope_for(db: Db, uid: str, source: Any) -> Scope:
    return Scope(
        now=NOW,
        profile=db.profile(uid),
        aggregates=source,
        segments=lambda name, _: name == "s1" and uid in ("u1", "u3"),
        user_id=uid,
    )


@REUSES_ITS_STORE
@given(logs(NAMES[:3]), profiles, st.lists(aggs, min_size=1, max_size=6), st.booleans(), st.data())
def test_bulk_values_equal_sql_values(
    db: Db,
    log: list[Row],
    profs: dict[str, dict[str, Any]],
    generated: list[ir.Agg],
    dense: bool,
    data: st.DataObject,
) -> None:
    db.load(log, profs)
    users = data.draw(st.lists(st.sampled_from(USERS), unique=True), label="users")
    late = data.draw(st.sampled_from(generated), label="asked for late")
    given_aggs = [a for a in generated if a != late]
    sql = StoreAggregates(db.aggregates())
    bulk = BulkAggregates(db.population(), NOW, users, given_aggs, dense=dense)
    for uid in (*USERS, "p7"):  # users outside the set go per user
        for agg in generated:
            key = agg.model_dump_json()
            want = sql.value(agg, key, scope_for(db, uid, sql))
            got = bulk.value(agg, key, scope_for(db, uid, bulk))
            assert same(got, want), (uid, agg, got, want)


@REUSES_ITS_STORE
@given(logs(["x"]), st.sampled_from(FUNCS), st.sampled_from([["p"], ["amount"]]))
def test_every_function_is_set_based_on_plain_properties(
    db: Db, log: list[Row], func: str, prop: list[str]
) -> None:
    db.load(log, {})
    agg = _agg(func, "x", prop, parse_expr("event.q != 1"), 86400)
    bulk = BulkAggregates(db.population(), NOW, USERS, [agg])
    sql = StoreAggregates(db.aggregates())
    key = agg.model_dump_json()
    for uid in USERS:
        s = Scope(now=NOW, aggregates=bulk, user_id=uid)
        assert same(bulk.value(agg, key, s), sql.value(agg, key, s))
    assert bulk._grouped._columns[key].get is not None  # answered from the grouped scan


@REUSES_ITS_STORE
@given(
    st.lists(
        st.tuples(st.sampled_from(USERS), ages, list_props),
        max_size=12,
    ),
    st.sampled_from(["sum", "avg", "min", "max", "distinct", "top"]),
    item_values,
    st.one_of(st.none(), item_conditions),
    st.one_of(st.none(), st.sampled_from([3600, 86400, 400 * 86400])),
    st.booleans(),
)
def test_item_aggregates_set_based_equal_sql_values(
    db: Db,
    raw: list[tuple[str, int, dict[str, Any]]],
    func: str,
    item: ir.Expr,
    where: ir.Expr | None,
    within: int | None,
    dense: bool,
) -> None:
    """Aggregates over list items, for a set of users at once: the values of
    :class:`StoreAggregates`, and set-based (``top`` aside) when the item value and
    ``where`` have SQL forms."""
    log = [(i + 1, u, "x", NOW_MS - age, p) for i, (u, age, p) in enumerate(raw)]
    db.load(log, {})
    agg = ir.Agg(
        func=func,  # type: ignore[arg-type]
        event="x",
        prop=["products"],
        item=item,
        where=where,
        within=within,
    )
    bulk = BulkAggregates(db.population(), NOW, USERS, [agg], dense=dense)
    sql = StoreAggregates(db.aggregates())
    key = agg.model_dump_json()
    for uid in USERS:
        s = Scope(now=NOW, aggregates=bulk, user_id=uid)
        assert same(bulk.value(agg, key, s), sql.value(agg, key, s)), (uid, agg)


def test_item_aggregates_are_set_based(conn: sqlite3.Connection) -> None:
    products = [{"category": "watches", "price": 10, "quantity": 2}, {"category": "bags"}]
    load(conn, [(1, "u1", "order_completed", NOW_MS - HOUR, {"products": products})], {})
    set_based = [
        "sum(order_completed.products, item.price * item.quantity within 365d)",
        'avg(order_completed.products, item.price where item.category == "watches")',
        "distinct(order_completed.products, item.category)",
        "max(order_completed.products, item.category)",
    ]
    per_user = [
        "top(order_completed.products, item.category)",
        "sum(order_completed.products, item.price where item.category == a)",  # the profile
        "sum(order_completed.products, item.price + 1)",  # no SQL form
    ]
    texts = set_based + per_user
    exprs = [parse_expr(t) for t in texts]
    bulk = BulkAggregates(
        SqlitePopulation(conn), NOW, ["u1"], [e for e in exprs if isinstance(e, ir.Agg)]
    )
    s = Scope(now=NOW, profile={"a": "bags"}, aggregates=bulk, user_id="u1")
    for text, e in zip(texts, exprs, strict=True):
        assert isinstance(e, ir.Agg)
        key = e.model_dump_json()
        assert same(
            bulk.value(e, key, s), StoreAggregates(SqliteAggregates(conn)).value(e, key, s)
        ), text
        assert (bulk._grouped._columns[key].get is not None) == (text in set_based), text
    key = exprs[0].model_dump_json()  # type: ignore[union-attr]
    assert bulk.value(exprs[0], key, s) == 20  # type: ignore[arg-type]


def test_what_goes_per_user(conn: sqlite3.Connection) -> None:
    load(conn, [(1, "u1", "x", NOW_MS - HOUR, {"p": 1, "q": "a"})], {"u1": {"a": 1}})
    set_based = [
        "count(x where event.p == 1)",
        "sum(x.p within 1d)",
        'top(x.q where event.q in ["a", "b"])',
        "last(x where exists(event.p))",
        "count(x where event.p < 2 * 3)",  # no event in it: computed once
    ]
    per_user = [
        "count(x where event.p == a)",  # the profile
        "count(x where segment s1)",
        "count(x where count(y) > 0)",
        'count(x where lower(event.q) == "a")',  # no SQL form
        "count(x where event.at > now - 1d)",  # a timestamp: no SQL form
    ]
    texts = set_based + per_user
    exprs = [parse_expr(t) for t in texts]
    assert all(isinstance(e, ir.Agg) for e in exprs)
    bulk = BulkAggregates(
        SqlitePopulation(conn), NOW, ["u1"], [e for e in exprs if isinstance(e, ir.Agg)]
    )
    s = Scope(now=NOW, profile={"a": 1}, aggregates=bulk, segments=lambda n, _: True, user_id="u1")
    for text, e in zip(texts, exprs, strict=True):
        assert isinstance(e, ir.Agg)
        key = e.model_dump_json()
        want = StoreAggregates(SqliteAggregates(conn)).value(e, key, s)
        assert same(bulk.value(e, key, s), want), text
        assert (bulk._grouped._columns[key].get is not None) == (text in set_based), text


def test_integer_overflow_goes_per_user_for_that_aggregate_only(conn: sqlite3.Connection) -> None:
    big = 2**62
    load(
        conn,
        [(i, "u1", "x", NOW_MS - i, {"v": big}) for i in (1, 2)]
        + [(3, "u2", "x", NOW_MS - 3, {"v": 1.5})],
        {},
    )
    total, count = parse_expr("sum(x.v)"), parse_expr("count(x)")
    assert isinstance(total, ir.Agg) and isinstance(count, ir.Agg)
    bulk = BulkAggregates(SqlitePopulation(conn), NOW, ["u1", "u2"], [total, count])
    sql = StoreAggregates(SqliteAggregates(conn))
    for uid, want in (("u1", 2**63), ("u2", 1.5)):
        s = Scope(now=NOW, aggregates=bulk, user_id=uid)
        got = bulk.value(total, total.model_dump_json(), s)
        assert same(got, want) and same(got, sql.value(total, total.model_dump_json(), s))
        assert bulk.value(count, count.model_dump_json(), s) == (2 if uid == "u1" else 1)
    assert bulk._grouped._columns[total.model_dump_json()].get is None
    assert bulk._grouped._columns[count.model_dump_json()].get is not None


def test_float_sums_keep_the_per_user_order(conn: sqlite3.Connection) -> None:
    """Float addition is not associative: the sum must add in ``(at, seq)`` order."""
    values = [1e16, 1.0, -1e16, 1.0, 0.5, 3.25e-3, 7e15]
    log = [(100 - i, "u1", "x", NOW_MS - (i % 3), {"v": v}) for i, v in enumerate(values)]
    load(conn, log, {})
    agg = parse_expr("sum(x.v)")
    assert isinstance(agg, ir.Agg)
    s = Scope(now=NOW, user_id="u1")
    key = agg.model_dump_json()
    want = StoreAggregates(SqliteAggregates(conn)).value(agg, key, s)
    assert same(BulkAggregates(SqlitePopulation(conn), NOW, ["u1"], [agg]).value(agg, key, s), want)
    assert same(
        BulkAggregates(SqlitePopulation(conn), NOW, ["u1"], [agg], dense=False).value(agg, key, s),
        want,
    )


def test_windows_of_one_event_share_a_scan_and_keep_their_bounds(
    conn: sqlite3.Connection,
) -> None:
    """Each window counts ``now - within < at <= now`` though the scan keeps the rows
    of the widest one."""
    edges = [0, 1, HOUR - 1, HOUR, HOUR + 1, DAY - 1, DAY, DAY + 1, -1]
    load(conn, [(i + 1, "u1", "x", NOW_MS - a, {"v": i}) for i, a in enumerate(edges)], {})
    texts = ["count(x)", "count(x within 1h)", "sum(x.v within 1d)", "min(x.v within 1h)"]
    texts += ["last(x within 1h)", "first(x within 1h)", "top(x.v within 1h)"]
    texts += ["distinct(x.v within 1d)", "max(x.v within 1d)", "first(x within 1d)"]
    found = [a for t in texts if isinstance(a := parse_expr(t), ir.Agg)]
    bulk = BulkAggregates(SqlitePopulation(conn), NOW, ["u1"], found)
    s = Scope(now=NOW, user_id="u1")
    for agg in found:
        key = agg.model_dump_json()
        assert same(
            bulk.value(agg, key, s), StoreAggregates(SqliteAggregates(conn)).value(agg, key, s)
        ), agg
        assert bulk._grouped._columns[key].get is not None


def test_without_the_index_order_order_sensitive_aggregates_go_per_user(
    conn: sqlite3.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = [(10 - i, "u1", "x", NOW_MS - i % 2, {"v": v}) for i, v in enumerate(ORDERED)]
    load(conn, log, {})
    monkeypatch.setattr(SqliteRunner, "in_index_order", lambda self, sql, params: False)
    texts = ["sum(x.v)", "avg(x.v)", "min(x.v)", "max(x.v)", "count(x)", "distinct(x.v)"]
    found = [a for t in texts if isinstance(a := parse_expr(t), ir.Agg)]
    bulk = BulkAggregates(SqlitePopulation(conn), NOW, ["u1"], found)
    s = Scope(now=NOW, user_id="u1")
    for agg in found:
        key = agg.model_dump_json()
        assert same(
            bulk.value(agg, key, s), StoreAggregates(SqliteAggregates(conn)).value(agg, key, s)
        )
        assert (bulk._grouped._columns[key].get is None) == (
            agg.func in ("sum", "avg", "min", "max")
        )


def test_the_grouped_scan_reads_the_user_index_in_order(conn: sqlite3.Connection) -> None:
    load(conn, [(1, "u1", "x", NOW_MS, {"p": 1})], {})
    agg = parse_expr("sum(x.p within 1d) + min(y.p) + distinct(x.p)")
    found = aggregates_in([agg])
    for dense in (True, False):
        bulk = BulkAggregates(SqlitePopulation(conn), NOW, ["u1", "u2"], found, dense=dense)
        bulk.blank("u1")  # loads
        assert all(c.get is not None for c in bulk._grouped._columns.values()), dense


# ---------------------------------------------------------------- population


def direct(
    db: Db,
    segments: Mapping[str, ir.SegmentIR],
    users: Sequence[str],
    names: Sequence[str],
    now_ms: int = NOW_MS,
) -> list[tuple[str, dict[str, bool]]]:
    """Each user on their own, as the engine does: StoreAggregates, the segment resolver
    of ``core`` (every ``segment NAME`` evaluated again, an unknown one false)."""
    preds = {n: compile_predicate(s.expr) for n, s in segments.items()}
    sql = StoreAggregates(db.aggregates())
    now = from_ms(now_ms)
    resolver = segment_resolver(preds)
    out = []
    for uid in users:
        profile = db.profile(uid)
        scope = Scope(now=now, profile=profile, aggregates=sql, segments=resolver, user_id=uid)
        out.append((uid, {n: bool(preds[n](scope)) for n in names}))
    return out


def everyone(conn: sqlite3.Connection) -> list[str]:
    rows = conn.execute("SELECT user_id FROM profiles UNION SELECT user_id FROM events")
    return sorted(r[0] for r in rows)


def _rename_events(e: ir.Expr, names: Sequence[str]) -> ir.Expr:
    """``e`` with each aggregate reading one of ``names`` (generated expressions name
    any event; the log holds a few)."""
    data = e.model_dump(mode="json")

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("k") == "agg":
                node["event"] = names[sum(map(ord, node["event"])) % len(names)]
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(data)
    return ir.SegmentIR.model_validate({"name": "_", "expr": data}).expr


def _acyclic(segments: Mapping[str, ir.SegmentIR]) -> bool:
    def refs(name: str) -> set[str]:
        return {
            x.name
            for x in _all_nodes(segments[name].expr)
            if isinstance(x, ir.Seg) and x.name in segments
        }

    state: dict[str, int] = {}

    def visit(n: str) -> bool:
        if state.get(n) == 1:
            return False
        if state.get(n) == 2:
            return True
        state[n] = 1
        ok = all(visit(r) for r in refs(n))
        state[n] = 2
        return ok

    return all(visit(n) for n in segments)


def _all_nodes(e: ir.Expr) -> Iterator[ir.Expr]:
    yield e
    children: list[ir.Expr] = []
    if isinstance(e, ir.Get):
        children = [e.obj]
    elif isinstance(e, ir.ListE):
        children = list(e.items)
    elif isinstance(e, ir.Op | ir.Call):
        children = list(e.args)
    elif isinstance(e, ir.Agg) and e.where is not None:
        children = [e.where]
    for c in children:
        yield from _all_nodes(c)


@st.composite
def generated_segments(draw: st.DrawFn) -> dict[str, ir.SegmentIR]:
    """Segments from the grammar's condition generator (``tests.strategies``), their
    aggregates pointed at the log's events, and ones built from aggregates above;
    ``segment NAME`` may name one of them, one of the project's, or nothing."""
    out: dict[str, ir.SegmentIR] = {}
    for seg in draw(st.lists(strategies.segments, max_size=3)):
        expr = _rename_events(lower_expr(seg.expr), NAMES)
        try:
            compile_predicate(expr)
        except CompileError:
            continue
        out[seg.name] = ir.SegmentIR(name=seg.name, expr=expr)
    for i, agg in enumerate(draw(st.lists(aggs, max_size=3))):
        op = draw(st.sampled_from([">=", "==", "!=", "<"]))
        if agg.func in ("last", "first"):
            left: ir.Expr = ir.Call(func="days_since", args=[ir.Get(obj=agg, name="at")])
        else:
            left = agg
        right = ir.Lit(value=draw(st.sampled_from([0, 1, 2, 5, 49.9, "Rolex", None])))
        cond: ir.Expr = ir.Op(op=op, args=[left, right])  # type: ignore[arg-type]
        if draw(st.booleans()):
            other = draw(st.sampled_from([*SEGMENTS, "nothing", *out]))
            cond = ir.Op(op=draw(st.sampled_from(["and", "or"])), args=[cond, ir.Seg(name=other)])
        out[f"g{i}"] = ir.SegmentIR(name=f"g{i}", expr=cond)
    return out


@REUSES_ITS_STORE
@given(logs(), profiles, generated_segments(), st.integers(1, 4), st.data())
def test_population_equals_per_user_evaluation(
    db: Db,
    log: list[Row],
    profs: dict[str, dict[str, Any]],
    extra: dict[str, ir.SegmentIR],
    chunk: int,
    data: st.DataObject,
) -> None:
    segments = {**SEGMENTS, **extra}
    assume(_acyclic(segments))
    db.load(log, profs)
    all_users = db.everyone()
    users: list[str] | None = None
    if data.draw(st.booleans(), label="explicit users"):
        users = data.draw(st.lists(st.sampled_from([*USERS, "p7", "nobody"]), unique=True))
    names = sorted(segments)
    if data.draw(st.booleans(), label="some segments"):
        names = data.draw(st.lists(st.sampled_from(sorted(segments)), min_size=1, unique=True))
    got = list(evaluate_population(db.population(), segments, NOW_MS, users, names, chunk=chunk))
    want = direct(db, segments, sorted(set(users)) if users is not None else all_users, names)
    assert got == want


def test_project_segments_on_a_small_shop(db: Db) -> None:
    """The project's segments, on users built to be in each of them."""
    log: list[Row] = []
    seq = iter(range(1, 10_000))

    def add(uid: str, name: str, age: int, **props: Any) -> None:
        log.append((next(seq), uid, name, NOW_MS - age, props))

    for i in range(6):  # hero: big spender, six orders this year
        add("hero", "order_completed", (10 + 30 * i) * DAY, revenue=1000.5)
    add("regular", "order_completed", 100 * DAY, revenue=20)
    add("regular", "order_completed", 5 * DAY, revenue=30.25)
    add("risky", "order_completed", 90 * DAY, revenue=10)
    add("sleepy", "order_completed", 200 * DAY, revenue=10)
    for i in range(6):
        add("browser", "product_viewed", i * HOUR + 1, brand="A", price=10 + i)
    for i in range(4):
        add("intent", "product_viewed", i * 60_000, brand="A" if i % 2 else "B", price=5 * i)
    add("grumpy", "order_completed", 20 * DAY, revenue=99)
    add("grumpy", "feedback_submitted", 2 * DAY, rating=1)
    db.load(log, {"nobody": {"first_name": "N"}})
    got = dict(evaluate_population(db.population(), SEGMENTS, NOW_MS, chunk=3))
    want = dict(direct(db, SEGMENTS, db.everyone(), sorted(SEGMENTS)))
    assert got == want
    members = {n: {u for u, m in got.items() if m[n]} for n in SEGMENTS}
    assert members["hero"] == {"hero"}
    assert members["regular"] == {"regular"}
    assert members["at_risk"] == {"risky"}
    assert members["dormant"] == {"sleepy"}
    assert members["browser"] == {"browser"}
    assert members["purchase_intent"] == {"intent"}
    assert members["brand_fan"] == {"browser", "intent"}
    assert members["unhappy"] == {"grumpy"}
    assert members["new_customer"] == {"browser", "intent", "nobody"}


def test_unknown_segment_names_are_refused(conn: sqlite3.Connection) -> None:
    with pytest.raises(KeyError, match="nope"):
        next(evaluate_population(SqlitePopulation(conn), SEGMENTS, NOW_MS, names=["hero", "nope"]))


def test_profiles_are_read_for_segments_that_use_them(conn: sqlite3.Connection) -> None:
    load(
        conn,
        [(1, "u1", "x", NOW_MS - 1, {}), (2, "u9", "x", NOW_MS - 1, {})],
        {"u1": {"vip": True}, "u2": {"vip": True}, "u3": {}},
    )
    segs = {
        "vip": ir.SegmentIR(name="vip", expr=parse_expr("vip == true")),
        "vip_buyer": ir.SegmentIR(
            name="vip_buyer", expr=parse_expr("segment vip and count(x) > 0")
        ),
    }
    for users in (None, ["u3", "u2", "u1", "u9"]):
        got = dict(evaluate_population(SqlitePopulation(conn), segs, NOW_MS, users))
        assert got == {
            "u1": {"vip": True, "vip_buyer": True},
            "u2": {"vip": True, "vip_buyer": False},
            "u3": {"vip": False, "vip_buyer": False},
            "u9": {"vip": False, "vip_buyer": False},
        }


def test_bulk_answers_other_times_and_users_per_user(conn: sqlite3.Connection) -> None:
    load(conn, [(1, "u1", "x", NOW_MS - DAY, {"p": 1}), (2, "u2", "x", NOW_MS, {"p": 2})], {})
    agg = parse_expr("sum(x.p within 2d)")
    assert isinstance(agg, ir.Agg)
    key = agg.model_dump_json()
    bulk = BulkAggregates(SqlitePopulation(conn), NOW, ["u1"], [agg])
    assert bulk.value(agg, key, Scope(now=NOW, user_id="u1")) == 1
    assert bulk.value(agg, key, Scope(now=NOW, user_id="u2")) == 2  # not in the set
    earlier = Scope(now=NOW - timedelta(days=1, milliseconds=1), user_id="u1")
    assert bulk.value(agg, key, earlier) == 0  # another time
    assert bulk.blank("u1") is False and bulk.blank("u2") is False
    assert (
        BulkAggregates(SqlitePopulation(conn), NOW, [], [agg]).value(agg, key, Scope(now=NOW)) == 0
    )
