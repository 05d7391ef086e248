"""``journeyc why``: why a user did (or did not) get a message."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from journeyc.cli.common import EXIT_INVALID, echo_json, json_option, open_store
from journeyc.cli.serve import config_option, read_config, store_option
from journeyc.config import store_target
from journeyc.store.targets import StoreTarget


@click.command()
@click.argument("user")
@click.option("--journey", "journey", metavar="ID", help="Only this journey.")
@click.option(
    "--message",
    "message",
    metavar="NAME",
    help="Only the decisions leading to sends of this message, and whether the user "
    "got it (where they stopped when they never got there).",
)
@store_option
@config_option
@json_option
def why(
    user: str,
    journey: str | None,
    message: str | None,
    db: StoreTarget | None,
    config_file: Path | None,
    as_json: bool,
) -> None:
    """Say every decision the journeys made for USER, in order, with the values that
    decided it.

    USER's events (under every id merged into theirs) are replayed through the
    engine, on the journey versions the store deployed, in a scratch store: for each
    journey they entered or could have entered, the trigger (its `where` with the
    value of each term), the entry rule, the holdout, each branch and split, each
    send (the channels tried with each reachability rule's value, quiet hours, caps
    with the count in their window, render errors), the waits, exits and goals. The
    replay is checked against the actions the store recorded, and any difference is
    listed (docs/why.md says where a one-user replay can differ).

    A simulation's store (`journeyc simulate --db`) is replayed as it ran, with its
    config; a daemon's up to now, with --config (default ./journeyc.toml).

    \b
    --json prints the report documented in docs/why.md (user, ids, timezone,
    replayed_from, replayed_until, journeys [journey, triggers, entry_rule,
    versions, entries, decisions, message], agrees, mismatches, notes).

    Exit codes: 0 reported, 1 unknown user, journey or message, nothing deployed, or
    not a journeyc store, 2 usage error (no store at the path).
    """
    from journeyc.why.render import render_text
    from journeyc.why.replay import UnknownNameError, WhyError, explain_user

    config, config_path = read_config(config_file)
    path = store_target(db, config)
    store = open_store(path, existing=True)
    try:
        report = explain_user(
            store,
            user,
            # Without a config file, a simulation's store is replayed with its own.
            config=config if config_path is not None else None,
            now_ms=int(time.time() * 1000),
            journey=journey,
            message=message,
        )
    except UnknownNameError as exc:
        click.echo(f"journeyc: --{exc.param}: {exc.detail}", err=True)
        sys.exit(EXIT_INVALID)
    except WhyError as exc:
        click.echo(f"journeyc: {exc}", err=True)
        sys.exit(EXIT_INVALID)
    finally:
        store.close()
    if as_json:
        echo_json(report.model_dump(mode="json"))
    else:
        click.echo(render_text(report), nl=False)
