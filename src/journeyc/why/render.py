"""``journeyc why`` for people: an indented timeline per journey (docs/why.md).

Each decision is one line, as ``journeyc simulate`` prints its timeline (the UTC
time, the user's local time beside it where their zone is not UTC), with the values
that decided it indented under it: a condition's terms, each channel's rule, quiet
hours, caps.
"""

from __future__ import annotations

import json
from typing import Any

from journeyc.why.model import Decision, JourneyWhy, Term, WhyReport
from journeyc.why.tracer import duration_text

__all__ = ["render_text"]

PROPS_SHOWN = 160
"""How many characters of an event's properties a line shows."""

_UTC = frozenset({"UTC", "Etc/UTC", "Etc/UCT", "UCT", "Etc/Universal", "Universal", "Zulu"})


def _value(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict) and "name" in value and "at" in value:
        return f"{value['name']} at {value['at']}"
    return json.dumps(value, ensure_ascii=False, default=str)


def _terms(terms: list[Term], indent: str) -> list[str]:
    return [f"{indent}{'  ' * t.depth}{t.text}  = {_value(t.value)}" for t in terms]


def _details(d: Decision, indent: str) -> list[str]:
    """The values under a decision's line."""
    lines = _terms(d.terms, indent)
    for c in d.cases:
        if not c.tried:
            lines.append(f"{indent}{c.condition}  (not tried)")
            continue
        lines += _terms(c.terms, indent)
    for ch in d.channels:
        head = f"{indent}{ch.channel}"
        if ch.message:
            head += f" {ch.message}"
        if not ch.tried:
            lines.append(f"{head}: not tried")
            continue
        mark = "  <- chosen" if ch.reachable and d.channel == ch.channel else ""
        lines.append(f"{head}: {ch.rule}  = {_value(ch.reachable)}{mark}")
        lines += _terms(ch.terms[1:], indent + "  ")  # the first term is the rule itself
    if d.quiet is not None:
        q = d.quiet
        where = "inside" if q.inside else "outside"
        skip = " skip" if q.skip else ""
        ends = f", ends {q.ends_at}" if q.ends_at else ""
        lines.append(f"{indent}quiet hours {q.window}{skip}: {q.local_time}, {where}{ends}")
    for cap in d.caps:
        what = "cap" if cap.scope == "journey" else "global cap"
        reached = "  reached" if cap.reached else ""
        lines.append(
            f"{indent}{what} {cap.limit} per {duration_text(cap.per_seconds)}: "
            f"{cap.count} sent in the window{reached}"
        )
    if d.props:
        props = json.dumps(d.props, ensure_ascii=False)
        if len(props) > PROPS_SHOWN:  # --json has them all
            props = props[: PROPS_SHOWN - 1] + "…"
        lines.insert(0, f"{indent}event {d.event_name} {props}")
    return lines


def _same(d: Decision) -> dict[str, Any]:
    """What a decision is and what decided it, but for its time."""
    return d.model_dump(exclude={"at", "local"})


def _runs(decisions: list[Decision]) -> list[tuple[list[Decision], list[list[Decision]]]]:
    """The decisions in runs: a decision, or two in a row (a scheduled firing and the
    entry rule's answer), with the repeats that follow them, the same in all but their
    time (a daily firing refused by the entry rule day after day is shown once, then
    counted; --json has each one)."""
    out: list[tuple[list[Decision], list[list[Decision]]]] = []
    i = 0
    while i < len(decisions):
        for size in (1, 2):
            unit = decisions[i : i + size]
            key = [_same(d) for d in unit]
            again = []
            k = i + size
            while [_same(d) for d in decisions[k : k + size]] == key:
                again.append(decisions[k : k + size])
                k += size
            if again:
                break
        out.append((unit if again else decisions[i : i + 1], again))
        i = k if again else i + 1
    return out


def _journey(j: JourneyWhy, local: bool) -> list[str]:
    title = f' "{j.title}"' if j.title else ""
    lines = [f"{j.journey}{title}"]
    how = " / ".join(j.triggers) or "no trigger"
    versions = ", ".join(v[:12] for v in j.versions)
    lines.append(f"  {how}; {j.entry_rule}; {j.entries} entry(ies); version {versions}")
    for run, again in _runs(j.decisions):
        for d in run:
            when = d.at + (f" ({d.local})" if local and d.local else "")
            at = f" at {d.step}" if d.step else ""
            entry = f" #{d.entry_no}" if d.entry_no is not None else ""
            lines.append(f"  {when}  {d.kind}{entry}{at}: {d.summary}")
            lines += _details(d, "      ")
        if again:
            last = again[-1][0]
            times = "time" if len(again) == 1 else "times"
            lines.append(f"  … the same {len(again)} more {times}, the last at {last.at}")
    if j.message is not None:
        m = j.message
        lines.append(f"  message {m.message}: {m.outcome.replace('_', ' ')}: {m.why}")
    return lines


def render_text(report: WhyReport) -> str:
    """The report as an indented timeline per journey."""
    local = report.timezone not in _UTC
    zone = f", local times {report.timezone}" if local else ""
    ids = f" (ids {', '.join(report.ids)})" if len(report.ids) > 1 else ""
    lines = [
        f"why {report.user}{ids}: replayed {report.replayed_from} to "
        f"{report.replayed_until or 'the end'} (times UTC{zone})"
    ]
    if report.agrees:
        lines.append(
            "the replay makes the same entries, sends, suppressions, goals and exits "
            "as the store recorded"
        )
    else:
        lines.append(
            f"the replay differs from the store's action log in {len(report.mismatches)} action(s):"
        )
        for m in report.mismatches:
            only = "only in the store" if m.side == "store" else "only in the replay"
            at = f" at {m.step}" if m.step else ""
            extra = " ".join(str(v) for v in m.detail.values())
            lines.append(f"  {m.at}  {m.journey}  {m.action}{at} {extra}  ({only})".rstrip())
    for note in report.notes:
        lines.append(f"note: {note}")
    if not report.journeys:
        lines.append("")
        lines.append("no journey was triggered by this user's events, segments or schedules")
    for j in report.journeys:
        lines.append("")
        lines += _journey(j, local)
    return "\n".join(lines) + "\n"
