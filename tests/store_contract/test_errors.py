"""What a database failure leaves the store as, on every store: journeyc's
:class:`DatabaseError` / :class:`OperationalError` (the driver's error as the cause,
its message kept), so the daemon's ``except`` clauses catch it whichever store."""

from __future__ import annotations

import sqlite3

import psycopg
import pytest
from psycopg import errors as pg_errors

from journeyc.store.abc import Store
from journeyc.store.errors import DatabaseError, OperationalError, StoreBusyError, StoreError
from journeyc.store.postgres.errors import converted as from_psycopg
from journeyc.store.sqlite.errors import converted as from_sqlite
from tests.store_contract.calls import T0


def _drop(target: str, table: str) -> None:
    """Drop ``table`` behind the store's back (another program)."""
    if target.startswith("postgresql"):
        with psycopg.connect(target, autocommit=True) as conn:
            conn.execute(f"DROP TABLE {table} CASCADE")
    else:
        conn = sqlite3.connect(target)
        try:
            conn.execute(f"DROP TABLE {table}")
            conn.commit()
        finally:
            conn.close()


def test_a_write_to_a_dropped_table_is_operational(store: Store, target: str) -> None:
    _drop(target, "settings")
    with pytest.raises(OperationalError) as info, store.transaction():
        store.put_setting("k", "v")
    assert "settings" in str(info.value)
    assert isinstance(info.value.__cause__, sqlite3.Error | psycopg.Error)


def test_a_read_of_a_dropped_table_is_operational(store: Store, target: str) -> None:
    _drop(target, "cursor")
    with pytest.raises(OperationalError) as info, store.reading() as reads:
        reads.ping()
    assert "cursor" in str(info.value)


def test_a_closed_store_used_is_a_database_error(store: Store) -> None:
    store.close()
    with pytest.raises(DatabaseError) as info, store.transaction():
        store.set_traits("u", {"x": 1}, T0)
    assert str(info.value)
    assert info.value.__cause__ is not None


def test_a_server_gone_is_operational(store: Store, target: str) -> None:
    if not target.startswith("postgresql"):
        pytest.skip("a SQLite store has no server")
    with store.reading() as reads:
        reads.ping()  # the pool's connection is open and idle
    with psycopg.connect(target, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    with pytest.raises(OperationalError), store.reading() as reads:
        reads.ping()


def test_busy_stays_busy_not_a_database_error() -> None:
    # StoreBusyError is handled apart (Retry-After from the lock timeout): it must not
    # turn into a DatabaseError, which the API answers as the store being unavailable.
    assert not issubclass(StoreBusyError, DatabaseError)
    assert issubclass(DatabaseError, StoreError) and issubclass(OperationalError, DatabaseError)


@pytest.mark.parametrize(
    ("driver_error", "operational"),
    [
        (psycopg.OperationalError("server closed the connection unexpectedly"), True),
        (pg_errors.AdminShutdown("terminating connection"), True),
        (pg_errors.UndefinedTable('relation "events" does not exist'), True),
        (pg_errors.UniqueViolation("duplicate key"), False),
        (sqlite3.OperationalError("database is locked"), True),
        (sqlite3.IntegrityError("UNIQUE constraint failed"), False),
    ],
)
def test_serve_code_catches_each_driver_error_as_the_stores(
    driver_error: Exception, operational: bool
) -> None:
    convert = from_psycopg if isinstance(driver_error, psycopg.Error) else from_sqlite
    # what serve/metrics.py, serve/worker.py and serve/api.py catch
    try:
        try:
            raise driver_error
        except (sqlite3.Error, psycopg.Error) as exc:
            raise convert(exc) from exc  # type: ignore[arg-type]
    except DatabaseError as caught:
        assert isinstance(caught, OperationalError) == operational
        assert str(caught) == str(driver_error).strip()
        assert caught.__cause__ is driver_error
