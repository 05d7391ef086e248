"""The recommendation filters' reads (``store.recommendations()``): units and views per
product over a window, the categories a user bought from, what they bought, on every
store. Product ids in the log are text, trimmed (a number names the product of its
digits); an order's lines are the objects of its ``products`` list, or the order
itself without one; a missing quantity is 1, one that is not a positive number 0."""

from __future__ import annotations

import pytest

from journeyc.catalog import Product
from journeyc.events import Event
from journeyc.store.abc import Store
from tests.store_contract.calls import T0, track

HOUR = 3_600_000


@pytest.fixture
def shop(store: Store) -> Store:
    """A store with a small catalog: three watches (one out of stock), two bags."""
    store.catalog().replace_products(
        [
            Product(id="w1", category="watches", brand="Seiko"),
            Product(id="w2", category="watches", brand="Casio"),
            Product(id="w3", category="watches", brand="Seiko", in_stock=False),
            Product(id="b1", category="bags", brand="Aster"),
            Product(id="b2", category="bags", brand="Aster"),
            Product(id="7", category="misc"),
        ],
        T0,
    )
    return store


def order(mid: str, at: int, user: str = "u1", **props: object) -> Event:
    return track(mid, user=user, name="order_completed", at=at, **props)


def test_window_scores_count_units_and_views(shop: Store) -> None:
    shop.append_events(
        [
            order("o1", T0, products=[{"product_id": "w1", "quantity": 2}, {"product_id": "w2"}]),
            order("o2", T0 + 1, products=[{"product_id": " w1 ", "quantity": 0.5}]),
            order("o3", T0 + 2, products=[{"product_id": "w2", "quantity": 0}]),
            order("o4", T0 + 3, products=[{"product_id": "w2", "quantity": -3}]),
            order("o5", T0 + 4, products=[{"product_id": "w2", "quantity": "4"}]),
            order("o6", T0 + 5, products=[{"product_id": "b1", "quantity": None}, "junk"]),
            order("o7", T0 + 6, product_id=7, quantity=3),  # an order without lines
            order("o8", T0 + 7, product_id="b2"),
            order("o9", T0 + 8, products=[{"product_id": ""}, {"quantity": 2}]),
            track("v1", at=T0, product_id="w1"),
            track("v2", at=T0 + 1, product_id="w3"),
            track("v3", at=T0 + 2, product_id=7),
            track("v4", at=T0 + HOUR, product_id="w1"),  # outside [start, end)
            order("o10", T0 - 1, products=[{"product_id": "w1"}]),  # before start
        ]
    )
    scores = shop.recommendations().window_scores(T0, T0 + HOUR)
    assert scores == {
        "w1": (2.5, 1),
        "w2": (1.0, 0),
        "b1": (1.0, 0),
        "7": (3.0, 1),
        "b2": (1.0, 0),
        "w3": (0.0, 1),
    }
    assert all(type(u) is float and type(v) is int for u, v in scores.values())
    assert shop.recommendations().window_scores(T0 + 2 * HOUR, T0 + 3 * HOUR) == {}


def test_cross_sell_candidates_and_bought(shop: Store) -> None:
    shop.append_events(
        [
            order("o1", T0, products=[{"product_id": "w1"}]),
            order("o2", T0 + 10, user="u2", product_id="b1"),
            order("o3", T0 + 20, products=[{"product_id": "nope"}]),  # not in the catalog
        ]
    )
    reads = shop.recommendations()
    # The in-stock products of the categories u1 bought from, but what u1 bought.
    assert reads.cross_sell_candidates("u1", T0 + 1) == ["w2"]
    assert reads.cross_sell_candidates("u1", T0) == []  # before the order
    assert reads.cross_sell_candidates("u2", T0 + 11) == ["b2"]
    assert reads.cross_sell_candidates("nobody", T0 + 100) == []
    assert sorted(reads.bought("u1", T0, T0 + 20)) == ["nope", "w1"]
    assert reads.bought("u1", T0 + 1, T0 + 19) == []
    assert reads.bought("u2", T0, T0 + 10) == ["b1"]  # [start, now], now included
