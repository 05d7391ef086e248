"""Aggregates: one contract suite run against every implementation, and a property
test that the SQL translation of ``where`` agrees with filtering in Python."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from journeyc.compile import ir
from journeyc.compile.lower import lower_expr
from journeyc.engine.aggregates import (
    AggregateSource,
    ListAggregates,
    LoggedEvent,
    StoreAggregates,
    from_ms,
    to_ms,
)
from journeyc.engine.eventindex import EventIndex, IndexedAggregates
from journeyc.engine.expr import EventView, Scope, compile_expr
from journeyc.lang import ast
from journeyc.lang.parser import parse_source
from journeyc.store.abc import AggregateReads
from journeyc.store.abc import EventHistory as EventHistoryReads
from journeyc.store.sqlite import StoredEvent
from journeyc.store.sqlite.aggregates import SqliteAggregates
from journeyc.store.sqlite.history import EventHistory
from tests.compiled_stores import PostgresRows, rows_on
from tests.postgres_server import PostgresServer

DDL = """
CREATE TABLE events (
  seq INTEGER PRIMARY KEY, message_id TEXT UNIQUE, user_id TEXT, name TEXT,
  at INTEGER, props TEXT, received_at INTEGER
);
CREATE INDEX events_user_name_at ON events (user_id, name, at);
"""
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def parse_expr(text: str) -> ir.Expr:
    result = parse_source(f"segment s = {text}\n", "t.journey")
    assert result.tree is not None, result.diagnostics
    seg = result.tree.declarations[0]
    assert isinstance(seg, ast.Segment)
    return lower_expr(seg.expr)


def parse_agg(text: str) -> ir.Agg:
    e = parse_expr(text)
    assert isinstance(e, ir.Agg)
    return e


def open_db(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path)
    conn.executescript(DDL)
    return conn


def insert(conn: sqlite3.Connection, events: Sequence[LoggedEvent]) -> None:
    conn.executemany(
        "INSERT INTO events (seq, message_id, user_id, name, at, props, received_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            (e.seq, f"m{e.seq}", e.user_id, e.name, to_ms(e.at), json.dumps(e.props), 0)
            for e in events
        ],
    )


def stored(events: Sequence[LoggedEvent]) -> list[StoredEvent]:
    return [
        StoredEvent(e.seq, f"m{e.seq}", e.user_id, e.name, to_ms(e.at), dict(e.props), 0)
        for e in events
    ]


Factory = Callable[[Sequence[LoggedEvent]], AggregateSource]
# index: every event given to the simulator's index as it is logged; index-history:
# every event in the table before the index starts, read back per user.
# postgres: the SQL in PostgreSQL's dialect, on the session's server.
IMPLEMENTATIONS = ["sql", "sql-python-where", "list", "index", "index-history", "postgres"]


@pytest.fixture(scope="module")
def pg_rows(postgres_server: PostgresServer | str) -> Iterator[PostgresRows]:
    """One PostgreSQL database for the module's tests (each load replaces the rows)."""
    with rows_on(postgres_server) as rows:
        yield rows


@pytest.fixture(params=IMPLEMENTATIONS)
def make_source(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Factory]:
    conns: list[sqlite3.Connection] = []

    def make(events: Sequence[LoggedEvent]) -> AggregateSource:
        if request.param == "list":
            return ListAggregates(events)
        if request.param == "postgres":
            pg: PostgresRows = request.getfixturevalue("pg_rows")
            pg.load_events(events)
            return StoreAggregates(pg.aggregates())
        conn = open_db(tmp_path / f"events{len(conns)}.db")
        conns.append(conn)
        if request.param == "index":
            index = EventIndex(EventHistory(conn), 0)
            index.add(stored(events))
            return IndexedAggregates(index)
        insert(conn, events)
        if request.param == "index-history":
            through = max((e.seq for e in events), default=0)
            return IndexedAggregates(EventIndex(EventHistory(conn), through))
        return StoreAggregates(SqliteAggregates(conn), sql_where=request.param == "sql")

    yield make
    for c in conns:
        c.close()


def ev(seq: int, name: str, at: datetime, user: str = "u1", **props: Any) -> LoggedEvent:
    return LoggedEvent(seq, user, name, at, props)


def value(
    source: AggregateSource, text: str, now: datetime = NOW, profile: dict[str, Any] | None = None
) -> Any:
    s = Scope(now=now, profile=profile or {}, aggregates=source, user_id="u1")
    return compile_expr(parse_expr(text))(s)


# ---------------------------------------------------------------- the contract

ORDERS = [
    ev(1, "order_completed", NOW - 40 * DAY, amount=100, brand="Rolex", coupon=None),
    ev(2, "order_completed", NOW - 10 * DAY, amount=25.5, brand="Seiko"),
    ev(3, "order_completed", NOW - 2 * DAY, amount="12", brand="Rolex"),
    ev(4, "order_completed", NOW - 1 * DAY, amount=True, brand="Casio"),
    ev(5, "order_completed", NOW - 1 * DAY, brand=7, product={"brand": "Omega", "qty": 2}),
    ev(6, "order_completed", NOW + 1 * DAY, amount=1000, brand="Future"),
    ev(7, "order_completed", NOW - 3 * DAY, user="u2", amount=999),
    ev(8, "product_viewed", NOW - 5 * DAY, amount=1),
]


def test_count_window_user_and_name(make_source: Factory) -> None:
    src = make_source(ORDERS)
    assert value(src, "count(order_completed)") == 5  # not u2's, not the future one
    assert value(src, "count(order_completed within 7d)") == 3
    assert value(src, "count(product_viewed)") == 1
    assert value(src, "count(never)") == 0
    assert value(src, "count(order_completed)", now=NOW + 2 * DAY) == 6


def test_window_bounds(make_source: Factory) -> None:
    src = make_source([ev(1, "x", NOW - 7 * DAY), ev(2, "x", NOW), ev(3, "x", NOW + timedelta(1))])
    # at == now counts; at == now - within does not; anything after now does not.
    assert value(src, "count(x within 7d)") == 1
    assert value(src, "count(x within 7d)", now=NOW - timedelta(milliseconds=1)) == 1
    assert value(src, "count(x within 7d)", now=NOW - timedelta(milliseconds=2)) == 1
    assert value(src, "count(x)", now=NOW - 7 * DAY - timedelta(milliseconds=1)) == 0
    assert value(src, "count(x)", now=NOW + timedelta(1)) == 3


def test_sum_and_avg_take_numbers_only(make_source: Factory) -> None:
    src = make_source(ORDERS)
    assert value(src, "sum(order_completed.amount)") == 125.5
    assert value(src, "sum(order_completed.amount within 7d)") == 0
    assert value(src, "sum(order_completed.amount within 20d)") == 25.5
    assert value(src, "avg(order_completed.amount)") == 62.75
    assert value(src, "avg(order_completed.amount within 7d)") is None
    assert value(src, "sum(never.amount)") == 0
    assert value(src, "sum(order_completed.product.qty)") == 2


def test_sum_keeps_integers_whole(make_source: Factory) -> None:
    src = make_source([ev(1, "x", NOW - DAY, n=2), ev(2, "x", NOW - DAY, n=3)])
    got = value(src, "sum(x.n)")
    assert got == 5 and type(got) is int


def test_avg_of_large_integers_is_exact(make_source: Factory) -> None:
    src = make_source(
        [ev(1, "x", NOW - DAY, n=2**53 - 64), ev(2, "x", NOW - DAY, n=257), ev(3, "x", NOW, n=0)]
    )
    assert value(src, "avg(x.n)") == (2**53 - 64 + 257) / 3
    assert value(src, "sum(x.n)") == 2**53 - 64 + 257


def test_min_and_max(make_source: Factory) -> None:
    src = make_source(ORDERS)
    assert value(src, "min(order_completed.amount)") == 25.5
    assert value(src, "max(order_completed.amount)") == "12"  # strings rank above numbers
    assert value(src, "min(order_completed.amount within 20d)") == 25.5
    assert value(src, "min(order_completed.brand)") == 7
    assert value(src, "max(order_completed.brand)") == "Seiko"
    assert value(src, "min(order_completed.coupon)") is None
    assert value(src, "max(never.amount)") is None


def test_distinct(make_source: Factory) -> None:
    src = make_source(ORDERS)
    assert value(src, "distinct(order_completed.brand)") == 4
    mixed = make_source(
        [
            ev(1, "x", NOW - DAY, v=1),
            ev(2, "x", NOW - DAY, v=1.0),
            ev(3, "x", NOW - DAY, v=True),
            ev(4, "x", NOW - DAY, v="1"),
            ev(5, "x", NOW - DAY, v=None),
            ev(6, "x", NOW - DAY, v=[1]),
            ev(7, "x", NOW - DAY, v=False),
            ev(8, "x", NOW - DAY, v=0),
        ]
    )
    assert value(mixed, "distinct(x.v)") == 5  # 1 == 1.0; true, "1", false, 0 apart
    assert value(mixed, "distinct(never.v)") == 0


def test_top_breaks_ties_by_most_recent(make_source: Factory) -> None:
    src = make_source(ORDERS)
    assert value(src, "top(order_completed.brand)") == "Rolex"
    assert value(src, "top(order_completed.brand within 7d)") == 7  # 1 each; seq 5 latest
    tie = make_source(
        [
            ev(1, "v", NOW - 3 * DAY, b="a"),
            ev(2, "v", NOW - 2 * DAY, b="b"),
            ev(3, "v", NOW - 1 * DAY, b="a"),
            ev(4, "v", NOW - 1 * DAY, b="b"),
            ev(5, "v", NOW - 1 * DAY, b=True),
            ev(6, "v", NOW - 4 * DAY, b=True),
        ]
    )
    assert value(tie, "top(v.b)") is True  # three-way tie, true seen last (seq 5)
    assert value(tie, "top(v.b)", now=NOW - 1.5 * DAY) == "b"
    assert value(tie, "top(never.b)") is None


def test_last_and_first(make_source: Factory) -> None:
    src = make_source(ORDERS)
    last = value(src, "last(order_completed)")
    assert isinstance(last, EventView)
    assert last.props["brand"] == 7  # seq 5 beats seq 4 at the same time
    assert last.at == NOW - DAY
    assert value(src, "last(order_completed).brand") == 7
    assert value(src, "last(order_completed).product.brand") == "Omega"
    assert value(src, "first(order_completed).brand") == "Rolex"
    assert value(src, "first(order_completed within 7d).brand") == "Rolex"
    assert value(src, "days_since(last(order_completed).at)") == 1
    assert value(src, "last(never)") is None
    assert value(src, "days_since(last(never).at)") is None


WHERE_CASES = [
    ('count(order_completed where event.brand == "Rolex")', 2),
    ('count(order_completed where event.brand != "Rolex")', 3),
    ("count(order_completed where event.amount > 20)", 2),
    ("count(order_completed where event.amount >= 12)", 2),
    ('count(order_completed where event.amount == "12")', 1),
    ("count(order_completed where event.amount == true)", 1),
    ("count(order_completed where event.amount == 1)", 0),
    ("count(order_completed where event.amount == null)", 1),
    ("count(order_completed where event.coupon == null)", 5),
    ("count(order_completed where exists(event.amount))", 4),
    ("count(order_completed where not event.amount)", 1),
    ("count(order_completed where event.amount)", 4),
    ('count(order_completed where event.brand in ["Rolex", 7])', 3),
    ('count(order_completed where event.brand not in ["Rolex", 7])', 2),
    ('count(order_completed where "ole" in event.brand)', 2),
    ("count(order_completed where event.amount between 20 and 200)", 2),
    ('count(order_completed where event.product.brand == "Omega")', 1),
    ("count(order_completed where event.amount > min_amount)", 1),
    ("count(order_completed where event.amount > missing)", 0),
    ("count(order_completed where event.amount != missing)", 4),
    ("count(order_completed where event.brand == fav)", 2),
    ("count(order_completed where event.amount > 20 or event.brand == 7)", 3),
    ('count(order_completed where event.amount > 20 and event.brand == "Rolex")', 1),
    ('count(order_completed where lower(event.brand) == "rolex")', 2),
    ("count(order_completed where event.at > now - 5d)", 3),
    ("count(order_completed where event.amount + 1 > 26)", 2),
    ('sum(order_completed.amount where event.brand != "Rolex")', 25.5),
    ('avg(order_completed.amount where event.brand == "Rolex")', 100.0),
    ("max(order_completed.amount where event.amount != true)", "12"),
    ("distinct(order_completed.brand where event.amount != null)", 3),
    ('top(order_completed.brand where event.brand != "Rolex")', 7),
    ('last(order_completed where event.brand == "Rolex").amount', "12"),
    ("first(order_completed where event.amount < 50).brand", "Seiko"),
    ("count(order_completed where count(product_viewed) > 0)", 5),
    ("count(order_completed where segment vip)", 5),
]


@pytest.mark.parametrize(("text", "expected"), WHERE_CASES, ids=[c[0] for c in WHERE_CASES])
def test_where(make_source: Factory, text: str, expected: Any) -> None:
    src = make_source(ORDERS)
    s = Scope(
        now=NOW,
        profile={"min_amount": 50, "fav": "Rolex"},
        aggregates=src,
        segments=lambda name, _: name == "vip",
        user_id="u1",
    )
    got = compile_expr(parse_expr(text))(s)
    assert got == expected
    assert type(got) is type(expected)


# ---------------------------------------------------------------- SQL specifics


def test_simple_where_conditions_become_sql(tmp_path: Path) -> None:
    src = StoreAggregates(SqliteAggregates(open_db(tmp_path / "e.db")))
    for text in (
        'count(x where event.brand == "a")',
        "count(x where event.v > limit and event.v != null)",
        'count(x where event.brand in ["a", "b"] or not exists(event.c))',
        'count(x where "a" in event.tags)',
        "sum(x.amount where event.v between 1 and now_value)",
    ):
        sql = src.plan_sql(parse_agg(text))
        assert sql is not None and "json_extract" in sql, text
    for text in (
        'count(x where lower(event.brand) == "a")',  # SQLite's lower() is ASCII-only
        "count(x where event.a == event.b)",  # both may be arrays or objects
        "count(x where event.at > now)",  # the event's time, unless props has `at`
        "count(x where event.v + 1 > 2)",  # SQLite's arithmetic differs
        "sum(x.amount where event.a.b.c == 1) + count(x where event.tags.x in event.t)",
    ):
        agg = parse_expr(text)
        aggs = [agg] if isinstance(agg, ir.Agg) else [a for a in agg.args if isinstance(a, ir.Agg)]
        assert any(src.plan_sql(a) is None for a in aggs), text


def test_parameters_without_a_sql_form_fall_back_to_python(tmp_path: Path) -> None:
    conn = open_db(tmp_path / "e.db")
    insert(
        conn,
        [
            ev(1, "x", NOW - DAY, sent="2026-02-28T00:00:00Z", v=2**62),
            ev(2, "x", NOW - DAY, sent="2026-02-01T00:00:00Z", v=1),
        ],
    )
    src = StoreAggregates(SqliteAggregates(conn))
    text = "count(x where event.sent > since)"
    assert src.plan_sql(parse_agg(text)) is not None
    # A timestamp compared with ISO strings: only Python knows to read them as times.
    assert value(src, text, profile={"since": NOW - 7 * DAY}) == 1
    assert value(src, text, profile={"since": "2026-02-02"}) == 1
    assert value(src, "count(x where event.v < big)", profile={"big": 2**64}) == 2
    assert value(src, "count(x where event.v in vs)", profile={"vs": [1, 2]}) == 1
    assert value(src, "count(x where event.v > 1d)") == 0


def test_integer_overflow_in_sql_falls_back_to_python(tmp_path: Path) -> None:
    conn = open_db(tmp_path / "e.db")
    insert(conn, [ev(1, "x", NOW - DAY, v=2**62), ev(2, "x", NOW - DAY, v=2**62)])
    assert value(StoreAggregates(SqliteAggregates(conn)), "sum(x.v)") == 2**63


def test_ms_conversions_round_trip() -> None:
    t = datetime(2026, 3, 1, 12, 0, 0, 123000, tzinfo=UTC)
    assert from_ms(to_ms(t)) == t
    assert to_ms(datetime(1970, 1, 1, tzinfo=UTC)) == 0
    assert to_ms(datetime(1969, 12, 31, 23, 59, 59, 999500, tzinfo=UTC)) == -1


def test_uses_the_index(tmp_path: Path) -> None:
    conn = open_db(tmp_path / "e.db")
    src = StoreAggregates(SqliteAggregates(conn))
    sql = src.plan_sql(parse_agg('count(x where event.b == "a" within 7d)'))
    assert sql is not None
    plan = " ".join(
        str(r[-1])
        for r in conn.execute(
            "EXPLAIN QUERY PLAN " + sql,
            {"uid": "u", "name": "x", "now": 0, "since": 0, "c0": "$.b", "c1": "a"},
        )
    )
    assert "events_user_name_at" in plan


# ---------------------------------------------------------------- SQL == Python filter

prop_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-3, max_value=3),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.sampled_from([0.0, -0.0, 1.0, 2.5]),
    st.sampled_from(["", "a", "b", "ab", "A", "1", "true", "null", "é", "[]", "{}"]),
    # SQLite's JSON functions cut strings at U+0000; the event validator rejects it.
    st.text(st.characters(exclude_characters="\x00"), max_size=3),
    st.lists(st.sampled_from([None, True, 1, 1.0, "a", "b", ""]), max_size=3),
    st.dictionaries(st.sampled_from(["x", "y"]), st.sampled_from([None, 1, "a"]), max_size=2),
)
PROPS = ["p", "q", "r"]
event_props = st.dictionaries(st.sampled_from(PROPS), prop_values, max_size=3)
literals = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-3, max_value=3),
    st.sampled_from([0.0, 1.0, 2.5, -1.5]),
    st.sampled_from(["", "a", "b", "ab", "1", "true"]),
)
profile_values = st.one_of(
    prop_values,
    st.sampled_from([NOW, DAY, 2**70, "2026-01-01T00:00:00Z"]),
)

event_refs = st.builds(
    ir.EventRef, path=st.one_of(st.sampled_from(PROPS).map(lambda p: [p]), st.just(["p", "x"]))
)
operands = st.one_of(
    event_refs,
    literals.map(lambda v: ir.Lit(value=v)),
    st.sampled_from(["a", "b"]).map(lambda n: ir.Attr(path=[n])),
)


def _cond_leaf() -> st.SearchStrategy[ir.Expr]:
    cmp = st.builds(
        lambda op, a, b: ir.Op(op=op, args=[a, b]),
        st.sampled_from(["==", "!=", "<", "<=", ">", ">=", "in", "not in"]),
        operands,
        st.one_of(operands, st.lists(operands, max_size=3).map(lambda xs: ir.ListE(items=xs))),
    )
    between = st.builds(
        lambda a, b, c: ir.Op(op="between", args=[a, b, c]), operands, operands, operands
    )
    exists = st.builds(lambda a: ir.Call(func="exists", args=[a]), operands)
    return st.one_of(cmp, between, exists, event_refs)


conditions = st.recursive(
    _cond_leaf(),
    lambda c: st.one_of(
        st.builds(lambda a, b: ir.Op(op="and", args=[a, b]), c, c),
        st.builds(lambda a, b: ir.Op(op="or", args=[a, b]), c, c),
        st.builds(lambda a: ir.Op(op="not", args=[a]), c),
    ),
    max_leaves=4,
)


@pytest.fixture(scope="module")
def shared_conn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sqlite3.Connection]:
    conn = open_db(tmp_path_factory.mktemp("agg") / "events.db")
    yield conn
    conn.close()


class SqliteRows:
    """The SQLite side of :class:`tests.compiled_stores.PostgresRows`."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def load_events(self, events: Sequence[LoggedEvent]) -> list[LoggedEvent]:
        self.conn.execute("DELETE FROM events")
        insert(self.conn, events)
        return list(events)

    def aggregates(self) -> AggregateReads:
        return SqliteAggregates(self.conn)

    def history(self) -> EventHistoryReads:
        return EventHistory(self.conn)


@pytest.fixture(params=["sqlite", "postgres"])
def rows_db(
    request: pytest.FixtureRequest, shared_conn: sqlite3.Connection
) -> Iterator[SqliteRows | PostgresRows]:
    """The events of a test, in each SQL store: a SQLite file, a PostgreSQL database."""
    if request.param == "sqlite":
        yield SqliteRows(shared_conn)
        return
    yield request.getfixturevalue("pg_rows")


# The store's rows are replaced by each example: one database serves them all.
REUSES_ITS_STORE = settings(
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)


FUNCS = ["count", "sum", "avg", "min", "max", "distinct", "top", "last", "first"]


@REUSES_ITS_STORE
@given(
    st.lists(st.tuples(st.integers(min_value=0, max_value=5), event_props), max_size=8),
    st.lists(conditions, min_size=1, max_size=4),
    st.dictionaries(st.sampled_from(["a", "b"]), profile_values),
)
def test_sql_where_agrees_with_python_filter(
    rows_db: SqliteRows | PostgresRows,
    rows: list[tuple[int, dict[str, Any]]],
    conds: list[ir.Expr],
    profile: dict[str, Any],
) -> None:
    events = [ev(i + 1, "x", NOW - h * timedelta(hours=1), **p) for i, (h, p) in enumerate(rows)]
    events = rows_db.load_events(events)
    sources = (
        StoreAggregates(rows_db.aggregates()),
        StoreAggregates(rows_db.aggregates(), sql_where=False),
    )
    index = EventIndex(rows_db.history(), 0)
    index.add(stored(list(reversed(events))))  # out of order: the index sorts them
    reference = ListAggregates(events)
    for cond in conds:
        for func in FUNCS:
            prop = [] if func in ("count", "last", "first") else ["q"]
            agg = ir.Agg(func=func, event="x", prop=prop, where=cond)
            got = [
                compile_expr(agg)(Scope(now=NOW, profile=profile, aggregates=src, user_id="u1"))
                for src in (*sources, IndexedAggregates(index), reference)
            ]
            assert got[0] == got[1] == got[2] == got[3], (
                func,
                cond,
                sources[0].plan_sql(agg),
                got,
            )
            assert [type(g) for g in got] == [type(got[3])] * 4


@given(
    st.lists(st.tuples(st.integers(min_value=0, max_value=5), event_props), max_size=8),
    st.lists(conditions, min_size=1, max_size=3),
    st.lists(
        st.tuples(
            st.integers(min_value=-2, max_value=3),
            st.fixed_dictionaries({"a": st.integers(-3, 3), "b": profile_values}),
        ),
        min_size=2,
        max_size=5,
    ),
)
@example(
    rows=[(1, {"q": 0}), (1, {"q": 1}), (2, {"q": 2})],
    conds=[ir.Op(op=">", args=[ir.EventRef(path=["q"]), ir.Attr(path=["a"])])],
    queries=[(0, {"a": 0, "b": None}), (0, {"a": 1, "b": None}), (2, {"a": 1, "b": None})],
)
def test_indexed_counts_agree_as_the_clock_and_the_profile_move(
    shared_conn: sqlite3.Connection,
    rows: list[tuple[int, dict[str, Any]]],
    conds: list[ir.Expr],
    queries: list[tuple[int, dict[str, Any]]],
) -> None:
    """One index answers a windowed count again and again, as the simulator's does,
    while the clock and the profile a `where` may read move between the questions."""
    shared_conn.execute("DELETE FROM events")
    events = [ev(i + 1, "x", NOW - h * timedelta(hours=1), **p) for i, (h, p) in enumerate(rows)]
    index = EventIndex(EventHistory(shared_conn), 0)
    index.add(stored(events))
    indexed, reference = IndexedAggregates(index), ListAggregates(events)
    for cond in conds:
        count = compile_expr(ir.Agg(func="count", event="x", where=cond, within=3 * 3600))
        for hours, profile in queries:
            now = NOW + timedelta(hours=hours)
            got, want = (
                count(Scope(now=now, profile=profile, aggregates=src, user_id="u1"))
                for src in (indexed, reference)
            )
            assert got == want, (cond, hours, profile)


MISSING = object()
TRICKY_PROPS: list[Any] = [
    MISSING,
    None,
    True,
    False,
    0,
    1,
    1.0,
    -0.0,
    2.5,
    -3,
    2**53 + 1,
    "",
    "a",
    "ab",
    "1",
    "true",
    "null",
    "é",
    [],
    [1],
    ["a", None],
    [True],
    {},
    {"x": 1},
]
TRICKY_LITERALS: list[Any] = [None, True, False, 0, 1, 1.0, 2.5, "", "a", "1", "b"]
TRICKY_LISTS: list[list[Any]] = [[], ["a", "b"], [1, 2.5], [1, "a"], [None], [True], ["1"]]


def test_sql_where_agrees_with_python_on_every_tricky_pair(
    rows_db: SqliteRows | PostgresRows,
) -> None:
    """Each event holds one tricky value in ``p`` and the bit ``2**i`` in ``id``, so
    ``sum(x.id where …)`` names exactly the events a condition selects."""
    events = [
        ev(i + 1, "x", NOW - DAY, id=2**i, **({} if v is MISSING else {"p": v, "n": {"p": v}}))
        for i, v in enumerate(TRICKY_PROPS)
    ]
    rows_db.load_events(events)
    sql, py = (
        StoreAggregates(rows_db.aggregates()),
        StoreAggregates(rows_db.aggregates(), sql_where=False),
    )
    p, np_ = ir.EventRef(path=["p"]), ir.EventRef(path=["n", "p"])
    others: list[ir.Expr] = [ir.Lit(value=x) for x in TRICKY_LITERALS]
    others += [ir.ListE(items=[ir.Lit(value=x) for x in xs]) for xs in TRICKY_LISTS]
    others.append(ir.Attr(path=["u"]))  # bound from the profile at evaluation time
    conds: list[ir.Expr] = [p, ir.Call(func="exists", args=[p]), ir.Op(op="not", args=[np_])]
    for op in ("==", "!=", "<", "<=", ">", ">=", "in", "not in"):
        for other in others:
            conds += [ir.Op(op=op, args=[p, other]), ir.Op(op=op, args=[other, np_])]
    conds += [
        ir.Op(op="between", args=[p, ir.Lit(value=lo), ir.Lit(value=hi)])
        for lo, hi in [(0, 1), ("", "b"), (1, "b"), (None, 1)]
    ]
    profiles = [{}, *({"u": v} for v in TRICKY_LITERALS)]
    checked = 0
    for cond in conds:
        agg = ir.Agg(func="sum", event="x", prop=["id"], where=cond)
        key = agg.model_dump_json()
        for profile in profiles:
            s = Scope(now=NOW, profile=profile, user_id="u1")
            got, want = sql.value(agg, key, s), py.value(agg, key, s)
            assert got == want, (cond, profile, sql.plan_sql(agg))
            checked += sql.plan_sql(agg) is not None
    assert checked > len(conds) * len(profiles) * 0.9  # nearly all of them ran as SQL


# ---------------------------------------------------------------- lists of objects

P = "products"
SHOP = [
    ev(
        1,
        "order_completed",
        NOW - 200 * DAY,
        products=[{"category": "watches", "brand": "Horloge", "price": 900, "quantity": 1}],
    ),
    ev(
        2,
        "order_completed",
        NOW - 100 * DAY,
        revenue=350,
        products=[
            {"category": "jewellery", "brand": "Or", "price": 100, "quantity": 2},
            {"category": "jewellery", "brand": "Argent", "price": 150, "quantity": 1},
        ],
    ),
    ev(
        3,
        "order_completed",
        NOW - 10 * DAY,
        products=[
            {"category": "bags", "brand": "Argent", "price": 12.5, "quantity": 2},
            {"category": "jewellery", "brand": "Or", "price": "7", "quantity": 1},
            "not an object",
            {"category": "watches", "brand": "Horloge"},
        ],
    ),
    ev(4, "order_completed", NOW - 5 * DAY, products={"category": "watches"}),  # not a list
    ev(5, "order_completed", NOW - 4 * DAY),
    ev(6, "order_completed", NOW + DAY, products=[{"category": "future", "price": 1}]),
    ev(7, "order_completed", NOW - DAY, user="u2", products=[{"category": "x", "price": 5}]),
]

ITEM_CASES: list[tuple[str, Any]] = [
    ('count(order_completed where any(event.products, item.category == "watches"))', 2),
    (
        'count(order_completed where any(event.products, item.category == "watches") within 180d)',
        1,
    ),
    ('count(order_completed where all(event.products, item.category == "jewellery"))', 1),
    (
        "sum(order_completed.products, item.price * item.quantity"
        ' where item.category == "jewellery" within 365d)',
        350,
    ),
    ("sum(order_completed.products, item.price * item.quantity)", 1275.0),
    ("sum(order_completed.products, 1)", 7),
    ('sum(order_completed.products, 1 where item.brand == "Or")', 2),
    ("avg(order_completed.products, item.price within 180d)", (100 + 150 + 12.5) / 3),
    ("min(order_completed.products, item.price)", 12.5),
    ("max(order_completed.products, item.price)", "7"),
    ("distinct(order_completed.products, item.category within 180d)", 3),
    ("distinct(order_completed.products, item.category)", 3),
    ("top(order_completed.products, item.brand)", "Horloge"),
    ("top(order_completed.products, item.category within 180d)", "jewellery"),
    ("top(order_completed.products, item.brand within 180d)", "Or"),  # later in its list
    ("top(order_completed.nothing, item.brand)", None),
    ("sum(order_completed.products, item.price where event.revenue > 300)", 250),
    ("avg(order_completed.products, item.missing)", None),
]


@pytest.mark.parametrize(("text", "expected"), ITEM_CASES, ids=[c[0] for c in ITEM_CASES])
def test_aggregates_over_list_items(make_source: Factory, text: str, expected: Any) -> None:
    got = value(make_source(SHOP), text)
    assert got == expected
    assert type(got) is type(expected)


def test_item_aggregates_and_any_become_sql(tmp_path: Path) -> None:
    src = StoreAggregates(SqliteAggregates(open_db(tmp_path / "e.db")))
    for text in (
        'count(order_completed where any(event.products, item.category == "watches") within 180d)',
        'count(order_completed where all(event.products, item.price > 10 and item.tags != "x"))',
        'sum(order_completed.products, item.price * item.quantity where item.category == "j")',
        "distinct(order_completed.products, item.category within 180d)",
        "top(order_completed.products, item.brand)",
        "avg(order_completed.products, item.price where event.currency == cur)",
        'sum(order_completed.products, 1 where any(item.tags.all, item == "sale"))',
    ):
        sql = src.plan_sql(parse_agg(text))
        assert sql is not None and "json_each" in sql, text
    for text in (
        "sum(order_completed.products, item.price + 1)",  # `+` joins strings too
        "count(order_completed where any(user.wishlist, item == event.sku))",  # a bound list
    ):
        assert src.plan_sql(parse_agg(text)) is None, text


def test_item_products_that_overflow_in_sql_are_computed_in_python(tmp_path: Path) -> None:
    conn = open_db(tmp_path / "e.db")
    big = [{"price": 2**40, "quantity": 2**30}, {"price": 1e200, "quantity": 1e200}]
    insert(conn, [ev(1, "x", NOW - DAY, products=big), ev(2, "x", NOW - DAY, products=big[:1])])
    src = StoreAggregates(SqliteAggregates(conn))
    assert value(
        src, "sum(x.products, item.price * item.quantity where item.quantity < 1000000000000)"
    ) == (2 * 2**70)
    assert value(src, "max(x.products, item.price * item.quantity)") == float("inf")


item_fields = st.dictionaries(st.sampled_from(["c", "n", "k"]), prop_values, max_size=3)
list_items = st.one_of(
    item_fields,
    item_fields.map(lambda d: {**d, "sub": [dict(d)]}),
    prop_values,  # a list may hold anything: only objects have fields
)
list_props = st.dictionaries(
    st.sampled_from(["products", "p"]),
    st.one_of(st.lists(list_items, max_size=4), prop_values),
    max_size=2,
)
item_refs = st.builds(
    ir.ItemRef, path=st.sampled_from([["c"], ["n"], ["k"], [], ["c", "x"], ["sub"]])
)
item_operands = st.one_of(item_refs, operands)


def _item_cond_leaf() -> st.SearchStrategy[ir.Expr]:
    cmp = st.builds(
        lambda op, a, b: ir.Op(op=op, args=[a, b]),
        st.sampled_from(["==", "!=", "<", ">=", "in", "not in"]),
        item_operands,
        st.one_of(item_operands, st.lists(operands, max_size=3).map(lambda x: ir.ListE(items=x))),
    )
    exists = st.builds(lambda a: ir.Call(func="exists", args=[a]), item_refs)
    return st.one_of(cmp, exists, item_refs)


item_conditions = st.recursive(
    _item_cond_leaf(),
    lambda c: st.one_of(
        st.builds(lambda a, b: ir.Op(op="and", args=[a, b]), c, c),
        st.builds(lambda a: ir.Op(op="not", args=[a]), c),
        st.builds(
            lambda f, a: ir.Each(func=f, items=ir.ItemRef(path=["sub"]), cond=a),
            st.sampled_from(["any", "all"]),
            c,
        ),
    ),
    max_leaves=3,
)
item_values = st.one_of(
    item_refs,
    literals.map(lambda v: ir.Lit(value=v)),
    st.builds(lambda a, b: ir.Op(op="*", args=[a, b]), item_operands, item_operands),
)
each_conditions = st.builds(
    lambda f, path, c: ir.Each(func=f, items=ir.EventRef(path=path), cond=c),
    st.sampled_from(["any", "all"]),
    st.sampled_from([["products"], ["p"], ["products", "x"]]),
    item_conditions,
)


@REUSES_ITS_STORE
@given(
    st.lists(st.tuples(st.integers(min_value=0, max_value=5), list_props), max_size=6),
    st.lists(
        st.tuples(item_values, st.one_of(st.none(), item_conditions), each_conditions),
        min_size=1,
        max_size=3,
    ),
    st.dictionaries(st.sampled_from(["a", "b"]), profile_values),
)
def test_sql_over_list_items_agrees_with_python(
    rows_db: SqliteRows | PostgresRows,
    rows: list[tuple[int, dict[str, Any]]],
    cases: list[tuple[ir.Expr, ir.Expr | None, ir.Expr]],
    profile: dict[str, Any],
) -> None:
    """Item aggregates (``sum(x.products, VALUE where COND)``) and ``any``/``all`` in an
    event's ``where``: the SQL forms, the Python forms and the in-memory lists agree."""
    events = [ev(i + 1, "x", NOW - h * timedelta(hours=1), **p) for i, (h, p) in enumerate(rows)]
    events = rows_db.load_events(events)
    sources = (
        StoreAggregates(rows_db.aggregates()),
        StoreAggregates(rows_db.aggregates(), sql_where=False),
    )
    index = EventIndex(rows_db.history(), 0)
    index.add(stored(events))
    reference = ListAggregates(events)
    for item, where, each in cases:
        aggs = [
            ir.Agg(func=f, event="x", prop=["products"], item=item, where=where)
            for f in ("sum", "avg", "min", "max", "distinct", "top")
        ] + [ir.Agg(func=f, event="x", where=each) for f in ("count", "last")]
        for agg in aggs:
            got = [
                compile_expr(agg)(Scope(now=NOW, profile=profile, aggregates=src, user_id="u1"))
                for src in (*sources, IndexedAggregates(index), reference)
            ]
            assert got[0] == got[1] == got[2] == got[3], (agg, sources[0].plan_sql(agg), got)
            assert [type(g) for g in got] == [type(got[3])] * 4, (agg, got, events)


def test_bare_items_are_true_as_python_says(make_source: Factory) -> None:
    """A list of anything: ``item`` alone is true for a non-empty list or object, a
    non-empty string, a non-zero number and ``true`` (SQL reads JSON text for the
    first two)."""
    mixed = [[], [1], {}, {"a": 1}, "", "a", 0, 2, None, True, False, 0.0]
    src = make_source([ev(1, "x", NOW - DAY, tags=mixed)])
    assert value(src, "sum(x.tags, 1 where item)") == 5
    assert value(src, "count(x where any(event.tags, item == [1]))") == 1
    assert value(src, "count(x where all(event.tags, item or not item))") == 1
