"""Set-based evaluation: segment membership of a whole population at once.

:class:`SqlAggregates` answers one aggregate for one user with one statement; a
segment refresh over a million users would run tens of millions of them.
:class:`BulkAggregates` answers the aggregates of a set of users with one grouped
statement, a ``GROUP BY user_id`` scan of their events over the ``(user_id, name,
at)`` index: its ``WHERE`` keeps, for each event name, the rows of its widest window
(tests on the index alone), and each aggregate is a column of it;
:meth:`BulkAggregates.value` is then a dict lookup. :func:`evaluate_population`
walks the users in chunks of sorted ids, one such scan per chunk, and evaluates the
segments on each user.

Results are exactly those of :class:`SqlAggregates`:

- each aggregate's column is its per-user SQL (the same ``where`` translation, the
  same expressions) inside ``CASE WHEN <its name, window and where> THEN … END``;
  the rows it does not count are NULL, which aggregates skip as if they were not
  there;
- the scan hands each user's events over in the order the per-user statements read
  them, the index's ``(at, seq)``, so ``SUM`` adds floats in the same order and
  ``MIN``/``MAX`` keep the same one of ``1`` and ``1.0``. The plan is checked: one
  that would sort the rows before grouping them leaves those aggregates to the
  per-user path;
- ``last``, ``first`` and ``top`` order by ``(at, seq)`` explicitly, through a key of
  fixed width (both as zero-padded decimals) that the row's properties ride behind;
- whatever has no exact set-based form goes to a per-user :class:`SqlAggregates`,
  for that aggregate only and lazily (only for the users asked about): a ``where``
  with no SQL translation, or one that reads the profile, segments or other
  aggregates (values that differ per user); a bound value with no exact SQL form; a
  property path that needs quoting; a statement that fails (an integer overflow in
  ``SUM``, malformed JSON), retried aggregate by aggregate first; and any user, time
  or aggregate the instance was not built for.

:func:`evaluate_population` evaluates a segment once per user, and not at all when
the answer is known: a user with none of the events the segments read gets the
answers of the first such user, and a segment that reads nothing but counts
(``count``, ``distinct``) the answer of the first user with the same counts, when
no segment reads the profile.
"""

from __future__ import annotations

import json
import operator
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from journeyc.compile import ir
from journeyc.engine.aggregates import (
    _SCALAR_TYPES,
    SqlAggregates,
    _distinct_key,
    _json_path,
    _props,
    _UnbindableError,
    _WhereSql,
    from_ms,
    item_select,
    to_ms,
)
from journeyc.engine.expr import Predicate, Scope, compile_predicate
from journeyc.engine.values import EventView

__all__ = ["CHUNK", "BulkAggregates", "aggregates_in", "evaluate_population"]

CHUNK = 50_000
"""Users per chunk of :func:`evaluate_population`: what one grouped scan covers."""

_INT64_MAX = 2**63 - 1
_KEY_DIGITS = 19  # the width of a non-negative int64 in decimal
_ORDER_SENSITIVE = frozenset({"sum", "avg", "min", "max"})
_MAX_COLUMNS = 200  # aggregates per statement, well inside SQLite's limits


def aggregates_in(exprs: Iterable[ir.Expr]) -> list[ir.Agg]:
    """Every aggregate ``exprs`` use (those inside a ``where`` too), each once."""
    seen: dict[str, ir.Agg] = {}
    for e in exprs:
        for x in ir.walk(e):
            if isinstance(x, ir.Agg):
                seen.setdefault(x.model_dump_json(), x)
    return list(seen.values())


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


class BulkAggregates:
    """The aggregates of ``users`` at ``now``, computed for all of them at once.

    ``aggs`` are computed together on the first :meth:`value` call, in one grouped
    statement; an aggregate asked for later that was not among them is computed
    then, on its own. The users' events are read with ``user_id BETWEEN first AND
    last`` (``dense=True``, the default: users that make up most of their id range)
    or with one index seek per user (``dense=False``: a few users spread over the
    population). ``fallback`` answers what has no set-based form; by default a
    :class:`SqlAggregates` of ``conn``.
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        now: datetime,
        users: Iterable[str],
        aggs: Iterable[ir.Agg] = (),
        *,
        dense: bool = True,
        fallback: SqlAggregates | None = None,
    ) -> None:
        self._conn = conn
        self._now = now
        self._now_ms = to_ms(now)
        self._users = sorted(set(users))
        self._members = frozenset(self._users)
        self._dense = dense
        self._fallback = fallback if fallback is not None else SqlAggregates(conn)
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
        """The users this instance answers for itself, sorted."""
        return self._users

    def value(self, agg: ir.Agg, key: str, scope: Scope) -> Any:
        """The value of ``agg`` for ``scope.user_id`` at ``scope.now``."""
        col = self._columns.get(key)
        if col is None:
            self._pending.setdefault(key, agg)
            self._load()
            col = self._columns[key]
        get = col.get
        uid = scope.user_id
        if (
            get is None
            or uid not in self._members
            or (scope.now is not self._now and scope.now != self._now)
        ):
            return self._fallback.value(agg, key, scope)
        try:
            return get(uid)
        except (ValueError, OverflowError):
            # A value the set-based path cannot decode (a time out of range, the
            # row's JSON): the per-user path decides what it makes of it.
            return self._fallback.value(agg, key, scope)

    def blank(self, uid: str) -> bool:
        """Whether every aggregate asked for so far (and given at construction) has
        its default value for ``uid``, the user having none of the events they read;
        False when that is not known for sure (some aggregates go per user)."""
        if self._pending:
            self._load()
        return self._complete and uid not in self._found and uid in self._members

    def _signature(self, keys: Sequence[str]) -> Callable[[str], tuple[Any, ...]] | None:
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
            return "user_id BETWEEN :lo AND :hi"
        params["users"] = json.dumps(self._users)
        return "user_id IN (SELECT value FROM json_each(:users))"

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
            f"SELECT {', '.join(select)} FROM events INDEXED BY events_user_name_at"
            f" WHERE {self._users_sql(params)} AND at <= :now"
            f" AND ({' OR '.join(f'({f})' for f in filters)}) GROUP BY user_id"
        )
        try:
            if not self._in_index_order(sql, params):
                # Without the index's order, a user's events could reach the
                # aggregates in another order: a float sum could round otherwise, a
                # min keep 1.0 where it kept 1. Those go per user.
                sensitive = [c for c in cols if c.agg.func in _ORDER_SENSITIVE]
                if sensitive:
                    for c in sensitive:
                        c.per_user = True
                    rest = [c for c in cols if not c.per_user]
                    return not rest or self._run_grouped(rest)
            rows = {r[0]: r for r in self._conn.execute(sql, params)}
        except (sqlite3.Error, OverflowError):
            return False
        for c in cols:
            c.rows, c.index = rows, at[c.prefix]
            c.get = _getter(c, rows, c.index)
        self._found.update(rows)
        return True

    def _in_index_order(self, sql: str, params: dict[str, object]) -> bool:
        """Whether the plan feeds the aggregates in the index's order: it reads the
        ``(user_id, name, at)`` index and sorts nothing before grouping."""
        plan = [str(r[-1]) for r in self._conn.execute("EXPLAIN QUERY PLAN " + sql, params)]
        return any("events_user_name_at" in p for p in plan) and not any(
            "TEMP B-TREE FOR GROUP BY" in p for p in plan
        )

    def _run_top(self, c: _Column) -> None:
        """``top``: each user's values counted, the most frequent kept, then the most
        recent by ``(at, seq)``. In a query with one ``max()``, SQLite takes a bare
        column from that max's row: the value as the user's latest such event holds it."""
        params: dict[str, object] = {"now": self._now_ms, **c.params}
        users = self._users_sql(params)
        path = f":{c.prefix}p"
        jt, v = f"json_type(props, {path})", f"json_extract(props, {path})"
        sql = (
            f"SELECT user_id, jt, v, COUNT(*), MAX(k) FROM (SELECT user_id, {jt} AS jt,"
            f" {v} AS v, {_order_key(c)} AS k, {_distinct_key(jt, v)} AS dk"
            " FROM events INDEXED BY events_user_name_at"
            f" WHERE {users} AND at <= :now AND {c.filter} AND {jt} IN {_SCALAR_TYPES})"
            " GROUP BY user_id, dk"
        )
        try:
            rows = self._conn.execute(sql, params).fetchall()
        except (sqlite3.Error, OverflowError):
            c.per_user = True
            return
        best: dict[str, tuple[int, str, Any]] = {}
        for uid, jtype, val, count, k in rows:
            cur = best.get(uid)
            if cur is None or (count, k) > (cur[0], cur[1]):
                best[uid] = (count, k, val == 1 if jtype in ("true", "false") else val)

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
            ws = _WhereSql(prefix=p)
            pred = ws.pred(agg.where)
            if pred is None:
                return col
            try:
                col.params.update(ws.bindings(Scope(now=self._now)))
            except _UnbindableError:
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
            col.exprs = (f"{m}(CASE WHEN {g} THEN {_order_key(col)} || IFNULL(props, '') END)",)
        else:
            jp = _json_path(agg.prop)
            if jp is None:
                return col
            col.params[f"{p}p"] = jp
            jt, v = f"json_type(props, :{p}p)", f"json_extract(props, :{p}p)"
            if func in ("sum", "avg"):
                num = f"CASE WHEN {g} AND {jt} IN ('integer', 'real') THEN {v} END"
                col.exprs = (f"SUM({num})", f"COUNT({num})") if func == "avg" else (f"SUM({num})",)
            elif func in ("min", "max"):
                num = f"CASE WHEN {g} AND {jt} IN ('integer', 'real', 'text') THEN {v} END"
                col.exprs = (f"{func.upper()}({num})",)
            elif func == "distinct":
                col.exprs = (f"COUNT(DISTINCT CASE WHEN {g} THEN {_distinct_key(jt, v)} END)",)
            else:  # top
                col.filter = f"({g})"
        col.per_user = False
        return col

    def _plan_items(self, agg: ir.Agg, col: _Column) -> _Column:
        """An aggregate over list items: a statement of its own joining the users'
        events to ``json_each`` of their list (``top`` goes per user)."""
        p = col.prefix
        lp = _json_path(agg.prop)
        if agg.func == "top" or lp is None or agg.item is None:
            return col
        if _per_user(agg.item) or (agg.where is not None and _per_user(agg.where)):
            return col
        ws = _WhereSql(prefix=p, item=f"{p}it")
        v = ws.value(agg.item)
        cond = "1" if agg.where is None else ws.pred(agg.where)
        if v is None or cond is None:
            return col
        try:
            col.params.update(ws.bindings(Scope(now=self._now)))
        except _UnbindableError:
            return col
        col.params[f"{p}l"] = lp
        if agg.within is not None:
            col.since = col.params[f"{p}s"] = self._now_ms - agg.within * 1000
        window = f"name = :{p}n" + ("" if agg.within is None else f" AND at > :{p}s")
        col.items = (
            f", json_each(events.props, :{p}l) AS {p}it WHERE {{users}} AND at <= :now"
            f" AND {window} AND json_type(events.props, :{p}l) = 'array' AND {cond}"
        )
        col.exprs = item_select(agg.func, v)
        col.per_user = False
        return col

    def _run_items(self, c: _Column) -> None:
        """An aggregate over list items, for every user at once (see
        :meth:`_plan_items`); per user when it fails or, order-sensitive, cannot keep
        the index's order."""
        params: dict[str, object] = {"now": self._now_ms, **c.params}
        sql = (
            f"SELECT user_id, {', '.join(c.exprs)} FROM events INDEXED BY events_user_name_at"
            + c.items.replace("{users}", self._users_sql(params))
            + " GROUP BY user_id"
        )
        try:
            if c.agg.func in _ORDER_SENSITIVE and not self._in_index_order(sql, params):
                c.per_user = True
                return
            rows = {r[0]: r for r in self._conn.execute(sql, params)}
        except (sqlite3.Error, OverflowError):
            c.per_user = True
            return
        c.rows, c.index = rows, 1
        c.get = _getter(c, rows, 1)
        self._found.update(rows)

    def _key_origins(self, event: str) -> tuple[int, int] | None:
        """The origins of ``event``'s ``(at, seq)`` key: its least ``at`` and the least
        ``seq``, so both parts are non-negative; None when a part could overflow."""
        if event not in self._origins:
            # One min() or max() per statement: each is then a single index seek.
            one = self._conn.execute
            at0, at1, seq0, seq1 = (
                one(f"SELECT {m}({c}) FROM events{w}", args).fetchone()[0]
                for m, c, w, args in (
                    ("MIN", "at", " WHERE name = ?", (event,)),
                    ("MAX", "at", " WHERE name = ?", (event,)),
                    ("MIN", "seq", "", ()),
                    ("MAX", "seq", "", ()),
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


def _order_key(c: _Column) -> str:
    """SQL giving a string that sorts as ``(at, seq)``: both as 19-digit decimals
    counted from their origins."""
    p = c.prefix
    return f"printf('%019d%019d', at - :{p}a, seq - :{p}q)"


def _default(func: str) -> _Getter:
    """The value of ``func`` for a user without matching events."""
    value = 0 if func in ("count", "sum", "distinct") else None

    def get_default(uid: str) -> Any:
        return value

    return get_default


def _getter(c: _Column, rows: Mapping[str, tuple[Any, ...]], i: int) -> _Getter:
    """How ``c``'s value is read from a user's grouped row (column ``i`` on)."""
    func, event = c.agg.func, c.agg.event
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
    views: dict[str, EventView] = {}

    def get_event(uid: str) -> Any:
        view = views.get(uid)
        if view is not None:
            return view
        row = rows.get(uid)
        text = None if row is None else row[i]
        if text is None:
            return None
        at = int(text[:_KEY_DIGITS]) + origin
        view = views[uid] = EventView(event, from_ms(at), _props(text[2 * _KEY_DIGITS :]))
        return view

    return get_event


# ---------------------------------------------------------------- the population


def evaluate_population(
    conn: sqlite3.Connection,
    segments: Mapping[str, ir.SegmentIR],
    now_ms: int,
    users: Sequence[str] | None = None,
    names: Sequence[str] | None = None,
    *,
    chunk: int = CHUNK,
) -> Iterator[tuple[str, dict[str, bool]]]:
    """Each user's membership of each of ``names`` (default: every segment) at
    ``now_ms``, user by user in id order: ``(user_id, {segment: member})``.

    ``users`` defaults to everyone: the users of ``profiles`` (every user the event
    log names has a row there).
    Segments are evaluated as the engine does (on the user's profile, with no event
    in focus, ``segment NAME`` evaluating that segment the same way, an unknown one
    false), with the aggregates of :class:`BulkAggregates`, ``chunk`` users at a time.
    A chunk's events are read before its first user is yielded, and no statement
    stays open while the caller handles a user: it may write to the store meanwhile
    (what it writes to ``events`` or ``profiles`` may or may not be seen by later
    chunks). ``users`` are deduplicated and yielded in id order.
    """
    wanted = sorted(segments) if names is None else list(names)
    unknown = [n for n in wanted if n not in segments]
    if unknown:
        raise KeyError(f"no such segment: {', '.join(unknown)}")
    used = _closure(wanted, segments)
    preds = {n: compile_predicate(segments[n].expr) for n in used}
    exprs = [segments[n].expr for n in used]
    aggs = aggregates_in(exprs)
    reads_profile = any(isinstance(x, ir.Attr) for e in exprs for x in ir.walk(e))
    # A segment that reads nothing of a user but counts (count, distinct: whole
    # numbers, nothing to tell apart but their value) gives the same answer to every
    # user with the same counts.
    counted: dict[str, list[str]] = {}
    for name in used:
        mine = [segments[n].expr for n in _closure([name], segments)]
        found = aggregates_in(mine)
        if all(a.func in ("count", "distinct") for a in found) and not any(
            isinstance(x, ir.Attr) for e in mine for x in ir.walk(e)
        ):
            counted[name] = [a.model_dump_json() for a in found]
    answers: dict[str, dict[tuple[Any, ...], bool]] = {n: {} for n in counted}
    now = from_ms(now_ms)
    fallback = SqlAggregates(conn)
    for part, dense in _chunks(conn, users, chunk):
        bulk = BulkAggregates(conn, now, part, aggs, dense=dense, fallback=fallback)
        profiles = _profiles(conn, part, dense) if reads_profile else {}
        shortcuts = {}
        for name, keys in counted.items():
            signature = bulk._signature(keys)
            if signature is not None:
                shortcuts[name] = (signature, answers[name])
        members = _Members(preds, shortcuts)
        # A user with none of the events the segments read, when the segments read
        # nothing else of theirs, is in the same segments as any other such user.
        blank: dict[str, bool] | None = None
        for uid in part:
            if blank is not None and bulk.blank(uid):
                yield uid, dict(blank)
                continue
            scope = Scope(
                now=now,
                profile=profiles.get(uid) or {},
                aggregates=bulk,
                segments=members,
                user_id=uid,
            )
            members.start(scope)
            got = {n: members(n, scope) for n in wanted}
            if blank is None and not reads_profile and bulk.blank(uid):
                blank = dict(got)
            yield uid, got


_Shortcut = tuple[Callable[[str], tuple[Any, ...]], dict[tuple[Any, ...], bool]]


class _Members:
    """``segment NAME`` for the user of :meth:`start`'s scope (a scope it is asked in is
    that user's): evaluated once, then remembered; a segment with a shortcut is looked
    up by the user's values of its aggregates."""

    def __init__(self, preds: Mapping[str, Predicate], shortcuts: Mapping[str, _Shortcut]) -> None:
        self._preds = preds
        self._shortcuts = shortcuts
        self._scope = Scope(now=datetime.min)
        self._memo: dict[str, bool] = {}

    def start(self, scope: Scope) -> None:
        """Answer for the user of ``scope`` from now on."""
        self._scope = scope
        self._memo = {}

    def __call__(self, name: str, scope: Scope) -> bool:
        got = self._memo.get(name)
        if got is None:
            pred = self._preds.get(name)
            if pred is None:
                return False
            shortcut = self._shortcuts.get(name)
            if shortcut is None:
                got = bool(pred(self._scope))
            else:
                signature, seen = shortcut
                key = signature(self._scope.user_id)
                got = seen.get(key)
                if got is None:
                    got = seen[key] = bool(pred(self._scope))
            self._memo[name] = got
        return got


def _closure(names: Iterable[str], segments: Mapping[str, ir.SegmentIR]) -> list[str]:
    """``names`` and the segments they use, directly or not, that exist, sorted."""
    return sorted(n for n in ir.segment_closure(names, segments) if n in segments)


def _chunks(
    conn: sqlite3.Connection, users: Sequence[str] | None, size: int
) -> Iterator[tuple[list[str], bool]]:
    """Sorted chunks of users, each with whether to read it as an id range."""
    if users is not None:
        ordered = sorted(set(users))
        for i in range(0, len(ordered), size):
            part = ordered[i : i + size]
            yield part, _is_dense(conn, part)
        return
    # Every user the log names has a profile row (the store keeps it so), so paging
    # the profiles is paging everyone, without a DISTINCT over the whole event log.
    after: str | None = None
    while part := _page(conn, "SELECT user_id FROM profiles", after, size):
        yield part, True
        if len(part) < size:
            return
        after = part[-1]


def _page(conn: sqlite3.Connection, select: str, after: str | None, size: int) -> list[str]:
    args: tuple[object, ...] = (size,)
    sql = f"{select} ORDER BY user_id LIMIT ?"
    if after is not None:
        sql, args = f"{select} WHERE user_id > ? ORDER BY user_id LIMIT ?", (after, size)
    return [r[0] for r in conn.execute(sql, args)]


def _is_dense(conn: sqlite3.Connection, part: Sequence[str]) -> bool:
    """Whether ``part`` makes up enough of its id range that scanning the range beats
    one index seek per user (judged by the profiles in the range)."""
    if len(part) < 256:
        return False
    (in_range,) = conn.execute(
        "SELECT COUNT(*) FROM profiles WHERE user_id BETWEEN ? AND ?", (part[0], part[-1])
    ).fetchone()
    return bool(len(part) * 4 >= in_range)


def _profiles(
    conn: sqlite3.Connection, part: Sequence[str], dense: bool
) -> dict[str, dict[str, Any]]:
    """The profiles of ``part`` (and, for a dense part, of the users between)."""
    if dense:
        sql = "SELECT user_id, traits FROM profiles WHERE user_id BETWEEN ? AND ?"
        rows = conn.execute(sql, (part[0], part[-1]))
    else:
        sql = (
            "SELECT user_id, traits FROM profiles WHERE user_id IN (SELECT value FROM json_each(?))"
        )
        rows = conn.execute(sql, (json.dumps(list(part)),))
    return {uid: dict(json.loads(traits)) for uid, traits in rows}
