"""Reads of one snapshot of a PostgreSQL store by its URL, without opening the store
(no migration, no pool kept): the metrics scrape (:func:`snapshot`, the admin reads)
and the dashboard (:mod:`journeyc.store.postgres.ui`) each read on a connection of
their own, in a ``REPEATABLE READ READ ONLY`` transaction: every read of a block sees
the same committed snapshot, and none waits for a writer (MVCC) or holds one up.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from journeyc.store.errors import OperationalError
from journeyc.store.postgres.admin import PostgresAdminReads
from journeyc.store.postgres.errors import converted
from journeyc.store.postgres.schema import Connection
from journeyc.store.postgres.store import CONNECT_TIMEOUT_S
from journeyc.store.targets import hidden, shown_url

__all__ = ["SNAPSHOT_CONNECT_TIMEOUT_S", "connected", "snapshot"]

SNAPSHOT_CONNECT_TIMEOUT_S = 5
"""How long :func:`snapshot` waits for the server (a scrape must not hang)."""


@contextmanager
def connected(url: str, connect_timeout_s: int = CONNECT_TIMEOUT_S) -> Iterator[Connection]:
    """A connection to ``url`` for the block, reading one snapshot, read-only; closed
    after the block.

    A server that does not answer within ``connect_timeout_s`` (or refuses the login)
    raises :class:`~journeyc.store.errors.OperationalError` naming the URL without its
    password; the driver's errors in the block are the store's."""
    try:
        conn = psycopg.connect(url, autocommit=True, connect_timeout=connect_timeout_s)
    except psycopg.Error as exc:
        # Operational, as a store that answers no more: a scrape skips it, the API
        # answers 503.
        raise OperationalError(
            f"{shown_url(url)}: cannot read the PostgreSQL store: {hidden(str(exc), url)}"
        ) from None
    try:
        with conn:
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            yield conn
    except psycopg.Error as exc:  # the store's error, not the driver's
        raise converted(exc) from exc


@contextmanager
def snapshot(url: str) -> Iterator[PostgresAdminReads]:
    """The admin reads of one snapshot of the store in the database ``url`` names
    (a ``/metrics`` scrape of the daemon), on a connection of their own."""
    with connected(url, SNAPSHOT_CONNECT_TIMEOUT_S) as conn:
        yield PostgresAdminReads(conn)
