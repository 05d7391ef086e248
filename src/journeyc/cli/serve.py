"""``journeyc serve``: run the daemon — the HTTP API, the engine on the wall clock, the
dispatcher, and a watcher that redeploys the project when it changes."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from journeyc.cli.common import (
    EXIT_INVALID,
    EXIT_OK,
    STORE_TARGET,
    load_config_file,
    usage_error,
)
from journeyc.config import CONFIG_FILE, STORE_ENV, Config, store_target
from journeyc.serve.logs import configure_logging
from journeyc.store.targets import StoreTarget

DEFAULT_PROJECT = Path("journeys")

config_option = click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help=f"The configuration file (default: ./{CONFIG_FILE} when there is one).",
)
store_option = click.option(
    "--store",
    "--db",
    "db",
    type=STORE_TARGET,
    metavar="FILE|URL",
    help="The store: a SQLite file, or a PostgreSQL database by its postgresql:// URL "
    f"(default: [store] of the configuration, else ${STORE_ENV}, else ./journeyc.db). "
    "--db is the same option.",
)


def read_config(config_file: Path | None) -> tuple[Config, Path | None]:
    """The configuration and the file it came from: ``config_file``, else
    ./journeyc.toml when present, else the defaults. A bad file exits 1; a missing
    ``--config`` file is a usage error."""
    if config_file is None and Path(CONFIG_FILE).is_file():
        config_file = Path(CONFIG_FILE)
    return load_config_file(config_file), config_file


@click.command()
@click.argument(
    "project_dir",
    required=False,
    type=click.Path(file_okay=False, path_type=Path),
    metavar="[PROJECT_DIR]",
)
@config_option
@store_option
@click.option("--host", help="The address to listen on (default: [server] host, 127.0.0.1).")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    help="The port (default: [server] port, 8700); 0 picks a free one, printed at start.",
)
@click.option(
    "--no-watch",
    is_flag=True,
    help="Run only what `journeyc deploy` deployed: the project directory is neither "
    "deployed nor watched (see above).",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
    help="debug adds one line per engine run (with its action counts) and per request.",
)
def serve(
    project_dir: Path | None,
    config_file: Path | None,
    db: StoreTarget | None,
    host: str | None,
    port: int | None,
    no_watch: bool,
    log_level: str,
) -> None:
    """Run the daemon: the HTTP API, the engine on the wall clock and the dispatcher.

    Serves the journeys under PROJECT_DIR (default ./journeys) from a store: a SQLite
    file, or a PostgreSQL database (--store postgresql://…; docs/postgres.md).
    Without options it needs nothing else: the store is ./journeyc.db, every channel
    prints to stdout, the API listens on 127.0.0.1:8700, and ./journeyc.toml is read
    when present.

    \b
    The API takes Segment's track, identify and batch calls (POST /v1/track …) with
    the write key as the HTTP Basic user name, and has an admin API (Bearer admin
    token), a webhook for providers' delivery reports (POST /v1/deliveries, signed
    with the deliveries secret: docs/deliveries.md), /healthz, /metrics, /docs and
    the dashboard at /ui (a login form takes the admin token). The write
    key, the admin token and the deliveries secret come from [server] in
    journeyc.toml, else JOURNEYC_WRITE_KEY, JOURNEYC_ADMIN_TOKEN and
    JOURNEYC_DELIVERIES_SECRET, else they are generated once, kept in the store and
    printed at start.

    \b
    The project directory is watched: a valid change is deployed (new entries take
    the new version; users in flight stay on theirs unless the journey says
    `upgrade in place`); an invalid one is logged with its diagnostics and the last
    good version keeps running. Events written by `journeyc ingest` into the same
    store are picked up within seconds. Timers that came due while the daemon was
    down run as soon as it starts. Logs go to stderr, one line per event of note.

    \b
    With --no-watch, deployments are reviewed instead (journeyc plan, journeyc
    deploy): the daemon neither deploys nor watches PROJECT_DIR; it runs the
    project last deployed into the store, takes a `journeyc deploy` made while it
    runs within seconds, and refuses to start (exit 1) when nothing was ever
    deployed into the store.

    \b
    It runs as two processes: this one serves the API, an engine process it starts
    runs the engine, the clock, delivery and the watcher. The engine process dies
    with this one; if it dies alone, it is logged and started again.

    SIGTERM or SIGINT stops it gracefully: no new requests, the requests and the
    engine run or send in hand finish, providers are closed, both processes exit. A
    second signal while it stops exits at once (code 1).

    Exit codes: 0 stopped by a signal, 1 invalid journeys, configuration or store,
    nothing deployed (--no-watch), or the address is taken, 2 usage error.
    """
    from journeyc.serve.daemon import Daemon, ServeSettings, StartupError
    from journeyc.serve.watch import InvalidProjectError

    configure_logging(log_level)
    config, used_file = read_config(config_file)
    if project_dir is None:
        project_dir = DEFAULT_PROJECT
        if not project_dir.is_dir() and not no_watch:
            usage_error("no ./journeys directory here; name the project directory to serve")
    elif not project_dir.is_dir() and not no_watch:
        usage_error(f"{project_dir}: no such directory")
    settings = ServeSettings(
        project_dir=project_dir,
        store_path=store_target(db, config),
        config=config,
        config_file=used_file,
        host=host if host is not None else config.server.host,
        port=port if port is not None else config.server.port,
        watch=not no_watch,
    )
    daemon = Daemon(settings)
    daemon.install_signal_handlers()
    try:
        daemon.start()
    except InvalidProjectError as exc:
        click.echo(exc.text, err=True, nl=False)
        click.echo(
            f"journeyc: {exc.errors} error(s) in {project_dir}; the daemon did not start",
            err=True,
        )
        sys.exit(EXIT_INVALID)
    except StartupError as exc:
        click.echo(f"journeyc: {exc}", err=True)
        sys.exit(EXIT_INVALID)
    try:
        click.echo(daemon.banner(), err=True, nl=False)
        daemon.serve()
    finally:
        daemon.stop()
    logging.getLogger("journeyc.serve").info("stopped")
    sys.exit(EXIT_OK)
