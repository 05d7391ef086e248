"""The daemon behind ``journeyc serve``: the HTTP API in this process, the engine in
another.

Two processes, so that the engine has a core of its own (one process holds one
interpreter lock: ingest and the engine took turns on one core):

- the **API process** (this module, the one ``journeyc serve`` starts): its main
  thread serves the HTTP API (:func:`~journeyc.serve.api.create_app`) with uvicorn
  and owns SIGTERM and SIGINT; ingest commits events through a
  :class:`~journeyc.store.abc.Store` of its own, then nudges the engine;
- the **engine process** (:mod:`.worker`, started and watched by
  :class:`~journeyc.serve.supervisor.EngineProcess`): the engine, APScheduler's
  clock, the dispatcher, retention, the checkpoint job and the project watcher.
  APScheduler schedules the engine, not the users: per-user waits stay rows in the
  store, and the ``engine`` job is one date trigger armed at the earliest of them
  and re-armed after every run; a nudge arms it for now.

They talk over one socket pair (:mod:`.ipc`): one byte per nudge from the API
process (events were committed), and from the engine process one JSON line after
every engine run, dispatcher run and deploy, with what ``/metrics`` shows (engine
runs, timer lateness, CPU of the engine and dispatch) and the engine side of
``/v1/status``. The API process applies them to its own metrics: counters keep
counting across a restart of the engine process, and a scrape never waits for it.
(prometheus_client's multiprocess mode would need a directory of memory-mapped
files shared by both processes, set up before the import, and drops the per-app
registries and process metrics; the engine process's CPU and memory show instead
as ``journeyc_engine_process_*``, read from ``/proc`` at scrape time.)

Writers in the two processes (and ``journeyc ingest``) queue on the store's write
lock, a thread lock and an ``flock`` on a file beside the database taken in
:meth:`Store.transaction <journeyc.store.abc.Store.transaction>`: a waiting
writer wakes as soon as the other commits, instead of polling in SQLite's busy
handler with sleeps of up to 100 ms. On a PostgreSQL store (``--store
postgresql://…``) both processes open the same database, and writers meet only on
the rows they both write: no lock file, and the write-ahead log is the server's.

The engine process dies with this one (``PR_SET_PDEATHSIG`` on Linux, SIGKILL of
this process included; the channel's end of file anywhere). When the engine process
dies on its own, this process logs it and starts another (see
:mod:`.supervisor`); ingest goes on meanwhile. SIGTERM or SIGINT: uvicorn stops
taking requests and finishes those in hand, then the engine process is told to stop
(SIGTERM), finishes the run or send in hand, and both exit 0.
"""

from __future__ import annotations

import gc
import logging
import os
import secrets
import signal
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, Literal

from journeyc import __version__
from journeyc.config import CONFIG_FILE, Config
from journeyc.serve.times import iso, now_ms
from journeyc.store.targets import StoreTarget, missing_file, shown

if TYPE_CHECKING:
    from journeyc.store.abc import Store

__all__ = [
    "ADMIN_TOKEN_ENV",
    "DELIVERIES_SECRET_ENV",
    "RETENTION_DAYS",
    "WRITE_KEY_ENV",
    "Daemon",
    "Keys",
    "Secret",
    "ServeSettings",
    "StartupError",
    "resolve_keys",
]

log = logging.getLogger("journeyc.serve")

WRITE_KEY_ENV = "JOURNEYC_WRITE_KEY"
"""The environment variable read for the write key when journeyc.toml sets none."""

ADMIN_TOKEN_ENV = "JOURNEYC_ADMIN_TOKEN"
"""The environment variable read for the admin token when journeyc.toml sets none."""

DELIVERIES_SECRET_ENV = "JOURNEYC_DELIVERIES_SECRET"
"""The environment variable read for the deliveries secret (the key that signs
``POST /v1/deliveries``) when journeyc.toml sets none."""

RETENTION_DAYS = 90
"""Sent or suppressed outbox rows and actions older than this are deleted once a day
(a constant, not a setting; entries are kept, as ``entry once`` needs them; an
instance's row goes when it ends)."""


WAL_AUTOCHECKPOINT_PAGES = 20_000
"""SQLite's own checkpoint on commit, left as a backstop: only when the log passes
this many pages (~80 MB) does a commit copy it, as it did at 1,000 before. Both
processes set it on their connections."""


class StartupError(Exception):
    """The daemon cannot start; the message says why (the command exits 1)."""


# ---------------------------------------------------------------- settings and keys


@dataclass(frozen=True, slots=True)
class ServeSettings:
    """Everything ``journeyc serve`` was told: the project, the store, the config and
    where to listen (port 0 picks a free one). ``watch`` False (``--no-watch``): the
    project directory is neither read nor watched; the engine runs the project last
    deployed into the store. ``store_path``: a SQLite file, or a PostgreSQL database
    by its URL (both processes open the same)."""

    project_dir: Path
    store_path: StoreTarget
    config: Config
    config_file: Path | None = None
    host: str = "127.0.0.1"
    port: int = 8700
    watch: bool = True


@dataclass(frozen=True, slots=True)
class Secret:
    """A key and where it came from: ``config``, ``env`` or ``store`` (generated)."""

    value: str
    source: Literal["config", "env", "store"]


@dataclass(frozen=True, slots=True)
class Keys:
    """The write key (ingest), the admin token (admin API) and the deliveries secret
    (the delivery webhook's signatures) the daemon uses."""

    write_key: Secret
    admin_token: Secret
    deliveries_secret: Secret


def resolve_keys(config: Config, setting: Callable[[str, Callable[[], str]], str]) -> Keys:
    """The keys from journeyc.toml, else the environment, else generated once.

    ``setting(name, default_fn)`` is :meth:`Store.setting`: a generated key is kept
    in the store, so the daemon keeps its keys across restarts.
    """

    def one(configured: str | None, env: str, name: str) -> Secret:
        if configured:
            return Secret(configured, "config")
        value = os.environ.get(env, "")
        if value:
            return Secret(value, "env")
        return Secret(setting(name, lambda: secrets.token_urlsafe(24)), "store")

    return Keys(
        one(config.server.write_key, WRITE_KEY_ENV, "write_key"),
        one(config.server.admin_token, ADMIN_TOKEN_ENV, "admin_token"),
        one(config.server.deliveries_secret, DELIVERIES_SECRET_ENV, "deliveries_secret"),
    )


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (port 0: one the OS picks)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


# ---------------------------------------------------------------- the daemon


def require_project_dir(project_dir: Path) -> None:
    """Raise :class:`StartupError` unless ``project_dir`` is a directory."""
    if not project_dir.is_dir():
        raise StartupError(f"{project_dir}: no such directory (the journeys to serve)")


class Service:
    """What both processes of ``journeyc serve`` share: :meth:`start` runs
    ``_start``, which registers a closer for everything it opens; when it raises,
    :meth:`stop` releases what was opened and the error goes on. :meth:`stop` runs
    the closers in reverse order and is safe to call more than once."""

    def __init__(self) -> None:
        self._stopping = False
        self._closers: list[Callable[[], None]] = []

    def start(self) -> None:
        """Start everything ``_start`` opens; on failure, release it and raise."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        """Close what was opened, last first (a closer that fails is logged)."""
        self._stopping = True
        while self._closers:
            closer = self._closers.pop()
            try:
                closer()
            except Exception:
                log.exception("while stopping")


class Daemon(Service):
    """One ``journeyc serve``: :meth:`start`, :meth:`serve`, then :meth:`stop`.

    :meth:`start` opens the store, binds the socket and starts the engine process,
    which checks and deploys the project, opens the providers and the dispatcher and
    starts the clock and the watcher; it raises
    :class:`~journeyc.serve.watch.InvalidProjectError` or :class:`StartupError` (having
    released what it opened). :meth:`serve` blocks in uvicorn until SIGTERM or SIGINT;
    :meth:`stop` stops the engine process (waiting for the run in hand), then closes
    the store and the socket.
    """

    def __init__(self, settings: ServeSettings) -> None:
        super().__init__()
        self.settings = settings
        self.config = settings.config
        self.keys: Keys | None = None
        self.address = (settings.host, settings.port)
        self.versions: dict[str, str] = {}
        self._state_lock = threading.Lock()
        self._stop_requested = False
        self._server: Any = None
        self._started_ms = now_ms()
        self._engine_status: dict[str, Any] = {}
        self._example_event = "signed_up"
        self.engine: Any = None  # the EngineProcess

    # ------------------------------------------------------------ starting

    def _start(self) -> None:
        from journeyc.serve.api import create_app
        from journeyc.serve.metrics import Metrics
        from journeyc.serve.supervisor import EngineProcess, EngineStartError
        from journeyc.serve.watch import InvalidProjectError, load_checked
        from journeyc.store.errors import StoreError
        from journeyc.store.open import open_full_store

        s = self.settings
        if s.watch:
            require_project_dir(s.project_dir)
            # An invalid project stops us before the store is created (the engine
            # process checks it again, and logs its warnings, when it deploys it).
            load_checked(s.project_dir)
        elif missing_file(s.store_path):
            # --no-watch runs what was deployed: no store, nothing deployed (and none
            # is created for nothing). A database is looked into by the engine process.
            raise StartupError(
                f"no store at {s.store_path}: `serve --no-watch` runs only what is "
                f"deployed; deploy first (journeyc deploy PROJECT_DIR --store {s.store_path})"
            )
        try:
            self.store: Store = open_full_store(
                s.store_path, lock_timeout_s=self.config.store.lock_timeout
            )
        except (StoreError, OSError) as exc:
            raise StartupError(str(exc)) from None
        self._closers.append(self.store.close)
        # Commits here leave the log to the engine process's checkpoint job too.
        upkeep = self.store.upkeep()
        upkeep.defer_checkpoints(WAL_AUTOCHECKPOINT_PAGES)
        upkeep.close()
        self.keys = resolve_keys(self.config, self.store.setting)

        self._socket = bind(s.host, s.port)
        self._closers.append(self._socket.close)
        bound = self._socket.getsockname()
        self.address = (s.host, int(bound[1]))

        self.engine = EngineProcess(
            {
                "project_dir": str(s.project_dir),
                "store_path": str(s.store_path),
                "config": self.config.model_dump_json(by_alias=True),
                "config_file": str(s.config_file) if s.config_file is not None else None,
                "watch": s.watch,
                "log_level": logging.getLevelName(logging.getLogger().getEffectiveLevel()),
            },
            self._on_engine_message,
        )
        self.metrics = Metrics(s.store_path, engine_pid=self._engine_pid)
        try:
            ready = self.engine.start()
        except EngineStartError as exc:
            message = exc.message
            if "text" in message:
                raise InvalidProjectError(str(message["text"]), int(message["errors"])) from None
            raise StartupError(str(exc)) from None
        self._closers.append(self.engine.stop)
        self._example_event = str(ready["ready"].get("example_event") or "signed_up")

        self.app = create_app(
            s.store_path,
            write_key=self.keys.write_key.value,
            admin_token=self.keys.admin_token.value,
            deliveries_secret=self.keys.deliveries_secret.value,
            on_events=self.engine.nudge,
            status=self.status,
            metrics=self.metrics,
            store=self.store,
        )
        self.app.state.config = self.config  # GET /v1/users/{id}/why replays with it

    def _engine_pid(self) -> int:
        pid = self.engine.pid if self.engine is not None else None
        return pid if pid is not None else -1  # no /proc/-1: no samples

    def _on_engine_message(self, message: dict[str, Any]) -> None:
        """What the engine process reported (see :mod:`.worker`): metrics and status."""
        run = message.get("run")
        if run is not None:
            self.metrics.engine_runs.inc()
            self.metrics.engine_run_seconds.observe(run["took_s"])
            for seconds in run["lateness_s"]:
                self.metrics.timer_lateness.observe(seconds)
        for part, seconds in message.get("cpu", {}).items():
            self.metrics.cpu_seconds.labels(part).inc(seconds)
        if "failed" in message:
            log.error("the engine process could not start: %s", message["failed"])
            if "text" in message:
                log.error("%s", str(message["text"]).rstrip())
        status = message.get("status")
        if status is not None:
            self.metrics.observe_dispatch(status.get("dispatch", {}))
            with self._state_lock:
                self._engine_status = status
                self.versions = dict(status.get("journeys", {}))

    # ------------------------------------------------------------ serving

    def serve(self) -> None:
        """Serve the HTTP API in this (the main) thread until SIGTERM or SIGINT.

        uvicorn stops taking requests and finishes those in hand; :meth:`stop` then
        stops the engine process (which finishes the run in hand) and the rest.
        """
        import uvicorn

        debug = logging.getLogger("journeyc").isEnabledFor(logging.DEBUG)
        config = uvicorn.Config(
            self.app,
            log_config=None,
            access_log=debug,
            lifespan="on",
            timeout_graceful_shutdown=10,
        )
        server = uvicorn.Server(config)
        self._server = server
        if self._stop_requested:
            return
        log.info("listening on %s", self.url)
        # What is loaded by now (modules, the app) lives as long as the process: kept
        # out of the collector, a full collection no longer walks it, which otherwise
        # stalls every thread for ~100 ms now and then.
        gc.collect()
        gc.freeze()
        # uvicorn takes the signals while it runs, then raises them again for the
        # handlers it found: ours (see install_signal_handlers) only note them.
        server.run(sockets=[self._socket])

    def install_signal_handlers(self) -> None:
        """Make SIGTERM and SIGINT stop the daemon gracefully (main thread only)."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self._stopping:
            # Stopping waits for the run in hand; a second signal gives up on it (the
            # engine process dies with this one).
            log.error("%s again while stopping: exiting now", signal.Signals(signum).name)
            os._exit(1)
        if not self._stop_requested:
            self._stop_requested = True
            log.info("stopping (%s)", signal.Signals(signum).name)
        if self._server is not None:
            self._server.should_exit = True

    @property
    def url(self) -> str:
        """The API's base URL."""
        host, port = self.address
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}"

    # ------------------------------------------------------------ reports

    def status(self) -> Mapping[str, Any]:
        """The daemon's own report for ``GET /v1/status``: this process's fields and
        the engine process's last report."""
        with self._state_lock:
            engine = self._engine_status
            pid = self.engine.pid if self.engine is not None else None
            return {
                "version": __version__,
                "started_at": iso(self._started_ms),
                "project_dir": str(self.settings.project_dir),
                "journeys": dict(engine.get("journeys", {})),
                "last_deploy_at": engine.get("last_deploy_at"),
                "last_refused_change": engine.get("last_refused_change"),
                "engine": engine.get("engine", {}),
                "dispatch": engine.get("dispatch", {}),
                "watching": bool(engine.get("watching", False)) and pid is not None,
                # Several workers on one store: this worker's id, partitions and lag,
                # and the members it saw at its last heartbeat (None: one engine).
                "cluster": engine.get("cluster"),
                "engine_process": {
                    "pid": pid,
                    "alive": pid is not None,
                    "restarts": self.engine.restarts if self.engine is not None else 0,
                },
            }

    def banner(self) -> str:
        """What ``journeyc serve`` prints at start: the API, the keys and a curl example."""
        assert self.keys is not None
        s = self.settings
        source = str(s.project_dir) if s.watch else "the store's deployment (--no-watch)"
        lines = [
            f"journeyc {__version__}: serving {len(self.versions)} journey(s) from "
            f"{source} with the store {shown(s.store_path)}",
            f"  API                {self.url}  (OpenAPI docs at {self.url}/docs)",
            f"  dashboard          {self.url}/ui  (log in with the admin token)",
            f"  write key          {_describe(self.keys.write_key, WRITE_KEY_ENV, 'write_key')}",
            "  admin token        "
            + _describe(self.keys.admin_token, ADMIN_TOKEN_ENV, "admin_token"),
            "  deliveries secret  "
            + _describe(self.keys.deliveries_secret, DELIVERIES_SECRET_ENV, "deliveries_secret")
            + "  (signs POST /v1/deliveries: docs/deliveries.md)",
            "  send an event:",
            f"    curl -u {_curl_user(self.keys.write_key, WRITE_KEY_ENV)} {self.url}/v1/track \\",
            "      -H 'Content-Type: application/json' \\",
            f'      -d \'{{"userId": "user-1", "event": "{self._example_event}", '
            '"properties": {}}\'',
        ]
        return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- helpers


def _describe(secret: Secret, env: str, key: str) -> str:
    if secret.source == "store":
        return f"{secret.value}  (generated once, kept in the store)"
    if secret.source == "env":
        return f"from ${env}"
    return f"from {CONFIG_FILE} ([server] {key})"


def _curl_user(secret: Secret, env: str) -> str:
    if secret.source == "store":
        return f"'{secret.value}:'"
    if secret.source == "env":
        return f'"${env}:"'
    return "'WRITE_KEY:'"
