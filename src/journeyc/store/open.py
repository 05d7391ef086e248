"""Open a store by where it is: a file path (or ``:memory:``) opens the SQLite store,
a ``postgresql://`` (or ``postgres://``) URL the PostgreSQL store."""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING

from journeyc.store import abc
from journeyc.store.sqlite.admin import snapshot
from journeyc.store.sqlite.store import LOCK_TIMEOUT_S
from journeyc.store.sqlite.store import Store as SqliteStore
from journeyc.store.targets import URL_SCHEMES, is_url

if TYPE_CHECKING:
    from journeyc.store.postgres.admin import PostgresAdminReads
    from journeyc.store.postgres.aggregates import PostgresAggregates
    from journeyc.store.postgres.catalog import PostgresCatalog
    from journeyc.store.postgres.deliveries import PostgresDeliveries
    from journeyc.store.postgres.history import PostgresEventHistory
    from journeyc.store.postgres.leases import PostgresLeases
    from journeyc.store.postgres.outbox import PostgresOutbox
    from journeyc.store.postgres.population import PostgresPopulation
    from journeyc.store.postgres.recommendations import PostgresRecommendations
    from journeyc.store.postgres.replays import PostgresReplayReads
    from journeyc.store.postgres.reports import PostgresReportReads
    from journeyc.store.postgres.schedules import PostgresScheduleRows
    from journeyc.store.postgres.segments import PostgresSegmentBook
    from journeyc.store.postgres.store import PostgresStore
    from journeyc.store.postgres.ui import PostgresDashboardReads
    from journeyc.store.postgres.upkeep import PostgresUpkeep

    # mypy checks each store against the interfaces it implements here: both are a
    # whole abc.Store, and each part of the PostgreSQL store is its interface.
    _SQLITE: type[abc.Store] = SqliteStore
    _POSTGRES: type[abc.Store] = PostgresStore
    _SIMULATION: type[abc.SimulationStore] = SqliteStore
    _EVENT_LOG: type[abc.EventLog] = PostgresStore
    _PROFILES: type[abc.Profiles] = PostgresStore
    _IDENTITIES: type[abc.Identities] = PostgresStore
    _CURSORS: type[abc.Cursors] = PostgresStore
    _SETTINGS: type[abc.Settings] = PostgresStore
    _LEASES: type[abc.Leases] = PostgresLeases
    _HISTORY: type[abc.EventHistory] = PostgresEventHistory
    _SCHEDULES: type[abc.ScheduleRows] = PostgresScheduleRows
    _SEGMENTS: type[abc.SegmentBook] = PostgresSegmentBook
    _OUTBOX: type[abc.Outbox] = PostgresOutbox
    _ADMIN: type[abc.AdminReads] = PostgresAdminReads
    _UPKEEP: type[abc.Upkeep] = PostgresUpkeep
    _COPY_SQLITE: type[abc.CopyableStore] = SqliteStore
    _COPY_POSTGRES: type[abc.CopyableStore] = PostgresStore
    _AGGREGATES: type[abc.AggregateReads] = PostgresAggregates
    _POPULATION: type[abc.PopulationReads] = PostgresPopulation
    _RECOMMENDATIONS: type[abc.RecommendationReads] = PostgresRecommendations
    _CATALOG: type[abc.Catalog] = PostgresCatalog
    _REPORTS: type[abc.ReportReads] = PostgresReportReads
    _REPLAYS: type[abc.ReplayReads] = PostgresReplayReads
    _DELIVERIES: type[abc.Deliveries] = PostgresDeliveries
    _DASHBOARD: type[abc.DashboardReads] = PostgresDashboardReads

__all__ = [
    "LOCK_TIMEOUT_S",
    "URL_SCHEMES",
    "dashboard_reads",
    "is_url",
    "open_full_store",
    "open_simulation_store",
    "open_store",
    "reading_at",
]


def open_store(
    target: Path | str, *, lock_timeout_s: float = LOCK_TIMEOUT_S
) -> SqliteStore | PostgresStore:
    """The store at ``target``: a SQLite file (created when missing) or ``:memory:``,
    or the PostgreSQL database a ``postgresql://`` URL names. Writers wait at most
    ``lock_timeout_s`` for a lock.

    Both implement all of :class:`journeyc.store.abc.Store` (mypy checks both here).
    Raises :class:`~journeyc.store.errors.StoreError` with the reason, naming the
    target (a URL without its password), when it cannot be opened as a store.
    """
    if is_url(target):
        # Imported here: a SQLite user never loads the PostgreSQL driver.
        from journeyc.store.postgres.store import PostgresStore

        return PostgresStore.open(str(target), lock_timeout_s=lock_timeout_s)
    return SqliteStore.open(target, lock_timeout_s=lock_timeout_s)


def open_full_store(target: Path | str, *, lock_timeout_s: float = LOCK_TIMEOUT_S) -> abc.Store:
    """:func:`open_store`, for a caller that needs every part of
    :class:`journeyc.store.abc.Store` (the engine, the daemon, the CLI's commands): the
    SQLite file, or the PostgreSQL database a URL names.

    Raises :class:`~journeyc.store.errors.StoreError` naming the target (a URL
    without its password) when it cannot be opened: the server does not answer, the
    login is refused, the file or database is not a journeyc store."""
    return open_store(target, lock_timeout_s=lock_timeout_s)


def open_simulation_store(target: Path | str) -> abc.SimulationStore:
    """A store for the simulator to own at ``target`` (a file path or ``:memory:``):
    the SQLite store, the only one with the simulator's in-memory unit of work."""
    return SqliteStore.open(target)


def reading_at(target: Path | str) -> AbstractContextManager[abc.AdminReads]:
    """A block reading one snapshot of the store at ``target`` on a connection of its
    own, without opening the store (a metrics scrape: it never waits for a writer)."""
    if is_url(target):
        # Imported here: a SQLite user never loads the PostgreSQL driver.
        from journeyc.store.postgres.snapshots import snapshot as postgres_snapshot

        return postgres_snapshot(str(target))
    return snapshot(target)


def dashboard_reads(target: Path | str) -> abc.DashboardReads:
    """The dashboard's reads of the store at ``target`` (a SQLite file or a
    ``postgresql://`` URL), read-only (nothing is opened until a read;
    :meth:`~journeyc.store.abc.DashboardReads.check` says whether it is a store this
    journeyc reads)."""
    # Imported here: only the dashboard loads its reads.
    if is_url(target):
        from journeyc.store.postgres.ui import PostgresDashboardReads

        return PostgresDashboardReads(str(target))
    from journeyc.store.sqlite.ui import DashboardReads as SqliteDashboardReads

    return SqliteDashboardReads(target)
