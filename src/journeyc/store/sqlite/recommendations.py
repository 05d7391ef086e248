"""The reads of the recommendation filters (``top_sellers``, ``popular``,
``cross_sell``; :mod:`journeyc.messages.recommend` ranks and caches): the ``products``
table (the catalog) and the event log (``product_viewed`` and ``order_completed``),
with SQL over the ``events (name, at)`` and ``events (user_id, name, at)`` indexes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from journeyc.store.recommendations import Params, RecommendationQueries

__all__ = ["SqliteRecommendations"]


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


class SqliteRecommendations(RecommendationQueries):
    """The recommendation filters' reads over ``conn`` (see
    :class:`~journeyc.store.abc.RecommendationReads`)."""

    WINDOW = _WINDOW
    IN_STOCK = _IN_STOCK
    CROSS_SELL_CANDIDATES = _CROSS_SELL_CANDIDATES
    BOUGHT_SINCE = _BOUGHT_SINCE

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def _rows(self, sql: str, params: Params) -> Iterable[Sequence[Any]]:
        return self._conn.execute(sql, params)

    def _products_query(self, ids: Sequence[str]) -> tuple[str, Params]:
        marks = ", ".join("?" * len(ids))
        sql = (
            "SELECT id, name, brand, category, price, url, image, extra FROM products"
            f" WHERE in_stock = 1 AND id IN ({marks})"
        )
        return sql, tuple(ids)
