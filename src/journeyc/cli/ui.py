"""``journeyc ui``: the dashboard over a store file, read-only (a simulation's
``--db sim.db``, or a copy of a daemon's store), without the daemon."""

from __future__ import annotations

import ipaddress
import sys

import click

from journeyc.cli.common import EXIT_INVALID, EXIT_OK, STORE_TARGET, usage_error
from journeyc.store.targets import StoreTarget, missing_file, shown

TOKEN_ENV = "JOURNEYC_ADMIN_TOKEN"


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@click.command()
@click.option(
    "--store",
    "--db",
    "db",
    type=STORE_TARGET,
    default="journeyc.db",
    show_default=True,
    metavar="FILE|URL",
    help="The store to show, a SQLite file or a postgresql:// URL (read-only: nothing "
    "in it changes). --db is the same option.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8701,
    show_default=True,
    help="The port; 0 picks a free one (printed at start).",
)
@click.option(
    "--token",
    envvar=TOKEN_ENV,
    help=f"Ask for this token at a login form (default: ${TOKEN_ENV}; without one, no "
    "login, which only a loopback --host allows).",
)
def ui(db: StoreTarget, host: str, port: int, token: str | None) -> None:
    """Show the dashboard of a store file: journeys with entries, conversion, sends
    and trends; each journey's graph with live counts, funnel, A/B table and
    delivery; each user's profile, journeys and timeline with the why of each send.

    \b
    The file is opened read-only, so it may be a simulation's store:
      journeyc simulate journeys --events examples/events.jsonl --db sim.db
      journeyc ui --db sim.db        # then open http://127.0.0.1:8701/ui

    Every asset is served by journeyc itself (no CDN). Stop it with Ctrl-C.

    Exit codes: 0 stopped, 1 the file is not a journeyc store or the address is
    taken, 2 usage error (a missing file, a non-loopback --host without a token).
    """
    import uvicorn

    from journeyc.serve.ui import create_app
    from journeyc.store.errors import StoreError

    if missing_file(db):
        usage_error(f"{db}: no such file (make one with `journeyc simulate … --db {db}`)")
    if not token and not _loopback(host):
        usage_error(f"--host {host} is not a loopback address: set --token (or ${TOKEN_ENV})")
    try:
        app = create_app(db, admin_token=token or None)
    except StoreError as exc:
        click.echo(f"journeyc: {exc}", err=True)
        sys.exit(EXIT_INVALID)
    from journeyc.serve.daemon import StartupError, bind

    try:
        sock = bind(host, port)
    except StartupError as exc:
        click.echo(f"journeyc: {exc}", err=True)
        sys.exit(EXIT_INVALID)
    url = f"http://{host}:{sock.getsockname()[1]}"
    click.echo(f"journeyc ui: {shown(db)} (read-only) at {url}/ui", err=True)
    click.echo(f"listening on {url}", err=True)
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="on")
    uvicorn.Server(config).run(sockets=[sock])
    sys.exit(EXIT_OK)
