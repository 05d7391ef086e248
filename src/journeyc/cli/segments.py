"""``journeyc segments``: how big each segment is, who entered and left today, and why
one user is in or out."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any

import click

from journeyc.cli.common import (
    EXIT_INVALID,
    echo_json,
    json_option,
    load_valid,
    open_store,
    paths_argument,
    usage_error,
)
from journeyc.cli.serve import config_option, read_config, store_option
from journeyc.config import store_target
from journeyc.store.targets import StoreTarget, shown


def _parse_at(text: str | None) -> datetime:
    if text is None:
        return datetime.now(UTC)
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        usage_error(f"--at: not an ISO-8601 time: {text!r} (e.g. 2026-01-05T10:00:00Z)")
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


@click.command()
@paths_argument
@store_option
@config_option
@click.option("--user", "user_id", metavar="ID", help="Explain one user's segments instead.")
@click.option(
    "--at",
    "at_text",
    metavar="TIME",
    help="Evaluate as of TIME (ISO-8601; default: now). `today` is the day of TIME.",
)
@json_option
def segments(
    paths: tuple[str, ...],
    db: StoreTarget | None,
    config_file: Path | None,
    user_id: str | None,
    at_text: str | None,
    as_json: bool,
) -> None:
    """Report the project's segments as a store holds them.

    For each segment: its members, how many entered and left it today (in the
    project's time zone), and whether the store's membership was computed with the
    definition in PATH (`deployed`) or not yet (`changed`, `new`: then the members
    are counted by evaluating the definition now, and entered/left are unknown).

    With --user ID: each segment's answer for that user now, the membership the
    store keeps (since when; a user without a row is out), and why — the value of
    every term of the condition.

    \b
    --json prints one object: store, at, and segments, a list of {name, members,
    entered_today, left_today, status, definition}; with --user: user, at, and
    segments, a list of {name, member, stored {member, since} or null, terms
    [{text, value, depth}]}.

    Exit codes: 0 reported, 1 invalid project or not a journeyc store or unknown
    user, 2 usage error (no store at the path, bad --at).
    """
    from journeyc.compile.lower import lower_project

    project = lower_project(load_valid(paths))
    config, _ = read_config(config_file)
    path = store_target(db, config)
    at = _parse_at(at_text)
    store = open_store(path, existing=True)
    try:
        if user_id is None:
            report = _sizes(store, project, config.engine.zone, at)
            report["store"] = shown(path)
            echo_json(report) if as_json else click.echo(_render_sizes(report), nl=False)
            return
        if not store.has_profile(user_id):
            click.echo(f"journeyc: no user {user_id!r} in {shown(path)}", err=True)
            sys.exit(EXIT_INVALID)
        report = _user(store, project, user_id, at)
        echo_json(report) if as_json else click.echo(_render_user(report), nl=False)
    finally:
        store.close()


def _sizes(store: Any, project: Any, zone: Any, at: datetime) -> dict[str, Any]:
    from journeyc.compile.graph import expr_to_text
    from journeyc.engine.actions import iso_ms
    from journeyc.engine.aggregates import to_ms
    from journeyc.engine.segments import analyse

    infos = analyse(project.segments)
    book = store.segment_book()
    deployed = book.deployed()
    at_ms = to_ms(at)
    midnight = datetime.combine(at.astimezone(zone).date(), time(0), tzinfo=zone)
    day_ms = to_ms(midnight.astimezone(UTC))
    stale = [n for n, i in infos.items() if deployed.get(n) != i.hash]
    evaluated = _evaluate(store, project, stale, at_ms) if stale else {}
    rows = []
    sizes = book.member_counts()
    today = book.change_counts(day_ms, at_ms)
    for name, info in infos.items():
        status = "deployed" if name not in stale else ("changed" if name in deployed else "new")
        if status == "deployed":
            members = sizes.get(name, 0)
            entered, left = today.get(name, (0, 0))
        else:
            members, entered, left = evaluated.get(name, 0), None, None
        rows.append(
            {
                "name": name,
                "members": members,
                "entered_today": entered,
                "left_today": left,
                "status": status,
                "definition": expr_to_text(info.expr),
            }
        )
    return {"at": iso_ms(at_ms), "today_from": iso_ms(day_ms), "segments": rows}


def _evaluate(store: Any, project: Any, names: list[str], at_ms: int) -> dict[str, int]:
    """Members of ``names`` evaluated now over every user (read-only)."""
    from journeyc.engine.bulk import evaluate_population

    counts = dict.fromkeys(names, 0)
    for _, membership in evaluate_population(
        store.population(), project.segments, at_ms, names=names
    ):
        for name, member in membership.items():
            counts[name] += int(member)
    return counts


def _user(store: Any, project: Any, user_id: str, at: datetime) -> dict[str, Any]:
    from journeyc.engine.actions import iso_ms
    from journeyc.engine.aggregates import StoreAggregates, to_ms
    from journeyc.engine.expr import Scope, compile_predicate
    from journeyc.engine.segments import explain, segment_resolver
    from journeyc.engine.values import json_value

    preds = {n: compile_predicate(s.expr) for n, s in project.segments.items()}
    scope = Scope(
        now=at,
        profile=store.get_profile(user_id),
        aggregates=StoreAggregates(store.aggregates()),
        segments=segment_resolver(preds),
        user_id=user_id,
    )
    rows = store.segment_book().rows(user_id)
    out = []
    for name, seg in project.segments.items():
        row = rows.get(name)
        out.append(
            {
                "name": name,
                "member": preds[name](scope),
                "stored": None
                if row is None
                else {"member": row.member, "since": iso_ms(row.since)},
                "terms": [
                    {"text": t.text, "value": json_value(t.value), "depth": t.depth}
                    for t in explain(seg.expr, scope, project.segments)
                ],
            }
        )
    return {"user": user_id, "at": iso_ms(to_ms(at)), "segments": out}


def _show(value: Any) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    if isinstance(value, dict) and "name" in value and "at" in value:
        return f"{value['name']} at {value['at']}"
    return str(value)


def _render_sizes(report: dict[str, Any]) -> str:
    lines = [f"store {report['store']} at {report['at']} (today from {report['today_from']})"]
    width = max((len(s["name"]) for s in report["segments"]), default=7)
    lines.append(f"  {'segment':{width}}  {'members':>8}  {'entered':>8}  {'left':>8}  status")
    for s in report["segments"]:
        entered = "-" if s["entered_today"] is None else s["entered_today"]
        left = "-" if s["left_today"] is None else s["left_today"]
        lines.append(
            f"  {s['name']:{width}}  {s['members']:>8}  {entered:>8}  {left:>8}  {s['status']}"
        )
    if not report["segments"]:
        lines.append("  the project declares no segment")
    return "\n".join(lines) + "\n"


def _render_user(report: dict[str, Any]) -> str:
    lines = [f"user {report['user']} at {report['at']}"]
    for s in report["segments"]:
        stored = s["stored"]
        kept = (
            "kept: out (no row)"
            if stored is None
            else f"kept: {'in' if stored['member'] else 'out'} since {stored['since']}"
        )
        lines.append(f"  {s['name']}: {'in' if s['member'] else 'out'}  ({kept})")
        for t in s["terms"]:
            lines.append(f"    {'  ' * t['depth']}{t['text']}  = {_show(t['value'])}")
    return "\n".join(lines) + "\n"
