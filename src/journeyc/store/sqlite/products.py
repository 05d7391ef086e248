"""Products learned from the event log.

As ``product_viewed`` and ``order_completed`` events are appended, the store learns
the products they name (:func:`upsert_from_events`, inside the transaction that
stores the events). Events only add products the table does not know and fill fields
that are empty; they never overwrite a value and never change ``in_stock``. The
catalog feed (:mod:`journeyc.catalog`) is the other writer of ``products``.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from journeyc.store.product_ids import product_id_text

if TYPE_CHECKING:
    from journeyc.events import Event

__all__ = ["LEARN", "PRODUCT_EVENTS", "product_id_text", "product_rows", "upsert_from_events"]

PRODUCT_EVENTS = frozenset({"product_viewed", "order_completed"})
"""The (normalized) event names products are learned from."""


# A learned field only lands where the product has none; the WHERE clause skips the
# write (and the updated_at bump) when there is nothing to fill. (PostgreSQL runs the
# same statement, with its placeholders.)
LEARN = (
    "INSERT INTO products (id, name, brand, category, price, url, image, updated_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (id) DO UPDATE SET"
    " name = coalesce(products.name, excluded.name),"
    " brand = coalesce(products.brand, excluded.brand),"
    " category = coalesce(products.category, excluded.category),"
    " price = coalesce(products.price, excluded.price),"
    " url = coalesce(products.url, excluded.url),"
    " image = coalesce(products.image, excluded.image),"
    " updated_at = excluded.updated_at"
    " WHERE (products.name IS NULL AND excluded.name IS NOT NULL)"
    " OR (products.brand IS NULL AND excluded.brand IS NOT NULL)"
    " OR (products.category IS NULL AND excluded.category IS NOT NULL)"
    " OR (products.price IS NULL AND excluded.price IS NOT NULL)"
    " OR (products.url IS NULL AND excluded.url IS NOT NULL)"
    " OR (products.image IS NULL AND excluded.image IS NOT NULL)"
)


def upsert_from_events(
    conn: sqlite3.Connection, events: Iterable[Event], known: dict[str, int] | None = None
) -> None:
    """Learn the products named by ``product_viewed`` and ``order_completed`` events.

    ``product_viewed`` reads its properties ``product_id``, ``name``, ``brand``,
    ``category``, ``price``, ``url`` and ``image_url``; ``order_completed`` reads
    each object of ``products`` the same way, or, without a ``products`` list, a
    top-level ``product_id``. An unknown product is added (in stock); a known one
    only gets the fields it lacks. A value of the wrong type is ignored.

    Runs on ``conn`` as it is: call it inside the transaction that stores the events.

    ``known`` (for a caller that is the only writer of ``products``, the simulator):
    per product id, a bit per field (name … image) this function wrote non-null; a
    row that would fill no other field changes nothing, and is not sent.
    """
    rows = product_rows(events, known)
    if rows:
        conn.executemany(LEARN, rows)


def product_rows(
    events: Iterable[Event], known: dict[str, int] | None = None
) -> list[tuple[Any, ...]]:
    """The rows :data:`LEARN` writes for ``events`` (see :func:`upsert_from_events`)."""
    # One row per item, in event order: each fills what the product still lacks and
    # stamps updated_at only then, as learning event by event would.
    rows: list[tuple[Any, ...]] = []
    for e in events:
        if e.name == "product_viewed":
            items: list[object] = [e.props]
        elif e.name == "order_completed":
            listed = e.props.get("products")
            items = listed if isinstance(listed, list) else [e.props]
        else:
            continue
        for item in items:
            row = _learned(item, e.received_ms or e.at_ms)
            if row is None:
                continue
            if known is not None:
                mask = sum(1 << i for i, v in enumerate(row[1:7]) if v is not None)
                had = known.get(row[0])
                if had is not None and not mask & ~had:
                    continue
                known[row[0]] = mask | (had or 0)
            rows.append(row)
    return rows


def _learned(item: object, at_ms: int) -> tuple[Any, ...] | None:
    if not isinstance(item, Mapping):
        return None
    pid = product_id_text(item.get("product_id"))
    if not isinstance(pid, str) or not pid:
        return None
    return (
        pid,
        _learned_text(item.get("name")),
        _learned_text(item.get("brand")),
        _learned_text(item.get("category")),
        _learned_price(item.get("price")),
        _learned_text(item.get("url")),
        _learned_text(item.get("image_url")),
        at_ms,
    )


def _learned_price(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    price = float(value)
    return price if math.isfinite(price) and price >= 0 else None


def _learned_text(value: object) -> str | None:
    return value.strip() or None if isinstance(value, str) else None
