"""The contract suite's stores: every test here runs once on each kind of store (as
APScheduler 4's data store tests do): a SQLite file in the test's directory, and a
fresh database on the session's PostgreSQL server (tests/postgres_server.py).

``open_again`` opens a second store on the same data (another process's view): what
one writes, the other reads, and their writers meet at the same locks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from journeyc.store import open_store
from journeyc.store.abc import Store
from journeyc.store.postgres import PostgresStore

KINDS = ["sqlite", "postgres"]

Opener = Callable[..., Store]


@pytest.fixture(params=KINDS)
def target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where the test's store is: a SQLite file path or a PostgreSQL URL."""
    if request.param == "sqlite":
        return str(tmp_path / "journeyc.db")
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def open_again(target: str) -> Iterator[Opener]:
    """Open another store on the test's data (``lock_timeout_s`` as given); all are
    closed after the test."""
    opened: list[Store] = []

    def opener(*, lock_timeout_s: float = 10.0) -> Store:
        store = open_store(target, lock_timeout_s=lock_timeout_s)
        opened.append(store)
        return store

    yield opener
    for store in opened:
        store.close()


@pytest.fixture
def store(open_again: Opener) -> Store:
    """The test's store, of each kind in turn."""
    return open_again()


@pytest.fixture
def open_postgres(postgres_url: str) -> Iterator[Callable[..., PostgresStore]]:
    """Open stores on one fresh PostgreSQL database, for the parts only PostgreSQL has
    (several workers); all are closed after the test."""
    opened: list[PostgresStore] = []

    def opener(*, lock_timeout_s: float = 10.0) -> PostgresStore:
        store = PostgresStore.open(postgres_url, lock_timeout_s=lock_timeout_s)
        opened.append(store)
        return store

    yield opener
    for store in opened:
        store.close()
