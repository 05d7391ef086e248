"""The product catalog: reading feeds (JSON lines, CSV) with their bad rows, upserting
them, learning products from events without overwriting the feed, and `journeyc
catalog load`."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from hypothesis import given
from hypothesis import strategies as st

from journeyc.catalog import (
    Product,
    feed_format,
    read_catalog,
    upsert_products,
)
from journeyc.cli import main
from journeyc.events import Event, parse_event
from journeyc.store.sqlite import Store
from journeyc.store.sqlite.products import upsert_from_events
from tests.conftest import ROOT
from tests.engine_helpers import TMP_DIR

CATALOG = ROOT / "examples" / "catalog.jsonl"
T0 = 1_767_600_000_000  # 2026-01-05T08:00:00Z


def track(mid: str, name: str, props: dict[str, Any], user: str = "u1", at: int = T0) -> Event:
    return parse_event(
        {"type": "track", "userId": user, "event": name, "messageId": mid, "properties": props},
        at,
    )


def viewed(mid: str, pid: object, **props: Any) -> Event:
    return track(mid, "Product Viewed", {"product_id": pid, **props})


def products(conn: sqlite3.Connection) -> dict[str, dict[str, Any]]:
    cols = ("id", "name", "brand", "category", "price", "url", "image", "in_stock", "extra")
    rows = conn.execute(f"SELECT {', '.join(cols)} FROM products ORDER BY id").fetchall()
    return {r[0]: dict(zip(cols, r, strict=True)) for r in rows}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "journeyc.db") as s:
        yield s


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------- reading


def test_the_example_catalog_reads_whole() -> None:
    read = read_catalog(CATALOG)
    assert read.problems == [] and read.rows == 20 and len(read.products) == 20
    by_id = {p.id: p for p in read.products}
    assert by_id["p-t-401"].price == 48000 and by_id["p-t-401"].brand == "Horloge"
    assert {p.id for p in read.products if not p.in_stock} == {"p-w-104", "p-t-404"}


def test_jsonl_bad_rows_are_named_by_line_and_field_and_good_rows_kept(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "feed.jsonl",
        "\n".join(
            [
                json.dumps({"id": "a", "name": "A", "price": 10, "colour": "red"}),
                json.dumps({"name": "no id"}),
                json.dumps({"id": "b", "price": "cheap"}),
                "",
                json.dumps({"id": "c", "price": -1, "in_stock": "maybe"}),
                "{not json",
                "[1, 2]",
                json.dumps({"id": 42, "price": "19.5", "in_stock": "no"}),
                json.dumps({"id": "  ", "name": 7}),
            ]
        )
        + "\n",
    )
    read = read_catalog(path)
    assert [str(p) for p in read.problems] == [
        f"{path}:2: $.id: is required",
        f"{path}:3: $.price: expected a number",
        f"{path}:5: $.price: must not be negative",
        f"{path}:5: $.in_stock: expected true or false",
        f"{path}:6: $: not valid JSON (Expecting property name enclosed in double quotes"
        " at column 2)",
        f"{path}:7: $: expected an object",
        f"{path}:9: $.id: must not be empty",
        f"{path}:9: $.name: expected a string",
    ]
    assert read.rows == 8 and read.refused == 6
    a, n42 = read.products
    assert a == Product(id="a", name="A", price=10, extra={"colour": "red"})
    assert (n42.id, n42.price, n42.in_stock) == ("42", 19.5, False)


def test_csv_reads_header_empty_cells_quotes_and_extra_columns(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "feed.csv",
        "\ufeffid,name,brand,category,price,in_stock,colour\n"
        'p1,"Shirt, oxford",Sarto,menswear,2900,true,blue\n'
        "p2,Polo,,menswear,,0,\n"
        "\n"
        "p3,Bad,x,y,abc,maybe,\n"
        ",No id,x,y,1,,\n"
        "p4,Too,many,cells,1,1,x,extra\n",
    )
    read = read_catalog(path)
    assert [str(p) for p in read.problems] == [
        f"{path}:5: $.price: expected a number",
        f"{path}:5: $.in_stock: expected true or false",
        f"{path}:6: $.id: is required",
        f"{path}:7: $: 8 cells, the header has 7",
    ]
    p1, p2 = read.products
    assert p1 == Product(
        id="p1",
        name="Shirt, oxford",
        brand="Sarto",
        category="menswear",
        price=2900,
        extra={"colour": "blue"},
    )
    assert p2 == Product(id="p2", name="Polo", category="menswear", in_stock=False)
    assert read.rows == 5 and read.refused == 3


def test_csv_without_an_id_column_refuses_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "feed.csv", "sku,name\np1,Shirt\n")
    read = read_catalog(path)
    assert read.products == []
    assert [str(p) for p in read.problems] == [f"{path}:1: $: the header has no `id` column"]


def test_a_multi_line_csv_row_is_named_by_its_first_line(tmp_path: Path) -> None:
    path = write(tmp_path, "feed.csv", 'id,name,price\np1,"Two\nlines",1\np2,x,bad\n')
    read = read_catalog(path)
    assert read.products[0].name == "Two\nlines"
    assert [str(p) for p in read.problems] == [f"{path}:4: $.price: expected a number"]


def test_not_utf8_is_a_row_problem(tmp_path: Path) -> None:
    path = tmp_path / "feed.jsonl"
    path.write_bytes(b'{"id": "a"}\n{"id": "\xff"}\n')
    read = read_catalog(path)
    assert [p.id for p in read.products] == ["a"]
    assert read.problems[0].line == 2 and "not UTF-8" in read.problems[0].message


def test_format_comes_from_the_name_unless_given(tmp_path: Path) -> None:
    assert feed_format("x.csv") == "csv" and feed_format("X.CSV") == "csv"
    assert feed_format("x.jsonl") == "jsonl" and feed_format("x.txt") == "jsonl"
    path = write(tmp_path, "feed.txt", "id,name\np1,Shirt\n")
    assert [p.name for p in read_catalog(path, "csv").products] == ["Shirt"]


def test_an_unreadable_file_raises_oserror(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        read_catalog(tmp_path / "missing.jsonl")


# ---------------------------------------------------------------- upserting


def test_upsert_inserts_then_replaces_whole_products(store: Store) -> None:
    first = upsert_products(store, read_catalog(CATALOG).products, at_ms=1)
    assert (first.new, first.updated) == (20, 0)
    again = upsert_products(
        store,
        [
            Product(id="p-t-401", name="Diver", category="watches", in_stock=False),
            Product(id="p-new", name="New", extra={"season": "SS26"}),
            Product(id="p-new", name="Newer"),  # the last row of an id wins
        ],
        at_ms=2,
    )
    assert (again.new, again.updated) == (1, 1)
    rows = products(store.conn)
    assert rows["p-t-401"] == {
        "id": "p-t-401",
        "name": "Diver",
        "brand": None,  # left out of the row: the feed says there is none
        "category": "watches",
        "price": None,
        "url": None,
        "image": None,
        "in_stock": 0,
        "extra": "{}",
    }
    assert rows["p-new"]["name"] == "Newer"
    assert len(rows) == 21


# ---------------------------------------------------------------- learning from events


def test_events_add_unknown_products_in_stock(store: Store) -> None:
    store.append_events(
        [
            viewed(
                "m1",
                "p1",
                name="Silk dress",
                brand="Belle Rive",
                category="womenswear",
                price=5900,
                url="https://x/p1",
                image_url="https://x/p1.jpg",
            ),
            track(
                "m2",
                "Order Completed",
                {
                    "order_id": "o1",
                    "products": [
                        {"product_id": "p2", "name": "Skirt", "price": 3200, "quantity": 2},
                        {"product_id": 77, "name": "Numbered"},
                        {"name": "no id"},
                        "not an object",
                    ],
                },
            ),
            track("m3", "Order Completed", {"product_id": "p3", "name": "Single"}),
            track("m4", "Cart Abandoned", {"product_id": "p4", "product_name": "Not learned"}),
        ]
    )
    rows = products(store.conn)
    assert set(rows) == {"p1", "p2", "77", "p3"}
    assert rows["p1"] == {
        "id": "p1",
        "name": "Silk dress",
        "brand": "Belle Rive",
        "category": "womenswear",
        "price": 5900.0,
        "url": "https://x/p1",
        "image": "https://x/p1.jpg",
        "in_stock": 1,
        "extra": "{}",
    }
    assert (rows["p2"]["name"], rows["p2"]["price"]) == ("Skirt", 3200.0)
    assert rows["77"]["name"] == "Numbered" and rows["p3"]["name"] == "Single"


def test_events_never_overwrite_the_feed_nor_its_stock(store: Store) -> None:
    upsert_products(store, read_catalog(CATALOG).products)
    before = products(store.conn)
    store.append_events(
        [
            viewed("m1", "p-t-404", name="Renamed", price=1, url="https://elsewhere/404"),
            track("m2", "Order Completed", {"products": [{"product_id": "p-t-401", "price": 2}]}),
        ]
    )
    assert products(store.conn) == before
    assert before["p-t-404"]["in_stock"] == 0


def test_events_fill_the_fields_the_feed_left_empty(store: Store) -> None:
    upsert_products(store, [Product(id="p1", name="From the feed", in_stock=False)])
    store.append_events(
        [viewed("m1", "p1", name="From an event", brand="Sarto", image_url="https://x/1.jpg")]
    )
    row = products(store.conn)["p1"]
    assert (row["name"], row["brand"], row["image"], row["in_stock"]) == (
        "From the feed",
        "Sarto",
        "https://x/1.jpg",
        0,
    )


def test_within_a_batch_the_first_value_of_each_field_wins(store: Store) -> None:
    store.append_events(
        [viewed("m1", "p1", name="First"), viewed("m2", "p1", name="Second", brand="B")]
    )
    row = products(store.conn)["p1"]
    assert (row["name"], row["brand"]) == ("First", "B")


def test_values_of_the_wrong_type_are_ignored(store: Store) -> None:
    store.append_events(
        [viewed("m1", "p1", name=5, brand="  ", price="cheap", category="bags"), viewed("m2", True)]
    )
    rows = products(store.conn)
    assert set(rows) == {"p1"}
    assert (rows["p1"]["name"], rows["p1"]["brand"], rows["p1"]["price"]) == (None, None, None)
    assert rows["p1"]["category"] == "bags"


def test_a_duplicate_event_teaches_nothing(store: Store) -> None:
    event = viewed("m1", "p1", name="Dress")
    store.append_events([event])
    with store.transaction() as conn:
        conn.execute("UPDATE products SET name = NULL")
    assert store.append_events([event]) == [None]
    assert products(store.conn)["p1"]["name"] is None


def test_identify_traits_are_not_products(store: Store) -> None:
    store.append_events(
        [parse_event({"type": "identify", "userId": "u1", "traits": {"product_id": "p1"}}, T0)]
    )
    assert products(store.conn) == {}


def test_upsert_from_events_skips_other_events_quickly(store: Store) -> None:
    with store.transaction() as conn:
        upsert_from_events(conn, [track("m1", "Signed Up", {"product_id": "p1"})])
    assert products(store.conn) == {}


texts = st.none() | st.text(alphabet="abcXYZ ", max_size=4)
feed_products = st.builds(
    Product,
    id=st.sampled_from(["p1", "p2", "p3"]),
    name=texts,
    brand=texts,
    price=st.none() | st.integers(0, 100).map(float),
    in_stock=st.booleans(),
)
event_items = st.fixed_dictionaries(
    {"product_id": st.sampled_from(["p1", "p2", "p3", "p4"])},
    optional={
        "name": texts,
        "brand": texts,
        "category": texts,
        "price": st.integers(-5, 100) | st.text(max_size=2),
        "url": texts,
        "image_url": texts,
    },
)


@given(
    feed=st.lists(feed_products, max_size=4),
    items=st.lists(st.tuples(st.booleans(), event_items), max_size=8),
)
def test_property_events_only_add_or_fill(
    feed: list[Product], items: list[tuple[bool, dict[str, Any]]]
) -> None:
    with tempfile.TemporaryDirectory(dir=TMP_DIR) as tmp, Store.open(Path(tmp) / "c.db") as s:
        upsert_products(s, feed)
        before = products(s.conn)
        events = [
            track(f"m{i}", "Product Viewed", item)
            if as_view
            else track(f"m{i}", "Order Completed", {"products": [item]})
            for i, (as_view, item) in enumerate(items)
        ]
        s.append_events(events)
        after = products(s.conn)
    named = {item["product_id"] for _, item in items}
    assert set(after) == set(before) | named
    for pid, row in before.items():
        for field, value in row.items():
            if value is not None:
                assert after[pid][field] == value, (pid, field)


# ---------------------------------------------------------------- journeyc catalog load


def run(*args: str) -> Result:
    return CliRunner().invoke(main, ["catalog", "load", *args])


def test_cli_loads_the_example_catalog(tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    result = run(str(CATALOG), "--db", str(db))
    assert result.exit_code == 0, result.output
    assert "20 row(s) read" in result.stdout and "20 loaded (20 new, 0 updated)" in result.stdout
    again = run(str(CATALOG), "--db", str(db))
    assert "(0 new, 20 updated)" in again.stdout
    with Store.open(db) as s:
        assert len(products(s.conn)) == 20


def test_cli_reports_bad_rows_loads_the_rest_and_exits_1(tmp_path: Path) -> None:
    feed = write(tmp_path, "feed.csv", "id,name,price\np1,Shirt,10\n,No id,1\np3,Bad,abc\n")
    db = tmp_path / "store.db"
    result = run(str(feed), "--db", str(db))
    assert result.exit_code == 1
    assert f"{feed}:3: $.id: is required" in result.stderr
    assert f"{feed}:4: $.price: expected a number" in result.stderr
    assert "1 loaded (1 new, 0 updated), 2 refused" in result.stdout
    with Store.open(db) as s:
        assert set(products(s.conn)) == {"p1"}


def test_cli_json_summary(tmp_path: Path) -> None:
    feed = write(tmp_path, "feed.txt", "id,name,price\np1,Shirt,10\np2,Bad,abc\n")
    db = tmp_path / "store.db"
    result = run(str(feed), "--db", str(db), "--format", "csv", "--json")
    assert result.exit_code == 1
    summary = json.loads(result.stdout)
    assert summary == {
        "file": str(feed),
        "store": str(db),
        "rows": 2,
        "loaded": 1,
        "new": 1,
        "updated": 0,
        "refused": 1,
        "problems": [
            {"file": str(feed), "line": 3, "field": "$.price", "message": "expected a number"}
        ],
    }


def test_cli_usage_errors_exit_2(tmp_path: Path) -> None:
    missing = run(str(tmp_path / "nope.jsonl"), "--db", str(tmp_path / "s.db"))
    assert missing.exit_code == 2 and "no such file" in missing.stderr
    bad_format = run(str(CATALOG), "--format", "xml")
    assert bad_format.exit_code == 2
    assert CliRunner().invoke(main, ["catalog", "unload"]).exit_code == 2


def test_cli_store_that_is_not_a_store_exits_1(tmp_path: Path) -> None:
    db = write(tmp_path, "store.db", "not sqlite at all" * 100)
    result = run(str(CATALOG), "--db", str(db))
    assert result.exit_code == 1 and "journeyc:" in result.stderr


# ---------------------------------------------------------------- journeyc simulate --catalog


def simulate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "journeyc", "simulate", "journeys", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )


@pytest.mark.e2e
def test_simulate_with_the_catalog_renders_the_recommendations() -> None:
    proc = simulate(
        "--events", "examples/events.jsonl", "--catalog", "examples/catalog.jsonl", "--json"
    )
    assert proc.returncode == 0, proc.stderr
    actions = [json.loads(line) for line in proc.stdout.splitlines()]
    assert not [a for a in actions if a.get("reason") == "render_error"]
    sends = {(a["user"], a["message"]): a["content"] for a in actions if a["action"] == "send"}
    best = sends[("u4", "best_sellers")]["body"]
    assert best == "Automatic diver 40mm · Chronograph 42mm · Dress watch 36mm"
    assert "Field watch" not in sends[("u4", "brand_picks")]["body"]
    assert sends[("u3", "we_miss_you")]["text"].startswith("New for you: Card holder")


@pytest.mark.e2e
def test_simulate_refuses_a_bad_catalog_before_anything_runs(tmp_path: Path) -> None:
    feed = write(tmp_path, "catalog.csv", "id,name,price\np1,Shirt,10\np2,Bad,abc\n")
    proc = simulate("--events", "examples/events.jsonl", "--catalog", str(feed), "--json")
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert "nothing was simulated" in proc.stderr
    assert f"{feed}:3: $.price: expected a number" in proc.stderr


@pytest.mark.e2e
def test_simulate_with_a_missing_catalog_is_a_usage_error(tmp_path: Path) -> None:
    proc = simulate("--events", "examples/events.jsonl", "--catalog", str(tmp_path / "no.jsonl"))
    assert proc.returncode == 2
    assert "--catalog: no such file" in proc.stderr
