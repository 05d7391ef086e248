"""The dialect seam of the SQL compiled from the IR (store/compiled/dialect.py), and
PostgreSQL's dialect (store/postgres/dialect.py).

A dialect that spells SQLite's SQL otherwise (function and column names in capitals,
which SQLite reads alike; ``$name`` parameters) must change every statement the
generators write, per-user and set-based: a JSON access, list scan or SQLite function
written around the seam would keep its lower-case spelling. And the answers must not
depend on the spelling: the aggregate contract of tests/test_aggregates.py runs again
here over that dialect, and generated ``where`` conditions agree with the default's.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from journeyc.compile import ir
from journeyc.engine.aggregates import StoreAggregates, to_ms
from journeyc.engine.bulk import BulkAggregates
from journeyc.engine.expr import AggregateSource, Scope, compile_expr
from journeyc.store.abc import NoExactFormError
from journeyc.store.sqlite.aggregates import SqliteAggregates
from journeyc.store.sqlite.dialect import SqliteDialect
from journeyc.store.sqlite.population import SqlitePopulation
from tests.compiled_stores import PostgresRows

# The contract of the aggregate sources, run again here over the respelled dialect
# (pytest collects imported tests with this module's ``make_source`` fixture).
from tests.test_aggregates import (  # noqa: F401
    FUNCS,
    NOW,
    Factory,
    LoggedEvent,
    conditions,
    ev,
    event_props,
    insert,
    open_db,
    parse_agg,
    profile_values,
    test_aggregates_over_list_items,
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
    value,
)


class Respelled(SqliteDialect):
    """SQLite's SQL, every piece the dialect writes spelled otherwise."""

    def placeholders(self, sql: str) -> str:
        return re.sub(r":([A-Za-z_]\w*)", r"$\1", sql)

    def json_type(self, doc: str, path: str) -> str:
        return f"JSON_TYPE({doc}, {path})"

    def json_value(self, doc: str, path: str) -> str:
        return f"JSON_EXTRACT({doc}, {path})"

    def json_each(self, doc: str, path: str, alias: str) -> str:
        return f"JSON_EACH({doc}, {path}) AS {alias}"

    def item_type(self, alias: str) -> str:
        return f"{alias}.TYPE"

    def item_value(self, alias: str) -> str:
        return f"{alias}.VALUE"

    def item_atom(self, alias: str) -> str:
        return f"{alias}.ATOM"

    def item_key(self, alias: str) -> str:
        return f"{alias}.KEY"

    def contains(self, text: str, part: str) -> str:
        return f"INSTR({text}, {part}) > 0"

    def text_list(self, param: str) -> str:
        return f"SELECT VALUE FROM JSON_EACH({param})"

    def fail(self) -> str:
        return "JSON_EXTRACT('!', '$')"

    def order_key(self, at: str, seq: str) -> str:
        return f"PRINTF('%019d%019d', {at}, {seq})"


RESPELLED = Respelled()

# What only a piece written around the seam could leave in a respelled statement.
AROUND_THE_SEAM = re.compile(
    r"json_(type|extract|each)\(|instr\(|printf\(|\.(type|value|atom|key)\b|:[A-Za-z_]"
)

AGGREGATES = [
    "count(x)",
    "count(x where event.q == 1 and exists(event.r))",
    "sum(x.q where event.q > profile.a within 1d)",
    'avg(x.q where event.c in ["a", "b"] or profile.a in event.tags)',
    'min(x.q where event.c in "abc")',
    "max(x.q where event.q * 2 between 1 and 9)",
    "distinct(x.c)",
    "top(x.c where not event.b)",
    "last(x where any(event.products, item.n > 1))",
    'first(x where all(event.products, item.c != "z"))',
    'sum(x.products, item.n * item.k where item.c == "a")',
    "avg(x.products, item.n)",
    "distinct(x.products, item.c)",
    "top(x.products, item where event.q >= 0)",
]


@pytest.fixture
def make_source(tmp_path: Path) -> Iterator[Factory]:
    conns: list[sqlite3.Connection] = []

    def make(events: Sequence[LoggedEvent]) -> StoreAggregates:
        conn = open_db(tmp_path / f"events{len(conns)}.db")
        conns.append(conn)
        insert(conn, events)
        return StoreAggregates(SqliteAggregates(conn, RESPELLED))

    yield make
    for c in conns:
        c.close()


def test_every_per_user_statement_is_spelled_by_the_dialect(tmp_path: Path) -> None:
    reads = SqliteAggregates(open_db(tmp_path / "e.db"), RESPELLED)
    for text in AGGREGATES:
        query = reads.compile(parse_agg(text))
        assert query.sql is not None, text  # each has a SQL form
        for sql in (query.sql, query.rows_sql):
            assert AROUND_THE_SEAM.search(sql) is None, (text, sql)


@pytest.mark.parametrize("dense", [True, False])
def test_every_set_based_statement_is_spelled_by_the_dialect(tmp_path: Path, dense: bool) -> None:
    conn = open_db(tmp_path / "e.db")
    insert(conn, [ev(1, "x", NOW - timedelta(hours=1), q=1, c="a", products=[{"n": 2}])])
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    aggs = [parse_agg(t) for t in AGGREGATES if "profile." not in t]
    bulk = BulkAggregates(SqlitePopulation(conn, RESPELLED), NOW, ["u1", "u2"], aggs, dense=dense)
    for agg in aggs:
        bulk.value(agg, agg.model_dump_json(), Scope(now=NOW, user_id="u1"))
    grouped = [s for s in statements if "GROUP BY user_id" in s]
    assert len(grouped) >= 2  # the grouped scan, ``top``'s and the item aggregates'
    for sql in grouped:
        assert AROUND_THE_SEAM.search(sql) is None, sql


@given(
    st.lists(st.tuples(st.integers(min_value=0, max_value=5), event_props), max_size=8),
    st.lists(conditions, min_size=1, max_size=3),
    st.dictionaries(st.sampled_from(["a", "b"]), profile_values),
)
def test_the_spelling_changes_no_answer(
    tmp_path_factory: pytest.TempPathFactory,
    rows: list[tuple[int, dict[str, Any]]],
    conds: list[ir.Expr],
    profile: dict[str, Any],
) -> None:
    conn = open_db(tmp_path_factory.mktemp("dialect") / "events.db")
    insert(
        conn, [ev(i + 1, "x", NOW - h * timedelta(hours=1), **p) for i, (h, p) in enumerate(rows)]
    )
    aggs = [
        ir.Agg(func=f, event="x", prop=[] if f in ("count", "last", "first") else ["q"], where=c)
        for c in conds
        for f in FUNCS
    ]

    def answers(src: AggregateSource) -> list[Any]:
        scope = Scope(now=NOW, profile=profile, aggregates=src, user_id="u1")
        return [compile_expr(agg)(scope) for agg in aggs]

    want = answers(StoreAggregates(SqliteAggregates(conn)))
    for src in (
        StoreAggregates(SqliteAggregates(conn, RESPELLED)),
        BulkAggregates(SqlitePopulation(conn, RESPELLED), NOW, ["u1"]),
    ):
        got = answers(src)
        assert got == want and [type(g) for g in got] == [type(w) for w in want], aggs
    conn.close()


# ---------------------------------------------------------------- PostgreSQL's dialect

# What PostgreSQL's dialect takes (a product, ``*``, goes to Python there).
PG_AGGREGATES = [t for t in AGGREGATES if "*" not in t]
PG_EVENTS = [
    ev(1, "x", NOW - timedelta(hours=1), q=1, r=2, c="a", b=False, tags=["a"]),
    ev(2, "x", NOW - timedelta(hours=2), q=2.5, c="abc", products=[{"n": 2, "c": "a", "k": 1}]),
    ev(3, "x", NOW - timedelta(days=2), q=0, c="b", products=[{"n": 3, "c": "z"}, {"n": 1.5}]),
    ev(4, "x", NOW - timedelta(hours=3), q=7, c="a", user="u2"),
]


def test_postgres_answers_every_aggregate_with_its_statement(postgres_url: str) -> None:
    """Each aggregate has a statement in PostgreSQL's dialect, the statement runs
    (``answer`` raises NoExactFormError when it fails on the data: the engine would
    quietly take its Python path), and it gives what the Python path gives."""
    db = PostgresRows(postgres_url)
    try:
        db.load_events(PG_EVENTS)
        reads = db.aggregates()
        sql, py = StoreAggregates(reads), StoreAggregates(reads, sql_where=False)
        profile = {"a": 1}
        for text in PG_AGGREGATES:
            agg = parse_agg(text)
            query = reads.compile(agg)
            assert query.sql is not None, text
            assert re.search(r"(?<![:\w]):[A-Za-z_]", query.sql) is None, query.sql  # no :name
            scope = Scope(now=NOW, profile=profile, user_id="u1")
            outer = [compile_expr(e)(scope) for e in query.outer]
            since = None if agg.within is None else to_ms(NOW) - agg.within * 1000
            query.answer("u1", to_ms(NOW), since, outer)  # runs, or raises
            key = agg.model_dump_json()
            got = sql.value(agg, key, Scope(now=NOW, profile=profile, user_id="u1"))
            want = py.value(agg, key, Scope(now=NOW, profile=profile, user_id="u1"))
            assert got == want and type(got) is type(want), (text, got, want)
    finally:
        db.close()


def test_postgres_evaluates_every_aggregate_for_a_set_of_users(postgres_url: str) -> None:
    """The grouped statements of PostgreSQL's dialect run and answer every aggregate
    without a per-user read (``top`` over list items aside, as on SQLite)."""
    db = PostgresRows(postgres_url)
    try:
        db.load_events(PG_EVENTS)
        aggs = [parse_agg(t) for t in PG_AGGREGATES if "profile." not in t]
        for dense in (True, False):
            bulk = BulkAggregates(db.population(), NOW, ["u1", "u2"], aggs, dense=dense)
            sql = StoreAggregates(db.aggregates())
            for agg in aggs:
                key = agg.model_dump_json()
                for uid in ("u1", "u2"):
                    s = Scope(now=NOW, user_id=uid)
                    got, want = bulk.value(agg, key, s), sql.value(agg, key, s)
                    assert got == want and type(got) is type(want), (agg, uid, got, want)
                set_based = bulk._grouped._columns[key].get is not None  # type: ignore[attr-defined]
                assert set_based == (agg.func != "top" or agg.item is None), agg
    finally:
        db.close()


def test_numbers_no_float_holds_fail_no_statement(postgres_url: str) -> None:
    """jsonb holds any decimal: a sum of integers stays exact in SQL however large;
    one where a float takes part beside a number no float holds (too large, or too
    small: PostgreSQL refuses both casts) goes to the engine's Python path, without a
    failing statement, so the caller's transaction goes on and commits."""
    db = PostgresRows(postgres_url)
    try:
        hour = timedelta(hours=1)
        db.load_events(
            [
                ev(1, "x", NOW - hour, v=10**400),
                ev(2, "x", NOW - hour, v=7),
                ev(3, "t", NOW - hour, v=0),
                ev(4, "t", NOW - hour, v=0.5),
                ev(5, "b", NOW - hour, v=10**400),
                ev(6, "b", NOW - hour, v=0.5),
            ]
        )
        db.conn.execute(
            "UPDATE events SET props = CAST(%s AS jsonb) WHERE seq = 3", ('{"v": 1e-400}',)
        )
        store = db.store
        with store.transaction():
            reads = store.aggregates()
            assert reads.compile(parse_agg("sum(x.v)")).answer("u1", to_ms(NOW), None, []) == (
                10**400 + 7
            )
            with pytest.raises(NoExactFormError):
                reads.compile(parse_agg("sum(t.v)")).answer("u1", to_ms(NOW), None, [])
            src = StoreAggregates(reads)
            assert value(src, "sum(t.v)") == 0.5  # 1e-400 is 0.0 to json.loads
            assert value(src, "avg(t.v)") == 0.25
            bulk = BulkAggregates(store.population(), NOW, ["u1"])
            assert value(bulk, "sum(t.v)") == 0.5
            assert value(bulk, "sum(x.v)") == 10**400 + 7
            with pytest.raises(OverflowError):  # as the Python path says
                value(src, "sum(b.v)")
            store.put_setting("after", "yes")
        assert store.get_setting("after") == "yes"
    finally:
        db.close()
