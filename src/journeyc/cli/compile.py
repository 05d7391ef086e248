"""``journeyc compile``: lower journey files to the IR the engine runs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from journeyc.cli.common import (
    EXIT_INVALID,
    json_option,
    load_config_file,
    load_valid,
    output_option,
    paths_argument,
)
from journeyc.compile import ir
from journeyc.compile.bounds import summary as bounds_summary
from journeyc.compile.bounds import with_bounds
from journeyc.compile.graph import trigger_to_text
from journeyc.compile.lower import LowerError, lower_project


@click.command("compile")
@paths_argument
@json_option
@output_option
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="journeyc.toml, whose default quiet hours count in the journeys' bounds.",
)
def compile_cmd(
    paths: tuple[str, ...], as_json: bool, output: str | None, config_file: Path | None = None
) -> None:
    """Compile journey files to their state machines (the IR).

    Without --json, prints a summary of each journey: its id, version (a hash of what
    it does, not of its layout), triggers, node count and the messages it sends. With
    --json, prints the whole project IR (journeys, messages, segments) as JSON.

    Each journey comes with its static bounds (`bounds`: the most sends per entry,
    the longest time in the journey, the most sends per user per day and per week;
    docs/language.md, "Static bounds"). They are not part of its version.

    Exit codes: 0 compiled, 1 invalid input (the errors are printed),
    2 usage error.
    """
    project = load_valid(paths)
    try:
        compiled = lower_project(project)
    except LowerError as exc:
        click.echo(f"journeyc: {exc}", err=True)
        sys.exit(EXIT_INVALID)
    compiled = with_bounds(compiled, _default_quiet(config_file))
    if as_json:
        text = json.dumps(compiled.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n"
    else:
        text = summary(compiled)
    if output is None:
        click.echo(text, nl=False)
    else:
        with open(output, "w", encoding="utf-8") as f:
            f.write(text)


def summary(project: ir.ProjectIR) -> str:
    """A readable summary of each journey of a compiled project."""
    blocks: list[str] = []
    for j in project.journeys.values():
        lines = [f"{j.id}" + (f" — {j.title}" if j.title else "") + f"  ({j.file})"]
        lines.append(f"  version   {j.version}")
        triggers = [trigger_to_text(t) for t in j.triggers] or ["(none)"]
        lines.append(f"  triggers  {triggers[0]}")
        lines.extend(f"            {t}" for t in triggers[1:])
        lines.append(f"  nodes     {len(j.nodes)}")
        lines.append(f"  messages  {', '.join(j.messages) or '(none)'}")
        if j.bounds is not None:
            lines.append(f"  bounds    {bounds_summary(j.bounds)}")
        blocks.append("\n".join(lines) + "\n")
    if not blocks:
        return "no journeys\n"
    return "\n".join(blocks)


def _default_quiet(config_file: Path | None) -> ir.QuietHoursRule | None:
    """The default quiet hours of ``config_file`` (None without one)."""
    if config_file is None:
        return None
    return load_config_file(config_file).engine.quiet_hours.rule
