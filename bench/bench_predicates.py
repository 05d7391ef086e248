"""Compiled predicates vs rule-engine vs a hand-written lambda.

    python bench/bench_predicates.py [--quick]

The same condition is evaluated over seeded, generated profiles (some attributes
missing, so the null rules are exercised). Each contender is warmed up, then timed
over several runs; the median is reported as evaluations per second. All three must
agree on which profiles match, or the benchmark fails.

The compiled predicate is timed on prebuilt scopes (the engine builds one scope per
user and evaluates many conditions on it); a second figure includes building the
scope for each evaluation.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import rule_engine

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Figure, add_common_args, finish, print_machine
from journeyc.compile.lower import lower_expr
from journeyc.engine.expr import Scope, compile_predicate
from journeyc.lang import ast
from journeyc.lang.parser import parse_source

CONDITION = 'push_enabled == true and lifecycle in ["new", "dormant"] and total_spend >= 100'
# rule-engine raises on `null >= 100` instead of answering false, so its copy of the
# condition guards the comparison.
RULE_ENGINE_CONDITION = (
    'push_enabled == true and lifecycle in ["new", "dormant"]'
    " and total_spend != null and total_spend >= 100"
)
NOW = datetime(2026, 3, 1, tzinfo=UTC)


def profiles(n: int, seed: int = 7) -> list[dict[str, Any]]:
    """``n`` profiles; each attribute is missing now and then."""
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    for i in range(n):
        p: dict[str, Any] = {"user_id": f"u{i}"}
        if rng.random() > 0.05:
            p["push_enabled"] = rng.random() < 0.6
        if rng.random() > 0.05:
            p["lifecycle"] = rng.choice(["new", "active", "dormant", "churned"])
        if rng.random() > 0.05:
            p["total_spend"] = rng.choice([rng.randint(0, 400), round(rng.uniform(0, 400), 2)])
        out.append(p)
    return out


def compiled_predicate() -> Callable[[Scope], bool]:
    tree = parse_source(f"segment s = {CONDITION}\n", "bench.journey").tree
    assert tree is not None
    seg = tree.declarations[0]
    assert isinstance(seg, ast.Segment)
    return compile_predicate(lower_expr(seg.expr))


def plain(p: dict[str, Any]) -> bool:
    spend = p.get("total_spend")
    return (
        p.get("push_enabled") is True
        and p.get("lifecycle") in ("new", "dormant")
        and spend is not None
        and spend >= 100
    )


def time_runs(fn: Callable[[Any], Any], items: Sequence[Any], runs: int) -> float:
    """Median evaluations per second of ``fn`` over ``items`` (after one warm-up)."""

    def once() -> float:
        t0 = time.perf_counter()
        for x in items:
            fn(x)
        return time.perf_counter() - t0

    once()
    return len(items) / statistics.median(once() for _ in range(runs))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    add_common_args(ap, "fewer profiles and runs")
    args = ap.parse_args(argv)
    n, runs = (20_000, 3) if args.quick else (100_000, 5)
    rule_n = n // 10  # rule-engine is slow; its rate is measured on a slice

    print_machine()
    print(f"rule-engine {rule_engine.__version__}")
    print(f"condition: {CONDITION}")
    print(f"profiles: {n} (rule-engine: {rule_n}), median of {runs} runs after a warm-up")

    data = profiles(n)
    pred = compiled_predicate()
    scopes = [Scope(now=NOW, profile=p, user_id=p["user_id"]) for p in data]
    rule = rule_engine.Rule(
        RULE_ENGINE_CONDITION,
        context=rule_engine.Context(default_value=None),
    )

    expected = [plain(p) for p in data]
    if [pred(s) for s in scopes] != expected:
        print("compiled predicate disagrees with the plain lambda", file=sys.stderr)
        return 1
    if [rule.matches(p) for p in data[:rule_n]] != expected[:rule_n]:
        print("rule-engine disagrees with the plain lambda", file=sys.stderr)
        return 1
    print(f"matching profiles: {sum(expected)}")

    def with_scope(p: dict[str, Any]) -> bool:
        return pred(Scope(now=NOW, profile=p))

    rates = {
        "compiled (prebuilt scopes)": time_runs(pred, scopes, runs),
        "compiled (scope built per call)": time_runs(with_scope, data, runs),
        "plain lambda": time_runs(plain, data, runs),
        "rule-engine": time_runs(rule.matches, data[:rule_n], runs),
    }
    comp = rates["compiled (prebuilt scopes)"]
    finish(
        [
            Figure(
                "compiled predicate",
                comp,
                "evals/s",
                rates["rule-engine"],
                "rule-engine",
                ">= 3M/s and >= 15x",
                comp >= 3e6 and comp >= 15 * rates["rule-engine"],
            ),
            Figure(
                "compiled predicate vs a plain lambda",
                comp,
                "evals/s",
                rates["plain lambda"],
                "plain lambda",
            ),
            Figure(
                "compiled, scope built per call",
                rates["compiled (scope built per call)"],
                "evals/s",
                rates["rule-engine"],
                "rule-engine",
            ),
        ],
        args,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
