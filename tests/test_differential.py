"""The engine against the reference interpreter on generated journeys and timelines.

Both must print the same actions (``content`` aside: the reference does not render).
A failure prints the whole scenario (sources, window, events) and both outputs.
The engine runs on each kind of store (the ``engine_stores`` fixture): SQLite, held
(the simulator's way), and PostgreSQL, live.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import given, reject

from journeyc.compile.lower import lower_project
from journeyc.engine.simulate import simulate
from journeyc.lang.checker import check_project
from journeyc.lang.project import Project, load_project
from tests.engine_helpers import PostgresStores
from tests.journey_strategies import Scenario, projects, scenarios
from tests.reference import ReferenceRunawayError, reference_simulate


def _errors(project: Project) -> list[str]:
    return [str(d) for d in check_project(project) if d.severity == "error"]


def _without_content(actions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in a.items() if k != "content"} for a in actions]


def _first_difference(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> str:
    for n, (g, w) in enumerate(zip(got, want, strict=False)):
        if g != w:
            return f"first difference at action {n}:\n  engine:    {g}\n  reference: {w}"
    return f"lengths differ: engine {len(got)}, reference {len(want)}"


@given(projects())
def test_generated_projects_check_clean(files: dict[str, str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in files.items():
            (Path(tmp) / name).write_text(text, encoding="utf-8")
        errors = _errors(load_project([tmp]))
    assert not errors, "\n".join([*errors, *files.values()])


def engine_and_reference(
    scenario: Scenario,
    check: Callable[[Project], None] | None = None,
    on: PostgresStores | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The engine's and the reference's actions for ``scenario``, ``content`` aside.
    ``check`` sees the loaded project first; a scenario the reference cannot finish
    (a journey re-entering itself at one instant: no finite answer) is rejected.
    ``on``: the engine runs live in a PostgreSQL database (else in a SQLite store of
    its own, held)."""
    from journeyc.engine.simulate import simulate_project

    with tempfile.TemporaryDirectory() as tmp:
        for name, text in scenario.files.items():
            (Path(tmp) / name).write_text(text, encoding="utf-8")
        project = load_project([tmp])
        if check is not None:
            check(project)
        try:
            want = reference_simulate(
                project.trees,
                scenario.events,
                start_ms=scenario.start_ms,
                until_ms=scenario.until_ms,
            )
        except ReferenceRunawayError:
            reject()
        if on is None:
            got = simulate_project(
                Path(tmp),
                scenario.events,
                start_ms=scenario.start_ms,
                until_ms=scenario.until_ms,
            )
        else:
            with on.fresh() as store:
                actions = simulate(
                    lower_project(project),
                    scenario.events,
                    store,
                    start_ms=scenario.start_ms,
                    until_ms=scenario.until_ms,
                    hold=False,
                )
            got = [a.as_dict() for a in actions]
    return _without_content(got), _without_content(want)


@given(scenarios())
def test_engine_matches_reference(engine_stores: PostgresStores | None, scenario: Scenario) -> None:
    def clean(project: Project) -> None:
        assert not _errors(project), scenario.describe()

    got, want = engine_and_reference(scenario, clean, engine_stores)
    assert got == want, (
        f"{_first_difference(got, want)}\n\n{scenario.describe()}\n\n"
        + "engine:\n"
        + "\n".join(map(str, got))
        + "\n\nreference:\n"
        + "\n".join(map(str, want))
    )
