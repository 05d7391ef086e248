"""The recommendation filters of message templates: ``top_sellers``, ``popular`` and
``cross_sell`` (LANGUAGE.md, "Inside a template"; docs/language.md, "Recommendation
filters", holds the exact rules).

A :class:`Recommender` answers them from the store's reads
(:class:`~journeyc.store.abc.RecommendationReads`, ``store.recommendations()``): the
catalog and the event log (``product_viewed`` and ``order_completed``). Time is the
template's ``now`` — the engine's clock — rounded down to the hour, never the wall
clock, so a simulation repeats exactly. Rankings are kept in a bounded LRU cache per
(filter, arguments, hour); the products themselves are read again on every call, so
a product that went out of stock is dropped at once.
"""

from __future__ import annotations

import heapq
import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeAlias, TypeVar

import liquid
from liquid import RenderContext, is_undefined
from liquid.exceptions import FilterArgumentError, FilterError, FilterValueError
from liquid.filter import with_context

from journeyc.store.abc import RecommendationReads

__all__ = [
    "DEFAULT_COUNT",
    "MAX_COUNT",
    "MAX_DAYS",
    "PURCHASE_WEIGHT",
    "Recommender",
    "install_filters",
]

ProductDict: TypeAlias = dict[str, Any]

DEFAULT_COUNT = 3
"""How many products a filter returns when the template does not say."""
MAX_COUNT = 100
"""The most products one filter call may ask for."""
MAX_DAYS = 3650
"""The longest window a filter may look back over."""
PURCHASE_WEIGHT = 3
"""In ``popular`` and ``cross_sell`` scores, one unit bought counts as this many views."""
TOP_SELLERS_DAYS = 7
POPULAR_DAYS = 7
CROSS_SELL_DAYS = 30

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_BY = ("brand", "category")  # what ``popular`` may rank by

Scores: TypeAlias = dict[str, tuple[float, int]]
"""Units bought and views per product id, over one window."""


class Recommender:
    """The recommendation filters over one store's reads (``store.recommendations()``).

    Each method ranks in-stock products and returns up to ``n`` of them, as dicts with
    ``id``, ``name``, ``brand``, ``category``, ``price``, ``url``, ``image`` and the
    product's extra fields. ``now`` is the engine's clock; rankings are computed as
    of the start of its hour.

    Two bounded LRU caches keep the work down: the units and views of every product
    over a window (one pass over the window's events, shared by every filter call
    with the same ``days`` in the same hour; ``window_cache`` windows), and each
    ranking per (filter, arguments, hour) (``cache_size`` entries). The products are
    read again on every call, so one that went out of stock is dropped at once.
    Safe to share between threads.

    Bad arguments (a negative count, an unknown ``by``) raise ``ValueError``.
    """

    def __init__(
        self, reads: RecommendationReads, *, cache_size: int = 4096, window_cache: int = 16
    ) -> None:
        if cache_size < 1 or window_cache < 1:
            raise ValueError("cache sizes must be at least 1")
        self.reads = reads
        self._rankings: _Lru[tuple[Any, ...], tuple[str, ...]] = _Lru(cache_size)
        self._windows: _Lru[tuple[int, int], Scores] = _Lru(window_cache)
        self.hits = 0
        """Calls answered from the ranking cache."""
        self.misses = 0
        """Calls that ranked anew."""
        self.sync: Callable[[], None] | None = None
        """Called before each filter reads the store: a writer that holds events
        back (the simulator) writes them there."""

    def rebind(self, reads: RecommendationReads) -> None:
        """Read another store from now on, forgetting every ranking and window of the
        last one: for a renderer (and its compiled templates) reused across many
        short simulations, each in its own store (``journeyc test``)."""
        self.reads = reads
        self._rankings.clear()
        self._windows.clear()
        self.sync = None

    def top_sellers(
        self, category: str, n: int = DEFAULT_COUNT, *, days: int = TOP_SELLERS_DAYS, now: datetime
    ) -> list[ProductDict]:
        """The best sellers of ``category``: its in-stock products by units bought in
        the last ``days`` days, then by views in those days, then by id — so products
        nobody bought fill the list when fewer than ``n`` sold."""
        n, days = _count(n), _days(days)
        if n == 0:
            return []
        end = _hour_ms(now)

        def rank() -> list[str]:
            scores = self._scores(days, end)
            candidates = self._reads().in_stock("category", category)
            return _top(candidates, n, scores, lambda u, v: (-u, -v))

        return self._products(self._ranked(("top_sellers", category, n, days, end), rank))

    def popular(
        self,
        value: str,
        *,
        by: str = "brand",
        days: int = POPULAR_DAYS,
        limit: int = DEFAULT_COUNT,
        now: datetime,
    ) -> list[ProductDict]:
        """The most popular in-stock products whose ``by`` (``"brand"`` or
        ``"category"``) is ``value``: by views plus :data:`PURCHASE_WEIGHT` times units
        bought in the last ``days`` days, then by units, then by id."""
        if not isinstance(by, str) or by not in _BY:
            raise ValueError(f'`by` must be "brand" or "category", not {_show(by)}')
        limit, days = _count(limit), _days(days)
        if limit == 0:
            return []
        end = _hour_ms(now)

        def rank() -> list[str]:
            candidates = self._reads().in_stock(by, value)
            return self._by_popularity(candidates, limit, days, end)

        return self._products(self._ranked(("popular", by, value, limit, days, end), rank))

    def cross_sell(
        self, user_id: str, n: int = DEFAULT_COUNT, *, days: int = CROSS_SELL_DAYS, now: datetime
    ) -> list[ProductDict]:
        """In-stock products of the categories the user bought from (their
        ``order_completed`` events, all time; the category is the catalog's) that they
        never bought, by popularity (as :meth:`popular`) over the last ``days`` days,
        then by units, then by id."""
        n, days = _count(n), _days(days)
        if n == 0:
            return []
        now_ms = _epoch_ms(now)
        end = now_ms - now_ms % HOUR_MS

        def rank() -> list[str]:
            candidates = self._reads().cross_sell_candidates(user_id, end)
            return self._by_popularity(candidates, n, days, end)

        ids = self._ranked(("cross_sell", user_id, n, days, end), rank)
        if ids:
            # The ranking is as of the hour; what the user bought since then is
            # still never offered back to them.
            recent = set(self._reads().bought(user_id, end, now_ms))
            ids = tuple(i for i in ids if i not in recent)
        return self._products(ids)

    def clear(self) -> None:
        """Forget every cached ranking and window."""
        self._rankings.clear()
        self._windows.clear()

    def _by_popularity(self, candidates: list[str], n: int, days: int, end: int) -> list[str]:
        scores = self._scores(days, end)
        return _top(candidates, n, scores, lambda u, v: (-(v + PURCHASE_WEIGHT * u), -u))

    def _ranked(self, key: tuple[Any, ...], rank: Callable[[], list[str]]) -> tuple[str, ...]:
        hit = self._rankings.get(key)
        if hit is not None:
            self.hits += 1
            return hit
        self.misses += 1
        ids = tuple(rank())
        self._rankings.put(key, ids)
        return ids

    def _scores(self, days: int, end: int) -> Scores:
        key = (days, end)
        scores = self._windows.get(key)
        if scores is None:
            scores = self._reads().window_scores(end - days * DAY_MS, end)
            self._windows.put(key, scores)
        return scores

    def _reads(self) -> RecommendationReads:
        """The store's reads, once a writer that holds events back has written them."""
        if self.sync is not None:
            self.sync()
        return self.reads

    def _products(self, ids: Sequence[str]) -> list[ProductDict]:
        if not ids:
            return []
        by_id = self._reads().products(ids)
        return [by_id[i] for i in ids if i in by_id]


def _top(
    candidates: list[str],
    n: int,
    scores: Scores,
    order: Callable[[float, int], tuple[float, ...]],
) -> list[str]:
    """The first ``n`` candidates by ``order(units, views)``, then by id."""

    def key(pid: str) -> tuple[Any, ...]:
        units, views = scores.get(pid, (0.0, 0))
        return (*order(units, views), pid)

    return heapq.nsmallest(n, candidates, key=key)


K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class _Lru(Generic[K, V]):
    """A bounded least-recently-used map, safe to share between threads."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._data: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            return value

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self._size:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


def _count(n: object) -> int:
    return _whole(n, "the count", 0, MAX_COUNT)


def _days(days: object) -> int:
    return _whole(days, "`days`", 1, MAX_DAYS)


def _whole(value: object, what: str, lo: int, hi: int) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi:
        return value
    raise ValueError(f"{what} must be a whole number from {lo} to {hi}, not {_show(value)}")


def _show(value: object) -> str:
    if is_undefined(value):
        return "an undefined value"
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


def _epoch_ms(t: datetime) -> int:
    t = t.replace(tzinfo=UTC) if t.tzinfo is None else t
    return (t - _EPOCH) // timedelta(milliseconds=1)


def _hour_ms(t: datetime) -> int:
    ms = _epoch_ms(t)
    return ms - ms % HOUR_MS


# ---------------------------------------------------------------- Liquid filters


LiquidFilter: TypeAlias = Callable[..., list[ProductDict]]


def install_filters(env: liquid.Environment, recommender: Recommender | None) -> None:
    """Register ``top_sellers``, ``popular`` and ``cross_sell`` on ``env``.

    Without a recommender the filters still check their arguments and return an
    empty list, so templates using them parse and render (for checking, previews).
    """
    env.filters["top_sellers"] = _top_sellers_filter(recommender)
    env.filters["popular"] = _popular_filter(recommender)
    env.filters["cross_sell"] = _cross_sell_filter(recommender)


def _top_sellers_filter(rec: Recommender | None) -> LiquidFilter:
    @with_context
    def top_sellers(
        value: object, *args: object, context: RenderContext, **kwargs: object
    ) -> list[ProductDict]:
        a = _bind("top_sellers", args, kwargs, ("limit", "days"))
        n, days = a.get("limit", DEFAULT_COUNT), a.get("days", TOP_SELLERS_DAYS)
        category = _name("top_sellers", value, "a category name")
        with _arguments("top_sellers"):
            n, days = _count(n), _days(days)
        if rec is None or category is None:
            return []
        return rec.top_sellers(category, n, days=days, now=_now("top_sellers", context))

    return top_sellers


def _popular_filter(rec: Recommender | None) -> LiquidFilter:
    @with_context
    def popular(
        value: object, *args: object, context: RenderContext, **kwargs: object
    ) -> list[ProductDict]:
        a = _bind("popular", args, kwargs, ("by", "limit", "days"))
        by = a.get("by", "brand")
        n, days = a.get("limit", DEFAULT_COUNT), a.get("days", POPULAR_DAYS)
        known = isinstance(by, str) and by in _BY
        key = _name("popular", value, f"a {by if known else 'brand'} name")
        with _arguments("popular"):
            if not known:
                raise ValueError(f'`by` must be "brand" or "category", not {_show(by)}')
            n, days = _count(n), _days(days)
        if rec is None or key is None:
            return []
        return rec.popular(key, by=str(by), days=days, limit=n, now=_now("popular", context))

    return popular


def _cross_sell_filter(rec: Recommender | None) -> LiquidFilter:
    @with_context
    def cross_sell(
        value: object, *args: object, context: RenderContext, **kwargs: object
    ) -> list[ProductDict]:
        a = _bind("cross_sell", args, kwargs, ("limit", "days"))
        n, days = a.get("limit", DEFAULT_COUNT), a.get("days", CROSS_SELL_DAYS)
        user = value.get("id") if isinstance(value, Mapping) else value
        user_id = _name("cross_sell", user, "the user (`user | cross_sell: 3`)")
        with _arguments("cross_sell"):
            n, days = _count(n), _days(days)
        if rec is None or user_id is None:
            return []
        return rec.cross_sell(user_id, n, days=days, now=_now("cross_sell", context))

    return cross_sell


def _bind(
    name: str, args: tuple[object, ...], kwargs: dict[str, object], names: tuple[str, ...]
) -> dict[str, object]:
    """The filter's arguments by name; the one positional argument is ``limit``."""
    unknown = sorted(set(kwargs) - set(names))
    if unknown:
        takes = ", ".join(f"`{n}`" for n in names)
        raise FilterArgumentError(
            f"{name}: unknown argument `{unknown[0]}` (it takes a count, {takes})", token=None
        )
    if len(args) > 1:
        raise FilterArgumentError(
            f"{name}: takes one count before its named arguments, like `{name}: 3, days: 10`",
            token=None,
        )
    bound = dict(kwargs)
    if args:
        if "limit" in kwargs:
            raise FilterArgumentError(f"{name}: the count is given twice", token=None)
        bound["limit"] = args[0]
    return bound


@contextmanager
def _arguments(name: str) -> Iterator[None]:
    """Report a ``ValueError`` of the argument checks as Liquid's FilterArgumentError."""
    try:
        yield
    except ValueError as exc:
        raise FilterArgumentError(f"{name}: {exc}", token=None) from exc


def _name(name: str, value: object, what: str) -> str | None:
    """The filter's input as text; None when it is null, undefined or empty (the
    filter then returns no products)."""
    if value is None or is_undefined(value):
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str):
        return value or None
    raise FilterValueError(f"{name}: expected {what}, not {_show(value)}", token=None)


def _now(name: str, context: RenderContext) -> datetime:
    """The template's ``now`` (the engine's clock)."""
    raw = context.resolve("now", default=None)
    # A naive datetime is Liquid's own built-in `now`, the wall clock: the renderer
    # always gives templates the engine's clock as an ISO string instead.
    if isinstance(raw, datetime) and raw.tzinfo is not None:
        return raw
    if isinstance(raw, str):
        try:
            return datetime.fromisoformat(raw)
        except ValueError:
            raise FilterError(
                f"{name}: `now` is not an ISO-8601 time: {_show(raw)}", token=None
            ) from None
    raise FilterError(f"{name}: needs the engine's clock in `now`", token=None)
