"""Store-wide locks for the work only one process of a cluster may do at a time
(retention, deploys): PostgreSQL's session advisory locks, each held on a connection
of its own for the block (:meth:`journeyc.store.abc.Store.cluster_lock`).

A session lock belongs to its connection, not to a transaction, so it cannot live on
a pooled connection (another thread's transaction would run inside it, and returning
the connection would keep it locked). Closing the connection releases it: at the end
of the block, when the store closes, and when the process dies (the server notices the
connection drop), so a crashed holder never keeps a lock.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg
from psycopg import errors

from journeyc.store.postgres.errors import converted
from journeyc.store.postgres.schema import Connection

__all__ = ["PostgresClusterLocks", "lock_key"]


def lock_key(name: str) -> int:
    """The advisory lock key of the lock ``name``: a signed 64-bit number from a hash of
    the name, the same in every process and version (not Python's ``hash``)."""
    digest = hashlib.blake2b(f"journeyc cluster lock {name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class PostgresClusterLocks:
    """The cluster locks one store takes, each on a connection opened with ``connect``
    (an autocommit connection to the store's database)."""

    def __init__(self, connect: Callable[[], Connection]) -> None:
        self._connect = connect
        self._guard = threading.Lock()
        self._held: set[Connection] = set()

    @contextmanager
    def hold(self, name: str, wait_s: float = 0.0) -> Iterator[bool]:
        """A block holding the lock ``name`` if no other session does, or once none
        does within ``wait_s`` (the server queues the wait: ``lock_timeout``); yields
        whether it was taken."""
        try:
            conn = self._connect()
        except psycopg.Error as exc:
            raise converted(exc) from exc
        with self._guard:
            self._held.add(conn)
        try:
            try:
                yield _take(conn, lock_key(name), wait_s)
            except psycopg.Error as exc:
                raise converted(exc) from exc
        finally:
            with self._guard:
                self._held.discard(conn)
            conn.close()  # ends the session: the lock goes with it

    def close(self) -> None:
        """Release every lock held (the store closes): their blocks run on unlocked."""
        with self._guard:
            held, self._held = self._held, set()
        for conn in held:
            conn.close()


def _take(conn: Connection, key: int, wait_s: float) -> bool:
    """Take the advisory lock ``key`` on ``conn``'s session: at once if free, else
    waiting up to ``wait_s``; whether it was taken."""
    if wait_s <= 0:
        row = conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
        return bool(row and row[0])
    conn.execute("SELECT set_config('lock_timeout', %s, false)", (f"{round(wait_s * 1000)}ms",))
    try:
        conn.execute("SELECT pg_advisory_lock(%s)", (key,))
    except errors.LockNotAvailable:
        return False
    return True
