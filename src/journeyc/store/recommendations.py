"""The recommendation filters' reads (:class:`~journeyc.store.abc.RecommendationReads`),
written once over each store's statements: :class:`RecommendationQueries` turns the
rows of a store's queries (:mod:`journeyc.store.sqlite.recommendations`,
:mod:`journeyc.store.postgres.recommendations`) into the answers, so both stores give
the same values of the same types. No SQL here."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

__all__ = ["PRODUCT_COLUMNS", "Params", "RecommendationQueries", "product_of"]

PRODUCT_COLUMNS = ("id", "name", "brand", "category", "price", "url", "image")
"""The catalog's columns a product dict has (its extra fields come after them)."""

Params = Sequence[Any] | Mapping[str, Any]


def product_of(row: Sequence[Any]) -> dict[str, Any]:
    """A ``products`` row (:data:`PRODUCT_COLUMNS`, then ``extra``: JSON text, or what
    the driver decoded of a ``jsonb``) as the dict the filters hand out: a whole price
    as an int, then each extra field the row does not already have."""
    out: dict[str, Any] = dict(zip(PRODUCT_COLUMNS, row[:7], strict=True))
    price = out["price"]
    if isinstance(price, float) and price.is_integer():
        out["price"] = int(price)  # 5900, not 5900.0, in a message
    extra = json.loads(row[7]) if isinstance(row[7], str) else row[7]
    if isinstance(extra, dict):
        for k, v in extra.items():
            out.setdefault(k, v)
    return out


class RecommendationQueries:
    """The reads, over a store's statements (class attributes) and its way of running
    them (:meth:`_rows`, :meth:`_products_query`)."""

    WINDOW: ClassVar[str]
    """(product id, units, views) per product over ``[:start, :end)``."""
    IN_STOCK: ClassVar[Mapping[str, str]]
    """By ``brand`` or ``category``: the in-stock ids of one value (one parameter)."""
    CROSS_SELL_CANDIDATES: ClassVar[str]
    """The cross-sell candidates of ``:user`` before ``:end``."""
    BOUGHT_SINCE: ClassVar[str]
    """What ``:user`` bought in ``[:start, :now]``."""

    def _rows(self, sql: str, params: Params) -> Iterable[Sequence[Any]]:
        """The rows of ``sql``."""
        raise NotImplementedError

    def _products_query(self, ids: Sequence[str]) -> tuple[str, Params]:
        """The statement (and its parameters) reading the in-stock products among
        ``ids``: :data:`PRODUCT_COLUMNS`, then ``extra``."""
        raise NotImplementedError

    def window_scores(self, start_ms: int, end_ms: int) -> dict[str, tuple[float, int]]:
        """Units bought and views per product id over ``[start_ms, end_ms)``."""
        rows = self._rows(self.WINDOW, {"start": start_ms, "end": end_ms})
        return {str(pid): (float(units), int(views)) for pid, units, views in rows}

    def in_stock(self, by: str, value: str) -> list[str]:
        """The ids of the in-stock products whose ``by`` (``brand`` or ``category``)
        is ``value``."""
        return self._ids(self.IN_STOCK[by], (value,))

    def cross_sell_candidates(self, user_id: str, before_ms: int) -> list[str]:
        """The ids of the in-stock products of the categories the user bought from
        before ``before_ms`` that they did not buy then."""
        return self._ids(self.CROSS_SELL_CANDIDATES, {"user": user_id, "end": before_ms})

    def bought(self, user_id: str, start_ms: int, now_ms: int) -> list[str]:
        """The ids of the products the user bought in ``[start_ms, now_ms]``."""
        params = {"user": user_id, "start": start_ms, "now": now_ms}
        return self._ids(self.BOUGHT_SINCE, params)

    def products(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The in-stock products among ``ids``, by id (see :func:`product_of`)."""
        return {row[0]: product_of(row) for row in self._rows(*self._products_query(ids))}

    def _ids(self, sql: str, params: Params) -> list[str]:
        return [str(row[0]) for row in self._rows(sql, params)]
