"""The reads of the recommendation filters (``top_sellers``, ``popular``,
``cross_sell``) in PostgreSQL: the SQLite store's statements
(:mod:`journeyc.store.sqlite.recommendations`) over ``jsonb`` props, with the same
rules: a product id is the text of the value, trimmed; an order's lines are the
objects of its ``products`` list, or the order itself when it has none; a missing
quantity is 1, a positive number counts as given, anything else as nothing."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from journeyc.store.postgres.schema import Connections
from journeyc.store.recommendations import Params, RecommendationQueries

__all__ = ["PostgresRecommendations"]

_ITEM_PID = "trim(j.value ->> 'product_id')"
_ORDER_PID = "trim(e.props ->> 'product_id')"
_VIEW_PID = "trim(props ->> 'product_id')"
_IS_LIST = "jsonb_typeof(e.props -> 'products') = 'array'"


def _order_lines(where: str) -> str:
    """(product id, quantity as sent) of every line of the ``order_completed`` events
    matching ``where`` (see the module's docstring)."""
    return (
        f"SELECT {_ITEM_PID} AS pid, j.value -> 'quantity' AS q"
        f" FROM events AS e, jsonb_array_elements(CASE WHEN {_IS_LIST}"
        " THEN e.props -> 'products' END) AS j(value)"
        f" WHERE e.name = 'order_completed' AND {where} AND jsonb_typeof(j.value) = 'object'"
        f" UNION ALL SELECT {_ORDER_PID}, e.props -> 'quantity' FROM events AS e"
        f" WHERE e.name = 'order_completed' AND {where} AND NOT coalesce({_IS_LIST}, false)"
    )


# Units bought and views per product over [start, end), in one pass over the window's
# events. As SQLite's json_extract reads them, a JSON null quantity is missing and
# true is the number 1.
_WINDOW = (
    "SELECT pid, sum(units), sum(views) FROM ("
    " SELECT pid, CASE WHEN q IS NULL OR jsonb_typeof(q) = 'null' THEN 1"
    " WHEN jsonb_typeof(q) = 'number' AND CAST(q AS float8) > 0 THEN CAST(q AS float8)"
    " WHEN q = CAST('true' AS jsonb) THEN 1 ELSE 0 END AS units, 0 AS views"
    f" FROM ({_order_lines('e.at >= %(start)s AND e.at < %(end)s')}) AS lines"
    f" UNION ALL SELECT {_VIEW_PID}, 0, 1 FROM events"
    " WHERE name = 'product_viewed' AND at >= %(start)s AND at < %(end)s"
    ") AS scored WHERE pid IS NOT NULL AND pid <> '' GROUP BY pid"
)
_IN_STOCK = {
    by: f"SELECT id FROM products WHERE in_stock AND {by} = %s" for by in ("brand", "category")
}
_BOUGHT = "SELECT DISTINCT pid FROM ({lines}) AS lines WHERE pid IS NOT NULL"
_BOUGHT_BEFORE = _BOUGHT.format(lines=_order_lines("e.user_id = %(user)s AND e.at < %(end)s"))
_BOUGHT_SINCE = _BOUGHT.format(
    lines=_order_lines("e.user_id = %(user)s AND e.at >= %(start)s AND e.at <= %(now)s")
)
_CROSS_SELL_CANDIDATES = (
    f"WITH bought AS ({_BOUGHT_BEFORE})"
    " SELECT id FROM products WHERE in_stock"
    " AND category IN (SELECT category FROM products WHERE id IN (SELECT pid FROM bought))"
    " AND id NOT IN (SELECT pid FROM bought WHERE pid IS NOT NULL)"
)


class PostgresRecommendations(RecommendationQueries):
    """The recommendation filters' reads over ``store`` (see
    :class:`~journeyc.store.abc.RecommendationReads`)."""

    WINDOW = _WINDOW
    IN_STOCK = _IN_STOCK
    CROSS_SELL_CANDIDATES = _CROSS_SELL_CANDIDATES
    BOUGHT_SINCE = _BOUGHT_SINCE

    def __init__(self, store: Connections) -> None:
        self._store = store

    def _rows(self, sql: str, params: Params) -> Iterable[Sequence[Any]]:
        with self._store.connection() as conn:
            return conn.execute(sql, params).fetchall()

    def _products_query(self, ids: Sequence[str]) -> tuple[str, Params]:
        sql = (
            "SELECT id, name, brand, category, price, url, image, extra FROM products"
            " WHERE in_stock AND id = ANY(%b)"
        )
        return sql, (list(ids),)
