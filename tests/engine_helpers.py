"""Shared helpers for engine tests: write a project, make events, simulate, filter.

A project is a dict ``{"file.journey": text}``; :func:`compile_files` writes it to a
temporary directory, checks it (no errors allowed) and lowers it to IR, cached by
content so hypothesis examples do not re-parse. :func:`run` simulates in a fresh
SQLite store and returns the actions plus a snapshot of the ``instances``,
``entries``, ``outbox`` tables and profiles, read before the store is closed; given
:class:`PostgresStores` (the ``engine_stores`` fixture), it simulates in a PostgreSQL
database emptied for the run, the engine running live (``hold=False``: the
simulator's held mode is SQLite's).
"""

from __future__ import annotations

import os
import re
import signal
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from hypothesis import reject

from journeyc.compile import ir
from journeyc.compile.lower import lower_project
from journeyc.config import Config
from journeyc.engine.actions import Action
from journeyc.engine.simulate import simulate
from journeyc.events import Event, parse_event
from journeyc.lang.checker import check_project
from journeyc.lang.project import load_project
from journeyc.store.abc import Store as AnyStore
from journeyc.store.postgres import PostgresStore
from journeyc.store.sqlite import Store
from tests.reference import ReferenceRunawayError, reference_simulate

# A real SQLite file per run, on tmpfs when there is one: creating a store on disk
# costs ~10x more (fsyncs), which hypothesis tests pay per example.
TMP_DIR: str | None = (
    "/dev/shm" if Path("/dev/shm").is_dir() and os.access("/dev/shm", os.W_OK) else None
)

MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR

# ---------------------------------------------------------------- time


def ms(text: str) -> int:
    """Epoch milliseconds of an ISO time; a time without offset is UTC."""
    t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return int(t.timestamp() * 1000)


def iso(at_ms: int) -> str:
    """``2026-01-05T10:00:00.000Z``-style text of epoch milliseconds, for events."""
    t = datetime.fromtimestamp(at_ms / 1000, UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at_ms % 1000:03d}Z"


def _at(at: str | int) -> str:
    return iso(at) if isinstance(at, int) else (at if at.endswith("Z") else at + "Z")


# ---------------------------------------------------------------- events


def track(user: str, name: str, at: str | int, mid: str | None = None, **props: Any) -> Event:
    """A Segment track call for ``user`` at ``at`` (ISO text or epoch ms)."""
    obj: dict[str, Any] = {
        "type": "track",
        "userId": user,
        "event": name,
        "timestamp": _at(at),
        "properties": props,
    }
    if mid is not None:
        obj["messageId"] = mid
    return parse_event(obj, received_ms=0)


def identify(user: str, at: str | int, mid: str | None = None, **traits: Any) -> Event:
    """A Segment identify call for ``user`` at ``at`` (ISO text or epoch ms)."""
    obj: dict[str, Any] = {
        "type": "identify",
        "userId": user,
        "timestamp": _at(at),
        "traits": traits,
    }
    if mid is not None:
        obj["messageId"] = mid
    return parse_event(obj, received_ms=0)


# ---------------------------------------------------------------- projects

_CACHE: dict[tuple[tuple[str, str], ...], ir.ProjectIR] = {}


def compile_files(files: Mapping[str, str]) -> ir.ProjectIR:
    """Check and lower a project given as file name → text (cached by content)."""
    key = tuple(sorted(files.items()))
    cached = _CACHE.get(key)
    if cached is not None:
        return cached
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name, text in files.items():
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        project = load_project([root])
        errors = [d for d in check_project(project) if d.severity == "error"]
        assert not errors, [str(d) for d in errors]
        result = lower_project(project)
    _CACHE[key] = result
    return result


def config(**engine: Any) -> Config:
    """A Config with the given ``[engine]`` keys, e.g. ``config(timezone="Asia/Bangkok")``."""
    return Config.model_validate({"engine": engine})


# ---------------------------------------------------------------- running


@dataclass
class Run:
    """What one simulation did, and what its store held at the end."""

    actions: list[Action]
    outbox: list[dict[str, Any]] = field(default_factory=list)
    instances: list[dict[str, Any]] = field(default_factory=list)
    entries: list[dict[str, Any]] = field(default_factory=list)
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def dicts(self) -> list[dict[str, Any]]:
        """The actions as the JSON objects `journeyc simulate --json` prints."""
        return [a.as_dict() for a in self.actions]

    @property
    def lines(self) -> list[str]:
        """The actions as JSON lines."""
        return [a.to_json() for a in self.actions]

    def of(self, **match: Any) -> list[dict[str, Any]]:
        """The actions (as dicts) whose keys equal every ``match`` value."""
        return select(self.dicts, **match)


def select(actions: Iterable[dict[str, Any]], **match: Any) -> list[dict[str, Any]]:
    """The action dicts whose keys equal every ``match`` value."""
    return [a for a in actions if all(a.get(k) == v for k, v in match.items())]


def _rows(store: Store, table: str) -> list[dict[str, Any]]:
    cur = store.conn.execute(f"SELECT * FROM {table} ORDER BY rowid")
    cols = [c[0] for c in cur.description]
    return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]


RUN_LIMIT_S = 30
"""A simulation that runs longer than this fails instead of hanging the suite."""


class EngineHangError(AssertionError):
    """The engine did not return within RUN_LIMIT_S seconds."""


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise :class:`EngineHangError` in the block after ``seconds`` (main thread, POSIX)."""
    if (
        not hasattr(signal, "setitimer")
        or threading.current_thread() is not threading.main_thread()
    ):
        yield
        return

    def expire(signum: int, frame: object) -> None:
        raise EngineHangError(f"the simulation ran for more than {seconds} s (engine loop?)")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class PostgresStores:
    """PostgreSQL databases for engine runs, each emptied before a run: ``slot`` names
    one (a test comparing two stores uses two); ``database()`` makes one (a context
    manager giving its URL, as ``PostgresServer.database``)."""

    def __init__(self, database: Callable[[], AbstractContextManager[str]]) -> None:
        self._database = database
        self._stack = ExitStack()
        self._urls: list[str] = []

    def close(self) -> None:
        """Drop the databases made."""
        self._stack.close()

    @contextmanager
    def fresh(self, slot: int = 0) -> Iterator[PostgresStore]:
        """The store of database ``slot``, every table emptied; closed afterwards."""
        while len(self._urls) <= slot:
            self._urls.append(self._stack.enter_context(self._database()))
        url = self._urls[slot]
        with psycopg.connect(url, autocommit=True) as conn:
            tables = [
                t
                for (t,) in conn.execute(
                    "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
                    " AND tablename <> 'schema_version'"
                )
            ]
            conn.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY")
        store = PostgresStore.open(url)
        try:
            yield store
        finally:
            store.close()


def table_rows(store: AnyStore, table: str) -> list[dict[str, Any]]:
    """Every row of ``table`` (of the engine's: instances, entries, outbox) as a dict,
    in the order they were made (SQLite's rowid, PostgreSQL's id or key)."""
    if isinstance(store, Store):
        return _rows(store, table)
    assert isinstance(store, PostgresStore)
    order = "journey_id, user_id, entry_no" if table == "entries" else "id"
    with store.connection() as conn, conn.cursor() as cur:
        cur.execute(f"SELECT * FROM {table} ORDER BY {order}")
        cols = [c.name for c in cur.description or ()]
        return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]


def run(
    project: Mapping[str, str] | ir.ProjectIR,
    events: Sequence[Event],
    *,
    config: Config | None = None,
    start: str | int | None = None,
    until: str | int | None = None,
    on: PostgresStores | None = None,
) -> Run:
    """Simulate ``project`` over ``events`` in a fresh store in a temporary directory,
    or ``on`` a PostgreSQL database (emptied first; the engine runs live)."""
    proj = project if isinstance(project, ir.ProjectIR) else compile_files(project)
    start_ms = ms(start) if isinstance(start, str) else start
    until_ms = ms(until) if isinstance(until, str) else until
    if on is not None:
        with on.fresh() as pg:
            with time_limit(RUN_LIMIT_S):
                actions = simulate(
                    proj,
                    events,
                    pg,
                    config=config,
                    start_ms=start_ms,
                    until_ms=until_ms,
                    hold=False,
                )
            return _snapshot(actions, pg, events)
    with tempfile.TemporaryDirectory(dir=TMP_DIR) as tmp:
        store = Store.open(Path(tmp) / "engine.db")
        try:
            with time_limit(RUN_LIMIT_S):
                actions = simulate(
                    proj, events, store, config=config, start_ms=start_ms, until_ms=until_ms
                )
            # Its commits went unsynced (Store.bulk); the store is left as opened.
            assert store.conn.execute("PRAGMA synchronous").fetchone()[0] == 1
            return _snapshot(actions, store, events)
        finally:
            store.close()


def _snapshot(actions: list[Action], store: AnyStore, events: Sequence[Event]) -> Run:
    """The run's actions, and what ``store`` holds after it (read before it closes)."""
    return Run(
        actions,
        outbox=table_rows(store, "outbox"),
        instances=table_rows(store, "instances"),
        entries=table_rows(store, "entries"),
        profiles={u: store.get_profile(u) for u in sorted({e.user_id for e in events})},
    )


EVERY_LINE = re.compile(r"^\s+every .*\n", re.M)


def reject_runaways(
    files: Mapping[str, str], events: Sequence[Event], start_ms: int | None, until_ms: int | None
) -> None:
    """``hypothesis.reject()`` a generated scenario that never ends (a journey
    re-entering itself at one instant, or waiting on for ever without ``until``), as
    the reference interpreter finds it. It runs event entries only: `every` entries
    are left out (see ``journey_strategies.projects`` for when that is exact)."""
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in files.items():
            (Path(tmp) / name).write_text(EVERY_LINE.sub("", text), encoding="utf-8")
        try:
            reference_simulate(
                load_project([tmp]).trees, events, start_ms=start_ms, until_ms=until_ms
            )
        except ReferenceRunawayError:
            reject()
