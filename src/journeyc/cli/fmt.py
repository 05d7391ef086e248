"""``journeyc fmt``: rewrite journey files in the canonical layout."""

from __future__ import annotations

import difflib
import sys
from dataclasses import dataclass, field
from pathlib import Path

import click

from journeyc.cli.common import EXIT_INVALID, EXIT_OK, echo_json, json_option, usage_error
from journeyc.lang.diagnostics import render_text
from journeyc.lang.formatter import FormatError, format_source
from journeyc.lang.project import ProjectPathError, display_name, find_files


@dataclass
class FmtReport:
    """What ``fmt`` found: files by outcome, as display names."""

    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=str), metavar="PATH...")
@click.option("--check", is_flag=True, help="Write nothing; list the files that would change.")
@click.option("--diff", "show_diff", is_flag=True, help="Write nothing; print unified diffs.")
@json_option
def fmt(paths: tuple[str, ...], check: bool, show_diff: bool, as_json: bool) -> None:
    """Format journey files in the canonical layout, in place.

    PATH is a `.journey` file or a directory (searched for `.journey` files). A file
    is rewritten only when its layout changes; comments are kept. A file with syntax
    errors is reported and left untouched.

    \b
    --check  write nothing; list the files that would change (stdout), or
             say `ok: N file(s) formatted` (stderr) when none would
    --diff   write nothing; print what would change as unified diffs
    --json   print {"changed": [...], "unchanged": [...], "errors": [...]}

    \b
    Exit codes:
      0  done (with --check: every file is already formatted)
      1  a file has errors, or (with --check) a file would change
      2  usage error (bad option, missing path)
    """
    try:
        files = find_files(paths)
    except ProjectPathError as exc:
        usage_error(str(exc))
    if not files:
        usage_error(f"no .journey files under {' '.join(paths)}")
    write = not (check or show_diff)
    report = FmtReport()
    for path in files:
        _format_file(path, report, write=write, show_diff=show_diff, quiet=as_json)
    if as_json:
        echo_json(
            {"changed": report.changed, "unchanged": report.unchanged, "errors": report.errors}
        )
    elif check:
        for name in report.changed:
            click.echo(name)
        if not report.changed and not report.errors:
            # Silence reads as "nothing happened"; say what was checked, on stderr so
            # that stdout stays the list of files to change.
            click.echo(f"ok: {len(report.unchanged)} file(s) formatted", err=True)
    elif write and report.changed:
        click.echo(f"formatted {len(report.changed)} file(s)", err=True)
    failed = bool(report.errors) or (check and bool(report.changed))
    sys.exit(EXIT_INVALID if failed else EXIT_OK)


def _format_file(
    path: Path, report: FmtReport, *, write: bool, show_diff: bool, quiet: bool
) -> None:
    name = display_name(path)
    try:
        raw = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        report.errors.append(name)
        if not quiet:
            click.echo(f"journeyc: {name}: the file is not UTF-8 text ({exc.reason})", err=True)
        return
    except OSError as exc:
        report.errors.append(name)
        if not quiet:
            click.echo(f"journeyc: {name}: cannot read the file: {exc.strerror}", err=True)
        return
    text = raw.replace("\r\n", "\n")
    try:
        formatted = format_source(text, name)
    except FormatError as exc:
        report.errors.append(name)
        if not quiet:
            color = sys.stderr.isatty()
            click.echo(render_text(exc.diagnostics, {name: text}, color=color), err=True, nl=False)
        return
    if formatted == raw:
        report.unchanged.append(name)
        return
    report.changed.append(name)
    if show_diff and not quiet:
        diff = difflib.unified_diff(
            _lines(text),
            _lines(formatted),
            fromfile=f"a/{name}",
            tofile=f"b/{name}",
        )
        click.echo("".join(_ending(line) for line in diff), nl=False)
    if write:
        try:
            path.write_text(formatted, encoding="utf-8", newline="\n")
        except OSError as exc:
            report.changed.remove(name)
            report.errors.append(name)
            if not quiet:
                click.echo(f"journeyc: {name}: cannot write the file: {exc.strerror}", err=True)


def _ending(line: str) -> str:
    """A diff line, marked as patch(1) does when the file lacks a final newline."""
    return line if line.endswith("\n") else line + "\n\\ No newline at end of file\n"


def _lines(text: str) -> list[str]:
    """Lines with their ends, split at newlines only, as the parser counts them."""
    parts = text.split("\n")
    out = [part + "\n" for part in parts[:-1]]
    if parts[-1]:
        out.append(parts[-1])
    return out
