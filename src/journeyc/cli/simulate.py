"""``journeyc simulate``: replay recorded events through journeys on a virtual clock."""

from __future__ import annotations

import functools
import json
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar
from zoneinfo import ZoneInfo

import click

from journeyc.cli.common import (
    EXIT_INVALID,
    load_config_file,
    load_valid,
    open_simulation_store,
    open_store,
    paths_argument,
    usage_error,
)
from journeyc.engine.actions import Action, iso_ms

if TYPE_CHECKING:
    from journeyc.catalog import Product
    from journeyc.compile.ir import ProjectIR
    from journeyc.events import Event
    from journeyc.store.abc import SimulationStore
    from journeyc.store.rows import Cohort

PARALLEL_FROM = 10_000
"""Events from which a replay is split between processes unless --workers says."""

_T = TypeVar("_T")


def _parse_time(value: str | None, option: str) -> int | None:
    if value is None:
        return None
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        usage_error(f"{option}: not an ISO-8601 time: {value!r} (like 2026-01-05T10:00:00Z)")
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return int(t.timestamp() * 1000)


SIMULATED_FROM = "simulate.events_file"
"""The store setting that marks a ``--db`` store as a simulation's own (its value: the
events file replayed into it): a later simulation into the file starts it over."""


@contextmanager
def _store(db: str | None, events_file: str, *, fresh: bool = False) -> Iterator[SimulationStore]:
    from journeyc.engine.simulate import scratch_store

    if db is None:
        with scratch_store() as store:
            yield store
        return
    store = _simulation_store(Path(db), events_file, fresh=fresh)
    try:
        yield store
    finally:
        store.close()


def _simulation_store(path: Path, events_file: str, *, fresh: bool) -> SimulationStore:
    """Open ``path`` for a simulation, empty of anything an earlier run left.

    Like an output file, a store an earlier ``journeyc simulate`` wrote is started over
    (said on stderr). Replaying into it instead would skip every event it has logged
    already (a repeated messageId is ignored) and report zero. A store holding what no
    simulation wrote (a daemon's, ``journeyc ingest``'s) is deleted only with
    ``fresh``; without, exit 1. A file that is not a journeyc store is never deleted.
    (A store with products alone, from ``journeyc catalog load``, is simulated into.)
    """
    if path.exists():
        store = open_store(path)  # exits 1 naming the file when it is no store
        earlier = store.get_setting(SIMULATED_FROM)
        from journeyc.why.replay import SIMULATED_RUN

        used, others = store.in_use(SIMULATED_FROM, SIMULATED_RUN)
        store.close()
        # A daemon keeps its keys and deployed project in settings: a simulation's
        # store that `journeyc serve` then ran on is the daemon's.
        if others:
            used, earlier = True, None
        if earlier is None and used and not fresh:
            click.echo(
                f"journeyc: {path} holds events or users that no simulation wrote (a "
                "daemon's or journeyc ingest's store?); nothing was simulated. Name a new "
                "file with --db, or pass --fresh to delete this store and start it over.",
                err=True,
            )
            sys.exit(EXIT_INVALID)
        if earlier is not None or used:
            for suffix in ("", "-wal", "-shm"):  # the database and SQLite's files beside it
                Path(f"{path}{suffix}").unlink(missing_ok=True)
            what = f"an earlier simulation of {earlier}" if earlier is not None else "data"
            click.echo(f"journeyc: {path} held {what}: started it over", err=True)
    store = open_simulation_store(path)
    store.put_setting(SIMULATED_FROM, events_file)
    return store


@click.command()
@paths_argument
@click.option(
    "--events",
    "events_file",
    required=True,
    type=click.Path(dir_okay=False),
    help="Events as JSON lines (Segment track/identify calls).",
)
@click.option(
    "--profiles",
    "profiles_file",
    type=click.Path(dir_okay=False),
    help='Starting profiles as JSON lines: {"userId": …, "traits": {…}}.',
)
@click.option(
    "--catalog",
    "catalog_file",
    type=click.Path(dir_okay=False),
    help="Products to load first, for the recommendation filters (JSON lines, or CSV "
    "for a .csv file; as `journeyc catalog load`).",
)
@click.option(
    "--from",
    "start",
    metavar="TIME",
    help="Start the clock here; earlier events are history (counted, not reacted to).",
)
@click.option("--until", "until", metavar="TIME", help="Stop the clock here.")
@click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False),
    help="journeyc.toml (time zone, caps, quiet hours, reachability).",
)
@click.option(
    "--db",
    type=click.Path(dir_okay=False),
    help="Keep the simulation's SQLite store in this file, every table written (default: "
    "a temporary store, deleted afterwards, given only the rows the replay reads back).",
)
@click.option(
    "--fresh",
    is_flag=True,
    help="With --db: delete a store that holds events or users no simulation wrote "
    "and start it over (without, such a store is refused, exit 1). A store an earlier "
    "simulation wrote is started over either way.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    metavar="N",
    help="Processes to replay in, the users split between them (default: one per core, "
    f"at most 16, for {PARALLEL_FROM:,} events or more; 1: this process alone). An "
    "events file of 16 MiB or more is read in as many parts at once.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="One JSON object per action, in time order (at one instant, by user).",
)
def simulate(
    paths: tuple[str, ...],
    events_file: str,
    profiles_file: str | None,
    catalog_file: str | None,
    start: str | None,
    until: str | None,
    config_file: str | None,
    db: str | None,
    fresh: bool,
    workers: int | None,
    as_json: bool,
) -> None:
    """Simulate journeys against recorded events on a virtual clock.

    The clock starts at the first event (or --from) and jumps from event to event and
    timer to timer until --until or until nothing is left to do. Without --json it
    prints a timeline per user, the A/B results (an `a/b:` line per journey with a
    split or a holdout: entries and goals per split arm, or, with a holdout and no
    split, for the `messaged` group; then the holdout; as `journeyc report` counts
    them) and a summary. Its
    times are UTC, with the user's local time beside them, `(Tue 03:30
    Asia/Bangkok)`, where that zone is not UTC: the profile's `timezone` at the end of
    the run, else journeyc.toml's (quiet hours follow it). With --json (UTC only),
    one line per action:
    enter, send, suppress (with reason), goal, exit (with reason), set, unset, track.
    The same input always prints the same output.

    --catalog loads products into the simulation's store before anything runs, for
    the recommendation filters (products the events name are learned either way).

    The users are split between processes (--workers) when what the journeys do for
    one user reads nothing of the others: not with the recommendation filters, or
    with --db (one store file). The output is the same either way.

    --db keeps the store in a file, for `journeyc segments` and SQL afterwards. Run
    again into the same file, a store an earlier simulation wrote is started over (as
    an output file is overwritten), so the output is the same every time; a store with
    events or users from elsewhere (a daemon's, `journeyc ingest`'s) is refused unless
    --fresh.

    Exit codes: 0 simulated, 1 invalid journeys, events, catalog or config, or a --db
    file that is not a journeyc store or holds events no simulation wrote (without
    --fresh), 2 usage error.
    """
    from journeyc.compile.lower import lower_project
    from journeyc.engine.parallel import (
        default_workers,
        fill_store,
        in_output_order,
        simulate_parallel,
    )
    from journeyc.engine.simulate import no_full_collections
    from journeyc.engine.simulate import simulate as run
    from journeyc.events import EventError, read_events_jsonl
    from journeyc.store.targets import is_url, shown
    from journeyc.why.replay import SIMULATED_RUN, simulated_run

    start_ms, until_ms = _parse_time(start, "--from"), _parse_time(until, "--until")
    config = load_config_file(Path(config_file) if config_file else None)
    project = lower_project(load_valid(paths))
    inputs = (("--events", events_file), ("--profiles", profiles_file))
    for name, path in (*inputs, ("--catalog", catalog_file)):
        if path is not None and not Path(path).is_file():
            usage_error(f"{name}: no such file: {path}")
    if db is not None and is_url(db):
        # The simulator holds rows in memory and writes them in bulk: SQLite only.
        usage_error(
            f"--db {shown(db)}: a simulation's store is a SQLite file; simulate into "
            "one, then copy it with `journeyc store copy FILE URL`"
        )
    try:
        with no_full_collections():  # a million events are a million long-lived objects
            # A large file is read on every core the replay may use.
            events = read_events_jsonl(
                events_file, received_ms=0, workers=workers or default_workers()
            )
        profiles = _read_profiles(profiles_file) if profiles_file else {}
        products = _read_catalog(catalog_file) if catalog_file else []
    except (EventError, ValueError) as exc:
        click.echo(f"journeyc: bad input, nothing was simulated:\n{exc}", err=True)
        sys.exit(EXIT_INVALID)

    n = _workers(project, workers, db, len(events))
    zones: dict[str, str] = {}  # the users' profile zones, for the timeline's local times
    if n > 1:
        # With --json the replay processes write the lines (to_json), in parallel.
        actions, cohorts = _run_with_progress(
            functools.partial(
                simulate_parallel,
                project,
                events,
                workers=n,
                config=config,
                start_ms=start_ms,
                until_ms=until_ms,
                profiles=profiles,
                products=products,
                json_out=sys.stdout if as_json else None,
                zones=None if as_json else zones,
            ),
            len(events),
        )
    else:
        with _store(db, events_file, fresh=fresh) as store:
            fill_store(store, profiles, products)
            actions = _run_with_progress(
                functools.partial(
                    run,
                    project,
                    events,
                    store,
                    config=config,
                    start_ms=start_ms,
                    until_ms=until_ms,
                    scratch=db is None,  # a store of its own, deleted after the run
                ),
                len(events),
            )
            cohorts = store.entry_cohorts()
            if db is not None:  # what `journeyc why` replays a user of this store with
                run_json = simulated_run(project, until_ms, config, profiles)
                store.put_setting(SIMULATED_RUN, run_json)
            if not as_json:
                zones = store.profile_zones()
        actions = in_output_order(actions)
    tests = [] if as_json else ab_lines(cohorts, project)
    if as_json:
        out = sys.stdout
        for a in actions:
            out.write(a.to_json() + "\n")
    else:
        zone_of = local_zones(zones, config.engine.zone)
        click.echo(timeline(actions, tests, zone_of, _person_of(events)), nl=False)


def _person_of(events: Sequence[Event]) -> Callable[[str], str] | None:
    """Who each id names at the end of the file: an anonymous id merged into a known
    user is that user (None when the file merges no ids)."""
    from journeyc.store.identities import IdentityMap, has_alias, link_events

    if not has_alias(events):
        return None
    ids = IdentityMap()
    link_events(events, ids)
    return ids.resolve


def _workers(project: ProjectIR, asked: int | None, db: str | None, n_events: int) -> int:
    """How many processes replay the events: one unless the users are independent and
    no store file is kept (asked for more: saying why not, on stderr)."""
    from journeyc.engine.parallel import can_fork, default_workers
    from journeyc.engine.reads import shared_reads

    if asked is None:
        return (
            default_workers()
            if n_events >= PARALLEL_FROM and db is None and (shared_reads(project) is None)
            else 1
        )
    if asked > 1:
        why = "--db keeps one store file" if db is not None else shared_reads(project)
        if why is None and not can_fork():
            why = "processes cannot fork on this platform"
        if why is not None:
            click.echo(f"journeyc: replaying in one process: {why}", err=True)
            return 1
    return asked


def _run_with_progress(run: Callable[..., _T], total: int) -> _T:
    """Call ``run(progress=…)``, with a progress bar on a terminal for long replays."""
    if not sys.stderr.isatty() or total < 10_000:
        return run(progress=None)
    from rich.console import Console
    from rich.progress import Progress

    # Refreshed from here, not by rich's own thread: a parallel replay forks, and a
    # process should not fork while another thread may hold a lock.
    with Progress(console=Console(stderr=True), transient=True, auto_refresh=False) as bar:
        task = bar.add_task("simulating", total=total)
        shown = [0.0]

        def tick(done: int, _total: int) -> None:
            bar.update(task, completed=done)
            if (now := time.monotonic()) - shown[0] >= 0.1:
                shown[0] = now
                bar.refresh()

        return run(progress=tick)


def _read_catalog(path: str) -> list[Product]:
    """The products of a catalog file; ``ValueError`` listing every bad row."""
    from journeyc.catalog import read_catalog

    try:
        read = read_catalog(path)
    except OSError as exc:
        usage_error(f"--catalog: {path}: {exc.strerror or exc}")
    if read.problems:
        raise ValueError("\n".join(str(p) for p in read.problems))
    return read.products


def _read_profiles(path: str) -> dict[str, dict[str, object]]:
    from journeyc.events import text_problems

    out: dict[str, dict[str, object]] = {}
    problems = []
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(f"{path}:{n}: not JSON: {exc.msg}")
            continue
        bad = text_problems(obj)  # a lone surrogate (from a "\ud800" escape) is no UTF-8 text
        if bad:
            problems += [f"{path}:{n}: {p}" for p in bad]
            continue
        user = obj.get("userId") if isinstance(obj, dict) else None
        traits = obj.get("traits") if isinstance(obj, dict) else None
        if not isinstance(user, str | int) or isinstance(user, bool):
            problems.append(f"{path}:{n}: $.userId: is required")
        elif not isinstance(traits, dict):
            problems.append(f"{path}:{n}: $.traits: expected an object")
        else:
            out.setdefault(str(user), {}).update(traits)
    if problems:
        raise ValueError("\n".join(problems))
    return out


def ab_lines(cohorts: Iterable[Cohort], project: ProjectIR) -> list[str]:
    """A line per journey that split or held out users: entries and goals per group,
    with conversion rates, counted as the journey report counts them
    (:func:`journeyc.reports.build.experiment`): per split arm, or, for a holdout and no
    split, the ``messaged`` group (every entry not held out); then the holdout. From
    the rows of ``Store.entry_cohorts``."""
    from journeyc.reports.build import experiment
    from journeyc.store.rows import EntryGroup

    groups: dict[str, list[EntryGroup]] = defaultdict(list)
    for jid, arm, held, entries, goals in cohorts:
        groups[jid].append(EntryGroup(held, arm, entries, goals))

    def cohort(name: str, n: int, g: int) -> str:
        entries = "entry" if n == 1 else "entries"
        goals = "goal" if g == 1 else "goals"
        return f"{name} {n} {entries}, {g} {goals}" + (f" ({g / n:.1%})" if n else "")

    lines = []
    for jid, rows in sorted(groups.items()):
        journey = project.journeys.get(jid)
        report = None if journey is None else experiment(journey, rows)
        if report is not None:
            arms = (cohort(a.name, a.entries, a.conversions) for a in report.arms)
            lines.append(f"a/b: {jid}: " + "; ".join(arms))
    return lines


def local_zones(names: Mapping[str, str], default: ZoneInfo) -> Callable[[str], tzinfo | None]:
    """Which zone a user's local time is shown in: the profile's ``timezone`` (``names``,
    read as the engine reads it: :func:`~journeyc.engine.localtime.user_zone`), else
    ``default`` (journeyc.toml's); None where that is UTC (shown anyway)."""
    from journeyc.engine.localtime import user_zone

    def shown(zone: ZoneInfo) -> ZoneInfo | None:
        return None if zone.key in _UTC else zone

    zones = {user: shown(user_zone({"timezone": name}, default)) for user, name in names.items()}
    otherwise = shown(default)
    return lambda user: zones.get(user, otherwise)


_UTC = frozenset({"UTC", "Etc/UTC", "Etc/UCT", "UCT", "Etc/Universal", "Universal", "Zulu"})


@functools.lru_cache(maxsize=65_536)  # per minute shown: actions bunch at the same times
def _local(minute: int, zone: tzinfo) -> str:
    """`` (Tue 03:30 Asia/Bangkok)``: the weekday and clock at ``minute`` (since the
    epoch) in ``zone``."""
    return datetime.fromtimestamp(minute * 60, zone).strftime(f" (%a %H:%M {zone})")


def timeline(
    actions: list[Action],
    tests: Sequence[str] = (),
    zone_of: Callable[[str], tzinfo | None] | None = None,
    person_of: Callable[[str], str] | None = None,
) -> str:
    """A readable timeline per user, then the A/B results (lines from
    :func:`ab_lines`) and a summary.

    Quiet hours and schedules follow the user's local time, so a user with a zone
    (``zone_of``, see :func:`local_zones`) has it beside each UTC time: weekday and
    clock. ``person_of`` says who an id names at the end (an anonymous id merged into
    a known user): the summary counts people, not ids.
    """
    by_user: dict[str, list[Action]] = defaultdict(list)
    for a in actions:
        by_user[a.user].append(a)
    lines: list[str] = []
    for user in sorted(by_user):
        lines.append(f"{user}")
        zone = zone_of(user) if zone_of is not None else None
        for a in by_user[user]:
            local = "" if zone is None else _local(a.at_ms // 60_000, zone)
            lines.append(f"  {iso_ms(a.at_ms)}{local}  {a.journey}  {_describe(a)}")
        lines.append("")
    lines.extend(tests)
    lines.append(summary(actions, person_of))
    return "\n".join(lines) + "\n"


def _describe(a: Action) -> str:
    d = a.detail
    at = f" at {a.step}" if a.step else ""
    if a.action == "send":
        content = d.get("content") or {}
        first = next(iter(content.values()), "") if isinstance(content, dict) else ""
        what = d.get("message") or "inline message"
        return f"send {d.get('channel')} {what}{at}: {first!r}"
    if a.action == "suppress":
        extra = f" ({d['error']})" if d.get("error") else ""
        return f"suppressed{at}: {d.get('reason')}{extra}"
    if a.action == "exit":
        return f"exit{at}: {d.get('reason')}"
    if a.action == "set":
        return f"set {d.get('attr')} = {json.dumps(d.get('value'))}{at}"
    if a.action == "unset":
        return f"unset {d.get('attr')}{at}"
    if a.action == "track":
        return f"track {d.get('event')}{at}"
    return a.action


def summary(actions: list[Action], person_of: Callable[[str], str] | None = None) -> str:
    """Users (``person_of`` each id, when ids were merged), entries, sends per channel,
    suppressions by reason, goals, exits by reason."""
    kinds = Counter(a.action for a in actions)
    users = {a.user for a in actions}
    if person_of is not None:
        users = {person_of(user) for user in users}
    channels = Counter(str(a.detail.get("channel")) for a in actions if a.action == "send")
    reasons = Counter(str(a.detail.get("reason")) for a in actions if a.action == "suppress")
    exits = Counter(str(a.detail.get("reason")) for a in actions if a.action == "exit")

    def counts(c: Counter[str]) -> str:
        return ", ".join(f"{k} {v}" for k, v in sorted(c.items())) or "none"

    return (
        f"summary: {len(users)} user(s), {kinds['enter']} entries, "
        f"{kinds['send']} sends ({counts(channels)}), {kinds['suppress']} suppressed "
        f"({counts(reasons)}), {kinds['goal']} goals, exits ({counts(exits)})"
    )
