"""Set-based evaluation in SQL: the aggregates of a whole set of users at once (the
store's side of :mod:`journeyc.engine.bulk`).

:class:`~journeyc.store.compiled.aggregates.CompiledAggregates` answers one aggregate for
one user with one statement; a segment refresh over a million users would run tens of
millions of them. :class:`GroupedAggregates` answers the aggregates of a set of users
with one grouped statement, a ``GROUP BY user_id`` scan of their events over the
``(user_id, name, at)`` index: its ``WHERE`` keeps, for each event name, the rows of
its widest window (tests on the index alone), and each aggregate is a column of it;
reading one is then a dict lookup.

Results are exactly those of the per-user statements:

- each aggregate's column is its per-user SQL (the same ``where`` translation, the
  same expressions) inside ``CASE WHEN <its name, window and where> THEN … END``;
  the rows it does not count are NULL, which aggregates skip as if they were not
  there;
- the scan hands each user's events over in the order the per-user statements read
  them, the index's ``(at, seq)``, so ``SUM`` adds floats in the same order and
  ``MIN``/``MAX`` keep the same one of ``1`` and ``1.0``. The plan is checked (by the
  :class:`~journeyc.store.compiled.dialect.Runner`): one that would sort the rows
  before grouping them leaves those aggregates to the per-user path (a dialect whose
  sums and extremes order their input themselves, PostgreSQL's, needs no check);
- ``last``, ``first`` and ``top`` order by ``(at, seq)`` explicitly, through a key of
  fixed width (both as zero-padded decimals) that the row's properties ride behind;
- whatever has no exact set-based form has no getter, and the engine asks per user:
  a ``where`` with no SQL translation, or one that reads the profile, segments or
  other aggregates (values that differ per user); a bound value with no exact SQL
  form; a property path that needs quoting; a statement that fails (an integer
  overflow in ``SUM``, malformed JSON), retried aggregate by aggregate first.

Each store's population (:class:`journeyc.store.sqlite.population.SqlitePopulation`,
:class:`journeyc.store.postgres.population.PostgresPopulation`) also pages the users
and reads their profiles for :func:`journeyc.engine.bulk.evaluate_population`.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from journeyc.compile import ir
from journeyc.store.abc import NoExactFormError
from journeyc.store.compiled.aggregates import (
    ITEM_ORDER,
    CompiledAggregates,
    WhereSql,
    item_select,
    prop_select,
    props_of,
    types_in,
)
from journeyc.store.compiled.dialect import Dialect, Runner

__all__ = ["CompiledPopulation", "GroupedAggregates", "user_chunks"]

_INT64_MAX = 2**63 - 1
_KEY_DIGITS = 19  # the width of a non-negative int64 in decimal
_ORDER_SENSITIVE = frozenset({"sum", "avg", "min", "max"})
_MAX_COLUMNS = 200  # aggregates per statement, well inside SQLite's limits


# ---------------------------------------------------------------- planning

_Getter = Callable[[str], Any]


@dataclass(slots=True)
class _Column:
    """One aggregate for the current users: its SQL (``exprs``, columns of the
    grouped statement), then ``get``, its value for a user; None while it goes per
    user."""

    agg: ir.Agg
    prefix: str  # of its parameters' names
    params: dict[str, object]
    since: int | None = None  # the window's start, exclusive
    filter: str = ""  # for ``top``: its name, window and where
    exprs: tuple[str, ...] = ()
    per_user: bool = True
    get: _Getter | None = None
    rows: Mapping[str, tuple[Any, ...]] | None = None  # the grouped rows it reads
    index: int = 0  # where in those rows its first column is
    items: str = ""  # over list items: the join and condition of a statement of its own


def _per_user(e: ir.Expr) -> bool:
    """Whether ``e`` reads something that differs from user to user besides the
    counted event: the profile, a segment or another aggregate."""
    return any(isinstance(x, ir.Attr | ir.Seg | ir.Agg) for x in ir.walk(e))


class GroupedAggregates:
    """The aggregates of ``users`` at ``now_ms``, computed for all of them at once
    (see :class:`~journeyc.store.abc.GroupedAggregates`).

    ``aggs`` are computed together on the first :meth:`getter` call, in one grouped
    statement; an aggregate asked for later that was not among them is computed
    then, on its own. The users' events are read with ``user_id BETWEEN first AND
    last`` (``dense=True``, the default: users that make up most of their id range)
    or with one index seek per user (``dense=False``: a few users spread over the
    population). ``outer`` computes a value of the outer scope a ``where`` reads
    (one that is the same for every user: ``now``).
    """

    def __init__(
        self,
        runner: Runner,
        dialect: Dialect,
        now_ms: int,
        users: Iterable[str],
        aggs: Iterable[ir.Agg] = (),
        *,
        dense: bool = True,
        outer: Callable[[ir.Expr], object],
    ) -> None:
        self._run = runner
        self._d = dialect
        self._now_ms = now_ms
        self._outer = outer
        self._users = sorted(set(users))
        self.members = frozenset(self._users)
        """The users this instance answers for."""
        self._dense = dense
        self._pending: dict[str, ir.Agg] = {}
        for a in aggs:
            self._pending.setdefault(a.model_dump_json(), a)
        self._columns: dict[str, _Column] = {}
        self._found: set[str] = set()  # the users some statement found events of
        self._complete = True  # no aggregate goes per user
        self._origins: dict[str, tuple[int, int] | None] = {}  # per event name
        self._n = 0  # aggregates planned: each one's parameters get a prefix of their own

    @property
    def users(self) -> list[str]:
        """The users this instance answers for, sorted."""
        return self._users

    def getter(self, agg: ir.Agg, key: str) -> Callable[[str], Any] | None:
        """How ``agg`` (``key`` identifies it) is read for a user of the set: the
        value (for ``last``/``first``: the event's ``(at_ms, props)`` or None; a
        ``ValueError`` or ``OverflowError`` when the row cannot be decoded); None when
        it has no exact set-based form (the caller asks per user)."""
        col = self._columns.get(key)
        if col is None:
            self._pending.setdefault(key, agg)
            self._load()
            col = self._columns[key]
        return col.get

    def blank(self, uid: str) -> bool:
        """Whether every aggregate asked for so far (and given at construction) has
        its default value for ``uid``, the user having none of the events they read;
        False when that is not known for sure (some aggregates go per user)."""
        if self._pending:
            self._load()
        return self._complete and uid not in self._found and uid in self.members

    def signature(self, keys: Sequence[str]) -> Callable[[str], tuple[Any, ...]] | None:
        """The values of the aggregates ``keys`` for a user of the set at this
        instance's time, as one tuple; None when one of them goes per user."""
        if self._pending:
            self._load()
        cols = [self._columns[k] for k in keys]
        if any(c.get is None for c in cols):
            return None
        tables = {id(c.rows) for c in cols}
        rows = cols[0].rows if cols else None
        if (
            rows is not None
            and len(tables) == 1
            and all(c.agg.func in ("count", "distinct") for c in cols)
        ):
            # COUNT is never NULL in a row: the cells are the values (a user
            # without a row has the defaults, all zeros: one key for all of them).
            cells = operator.itemgetter(*(c.index for c in cols), 0)
            get_row = rows.get

            def counts(uid: str) -> tuple[Any, ...]:
                row = get_row(uid)
                return () if row is None else cells(row)[:-1]

            return counts
        ready = [c.get for c in cols if c.get is not None]

        def signature(uid: str) -> tuple[Any, ...]:
            return tuple([g(uid) for g in ready])

        return signature

    # ------------------------------------------------------------ loading
    def _load(self) -> None:
        """Plan and compute every pending aggregate: one grouped statement for all
        of them but ``top``, which takes one of its own."""
        pending, self._pending = self._pending, {}
        cols = [self._plan(agg) for agg in pending.values()]
        self._columns.update(zip(pending, cols, strict=True))
        grouped: list[_Column] = []
        for c in cols:
            if c.per_user:
                continue
            if not self._users:
                c.get = _default(c.agg.func)
            elif c.items:
                self._run_items(c)
            elif c.agg.func == "top":
                self._run_top(c)
            else:
                grouped.append(c)
        for i in range(0, len(grouped), _MAX_COLUMNS):
            batch = grouped[i : i + _MAX_COLUMNS]
            if not self._run_grouped(batch):
                # One failing aggregate (an overflowing SUM, malformed JSON) fails the
                # whole statement: try each alone; those that still fail go per user.
                for c in batch:
                    if not c.per_user and not self._run_grouped([c]):
                        c.per_user = True
        self._complete = all(c.get is not None for c in self._columns.values())

    def _users_sql(self, params: dict[str, object]) -> str:
        if self._dense:
            params["lo"], params["hi"] = self._users[0], self._users[-1]
            return f"{self._d.text_order('user_id')} BETWEEN :lo AND :hi"
        params["users"] = json.dumps(self._users)
        return f"user_id IN ({self._d.text_list(':users')})"

    def _run_grouped(self, cols: list[_Column]) -> bool:
        """Compute ``cols`` with one ``GROUP BY user_id`` scan; False when it fails."""
        params: dict[str, object] = {"now": self._now_ms}
        select = ["user_id"]
        at: dict[str, int] = {}
        windows: dict[str, int | None] = {}  # per event name, the widest window
        for c in cols:
            at[c.prefix] = len(select)
            select += c.exprs
            params.update(c.params)
            name, since = c.agg.event, c.since
            if name not in windows:
                windows[name] = since
            elif since is None or windows[name] is None:
                windows[name] = None
            else:
                windows[name] = min(since, windows[name])  # type: ignore[type-var]
        # The scan keeps each name's rows in its widest window, a test on the index
        # alone (one per name: each test costs on every event of the users); each
        # aggregate picks its own rows inside.
        filters = []
        for i, (name, since) in enumerate(windows.items()):
            params[f"f{i}n"], params[f"f{i}s"] = name, since
            filters.append(f"name = :f{i}n" + ("" if since is None else f" AND at > :f{i}s"))
        sql = (
            f"SELECT {', '.join(select)} FROM events{self._d.index_hint}"
            f" WHERE {self._users_sql(params)} AND at <= :now"
            f" AND ({' OR '.join(f'({f})' for f in filters)}) GROUP BY user_id"
        )
        sql = self._d.placeholders(sql)
        try:
            if not self._run.in_index_order(sql, params):
                # Without the index's order, a user's events could reach the
                # aggregates in another order: a float sum could round otherwise, a
                # min keep 1.0 where it kept 1. Those go per user.
                sensitive = [c for c in cols if c.agg.func in _ORDER_SENSITIVE]
                if sensitive:
                    for c in sensitive:
                        c.per_user = True
                    rest = [c for c in cols if not c.per_user]
                    return not rest or self._run_grouped(rest)
            rows = {r[0]: r for r in self._run.execute(sql, params)}
        except self._run.errors:
            return False
        for c in cols:
            c.rows, c.index = rows, at[c.prefix]
            c.get = _getter(self._d, c, rows, c.index)
        self._found.update(rows)
        return True

    def _run_top(self, c: _Column) -> None:
        """``top``: each user's values counted, the most frequent kept, then the most
        recent by ``(at, seq)``: the value as the user's latest such event holds it
        (:meth:`~journeyc.store.compiled.dialect.Dialect.at_max`)."""
        params: dict[str, object] = {"now": self._now_ms, **c.params}
        users = self._users_sql(params)
        path = f":{c.prefix}p"
        d = self._d
        jt, v = d.json_type("props", path), d.json_value("props", path)
        sql = (
            f"SELECT user_id, {d.at_max('jt', 'k')}, {d.at_max('v', 'k')}, COUNT(*), MAX(k)"
            f" FROM (SELECT user_id, {jt} AS jt, {v} AS v, {_order_key(d, c)} AS k,"
            f" {d.distinct_key(jt, v)} AS dk FROM events{d.index_hint}"
            f" WHERE {users} AND at <= :now AND {c.filter}"
            f" AND {jt} IN {types_in(d, 'num', 'text', 'bool')}) AS t"
            " GROUP BY user_id, dk"
        )
        sql = d.placeholders(sql)
        try:
            rows = self._run.execute(sql, params).fetchall()
        except self._run.errors:
            c.per_user = True
            return
        best: dict[str, tuple[int, str, Any]] = {}
        bools = d.json_types["bool"]
        for uid, jtype, val, count, k in rows:
            cur = best.get(uid)
            if cur is None or (count, k) > (cur[0], cur[1]):
                best[uid] = (count, k, val == 1 if jtype in bools else val)

        def get_top(uid: str) -> Any:
            got = best.get(uid)
            return None if got is None else got[2]

        c.get = get_top
        self._found.update(best)

    def _plan(self, agg: ir.Agg) -> _Column:
        """``agg`` as columns of the grouped statement (or, for ``top``, the parts of a
        statement of its own); ``per_user`` when it has no exact set-based form."""
        p = f"a{self._n}_"
        self._n += 1
        col = _Column(agg, p, {f"{p}n": agg.event})
        if agg.item is not None:
            return self._plan_items(agg, col)
        cond = [f"name = :{p}n"]
        if agg.within is not None:
            col.since = col.params[f"{p}s"] = self._now_ms - agg.within * 1000
            cond.append(f"at > :{p}s")
        if agg.where is not None:
            if _per_user(agg.where):
                return col
            ws = WhereSql(self._d, prefix=p)
            pred = ws.pred(agg.where)
            if pred is None:
                return col
            try:
                col.params.update(ws.bindings([self._outer(e) for e in ws.outer]))
            except NoExactFormError:
                return col
            cond.append(pred)
        g = " AND ".join(cond)
        func = agg.func
        if func in ("last", "first", "top"):
            origins = self._key_origins(agg.event)
            if origins is None:
                return col
            col.params[f"{p}a"], col.params[f"{p}q"] = origins
        if func == "count":
            col.exprs = (f"COUNT(CASE WHEN {g} THEN 1 END)",)
        elif func in ("last", "first"):
            m = "MAX" if func == "last" else "MIN"
            key = _order_key(self._d, col)
            props = self._d.ifnull(self._d.doc_text("props"), "''")
            col.exprs = (f"{m}(CASE WHEN {g} THEN {key} || {props} END)",)
        else:
            jp = self._d.json_path(agg.prop)
            if jp is None:
                return col
            col.params[f"{p}p"] = jp
            if func != "top":
                col.exprs = prop_select(self._d, func, f":{p}p", g)
            else:
                col.filter = f"({g})"
        col.per_user = False
        return col

    def _plan_items(self, agg: ir.Agg, col: _Column) -> _Column:
        """An aggregate over list items: a statement of its own joining the users'
        events to ``json_each`` of their list (``top`` goes per user)."""
        p = col.prefix
        lp = self._d.json_path(agg.prop)
        if agg.func == "top" or lp is None or agg.item is None:
            return col
        if _per_user(agg.item) or (agg.where is not None and _per_user(agg.where)):
            return col
        ws = WhereSql(self._d, prefix=p, item=f"{p}it")
        v = ws.value(agg.item)
        cond = self._d.true if agg.where is None else ws.pred(agg.where)
        if v is None or cond is None:
            return col
        try:
            col.params.update(ws.bindings([self._outer(e) for e in ws.outer]))
        except NoExactFormError:
            return col
        col.params[f"{p}l"] = lp
        if agg.within is not None:
            col.since = col.params[f"{p}s"] = self._now_ms - agg.within * 1000
        window = f"name = :{p}n" + ("" if agg.within is None else f" AND at > :{p}s")
        d = self._d
        col.items = (
            f", {d.json_each('events.props', f':{p}l', f'{p}it')} WHERE {{users}} AND at <= :now"
            f" AND {window} AND {d.json_type('events.props', f':{p}l')}"
            f" = '{d.json_types['array'][0]}' AND {cond}"
        )
        col.exprs = item_select(d, agg.func, v, ITEM_ORDER.format(key=d.item_key(f"{p}it")))
        col.per_user = False
        return col

    def _run_items(self, c: _Column) -> None:
        """An aggregate over list items, for every user at once (see
        :meth:`_plan_items`); per user when it fails or, order-sensitive, cannot keep
        the index's order."""
        params: dict[str, object] = {"now": self._now_ms, **c.params}
        sql = self._d.placeholders(
            f"SELECT user_id, {', '.join(c.exprs)} FROM events{self._d.index_hint}"
            + c.items.replace("{users}", self._users_sql(params))
            + " GROUP BY user_id"
        )
        try:
            if c.agg.func in _ORDER_SENSITIVE and not self._run.in_index_order(sql, params):
                c.per_user = True
                return
            rows = {r[0]: r for r in self._run.execute(sql, params)}
        except self._run.errors:
            c.per_user = True
            return
        c.rows, c.index = rows, 1
        c.get = _getter(self._d, c, rows, 1)
        self._found.update(rows)

    def _key_origins(self, event: str) -> tuple[int, int] | None:
        """The origins of ``event``'s ``(at, seq)`` key: its least ``at`` and the least
        ``seq``, so both parts are non-negative; None when a part could overflow."""
        if event not in self._origins:
            # One min() or max() per statement: each is then a single index seek.
            one, d = self._run.execute, self._d
            named = d.placeholders(" WHERE name = :name")
            at0, at1, seq0, seq1 = (
                one(f"SELECT {m}({c}) FROM events{w}", {"name": event}).fetchone()[0]
                for m, c, w in (
                    ("MIN", "at", named),
                    ("MAX", "at", named),
                    ("MIN", "seq", ""),
                    ("MAX", "seq", ""),
                )
            )
            origins: tuple[int, int] | None = None
            if at0 is None:
                origins = (0, 0)  # no such event: nobody has one
            elif (
                all(isinstance(x, int) for x in (at0, at1, seq0, seq1))
                and max(at1, self._now_ms) - at0 <= _INT64_MAX
                and seq1 - seq0 <= _INT64_MAX
            ):
                origins = (at0, seq0)
            self._origins[event] = origins
        return self._origins[event]


def _order_key(d: Dialect, c: _Column) -> str:
    """SQL giving a string that sorts as ``(at, seq)``: both as 19-digit decimals
    counted from their origins."""
    p = c.prefix
    return d.order_key(f"at - :{p}a", f"seq - :{p}q")


def _default(func: str) -> _Getter:
    """The value of ``func`` for a user without matching events."""
    value = 0 if func in ("count", "sum", "distinct") else None

    def get_default(uid: str) -> Any:
        return value

    return get_default


def _getter(d: Dialect, c: _Column, rows: Mapping[str, tuple[Any, ...]], i: int) -> _Getter:
    """How ``c``'s value is read from a user's grouped row (column ``i`` on)."""
    func = c.agg.func
    width = d.sum_width
    if width != 1 and func in ("sum", "avg"):
        # The dialect's sum over several columns (PostgreSQL's exact and float sums).
        sum_of = d.sum_of

        def get_wide(uid: str) -> Any:
            row = rows.get(uid)
            total = None if row is None else sum_of(row[i : i + width])
            if func == "sum":
                return 0 if total is None else total
            assert row is not None or total is None
            return None if row is None or not row[i + width] else total / row[i + width]

        return get_wide
    if func in ("count", "distinct"):

        def get_count(uid: str) -> Any:
            row = rows.get(uid)
            return 0 if row is None else row[i]

        return get_count
    if func == "sum":

        def get_sum(uid: str) -> Any:
            row = rows.get(uid)
            v = None if row is None else row[i]
            return 0 if v is None else v

        return get_sum
    if func == "avg":

        def get_avg(uid: str) -> Any:
            row = rows.get(uid)
            if row is None or not row[i + 1]:
                return None
            return row[i] / row[i + 1]

        return get_avg
    if func in ("min", "max"):

        def get_plain(uid: str) -> Any:
            row = rows.get(uid)
            return None if row is None else row[i]

        return get_plain
    origin = c.params[f"{c.prefix}a"]
    assert isinstance(origin, int)

    def get_event(uid: str) -> Any:
        row = rows.get(uid)
        text = None if row is None else row[i]
        if text is None:
            return None
        return int(text[:_KEY_DIGITS]) + origin, props_of(text[2 * _KEY_DIGITS :])

    return get_event


# ---------------------------------------------------------------- the population

_DENSE_MIN = 256  # users in a chunk below which one index seek per user always wins


def user_chunks(
    users: Sequence[str] | None,
    size: int,
    in_range: Callable[[str, str], int],
    page: Callable[[str | None, int], list[str]],
) -> Iterator[tuple[list[str], bool]]:
    """``users`` (None: everyone, paged with ``page(after, size)``, the users after
    ``after`` in code point order) in sorted chunks of ``size``, each with whether
    to read it as an id range: whether it makes up enough of its range that scanning
    the range beats one index seek per user, judged by ``in_range(first, last)``,
    the profiles between."""
    if users is not None:
        ordered = sorted(set(users))
        for i in range(0, len(ordered), size):
            part = ordered[i : i + size]
            dense = len(part) >= _DENSE_MIN and len(part) * 4 >= in_range(part[0], part[-1])
            yield part, dense
        return
    # Every user the log names has a profile row (the store keeps it so), so paging
    # the profiles is paging everyone, without a DISTINCT over the whole event log.
    after: str | None = None
    while part := page(after, size):
        yield part, True
        if len(part) < size:
            return
        after = part[-1]


class CompiledPopulation:
    """The set-based reads of a SQL store (see
    :class:`~journeyc.store.abc.PopulationReads`) but its paging and profiles, which
    each store adds."""

    def __init__(self, runner: Runner, dialect: Dialect) -> None:
        self._runner = runner
        self._d = dialect

    def grouped(
        self,
        now_ms: int,
        users: Iterable[str],
        aggs: Iterable[ir.Agg] = (),
        *,
        dense: bool = True,
        outer: Callable[[ir.Expr], object],
    ) -> GroupedAggregates:
        """The aggregates of ``users`` at ``now_ms``, for all of them at once."""
        return GroupedAggregates(
            self._runner, self._d, now_ms, users, aggs, dense=dense, outer=outer
        )

    def aggregates(self) -> CompiledAggregates:
        """The per-user statements, for what has no set-based form."""
        return CompiledAggregates(self._runner, self._d)
