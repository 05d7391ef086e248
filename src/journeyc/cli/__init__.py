"""The ``journeyc`` command: a group whose subcommands load only when used.

Exit codes, for every command: 0 success (``validate``: valid, warnings allowed),
1 the input is invalid or a check failed (``fmt --check`` found files to change),
2 usage error (bad options, missing paths).
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from journeyc import __version__

# name -> "module:attribute"; importing a command's module only when it runs keeps
# `journeyc validate` starting fast.
COMMANDS: dict[str, str] = {
    "validate": "journeyc.cli.validate:validate",
    "fmt": "journeyc.cli.fmt:fmt",
    "compile": "journeyc.cli.compile:compile_cmd",
    "graph": "journeyc.cli.graph:graph",
    "simulate": "journeyc.cli.simulate:simulate",
    "serve": "journeyc.cli.serve:serve",
    "ingest": "journeyc.cli.ingest:ingest",
    "status": "journeyc.cli.status:status",
    "store": "journeyc.cli.store:store",
    "segments": "journeyc.cli.segments:segments",
    "catalog": "journeyc.cli.catalog:catalog",
    "lsp": "journeyc.cli.lsp:lsp",
    "plan": "journeyc.cli.plan:plan",
    "deploy": "journeyc.cli.plan:deploy",
    "test": "journeyc.cli.test:test_cmd",
    "report": "journeyc.cli.report:report",
    "why": "journeyc.cli.why:why",
    "ui": "journeyc.cli.ui:ui",
}


class LazyGroup(click.Group):
    """A click group that imports a subcommand's module on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        """All subcommand names, sorted."""
        return sorted(COMMANDS)

    def invoke(self, ctx: click.Context) -> Any:
        """Run the subcommand; a store that stayed busy is a clear error, exit 1."""
        try:
            return super().invoke(ctx)
        except Exception as exc:
            # Only a command that opened a store can raise StoreBusyError: look the
            # class up where it was loaded instead of importing the store for every
            # command (a cold `validate` stays free of it).
            store = sys.modules.get("journeyc.store.errors")
            if store is not None and isinstance(exc, store.StoreBusyError):
                click.echo(f"journeyc: {exc}", err=True)
                sys.exit(1)
            raise

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """Import and return the subcommand, or None for an unknown name."""
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, attr = target.split(":")
        command: Any = getattr(importlib.import_module(module), attr)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="journeyc")
def main() -> None:
    """Customer journeys as code: check, draw, simulate and run `.journey` files.

    Exit codes: 0 success, 1 invalid input or failed check, 2 usage error.
    """
