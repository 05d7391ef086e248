"""``journeyc graph``: draw journeys as Mermaid, Graphviz DOT or SVG."""

from __future__ import annotations

import sys

import click

from journeyc.cli.common import EXIT_INVALID, load_valid, output_option, paths_argument, usage_error
from journeyc.compile.graph import GraphvizError, GraphvizNotFoundError, to_dot, to_mermaid, to_svg
from journeyc.compile.lower import LowerError, lower_project


@click.command()
@paths_argument
@click.option(
    "-f",
    "--format",
    "fmt",
    type=click.Choice(["mermaid", "dot", "svg"]),
    default="mermaid",
    show_default=True,
    help="Mermaid flowchart text, Graphviz DOT text, or SVG drawn by Graphviz.",
)
@click.option(
    "-j",
    "--journey",
    "journey_ids",
    multiple=True,
    metavar="ID",
    help="Draw only this journey (repeat for several). Default: every journey.",
)
@output_option
def graph(
    paths: tuple[str, ...], fmt: str, journey_ids: tuple[str, ...], output: str | None
) -> None:
    """Draw journeys: entries, steps, branches and exits as a flowchart.

    Mermaid output pastes into Markdown (GitHub, GitLab, Notion); DOT is Graphviz's
    input language; SVG runs Graphviz's `dot` program, which must be installed
    (https://graphviz.org/download/). Several journeys are drawn side by side, one
    box each; --journey picks some.

    Exit codes: 0 drawn, 1 invalid input or Graphviz missing or failing,
    2 usage error (such as an unknown --journey ID).
    """
    project = load_valid(paths)
    try:
        compiled = lower_project(project)
    except LowerError as exc:
        click.echo(f"journeyc: {exc}", err=True)
        sys.exit(EXIT_INVALID)
    known = list(compiled.journeys)
    unknown = [j for j in journey_ids if j not in compiled.journeys]
    if unknown:
        usage_error(
            f"no journey named {', '.join(f'`{u}`' for u in unknown)}; "
            f"the journeys are: {', '.join(known) or '(none)'}"
        )
    journeys = [compiled.journeys[j] for j in (journey_ids or known)]
    if fmt == "mermaid":
        _write(to_mermaid(journeys).encode("utf-8"), output)
    elif fmt == "dot":
        _write(to_dot(journeys).encode("utf-8"), output)
    else:
        try:
            svg = to_svg(to_dot(journeys))
        except (GraphvizNotFoundError, GraphvizError) as exc:
            click.echo(f"journeyc: {exc}", err=True)
            sys.exit(EXIT_INVALID)
        _write(svg, output)


def _write(data: bytes, output: str | None) -> None:
    if output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        with open(output, "wb") as f:
            f.write(data)
