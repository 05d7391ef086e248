"""The reads of the recommendation filters (``top_sellers``, ``popular``,
``cross_sell``; :mod:`journeyc.messages.recommend` ranks and caches): the ``products``
table (the catalog) and the event log (``product_viewed`` and ``order_completed``),
with SQL over the ``events (name, at)`` and ``events (user_id, name, at)`` indexes.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

__all__ = ["PRODUCT_COLUMNS", "SqliteRecommendations", "product_of"]

PRODUCT_COLUMNS = ("id", "name", "brand", "category", "price", "url", "image")
"""The catalog's columns a product dict has (its extra fields come after them)."""


def _pid(json_value: str) -> str:
    # Catalog ids are text; some pipelines send numbers, which name the same product
    # as their digits (as in journeyc.catalog).
    return f"trim(CAST({json_value} AS TEXT))"


_ITEM_PID = _pid("json_extract(j.value, '$.product_id')")
_ORDER_PID = _pid("json_extract(e.props, '$.product_id')")
_VIEW_PID = _pid("json_extract(props, '$.product_id')")


def _order_lines(where: str) -> str:
    """(product id, quantity as sent) of every line of the ``order_completed`` events
    matching ``where``: each object of ``products``, or, for an order without a
    ``products`` list, the order itself (its ``product_id`` and ``quantity``)."""
    return (
        f"SELECT {_ITEM_PID} AS pid,"
        " json_extract(j.value, '$.quantity') AS q"
        " FROM events AS e, json_each(e.props, '$.products') AS j"
        f" WHERE e.name = 'order_completed' AND {where}"
        " AND json_type(e.props, '$.products') = 'array' AND j.type = 'object'"
        " UNION ALL"
        f" SELECT {_ORDER_PID},"
        " json_extract(e.props, '$.quantity')"
        " FROM events AS e"
        f" WHERE e.name = 'order_completed' AND {where}"
        " AND json_type(e.props, '$.products') IS NOT 'array'"
    )


# Units bought and views per product over [:start, :end), in one pass over the
# window's events. A missing quantity is 1, a positive number counts as given,
# anything else (0, negative, text) as nothing.
_WINDOW = (
    "SELECT pid, sum(units), sum(views) FROM ("
    " SELECT pid, CASE WHEN q IS NULL THEN 1"
    " WHEN typeof(q) IN ('integer', 'real') AND q > 0 THEN q ELSE 0 END AS units, 0 AS views"
    f" FROM ({_order_lines('e.at >= :start AND e.at < :end')})"
    f" UNION ALL SELECT {_VIEW_PID}, 0, 1 FROM events"
    " WHERE name = 'product_viewed' AND at >= :start AND at < :end"
    ") WHERE pid IS NOT NULL AND pid != '' GROUP BY pid"
)
_IN_STOCK = {
    by: f"SELECT id FROM products WHERE in_stock = 1 AND {by} = ?" for by in ("brand", "category")
}
_BOUGHT = "SELECT DISTINCT pid FROM ({lines}) WHERE pid IS NOT NULL"
_BOUGHT_BEFORE = _BOUGHT.format(lines=_order_lines("e.user_id = :user AND e.at < :end"))
_BOUGHT_SINCE = _BOUGHT.format(
    lines=_order_lines("e.user_id = :user AND e.at >= :start AND e.at <= :now")
)
_CROSS_SELL_CANDIDATES = (
    f"WITH bought AS ({_BOUGHT_BEFORE})"
    " SELECT id FROM products WHERE in_stock = 1"
    " AND category IN (SELECT category FROM products WHERE id IN (SELECT pid FROM bought))"
    " AND id NOT IN (SELECT pid FROM bought)"
)


class SqliteRecommendations:
    """The recommendation filters' reads over ``conn`` (see
    :class:`~journeyc.store.abc.RecommendationReads`)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def window_scores(self, start_ms: int, end_ms: int) -> dict[str, tuple[float, int]]:
        """Units bought and views per product id over ``[start_ms, end_ms)``."""
        rows = self._conn.execute(_WINDOW, {"start": start_ms, "end": end_ms})
        return {str(pid): (float(units), int(views)) for pid, units, views in rows}

    def in_stock(self, by: str, value: str) -> list[str]:
        """The ids of the in-stock products whose ``by`` (``brand`` or ``category``)
        is ``value``."""
        return self._ids(_IN_STOCK[by], (value,))

    def cross_sell_candidates(self, user_id: str, before_ms: int) -> list[str]:
        """The ids of the in-stock products of the categories the user bought from
        before ``before_ms`` that they did not buy then."""
        return self._ids(_CROSS_SELL_CANDIDATES, {"user": user_id, "end": before_ms})

    def bought(self, user_id: str, start_ms: int, now_ms: int) -> list[str]:
        """The ids of the products the user bought in ``[start_ms, now_ms]``."""
        return self._ids(_BOUGHT_SINCE, {"user": user_id, "start": start_ms, "now": now_ms})

    def products(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The in-stock products among ``ids``, by id: :data:`PRODUCT_COLUMNS`, then
        each extra field the row does not already have."""
        marks = ", ".join("?" * len(ids))
        rows = self._conn.execute(
            "SELECT id, name, brand, category, price, url, image, extra FROM products"
            f" WHERE in_stock = 1 AND id IN ({marks})",
            tuple(ids),
        ).fetchall()
        return {row[0]: product_of(row) for row in rows}

    def _ids(self, sql: str, params: Sequence[Any] | dict[str, Any]) -> list[str]:
        return [str(row[0]) for row in self._conn.execute(sql, params)]


def product_of(row: Sequence[Any]) -> dict[str, Any]:
    """A ``products`` row (:data:`PRODUCT_COLUMNS`, then ``extra``: JSON text, or what
    the driver decoded of a ``jsonb``) as the dict the filters hand out."""
    out: dict[str, Any] = dict(zip(PRODUCT_COLUMNS, row[:7], strict=True))
    price = out["price"]
    if isinstance(price, float) and price.is_integer():
        out["price"] = int(price)  # 5900, not 5900.0, in a message
    extra = json.loads(row[7]) if isinstance(row[7], str) else row[7]
    if isinstance(extra, dict):
        for k, v in extra.items():
            out.setdefault(k, v)
    return out
