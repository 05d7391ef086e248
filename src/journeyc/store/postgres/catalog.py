"""The catalog feed's writes to the PostgreSQL store's ``products`` table (as the
SQLite store's, :mod:`journeyc.store.sqlite.catalog`): each product replaces the
whole row of its id, so the feed's values and stock win over anything events taught
(the store learns those as it appends them, with the statement of
:mod:`journeyc.store.sqlite.products`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from psycopg.types.json import Jsonb

from journeyc.store.abc import CatalogProduct
from journeyc.store.postgres.schema import Connections
from journeyc.store.sqlite.catalog import UPSERT

__all__ = ["PostgresCatalog"]

_UPSERT = UPSERT.replace("?", "%s")  # the SQLite store's statement, psycopg's placeholders


class PostgresCatalog:
    """The catalog of ``store``, written in one transaction (see
    :class:`~journeyc.store.abc.Catalog`)."""

    def __init__(self, store: Connections) -> None:
        self._store = store

    def replace_products(
        self,
        products: Sequence[CatalogProduct],
        at_ms: int,
        *,
        chunk: int = 1000,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Write ``products`` in one transaction (the caller's, else one of its own),
        ``chunk`` rows per batch, each replacing the whole product of its id (a later
        one of the same id wins); ``at_ms`` is their ``updated_at``, ``progress(done)``
        told after each chunk. How many ids were not in the catalog before."""
        with self._store.writing() as conn, conn.cursor() as cur:
            before = _count(cur.execute("SELECT count(*) FROM products").fetchone())
            for start in range(0, len(products), chunk):
                part = products[start : start + chunk]
                cur.executemany(_UPSERT, [_row(p, at_ms) for p in part])
                if progress is not None:
                    progress(start + len(part))
            after = _count(cur.execute("SELECT count(*) FROM products").fetchone())
        return after - before


def _count(row: tuple[Any, ...] | None) -> int:
    return 0 if row is None else int(row[0])


def _row(p: CatalogProduct, at_ms: int) -> tuple[Any, ...]:
    return (
        p.id,
        p.name,
        p.brand,
        p.category,
        p.price,
        p.url,
        p.image,
        p.in_stock,
        Jsonb(dict(p.extra)),
        at_ms,
    )
