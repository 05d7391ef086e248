"""What journeyc needs of a store, as small interfaces (after APScheduler 4's data stores).

The engine, the daemon, the CLI and the message renderer talk to a store only through
these; every SQL statement and every database driver import lives in the packages
that implement them (:mod:`journeyc.store.sqlite`, the embedded default, and
:mod:`journeyc.store.postgres`). No connection object crosses this boundary.

Each interface is named for what it holds. :class:`Store` is their sum: one object
per open store, whose factory methods hand out the per-use parts (the engine's unit
of work, the outbox, ...). One contract suite (``tests/store_contract/``) runs over
every implementation; a behaviour the engine relies on is written there, once.

The interfaces are :class:`typing.Protocol` classes: an implementation does not
inherit from them; mypy checks it structurally where the contract suite assigns it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, NamedTuple, Protocol, runtime_checkable

from journeyc.compile import ir
from journeyc.events import Event
from journeyc.store.leases import Member, WorkerLeases
from journeyc.store.rows import (
    ActionCount,
    ActionRecord,
    Cohort,
    Delivery,
    Deployed,
    DeployedJourney,
    DeployedSegment,
    EntryGroup,
    FeedbackCount,
    InFlight,
    Instance,
    JourneyTotals,
    JourneyVersion,
    LiveInstance,
    OutboxCount,
    RecordedAction,
    RecordedSegmentChange,
    ScheduleRow,
    ScheduleRowValues,
    SegmentRow,
    Send,
    StoredEvent,
    UserHit,
    UserRecord,
)
from journeyc.store.tables import Row, Table

__all__ = [
    "ActionRecord",
    "AdminReads",
    "AggregateQuery",
    "AggregateReads",
    "Catalog",
    "CatalogProduct",
    "CopyableStore",
    "Cursors",
    "DashboardReads",
    "Deliveries",
    "DeploymentReads",
    "EventHistory",
    "EventLog",
    "EventWakeups",
    "FailedSend",
    "Failure",
    "GroupedAggregates",
    "Identities",
    "InboxRecord",
    "Leases",
    "LiveInstance",
    "Membership",
    "NoExactFormError",
    "Outbox",
    "PartitionLog",
    "PartitionedStore",
    "PopulationReads",
    "Profiles",
    "PutOff",
    "QueuedSend",
    "RecommendationReads",
    "ReplayReads",
    "ReportReads",
    "Retry",
    "ScheduleRows",
    "SegmentBook",
    "SegmentDefinition",
    "Settings",
    "SimulationStore",
    "Store",
    "TableDump",
    "TableLoad",
    "UnitOfWork",
    "Upkeep",
]


class EventLog(Protocol):
    """The event log: append-only, ordered by arrival (``seq``), one row per messageId."""

    def append_events(
        self, events: Sequence[Event], *, merge_traits: bool = True, link: bool = True
    ) -> list[int | None]:
        """Log ``events`` in order, in one transaction; the seq of each, or None for a
        messageId already logged (nothing is written twice). ``merge_traits`` merges
        identify traits into profiles; ``link`` names each event's canonical user."""
        ...

    def link_events(self, events: Sequence[Event]) -> list[Event]:
        """``events`` with each user id replaced by the canonical user it names."""
        ...

    def unlogged(self, events: Sequence[Event]) -> list[Event]:
        """Those of ``events`` whose messageId is not in the log yet."""
        ...

    def has_events_after(self, seq: int) -> bool:
        """Whether the log holds an event later than ``seq``."""
        ...

    def events_after(self, seq: int, limit: int = 1000) -> list[StoredEvent]:
        """At most ``limit`` events after ``seq``, in order."""
        ...

    def event_names(self) -> set[str]:
        """Every event name the log has seen."""
        ...


class Profiles(Protocol):
    """Users' traits, merged from identify calls (later ``at`` wins per trait)."""

    def get_profile(self, user_id: str) -> dict[str, Any]:
        """The user's traits (empty for an unknown user)."""
        ...

    def get_profiles(self, user_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The traits of each of ``user_ids`` that has a profile."""
        ...

    def set_traits(self, user_id: str, changes: Mapping[str, Any], at_ms: int) -> None:
        """Merge ``changes`` into the user's traits as of ``at_ms``."""
        ...


class Identities(Protocol):
    """Ids merged into another user (anonymous to known)."""

    def canonical_user(self, user_id: str) -> str:
        """The user ``user_id`` names: itself, or the user it was merged into."""
        ...

    def identities_of(self, user_id: str) -> list[str]:
        """Every id that names the same user as ``user_id``, the canonical one first."""
        ...

    def merge_users(self, frm: str, into: str) -> None:
        """Make ``frm`` an alias of ``into``: its events and profile move along."""
        ...


class Cursors(Protocol):
    """Named positions in the event log (how far a reader has got)."""

    def get_cursor(self, name: str) -> int:
        """The cursor's seq (0 when never set)."""
        ...

    def set_cursor(self, name: str, seq: int) -> None:
        """Move the cursor to ``seq``."""
        ...


class Settings(Protocol):
    """Small named values the daemon keeps (its generated keys and tokens)."""

    def get_setting(self, name: str) -> str | None:
        """The value, or None."""
        ...

    def put_setting(self, name: str, value: str) -> None:
        """Set the value."""
        ...

    def setting(self, name: str, default: Callable[[], str]) -> str:
        """The value, first set to ``default()`` when missing (once, across processes)."""
        ...


# ---------------------------------------------------------------- compiled reads
#
# The store compiles these from the IR into its own query language (its dialect);
# the engine keeps the meaning (journeyc.engine.aggregates, journeyc.engine.bulk) and
# evaluates in Python what a query cannot take.


class NoExactFormError(Exception):
    """A compiled read cannot answer exactly (a bound value, or the arithmetic, has no
    exact form in the query language): the engine reduces the rows itself."""


class AggregateQuery(Protocol):
    """One aggregate (``count(order_completed where …)``) compiled for one user at a
    time; its window is ``since_ms < at <= now_ms`` (``since_ms`` None: all time)."""

    @property
    def sql(self) -> str | None:
        """The statement that answers it; None when :meth:`answer` cannot (a ``where``
        with no translation): the engine then reduces :meth:`rows`."""
        ...

    @property
    def outer(self) -> Sequence[ir.Expr]:
        """Values of the caller's scope the statement binds (profile attributes,
        ``now``): the engine computes them for each call, in this order."""
        ...

    def answer(
        self, user_id: str, now_ms: int, since_ms: int | None, outer: Sequence[object]
    ) -> Any:
        """The aggregate's value for ``user_id`` (for ``last``/``first``: the event's
        ``(at_ms, props)``, or None), ``outer`` the values of :attr:`outer`; raises
        :class:`NoExactFormError` when it cannot answer exactly."""
        ...

    def rows(
        self, user_id: str, now_ms: int, since_ms: int | None
    ) -> Sequence[tuple[int, int, Mapping[str, Any]]]:
        """The user's events of the aggregate's name and window, ``(seq, at_ms,
        props)`` in ``(at, seq)`` order."""
        ...


class AggregateReads(Protocol):
    """Aggregates compiled per dialect, over the event log."""

    def compile(self, agg: ir.Agg, *, translate_where: bool = True) -> AggregateQuery:
        """``agg`` compiled once (the caller keeps it); ``translate_where=False`` leaves
        every ``where`` to the engine."""
        ...


class GroupedAggregates(Protocol):
    """The aggregates of a set of users at one time, computed for all of them at once."""

    @property
    def users(self) -> list[str]:
        """The users of the set, sorted."""
        ...

    @property
    def members(self) -> frozenset[str]:
        """The users of the set."""
        ...

    def getter(self, agg: ir.Agg, key: str) -> Callable[[str], Any] | None:
        """How ``agg`` (``key`` identifies it) is read for a user of the set, as
        :meth:`AggregateQuery.answer` gives it (raising ``ValueError`` or
        ``OverflowError`` for a row it cannot decode); None when it has no exact
        set-based form (the caller asks per user)."""
        ...

    def blank(self, user_id: str) -> bool:
        """Whether the user has none of the events the aggregates asked for so far
        read (so each has its default); False when not known for sure."""
        ...

    def signature(self, keys: Sequence[str]) -> Callable[[str], tuple[Any, ...]] | None:
        """The values of the ``count``/``distinct`` aggregates ``keys`` for a user, as
        one tuple (users with equal tuples are alike to them); None when one of
        them has no set-based form."""
        ...


class PopulationReads(Protocol):
    """Set-based segment evaluation: the users in chunks, their profiles and their
    aggregates, a chunk at a time."""

    def chunks(self, users: Sequence[str] | None, size: int) -> Iterator[tuple[list[str], bool]]:
        """``users`` (default: every user the log names) in sorted chunks of at most
        ``size``, each with whether it is dense (most of its id range)."""
        ...

    def profiles(self, users: Sequence[str], dense: bool) -> dict[str, dict[str, Any]]:
        """The traits of each of ``users`` that has a profile (a dense chunk may
        give those of the users between too)."""
        ...

    def grouped(
        self,
        now_ms: int,
        users: Iterable[str],
        aggs: Iterable[ir.Agg] = (),
        *,
        dense: bool = True,
        outer: Callable[[ir.Expr], object],
    ) -> GroupedAggregates:
        """The aggregates of ``users`` at ``now_ms`` (``aggs`` computed together at
        first use); ``outer`` computes a value of the outer scope a ``where`` reads
        (the same for every user: ``now``)."""
        ...

    def aggregates(self) -> AggregateReads:
        """The per-user reads, for what has no set-based form."""
        ...


class RecommendationReads(Protocol):
    """What the recommendation filters (``top_sellers``, ``popular``, ``cross_sell``)
    read: the catalog's in-stock products and what the log says was viewed and bought.
    A product id in the log is matched as text, trimmed (a number names the product of
    its digits); an order's lines are the objects of its ``products`` list, or the
    order itself when it has none."""

    def window_scores(self, start_ms: int, end_ms: int) -> dict[str, tuple[float, int]]:
        """Units bought (a missing quantity is 1, one not a positive number 0) and
        views per product id over ``[start_ms, end_ms)``."""
        ...

    def in_stock(self, by: str, value: str) -> list[str]:
        """The ids of the in-stock products whose ``by`` (``"brand"`` or
        ``"category"``) is ``value``."""
        ...

    def cross_sell_candidates(self, user_id: str, before_ms: int) -> list[str]:
        """The ids of the in-stock products of the categories the user bought from
        before ``before_ms`` that they did not buy then."""
        ...

    def bought(self, user_id: str, start_ms: int, now_ms: int) -> list[str]:
        """The ids of the products the user bought in ``[start_ms, now_ms]``."""
        ...

    def products(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The in-stock products among ``ids``, by id, as dicts: ``id``, ``name``,
        ``brand``, ``category``, ``price`` (a whole float as an int), ``url``,
        ``image``, then their extra fields."""
        ...


class CatalogProduct(Protocol):
    """A product as the catalog feed gives it (:class:`journeyc.catalog.Product`)."""

    @property
    def id(self) -> str:
        """The product's id (text)."""
        ...

    @property
    def name(self) -> str | None:
        """Its name."""
        ...

    @property
    def brand(self) -> str | None:
        """Its brand."""
        ...

    @property
    def category(self) -> str | None:
        """Its category."""
        ...

    @property
    def price(self) -> float | None:
        """Its price (not negative)."""
        ...

    @property
    def url(self) -> str | None:
        """Its page."""
        ...

    @property
    def image(self) -> str | None:
        """Its picture."""
        ...

    @property
    def in_stock(self) -> bool:
        """Whether it can be recommended."""
        ...

    @property
    def extra(self) -> Mapping[str, Any]:
        """Its other fields, given to templates beside the named ones."""
        ...


class Catalog(Protocol):
    """The product catalog's feed writes (events teach products too, as they are
    appended: only what the catalog lacks)."""

    def replace_products(
        self,
        products: Sequence[CatalogProduct],
        at_ms: int,
        *,
        chunk: int = 1000,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Write ``products`` in one transaction, each replacing the whole product of
        its id (a later one of the same id wins; a field it leaves out becomes
        empty), ``at_ms`` their update time; ``progress(done)`` is told after each
        ``chunk``. How many ids were not in the catalog before."""


# -- the daemon's parts: the outbox -------------------------------------------------


class QueuedSend(NamedTuple):
    """An outbox row as :meth:`Outbox.claim` hands it out: what to send, to whom, and
    the attempts made so far. ``key`` is unique in the outbox: it travels to the
    receiver as the send's idempotency key."""

    id: int
    key: str
    journey_id: str
    user_id: str
    step: str
    channel: str | None
    message: str
    content: str  # the rendered fields, a JSON object
    attempts: int


class Retry(NamedTuple):
    """A failed attempt to try again: the row's attempts so far (this one counted),
    when it is due again (epoch ms) and why this one failed."""

    attempts: int
    next_attempt_at: int
    error: str
    id: int


class Failure(NamedTuple):
    """A row that will not be sent: its attempts (this one counted) and why."""

    attempts: int
    error: str
    id: int


class PutOff(NamedTuple):
    """A claimed row handed back untried, due again at ``next_attempt_at`` (its
    attempts unchanged): its channel's breaker is open."""

    next_attempt_at: int
    id: int


class Outbox(Protocol):
    """The queue of sends the engine wrote, as the dispatcher works through it.

    A row is ``queued`` until it is ``sent`` or ``failed`` (``suppressed`` rows
    never queue). A queued row is *due* once its ``next_attempt_at`` has come.
    Several workers (dispatchers) may work one outbox at once, each with an id of
    its own: :meth:`claim` leases due rows to one worker by moving their
    ``next_attempt_at`` to the lease's end and naming the worker in ``claimed_by``,
    so no other worker takes them while the lease lasts, and a worker that dies
    leaves its rows to be taken again when the lease ends (or at once, by
    :meth:`reclaim`). An outcome is written only to a row still ``queued``: a row
    the lease lost and another worker sent stays sent.

    Delivery is at least once: a worker that dies between a provider's acceptance
    and :meth:`mark_sent` leaves the row to be sent again. Each row's ``key`` is
    unique across the outbox (a unique index: the engine's write of a row already
    queued changes nothing), and travels to the receiver as the idempotency key, so
    the receiver drops the repeat.

    Every method runs inside the caller's :meth:`Store.transaction` when there is
    one (the dispatcher records outcomes and claims in one short transaction, and
    calls no provider inside it). A PostgreSQL implementation selects due rows
    ``FOR UPDATE SKIP LOCKED`` in :meth:`claim`, :meth:`claim_lanes` and
    :meth:`undeliverable`, so concurrent workers claim disjoint rows without waiting
    on each other.
    """

    def next_due(self, skip_channels: Collection[str] = ()) -> int | None:
        """When the earliest queued row is due (epoch ms; a claimed row's lease end),
        leaving out the rows of ``skip_channels`` (rows without a channel always
        count); None when none is queued."""
        ...

    def undeliverable(self, now_ms: int, channels: Collection[str], limit: int) -> list[QueuedSend]:
        """At most ``limit`` rows due at ``now_ms`` that no worker can send: without a
        channel, or of a channel not in ``channels`` (the ones this worker has a
        provider for), earliest due first (then by id). Not claimed: the caller
        fails them (:meth:`fail`) in the same transaction."""
        ...

    def claim(
        self, channel: str, now_ms: int, limit: int, worker: str, lease_until_ms: int
    ) -> list[QueuedSend]:
        """Lease to ``worker`` at most ``limit`` rows of ``channel`` due at ``now_ms``,
        earliest due first (then by id): they are due again at ``lease_until_ms``
        unless an outcome is written first, and ``claimed_by`` names ``worker``.
        Rows another worker holds (a live lease, or a row lock) are skipped, never
        waited for."""
        ...

    def claim_lanes(
        self, wants: Sequence[tuple[str, int]], now_ms: int, worker: str, lease_until_ms: int
    ) -> dict[str, list[QueuedSend]]:
        """:meth:`claim` for several channels at once: ``wants`` is ``(channel, limit)``
        pairs, each channel at most once (a ValueError otherwise). Returns each wanted
        channel's leased rows (every wanted channel is a key; a limit of 0 or less
        claims nothing), at most its limit, earliest due first (then by id), leased
        to ``worker`` until ``lease_until_ms`` as :meth:`claim` leases them, rows
        another worker holds skipped. The dispatcher's one claim per pump: a
        PostgreSQL implementation claims for every channel in one statement."""
        ...

    def put_off_channel(self, channel: str, now_ms: int, until_ms: int) -> int:
        """Make the rows of ``channel`` due at ``now_ms`` due at ``until_ms`` instead,
        attempts unchanged and unclaimed (the channel's breaker is open until
        then); how many."""
        ...

    def mark_sent(self, sent_at_ms: int, ids: Sequence[int]) -> None:
        """The provider accepted these queued rows at ``sent_at_ms``: ``sent``, one
        more attempt counted, the error and the claim cleared."""
        ...

    def mark_sent_late(self, rows: Sequence[tuple[int, int]]) -> None:
        """``(sent_at_ms, id)``: queued rows given up (their attempt counted then,
        by :meth:`retry`) that the provider accepted after all: ``sent``."""
        ...

    def retry(self, rows: Sequence[Retry]) -> None:
        """Failed attempts of queued rows: their attempts, next due time and error
        as given; unclaimed."""
        ...

    def fail(self, rows: Sequence[Failure]) -> None:
        """Queued rows that will not be sent: ``failed``, with their attempts and
        error; unclaimed."""
        ...

    def put_off(self, rows: Sequence[PutOff]) -> None:
        """Queued rows handed back untried: due again as given, unclaimed."""
        ...

    def reclaim(self, now_ms: int, alive: Collection[str]) -> int:
        """Make due at ``now_ms`` the queued rows claimed by a worker not in
        ``alive`` (a dead worker's claims, sent again with the same key: the
        receiver drops a repeat); how many. The daemon, the one worker on its
        store, passes its own id at start; a deployment of several workers passes
        the ids of those alive (the holders of unexpired worker leases). Rows whose
        worker is gone are due again when their lease ends anyway: this only makes
        them due sooner."""
        ...


# -- the daemon's parts: admin reads ------------------------------------------------


class InboxRecord(NamedTuple):
    """An in-app message delivered to a user (``sent_at`` in epoch ms)."""

    id: int
    journey_id: str
    step: str
    message: str
    content: dict[str, Any]
    sent_at: int | None


class FailedSend(NamedTuple):
    """A failed outbox row, for status reports (``created_at`` in epoch ms)."""

    key: str
    journey_id: str
    user_id: str
    step: str
    channel: str | None
    attempts: int
    created_at: int
    error: str | None


class AdminReads(Protocol):
    """What the admin API, ``journeyc status``, ``/metrics`` and the daemon's polls
    read, from one consistent snapshot of the committed store (:meth:`Store.reading`):
    the reads of one block see the same state, and never wait for a writer.

    Users are named by their canonical id (see :meth:`canonical_user`).
    """

    def canonical_user(self, user_id: str) -> str:
        """The user ``user_id`` names: itself, or the user it was merged into."""
        ...

    def ping(self) -> None:
        """Answer a trivial query (raises what the database raises when it cannot)."""
        ...

    def count_events(self) -> int:
        """Events in the log."""
        ...

    def count_profiles(self) -> int:
        """Users with a profile."""
        ...

    def last_seq(self) -> int:
        """The seq of the log's last event (0 for an empty log)."""
        ...

    def cursor(self, name: str) -> int:
        """The named cursor's seq (0 when never set)."""
        ...

    def traits(self, user_id: str) -> dict[str, Any] | None:
        """The user's traits; None when the user has no profile."""
        ...

    def live_instances(self, user_id: str) -> list[LiveInstance]:
        """The user's running instances, by journey."""
        ...

    def memberships(self, user_id: str) -> list[tuple[str, int]]:
        """``(segment, since_ms)`` for each segment the user is a member of, by name."""
        ...

    def recent_actions(self, user_id: str, limit: int) -> list[ActionRecord]:
        """The user's last ``limit`` actions, newest first."""
        ...

    def has_events(self, user_id: str) -> bool:
        """Whether the log holds an event of the user."""
        ...

    def journey_versions(self) -> list[tuple[str, str, int, bool]]:
        """``(journey, version, deployed_at_ms, active)`` for every deployed version, by
        journey then deployment time."""
        ...

    def live_per_step(self) -> list[tuple[str, str, str, int]]:
        """``(journey, version, step, instances)``: running instances, by journey then
        step."""
        ...

    def entry_cohorts(self) -> list[tuple[str, str | None, bool, int, int]]:
        """``(journey, arm, held out, entries, goals)``: the held-out entries together
        whatever their arm (``arm`` None), the others by the split arm they took
        (None: no split), by journey."""
        ...

    def sends_per_journey(self) -> list[tuple[str, str, str, int]]:
        """``(journey, status, label, rows)``: outbox rows per journey and status; the
        label is the reason of a suppressed row (``unknown`` when none), else the
        channel (``none`` when none); ordered by all three."""
        ...

    def sends_per_channel(self) -> list[tuple[str, str, int]]:
        """``(channel, status, rows)``: outbox rows per channel (``none`` when none)
        and status, ordered by both."""
        ...

    def outbox_statuses(self) -> dict[str, int]:
        """Outbox rows per status (the statuses with rows only)."""
        ...

    def backlog(self) -> int:
        """Outbox rows queued and not yet sent."""
        ...

    def recent_failures(self, limit: int) -> list[FailedSend]:
        """The last ``limit`` failed sends, newest first."""
        ...

    def inbox(self, user_id: str, limit: int) -> list[InboxRecord]:
        """The user's last ``limit`` delivered in-app messages, newest first."""
        ...


# -- the daemon's parts: upkeep -----------------------------------------------------


class Upkeep(Protocol):
    """The daemon's housekeeping of its store: retention, and for a store with a
    write-ahead log of its own (SQLite) when that log is copied into the database.
    A store without such a log does nothing in :meth:`checkpoint` and
    :meth:`defer_checkpoints`."""

    def remove_old(self, before_ms: int) -> tuple[int, int]:
        """Delete, in one transaction, what is older than ``before_ms`` and no longer
        needed: outbox rows sent (by ``sent_at``) or suppressed (by ``created_at``),
        and actions. Failed sends and entries stay. The rows removed: (outbox,
        actions)."""
        ...

    def defer_checkpoints(self, pages: int) -> None:
        """Let this store's own commits copy the log into the database only once it
        passes ``pages`` pages (a backstop: :meth:`checkpoint` does it off the
        writers' path)."""
        ...

    def checkpoint(self) -> None:
        """Copy the committed log into the database without waiting for or blocking
        readers and writers, on a connection of the upkeep's own (so another
        thread may call it while the store's connection is busy)."""
        ...

    def fold_sums(self) -> int:
        """Fold the reports' sums that writers added as separate delta rows into their
        totals, where the store keeps them so (PostgreSQL, where several writers add to
        the same sums at once); readers see the same sums before and after. The delta
        rows folded; a store that adds to its sums in place (SQLite) does nothing."""
        ...

    def refresh_statistics(self) -> list[str]:
        """Bring the query planner's statistics of tables that grew much since they
        were last gathered up to date, where the store's planner needs them (a
        server's: PostgreSQL); the tables done. A store whose planner reads no such
        statistics (SQLite) does nothing."""
        ...

    def close(self) -> None:
        """Release what the upkeep opened (not the store)."""
        ...


# -- copying a store's rows (journeyc store copy) -----------------------------------


class TableDump(Protocol):
    """One snapshot of a store's tables, read a chunk at a time by
    :func:`journeyc.store.copy.copy_store` (values in the neutral form of
    :mod:`journeyc.store.tables`: JSON as text, flags as ``bool``)."""

    def count(self, table: Table) -> int:
        """The rows ``table`` holds."""
        ...

    def rows(self, table: Table, after: Row | None, limit: int) -> list[Row]:
        """Up to ``limit`` rows of ``table`` (its columns, in order), in the order of
        its key, past the row whose key is ``after`` (None: from the first)."""
        ...

    def last_id(self, table: Table) -> int:
        """The highest number the store has handed out in ``table``'s identity
        column, deleted rows' included (0: none)."""
        ...


class TableLoad(Protocol):
    """Writes of a store's tables by :func:`journeyc.store.copy.copy_store`; each
    joins the caller's transaction (:meth:`CopyableStore.transaction`)."""

    def count(self, table: Table) -> int:
        """The rows ``table`` holds."""
        ...

    def clear(self, table: Table) -> None:
        """Delete every row of ``table``."""
        ...

    def load(self, table: Table, rows: Sequence[Row]) -> None:
        """Insert ``rows`` (in :class:`TableDump`'s form) into ``table``, numbered
        columns as given. A value the store cannot hold raises
        :class:`~journeyc.store.errors.StoreError` naming the table."""
        ...

    def continue_ids(self, table: Table, after: int) -> None:
        """Make the store number ``table``'s next rows past ``after`` and past every
        number its rows hold."""
        ...

    def analyze(self, table: Table) -> None:
        """Gather the query planner's statistics of ``table`` after its rows were
        loaded, where the store's planner keeps them (PostgreSQL; SQLite: nothing)."""
        ...


class CopyableStore(Protocol):
    """A store whose rows can be copied to or from another store of any kind."""

    @property
    def path(self) -> str:
        """Where the store is (a URL without its password)."""
        ...

    def transaction(self) -> AbstractContextManager[object]:
        """A block whose writes commit together or not at all."""
        ...

    def table_dump(self) -> AbstractContextManager[TableDump]:
        """A block reading one snapshot of the committed store, on a connection of
        its own (writers go on meanwhile; what they commit is not in it)."""
        ...

    def table_load(self) -> TableLoad:
        """The writes of a copy into this store."""
        ...

    def close(self) -> None:
        """Release the store."""
        ...


# -- the daemon's parts: worker leases ---------------------------------------------


class Leases(Protocol):
    """Partition leases of the engine's workers (:mod:`journeyc.store.leases`): one
    holder per partition at a time; a lease not renewed within its time to live
    expires, and another worker may take the partition. Times are the store's clock."""

    def acquire(self, worker_id: str, partitions: Sequence[int], ttl_s: float) -> list[int]:
        """Take those of ``partitions`` that are free, expired, or the worker's own
        already (renewed), for ``ttl_s``; the partitions it holds now (sorted)."""
        ...

    def renew(self, worker_id: str, partitions: Sequence[int], ttl_s: float) -> list[int]:
        """Heartbeat: extend the worker's unexpired leases of ``partitions`` by
        ``ttl_s``; those it still holds (sorted). A partition missing from the answer
        is lost: the worker must stop handling it (and may ``acquire`` it again)."""
        ...

    def release(self, worker_id: str, partitions: Sequence[int]) -> None:
        """Give up the worker's leases of ``partitions`` (others may take them now)."""
        ...

    def workers(self) -> list[WorkerLeases]:
        """Each worker holding an unexpired lease: its partitions and last heartbeat,
        by worker id."""
        ...


# -- several engine workers on one store (PostgreSQL): partitions, wakeups ----------


class PartitionLog(Protocol):
    """The event log read by partition (:mod:`journeyc.store.partitions`), for an engine
    worker that handles the partitions it leases: each partition has a cursor of its
    own (``engine/<p>`` in the cursor table); a partition without one starts at the
    single engine's cursor (``engine``), so a store moves from one engine to several
    workers without replaying anything."""

    def events_after(self, parts: Sequence[int], limit: int = 1000) -> list[StoredEvent]:
        """Up to ``limit`` events of the users of ``parts`` past each partition's cursor,
        in log order: every event of ``parts`` up to the last one returned is in the
        answer (none is skipped for a later one)."""
        ...

    def advance(self, parts: Sequence[int], seq: int) -> None:
        """Set the cursor of each of ``parts`` to ``seq`` unless it is past it already
        (after handling what :meth:`events_after` returned up to ``seq``); inside the
        caller's transaction, if one is open."""
        ...

    def fence(self, worker_id: str, parts: Sequence[int]) -> list[int]:
        """Those of ``parts`` the worker still holds unexpired leases of (sorted, by the
        store's clock), their lease rows locked against a takeover until the caller's
        transaction ends: the first thing in each engine batch's transaction, so that
        a worker whose lease expired writes for none of its partitions and another
        worker's takeover waits for the batch to commit."""
        ...

    def lag(self, parts: Sequence[int]) -> tuple[int, int | None]:
        """How far behind the log ``parts`` are: the events of theirs past their
        cursors, and when the oldest of those was received (epoch ms; None: none)."""
        ...

    def partition_of(self, user_id: str) -> int:
        """The partition the user's rows are in, as the store computes it."""
        ...


class EventWakeups(Protocol):
    """Word of new events in the log, from whichever process appended them: a worker
    waits on it between batches instead of polling. One thread waits at a time."""

    def wait(self, timeout_s: float) -> bool:
        """Whether events were appended since the last wait (or during this one), by
        ``timeout_s``: several appends wake once. A lost connection wakes too (what
        it missed is unknown) and the next wait reconnects."""
        ...

    def close(self) -> None:
        """Stop listening (after the last wait)."""
        ...


class Store(EventLog, Profiles, Identities, Cursors, Settings, Protocol):
    """One open store: the parts above, its transactions and its lifecycle."""

    @property
    def path(self) -> str:
        """Where the store is (a file path, ``:memory:``, or a URL without its password)."""
        ...

    @property
    def schema_version(self) -> int:
        """The schema version of the open store."""
        ...

    def transaction(self) -> AbstractContextManager[object]:
        """A block whose writes, through any part of this store, commit together or
        not at all; blocks nest (savepoints). A writer that cannot start within the
        store's lock timeout raises :class:`~journeyc.store.errors.StoreBusyError`."""
        ...

    def forget_user(self, user_id: str) -> dict[str, int]:
        """Delete everything kept of the user (every id of theirs); rows per table."""
        ...

    def counts(self) -> dict[str, int]:
        """Rows per table, for status pages."""
        ...

    def close(self) -> None:
        """Release the store; it cannot be used afterwards."""
        ...

    # -- the engine's unit of work and its rows (instances, entries, segments,
    #    schedules, the event index): added as they move into the store ----------

    @property
    def in_transaction(self) -> bool:
        """Whether a transaction is open: the engine's step then runs inside it (a
        caller that holds one around its steps, the simulator) instead of its own."""
        ...

    def has_profile(self, user_id: str) -> bool:
        """Whether the store knows the user (every user it has seen has a profile,
        empty or not)."""
        ...

    def entry_cohorts(self) -> list[Cohort]:
        """Entries and goals per journey and group, for A/B reports: ``(journey, arm,
        held out, entries, goals)``, the held-out entries together whatever their arm
        (``arm`` None), the others by the split arm they took (None: no split), by
        journey."""
        ...

    def profile_zones(self) -> dict[str, str]:
        """Each user's profile ``timezone`` trait when it is a string, as given (a name
        the engine does not know too), by user."""
        ...

    def in_use(self, *but_settings: str) -> tuple[bool, bool]:
        """Whether the store holds events, entries, profiles or deployed journeys, and
        whether it holds a setting other than ``but_settings``."""
        ...

    def runtime(self) -> UnitOfWork:
        """A new unit of work over the engine's rows (instances, entries, outbox,
        actions, deployed journeys); one per engine."""
        ...

    def event_history(self) -> EventHistory:
        """The engine's reads of the event log by user."""
        ...

    def schedule_rows(self) -> ScheduleRows:
        """The schedules' rows (one per journey, scheduled trigger and zone in use)."""
        ...

    def segment_book(self) -> SegmentBook:
        """A new book of the segments' rows (deployed definitions, members, changes)."""
        ...

    # -- compiled reads (aggregates, set-based segment evaluation, recommendations,
    #    the catalog): added as they move into the store ---------------------------

    def aggregates(self) -> AggregateReads:
        """Aggregates compiled to the store's query language, one user at a time."""
        ...

    def population(self) -> PopulationReads:
        """Set-based segment evaluation over every user (or a set of them)."""
        ...

    def recommendations(self) -> RecommendationReads:
        """The reads of the recommendation filters."""
        ...

    def catalog(self) -> Catalog:
        """The product catalog's feed writes."""
        ...

    # -- the daemon's parts (the outbox, admin reads, worker leases): added as they
    #    move into the store -------------------------------------------------------

    def outbox(self) -> Outbox:
        """The outbox, for a dispatcher: its writes join this store's transactions."""
        ...

    def reading(self) -> AbstractContextManager[AdminReads]:
        """A block reading one snapshot of the committed store, on a connection (or
        session) of its own: it never waits for a writer, nor holds one up."""
        ...

    def upkeep(self) -> Upkeep:
        """The daemon's housekeeping of this store; close it after use."""
        ...

    def leases(self) -> Leases:
        """The engine workers' partition leases."""
        ...

    def cluster_lock(self, name: str, wait_s: float = 0.0) -> AbstractContextManager[bool]:
        """A block holding the store-wide lock ``name`` if it is free (or, with
        ``wait_s``, once it is, waiting at most that long), for work only one process
        of a cluster may do at a time (retention, deploys); it yields whether the lock
        was taken (a caller that did not get it skips the work). The lock is released
        at the end of the block, or when the store closes or its process dies. A store
        only one process writes (SQLite's) always yields True."""
        ...

    # -- reads of what is deployed and of journey reports ---------------------------

    def deployments(self) -> DeploymentReads:
        """What the store has deployed and holds in flight (``journeyc plan``)."""
        ...

    def report_reads(self) -> AbstractContextManager[ReportReads]:
        """A block reading one snapshot of the store for journey reports."""
        ...

    def replay_reads(self) -> ReplayReads:
        """The reads of ``journeyc why``'s replay of one user."""
        ...

    def deliveries(self) -> Deliveries:
        """The providers' delivery reports; writes join this store's transactions."""
        ...


@runtime_checkable
class PartitionedStore(Protocol):
    """What a store several engine workers share by partition has beyond
    :class:`Store` (PostgreSQL's): ``isinstance(store, PartitionedStore)`` tells."""

    def partition_log(self) -> PartitionLog:
        """The event log read by partition, with the workers' fence."""
        ...

    def event_wakeups(self) -> EventWakeups:
        """A new listener for appends to the log (close it after use)."""
        ...

    def membership(self) -> Membership:
        """The live workers: who shares the partitions out."""
        ...


class Membership(Protocol):
    """The engine workers alive on a store several share (:mod:`journeyc.serve.cluster`):
    each renews its membership with its heartbeat, and one that stops is gone when it
    expires, so that a worker holding no partition yet still counts when the
    partitions are shared out. Times are the store's clock."""

    def join(self, worker_id: str, ttl_s: float, about: str) -> None:
        """Heartbeat of the worker's membership: it is a live worker for ``ttl_s``
        more (``about``: its description, JSON text), partitions or not."""
        ...

    def members(self) -> list[Member]:
        """The live workers (unexpired memberships), by worker id."""
        ...

    def leave(self, worker_id: str) -> None:
        """The worker stops: its membership and every lease it holds go at once."""
        ...


# -- the simulator's in-memory unit of work -------------------------------------------


@runtime_checkable
class SimulationStore(Store, Protocol):
    """A store the simulator owns from start to end: it holds the events and the
    profile changes in memory and writes them in bulk (only the SQLite store has this
    mode; a daemon's store never needs it)."""

    def hold_events(self, learn: bool = True, write: bool = True) -> int:
        """Hold the events logged from now on in memory until :meth:`flush_events`;
        the last ``seq`` logged so far."""
        ...

    def append_held(self, events: Sequence[Event]) -> list[StoredEvent]:
        """Append events the log does not hold (after :meth:`hold_events`), as
        :meth:`events_after` would read them."""
        ...

    def flush_events(self) -> None:
        """Write the events held since :meth:`hold_events`."""
        ...

    def hold_profiles(self) -> None:
        """Hold profile changes in memory until :meth:`flush_profiles`."""
        ...

    def flush_profiles(self) -> None:
        """Write the profile changes held since :meth:`hold_profiles`."""
        ...

    def bulk(self) -> AbstractContextManager[None]:
        """A block whose commits are not synced to disk; leaving it syncs once."""
        ...

    def copy_in_memory(self) -> SimulationStore:
        """A new in-memory store holding a copy of this one."""
        ...


# -- reads of what is deployed and of journey reports ---------------------------------


class DeploymentReads(Protocol):
    """What the store has deployed (journeys, segments, schedules) and holds in
    flight: the reads of ``journeyc plan`` and of the engine's deploy state."""

    def active_versions(self) -> dict[str, str]:
        """The active version of each deployed journey, by journey id."""
        ...

    def journey_ir(self, journey_id: str, version: str) -> str | None:
        """The IR (JSON) of one deployed journey version, None when never deployed."""
        ...

    def in_flight(self) -> list[InFlight]:
        """Users in flight per journey, version and step, in that order."""
        ...

    def deployed_segments(self) -> dict[str, DeployedSegment]:
        """The segments the membership rows were computed with, by name."""
        ...

    def schedule_rows(self) -> list[ScheduleRow]:
        """Every schedule row, by journey, trigger and zone."""
        ...

    def known_users(self) -> int:
        """How many users the store knows."""
        ...


class Deliveries(Protocol):
    """What providers report after a send (delivered, opened, bounced, ...), each
    naming the send by its outbox key; a report kept already (same key, kind and
    provider event id) adds nothing."""

    def sends(self, keys: Iterable[str]) -> dict[str, Send]:
        """The outbox rows with these keys, by key (keys no row has are left out)."""
        ...

    def record(self, deliveries: Sequence[Delivery]) -> list[bool]:
        """Keep the reports in one transaction (inside the caller's); for each,
        whether it was new."""
        ...

    def counts(self) -> dict[tuple[str, str], int]:
        """Reports per ``(kind, channel)`` (channel ``none`` for a send without one)."""
        ...


class ReplayReads(Protocol):
    """The reads of replaying one user (``journeyc why``): their events in log order,
    their profile before the replay starts, the journey versions the store deployed,
    and what the store recorded for them, to compare a replay with."""

    def snapshot(self) -> AbstractContextManager[None]:
        """A block reading the store at one moment (a writer goes on meanwhile)."""
        ...

    def is_known(self, user_id: str) -> bool:
        """Whether the store knows the user (a profile or an event)."""
        ...

    def user_events(self, ids: list[str]) -> list[Event]:
        """The events of any of ``ids``, in log order."""
        ...

    def profile_before(self, ids: list[str], before_ms: int) -> dict[str, dict[str, Any]]:
        """The traits of each of ``ids`` as they stood before ``before_ms``, by id."""
        ...

    def deployed_versions(self) -> list[DeployedJourney]:
        """Every journey version the store deployed, in the order they were."""
        ...

    def recorded_actions(self, ids: list[str]) -> list[RecordedAction]:
        """The action log rows of any of ``ids``, in order."""
        ...

    def recorded_segment_changes(self, ids: list[str]) -> list[RecordedSegmentChange]:
        """The logged segment changes of any of ``ids``, in order."""
        ...

    def last_activity(self) -> int | None:
        """The time of the last thing the store recorded, None for none."""
        ...


class DashboardReads(Protocol):
    """The dashboard's reads (``/ui``) of one store, read-only: each method reads one
    snapshot of its own, beside the store's writers (a daemon's), and changes nothing
    (a simulation's file too)."""

    @property
    def path(self) -> str:
        """Where the store is (as the pages name it)."""
        ...

    def check(self) -> None:
        """Raise :class:`~journeyc.store.errors.StoreError` naming the store when it
        is not a journeyc store of this version (read-only: it cannot be upgraded)."""
        ...

    def store(self) -> AbstractContextManager[Store]:
        """The store read-only, for reads that take a :class:`Store` (journey
        reports, why-traces): a write through it fails."""
        ...

    def deployed(self) -> list[Deployed]:
        """Per journey id, the active version (else the latest deployed), by id."""
        ...

    def latest_activity(self) -> int | None:
        """The time of the engine's latest action (None: none yet)."""
        ...

    def journey_totals(self, since_ms: int, until_ms: int) -> dict[str, JourneyTotals]:
        """Per journey, over ``[since_ms, until_ms)`` (whole hours): entries by UTC day,
        goals reached, messages queued and sends suppressed."""
        ...

    def find_users(self, query: str, limit: int = 20) -> list[UserHit]:
        """Users whose id is ``query`` or starts with it, or whose profile's e-mail is
        ``query`` (in any case); an alias finds its user."""
        ...

    def user(self, user_id: str, actions: int = 100, inbox: int = 20) -> UserRecord | None:
        """The user ``user_id`` names, with the latest ``actions`` and ``inbox``
        messages; None for a stranger."""
        ...


class ReportReads(Protocol):
    """The reads of journey reports (:mod:`journeyc.reports`), over one journey and
    a time range ``[since_ms, until_ms)`` (None: no bound), all in one snapshot."""

    def journey_ids(self) -> list[str]:
        """Every journey id the store has deployed, sorted."""
        ...

    def deployed_versions(self, journey_id: str) -> list[JourneyVersion]:
        """The journey's deployed versions, oldest first."""
        ...

    def entry_groups(
        self, journey_id: str, since_ms: int | None, until_ms: int | None
    ) -> list[EntryGroup]:
        """Entries made in the range per (holdout, arm), with their conversions."""
        ...

    def median_ms_to_goal(
        self, journey_id: str, since_ms: int | None, until_ms: int | None, conversions: int
    ) -> float | None:
        """The median time from entry to goal of the range's converted entries."""
        ...

    def action_counts(
        self, journey_id: str, since_ms: int | None, until_ms: int | None
    ) -> list[ActionCount]:
        """The journey's actions in the range per step, action and label."""
        ...

    def waiting_now(self, journey_id: str, version: str | None) -> dict[str, int]:
        """Users in the journey now (of one version, or all) by step."""
        ...

    def outbox_counts(
        self, journey_id: str, since_ms: int | None, until_ms: int | None
    ) -> list[OutboxCount]:
        """Outbox rows queued in the range per channel and status."""
        ...

    def feedback_counts(
        self, journey_id: str, since_ms: int | None, until_ms: int | None
    ) -> list[FeedbackCount]:
        """Messages with a provider report of each kind per channel."""
        ...


# -- the engine's unit of work and its rows -------------------------------------------


class UnitOfWork(Protocol):
    """The engine's rows (instances, entries, the outbox, the action log, deployed
    journeys) as one engine step reads and writes them; the caller holds the
    transaction (:meth:`Store.transaction`).

    An instance read in a unit is the same object for every later read in it, so each
    query sees its latest state; writes wait until :meth:`end` (or, with :meth:`hold`,
    :meth:`forget`) and go out together. A running instance is ``active`` or
    ``waiting``; one that ended leaves the table (its entry stays)."""

    @property
    def scratch(self) -> bool:
        """Whether :meth:`hold` was asked for ``scratch`` and the store was empty, so
        instances, outbox rows and actions are not written at all."""
        ...

    # journeys
    def deploy(self, journey_id: str, version: str, ir_json: str, source: str, at_ms: int) -> None:
        """Record a journey version as deployed and make it the active one."""
        ...

    def retire_except(self, journey_ids: list[str]) -> None:
        """Mark journeys that left the project inactive (their users in flight finish)."""
        ...

    def upgrade(self, journey_id: str, version: str, nodes: list[str]) -> int:
        """Move live instances of a journey to ``version`` where their node is in
        ``nodes``; how many moved."""
        ...

    def versions(self) -> list[tuple[str, str, str, bool]]:
        """Every deployed (id, version, IR JSON, active), by id."""
        ...

    def journey_ir(self, journey_id: str, version: str) -> str | None:
        """The IR (JSON) of one deployed journey version, None when never deployed."""
        ...

    # the unit's lifecycle
    def end(self) -> None:
        """End a unit: write it and forget what it read (with :meth:`hold`: nothing,
        the writes wait for :meth:`forget`)."""
        ...

    def hold(self, scratch: bool = False) -> None:
        """For the store's only writer, inside its own transaction (the simulator):
        keep every write in memory until :meth:`forget`, and answer the engine's
        questions (due timers, the next wake, sends for caps, a user's instances and
        entries) from memory. ``scratch``: the store is thrown away after the run."""
        ...

    def forget(self) -> None:
        """Write everything held; with :meth:`hold`, keep the rows read but let go of
        the instances that ended."""
        ...

    def discard(self) -> None:
        """Drop the unit unwritten (its transaction was rolled back), and stop holding."""
        ...

    # instances
    def prefetch(self, user_ids: Iterable[str]) -> None:
        """Read the running instances and latest entries of ``user_ids`` at once."""
        ...

    def live(self, user_id: str) -> list[Instance]:
        """The user's running instances, oldest first."""
        ...

    def live_in(self, journey_id: str, user_id: str) -> Instance | None:
        """The user's running instance of a journey, if any."""
        ...

    def only(self, parts: Sequence[int] | None) -> None:
        """Work on the users of ``parts`` only (the partitions of
        :mod:`journeyc.store.partitions` an engine worker leases): :meth:`due` and
        :meth:`next_wake` look at their instances alone. None (the default): every
        user. A store without partitions (SQLite: one engine per store) takes None
        only, and raises :class:`~journeyc.store.errors.StoreError` for a list."""
        ...

    def due(self, now_ms: int, limit: int) -> list[Instance]:
        """Waiting instances whose timer is due by ``now_ms``, earliest first (then
        oldest); the caller runs each or gives it back with :meth:`rearm`. Only those
        of the partitions :meth:`only` names."""
        ...

    def rearm(self, instances: Iterable[Instance]) -> None:
        """Give back instances :meth:`due` returned and the caller did not run."""
        ...

    def next_wake(self) -> int | None:
        """The earliest pending timer (epoch ms), of the partitions :meth:`only` names."""
        ...

    def create(self, inst: Instance) -> Instance:
        """Add a new instance, giving it the next id (never one handed out before),
        and its entry."""
        ...

    def save(self, inst: Instance) -> None:
        """Mark an instance changed (written with the unit)."""
        ...

    def merge_user(self, frm: str, into: str) -> list[Instance]:
        """Make ``frm``'s instances, entries and sends ``into``'s (an identity merge);
        the instances the caller ends as ``merged`` (docs/semantics.md)."""
        ...

    # entries and goals
    def last_entry(self, journey_id: str, user_id: str) -> tuple[int, int, int | None] | None:
        """The user's latest entry into a journey: (entry_no, entered_at, goal_at)."""
        ...

    def record_goal(self, journey_id: str, user_id: str, entry_no: int, at_ms: int) -> None:
        """Mark an entry as converted at ``at_ms``."""
        ...

    def record_arm(self, inst: Instance) -> None:
        """Keep the split arm an instance took with its entry."""
        ...

    # the outbox and the action log
    def sends_since(self, user_id: str, since_ms: int, journey_id: str | None) -> int:
        """Messages queued or sent to the user after ``since_ms`` (by one journey, or
        all); suppressed ones do not count."""
        ...

    def queue(
        self,
        key: str,
        inst: Instance,
        step: str,
        channel: str | None,
        message: str,
        content: dict[str, Any],
        at_ms: int,
        status: str = "queued",
        error: str | None = None,
    ) -> None:
        """Put a send (or its suppression) in the outbox, once per ``key``."""
        ...

    def log_actions(self, rows: Iterable[tuple[int, str, str, str | None, str, str]]) -> None:
        """Append (at, user, journey, step, action, detail JSON) rows to the action log."""
        ...


class EventHistory(Protocol):
    """The engine's reads of the event log by user, beside :class:`EventLog`'s: what
    the simulator's index of events (``journeyc.engine.eventindex``) reads once per
    user, and what a segment's horizon asks of a user's events."""

    def user_events(
        self, user_id: str, through_seq: int
    ) -> Sequence[tuple[int, str, int, dict[str, Any]]]:
        """The user's events up to ``through_seq`` as ``(seq, name, at, props)``, in
        ``(at, seq)`` order (props that are not an object read as ``{}``)."""
        ...

    def times(
        self, user_id: str, name: str, after_ms: int, now_ms: int
    ) -> tuple[int | None, int | None]:
        """Of the user's ``name`` events after ``after_ms``: the earliest time past
        ``now_ms``, and the earliest time up to it."""
        ...

    def last_seq(self) -> int:
        """The seq of the last event logged (0 when none is)."""
        ...


class SegmentDefinition(Protocol):
    """A segment as deployed: its expression and the hash of its definition (with the
    segments it uses), which tells whether its rows are still current."""

    @property
    def expr(self) -> ir.Expr:
        """The segment's condition."""
        ...

    @property
    def hash(self) -> str:
        """The hash of the definition and of the segments it uses."""
        ...


class SegmentBook(Protocol):
    """The segments' rows: the deployed definitions, each user's standing in each
    segment (:class:`~journeyc.store.rows.SegmentRow`), and the log of changes in and
    out. The engine decides membership; the book keeps it.

    With :meth:`hold` (the store's only writer, the simulator) rows read stay known
    and writes wait in memory until :meth:`flush`."""

    def deployed(self) -> dict[str, str]:
        """The definition hash each segment's rows were computed with, by name."""
        ...

    def define(
        self, infos: Mapping[str, SegmentDefinition], changed: Iterable[str], at_ms: int
    ) -> None:
        """Record the project's segments; drop the rows of segments no longer in it
        and of ``changed`` ones (evaluated again from scratch)."""
        ...

    def write_baseline(self, rows: Sequence[tuple[str, str, bool, int | None]], at_ms: int) -> None:
        """Store ``(user, segment, member, recheck_at)`` rows of a silent evaluation,
        since ``at_ms`` (no change logged)."""
        ...

    def hold(self) -> None:
        """Keep rows read and hold writes until :meth:`flush` (the only writer)."""
        ...

    def flush(self) -> None:
        """Write the rows and changes held."""
        ...

    def forget(self) -> None:
        """Write what is held and drop the rows kept."""
        ...

    def kept_users(self) -> int:
        """How many users' rows are kept in memory."""
        ...

    def rows(self, user_id: str) -> dict[str, SegmentRow]:
        """The user's row in each segment evaluated for them, by segment."""
        ...

    def write(
        self,
        user_id: str,
        rows: Sequence[tuple[str, SegmentRow]],
        changes: Sequence[tuple[str, bool]],
        at_ms: int,
    ) -> None:
        """Store the user's rows and log their changes (``(segment, entered)``) at ``at_ms``."""
        ...

    def merge(self, frm: str, into: str, at_ms: int) -> None:
        """Make ``frm``'s standing ``into``'s (an identity merge), no change logged: per
        segment a member row of either (the earlier ``since`` when both are in), else
        ``into``'s row, else ``frm``'s; ``frm``'s rows go, its logged changes stay."""
        ...

    def only(self, parts: Sequence[int] | None) -> None:
        """Make :meth:`due` and :meth:`next_recheck` look at the users of ``parts`` only
        (a worker's leased partitions, :mod:`journeyc.store.partitions`); None, the
        default, is every user. A store without partitions (SQLite) takes None only,
        and so does a book in ``hold`` mode (the store's only writer): a list raises
        :class:`~journeyc.store.errors.StoreError`."""
        ...

    def due(self, now_ms: int, limit: int) -> list[tuple[str, str]]:
        """``(user, segment)`` pairs whose ``recheck_at`` has come, earliest first (then
        by user and segment), of the partitions :meth:`only` names."""
        ...

    def next_recheck(self) -> int | None:
        """The earliest ``recheck_at`` of the partitions :meth:`only` names."""
        ...

    def member_counts(self) -> dict[str, int]:
        """Members per segment (segments without any are left out)."""
        ...

    def change_counts(self, since_ms: int, until_ms: int) -> dict[str, tuple[int, int]]:
        """Per segment, (entered, left) counts of the changes from ``since_ms`` to
        ``until_ms`` (segments without a change are left out)."""
        ...

    def changes(self) -> list[tuple[str, str, int, bool]]:
        """Every change logged, as ``(segment, user, at, entered)``, in time order."""
        ...

    def members(self) -> dict[tuple[str, str], bool]:
        """Whether each ``(user, segment)`` with a row is a member now."""
        ...


class ScheduleRows(Protocol):
    """The schedules' rows: per (journey, scheduled trigger, time zone in use), the
    next time it fires there and how far the audience of a firing got
    (:data:`~journeyc.store.rows.ScheduleRowValues`). When a schedule fires, and in
    which zones, is the engine's."""

    def replace(self, rows: Sequence[ScheduleRowValues]) -> None:
        """Make ``rows`` the only rows."""
        ...

    def add(self, rows: Sequence[tuple[str, int, str, str, int]]) -> None:
        """Add ``(journey, trigger, zone, spec, next_at)`` rows, each unless its
        (journey, trigger, zone) has one."""
        ...

    def rows(self) -> list[ScheduleRowValues]:
        """Every row."""
        ...

    def zone_names(self) -> set[str]:
        """Every time zone name profiles give (their ``timezone`` trait, when a string)."""
        ...

    def next_at(self) -> int | None:
        """The earliest ``next_at``."""
        ...

    def due(self, now_ms: int) -> ScheduleRowValues | None:
        """The earliest row due by ``now_ms`` (ties: by journey, trigger, zone)."""
        ...

    def audience(
        self, segment: str | None, after_user: str | None, limit: int
    ) -> list[tuple[str, Any]]:
        """The next ``limit`` users after ``after_user`` (by id) of ``segment``'s members
        (None: every user with a profile), with their ``timezone`` trait (any JSON
        value, None when absent)."""
        ...

    def set_after_user(self, journey_id: str, trigger: int, zone: str, after_user: str) -> None:
        """Record how far a firing's audience got."""
        ...

    def set_next_at(self, journey_id: str, trigger: int, zone: str, next_at: int) -> None:
        """Move a row to its next firing, its audience not started."""
        ...
