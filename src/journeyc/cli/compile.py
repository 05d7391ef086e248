"""``journeyc compile``: lower journey files to the IR the engine runs."""

from __future__ import annotations

import json
import sys

import click

from journeyc.cli.common import EXIT_INVALID, json_option, load_valid, output_option, paths_argument
from journeyc.compile import ir
from journeyc.compile.graph import trigger_to_text
from journeyc.compile.lower import LowerError, lower_project


@click.command("compile")
@paths_argument
@json_option
@output_option
def compile_cmd(paths: tuple[str, ...], as_json: bool, output: str | None) -> None:
    """Compile journey files to their state machines (the IR).

    Without --json, prints a summary of each journey: its id, version (a hash of what
    it does, not of its layout), triggers, node count and the messages it sends. With
    --json, prints the whole project IR (journeys, messages, segments) as JSON.

    Exit codes: 0 compiled, 1 invalid input (the errors are printed),
    2 usage error.
    """
    project = load_valid(paths)
    try:
        compiled = lower_project(project)
    except LowerError as exc:
        click.echo(f"journeyc: {exc}", err=True)
        sys.exit(EXIT_INVALID)
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
        blocks.append("\n".join(lines) + "\n")
    if not blocks:
        return "no journeys\n"
    return "\n".join(blocks)
