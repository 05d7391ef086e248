"""Every benchmark under bench/ still runs: ``--quick`` in a subprocess, exit 0, a table.

A smoke test, never a timed assertion: what a benchmark measures is not checked here,
only that it runs to the end and prints the shared figures table
(``bench.common.print_figures``) after the machine line. The larger benchmarks get
extra size flags so the whole file stays well under a minute.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"

# Benchmark script → extra arguments after ``--quick`` (smaller sizes for the slow ones).
BENCHMARKS: dict[str, list[str]] = {
    "bench_validate.py": [],
    "bench_predicates.py": [],
    "bench_timers.py": ["--n", "300"],
    "bench_simulate.py": ["--events", "1000", "--users", "100"],
    "bench_serve.py": ["--seconds", "3", "--timers", "200", "--rows", "20000"],
}
TIMEOUT_S = 120  # a hang guard, not a performance limit

# The header line ``bench.common.print_figures`` starts its table with.
TABLE_HEADER = ("figure", "value", "unit", "baseline", "ratio", "goal")


def _present() -> list[str]:
    return [name for name in BENCHMARKS if (BENCH / name).exists()]


def _has_figures_table(stdout: str) -> bool:
    lines = stdout.splitlines()
    for i, line in enumerate(lines):
        if line.split() == list(TABLE_HEADER):
            return i + 1 < len(lines) and bool(lines[i + 1].strip())
    return False


@pytest.mark.parametrize("script", _present())
def test_benchmark_runs_quick(script: str) -> None:
    """``python bench/SCRIPT --quick`` exits 0 and prints the machine line and a figures
    table with at least one row."""
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    proc = subprocess.run(
        [sys.executable, str(BENCH / script), "--quick", *BENCHMARKS[script]],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        cwd=BENCH.parent,
        env=env,
    )
    detail = f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
    assert proc.returncode == 0, detail
    assert proc.stdout.startswith("machine:"), detail
    assert _has_figures_table(proc.stdout), f"no figures table\n{detail}"
