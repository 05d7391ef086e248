"""The catalog feed's writes to the ``products`` table (:mod:`journeyc.catalog` reads
and checks the feed): each product replaces the whole row of its id, so the feed's
values and stock win over anything events taught
(:mod:`journeyc.store.sqlite.products`)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any

from journeyc.store.abc import CatalogProduct

__all__ = ["UPSERT", "SqliteCatalog"]

# (PostgreSQL runs the same statement, with its placeholders.)
UPSERT = (
    "INSERT INTO products"
    " (id, name, brand, category, price, url, image, in_stock, extra, updated_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (id) DO UPDATE SET name = excluded.name, brand = excluded.brand,"
    " category = excluded.category, price = excluded.price, url = excluded.url,"
    " image = excluded.image, in_stock = excluded.in_stock, extra = excluded.extra,"
    " updated_at = excluded.updated_at"
)


class SqliteCatalog:
    """The catalog of a store, written in its ``transaction()`` (see
    :class:`~journeyc.store.abc.Catalog`)."""

    def __init__(
        self, transaction: Callable[[], AbstractContextManager[sqlite3.Connection]]
    ) -> None:
        self._transaction = transaction

    def replace_products(
        self,
        products: Sequence[CatalogProduct],
        at_ms: int,
        *,
        chunk: int = 1000,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Write ``products`` in one transaction, ``chunk`` rows per statement, each
        replacing the whole product of its id (a later one of the same id wins);
        ``at_ms`` is their ``updated_at``, ``progress(done)`` told after each chunk.
        How many ids were not in the catalog before."""
        with self._transaction() as conn:
            (before,) = conn.execute("SELECT count(*) FROM products").fetchone()
            for start in range(0, len(products), chunk):
                part = products[start : start + chunk]
                conn.executemany(UPSERT, [_row(p, at_ms) for p in part])
                if progress is not None:
                    progress(start + len(part))
            (after,) = conn.execute("SELECT count(*) FROM products").fetchone()
        return int(after) - int(before)


def _row(p: CatalogProduct, at_ms: int) -> tuple[Any, ...]:
    return (
        p.id,
        p.name,
        p.brand,
        p.category,
        p.price,
        p.url,
        p.image,
        int(p.in_stock),
        json.dumps(p.extra, separators=(",", ":"), ensure_ascii=False),
        at_ms,
    )
