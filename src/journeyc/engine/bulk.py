"""Set-based evaluation: segment membership of a whole population at once.

:class:`~journeyc.engine.aggregates.StoreAggregates` answers one aggregate for one
user with one statement; a segment refresh over a million users would run tens of
millions of them. :class:`BulkAggregates` answers the aggregates of a set of users
from the store's set-based reads (:class:`~journeyc.store.abc.PopulationReads`; the
SQL is :mod:`journeyc.store.compiled.population`): one grouped statement for all of
them, after which :meth:`BulkAggregates.value` is a dict lookup.
:func:`evaluate_population` walks the users in chunks of sorted ids, one such scan
per chunk, and evaluates the segments on each user.

Results are exactly those of :class:`~journeyc.engine.aggregates.StoreAggregates`:
whatever has no exact set-based form (see the store's module) goes to a per-user
source, for that aggregate only and lazily (only for the users asked about), as
does any user, time or aggregate the instance was not built for.

:func:`evaluate_population` evaluates a segment once per user, and not at all when
the answer is known: a user with none of the events the segments read gets the
answers of the first such user, and a segment that reads nothing but counts
(``count``, ``distinct``) the answer of the first user with the same counts, when
no segment reads the profile.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from journeyc.compile import ir
from journeyc.engine.aggregates import AggregateSource, StoreAggregates, from_ms, to_ms
from journeyc.engine.expr import Predicate, Scope, compile_expr, compile_predicate
from journeyc.engine.values import EventView
from journeyc.store.abc import PopulationReads

__all__ = ["CHUNK", "BulkAggregates", "aggregates_in", "evaluate_population"]

CHUNK = 50_000
"""Users per chunk of :func:`evaluate_population`: what one grouped scan covers."""


def aggregates_in(exprs: Iterable[ir.Expr]) -> list[ir.Agg]:
    """Every aggregate ``exprs`` use (those inside a ``where`` too), each once."""
    seen: dict[str, ir.Agg] = {}
    for e in exprs:
        for x in ir.walk(e):
            if isinstance(x, ir.Agg):
                seen.setdefault(x.model_dump_json(), x)
    return list(seen.values())


_Getter = Callable[[str], Any]


class BulkAggregates:
    """The aggregates of ``users`` at ``now``, computed for all of them at once by the
    store (``population.grouped``).

    ``aggs`` are computed together on the first :meth:`value` call; an aggregate
    asked for later that was not among them is computed then, on its own. ``dense``
    (the default) reads the users' events as an id range: users that make up most
    of their range; otherwise one index seek per user. ``fallback`` answers what has
    no set-based form; by default the store's per-user statements.
    """

    def __init__(
        self,
        population: PopulationReads,
        now: datetime,
        users: Iterable[str],
        aggs: Iterable[ir.Agg] = (),
        *,
        dense: bool = True,
        fallback: AggregateSource | None = None,
    ) -> None:
        self._now = now
        at_now = Scope(now=now)
        self._grouped = population.grouped(
            to_ms(now), users, aggs, dense=dense, outer=lambda e: compile_expr(e)(at_now)
        )
        self._members = self._grouped.members
        self._fallback = (
            fallback if fallback is not None else StoreAggregates(population.aggregates())
        )
        self._getters: dict[str, _Getter | None] = {}

    @property
    def users(self) -> list[str]:
        """The users this instance answers for itself, sorted."""
        return self._grouped.users

    def value(self, agg: ir.Agg, key: str, scope: Scope) -> Any:
        """The value of ``agg`` for ``scope.user_id`` at ``scope.now``."""
        try:
            get = self._getters[key]
        except KeyError:
            get = self._getters[key] = self._getter(agg, key)
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
        return self._grouped.blank(uid)

    def signature(self, keys: Sequence[str]) -> Callable[[str], tuple[Any, ...]] | None:
        """The values of the aggregates ``keys`` (``count`` and ``distinct`` only) for
        a user of the set at this instance's time, as one tuple; None when one of
        them goes per user."""
        return self._grouped.signature(keys)

    def _getter(self, agg: ir.Agg, key: str) -> _Getter | None:
        """The store's getter of ``agg``; for ``last``/``first``, its event as an
        :class:`EventView` (one per user, made once)."""
        raw = self._grouped.getter(agg, key)
        if raw is None or agg.func not in ("last", "first"):
            return raw
        event = agg.event
        views: dict[str, EventView] = {}

        def get_event(uid: str) -> Any:
            view = views.get(uid)
            if view is not None:
                return view
            got = raw(uid)
            if got is None:
                return None
            view = views[uid] = EventView(event, from_ms(got[0]), got[1])
            return view

        return get_event


# ---------------------------------------------------------------- the population


def evaluate_population(
    population: PopulationReads,
    segments: Mapping[str, ir.SegmentIR],
    now_ms: int,
    users: Sequence[str] | None = None,
    names: Sequence[str] | None = None,
    *,
    chunk: int = CHUNK,
) -> Iterator[tuple[str, dict[str, bool]]]:
    """Each user's membership of each of ``names`` (default: every segment) at
    ``now_ms``, user by user in id order: ``(user_id, {segment: member})``.

    ``population`` is the store's set-based reads (``store.population()``).
    ``users`` defaults to everyone: every user the event log names.
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
    fallback = StoreAggregates(population.aggregates())
    for part, dense in population.chunks(users, chunk):
        bulk = BulkAggregates(population, now, part, aggs, dense=dense, fallback=fallback)
        profiles = population.profiles(part, dense) if reads_profile else {}
        shortcuts = {}
        for name, keys in counted.items():
            signature = bulk.signature(keys)
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
