"""The recommendation filters: top_sellers, popular and cross_sell over the example
catalog and hand-made events, their argument errors, the hourly cache, properties that
hold for any events, and the example journeys' messages rendered with them."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from journeyc.catalog import Product, read_catalog, upsert_products
from journeyc.compile import ir
from journeyc.compile.lower import lower_project
from journeyc.engine.values import EventView
from journeyc.events import Event, parse_event, read_events_jsonl
from journeyc.lang.project import load_project
from journeyc.messages.recommend import Recommender
from journeyc.messages.render import RenderContext, Renderer, RenderError
from journeyc.messages.templates import make_environment, template_errors
from journeyc.store.open import open_store
from journeyc.store.postgres import PostgresStore
from journeyc.store.sqlite import Store
from tests.conftest import ROOT
from tests.engine_helpers import TMP_DIR

CATALOG = ROOT / "examples" / "catalog.jsonl"
NOW = datetime(2026, 1, 10, 12, 30, tzinfo=UTC)
WATCHES = ["p-t-401", "p-t-402", "p-t-403", "p-t-404", "p-t-405"]
IN_STOCK_WATCHES = ["p-t-401", "p-t-402", "p-t-403", "p-t-405"]


def ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


class Shop:
    """A store holding the example catalog, and helpers to add events to it."""

    def __init__(self, store: Store | PostgresStore) -> None:
        self.store = store
        self.n = 0
        upsert_products(store, read_catalog(CATALOG).products)

    def _add(self, user: str, name: str, props: dict[str, Any], at: datetime) -> None:
        self.n += 1
        call = {
            "type": "track",
            "userId": user,
            "event": name,
            "messageId": f"m{self.n}",
            "properties": props,
        }
        self.store.append_events([parse_event(call, ms(at))])

    def view(self, pid: str, at: datetime = NOW - timedelta(days=1), user: str = "v") -> None:
        self._add(user, "Product Viewed", {"product_id": pid}, at)

    def order(
        self,
        *lines: str | tuple[str, Any],
        at: datetime = NOW - timedelta(days=1),
        user: str = "buyer",
    ) -> None:
        products = [
            {"product_id": line} if isinstance(line, str) else {"product_id": line[0], **line[1]}
            for line in lines
        ]
        self._add(user, "Order Completed", {"products": products}, at)

    def set_stock(self, pid: str, in_stock: bool) -> None:
        if isinstance(self.store, PostgresStore):
            with self.store.connection() as pg:
                pg.execute("UPDATE products SET in_stock = %s WHERE id = %s", (in_stock, pid))
            return
        with self.store.transaction() as conn:
            conn.execute("UPDATE products SET in_stock = ? WHERE id = ?", (int(in_stock), pid))


@pytest.fixture(params=["sqlite", "postgres"])
def shop(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Shop]:
    """The example catalog in each store (the filters read it through
    ``store.recommendations()``)."""
    if request.param == "sqlite":
        target = str(tmp_path / "journeyc.db")
    else:
        target = request.getfixturevalue("postgres_url")
    with open_store(target) as store:
        yield Shop(store)


def ids(products: list[dict[str, Any]]) -> list[str]:
    return [p["id"] for p in products]


# ---------------------------------------------------------------- top_sellers


def test_top_sellers_ranks_by_units_then_views_then_id_and_fills(shop: Shop) -> None:
    shop.order("p-t-403", ("p-t-402", {"quantity": 2}))
    shop.order("p-t-403")
    shop.order(("p-t-401", {"quantity": 2}))
    shop.view("p-t-401")
    r = Recommender(shop.store.recommendations())
    # 403: 2 units; 401 and 402: 2 units, 401 more viewed; 405 sold nothing and fills.
    assert ids(r.top_sellers("watches", 4, now=NOW)) == ["p-t-401", "p-t-402", "p-t-403", "p-t-405"]
    assert ids(r.top_sellers("watches", 2, now=NOW)) == ["p-t-401", "p-t-402"]


def test_top_sellers_fill_with_unsold_stock_by_views_then_id(shop: Shop) -> None:
    shop.view("p-t-405")
    r = Recommender(shop.store.recommendations())
    assert ids(r.top_sellers("watches", 3, now=NOW)) == ["p-t-405", "p-t-401", "p-t-402"]


def test_top_sellers_never_show_out_of_stock_best_sellers(shop: Shop) -> None:
    shop.order(("p-t-404", {"quantity": 10}))
    products = Recommender(shop.store.recommendations()).top_sellers("watches", 10, now=NOW)
    assert ids(products) == IN_STOCK_WATCHES


def test_top_sellers_count_only_the_window_before_the_hour(shop: Shop) -> None:
    hour = NOW.replace(minute=0)
    shop.order("p-t-405", at=hour - timedelta(days=7))  # the window's first instant
    shop.order("p-t-403", at=hour - timedelta(days=8))  # before the window
    shop.order("p-t-402", at=hour + timedelta(minutes=5))  # this hour: not yet
    r = Recommender(shop.store.recommendations())
    assert ids(r.top_sellers("watches", 1, now=NOW)) == ["p-t-405"]
    assert ids(r.top_sellers("watches", 2, days=10, now=NOW)) == ["p-t-403", "p-t-405"]
    assert ids(r.top_sellers("watches", 1, now=hour + timedelta(hours=1))) == ["p-t-402"]


def test_quantities_and_order_shapes(shop: Shop) -> None:
    shop.order(("p-b-301", {"quantity": 0}), ("p-b-302", {"quantity": "many"}))
    shop.order(("p-b-303", {"quantity": 3}))
    shop._add(
        "buyer",
        "Order Completed",
        {"product_id": "p-b-304", "quantity": 2},
        NOW - timedelta(days=1),
    )
    shop._add(
        "buyer",
        "Order Completed",
        {"products": [{"product_id": "p-b-302"}]},
        NOW - timedelta(days=1),
    )
    r = Recommender(shop.store.recommendations())
    # 303: 3; 304: 2 (an order of its own product); 302: 1 (the bad quantity counts 0).
    assert ids(r.top_sellers("bags", 4, now=NOW)) == ["p-b-303", "p-b-304", "p-b-302", "p-b-301"]


def test_numeric_product_ids_match_the_catalogs_text_ids(shop: Shop) -> None:
    upsert_products(
        shop.store, [Product(id="42", category="misc"), Product(id="7", category="misc")]
    )
    shop._add(
        "buyer", "Order Completed", {"products": [{"product_id": 42}]}, NOW - timedelta(days=1)
    )
    assert ids(Recommender(shop.store.recommendations()).top_sellers("misc", 2, now=NOW)) == [
        "42",
        "7",
    ]


def test_an_unknown_category_gives_nothing(shop: Shop) -> None:
    assert Recommender(shop.store.recommendations()).top_sellers("shoes", 3, now=NOW) == []


def test_products_carry_the_catalog_fields_and_extras(shop: Shop) -> None:
    upsert_products(
        shop.store,
        [
            Product(
                id="x1", name="X", category="misc", price=12.5, extra={"colour": "red", "id": "no"}
            )
        ],
    )
    (p,) = Recommender(shop.store.recommendations()).top_sellers("misc", 1, now=NOW)
    assert p == {
        "id": "x1",
        "name": "X",
        "brand": None,
        "category": "misc",
        "price": 12.5,
        "url": None,
        "image": None,
        "colour": "red",
    }
    (w,) = Recommender(shop.store.recommendations()).top_sellers("watches", 1, now=NOW)
    assert w["price"] == 48000 and isinstance(w["price"], int)


# ---------------------------------------------------------------- popular


def test_popular_weighs_a_unit_bought_as_three_views(shop: Shop) -> None:
    for _ in range(4):
        shop.view("p-t-402")
    shop.order("p-t-403")
    shop.order("p-t-401")
    shop.view("p-t-401")
    r = Recommender(shop.store.recommendations())
    # 401: 1 + 3 = 4 ties 402's 4 views, and wins on units; 403: 3; 405: 0 (not Horloge).
    by_brand = r.popular("Horloge", by="brand", limit=4, now=NOW)
    assert ids(by_brand) == ["p-t-401", "p-t-402", "p-t-403"]
    by_category = r.popular("watches", by="category", limit=5, now=NOW)
    assert ids(by_category) == ["p-t-401", "p-t-402", "p-t-403", "p-t-405"]


def test_popular_defaults_to_three_by_brand_over_seven_days(shop: Shop) -> None:
    shop.view("p-j-503", at=NOW - timedelta(days=8))
    shop.view("p-j-502", at=NOW - timedelta(days=2))
    r = Recommender(shop.store.recommendations())
    assert ids(r.popular("Maison Lune", now=NOW)) == ["p-j-502", "p-j-501", "p-j-503"]
    assert ids(r.popular("Maison Lune", days=10, limit=1, now=NOW)) == ["p-j-502"]


def test_popular_rejects_an_unknown_by(shop: Shop) -> None:
    with pytest.raises(ValueError, match='`by` must be "brand" or "category", not "colour"'):
        Recommender(shop.store.recommendations()).popular("red", by="colour", now=NOW)


# ---------------------------------------------------------------- cross_sell


def test_cross_sell_offers_the_bought_categories_minus_what_was_bought(shop: Shop) -> None:
    shop.order("p-b-301", "p-j-503", user="carla", at=NOW - timedelta(days=200))
    shop.view("p-j-501")
    shop.order("p-b-303")
    r = Recommender(shop.store.recommendations())
    # Bags and jewellery; 303 sold (3), 501 viewed (1), then by id.
    picks = r.cross_sell("carla", 10, now=NOW)
    assert ids(picks) == ["p-b-303", "p-j-501", "p-b-302", "p-b-304", "p-j-502"]
    assert ids(r.cross_sell("carla", 2, now=NOW)) == ["p-b-303", "p-j-501"]


def test_cross_sell_for_someone_who_never_bought_is_empty(shop: Shop) -> None:
    shop.view("p-b-301", user="new")
    assert Recommender(shop.store.recommendations()).cross_sell("new", 3, now=NOW) == []


def test_cross_sell_reads_the_catalogs_category_and_skips_unknown_products(shop: Shop) -> None:
    shop._add(
        "u",
        "Order Completed",
        {"products": [{"product_id": "p-m-201", "category": "watches"}, {"product_id": "zz"}]},
        NOW - timedelta(days=3),
    )
    picks = ids(Recommender(shop.store.recommendations()).cross_sell("u", 5, now=NOW))
    assert picks == ["p-m-202", "p-m-203", "p-m-204"]


def test_cross_sell_never_offers_what_was_bought_earlier_this_hour(shop: Shop) -> None:
    shop.order("p-b-301", user="carla", at=NOW - timedelta(days=30))
    r = Recommender(shop.store.recommendations())
    assert ids(r.cross_sell("carla", 3, now=NOW)) == ["p-b-302", "p-b-303", "p-b-304"]
    shop.order("p-b-302", user="carla", at=NOW + timedelta(minutes=5))
    later = NOW + timedelta(minutes=10)
    assert ids(r.cross_sell("carla", 3, now=later)) == ["p-b-303", "p-b-304"]
    assert r.hits == 1


# ---------------------------------------------------------------- cache


def test_a_purchase_within_the_hour_does_not_change_a_cached_result(shop: Shop) -> None:
    shop.order("p-t-401")
    r = Recommender(shop.store.recommendations())
    first = ids(r.top_sellers("watches", 2, now=NOW))
    assert first == ["p-t-401", "p-t-402"]
    shop.order(("p-t-405", {"quantity": 5}), at=NOW + timedelta(minutes=1))
    assert ids(r.top_sellers("watches", 2, now=NOW + timedelta(minutes=20))) == first
    assert (r.hits, r.misses) == (1, 1)
    next_hour = NOW.replace(minute=0) + timedelta(hours=1)
    assert ids(r.top_sellers("watches", 2, now=next_hour)) == ["p-t-405", "p-t-401"]
    assert r.misses == 2


def test_a_product_out_of_stock_leaves_a_cached_result_at_once(shop: Shop) -> None:
    r = Recommender(shop.store.recommendations())
    assert ids(r.top_sellers("watches", 2, now=NOW)) == ["p-t-401", "p-t-402"]
    shop.set_stock("p-t-401", False)
    assert ids(r.top_sellers("watches", 2, now=NOW)) == ["p-t-402"]
    next_hour = NOW + timedelta(hours=1)
    assert ids(r.top_sellers("watches", 2, now=next_hour)) == ["p-t-402", "p-t-403"]


def test_the_cache_is_bounded(shop: Shop) -> None:
    r = Recommender(shop.store.recommendations(), cache_size=2)
    for category in ("watches", "bags", "jewellery", "watches"):
        r.top_sellers(category, 1, now=NOW)
    assert (r.hits, r.misses) == (0, 4)
    r.top_sellers("watches", 1, now=NOW)
    assert r.hits == 1
    r.clear()
    r.top_sellers("watches", 1, now=NOW)
    assert r.misses == 5


# ---------------------------------------------------------------- through Liquid


def render(shop: Shop | None, source: str, **variables: Any) -> str:
    recommender = Recommender(shop.store.recommendations()) if shop is not None else None
    env = make_environment(recommender)
    variables.setdefault("now", "2026-01-10T12:30:00Z")
    return env.from_string(source).render(**variables)


NAMES = "{% for p in picks %}{{ p.id }} {% endfor %}"


def test_the_contract_forms_render(shop: Shop) -> None:
    shop.order("p-t-405")
    out = render(
        shop,
        "{% assign picks = event.category | top_sellers: 2 %}" + NAMES + "|"
        '{% assign picks = "Horloge" | popular: by: "brand", days: 10, limit: 1 %}' + NAMES + "|"
        "{% assign picks = user | cross_sell: 3 %}" + NAMES + "|"
        "{% assign picks = event.category | top_sellers: limit: 1, days: 1 %}" + NAMES,
        event={"category": "watches"},
        user={"id": "buyer"},
    )
    assert out == "p-t-405 p-t-401 |p-t-401 |p-t-401 p-t-402 p-t-403 |p-t-405 "


def test_null_and_undefined_inputs_give_no_products(shop: Shop) -> None:
    out = render(
        shop,
        "{% assign a = event.category | top_sellers: 3 %}{% assign b = nothing | popular %}"
        '{% assign c = user | cross_sell %}{% assign d = "" | top_sellers %}'
        "{{ a.size }}{{ b.size }}{{ c.size }}{{ d.size }}",
        event=None,
        user={},
    )
    assert out == "0000"


def test_a_user_id_works_as_the_cross_sell_input(shop: Shop) -> None:
    shop.order("p-j-501", user="42")
    assert render(shop, "{% assign picks = 42 | cross_sell: 1 %}" + NAMES) == "p-j-502 "


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (
            "{{ 'watches' | top_sellers: -1 }}",
            "top_sellers: the count must be a whole number from 0 to 100, not -1",
        ),
        (
            "{{ 'watches' | top_sellers: 101 }}",
            "top_sellers: the count must be a whole number from 0 to 100, not 101",
        ),
        (
            "{{ 'watches' | top_sellers: 'three' }}",
            'top_sellers: the count must be a whole number from 0 to 100, not "three"',
        ),
        (
            "{{ 'watches' | top_sellers: 3, days: 0 }}",
            "top_sellers: `days` must be a whole number from 1 to 3650, not 0",
        ),
        (
            "{{ 'watches' | top_sellers: 3, dayz: 10 }}",
            "top_sellers: unknown argument `dayz` (it takes a count, `limit`, `days`)",
        ),
        (
            "{{ 'watches' | top_sellers: 3, 10 }}",
            "top_sellers: takes one count before its named arguments,"
            " like `top_sellers: 3, days: 10`",
        ),
        ("{{ 'watches' | top_sellers: 3, limit: 2 }}", "top_sellers: the count is given twice"),
        (
            "{{ 'x' | popular: by: 'colour' }}",
            'popular: `by` must be "brand" or "category", not "colour"',
        ),
        ("{{ user | popular }}", 'popular: expected a brand name, not {"id": "u1"}'),
        ("{{ 'x' | cross_sell: 3 }}", None),
        (
            "{{ true | cross_sell: 3 }}",
            "cross_sell: expected the user (`user | cross_sell: 3`), not true",
        ),
    ],
)
def test_bad_arguments_are_render_errors_that_say_what_is_wrong(
    shop: Shop, source: str, message: str | None
) -> None:
    renderer = Renderer(recommender=Recommender(shop.store.recommendations()))
    context = RenderContext(
        user_id="u1",
        user={},
        event=None,
        journey_id="j",
        step="s",
        now=NOW,
        values={},
    )
    if message is None:
        assert renderer.render(None, source, "push", context) == {"body": ""}
        return
    with pytest.raises(RenderError) as info:
        renderer.render(None, source, "push", context)
    assert info.value.message == f"inline message, push body: {message}"


def test_without_a_recommender_the_filters_parse_and_return_nothing() -> None:
    assert template_errors("{{ user | cross_sell: 3, days: 10 }}") == []
    assert render(None, "{{ 'watches' | top_sellers: 3 | size }}") == "0"
    with pytest.raises(Exception, match="the count must be"):
        render(None, "{{ 'watches' | top_sellers: -3 }}")


def test_the_filters_need_the_engine_clock(shop: Shop) -> None:
    env = make_environment(Recommender(shop.store.recommendations()))
    with pytest.raises(Exception, match="top_sellers: needs the engine's clock in `now`"):
        env.from_string("{{ 'watches' | top_sellers: 3 }}").render()


# ---------------------------------------------------------------- properties

PRODUCT_IDS = [p.id for p in read_catalog(CATALOG).products]
CATEGORIES = sorted({p.category or "" for p in read_catalog(CATALOG).products})
BRANDS = sorted({p.brand or "" for p in read_catalog(CATALOG).products})
START = NOW - timedelta(days=12)

happenings = st.lists(
    st.tuples(
        st.sampled_from(["view", "order"]),
        st.sampled_from(["u1", "u2", "u3"]),
        st.lists(st.sampled_from(PRODUCT_IDS), min_size=1, max_size=3),
        st.integers(0, 12 * 24 * 60 + 60),  # minutes after START, up to past NOW
        st.integers(1, 3),
    ),
    max_size=25,
)


def events_of(items: list[tuple[str, str, list[str], int, int]]) -> list[Event]:
    out = []
    for i, (kind, user, pids, minutes, quantity) in enumerate(items):
        at = ms(START + timedelta(minutes=minutes))
        if kind == "view":
            name, props = "Product Viewed", {"product_id": pids[0]}
        else:
            lines = [{"product_id": p, "quantity": quantity} for p in pids]
            name, props = "Order Completed", {"products": lines}
        call = {
            "type": "track",
            "userId": user,
            "event": name,
            "messageId": f"m{i}",
            "properties": props,
        }
        out.append(parse_event(call, at))
    return sorted(out, key=lambda e: e.at_ms)


@given(
    items=happenings,
    out_of_stock=st.sets(st.sampled_from(PRODUCT_IDS), max_size=8),
    n=st.integers(0, 8),
    days=st.integers(1, 14),
    minute=st.integers(0, 59),
    category=st.sampled_from(CATEGORIES),
    brand=st.sampled_from(BRANDS),
    user=st.sampled_from(["u1", "u2", "u3"]),
)
def test_property_filters_keep_their_promises(
    items: list[tuple[str, str, list[str], int, int]],
    out_of_stock: set[str],
    n: int,
    days: int,
    minute: int,
    category: str,
    brand: str,
    user: str,
) -> None:
    now = NOW.replace(minute=minute)
    with tempfile.TemporaryDirectory(dir=TMP_DIR) as tmp, Store.open(Path(tmp) / "r.db") as store:
        shop = Shop(store)
        for pid in out_of_stock:
            shop.set_stock(pid, False)
        store.append_events(events_of(items))
        catalog = {p.id: p for p in read_catalog(CATALOG).products}
        in_stock = {pid for pid, p in catalog.items() if p.in_stock and pid not in out_of_stock}
        bought = {
            line["product_id"]
            for e in events_of(items)
            if e.user_id == user and e.name == "order_completed" and e.at_ms <= ms(now)
            for line in e.props["products"]
        }

        def results(r: Recommender) -> list[list[str]]:
            return [
                ids(r.top_sellers(category, n, days=days, now=now)),
                ids(r.popular(brand, by="brand", days=days, limit=n, now=now)),
                ids(r.popular(category, by="category", days=days, limit=n, now=now)),
                ids(r.cross_sell(user, n, days=days, now=now)),
            ]

        r = Recommender(store.recommendations())
        first = results(r)
        assert results(r) == first  # from the cache
        assert results(Recommender(store.recommendations())) == first  # from scratch
    top, by_brand, by_category, cross = first
    for picks in first:
        assert len(picks) <= n and len(set(picks)) == len(picks)
        assert set(picks) <= in_stock
    category_stock = sorted(pid for pid in in_stock if catalog[pid].category == category)
    assert len(top) == min(n, len(category_stock))  # filled with unsold stock
    assert set(top) <= set(category_stock)
    assert all(catalog[pid].brand == brand for pid in by_brand)
    assert len(by_category) == len(top)
    assert not set(cross) & bought
    bought_categories = {catalog[pid].category for pid in bought}
    assert all(catalog[pid].category in bought_categories for pid in cross)


# ---------------------------------------------------------------- the example journeys


@cache
def example_project() -> ir.ProjectIR:
    return lower_project(load_project([ROOT / "journeys"]))


@pytest.fixture
def example_shop(shop: Shop) -> Shop:
    shop.store.append_events(read_events_jsonl(ROOT / "examples" / "events.jsonl", received_ms=0))
    return shop


def send(
    shop: Shop,
    message: str,
    channel: str,
    at: str,
    *,
    user: str,
    event: EventView | None = None,
    **values: Any,
) -> dict[str, str]:
    renderer = Renderer.with_catalog(shop.store.recommendations())
    context = RenderContext(
        user_id=user,
        user=shop.store.get_profile(user),
        event=event,
        journey_id="j",
        step="s",
        now=datetime.fromisoformat(at),
        values=values,
    )
    return renderer.render(example_project().messages[message], None, channel, context)


def test_dan_gets_the_best_sellers_in_watches(example_shop: Shop) -> None:
    viewed = EventView(
        "product_viewed", datetime(2026, 1, 6, 18, 9, tzinfo=UTC), {"category": "watches"}
    )
    push = send(
        example_shop, "best_sellers", "push", "2026-01-06T19:09:00Z", user="u4", event=viewed
    )
    assert push["body"] == "Automatic diver 40mm · Chronograph 42mm · Dress watch 36mm"
    assert push["image"] == "https://cdn.maison.example/img/p-t-401.jpg"
    email = send(
        example_shop, "best_sellers", "email", "2026-01-06T19:09:00Z", user="u4", event=viewed
    )
    assert "Chronograph 42mm" in email["html"] and "Field watch" not in email["html"]


def test_dan_gets_horloges_popular_pieces_never_the_field_watch(example_shop: Shop) -> None:
    push = send(
        example_shop, "brand_picks", "push", "2026-01-06T20:04:00Z", user="u4", brand="Horloge"
    )
    assert push["body"] == "Automatic diver 40mm, Chronograph 42mm, Dress watch 36mm"


def test_carla_gets_a_cross_sell_of_bags_and_jewellery_she_does_not_own(
    example_shop: Shop,
) -> None:
    mail = send(example_shop, "we_miss_you", "email", "2025-12-18T03:00:00Z", user="u3")
    assert mail["text"].startswith("New for you: Card holder https://maison.example/p/p-b-304/")
    assert "Leather tote" not in mail["html"] and "Signet ring" not in mail["html"]
    assert "Pearl pendant" in mail["html"]
