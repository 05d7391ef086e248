"""``journeyc report``: what journeys did — entries, steps, funnel, goal, A/B, delivery."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click

from journeyc.cli.common import EXIT_INVALID, echo_json, json_option, open_store, usage_error
from journeyc.cli.serve import config_option, read_config, store_option
from journeyc.config import store_target
from journeyc.lang.testfile import parse_timestamp
from journeyc.store.targets import StoreTarget, shown

if TYPE_CHECKING:
    from rich.console import Console

    from journeyc.reports.model import JourneyReport


def _time(value: str | None, option: str) -> int | None:
    if value is None:
        return None
    ms = parse_timestamp(value)
    if ms is None:
        usage_error(f"{option}: not an ISO-8601 time: {value!r} (like 2026-01-05T10:00:00Z)")
    return ms


def _project_ids(paths: Sequence[str]) -> list[str]:
    """The journey ids of the project at ``paths`` (exit 1 when it is invalid)."""
    from journeyc.cli.common import load_valid
    from journeyc.compile.lower import lower_project

    return sorted(lower_project(load_valid(paths)).journeys)


@contextmanager
def _progress(total: int) -> Iterator[Callable[[], None]]:
    """A step callback drawing a bar on stderr while several journeys are reported
    (on a terminal only)."""
    if total < 2 or not sys.stderr.isatty():
        yield lambda: None
        return
    from rich.console import Console as RichConsole
    from rich.progress import Progress

    with Progress(console=RichConsole(stderr=True), transient=True) as progress:
        task = progress.add_task("reporting", total=total)
        yield lambda: progress.advance(task)


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=str), metavar="[PATH]...")
@store_option
@config_option
@click.option("--journey", "journey_id", metavar="ID", help="Report this journey only.")
@click.option("--version", "version", metavar="V", help="Only this version (needs --journey).")
@click.option("--from", "start", metavar="TIME", help="From this time (inclusive, ISO-8601).")
@click.option("--until", "until", metavar="TIME", help="Until this time (exclusive, ISO-8601).")
@json_option
def report(
    paths: tuple[str, ...],
    db: StoreTarget | None,
    config_file: Path | None,
    journey_id: str | None,
    version: str | None,
    start: str | None,
    until: str | None,
    as_json: bool,
) -> None:
    """Report what journeys did over a time range, from a store.

    For each journey: entries; per step the entries that reached it, the users
    waiting there now, sends by channel, suppressions and exits by reason; the
    funnel along each path of its graph; its goal (conversions, rate, median time to
    goal); split arms (or, with a holdout and no split, the messaged group: everyone
    not held out) and the holdout with 95% Wilson intervals, and each group's lift over
    the holdout (else the first arm) with a z-test p-value, or "not enough data";
    delivery per channel (outbox and provider feedback). docs/reports.md explains
    every figure.

    The graphs are the store's (what was deployed and ran). PATH, when given, is the
    project: only its journeys are reported, and --journey must be one of them.
    Without PATH, every journey the store has deployed. Works on a live daemon's
    store and on a simulation's (journeyc simulate ... --db sim.db).

    \b
    --json prints {"store": FILE, "reports": [JourneyReport, ...]}, each report
    shaped as GET /v1/journeys/{id}/report returns it (whose times always carry
    milliseconds).

    Exit codes: 0 reported, 1 unknown journey or version, invalid project or not a
    journeyc store, 2 usage error (bad time, no store at the path).
    """
    from journeyc.reports.build import ReportError, build_report, did_you_mean

    since_ms, until_ms = _time(start, "--from"), _time(until, "--until")
    if version is not None and journey_id is None:
        usage_error("--version needs --journey")
    wanted = _project_ids(paths) if paths else None
    config, _ = read_config(config_file)
    path = store_target(db, config)
    store = open_store(path, existing=True)
    try:
        with store.report_reads() as reads:
            deployed = reads.journey_ids()
        ids = deployed if wanted is None else [j for j in wanted if j in deployed]
        if journey_id is not None:
            known = deployed if wanted is None else wanted
            if journey_id not in known:
                hint = did_you_mean(journey_id, known)
                where = "the project" if wanted is not None else f"the store {shown(path)}"
                _fail(f"no journey {journey_id!r} in {where}{hint}")
            if journey_id not in deployed:
                _fail(f"journey {journey_id!r} was never deployed into {shown(path)}")
            ids = [journey_id]
        reports = []
        with _progress(len(ids)) as step:
            for jid in ids:
                try:
                    reports.append(
                        build_report(
                            store, jid, version=version, since_ms=since_ms, until_ms=until_ms
                        )
                    )
                except ReportError as exc:
                    _fail(str(exc))
                step()
    finally:
        store.close()
    if as_json:
        echo_json({"store": shown(path), "reports": [r.model_dump(mode="json") for r in reports]})
        return
    from rich.console import Console as RichConsole

    console = RichConsole(highlight=False, soft_wrap=False, width=max(100, _width()))
    if not reports:
        console.print("no journeys deployed in the store (journeyc serve or deploy deploys them)")
    for r in reports:
        render(r, console)


def _width() -> int:
    import shutil

    return shutil.get_terminal_size((120, 24)).columns


def _fail(message: str) -> NoReturn:
    click.echo(f"journeyc: {message}", err=True)
    sys.exit(EXIT_INVALID)


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items()) or "-"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:.1f}%"


def _num(x: int | None) -> str:
    return "?" if x is None else str(x)


def render(r: JourneyReport, console: Console) -> None:
    """Print one report for people: a table per section."""
    from rich.markup import escape
    from rich.table import Table

    title = f" — {r.title}" if r.title else ""
    scope = f"version {r.version}" if r.version else f"all {len(r.versions)} version(s)"
    span = f"{r.since or 'the start'} to {r.until or 'now'}"
    console.print(f"[bold]{escape(r.journey_id)}[/bold]{escape(title)}")
    console.print(f"  {scope}, graph of {r.graph_version}; {span}")
    console.print(f"  entries {r.entries}, in flight {r.in_flight}, exits {_counts(r.exits)}")
    if r.goal is not None:
        g = r.goal
        median = "-" if g.median_seconds_to_goal is None else f"{g.median_seconds_to_goal:.0f}s"
        console.print(
            f"  goal {g.event}: {g.conversions} conversion(s), rate {_pct(g.rate)},"
            f" median time to goal {median}"
        )
    steps = Table(title="steps", title_justify="left")
    for col in ("step", "kind", "line", "reached", "waiting", "sends", "suppressed", "exits"):
        steps.add_column(col, justify="right" if col in ("line", "reached", "waiting") else "left")
    for s in r.steps:
        reached = _num(s.reached) + ("~" if s.reached_how == "inferred" else "")
        steps.add_row(
            s.id,
            s.kind or "(other version)",
            "" if s.line is None else str(s.line),
            reached,
            str(s.waiting_now),
            _counts(s.sends),
            _counts(s.suppressed),
            _counts(s.exits),
        )
    console.print(steps)
    console.print("  (~ worked out from the graph: waiting or ended there, or went on)")
    if r.funnel:
        console.print("funnel")
        for p in r.funnel:
            parts = [
                (f"[{s.via}] " if s.via else "") + f"{s.id} ({_num(s.reached)})" for s in p.steps
            ]
            console.print("  " + " → ".join(parts) + f", {p.ends}", markup=False)
        if r.funnel_truncated:
            console.print("  … more paths (see --json)")
    if r.experiment is not None:
        e = r.experiment
        arms = Table(title="experiment", title_justify="left")
        for col in ("group", "entries", "conversions", "rate", "95% CI"):
            arms.add_column(col, justify="left" if col == "group" else "right")
        for a in e.arms:
            ci = "-" if a.ci_low is None else f"{_pct(a.ci_low)} – {_pct(a.ci_high)}"
            arms.add_row(a.name, str(a.entries), str(a.conversions), _pct(a.rate), ci)
        console.print(arms)
        if any(a.group == "messaged" for a in e.arms):
            console.print("  messaged: every entry not held out (a holdout and no split)")
        if e.unassigned:
            console.print(f"  {e.unassigned} entries took no arm (they ended before the split)")
        for c in e.comparisons:
            if not c.enough_data:
                console.print(f"  {c.arm} vs {c.baseline}: {c.note}")
                continue
            assert c.lift is not None and c.p_value is not None
            rel = "" if c.relative_lift is None else f" ({c.relative_lift * 100:+.1f}% relative)"
            verdict = "significant" if c.significant else "not significant"
            console.print(
                f"  {c.arm} vs {c.baseline}: lift {c.lift * 100:+.2f} points{rel},"
                f" 95% CI {_pct(c.lift_ci_low)} – {_pct(c.lift_ci_high)},"
                f" p = {c.p_value:.4f} ({verdict} at {e.alpha})"
            )
    if r.delivery:
        d = Table(title="delivery", title_justify="left")
        for col in ("channel", "queued", "sent", "failed", "retried", "feedback"):
            d.add_column(col, justify="left" if col in ("channel", "feedback") else "right")
        for ch in r.delivery:
            d.add_row(
                ch.channel,
                str(ch.queued),
                str(ch.sent),
                str(ch.failed),
                str(ch.retried),
                _counts(ch.feedback),
            )
        console.print(d)
    console.print()
