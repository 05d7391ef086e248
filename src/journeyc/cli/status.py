"""``journeyc status``: what a store holds — journeys, users in flight, the outbox."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from journeyc.cli.common import echo_json, json_option, open_store
from journeyc.cli.serve import config_option, read_config, store_option
from journeyc.config import store_target
from journeyc.engine.actions import iso_ms
from journeyc.serve.cluster import cluster_report, ranges
from journeyc.serve.times import now_ms
from journeyc.store.abc import AdminReads, Deliveries
from journeyc.store.rows import KINDS
from journeyc.store.targets import StoreTarget, shown

RECENT_FAILURES = 10
"""How many failed sends ``status`` lists, newest first."""

OUTBOX_STATUSES = ("queued", "sent", "failed", "suppressed")


def collect(reads: AdminReads, path: str) -> dict[str, Any]:
    """The report ``journeyc status --json`` prints, read from a store's snapshot."""
    events, profiles = reads.count_events(), reads.count_profiles()
    journeys: dict[str, dict[str, Any]] = {}

    def of(jid: str) -> dict[str, Any]:
        return journeys.setdefault(
            jid,
            {
                "id": jid,
                "version": None,
                "deployed_at": None,
                "live": {},
                "live_total": 0,
                "live_on_older_versions": 0,
            },
        )

    for jid, version, deployed_at, active in reads.journey_versions():
        if active:
            journey = of(jid)
            journey["version"], journey["deployed_at"] = version, iso_ms(deployed_at)
    for jid, version, node, count in reads.live_per_step():
        journey = of(jid)
        journey["live"][node] = journey["live"].get(node, 0) + count
        journey["live_total"] += count
        if version != journey["version"]:
            journey["live_on_older_versions"] += count
    outbox = dict.fromkeys(OUTBOX_STATUSES, 0)
    outbox.update(reads.outbox_statuses())
    failures = [
        {
            "key": key,
            "journey": journey_id,
            "user": user_id,
            "step": step,
            "channel": channel,
            "attempts": attempts,
            "queued_at": iso_ms(created_at),
            "error": error,
        }
        for key, journey_id, user_id, step, channel, attempts, created_at, error in (
            reads.recent_failures(RECENT_FAILURES)
        )
    ]
    return {
        "store": path,
        "events": events,
        "profiles": profiles,
        "journeys": [journeys[k] for k in sorted(journeys)],
        "outbox": outbox,
        "recent_failures": failures,
    }


def delivery_counts(deliveries: Deliveries) -> dict[str, dict[str, int]]:
    """The providers' reports per kind (every kind, in a message's order), then channel."""
    by_kind: dict[str, dict[str, int]] = {kind: {} for kind in KINDS}
    for (kind, channel), n in deliveries.counts().items():
        by_kind.setdefault(kind, {})[channel] = n
    return by_kind


def render_cluster(cluster: dict[str, Any] | None) -> list[str]:
    """The workers sharing the store, as lines (none for a store one engine runs)."""
    if cluster is None:
        return []
    lines = ["", f"workers (sharing {cluster['partitions']} partitions)"]
    if not cluster["workers"]:
        lines.append("  none alive")
    for w in cluster["workers"]:
        about = w["about"]
        where = f"  ({about['host']} pid {about['pid']})" if "host" in about else ""
        oldest = w["oldest_waiting_s"]
        lag = f", oldest {oldest:.1f} s" if oldest is not None else ""
        lines.append(
            f"  {w['worker_id']}{where}: {len(w['partitions'])} partition(s)"
            f" [{ranges(w['partitions'])}], heartbeat {iso_ms(w['heartbeat_ms'])},"
            f" lag {w['waiting_events']} event(s){lag}"
        )
    if cluster["unheld"]:
        lines.append(
            f"  no worker holds: [{ranges(cluster['unheld'])}]"
            f" ({cluster['unheld_waiting_events']} event(s) waiting there)"
        )
    return lines


def render(report: dict[str, Any]) -> str:
    """The report as text for people."""
    lines = [
        f"store {report['store']}: {report['events']} event(s), {report['profiles']} profile(s)",
        "",
        "journeys",
    ]
    if not report["journeys"]:
        lines.append("  none deployed (journeyc serve or journeyc deploy deploys them)")
    for j in report["journeys"]:
        if j["version"] is None:
            head = f"  {j['id']}  (no active version)"
        else:
            head = f"  {j['id']}  version {j['version']}  deployed {j['deployed_at']}"
        lines.append(head)
        if j["live"]:
            steps = ", ".join(f"{step} {n}" for step, n in j["live"].items())
            older = j["live_on_older_versions"]
            note = f"  ({older} on older versions)" if older else ""
            lines.append(f"    in flight: {j['live_total']}  ({steps}){note}")
        else:
            lines.append("    in flight: 0")
    lines += ["", "outbox"]
    lines.append("  " + ", ".join(f"{k} {v}" for k, v in report["outbox"].items()))
    totals = {kind: sum(by.values()) for kind, by in report["deliveries"].items()}
    lines += ["", "deliveries (provider reports)"]
    lines.append("  " + ", ".join(f"{k} {n}" for k, n in totals.items()))
    lines += render_cluster(report.get("cluster"))
    lines += ["", f"recent failures (last {RECENT_FAILURES})"]
    if not report["recent_failures"]:
        lines.append("  none")
    for f in report["recent_failures"]:
        lines.append(
            f"  {f['queued_at']}  {f['channel'] or '-'}  {f['user']}  {f['journey']}/{f['step']}"
            f"  attempts {f['attempts']}: {f['error']}"
        )
    return "\n".join(lines) + "\n"


@click.command()
@store_option
@config_option
@json_option
def status(db: StoreTarget | None, config_file: Path | None, as_json: bool) -> None:
    """Report what a store holds: journeys, users in flight, the outbox.

    For each journey: its active version and when it was deployed, and its users
    in flight per step (with how many are still on older versions). Then the
    outbox by status (queued is the backlog), the providers' delivery reports by
    kind (POST /v1/deliveries), and the last failed sends with their errors. Safe
    to run beside a daemon serving the same store.

    \b
    --json prints one object: store, events, profiles, journeys (id, version,
    deployed_at, live {step: n}, live_total, live_on_older_versions), outbox
    {queued, sent, failed, suppressed}, deliveries {kind: {channel: n}} for the
    kinds delivered, opened, clicked, bounced, complained and unsubscribed, and
    recent_failures (key, journey, user, step, channel, attempts, queued_at, error),
    and cluster: null, or on a store several workers share (PostgreSQL) the live
    workers (worker_id, about, heartbeat_ms, partitions, waiting_events: events of
    its partitions not handled yet, oldest_waiting_s) and the partitions no worker
    holds (unheld, unheld_waiting_events).

    Exit codes: 0 reported, 1 the file is not a journeyc store, 2 usage error (no
    store at the path).
    """

    config, _ = read_config(config_file)
    path = store_target(db, config)
    store = open_store(path, existing=True)
    try:
        with store.reading() as reads:
            report = collect(reads, shown(path))
        report["deliveries"] = delivery_counts(store.deliveries())
        report["cluster"] = cluster_report(store, now_ms())
    finally:
        store.close()
    if as_json:
        echo_json(report)
    else:
        click.echo(render(report), nl=False)
