"""Shared test set-up: hypothesis profiles, paths, and a PostgreSQL server."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from tests.daemon_helpers import Daemon
from tests.engine_helpers import PostgresStores
from tests.postgres_server import PostgresServer, start_server, unavailable

ROOT = Path(__file__).resolve().parent.parent

# `ci` keeps the suite fast on 2 cores; `thorough` goes deep when asked for with
# `pytest --hypothesis-profile=thorough`.
settings.register_profile(
    "ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "dev", max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "thorough", max_examples=3000, deadline=None, suppress_health_check=list(HealthCheck)
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    """Daemons a test starts (append them): killed at the end, whatever happened."""
    started: list[Daemon] = []
    yield started
    for d in started:
        d.kill()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer | str]:
    """This test process's PostgreSQL server (see tests/postgres_server.py), started on
    first use; the reason as text when none could be started."""
    with contextlib.ExitStack() as stack:
        try:
            server = stack.enter_context(start_server())
            server.prepare_template(_migrate)
        except Exception as exc:
            yield f"{type(exc).__name__}: {exc}"
            return
        yield server


def _migrate(url: str) -> None:
    """Give the test databases' template the store's schema."""
    from journeyc.store.postgres import PostgresStore

    PostgresStore.open(url).close()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer | str) -> Iterator[str]:
    """The URL of a fresh PostgreSQL database with the store's schema, dropped after
    the test. Skipped without a server, a failure under CI."""
    if isinstance(postgres_server, str):
        unavailable(postgres_server)
    with postgres_server.database() as url:
        yield url


@pytest.fixture
def empty_postgres_url(postgres_server: PostgresServer | str) -> Iterator[str]:
    """The URL of a fresh, empty PostgreSQL database (no store in it yet)."""
    if isinstance(postgres_server, str):
        unavailable(postgres_server)
    with postgres_server.database(empty=True) as url:
        yield url


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def engine_stores(
    request: pytest.FixtureRequest, postgres_server: PostgresServer | str
) -> Iterator[PostgresStores | None]:
    """Where an engine test's runs go, once per kind of store: None for SQLite (the
    simulator's own store, tests/engine_helpers.py's ``run``), else PostgreSQL
    databases emptied for each run (``run(..., on=engine_stores)``). Module-scoped, so
    hypothesis examples share the databases (each run empties its own)."""
    if request.param == "sqlite":
        yield None
        return
    if isinstance(postgres_server, str):
        unavailable(postgres_server)
    stores = PostgresStores(postgres_server.database)
    try:
        yield stores
    finally:
        stores.close()
