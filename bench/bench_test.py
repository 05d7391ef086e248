"""`journeyc test`: 100 tests of the example project, run in-process on the simulator.

    python bench/bench_test.py [--quick] [--tests N] [--json FILE]

The tests are the example project's (journeys/*.test.journey), repeated until there
are N (100 by default: the goal's size). Figures:

- N tests run as `journeyc test` runs them (one fresh in-memory store and one
  replay per test, one renderer shared; the project lowered once), beside the
  baseline: one `journeyc simulate` replay (in-process, a scratch store) of the same
  events and profiles, every test's users kept apart by a prefix. The ratio is what
  running them as separate, isolated tests costs over simulating them together.
- the cold command, `journeyc test journeys/` in a new process (the example
  project's own tests), beside `python -c pass`.

Goal: 100 tests in ≤ 2 s.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Figure, add_common_args, finish, median_time, print_machine

ROOT = Path(__file__).resolve().parent.parent
GOAL_S = 2.0
GOAL_TESTS = 100


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    add_common_args(ap, "fewer runs")
    ap.add_argument("--tests", type=int, default=GOAL_TESTS, help="how many tests to run")
    args = ap.parse_args()
    runs = 3 if args.quick else 7
    print_machine()

    from journeyc.catalog import Product
    from journeyc.compile.lower import lower_project
    from journeyc.engine.parallel import fill_store
    from journeyc.engine.simulate import scratch_store, simulate
    from journeyc.events import Event
    from journeyc.lang.literals import normalize_event
    from journeyc.lang.project import load_project
    from journeyc.lang.testfile import literal_value
    from journeyc.testing.runner import Case, run_cases, start_of

    project = load_project([ROOT / "journeys"])
    program = lower_project(project)
    examples = [Case(f.path, t) for f in project.tests if f.tree for t in f.tree.tests]
    cases = [examples[i % len(examples)] for i in range(args.tests)]
    print(f"{len(cases)} tests ({len(examples)} distinct), {len(program.journeys)} journeys")

    # The baseline's input: the same events and profiles, each test's users prefixed.
    events: list[Event] = []
    profiles: dict[str, dict[str, object]] = {}
    products: dict[str, Product] = {}
    for k, case in enumerate(cases):
        t = case.test
        start = start_of(t)
        for u in t.users:
            traits = {a.name: literal_value(a.value) for a in u.traits}
            profiles.setdefault(f"t{k}-{u.id}", {}).update(traits)
        for p in t.products:
            fields = {a.name: literal_value(a.value) for a in p.fields}
            products[p.id] = Product.model_validate({**fields, "id": p.id})
        for n, e in enumerate(t.events):
            events.append(
                Event(
                    message_id=f"t{k}-{n}",
                    user_id=f"t{k}-{e.user}",
                    kind="track",
                    name=normalize_event(e.name),
                    at_ms=e.at.resolve(start),
                    props={a.name: literal_value(a.value) for a in e.props},
                    received_ms=0,
                )
            )

    def tests() -> None:
        run = run_cases(program, cases)
        assert run.passed == len(cases), "a test failed"

    def simulated() -> None:
        with scratch_store() as store:
            fill_store(store, profiles, list(products.values()))
            simulate(program, events, store, scratch=True)

    t_tests = median_time(tests, runs)
    t_sim = median_time(simulated, runs)
    scaled_goal = GOAL_S * len(cases) / GOAL_TESTS
    figures = [
        Figure(
            f"{len(cases)} tests, in-process",
            t_tests,
            "s",
            t_sim,
            "simulate same events",
            f"<= {scaled_goal:g} s",
            t_tests <= scaled_goal,
        ),
        Figure("tests/s", len(cases) / t_tests, "tests/s"),
    ]

    def cold() -> None:
        subprocess.run(
            [sys.executable, "-m", "journeyc", "test", str(ROOT / "journeys")],
            check=True,
            capture_output=True,
        )

    def bare_python() -> None:
        subprocess.run([sys.executable, "-c", "pass"], check=True)

    cold_runs = 1 if args.quick else 3
    t_cold = median_time(cold, cold_runs)
    t_py = median_time(bare_python, cold_runs)
    figures.append(
        Figure(
            f"cold `journeyc test journeys/` ({len(examples)} tests)",
            t_cold,
            "s",
            t_py,
            "python -c pass",
        )
    )
    finish(figures, args)


if __name__ == "__main__":
    main()
