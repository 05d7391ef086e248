"""Word of appends to the log for waiting engine workers (PostgreSQL's LISTEN/NOTIFY;
the SQLite store has one engine, which appends itself, and offers none)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import psycopg
import pytest

from journeyc.store.abc import EventWakeups
from journeyc.store.errors import StoreError
from journeyc.store.postgres import PostgresStore
from journeyc.store.postgres.wakeups import EVENTS_CHANNEL
from tests.store_contract.calls import track

OpenPostgres = Callable[..., PostgresStore]
SOON = 1.0  # a wake arrives within a second
QUIET = 0.3  # how long a wait that must not wake waits


@pytest.fixture
def listener(open_postgres: OpenPostgres) -> Iterator[EventWakeups]:
    """Wakeups from a store of their own (another worker's), closed after the test."""
    wakeups = open_postgres().event_wakeups()
    yield wakeups
    wakeups.close()


def test_an_append_from_another_store_wakes_the_waiter(
    open_postgres: OpenPostgres, listener: EventWakeups
) -> None:
    writer = open_postgres()
    assert listener.wait(QUIET) is False  # nothing yet: the wait times out
    writer.append_events([track("a")])
    assert listener.wait(SOON) is True
    assert listener.wait(QUIET) is False
    listener.close()
    with pytest.raises(StoreError, match="closed"):
        listener.wait(QUIET)


def test_appends_before_the_wait_wake_it_once(
    open_postgres: OpenPostgres, listener: EventWakeups
) -> None:
    # The listener listens from its creation: what is appended between a worker's read
    # and its wait is not missed; several appends are one wake.
    writer = open_postgres()
    for i in range(3):
        writer.append_events([track(f"m{i}")])
    time.sleep(QUIET)  # all three delivered to the listener's connection
    assert listener.wait(SOON) is True
    assert listener.wait(QUIET) is False


def test_nothing_new_wakes_no_one(open_postgres: OpenPostgres, listener: EventWakeups) -> None:
    writer = open_postgres()
    writer.append_events([track("a")])
    assert listener.wait(SOON) is True
    writer.append_events([track("a")])  # a duplicate: nothing logged
    with pytest.raises(RuntimeError), writer.transaction():
        writer.append_events([track("b")])
        raise RuntimeError  # rolled back: never logged
    assert listener.wait(QUIET) is False


def test_the_wake_comes_when_the_append_commits(
    open_postgres: OpenPostgres, listener: EventWakeups
) -> None:
    writer = open_postgres()
    with writer.transaction():
        writer.append_events([track("a")])
        assert listener.wait(QUIET) is False
    assert listener.wait(SOON) is True


def test_a_lost_connection_wakes_and_the_next_wait_listens_again(
    postgres_url: str, open_postgres: OpenPostgres, listener: EventWakeups
) -> None:
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        killed = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND query = %s",
            (f"LISTEN {EVENTS_CHANNEL}",),
        ).fetchall()
    assert killed == [(True,)]
    assert listener.wait(SOON) is True  # what came meanwhile is unknown: read again
    assert listener.wait(QUIET) is False  # listening again
    open_postgres().append_events([track("a")])
    assert listener.wait(SOON) is True
