"""Every benchmark under bench/ still runs, and so does the runner (``python -m bench``).

A smoke test, never a timed assertion: what a benchmark measures is not checked here,
only that it runs to the end and prints the shared figures table
(``bench.common.print_figures``) after the machine line. Scripts are found by name
(``bench/bench_*.py``), so a new benchmark is covered without a change here; the
larger ones get extra size flags (``SIZE_ARGS``) so the whole file stays well under a
minute.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from bench import runner

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"

# Benchmark script → extra arguments after ``--quick`` (smaller sizes for the slow
# ones). A script not listed here runs with ``--quick`` alone.
SIZE_ARGS: dict[str, list[str]] = {
    "bench_timers.py": ["--n", "300"],
    "bench_simulate.py": ["--events", "1000", "--users", "100"],
    "bench_serve.py": ["--seconds", "3", "--timers", "200", "--rows", "20000"],
    "bench_ingest.py": ["--events", "500", "--runs", "1"],
    "bench_segments.py": ["--profiles", "2000", "--events", "20000", "--sample", "200"],
    "bench_dispatch.py": ["--seconds", "2", "--hang", "0.5"],
    "bench_deliveries.py": ["--reports", "1000"],
    "bench_ui.py": ["--instances", "5000", "--fetches", "3"],
    "bench_store_kinds.py": ["--events", "500", "--merges", "200"],
    "bench_report_postgres.py": ["--entries", "2000", "--log", "1000"],
    # Two PostgreSQL workers only (the setup the others do not cover): each daemon
    # start costs seconds.
    "bench_cluster.py": ["--setup", "postgres-2"],
}
TIMEOUT_S = 120  # a hang guard, not a performance limit

# The header line ``bench.common.print_figures`` starts its table with.
TABLE_HEADER = ("figure", "value", "unit", "baseline", "ratio", "goal")
# The columns of the runner's table, and the keys of each figure in its JSON.
RUNNER_HEADER = ["benchmark", "figure", "value", "unit", "baseline", "ratio", "goal", "met"]
FIGURE_KEYS = {"name", "value", "unit", "baseline", "ratio", "goal", "met"}


def _scripts() -> list[str]:
    return sorted(p.name for p in BENCH.glob("bench_*.py"))


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONHASHSEED": "0"}


def _has_figures_table(stdout: str) -> bool:
    lines = stdout.splitlines()
    for i, line in enumerate(lines):
        if line.split() == list(TABLE_HEADER):
            return i + 1 < len(lines) and bool(lines[i + 1].strip())
    return False


@pytest.mark.parametrize("script", _scripts())
def test_benchmark_runs_quick(script: str, tmp_path: Path) -> None:
    """``python bench/SCRIPT --quick --json FILE`` exits 0, prints the machine line and a
    figures table with at least one row, and writes the same figures as JSON."""
    out = tmp_path / "figures.json"
    sizes = SIZE_ARGS.get(script, [])
    proc = subprocess.run(
        [sys.executable, str(BENCH / script), "--quick", "--json", str(out), *sizes],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        cwd=ROOT,
        env=_env(),
    )
    detail = f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
    assert proc.returncode == 0, detail
    assert proc.stdout.startswith("machine:"), detail
    assert _has_figures_table(proc.stdout), f"no figures table\n{detail}"
    doc = json.loads(out.read_text())
    assert doc["figures"], detail
    for figure in doc["figures"]:
        assert figure.keys() >= FIGURE_KEYS, figure


def test_runner_quick_json(tmp_path: Path) -> None:
    """``python -m bench --quick --only predicates --json FILE`` prints one table and
    writes ``{"machine": {...}, "figures": [...]}``."""
    out = tmp_path / "out.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--only", "predicates", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        cwd=ROOT,
        env=_env(),
    )
    detail = f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
    assert proc.returncode == 0, detail
    assert proc.stdout.startswith("machine:"), detail
    lines = proc.stdout.splitlines()
    header = next((i for i, line in enumerate(lines) if line.split() == RUNNER_HEADER), None)
    assert header is not None, f"no runner table\n{detail}"
    rows = [line for line in lines[header + 2 :] if line.startswith("predicates ")]
    assert any("compiled predicate" in row for row in rows), detail

    doc = json.loads(out.read_text())
    assert set(doc) >= {"machine", "figures"}
    machine = doc["machine"]
    assert isinstance(machine, dict)
    assert {"cores", "python", "sqlite"} <= machine.keys()
    figures = doc["figures"]
    assert isinstance(figures, list) and figures
    for f in figures:
        assert f.keys() >= FIGURE_KEYS, f
        assert f["benchmark"] == "predicates"
        assert isinstance(f["name"], str) and isinstance(f["unit"], str)
        assert isinstance(f["value"], int | float)
        assert f["met"] in (True, False, None)
    assert any(f["met"] is not None and f["goal"] for f in figures)


def test_runner_lists_every_script() -> None:
    """``bench/run --list`` names every ``bench_*.py`` (new ones need no registration)."""
    proc = subprocess.run(
        [str(BENCH / "run"), "--list"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**_env(), "PYTHON": sys.executable},
    )
    assert proc.returncode == 0, proc.stderr
    for script in _scripts():
        assert script in proc.stdout, proc.stdout


def test_runner_reports_a_failed_benchmark(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A benchmark that crashes is a FAILED row with its stderr tail; the others still
    run, and the runner exits 1."""
    (tmp_path / "bench_good.py").write_text(
        "import argparse, json\n"
        "ap = argparse.ArgumentParser()\n"
        "ap.add_argument('--quick', action='store_true')\n"
        "ap.add_argument('--json')\n"
        "args = ap.parse_args()\n"
        "fig = {'name': 'good figure', 'value': 2.0, 'unit': 'x/s', 'baseline': 1.0,\n"
        "       'baseline_name': 'one', 'ratio': 2.0, 'goal': '>= 1x', 'met': True}\n"
        "json.dump({'machine': {}, 'figures': [fig]}, open(args.json, 'w'))\n"
    )
    (tmp_path / "bench_broken.py").write_text("raise RuntimeError('the disk is on fire')\n")
    monkeypatch.setattr(runner, "BENCH_DIR", tmp_path)
    out = tmp_path / "out.json"

    assert runner.main(["--quick", "--json", str(out)]) == 1

    stdout = capsys.readouterr().out
    assert "good figure" in stdout
    assert "FAILED" in stdout and "the disk is on fire" in stdout
    doc = json.loads(out.read_text())
    assert [f["name"] for f in doc["figures"]] == ["good figure"]
    broken = next(b for b in doc["benchmarks"] if b["benchmark"] == "broken")
    assert not broken["ok"] and any("the disk is on fire" in s for s in broken["stderr_tail"])
