"""``journeyc plan`` and ``journeyc deploy``: review what a deployment would change in a
store, then apply exactly that (like ``terraform plan`` and ``terraform apply``).

The plan is computed by :mod:`journeyc.engine.plan`; the deployment goes through
:func:`journeyc.engine.deploy.deploy_project`, the daemon's own deploy path.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from journeyc.cli.common import EXIT_INVALID, EXIT_OK, echo_json, json_option, paths_argument
from journeyc.cli.serve import config_option, read_config, store_option
from journeyc.config import store_target
from journeyc.serve.times import now_ms
from journeyc.store.targets import StoreTarget

if TYPE_CHECKING:
    from journeyc.compile import ir
    from journeyc.config import Config
    from journeyc.engine.plan import Plan
    from journeyc.store.abc import Store

EXIT_CHANGES = 2
"""``journeyc plan``: the plan holds changes (``terraform plan -detailed-exitcode``)."""

_SYMBOL = {"add": "+", "change": "~", "upgrade": "~", "retire": "-", "remove": "-"}


class _ErrorsExitOne(click.Command):
    """A command whose usage errors exit 1, not 2: ``journeyc plan`` exits 2 when the
    plan holds changes."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        """Parse the arguments; a usage error is reported with exit code 1."""
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as exc:
            exc.show()
            raise SystemExit(EXIT_INVALID) from None


def _fail(message: str) -> NoReturn:
    click.echo(f"journeyc: {message}", err=True)
    sys.exit(EXIT_INVALID)


def _compile(paths: Sequence[str], *, usage_exits_1: bool = False) -> ir.ProjectIR:
    """The project under ``paths``, checked and lowered; its errors exit 1. A missing
    path is a usage error (exit 2), or with ``usage_exits_1`` an error (``plan``, where
    2 reads as "changes")."""
    from journeyc.cli.common import load_valid
    from journeyc.compile.lower import LowerError, lower_project

    try:
        project = load_valid(paths)
    except SystemExit as exc:
        if usage_exits_1 and exc.code:
            raise SystemExit(EXIT_INVALID) from None
        raise
    try:
        return lower_project(project)
    except LowerError as exc:
        _fail(str(exc))


@contextmanager
def _store(path: StoreTarget, *, create: bool) -> Iterator[Store]:
    """The store at ``path`` (a file or a URL). Without ``create``, a missing file is
    planned against as an empty store (nothing deployed) and nothing is created."""
    from journeyc.store.errors import StoreError
    from journeyc.store.open import open_full_store

    missing = isinstance(path, Path) and not path.exists()
    where = ":memory:" if missing and not create else path
    try:
        store = open_full_store(where)
    except (StoreError, OSError) as exc:
        _fail(str(exc))
    try:
        yield store
    finally:
        store.close()


@contextmanager
def _progress() -> Iterator[Callable[[int, int], None] | None]:
    """A progress callback drawing a bar on stderr while segments are evaluated (on a
    terminal only)."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task("evaluating segments", total=None)
        yield lambda done, total: progress.update(task, completed=done, total=total)


def _make_plan(store: Store, project: ir.ProjectIR, config: Config, path: StoreTarget) -> Plan:
    from journeyc.engine.plan import make_plan

    with _progress() as bar:
        plan = make_plan(store, project, now_ms(), config.engine.zone, progress=bar)
    if store.path == ":memory:":  # no store at ``path`` yet: planned against an empty one
        plan.store = str(path)
    return plan


# ---------------------------------------------------------------- rendering


def render(plan: dict[str, Any]) -> str:
    """A plan (its JSON form) as text for people, like ``terraform plan``."""
    lines = [f"journeyc plan against {plan['store']}, computed at {plan['computed_at']}", ""]
    if not plan["changes"]:
        lines.append("No changes: the store runs what the project says.")
        return "\n".join(lines) + "\n"
    if plan["journeys"]:
        lines.append("Journeys")
        for j in plan["journeys"]:
            lines += _journey_lines(j)
        lines.append("")
    if plan["segments"]:
        lines.append(
            "Segments (evaluated again for every known user at deployment, silently: "
            "no `when entering`/`when leaving` journey starts for those who enter or leave)"
        )
        for s in plan["segments"]:
            moves = [f"{s['entering']} enter"] if s["action"] != "remove" else []
            if s["action"] != "add":
                moves.append(f"{s['leaving']} leave")
            lines.append(
                f"  {_SYMBOL[s['action']]} {s['name']}  members {s['before']} → {s['after']}: "
                + ", ".join(moves)
            )
        lines.append("")
    if plan["schedules"]:
        lines.append("Schedules (next firing)")
        for s in plan["schedules"]:
            before = s["next_before"] or "none"
            after = s["next_after"] or "none"
            lines.append(
                f"  {_SYMBOL[s['action']]} {s['journey']}  {s['every']}  in {s['zone']}: "
                f"{before} → {after}"
            )
        lines.append("")
    for warning in plan["warnings"]:
        lines += [f"Warning: {warning}", ""]
    n = plan["summary"]
    lines.append(
        f"Plan: {n['journeys_to_add']} to add, {n['journeys_to_change']} to change, "
        f"{n['journeys_to_retire']} to retire; {n['users_moving']} user(s) in flight move; "
        f"{n['segments']} segment(s) and {n['schedules']} schedule(s) change."
    )
    return "\n".join(lines) + "\n"


def _journey_lines(j: dict[str, Any]) -> list[str]:
    sym = _SYMBOL[j["action"]]
    if j["action"] == "add":
        head = f"new, version {j['to_version']}"
    elif j["action"] == "retire":
        head = f"retired (was version {j['from_version']}): takes no new entries"
    elif j["action"] == "upgrade":
        head = f"version {j['to_version']} (unchanged); users on older versions move to it"
    else:
        head = f"version {j['from_version']} → {j['to_version']}"
    if j["upgrade_in_place"]:
        head += "  (upgrade in place)"
    lines = [f"  {sym} {j['id']}  {head}"]
    if j["in_flight"]:
        lines.append("      users in flight:")
    for g in j["in_flight"]:
        kind = f"{g['kind']}, " if g["kind"] else ""
        lines.append(f"        {g['users']} at {g['step']} ({kind}on {g['version']}): {g['means']}")
    return lines


# ---------------------------------------------------------------- plan


@click.command(cls=_ErrorsExitOne)
@paths_argument
@store_option
@config_option
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Also write the plan to FILE, for `journeyc deploy --plan FILE`.",
)
@json_option
def plan(
    paths: tuple[str, ...],
    db: StoreTarget | None,
    config_file: Path | None,
    out: Path | None,
    as_json: bool,
) -> None:
    """Show what deploying the project would change in a store, writing nothing.

    Compared with what the store (--db) has deployed: journeys to add (+), change
    (~) and retire (-); for each, its users in flight per version and step and what
    the deployment does to them: they stay on their version, move to the new one at
    the step of the same name (`upgrade in place`), or stay on theirs because their
    step is gone from the new version. Then segments whose definition changes, with
    how many users would enter and leave them if deployed now, and schedules whose
    next firing changes. A store that does not exist is planned against as empty.

    \b
    --out FILE writes the plan (JSON) with its hash over the store's deployed state
    and the project's compiled IR: `journeyc deploy PATH --plan FILE` applies it,
    and refuses if either changed since. --json prints the same JSON: format_version,
    hash, state_hash, project_hash, store, computed_at, changes, summary, journeys
    (id, action add|change|upgrade|retire, from_version, to_version,
    upgrade_in_place, in_flight [{version, step, users, outcome
    stays|moves|step_gone|retired|current, to_version, kind, to_kind, means,
    warning}]), warnings, unchanged_journeys, segments (name, action
    add|change|remove, before, after, entering, leaving) and schedules (journey,
    trigger, zone, every, action, next_before, next_after).

    Exit codes (like terraform plan -detailed-exitcode): 0 no changes, 1 error
    (invalid project, unreadable store, usage error), 2 changes present.
    """
    config, _ = read_config(config_file)
    path = store_target(db, config)
    project = _compile(paths, usage_exits_1=True)
    with _store(path, create=False) as store:
        made = _make_plan(store, project, config, path)
    data = made.to_json()
    if out is not None:
        try:
            out.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        except OSError as exc:
            _fail(f"{out}: cannot write the plan: {exc.strerror or exc}")
    if as_json:
        echo_json(data)
    else:
        click.echo(render(data), nl=False)
        if out is not None:
            click.echo(f"\nSaved the plan to {out}: apply it with journeyc deploy --plan {out}")
    sys.exit(EXIT_CHANGES if made.changes else EXIT_OK)


# ---------------------------------------------------------------- deploy


def _read_plan(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        _fail(f"{path}: cannot read the plan: {exc.strerror or exc}")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        _fail(f"{path}: not a plan written by journeyc plan --out ({exc})")
    from journeyc.engine.plan import FORMAT_VERSION

    if (
        not isinstance(data, dict)
        or data.get("format_version") != FORMAT_VERSION
        or not all(isinstance(data.get(k), str) for k in ("hash", "state_hash", "project_hash"))
    ):
        _fail(f"{path}: not a plan written by this journeyc (journeyc plan --out FILE)")
    return data


@click.command()
@paths_argument
@store_option
@config_option
@click.option(
    "--plan",
    "plan_file",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Apply the plan `journeyc plan --out FILE` saved; refuse if the store or the "
    "project changed since.",
)
@json_option
def deploy(
    paths: tuple[str, ...],
    db: StoreTarget | None,
    config_file: Path | None,
    plan_file: Path | None,
    as_json: bool,
) -> None:
    """Deploy the project into a store, as `journeyc serve` deploys a change.

    With --plan FILE, applies exactly the plan `journeyc plan --out FILE` saved:
    it refuses (exit 1, nothing written) if the store's deployed journeys or
    segments, or what the project does, changed since the plan was made. Without
    --plan it plans, prints the plan and applies it in one go. A deployment that
    changes nothing writes nothing.

    The deployment is the daemon's own: new entries take the new versions, users in
    flight stay on theirs unless the journey says `upgrade in place`, changed
    segments are evaluated again silently, schedules are updated. A daemon serving
    the store (`journeyc serve`, with or without --no-watch) takes the new
    deployment within seconds; the store is created when it does not exist.

    --json prints {"plan": the plan's JSON (see journeyc plan --help), "deployed":
    true|false, "stamp": the deployment's stamp or null}.

    Exit codes: 0 deployed (or nothing to deploy), 1 error (invalid project,
    unreadable store or plan, the plan is stale), 2 usage error.
    """
    from journeyc.engine.deploy import deployed_stamp, project_hash

    config, _ = read_config(config_file)
    path = store_target(db, config)
    project = _compile(paths)
    saved = _read_plan(plan_file) if plan_file is not None else None
    with _store(path, create=True) as store:
        data = saved if saved is not None else _make_plan(store, project, config, path).to_json()
        if project_hash(project) != data["project_hash"]:
            _fail(
                f"the project changed since the plan was made ({plan_file}, at "
                f"{data.get('computed_at')}); nothing deployed: plan again"
            )
        stamp = deployed_stamp(store)
        # Nothing to change, and the store already records this project (what
        # `serve --no-watch` runs): write nothing.
        unchanged = (
            not data["changes"]
            and stamp is not None
            and stamp.startswith(data["project_hash"] + "@")
        )
        if not unchanged:
            stamp = _apply(store, project, config, data, plan_file)
    if as_json:
        echo_json({"plan": data, "deployed": not unchanged, "stamp": None if unchanged else stamp})
        return
    click.echo(render(data), nl=False)
    if unchanged:
        click.echo("\nNothing to deploy.")
    else:
        click.echo(f"\nDeployed into {path} (stamp {stamp}).")


def _apply(
    store: Store,
    project: ir.ProjectIR,
    config: Config,
    data: dict[str, Any],
    plan_file: Path | None,
) -> str:
    """Deploy ``project`` if the store's deployed state is still the one planned
    against: checked and applied in one transaction, so no other deployment comes
    between."""
    from journeyc.engine.core import Engine
    from journeyc.engine.deploy import deploy_project, deployed_state_hash

    engine = Engine(store, config)
    with store.transaction():
        if deployed_state_hash(store) != data["state_hash"]:
            where = f"the plan was made ({plan_file}, at {data.get('computed_at')})"
            if plan_file is None:
                where = "it was planned (another deployment came between)"
            _fail(
                f"the store's deployed journeys or segments changed since {where}; "
                "nothing deployed: plan again"
            )
        return deploy_project(engine, project, now_ms())
