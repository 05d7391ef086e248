"""The catalog feed's writes (``store.catalog()``) and what events teach the catalog,
read back through the recommendation reads, on every store."""

from __future__ import annotations

from typing import Any

from journeyc.catalog import Product
from journeyc.events import Event
from journeyc.store.abc import Store
from tests.store_contract.calls import T0


def event(mid: str, name: str, props: dict[str, Any]) -> Event:
    return Event(mid, "u1", "track", name, T0, props, T0)


def test_replace_products_writes_whole_products_and_counts_the_new_ids(store: Store) -> None:
    done: list[int] = []
    first = [
        Product(id="w1", name="Diver", brand="Seiko", category="watches", price=120.0, x=1),
        Product(id="w2", name="Field", brand="Casio", category="watches", price=59.9),
        Product(id="b1", name="Tote", category="bags", in_stock=False),
    ]
    assert store.catalog().replace_products(first, T0, chunk=2, progress=done.append) == 3
    assert done == [2, 3]
    reads = store.recommendations()
    assert reads.products(["w1", "w2", "b1", "nope"]) == {
        "w1": {
            "id": "w1",
            "name": "Diver",
            "brand": "Seiko",
            "category": "watches",
            "price": 120,  # a whole price as an int
            "url": None,
            "image": None,
            "x": 1,
        },
        "w2": {
            "id": "w2",
            "name": "Field",
            "brand": "Casio",
            "category": "watches",
            "price": 59.9,
            "url": None,
            "image": None,
        },
    }  # b1 is out of stock
    assert sorted(reads.in_stock("category", "watches")) == ["w1", "w2"]
    assert reads.in_stock("brand", "Seiko") == ["w1"]
    assert reads.in_stock("category", "bags") == []
    # A product given again replaces the whole row (what it leaves out is empty); a
    # later one of the same id wins; only b2 is new.
    again = [
        Product(id="w1", name="Diver II"),
        Product(id="b2", name="Clutch", category="bags"),
        Product(id="b2", name="Clutch 2", category="bags", url="https://x/b2"),
    ]
    assert store.catalog().replace_products(again, T0 + 1) == 1
    got = store.recommendations().products(["w1", "b2"])
    assert got["w1"] == {
        "id": "w1",
        "name": "Diver II",
        "brand": None,
        "category": None,
        "price": None,
        "url": None,
        "image": None,
    }
    assert (got["b2"]["name"], got["b2"]["url"]) == ("Clutch 2", "https://x/b2")
    assert store.recommendations().in_stock("brand", "Seiko") == []


def test_events_teach_what_the_catalog_lacks_and_the_feed_wins(store: Store) -> None:
    store.append_events(
        [
            event("a", "product_viewed", {"product_id": "p1", "brand": "Aster"}),
            event("b", "product_viewed", {"product_id": 7, "category": "misc", "price": 5}),
            event(
                "c",
                "order_completed",
                {"products": [{"product_id": " p2 ", "name": "Two"}, {"product_id": "p1"}]},
            ),
        ]
    )
    reads = store.recommendations()
    got = reads.products(["p1", "7", "p2"])
    assert (got["p1"]["brand"], got["7"]["category"], got["7"]["price"]) == ("Aster", "misc", 5)
    assert (got["p2"]["id"], got["p2"]["name"], got["p1"]["name"]) == ("p2", "Two", None)
    store.catalog().replace_products([Product(id="p1", name="One", in_stock=False)], T0)
    assert sorted(reads.products(["p1", "7", "p2"])) == ["7", "p2"]
    # An event never changes the feed's stock, nor a field the product has.
    viewed = {"product_id": "p1", "name": "Other", "brand": "Birch"}
    store.append_events([event("d", "product_viewed", viewed)])
    assert reads.products(["p1"]) == {}  # still out of stock
    store.catalog().replace_products([Product(id="p1", name="One")], T0 + 1)
    p1 = reads.products(["p1"])["p1"]
    assert (p1["name"], p1["brand"]) == ("One", None)
