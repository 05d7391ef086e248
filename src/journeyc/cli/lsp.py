"""``journeyc lsp``: the language server, for editors."""

from __future__ import annotations

import click


@click.command()
@click.option(
    "--stdio",
    is_flag=True,
    help="Talk over standard input and output (the default and only transport; "
    "accepted because editors' clients pass it).",
)
def lsp(stdio: bool) -> None:
    """Run the language server over standard input and output.

    Editors start it and speak the Language Server Protocol to it: diagnostics as you
    type (the checker of `journeyc validate`, for the whole project), hover, go to
    definition, find references, completion and formatting (`journeyc fmt`).

    A document's project is the `.journey` files of its directory, and of the
    directories above it that hold `.journey` files too, within the workspace folder.
    See docs/editors.md.

    Exit codes: 0 the editor ended the session (shutdown, then exit), 1 it exited
    without a shutdown, 2 usage error.
    """
    from journeyc.lsp.server import serve

    serve()
